//! A store edited by hand or by an attacker with access to the data
//! directory: `Chain::open` reports corruption, never hangs or aborts.

use super::*;
use crate::store::{BlockStatus, HeaderRecord, StoreError};
use crate::testkit::ChainBuilder;
use lode_core::tx::OutPoint;
use lode_core::validation::Coin;
use std::sync::mpsc;
use std::time::Duration;

/// Opens the regtest chain stored in `dir` with `config`.
fn open_with(dir: &Path, config: ChainConfig) -> Result<Chain, ChainError> {
    Chain::open(dir, ChainSpec::regtest(), Arc::new(SigCache::new(100)), config)
}

/// A chain of three blocks in `dir`, then `edit` applied to its store.
fn crafted(dir: &Path, edit: impl FnOnce(&Chain, &mut ChainStateRecord) -> Option<(Hash256, HeaderRecord)>) {
    let mut chain = open_with(dir, ChainConfig::default()).expect("open");
    for b in ChainBuilder::new(ChainSpec::regtest()).blocks(3, 0) {
        chain.accept_block(b).expect("a valid block");
    }
    let mut state = *chain.state();
    let record = edit(&chain, &mut state);
    let mut batch = chain.store().batch();
    if let Some((hash, record)) = record {
        batch.put_header(&hash, &record);
    }
    batch.put_chain_state(&state);
    chain.store().write(batch, true).expect("write");
}

/// Opens `dir` on another thread: an open that never returns fails the
/// test at the deadline instead of hanging it.
fn open_within_deadline(dir: &Path) -> Result<Chain, ChainError> {
    let (done, result) = mpsc::channel();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let _ = done.send(open_with(&dir, ChainConfig::default()));
    });
    result.recv_timeout(Duration::from_secs(30)).expect("Chain::open returned within 30 s")
}

fn is_corrupt(result: Result<Chain, ChainError>) -> String {
    match result {
        Err(ChainError::Store(StoreError::Corrupt { reason, .. })) => reason,
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("the crafted store was opened"),
    }
}

#[test]
fn a_header_record_naming_itself_as_its_parent_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let looped = Hash256([0xab; 32]);
    crafted(dir.path(), |chain, state| {
        let tip = chain.tip_entry().clone();
        let mut header = tip.header;
        header.prev_hash = looped;
        state.tip = looped;
        state.height = Height(4);
        let record = HeaderRecord {
            header,
            height: Height(4),
            chainwork: tip.work.to_be_bytes(),
            status: BlockStatus::Valid,
            seq: 99,
        };
        Some((looped, record))
    });
    let reason = is_corrupt(open_within_deadline(dir.path()));
    assert!(reason.contains("parent"), "{reason}");
}

#[test]
fn a_chain_state_height_of_u32_max_is_refused_as_corrupt_without_reserving_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    crafted(dir.path(), |_, state| {
        state.height = Height(u32::MAX);
        None
    });
    let reason = is_corrupt(open_within_deadline(dir.path()));
    assert!(reason.contains("genesis"), "{reason}");
}

#[test]
fn a_header_arrival_number_at_the_limit_opens_and_counting_goes_on_from_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    crafted(dir.path(), |chain, _| {
        let mut record = chain.tip_entry().record();
        record.seq = MAX_STORED_SEQ;
        Some((chain.state().tip, record))
    });
    let mut chain = open_within_deadline(dir.path()).expect("the limit itself opens");
    // A side branch's first block: its header is the next one to arrive.
    let side = ChainBuilder::new(ChainSpec::regtest()).next_block(0);
    chain.accept_block(side.clone()).expect("a side block");
    // (Numbered once as a header, again as its body arrives.)
    let seq = chain.entry(&side.hash()).map(|e| e.seq);
    assert!(seq.is_some_and(|s| s > MAX_STORED_SEQ), "{seq:?}");
}

#[test]
fn a_header_arrival_number_of_u64_max_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    crafted(dir.path(), |chain, _| {
        let tip = chain.tip_entry();
        let mut record = tip.record();
        record.seq = u64::MAX;
        Some((chain.state().tip, record))
    });
    let reason = is_corrupt(open_within_deadline(dir.path()));
    assert!(reason.contains("arrival number"), "{reason}");
}

#[test]
fn a_stored_total_above_the_money_supply_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    crafted(dir.path(), |_, state| {
        state.total_amount = u64::MAX;
        None
    });
    let reason = is_corrupt(open_within_deadline(dir.path()));
    assert!(reason.contains("money supply"), "{reason}");
}

#[test]
fn coins_and_undo_records_worth_more_than_the_money_supply_are_refused_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = open_with(dir.path(), ChainConfig::default()).expect("open");
    let address = lode_core::Address([7; 20]);
    let op = OutPoint { txid: Hash256([9; 32]), vout: 0 };
    let coin = Coin {
        output: lode_core::TxOut { value: lode_core::Amount::from_units(u64::MAX), address },
        height: Height(1),
        coinbase: false,
    };
    let mut batch = chain.store().batch();
    batch.add_coin(&op, &coin);
    batch.put_undo(&Hash256([8; 32]), &[(op, coin)]);
    chain.store().write(batch, true).expect("write");

    let refused = |r: Result<(), StoreError>| match r {
        Err(StoreError::Corrupt { reason, .. }) => assert!(reason.contains("money supply"), "{reason}"),
        other => panic!("a coin above the money supply was read back: {other:?}"),
    };
    refused(chain.store().coin(&op).map(drop));
    refused(chain.store().coins(&[op]).map(drop));
    refused(chain.store().address_coins(&address).map(drop));
    refused(chain.store().all_coins().map(drop));
    refused(chain.store().undo(&Hash256([8; 32])).map(drop));
}

#[test]
fn a_prune_height_one_above_the_tip_opens_and_more_is_refused_as_corrupt() {
    // One above: a reorg forking at `prune - 1` stopped part-way.
    let dir = tempfile::tempdir().expect("tempdir");
    crafted(dir.path(), |chain, state| {
        let mut batch = chain.store().batch();
        batch.put_prune_height(Height(state.height.0 + 1));
        chain.store().write(batch, true).expect("write");
        None
    });
    let config = ChainConfig { prune_blocks: Some(MIN_PRUNE_BLOCKS), ..ChainConfig::default() };
    let chain = open_with(dir.path(), config.clone()).expect("a prune height one above the tip opens");
    assert_eq!(chain.prune_height(), Some(Height(chain.state().height.0 + 1)));
    drop(chain);

    let dir = tempfile::tempdir().expect("tempdir");
    crafted(dir.path(), |chain, state| {
        let mut batch = chain.store().batch();
        batch.put_prune_height(Height(state.height.0 + 2));
        chain.store().write(batch, true).expect("write");
        None
    });
    let opened = open_with(dir.path(), config);
    let reason = is_corrupt(opened);
    assert!(reason.contains("above the tip"), "{reason}");
}

#[test]
fn a_stored_summary_short_of_the_utxo_set_does_not_panic_a_reorg_and_verifychain_reports_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || open_with(dir.path(), ChainConfig::default()).expect("open");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let mut chain = open();
    for _ in 0..2 {
        chain.accept_block(builder.next_block(0)).expect("a valid block");
    }
    let mut side = builder.fork(1);
    chain.accept_block(builder.next_block(0)).expect("a valid block");
    let mut state = *chain.state();
    state.utxo_count = 0;
    state.total_amount = 0;
    let mut batch = chain.store().batch();
    batch.put_chain_state(&state);
    chain.store().write(batch, true).expect("write");
    drop(chain);

    let mut chain = open();
    // Two blocks from height 2 outweigh the main branch's one: block 3 is
    // disconnected, its coinbase counted out of a summary that says empty.
    for _ in 0..2 {
        chain.accept_block(side.next_block(0)).expect("the side branch");
    }
    assert_eq!(chain.state().tip, side.tip());
    let report = chain.verify_integrity().expect("verify");
    assert!(!report.ok, "the wrong summary went unreported");
}

#[test]
fn a_reorg_that_fails_part_way_still_reports_the_blocks_it_disconnected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open_with(dir.path(), ChainConfig::default()).expect("open");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    for _ in 0..2 {
        chain.accept_block(builder.next_block(0)).expect("a valid block");
    }
    let mut side = builder.fork(1);
    let third = builder.next_block(0);
    let third_hash = third.hash();
    chain.accept_block(third).expect("a valid block");
    let fourth = builder.next_block(0);
    let fourth_hash = fourth.hash();
    chain.accept_block(fourth).expect("a valid block");
    // The disk loses block 3's undo data: the reorg below disconnects
    // block 4, then fails on block 3.
    let mut batch = chain.store().batch();
    batch.delete_undo(&third_hash);
    chain.store().write(batch, true).expect("write");

    let side_blocks: Vec<Block> = (0..3).map(|_| side.next_block(0)).collect();
    let (results, update) = chain.accept_blocks_from(side_blocks, BlockSource::Requested);
    assert!(results.iter().any(Result::is_err), "the reorg did not fail: {results:?}");
    assert_eq!(chain.state().tip, third_hash, "block 4 was disconnected before the failure");
    assert_eq!(update.disconnected_count(), 1, "the disconnect that happened was not reported");
    let reported: Vec<Hash256> = update.disconnected_blocks().map(|b| b.hash()).collect();
    assert_eq!(reported, vec![fourth_hash]);
}

// A run of blocks whose activation stopped on a storage error part-way:
// the error named the first block of the run, which had connected, and
// the block that could not be read was reported as stored.
#[test]
fn a_storage_error_part_way_through_a_run_is_reported_on_the_block_it_stopped_at() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open_with(dir.path(), ChainConfig::default()).expect("open");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    for b in builder.blocks(12, 0) {
        chain.accept_block(b).expect("a valid block");
    }
    let run = vec![builder.next_block(0), builder.next_block(1), builder.next_block(0)];
    let spent = run[1].transactions.get(1).expect("the second block spends a coin").inputs[0].prevout;
    // The coin the second block spends, rewritten above the money supply:
    // reading it is a storage error, not a rule the block broke.
    let mut coin = chain.store().coin(&spent).expect("read").expect("the coin exists");
    coin.output.value = lode_core::Amount::from_units(u64::MAX);
    let mut batch = chain.store().batch();
    batch.add_coin(&spent, &coin);
    chain.store().write(batch, true).expect("write");

    let (results, update) = chain.accept_blocks(run.clone());
    assert!(matches!(results[0], Ok(BlockAccepted::Connected)), "{:?}", results[0]);
    assert!(matches!(results[1], Err(ChainError::Store(StoreError::Corrupt { .. }))), "{:?}", results[1]);
    assert!(matches!(results[2], Ok(BlockAccepted::Stored)), "{:?}", results[2]);
    assert_eq!(chain.state().tip, run[0].hash());
    assert_eq!(update.connected_count(), 1);
}
