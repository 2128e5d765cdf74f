//! The inline admission path waits only briefly for the mempool lock and
//! takes only small transactions; everything else is handed back for a
//! blocking thread.

use super::{InlineSubmit, INLINE_MAX_INPUTS};
use crate::chain::BlockSource;
use crate::mempool::MempoolError;
use crate::node::Node;
use crate::testkit::ChainBuilder;
use lode_core::crypto::SecretKey;
use lode_core::tx::{OutPoint, TxIn, TxOut, Unlock};
use lode_core::validation::TxError;
use lode_core::{Address, Amount, Block, ChainSpec, Transaction};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// A node with `n` blocks whose coinbases pay `builder`'s key.
fn node_with_coins(dir: &std::path::Path, n: usize) -> (Arc<Node>, ChainBuilder, Vec<Block>) {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let (node, blocks) = crate::testkit::regtest_node(dir, &mut builder, n);
    (node, builder, blocks)
}

/// Spends the coinbases of `blocks` in one transaction to `to`.
fn spend(key: &SecretKey, blocks: &[Block], to: Address) -> Transaction {
    let values: Vec<Amount> = blocks.iter().map(|b| b.transactions[0].outputs[0].value).collect();
    let total: u64 = values.iter().map(|v| v.units()).sum();
    let mut tx = Transaction {
        version: 1,
        inputs: blocks
            .iter()
            .map(|b| TxIn {
                prevout: OutPoint { txid: b.transactions[0].txid(), vout: 0 },
                unlock: Unlock::Signature { pubkey: key.public_key(), sig: Default::default() },
            })
            .collect(),
        outputs: vec![TxOut { value: Amount::from_units(total - 10_000), address: to }],
        lock_time: 0,
    };
    let keys = vec![key; blocks.len()];
    tx.sign_inputs(&ChainSpec::regtest().genesis_hash(), &keys, &values);
    tx
}

/// Submits `tx` inline on another thread, waiting at most `wait` for the
/// mempool lock; the first receiver says the thread is about to submit,
/// the second gives its answer.
fn submit_inline_on_a_thread(
    node: &Arc<Node>,
    tx: Transaction,
    wait: Duration,
) -> (mpsc::Receiver<()>, mpsc::Receiver<InlineSubmit>) {
    let (node, (started, start), (done, answer)) = (node.clone(), mpsc::channel(), mpsc::channel());
    std::thread::spawn(move || {
        let _ = started.send(());
        let _ = done.send(node.submit_inline_within(tx, wait));
    });
    (start, answer)
}

#[test]
fn a_mempool_lock_held_past_the_inline_wait_hands_the_transaction_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, builder, blocks) = node_with_coins(dir.path(), 12);
    let tx = spend(builder.key(), &blocks[..1], builder.address());
    let txid = tx.txid();
    let held = node.mempool();
    let (_, outcome) = submit_inline_on_a_thread(&node, tx, super::INLINE_LOCK_WAIT);
    // A waiting lock would not answer until `held` is dropped below.
    let answer = outcome.recv_timeout(Duration::from_secs(30)).expect("answered while the lock is held");
    drop(held);
    let InlineSubmit::Blocking(back) = answer else { panic!("expected the transaction back, got {answer:?}") };
    assert_eq!(back.txid(), txid, "the same transaction is handed back");
    assert_eq!(node.submit_transaction(back).expect("admitted on the blocking path"), txid);
    assert!(node.mempool().contains(&txid));
}

// Another admission holds the mempool lock for microseconds; handing the
// transaction to a blocking thread for that put a quarter of the admission
// CPU on two thread wake-ups and a second precheck (perf, four clients).
#[test]
fn an_inline_admission_waits_out_a_short_hold_of_the_mempool_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, builder, blocks) = node_with_coins(dir.path(), 12);
    let tx = spend(builder.key(), &blocks[..1], builder.address());
    let txid = tx.txid();
    let held = node.mempool();
    let (started, outcome) = submit_inline_on_a_thread(&node, tx, Duration::from_secs(60));
    started.recv_timeout(Duration::from_secs(30)).expect("the submitting thread started");
    // Not answered while the lock is held: it waits instead of handing
    // the transaction back.
    assert!(outcome.recv_timeout(Duration::from_millis(300)).is_err(), "answered while the lock was held");
    drop(held);
    match outcome.recv_timeout(Duration::from_secs(30)).expect("answered once the lock was free") {
        InlineSubmit::Decided(Ok(id)) => assert_eq!(id, txid),
        other => panic!("expected admission once the lock was free, got {other:?}"),
    }
    assert!(node.mempool().contains(&txid));
}

#[test]
fn only_transactions_within_the_inline_input_limit_are_decided_inline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, builder, blocks) = node_with_coins(dir.path(), 20);
    let big = spend(builder.key(), &blocks[..INLINE_MAX_INPUTS + 1], builder.address());
    let InlineSubmit::Blocking(big) = node.try_submit_inline(big) else {
        panic!("a large transaction was decided inline")
    };
    assert!(!node.mempool().contains(&big.txid()), "nothing admitted yet");
    node.submit_transaction(big).expect("the blocking path admits it");

    let small = spend(builder.key(), &blocks[INLINE_MAX_INPUTS + 1..2 * INLINE_MAX_INPUTS + 1], builder.address());
    let txid = small.txid();
    match node.try_submit_inline(small) {
        InlineSubmit::Decided(Ok(id)) => assert_eq!(id, txid),
        other => panic!("expected admission inline, got {other:?}"),
    }
    assert!(node.mempool().contains(&txid));
}

#[test]
fn a_bad_signature_is_refused_inline_and_nothing_is_admitted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, builder, blocks) = node_with_coins(dir.path(), 12);
    let mut tx = spend(builder.key(), &blocks[..1], builder.address());
    tx.outputs[0].value = Amount::from_units(tx.outputs[0].value.units() - 1);
    let txid = tx.txid();
    match node.try_submit_inline(tx) {
        InlineSubmit::Decided(Err(MempoolError::Invalid(TxError::BadSignature(0)))) => {}
        other => panic!("expected a bad signature refusal, got {other:?}"),
    }
    assert!(!node.mempool().contains(&txid));
}

#[test]
fn coins_a_precheck_read_are_not_reused_once_a_block_spent_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, builder, blocks) = node_with_coins(dir.path(), 12);
    let ours = spend(builder.key(), &blocks[..1], builder.address());
    let pre = node.precheck_with(&ours, super::lock(&node.mempool)).expect("precheck passes");

    // Between precheck and admission a block spends the same coin.
    let theirs = spend(builder.key(), &blocks[..1], Address([7; 20]));
    node.submit_transaction(theirs.clone()).expect("the other spend admitted");
    let mut block = node.block_template(builder.address());
    assert!(block.transactions.iter().any(|t| t.txid() == theirs.txid()), "the template carries it");
    assert!(crate::miner::mine_block(&mut block, &std::sync::atomic::AtomicBool::new(false)));
    node.process_block(block, BlockSource::Requested).expect("block connects");

    match node.admit_with(ours.clone(), super::lock(&node.mempool), Some(pre)) {
        Err(MempoolError::MissingInputs { .. }) => {}
        other => panic!("a spend of a coin the tip spent was not refused: {other:?}"),
    }
    assert!(!node.mempool().contains(&ours.txid()));
}

// Each admitted transaction moved the miner's work, and every mining
// thread then rebuilt its template under the chain lock: a stream of cheap
// replacements kept the miner rebuilding instead of hashing.
#[test]
fn admitted_transactions_move_the_miners_work_at_most_once_per_refresh() {
    use crate::miner::MiningBackend;
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, builder, blocks) = node_with_coins(dir.path(), 14);
    let before = node.work_version();
    let started = std::time::Instant::now();
    for b in &blocks[..4] {
        node.submit_transaction(spend(builder.key(), std::slice::from_ref(b), builder.address())).expect("admitted");
    }
    let moves = node.work_version() - before;
    // One move at once, then at most one per refresh that passed (a slow
    // machine may take longer than one over the four admissions).
    let refreshes = (started.elapsed().as_millis() / crate::node::work::TX_REFRESH.as_millis()) as u64;
    assert!((1..=1 + refreshes).contains(&moves), "{moves} moves in {:?}", started.elapsed());
}
