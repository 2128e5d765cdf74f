//! The explorer's own limits: reader slots and what a fee page costs.

use super::*;
use crate::testkit::{regtest_node, ChainBuilder};
use lode_core::ChainSpec;
use std::sync::atomic::{AtomicUsize, Ordering};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_abandoned_by_their_visitors_still_count_against_the_reader_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let (node, _) = regtest_node(dir.path(), &mut builder, 1);
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let ex = Explorer::new(node, None, shutdown);
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::RwLock::new(()));
    let closed = gate.clone().write_owned().await;
    // Each visitor gives up after 20 ms, as one closing its connection
    // does; its read is blocked on the gate meanwhile.
    for _ in 0..2 * MAX_READERS {
        let (running, most, gate) = (running.clone(), most.clone(), gate.clone());
        let read = ex.read(move |_| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            drop(gate.blocking_read());
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        });
        let _ = tokio::time::timeout(Duration::from_millis(20), read).await;
    }
    // The first reads start (a condition, with a deadline), then none may
    // join them while the gate stays shut.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while running.load(Ordering::SeqCst) < MAX_READERS {
        assert!(tokio::time::Instant::now() < deadline, "the first reads never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(most.load(Ordering::SeqCst), MAX_READERS, "reads running at once");
    drop(closed);
}

// Anyone may load the fee page; it held the estimator's lock (which
// block connection takes) for one pass over every tracked transaction
// per target and longer target: 903 passes.
#[test]
fn the_fee_page_reads_the_tracked_transactions_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let (node, _) = regtest_node(dir.path(), &mut builder, 1);
    crate::fees::TRACKED_SCANS.with(|n| n.set(0));
    let (list, _) = pool::fee_estimates(&node);
    assert_eq!(list.len(), pool::FEE_TARGETS.len());
    assert_eq!(crate::fees::TRACKED_SCANS.with(|n| n.get()), 1, "passes over the tracked transactions");
}

// /api/mempool/txids built a reply of every txid for anyone (tens of MB
// with a full pool); the home page sorted the whole pool for 10 entries.
#[test]
fn mempool_txids_are_refused_above_the_cap_and_recent_lists_the_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let (node, _) = regtest_node(dir.path(), &mut builder, 12);
    let block = builder.next_block(3);
    // Two arrive together, the third a second later (arrival times are in
    // whole seconds): newest first, then ties by txid.
    for r in node.submit_transactions(block.transactions[1..3].to_vec()) {
        r.expect("pooled");
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for r in node.submit_transactions(block.transactions[3..].to_vec()) {
        r.expect("pooled");
    }
    assert_eq!(pool::txids(&node, 3).expect("at the cap").len(), 3);
    assert!(matches!(pool::txids(&node, 2), Err(ExplorerError::BadRequest(_))), "above the cap");
    let (newest, first_two) =
        (block.transactions[3].txid(), [block.transactions[1].txid(), block.transactions[2].txid()]);
    let recent: Vec<_> = pool::recent(&node, 2).iter().map(|t| t.txid).collect();
    assert_eq!(recent, vec![newest, first_two.into_iter().min().expect("two")]);
}

// Inputs spending outputs of the same block hashed the whole block again
// per input; a side-branch block (no undo data) read a whole block per
// input. Now: the block and its undo data once, and at most
// MAX_PREVOUT_BLOCKS other blocks.
#[test]
fn a_block_page_reads_each_block_once_and_a_bounded_number_of_others() {
    use crate::chain::BlockSource;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let (node, block) = crate::testkit::node_with_a_block_of_chained_payments(dir.path(), &mut builder, 20);
    crate::store::BODY_READS.with(|n| n.set(0));
    let (_, txs) = query::block_txs(&node, &block.hash(), 0, 25).expect("page");
    assert_eq!(crate::store::BODY_READS.with(|n| n.get()), 2, "the body and its undo data");
    assert!(txs.iter().skip(1).all(|t| t.prevouts.iter().all(Option::is_some)), "every spent output found");
    // A side branch beside the tip whose 24 spends each take a coinbase of
    // a different earlier block (matured: 30 more blocks first).
    for b in builder.blocks(30, 0) {
        node.process_block(b, BlockSource::Requested).expect("extends the chain");
    }
    let mut side = builder.fork(7);
    node.process_block(builder.next_block(0), BlockSource::Requested).expect("the tip");
    let branch = side.next_block(24);
    assert_eq!(branch.transactions.len(), 25);
    node.process_block(branch.clone(), BlockSource::Requested).expect("stored beside the tip");
    assert_ne!(node.chain().state().tip, branch.hash());
    crate::store::BODY_READS.with(|n| n.set(0));
    let (_, txs) = query::block_txs(&node, &branch.hash(), 0, 25).expect("page");
    let reads = crate::store::BODY_READS.with(|n| n.get());
    assert!(reads <= 2 + query::MAX_PREVOUT_BLOCKS, "{reads} reads for 24 inputs");
    let found = txs.iter().skip(1).filter(|t| t.prevouts[0].is_some()).count();
    assert_eq!(found, query::MAX_PREVOUT_BLOCKS, "spent outputs found within the reads allowed");
}
