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
