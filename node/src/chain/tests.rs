//! Chain-state tests: import orders, orphans, reorgs, invalid branches,
//! commitment equality across paths, refusal of foreign databases, and the
//! integrity check.

use super::*;
use crate::store::StoreError;
use crate::testkit::ChainBuilder;
use lode_core::tx::TxOut;
use lode_core::{Amount, Block, Transaction};
use std::collections::HashMap;

fn open(dir: &Path) -> Chain {
    Chain::open(dir, ChainSpec::regtest(), Arc::new(SigCache::new(10_000)), ChainConfig::default()).unwrap()
}

fn import(chain: &mut Chain, blocks: &[Block]) {
    for b in blocks {
        chain.accept_block(b.clone()).unwrap();
    }
}

/// UTXO set rebuilt from scratch by replaying the active chain in memory.
fn replay_utxo(chain: &Chain) -> HashMap<lode_core::OutPoint, lode_core::validation::Coin> {
    use lode_core::validation::{connect_block, ConnectContext};
    let spec = chain.spec().clone();
    let mut utxo = HashMap::new();
    for h in 1..=chain.state().height.0 {
        let hash = chain.hash_at(Height(h)).unwrap();
        let block = chain.store().block(&hash).unwrap().unwrap();
        let ctx = ConnectContext {
            genesis: spec.genesis_hash(),
            coinbase_maturity: spec.coinbase_maturity,
            subsidy: lode_core::subsidy::block_subsidy(&spec, Height(h)),
        };
        let out = connect_block(&block, Height(h), &ctx, &utxo, None).unwrap();
        for (op, _) in out.spent {
            utxo.remove(&op);
        }
        utxo.extend(out.created);
    }
    utxo
}

fn assert_utxo_matches_replay(chain: &Chain) {
    let replayed = replay_utxo(chain);
    let stored: HashMap<_, _> = chain.store().all_coins().unwrap().into_iter().collect();
    assert_eq!(stored, replayed);
    assert_eq!(chain.state().utxo_count as usize, stored.len());
    let report = chain.verify_integrity().unwrap();
    assert!(report.ok, "{report:?}");
}

#[test]
fn imports_in_order_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = ChainBuilder::new(ChainSpec::regtest());
    let blocks = b.blocks(30, 5);
    {
        let mut chain = open(dir.path());
        import(&mut chain, &blocks);
        assert_eq!(chain.state().tip, b.tip());
        assert_eq!(chain.state().height, Height(30));
        assert_utxo_matches_replay(&chain);
    }
    let chain = open(dir.path());
    assert_eq!(chain.state().tip, b.tip());
    assert_eq!(chain.hash_at(Height(15)), Some(blocks[14].hash()));
    assert_utxo_matches_replay(&chain);
}

#[test]
fn imports_out_of_order_through_the_orphan_pool_and_headers_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = ChainBuilder::new(ChainSpec::regtest());
    let blocks = b.blocks(20, 3);
    let mut chain = open(dir.path());
    // Bodies in reverse: all but the first are orphans until it arrives.
    for blk in blocks[..10].iter().rev() {
        chain.accept_block(blk.clone()).unwrap();
    }
    assert_eq!(chain.state().height, Height(10));
    // Headers first, then bodies in reverse: no orphans needed.
    for blk in &blocks[10..] {
        chain.accept_header(&blk.header).unwrap();
    }
    assert_eq!(chain.missing_blocks(100).len(), 10);
    for blk in blocks[10..].iter().rev() {
        chain.accept_block(blk.clone()).unwrap();
    }
    assert_eq!(chain.state().tip, b.tip());
    assert!(chain.orphans().is_empty());
    assert_utxo_matches_replay(&chain);
}

#[test]
fn orphan_reports_its_missing_root() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = ChainBuilder::new(ChainSpec::regtest());
    let blocks = b.blocks(3, 0);
    let mut chain = open(dir.path());
    let (r, _) = chain.accept_block(blocks[2].clone()).unwrap();
    assert_eq!(r, BlockAccepted::Orphan { missing: blocks[1].hash() });
    let (r, _) = chain.accept_block(blocks[1].clone()).unwrap();
    assert_eq!(r, BlockAccepted::Orphan { missing: blocks[0].hash() });
}

#[test]
fn reorgs_of_depth_one_and_deep_follow_the_most_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(15, 4));
    let mut b = a.fork(1);
    let mut c = a.fork(2);
    // Depth 1: equal work keeps the first seen, one more block wins.
    let a1 = a.next_block(2);
    let b1 = b.next_block(2);
    import(&mut chain, std::slice::from_ref(&a1));
    let (_, u) = chain.accept_block(b1.clone()).unwrap();
    assert!(!u.changed(), "equal work: first seen stays");
    let b2 = b.next_block(2);
    let (_, u) = chain.accept_block(b2).unwrap();
    assert_eq!(u.disconnected_count(), 1);
    assert_eq!(u.connected_count(), 2);
    assert_eq!(chain.state().tip, b.tip());
    assert!(!u.disconnected_txs().is_empty(), "a1's transactions are handed back");
    // Deep: b grows to 12 blocks above the fork, then c (forked at the same
    // height) overtakes it; the winning block disconnects all 12.
    import(&mut chain, &b.blocks(10, 2));
    assert_eq!(chain.state().height, Height(15 + 12));
    let deep = c.blocks(14, 3);
    import(&mut chain, &deep[..12]);
    assert_eq!(chain.state().tip, b.tip(), "equal work: the first seen stays");
    let (r, u) = chain.accept_block(deep[12].clone()).unwrap();
    assert_eq!(r, BlockAccepted::Connected);
    assert_eq!(u.disconnected_count(), 12);
    assert_eq!(u.connected_count(), 13);
    assert!(u.reorganised());
    let (_, u) = chain.accept_block(deep[13].clone()).unwrap();
    assert_eq!((u.disconnected_count(), u.connected_count()), (0, 1));
    assert_eq!(chain.state().tip, c.tip());
    assert_eq!(chain.state().height, Height(15 + 14));
    assert_utxo_matches_replay(&chain);
}

#[test]
fn a_branch_with_an_invalid_block_is_abandoned_for_the_best_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(12, 2));
    let mut b = a.fork(9);
    import(&mut chain, &a.blocks(3, 2));
    let good_tip = chain.state().tip;
    // b: valid block, then one whose coinbase overpays (valid header and
    // body shape, invalid only against the UTXO set), then more on top.
    let b1 = b.next_block(1);
    let mut bad = b.clone();
    let cb = Transaction::coinbase(
        Height(14),
        b"greedy".to_vec(),
        vec![TxOut { value: Amount::from_coins(10_000), address: b.address() }],
    );
    let b2 = bad.seal(vec![cb]);
    let tail = bad.blocks(4, 0);
    import(&mut chain, &[b1]);
    import(&mut chain, std::slice::from_ref(&b2));
    chain.accept_block(tail[0].clone()).unwrap();
    // The block that makes b heaviest triggers the reorg that finds b2
    // invalid: it is refused as a descendant of an invalid block.
    assert!(matches!(chain.accept_block(tail[1].clone()), Err(ChainError::InvalidAncestor(_))));
    // Descendants of a block found invalid are refused at once.
    assert!(matches!(chain.accept_block(tail[2].clone()), Err(ChainError::InvalidAncestor(_))));
    assert_eq!(chain.state().tip, good_tip, "back on the best valid chain");
    assert_eq!(chain.entry(&b2.hash()).unwrap().status, BlockStatus::Invalid);
    assert_eq!(chain.entry(&tail[1].hash()).unwrap().status, BlockStatus::Invalid);
    assert!(matches!(chain.accept_block(b2), Err(ChainError::KnownInvalid(_))));
    assert_utxo_matches_replay(&chain);
}

#[test]
fn commitment_is_path_independent() {
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    let base = a.blocks(14, 3);
    let mut side = a.fork(5);
    let side_blocks = side.blocks(4, 3);
    let main_blocks = a.blocks(6, 3);

    let d1 = tempfile::tempdir().unwrap();
    let direct = {
        let mut c = open(d1.path());
        import(&mut c, &base);
        import(&mut c, &main_blocks);
        c.commitment()
    };
    let d2 = tempfile::tempdir().unwrap();
    {
        let mut c = open(d2.path());
        import(&mut c, &base);
        import(&mut c, &side_blocks);
        assert_eq!(c.state().tip, side.tip());
    }
    // Restart in between, then reorg onto the main branch.
    let mut c = open(d2.path());
    import(&mut c, &main_blocks);
    assert_eq!(c.state().tip, a.tip());
    assert_eq!(c.commitment(), direct);
    assert_utxo_matches_replay(&c);
}

#[test]
fn a_database_of_another_chain_or_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let err = Chain::open(dir.path(), ChainSpec::devnet(), Arc::new(SigCache::new(10)), ChainConfig::default())
        .err()
        .unwrap();
    assert!(matches!(err, ChainError::Store(StoreError::GenesisMismatch { .. })), "{err}");
    {
        let cfs = ["headers", "blocks", "height", "utxo", "undo", "tx_index", "addr_index", "meta"];
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), cfs).unwrap();
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"schema", bincode::serde::encode_to_vec(99u32, bincode::config::standard()).unwrap()).unwrap();
    }
    let err = Chain::open(dir.path(), ChainSpec::regtest(), Arc::new(SigCache::new(10)), ChainConfig::default())
        .err()
        .unwrap();
    assert!(matches!(err, ChainError::Store(StoreError::SchemaMismatch { found: 99, .. })), "{err}");
}

#[test]
fn integrity_check_names_a_corrupted_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let mut b = ChainBuilder::new(ChainSpec::regtest());
    let blocks = b.blocks(8, 1);
    import(&mut chain, &blocks);
    assert!(chain.verify_integrity().unwrap().ok);
    let victim = blocks[4].hash();
    let mut bytes = chain.store().block_bytes(&victim).unwrap().unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    chain.store().corrupt_block_for_test(&victim, &bytes).unwrap();
    let report = chain.verify_integrity().unwrap();
    assert!(!report.ok);
    let err = report.error.unwrap();
    assert!(err.contains(&victim.to_hex()) && err.contains("height 5"), "{err}");
}

/// A block on `builder`'s tip whose coinbase claims far more than allowed:
/// a valid header and body shape, invalid only against the UTXO set.
fn overpaying_block(builder: &mut ChainBuilder) -> Block {
    let height = Height(builder.height().0 + 1);
    let cb = Transaction::coinbase(
        height,
        b"greedy".to_vec(),
        vec![TxOut { value: Amount::from_coins(10_000), address: builder.address() }],
    );
    builder.seal(vec![cb])
}

#[test]
fn an_unrequested_block_on_a_lighter_branch_is_neither_stored_nor_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(5, 0));
    let mut side = a.fork(7);
    import(&mut chain, &a.blocks(5, 0));
    let headers_before = chain.header_count();
    let low = side.next_block(0);
    let (r, u) = chain.accept_block_from(low.clone(), BlockSource::Unrequested);
    assert_eq!(r.unwrap(), BlockAccepted::LowWork);
    assert!(!u.changed());
    assert!(chain.store().block(&low.hash()).unwrap().is_none(), "no body on disk");
    assert!(chain.entry(&low.hash()).is_none(), "no header either");
    assert_eq!(chain.header_count(), headers_before);
    // Asked for (sync) or submitted by the operator, the same block is kept.
    let (r, _) = chain.accept_block_from(low.clone(), BlockSource::Requested);
    assert_eq!(r.unwrap(), BlockAccepted::SideBranch);
    assert!(chain.store().block(&low.hash()).unwrap().is_some());
    // An unrequested block that beats the tip is stored and connected.
    let mut ahead = a.clone();
    let next = ahead.next_block(0);
    assert_eq!(chain.accept_block_from(next, BlockSource::Unrequested).0.unwrap(), BlockAccepted::Connected);
    // A junk header cannot buy the check: bad proof of work is refused.
    let mut junk = side.next_block(0);
    junk.header.nonce ^= 1;
    while lode_core::validation::check_header(&junk.header, chain.spec()).is_ok() {
        junk.header.nonce += 1;
    }
    assert!(matches!(chain.accept_block_from(junk, BlockSource::Unrequested).0, Err(ChainError::Invalid { .. })));
}

#[test]
fn a_block_that_fails_to_connect_is_an_error_not_stored_as_valid() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(3, 0));
    let tip = chain.state().tip;
    let bad = overpaying_block(&mut a.clone());
    let (r, u) = chain.accept_block_from(bad.clone(), BlockSource::Unrequested);
    match r {
        Err(ChainError::Invalid { hash, source: lode_core::validation::BlockError::CoinbaseOverpays { .. } }) => {
            assert_eq!(hash, bad.hash())
        }
        other => panic!("expected an invalid block naming the rule, got {other:?}"),
    }
    assert!(!u.changed());
    assert_eq!(chain.state().tip, tip);
    assert_eq!(chain.entry(&bad.hash()).unwrap().status, BlockStatus::Invalid);
}

#[test]
fn an_orphan_whose_body_does_not_match_its_header_is_refused_and_the_honest_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    let blocks = a.blocks(3, 0);
    let honest = blocks[2].clone();
    let mut junk = honest.clone();
    // A different coinbase: no merkle mutation, just a body that is not
    // the one the header commits to.
    junk.transactions[0] = Transaction::coinbase(Height(3), b"junk".to_vec(), junk.transactions[0].outputs.clone());
    assert_eq!(junk.hash(), honest.hash(), "same header, different body");
    assert!(matches!(chain.accept_block(junk), Err(ChainError::Invalid { .. })));
    assert!(chain.orphans().is_empty(), "junk never enters the pool");
    let (r, _) = chain.accept_block(honest.clone()).unwrap();
    assert!(matches!(r, BlockAccepted::Orphan { .. }));
    import(&mut chain, &blocks[..2]);
    assert_eq!(chain.state().tip, honest.hash(), "the honest orphan connected");
}

#[test]
fn a_reorg_that_fails_part_way_returns_to_the_first_seen_tip() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(4, 0));
    let mut b = a.fork(3);
    let a56 = a.blocks(2, 0);
    import(&mut chain, &a56);
    let first_seen = chain.state().tip;
    // b: two valid blocks (equal work to a's), then an invalid third that
    // makes b look heavier: the reorg connects b1, b2 and fails at b3.
    let b12 = b.blocks(2, 0);
    import(&mut chain, &b12);
    assert_eq!(chain.state().tip, first_seen);
    let b3 = overpaying_block(&mut b);
    let (r, u) = chain.accept_block_from(b3, BlockSource::Requested);
    assert!(matches!(r, Err(ChainError::Invalid { .. })), "{r:?}");
    assert_eq!(chain.state().tip, first_seen, "equal work: back to the block seen first");
    assert_eq!(u.disconnected_count(), 4, "a's two, then b's two on the way back");
    // Whoever follows the chain (mempool, fee estimates) is told of a's
    // blocks back at their heights, not of b's, which are off it again.
    let connected: Vec<_> = u.connected().map(|c| (c.height(), c.block().hash())).collect();
    assert_eq!(connected, vec![(Height(5), a56[0].hash()), (Height(6), a56[1].hash())]);
    assert_eq!(u.connected_count(), 4, "b's two and a's two were connected");
    assert_utxo_matches_replay(&chain);
}

#[test]
fn start_up_connects_a_block_stored_but_not_connected_before_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    let blocks = a.blocks(6, 1);
    {
        let mut chain = open(dir.path());
        import(&mut chain, &blocks[..5]);
        // The state a crash leaves between storing the body and connecting
        // it: header and body written with status HaveData, tip unchanged.
        let last = &blocks[5];
        chain.accept_header(&last.header).unwrap();
        let mut record = chain.entry(&last.hash()).unwrap().record();
        record.status = BlockStatus::HaveData;
        let mut batch = chain.store().batch();
        batch.put_block(&last.hash(), last);
        batch.put_header(&last.hash(), &record);
        chain.store().write(batch, true).unwrap();
        assert_eq!(chain.state().height, Height(5));
    }
    let chain = open(dir.path());
    assert_eq!(chain.state().tip, blocks[5].hash(), "activated at open, not at the next block");
    assert_utxo_matches_replay(&chain);
}

fn headers_of(blocks: &[Block]) -> Vec<lode_core::BlockHeader> {
    blocks.iter().map(|b| b.header).collect()
}

#[test]
fn a_light_header_chain_far_below_the_tip_is_checked_but_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let mut light = ChainBuilder::new(ChainSpec::regtest());
    let mut near = light.clone();
    let mut main = light.fork(1);
    import(&mut chain, &main.blocks(400, 0));
    let before = chain.header_count();
    // A branch from genesis 100 blocks long: 300 below the tip, far more
    // than NEAR_TIP_BLOCKS.
    let far = headers_of(&light.blocks(100, 0));
    assert_eq!(chain.accept_header_chain(&far).unwrap(), HeaderChainOutcome::LowWork);
    assert_eq!(chain.header_count(), before, "nothing stored");
    assert!(chain.entry(&far[0].hash()).is_none());
    // Still checked: a bad header in a light chain is invalid, not ignored.
    let mut broken = far.clone();
    broken[50].bits = lode_core::pow::CompactTarget(0x1d00ffff);
    assert!(matches!(chain.accept_header_chain(&broken), Err(ChainError::Invalid { .. })));
    // A branch ending within NEAR_TIP_BLOCKS of the tip is stored.
    let close = headers_of(&near.blocks(400 - NEAR_TIP_BLOCKS as usize + 10, 0));
    assert_eq!(chain.accept_header_chain(&close).unwrap(), HeaderChainOutcome::Stored { new: close.len() });
    assert_eq!(chain.header_count(), before + close.len());
}

#[test]
fn headers_below_the_specs_minimum_chain_work_are_not_stored() {
    let mut spec = ChainSpec::regtest();
    let mut b = ChainBuilder::new(spec.clone());
    let headers = headers_of(&b.blocks(60, 0));
    let per_block = spec.pow_limit.to_target().unwrap().work();
    let mut min = Work::ZERO;
    for _ in 0..50 {
        min = min.saturating_add(&per_block);
    }
    spec.minimum_chain_work = min;
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::open(dir.path(), spec, Arc::new(SigCache::new(100)), ChainConfig::default()).unwrap();
    assert_eq!(chain.accept_header_chain(&headers[..40]).unwrap(), HeaderChainOutcome::LowWork);
    assert_eq!(chain.header_count(), 1, "only genesis");
    assert_eq!(chain.accept_header_chain(&headers).unwrap(), HeaderChainOutcome::Stored { new: 60 });
    assert_eq!(chain.best_header().height, Height(60));
}

#[test]
fn chain_tips_name_every_branch_and_how_far_it_was_validated() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(5, 0));
    let mut fork = a.fork(2);
    let mut bad = a.fork(3);
    let mut headers_only = a.fork(4);
    import(&mut chain, &a.blocks(3, 0));
    // A side branch stored but never connected: valid-headers.
    let f = fork.blocks(2, 0);
    import(&mut chain, &f);
    // A side branch whose block failed to connect when it could have won:
    let b = overpaying_block(&mut bad);
    let b_rest = bad.blocks(4, 0);
    import(&mut chain, std::slice::from_ref(&b));
    for blk in &b_rest {
        let _ = chain.accept_block(blk.clone());
    }
    // Headers without bodies.
    let h = headers_only.blocks(2, 0);
    chain.accept_header(&h[0].header).unwrap();
    chain.accept_header(&h[1].header).unwrap();
    let tips = chain.chain_tips();
    let find = |hash: Hash256| tips.iter().find(|t| t.hash == hash).cloned().unwrap();
    let active = find(chain.state().tip);
    assert_eq!((active.status, active.branch_len), (TipStatus::Active, 0));
    assert!(tips.windows(2).all(|w| w[0].height >= w[1].height), "highest first");
    let valid_fork = find(f[1].hash());
    assert_eq!((valid_fork.status, valid_fork.height, valid_fork.branch_len), (TipStatus::ValidHeaders, Height(7), 2));
    // b_rest[2] made the branch heaviest and found b invalid; b_rest[3],
    // a child of an invalid block, was refused and not stored.
    let invalid = find(b_rest[2].hash());
    assert_eq!((invalid.status, invalid.branch_len), (TipStatus::Invalid, 4));
    assert!(chain.entry(&b_rest[3].hash()).is_none());
    let ho = find(h[1].hash());
    assert_eq!((ho.status, ho.height, ho.branch_len), (TipStatus::HeadersOnly, Height(7), 2));
    assert_eq!(tips.len(), 4);
}

/// The transaction and address indexes of the active chain: every
/// transaction at its block, height and position, and in the history of
/// the (single) address the builder pays.
fn assert_indexes_match_active_chain(chain: &Chain, address: lode_core::Address) {
    let mut history = Vec::new();
    for h in 1..=chain.state().height.0 {
        let hash = chain.hash_at(Height(h)).unwrap();
        let block = chain.store().block(&hash).unwrap().unwrap();
        for (index, tx) in block.transactions.iter().enumerate() {
            let at = crate::store::TxLocation { block: hash, height: Height(h), index: index as u32 };
            assert_eq!(chain.store().tx_location(&tx.txid()).unwrap(), Some(at), "height {h} tx {index}");
            history.push((Height(h), tx.txid()));
        }
    }
    let mut stored = chain.store().address_history(&address).unwrap();
    stored.sort();
    history.sort();
    assert_eq!(stored, history);
}

#[test]
fn transaction_and_address_indexes_follow_the_active_chain_through_a_reorg() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(12, 2));
    let mut b = a.fork(1);
    let a_tail = a.blocks(2, 2);
    import(&mut chain, &a_tail);
    assert_indexes_match_active_chain(&chain, a.address());
    // b overtakes with coinbase-only blocks: a's last two blocks and their
    // spends leave both indexes.
    import(&mut chain, &b.blocks(3, 0));
    assert_eq!(chain.state().tip, b.tip());
    assert_indexes_match_active_chain(&chain, b.address());
    for tx in a_tail.iter().flat_map(|blk| &blk.transactions) {
        assert_eq!(chain.store().tx_location(&tx.txid()).unwrap(), None);
    }
}

#[test]
fn equal_work_gossip_is_stored_a_known_invalid_header_stays_refused_and_mtp_is_the_median() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    let mut blocks = a.blocks(14, 0);
    let mut side = a.fork(1);
    blocks.push(a.next_block(0));
    import(&mut chain, &blocks);
    // The tip's median time past: the middle of the last 11 timestamps.
    let mut times: Vec<u64> = blocks[4..].iter().map(|b| b.header.time).collect();
    times.sort_unstable();
    assert_eq!(chain.median_time_past(), times[5]);
    // An unrequested sibling with exactly the tip's work may still win a
    // tie later: stored, not dropped as low work.
    let sibling = side.next_block(0);
    let (r, _) = chain.accept_block_from(sibling.clone(), BlockSource::Unrequested);
    assert_eq!(r.unwrap(), BlockAccepted::SideBranch);
    assert!(chain.store().block(&sibling.hash()).unwrap().is_some());
    // A header found invalid is refused when offered again.
    let bad = overpaying_block(&mut a);
    assert!(chain.accept_block(bad.clone()).is_err());
    assert!(matches!(chain.accept_header(&bad.header), Err(ChainError::KnownInvalid(h)) if h == bad.hash()));
}
