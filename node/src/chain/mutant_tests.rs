//! Tests written to kill the mutants `cargo mutants` left alive in
//! `node/src/chain` (docs/testing.md, "Mutation testing"): each pins one
//! rule that the other chain tests let be removed or weakened unnoticed.
//! The mutant each kills is named above it.

use super::*;
use crate::store::StoreError;
use crate::testkit::ChainBuilder;
use lode_core::tx::TxOut;
use lode_core::{Amount, Block, Transaction};

pub(super) fn open(dir: &Path) -> Chain {
    Chain::open(dir, ChainSpec::regtest(), Arc::new(SigCache::new(10_000)), ChainConfig::default())
        .expect("open the chain")
}

pub(super) fn import(chain: &mut Chain, blocks: &[Block]) {
    for b in blocks {
        chain.accept_block(b.clone()).expect("a valid block is accepted");
    }
}

fn seq_of(chain: &Chain, hash: &Hash256) -> u64 {
    chain.entry(hash).expect("known header").seq
}

fn status_of(chain: &Chain, hash: &Hash256) -> BlockStatus {
    chain.entry(hash).expect("known header").status
}

// mod.rs `open`: `r.seq + 1` → `r.seq * 1`, and accept.rs
// `accept_header_unwritten`: `self.next_seq += 1` → `*= 1`.
#[test]
fn arrival_numbers_increase_with_each_header_and_continue_above_the_stored_ones_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    let base = a.blocks(3, 0);
    let mut b = a.fork(1);
    let side = b.blocks(3, 0);
    let max_before = {
        let mut chain = open(dir.path());
        import(&mut chain, &base);
        assert!(chain.accept_header(&side[0].header).expect("valid header"));
        assert!(chain.accept_header(&side[1].header).expect("valid header"));
        assert!(
            seq_of(&chain, &side[1].hash()) > seq_of(&chain, &side[0].hash()),
            "a later header gets a later arrival number"
        );
        let mut known: Vec<Hash256> = base.iter().chain(&side[..2]).map(Block::hash).collect();
        known.push(chain.spec().genesis_hash());
        known.iter().map(|h| seq_of(&chain, h)).max().expect("some headers")
    };
    let mut chain = open(dir.path());
    assert!(chain.accept_header(&side[2].header).expect("valid header"));
    assert!(
        seq_of(&chain, &side[2].hash()) > max_before,
        "the first header after a restart takes an arrival number no stored header has"
    );
}

/// Two equal-work siblings, headers known first, bodies offered in
/// `order`: returns the tip afterwards.
fn tip_after_bodies_in_order(base: &[Block], siblings: [&Block; 2], order: [usize; 2]) -> Hash256 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    import(&mut chain, base);
    // Both headers first: the body's arrival number, not the header's,
    // decides the tie.
    chain.accept_header(&siblings[1].header).expect("valid header");
    chain.accept_header(&siblings[0].header).expect("valid header");
    for i in order {
        chain.accept_block(siblings[i].clone()).expect("valid block");
    }
    chain.state().tip
}

// accept.rs `store_block`: `self.next_seq += 1` → `*= 1` (two bodies whose
// headers are known share an arrival number; the hash breaks the tie), and
// index.rs `set_seq` → `()` and its `delete !` (a body keeps its header's
// arrival number).
#[test]
fn of_two_equal_work_siblings_the_body_received_first_stays_the_tip_in_either_order() {
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    let base = a.blocks(3, 0);
    let mut b = a.fork(1);
    let a1 = a.next_block(0);
    let b1 = b.next_block(0);
    assert_eq!(tip_after_bodies_in_order(&base, [&a1, &b1], [0, 1]), a1.hash());
    assert_eq!(tip_after_bodies_in_order(&base, [&a1, &b1], [1, 0]), b1.hash());
}

// accept.rs `accept_header_unwritten`: `work > best_work` → `>=`.
#[test]
fn an_equal_work_header_received_later_does_not_replace_the_best_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(3, 0));
    let mut b = a.fork(1);
    let a1 = a.next_block(0);
    let b1 = b.next_block(0);
    chain.accept_header(&a1.header).expect("valid header");
    assert_eq!(chain.best_header().header.hash(), a1.hash(), "more work than the tip: the best header");
    chain.accept_header(&b1.header).expect("valid header");
    assert_eq!(chain.best_header().header.hash(), a1.hash(), "equal work: the first seen stays best");
}

// accept.rs `store_block`: `!mutated && root == block.header.merkle_root`
// → `||`, `==` → `!=` (a mismatched body condemns the header), and
// `delete !` (a merkle-mutated copy of the honest body condemns it).
#[test]
fn a_body_that_does_not_match_its_known_header_is_refused_without_condemning_the_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(12, 2));
    let honest = a.next_block(2);
    assert_eq!(honest.transactions.len(), 3, "an odd count, so the last transaction can be doubled");
    chain.accept_header(&honest.header).expect("valid header");
    // A different coinbase: the root no longer matches the header.
    let mut mismatched = honest.clone();
    mismatched.transactions[0] =
        Transaction::coinbase(Height(13), b"junk".to_vec(), honest.transactions[0].outputs.clone());
    assert_ne!(mismatched.compute_merkle_root().0, honest.header.merkle_root);
    assert!(matches!(chain.accept_block(mismatched), Err(ChainError::Invalid { .. })));
    assert_eq!(status_of(&chain, &honest.hash()), BlockStatus::HeaderOnly, "not condemned by a junk body");
    // CVE-2012-2459: the last transaction doubled keeps the root but is
    // flagged as mutated.
    let mut doubled = honest.clone();
    doubled.transactions.push(honest.transactions[2].clone());
    assert_eq!(doubled.compute_merkle_root(), (honest.header.merkle_root, true));
    assert!(matches!(chain.accept_block(doubled), Err(ChainError::Invalid { source: BlockError::MerkleMutation, .. })));
    assert_eq!(status_of(&chain, &honest.hash()), BlockStatus::HeaderOnly, "not condemned by a mutated body");
    let (r, _) = chain.accept_block(honest.clone()).expect("the honest body is accepted");
    assert_eq!(r, BlockAccepted::Connected);
    assert_eq!(chain.state().tip, honest.hash());
}

// accept.rs `store_block`: `!mutated && root == ...` → `delete !` for a
// body the header does commit to.
#[test]
fn a_body_matching_its_header_that_breaks_a_block_rule_marks_the_header_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(3, 0));
    let tip = chain.state().tip;
    // Two coinbases, both committed to by the header: ExtraCoinbase.
    let address = a.address();
    let coinbase = |data: &[u8]| {
        Transaction::coinbase(Height(4), data.to_vec(), vec![TxOut { value: Amount::from_coins(1), address }])
    };
    let bad = a.seal(vec![coinbase(b"first"), coinbase(b"second")]);
    assert!(matches!(
        chain.accept_block(bad.clone()),
        Err(ChainError::Invalid { source: BlockError::ExtraCoinbase(1), .. })
    ));
    assert_eq!(status_of(&chain, &bad.hash()), BlockStatus::Invalid);
    assert!(matches!(chain.accept_header(&bad.header), Err(ChainError::KnownInvalid(_))));
    assert_eq!(chain.state().tip, tip);
}

// accept.rs `stored_outcome`: the `Stored` match guard → `false`; index.rs
// `ancestor` → `None`, → `Some(Default::default())`, `e.height == height`
// → `!=` and `e.height < height` → `>`.
#[test]
fn a_body_on_the_best_header_chain_whose_parent_body_is_missing_is_reported_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(3, 0));
    let next = a.blocks(3, 0);
    for blk in &next {
        chain.accept_header(&blk.header).expect("valid header");
    }
    let (r, _) = chain.accept_block(next[1].clone()).expect("valid block");
    assert_eq!(r, BlockAccepted::Stored, "on the best header chain, waiting for its parent's body");
    let (r, _) = chain.accept_block(next[2].clone()).expect("valid block");
    assert_eq!(r, BlockAccepted::Stored);
    let (r, _) = chain.accept_block(next[0].clone()).expect("valid block");
    assert_eq!(r, BlockAccepted::Connected);
    assert_eq!(chain.state().tip, next[2].hash());
}

// mod.rs `open`: `active.first() != Some(&genesis_hash) || active.len() !=
// ...` → `&&`.
#[test]
fn open_refuses_a_chain_state_whose_height_is_not_its_tips_height() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut chain = open(dir.path());
        let mut a = ChainBuilder::new(ChainSpec::regtest());
        import(&mut chain, &a.blocks(5, 0));
        let mut state = *chain.state();
        state.height = Height(7);
        let mut batch = chain.store().batch();
        batch.put_chain_state(&state);
        chain.store().write(batch, true).expect("write");
    }
    let err = Chain::open(dir.path(), ChainSpec::regtest(), Arc::new(SigCache::new(100)), ChainConfig::default())
        .err()
        .expect("a chain state that contradicts its tip is refused");
    assert!(
        matches!(&err, ChainError::Store(StoreError::Corrupt { reason, .. }) if reason.contains("genesis")),
        "{err}"
    );
}

// index.rs `best_header` → `None` and → `Some(Default::default())`, and
// its filter `!=` → `==`: the best header is recomputed from the stored
// headers at open (the heaviest, here a header without body).
#[test]
fn a_side_branch_body_and_headers_without_bodies_survive_a_restart_and_the_heaviest_is_the_best_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    let base = a.blocks(3, 0);
    let mut b = a.fork(1);
    let main = a.blocks(2, 0);
    let side = b.blocks(3, 0);
    {
        let mut chain = open(dir.path());
        import(&mut chain, &base);
        import(&mut chain, &main);
        let (r, _) = chain.accept_block(side[0].clone()).expect("valid block");
        assert_eq!(r, BlockAccepted::SideBranch);
        chain.accept_header(&side[1].header).expect("valid header");
        chain.accept_header(&side[2].header).expect("valid header");
    }
    let chain = open(dir.path());
    assert_eq!(chain.state().tip, main[1].hash());
    assert_eq!(status_of(&chain, &side[0].hash()), BlockStatus::HaveData);
    assert_eq!(chain.store().block(&side[0].hash()).expect("read"), Some(side[0].clone()));
    assert_eq!(status_of(&chain, &side[2].hash()), BlockStatus::HeaderOnly);
    assert_eq!(chain.header_count(), 1 + 3 + 2 + 3);
    assert_eq!(chain.best_header().header.hash(), side[2].hash(), "one block more work than the tip");
}

/// A header on `prev` with this time, mined at regtest's fixed difficulty
/// (header chains need no bodies).
fn mine_header(spec: &ChainSpec, prev: Hash256, time: u64) -> BlockHeader {
    let mut header =
        BlockHeader { version: 1, prev_hash: prev, merkle_root: Hash256::ZERO, time, bits: spec.pow_limit, nonce: 0 };
    while lode_core::validation::check_header(&header, spec).is_err() {
        header.nonce += 1;
    }
    header
}

// headers.rs `check_header_chain`: the `is_temporary()` guard → `false`.
#[test]
fn a_header_chain_ending_too_far_in_the_future_stores_the_rest_and_defers_that_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let spec = chain.spec().clone();
    let mut a = ChainBuilder::new(spec.clone());
    let mut headers: Vec<BlockHeader> = a.blocks(5, 0).iter().map(|b| b.header).collect();
    let last = headers.pop().expect("five headers");
    let future = mine_header(&spec, last.prev_hash, unix_now() + spec.max_future_block_secs + 3600);
    headers.push(future);
    assert_eq!(chain.accept_header_chain(&headers).expect("valid so far"), HeaderChainOutcome::Stored { new: 4 });
    assert!(chain.entry(&future.hash()).is_none(), "the future header waits, not stored");
    assert!(matches!(chain.accept_header(&future), Err(ChainError::Deferred { .. })), "and is not invalid");
    assert_eq!(chain.best_header().height, Height(4));
}

// headers.rs `accept_header_chain`: the `e.status == BlockStatus::Invalid`
// guard → `true` (every known header refused), → `false` and `==` → `!=`
// (a known invalid header skipped as known).
#[test]
fn a_header_chain_skips_known_valid_headers_and_is_refused_at_a_known_invalid_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    let base = a.blocks(3, 0);
    import(&mut chain, &base);
    let mut v = a.fork(2);
    let overlapping: Vec<BlockHeader> = base[1..].iter().chain(&v.blocks(2, 0)).map(|b| b.header).collect();
    assert_eq!(chain.accept_header_chain(&overlapping).expect("valid"), HeaderChainOutcome::Stored { new: 2 });
    let address = a.address();
    let coinbase = |data: &[u8]| {
        Transaction::coinbase(Height(4), data.to_vec(), vec![TxOut { value: Amount::from_coins(1), address }])
    };
    let bad = a.seal(vec![coinbase(b"first"), coinbase(b"second")]);
    assert!(chain.accept_block(bad.clone()).is_err());
    let after: Vec<BlockHeader> = a.blocks(2, 0).iter().map(|b| b.header).collect();
    let headers = [vec![bad.header], after].concat();
    assert!(
        matches!(chain.accept_header_chain(&headers), Err(ChainError::KnownInvalid(h)) if h == bad.hash()),
        "a known header is skipped only if it is not invalid"
    );
    assert!(chain.entry(&headers[1].hash()).is_none());
}

// headers.rs `accept_header_chain`: `work < self.anti_dos_threshold()` →
// `<=` (a chain with exactly the threshold's work is stored).
#[test]
fn a_header_chain_with_exactly_the_minimum_chain_work_is_stored() {
    let mut spec = ChainSpec::regtest();
    let mut b = ChainBuilder::new(spec.clone());
    let headers: Vec<BlockHeader> = b.blocks(50, 0).iter().map(|b| b.header).collect();
    let per_block = spec.pow_limit.to_target().expect("valid limit").work();
    // Genesis counts: the chain ending at height 49 carries 50 blocks' work.
    let mut min = Work::ZERO;
    for _ in 0..50 {
        min = min.saturating_add(&per_block);
    }
    spec.minimum_chain_work = min;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = Chain::open(dir.path(), spec, Arc::new(SigCache::new(100)), ChainConfig::default()).expect("open");
    assert_eq!(chain.accept_header_chain(&headers[..48]).expect("valid"), HeaderChainOutcome::LowWork);
    assert_eq!(chain.accept_header_chain(&headers[..49]).expect("valid"), HeaderChainOutcome::Stored { new: 49 });
    assert_eq!(chain.best_header().work, min);
}

// headers.rs `check_header_chain`: `2 * window` → `2 + window` in the
// sample buffer's trim (it would keep too few timestamps for the median
// of eleven).
#[test]
fn a_header_chain_checks_each_time_against_the_median_of_the_last_eleven_however_long_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let spec = chain.spec().clone();
    let mut a = ChainBuilder::new(spec.clone());
    let base = a.blocks(12, 0);
    import(&mut chain, &base);
    let mut headers = Vec::new();
    let mut prev = a.tip();
    let mut times: Vec<u64> = base.iter().map(|b| b.header.time).collect();
    for _ in 0..3 {
        let h = mine_header(&spec, prev, times.last().copied().expect("times") + 100);
        times.push(h.time);
        prev = h.hash();
        headers.push(h);
    }
    // Just above the median of the last eleven, below that of the last three.
    let mut last11 = times[times.len() - 11..].to_vec();
    last11.sort_unstable();
    let time = last11[5] + 1;
    assert!(time < times[times.len() - 2]);
    let h = mine_header(&spec, prev, time);
    headers.push(h);
    assert_eq!(chain.accept_header_chain(&headers).expect("valid"), HeaderChainOutcome::Stored { new: 4 });
    assert_eq!(chain.best_header().header.hash(), h.hash());
}

// mod.rs `locator` → `vec![]` and `vec![Default::default()]`, and its
// mutants of the loop bound `height > 0`, the doubling after ten entries
// (`>=`, `*=`) and the step down (`-=`; `*=` → `/=` and `-=` → `+=` loop
// forever: caught as timeouts).
#[test]
fn the_locator_lists_ten_heights_one_apart_then_doubling_steps_then_genesis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    let blocks = a.blocks(30, 0);
    let at = |h: u32| blocks[h as usize - 1].hash();
    let genesis = chain.spec().genesis_hash();
    import(&mut chain, &blocks[..11]);
    // Height 11: 11 down to 2, then the step of 2 lands on 0, which only
    // genesis (pushed once) stands for.
    let mut expect: Vec<Hash256> = (2..=11).rev().map(at).collect();
    expect.push(genesis);
    assert_eq!(chain.locator(), expect);
    import(&mut chain, &blocks[11..]);
    let mut expect: Vec<Hash256> = (21..=30).rev().map(at).collect();
    expect.extend([at(19), at(15), at(7), genesis]);
    assert_eq!(chain.locator(), expect);
}

// mod.rs `headers_after` → `vec![]`, and `e.height.0 as usize + 1` → `- 1`
// and `* 1`.
#[test]
fn headers_after_starts_right_after_the_first_active_locator_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    let mut side = a.fork(1);
    let blocks = a.blocks(10, 0);
    import(&mut chain, &blocks);
    let side_block = side.next_block(0);
    chain.accept_block(side_block.clone()).expect("valid block");
    let headers = chain.headers_after(&[side_block.hash(), blocks[4].hash()], 3);
    assert_eq!(headers, vec![blocks[5].header, blocks[6].header, blocks[7].header], "heights 6 to 8");
    let headers = chain.headers_after(&[Hash256::ZERO], 2);
    assert_eq!(headers, vec![blocks[0].header, blocks[1].header], "nothing known: from height 1");
}

// mod.rs `commitment` → `Default::default()`.
#[test]
fn the_reported_utxo_commitment_is_the_stored_one_and_changes_with_each_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    let mut seen = vec![chain.commitment()];
    for blk in a.blocks(3, 0) {
        import(&mut chain, &[blk]);
        assert_eq!(chain.commitment().0, chain.state().commitment);
        assert!(!seen.contains(&chain.commitment()), "a new coinbase changes the commitment");
        seen.push(chain.commitment());
    }
}

// headers.rs `check_header_chain`: `i > 0 && h.prev_hash != ...` → `i < 0`
// (the links between the offered headers are never checked).
#[test]
fn a_header_chain_with_a_gap_is_refused_before_any_of_it_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    let headers: Vec<BlockHeader> = a.blocks(3, 0).iter().map(|b| b.header).collect();
    let gap = [headers[0], headers[2]];
    assert!(matches!(chain.accept_header_chain(&gap), Err(ChainError::UnknownParent(p)) if p == headers[1].hash()));
    assert!(chain.entry(&headers[0].hash()).is_none(), "checked as a whole before anything is stored");
    assert_eq!(chain.header_count(), 1);
}

// headers.rs `check_header_chain`: the `is_temporary()` guard → `true` (a
// header that breaks a context rule would end the chain quietly instead
// of condemning it).
#[test]
fn a_header_chain_with_a_time_at_the_median_time_past_is_invalid_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let spec = chain.spec().clone();
    let mut a = ChainBuilder::new(spec.clone());
    let base = a.blocks(12, 0);
    import(&mut chain, &base);
    let mut headers: Vec<BlockHeader> = a.blocks(2, 0).iter().map(|b| b.header).collect();
    // The last eleven before it: base[3..12] and the two new headers.
    let mut last11: Vec<u64> = base[3..].iter().map(|b| b.header.time).chain(headers.iter().map(|h| h.time)).collect();
    last11.sort_unstable();
    let stale = mine_header(&spec, headers[1].hash(), last11[5]);
    headers.push(stale);
    assert!(matches!(
        chain.accept_header_chain(&headers),
        Err(ChainError::Invalid { source: BlockError::TimeTooOld { .. }, hash }) if hash == stale.hash()
    ));
    assert!(chain.entry(&headers[0].hash()).is_none());
    assert_eq!(chain.state().height, Height(12));
}

fn table_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read the data directory")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sst")))
        .count()
}

// mod.rs `flush` → `Ok(())`: a clean shutdown moves what is only in the
// write-ahead log and the memtables into table files.
#[test]
fn flush_writes_the_memtables_to_table_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(3, 1));
    let before = table_files(dir.path());
    chain.flush().expect("flush");
    assert!(table_files(dir.path()) > before, "{before} table files before the flush, no more after");
}

// index.rs `mark_data`: `!e.has_data() || e.chain_data` → `&&` (a child
// known only by its header would become a candidate tip when its parent's
// body arrives).
#[test]
fn a_header_without_body_above_a_body_that_arrives_stays_headers_only_and_is_not_connected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    import(&mut chain, &a.blocks(2, 0));
    let next = a.blocks(2, 0);
    chain.accept_header(&next[0].header).expect("valid header");
    chain.accept_header(&next[1].header).expect("valid header");
    let (r, _) = chain.accept_block(next[0].clone()).expect("the parent's body connects");
    assert_eq!(r, BlockAccepted::Connected);
    assert_eq!(chain.state().tip, next[0].hash());
    assert_eq!(status_of(&chain, &next[1].hash()), BlockStatus::HeaderOnly);
    assert!(!chain.entry(&next[1].hash()).expect("known").chain_data);
    assert_eq!(chain.missing_blocks(10), vec![(next[1].hash(), Height(4))]);
}

// prune.rs `is_pruning` → `true` (and → `false`).
#[test]
fn only_a_chain_opened_with_prune_blocks_says_it_is_pruning() {
    let archive_dir = tempfile::tempdir().expect("tempdir");
    assert!(!open(archive_dir.path()).is_pruning());
    let pruned_dir = tempfile::tempdir().expect("tempdir");
    let config = ChainConfig { prune_blocks: Some(MIN_PRUNE_BLOCKS), ..ChainConfig::default() };
    let chain = Chain::open(pruned_dir.path(), ChainSpec::regtest(), Arc::new(SigCache::new(100)), config)
        .expect("open pruned");
    assert!(chain.is_pruning(), "configured to prune, though nothing is pruned yet");
    assert_eq!(chain.prune_height(), Some(Height::GENESIS));
}

// prune.rs `catch_up_pruning`: `end == target` → `!=` (the start-up
// catch-up would not sweep dead side branches below the new prune height).
#[test]
fn an_archive_reopened_with_pruning_also_deletes_the_bodies_of_side_branches_below_the_prune_height() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = ChainBuilder::new(ChainSpec::regtest());
    let shared = a.blocks(10, 0);
    let mut side = a.fork(1);
    let side_blocks = side.blocks(2, 0);
    let main = a.blocks(390, 0);
    {
        let mut chain = open(dir.path());
        import(&mut chain, &shared);
        import(&mut chain, &side_blocks);
        import(&mut chain, &main);
        assert!(chain.store().block(&side_blocks[1].hash()).expect("read").is_some());
    }
    let config = ChainConfig { prune_blocks: Some(MIN_PRUNE_BLOCKS), ..ChainConfig::default() };
    let chain =
        Chain::open(dir.path(), ChainSpec::regtest(), Arc::new(SigCache::new(100)), config).expect("open with pruning");
    assert_eq!(chain.prune_height(), Some(Height(400 + 1 - MIN_PRUNE_BLOCKS)));
    for b in &side_blocks {
        assert!(chain.store().block(&b.hash()).expect("read").is_none(), "a dead branch's body is deleted");
        assert!(chain.is_pruned(&b.hash()));
    }
}
