//! The node keeps its mempool consistent with the chain through reorgs, so
//! its miner never stalls on a transaction the new tip refuses.

use super::*;
use crate::chain::BlockSource;
use crate::testkit::ChainBuilder;
use lode_core::crypto::SecretKey;
use lode_core::tx::{OutPoint, TxIn, TxOut, Unlock};
use lode_core::Amount;
use std::sync::atomic::AtomicBool;

fn open(dir: &Path) -> Arc<Node> {
    Node::open(dir, ChainSpec::regtest(), ChainConfig::default(), MempoolPolicy::default()).expect("open node")
}

/// A signed one-input, one-output payment of `value - fee` to `to`.
fn pay(key: &SecretKey, prevout: OutPoint, value: Amount, to: Address, fee: u64) -> Transaction {
    let mut tx = Transaction {
        version: 1,
        inputs: vec![TxIn { prevout, unlock: Unlock::Signature { pubkey: key.public_key(), sig: Default::default() } }],
        outputs: vec![TxOut { value: Amount::from_units(value.units() - fee), address: to }],
        lock_time: 0,
    };
    tx.sign_inputs(&ChainSpec::regtest().genesis_hash(), &[key], &[value]);
    tx
}

fn mine_on(node: &Node, to: Address) -> Result<BlockAccepted, ChainError> {
    let mut block = node.block_template(to);
    assert!(crate::miner::mine_block(&mut block, &AtomicBool::new(false)));
    node.process_block(block, BlockSource::Requested)
}

#[test]
fn after_a_reorg_a_child_of_a_double_spent_payment_leaves_the_pool_and_mining_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path());
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(12, 0);
    for b in &blocks {
        node.process_block(b.clone(), BlockSource::Requested).expect("import");
    }
    let key = builder.key().clone();
    let me = builder.address();
    let coin = OutPoint { txid: blocks[0].transactions[0].txid(), vout: 0 };
    let value = blocks[0].transactions[0].outputs[0].value;
    let mut side = builder.fork(9);

    // Our side: the payment is mined, its child waits in the pool.
    let parent = pay(&key, coin, value, me, 1_000);
    node.submit_transaction(parent.clone()).expect("parent admitted");
    assert_eq!(mine_on(&node, me).expect("mine"), BlockAccepted::Connected);
    assert!(!node.mempool().contains(&parent.txid()), "mined");
    let child = pay(&key, OutPoint { txid: parent.txid(), vout: 0 }, parent.outputs[0].value, me, 1_000);
    node.submit_transaction(child.clone()).expect("child admitted");

    // The other side spent the same coin differently and has more work.
    let double = pay(&key, coin, value, Address([9; 20]), 5_000);
    let cb = Transaction::coinbase(
        Height(13),
        b"side".to_vec(),
        vec![TxOut { value: lode_core::subsidy::block_subsidy(node.spec(), Height(13)), address: me }],
    );
    let s13 = side.seal(vec![cb, double.clone()]);
    let s14 = side.next_block(0);
    assert_eq!(node.process_block(s13, BlockSource::Requested).expect("side 13"), BlockAccepted::SideBranch);
    assert_eq!(node.process_block(s14.clone(), BlockSource::Requested).expect("side 14"), BlockAccepted::Connected);
    assert_eq!(node.chain().state().tip, s14.hash());

    let pool = node.mempool();
    assert!(!pool.contains(&parent.txid()), "the payment conflicts with the new chain");
    assert!(!pool.contains(&child.txid()), "its child has no inputs any more");
    drop(pool);
    // And the miner keeps extending the chain.
    for _ in 0..3 {
        assert_eq!(mine_on(&node, me).expect("mine after the reorg"), BlockAccepted::Connected);
    }
    assert_eq!(node.chain().state().height, Height(17));
}

#[test]
fn immature_coinbase_spends_are_refused_without_blame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path());
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(3, 0);
    for b in &blocks {
        node.process_block(b.clone(), BlockSource::Requested).expect("import");
    }
    let coinbase = &blocks[2].transactions[0];
    let tx = pay(
        builder.key(),
        OutPoint { txid: coinbase.txid(), vout: 0 },
        coinbase.outputs[0].value,
        builder.address(),
        1_000,
    );
    let err = node.submit_transaction(tx.clone()).expect_err("immature here");
    assert!(matches!(err, MempoolError::Premature(_)), "{err:?}");
    assert!(!err.is_consensus_invalid(), "a peer a block ahead of us may have sent it honestly");
    assert!(matches!(NetworkChain::submit_tx(node.as_ref(), tx), crate::chain_api::TxOutcome::Rejected(_)));
}

#[test]
fn a_block_made_here_is_announced_before_it_connects_and_an_invalid_one_is_not() {
    use crate::chain_api::ChainEvent;
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let mut events = node.subscribe();
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(2, 0);
    assert_eq!(node.process_own_block(blocks[0].clone()).unwrap(), BlockAccepted::Connected);
    let hash = blocks[0].hash();
    assert!(matches!(events.try_recv(), Ok(ChainEvent::Prevalidated(b)) if b.hash() == hash), "announced first");
    assert!(matches!(events.try_recv(), Ok(ChainEvent::Block(b)) if b.hash() == hash), "then connected");
    // A body that does not match its header is not announced early.
    let mut bad = blocks[1].clone();
    bad.transactions.push(bad.transactions[0].clone());
    assert!(node.process_own_block(bad).is_err());
    assert!(events.try_recv().is_err(), "nothing announced for an invalid block");
    // Nor is a block that does not extend the tip (already connected here).
    let _ = node.process_own_block(blocks[0].clone());
    assert!(events.try_recv().is_err(), "nothing announced for a known block");
}

// Any peer may ask for 128 blocks at a time: their bodies were read under
// the chain lock, so each request held up block processing for its disk
// reads.
#[test]
fn blocks_served_to_peers_are_read_without_holding_the_chain() {
    use crate::chain_api::NetworkChain;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let (node, blocks) = crate::testkit::regtest_node(dir.path(), &mut builder, 5);
    let hashes: Vec<Hash256> = blocks.iter().map(Block::hash).collect();
    let seen = crate::testkit::watch_body_reads(&node);
    let served = node.serve_blocks(&hashes, &Default::default(), usize::MAX);
    assert_eq!(served.iter().map(Block::hash).collect::<Vec<_>>(), hashes);
    assert!(node.block(&hashes[0]).is_some());
    assert_eq!(seen.get(), (6, 0), "(body reads, of them under the chain lock)");
}

// The explorer is open to anyone, and its block, transaction and address
// pages read block bodies and undo records while holding the chain lock:
// a stream of page views held up block processing for those disk reads.
#[test]
fn explorer_pages_read_bodies_and_undo_records_without_holding_the_chain() {
    use crate::explorer::{addr, query};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let (node, block) = crate::testkit::node_with_a_spending_block(dir.path(), &mut builder);
    let (hash, txid) = (block.hash(), block.transactions[1].txid());
    let seen = crate::testkit::watch_body_reads(&node);
    let (_, body) = query::block(&node, &hash).expect("block page");
    assert!(body.is_some());
    let (_, views) = query::block_txs(&node, &hash, 0, 25).expect("block transactions page");
    assert_eq!(views.len(), block.transactions.len());
    assert_eq!(query::tx(&node, &txid).expect("transaction page").txid, txid);
    assert_eq!(query::recent_blocks(&node, None, 3).expect("blocks page").len(), 3);
    addr::summary(&node, &builder.address()).expect("address page");
    crate::testkit::assert_read_off_the_chain_lock(&seen, 8);
}

// A stored body edited in the data directory (its header, hence its hash,
// untouched) may carry outputs whose values sum past u64::MAX. Explorer
// pages add values up: with overflow checks on, a plain sum panicked the
// thread serving the page.
#[test]
fn explorer_pages_about_an_edited_body_with_huge_outputs_do_not_overflow() {
    use crate::explorer::query;
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, hash, txid) = crate::testkit::node_with_an_edited_body_of_huge_outputs(dir.path());
    let (_, views) = query::block_txs(&node, &hash, 0, 25).expect("block transactions page");
    assert_eq!(views[1].output_total(), u64::MAX, "the sum saturates");
    let view = query::tx(&node, &txid).expect("transaction page");
    assert_eq!(view.output_total(), u64::MAX);
}
