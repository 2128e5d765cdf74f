//! Tests written to kill the mutants `cargo mutants` left alive in the
//! orphan pool, `getchaintips`, the integrity report and [`TipUpdate`]
//! (docs/testing.md, "Mutation testing"); the mutant each kills is named
//! above it. The chain's own rules are in `mutant_tests.rs`.

use super::mutant_tests::{import, open};
use super::*;
use crate::testkit::ChainBuilder;
use lode_core::tx::TxOut;
use lode_core::{Amount, Block, Transaction};

/// A body-less block on `prev` for the orphan pool (which checks nothing).
fn orphan(prev: u8, nonce: u64) -> Block {
    let header = BlockHeader {
        version: 1,
        prev_hash: Hash256([prev; 32]),
        merkle_root: Hash256::ZERO,
        time: 0,
        bits: lode_core::pow::CompactTarget(0x207fffff),
        nonce,
    };
    Block { header, transactions: vec![] }
}

// orphans.rs `add`: `size > self.max_bytes` → `>=` and `==`.
#[test]
fn the_orphan_pool_takes_a_block_of_exactly_its_byte_limit_and_refuses_a_larger_one_without_evicting() {
    let size = orphan(1, 0).encoded_size();
    let mut pool = OrphanPool::new(10, size);
    pool.add(orphan(1, 0));
    assert!(pool.contains(&orphan(1, 0).hash()), "exactly the limit fits");
    let mut big = orphan(1, 1);
    big.transactions.push(Transaction::coinbase(Height(1), vec![0; 100], vec![]));
    pool.add(big.clone());
    assert!(!pool.contains(&big.hash()), "larger than the whole pool: refused");
    assert!(pool.contains(&orphan(1, 0).hash()), "and nothing was evicted for it");
    assert_eq!((pool.len(), pool.bytes()), (1, size));
    assert!(!pool.is_empty());
}

// orphans.rs `take_children`: `self.bytes -= s` → `+=` and `/=`, and the
// `order.retain` test `!=` → `==` (the rest would lose their eviction
// order); `bytes` → 0 and 1; `is_empty` → `true`.
#[test]
fn taking_an_orphans_children_frees_their_bytes_and_keeps_the_rest_oldest_first() {
    let size = orphan(1, 0).encoded_size();
    let mut pool = OrphanPool::new(3, 100 * size);
    pool.add(orphan(7, 1));
    pool.add(orphan(8, 2));
    pool.add(orphan(7, 3));
    assert_eq!(pool.bytes(), 3 * size);
    assert_eq!(pool.take_children(&Hash256([7; 32])).len(), 2);
    assert_eq!((pool.len(), pool.bytes()), (1, size));
    // The survivor is now the oldest: the first to go when the pool overflows.
    for n in 4..7 {
        pool.add(orphan(9, n));
    }
    assert_eq!(pool.len(), 3);
    assert!(!pool.contains(&orphan(8, 2).hash()), "the oldest is evicted first");
    assert!(pool.contains(&orphan(9, 4).hash()));
    assert_eq!(pool.bytes(), 3 * size);
    assert_eq!(pool.take_children(&Hash256([9; 32])).len(), 3);
    assert!(pool.is_empty());
    assert_eq!(pool.bytes(), 0);
}

// tips.rs `TipStatus::name` → `""` and `"xyzzy"`.
#[test]
fn tip_statuses_have_the_names_getchaintips_uses() {
    let names: Vec<&str> =
        [TipStatus::Active, TipStatus::ValidFork, TipStatus::ValidHeaders, TipStatus::HeadersOnly, TipStatus::Invalid]
            .iter()
            .map(|s| s.name())
            .collect();
    assert_eq!(names, ["active", "valid-fork", "valid-headers", "headers-only", "invalid"]);
}

// tips.rs `chain_tips`: delete the `BlockStatus::Valid` arm (a branch
// that was active once would show as valid-headers).
#[test]
fn a_branch_that_was_active_and_lost_a_reorg_is_a_valid_fork() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(3, 0));
    let mut b = a.fork(1);
    let old = a.blocks(2, 0);
    import(&mut chain, &old);
    import(&mut chain, &b.blocks(3, 0));
    assert_eq!(chain.state().tip, b.tip());
    let tips = chain.chain_tips();
    let fork = tips.iter().find(|t| t.hash == old[1].hash()).expect("the old tip is a branch tip");
    assert_eq!((fork.status, fork.height, fork.branch_len), (TipStatus::ValidFork, Height(5), 2));
}

// verify.rs `verify_integrity`: `blocks_checked += 1` and `utxos_checked
// += 1` → `*=`.
#[test]
fn the_integrity_report_counts_every_active_block_and_every_coin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(14, 2));
    let report = chain.verify_integrity().expect("readable");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.blocks_checked, 15, "genesis and 14 blocks");
    assert_eq!(report.utxos_checked, chain.state().utxo_count);
    assert_eq!(report.utxos_checked as usize, chain.store().all_coins().expect("read").len());
    assert!(report.utxos_checked > 14, "the spends split coins");
}

// verify.rs `verify_integrity`: `coins.len() != utxo_count || total !=
// total_amount` → `&&` (a wrong coin count alone goes unreported).
#[test]
fn the_integrity_check_reports_a_stored_coin_count_that_disagrees_with_the_utxo_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut chain = open(dir.path());
        let mut a = ChainBuilder::new(ChainSpec::regtest());
        import(&mut chain, &a.blocks(5, 0));
        let mut state = *chain.state();
        state.utxo_count += 1;
        let mut batch = chain.store().batch();
        batch.put_chain_state(&state);
        chain.store().write(batch, true).expect("write");
    }
    let chain = open(dir.path());
    let report = chain.verify_integrity().expect("readable");
    assert!(!report.ok);
    let error = report.error.expect("an error is named");
    assert!(error.contains("stored summary says 6"), "{error}");
}

/// A block of a coinbase with `outputs` outputs and `extra` bytes of
/// coinbase data, and one small transaction to hand back (only its size
/// and that transaction matter to [`TipUpdate`]).
fn sized_block(nonce: u64, outputs: usize, extra: usize) -> Arc<Block> {
    let out = TxOut { value: Amount::from_units(1), address: lode_core::Address([7; 20]) };
    let coinbase = Transaction::coinbase(Height(1), vec![0; extra], vec![out; outputs]);
    let readmit = Transaction::coinbase(Height(2), vec![], vec![out]);
    let mut block = orphan(0, nonce);
    block.transactions = vec![coinbase, readmit];
    Arc::new(block)
}

/// A block of exactly `size` encoded bytes.
fn block_of_size(nonce: u64, size: usize) -> Arc<Block> {
    let per_output = sized_block(nonce, 2, 0).encoded_size() - sized_block(nonce, 1, 0).encoded_size();
    let outputs = (size - sized_block(nonce, 0, 0).encoded_size()) / per_output;
    let base = sized_block(nonce, outputs, 0).encoded_size();
    // One byte of coinbase data is one byte of block while its length
    // prefix stays one byte (below 251).
    let b = sized_block(nonce, outputs, size - base);
    assert_eq!(b.encoded_size(), size);
    b
}

// tip_update.rs `push_disconnected`: `disconnected_bytes > MAX_READMIT_BYTES`
// → `>=` (exactly the limit is kept whole).
#[test]
fn disconnected_blocks_of_exactly_the_readmission_limit_are_all_kept() {
    let mut u = TipUpdate::default();
    let first = sized_block(1, 1000, 0);
    let rest = block_of_size(2, MAX_READMIT_BYTES - first.encoded_size());
    u.push_disconnected(first, Height(10));
    u.push_disconnected(rest, Height(9));
    assert!(!u.truncated(), "at the limit, not past it");
    assert_eq!(u.disconnected_txs().len(), 2, "both blocks' transactions are kept");
    u.push_disconnected(sized_block(3, 0, 0), Height(8));
    assert!(u.truncated(), "past the limit the block disconnected first is dropped");
}

// tip_update.rs `merge`: `disconnected_count += dropped` and
// `connected_count += dropped` → `-=`, and `truncated |= ...` → `&=`: an
// update that dropped blocks keeps its counts and its flag when merged.
#[test]
fn merging_a_truncated_update_keeps_its_full_counts_and_the_truncated_flag() {
    let mut long = TipUpdate::default();
    let one = sized_block(0, 20_000, 0).encoded_size();
    let disconnected = MAX_READMIT_BYTES / one + 3;
    for n in 0..disconnected as u64 {
        long.push_disconnected(sized_block(n, 20_000, 0), Height(1_000 - n as u32));
    }
    let connected = MAX_UPDATE_CONNECTED + 5;
    for n in 0..connected as u64 {
        long.push_connected(ConnectedBlock::hashing(sized_block(n, 1, 0), Height(n as u32 + 1)));
    }
    assert!(long.truncated());
    let mut merged = TipUpdate::default();
    merged.merge(long);
    assert_eq!(merged.disconnected_count(), disconnected);
    assert_eq!(merged.connected_count(), connected);
    assert_eq!(merged.connected().count(), MAX_UPDATE_CONNECTED);
    assert!(merged.truncated(), "what the merged update dropped stays dropped");
}

// tip_update.rs `changed`: `disconnected_count > 0` → `<` (an update that
// only disconnected, as when the connect after a disconnect failed, would
// say the tip did not move).
#[test]
fn an_update_that_only_disconnected_blocks_says_the_tip_moved() {
    let mut u = TipUpdate::default();
    assert!(!u.changed());
    u.push_disconnected(sized_block(1, 1, 0), Height(1));
    assert!(u.changed() && u.reorganised());
    assert_eq!((u.connected_count(), u.disconnected_count()), (0, 1));
}

// tip_update.rs `push_disconnected`: `disconnected_bytes -= s` → `/=` (the
// byte count collapses after the first drop, so later blocks are kept past
// the limit).
#[test]
fn a_reorg_far_past_the_readmission_limit_keeps_no_more_blocks_than_fit() {
    // Four of these fit in the limit, five do not.
    let block = block_of_size(1, MAX_READMIT_BYTES * 2 / 9);
    let mut u = TipUpdate::default();
    for _ in 0..10 {
        u.push_disconnected(Arc::clone(&block), Height(100));
    }
    assert_eq!(u.disconnected_count(), 10);
    assert_eq!(u.disconnected_txs().len(), 4, "one transaction to re-admit per kept block");
    assert!(u.truncated());
}

// A run's orphan child set off a reorg past the re-admission limit: the
// merged update dropped the disconnected blocks nearest the old tip, which
// were the ones the run had connected, and matching them one by one left
// them listed as connected (the fee estimator then counted them).
#[test]
fn a_merged_reorg_past_the_readmission_limit_forgets_every_block_it_took_off_the_chain() {
    let mut run = TipUpdate::default();
    run.push_connected(ConnectedBlock::hashing(sized_block(5, 1, 0), Height(5)));
    run.push_connected(ConnectedBlock::hashing(sized_block(6, 1, 0), Height(6)));
    let mut reorg = TipUpdate::default();
    // Two blocks that do not fit the limit together: the first (the old
    // tip, height 6) is dropped.
    reorg.push_disconnected(block_of_size(6, MAX_READMIT_BYTES * 2 / 3), Height(6));
    reorg.push_disconnected(block_of_size(5, MAX_READMIT_BYTES * 2 / 3), Height(5));
    assert!(reorg.truncated());
    for h in 5..8 {
        reorg.push_connected(ConnectedBlock::hashing(sized_block(100 + u64::from(h), 1, 0), Height(h)));
    }
    run.merge(reorg);
    let connected: Vec<_> = run.connected().map(|c| (c.height(), c.block().header.nonce)).collect();
    assert_eq!(connected, vec![(Height(5), 105), (Height(6), 106), (Height(7), 107)]);
    assert_eq!((run.connected_count(), run.disconnected_count()), (5, 2));
}
