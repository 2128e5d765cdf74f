//! `sendrawtransactions`: one answer per transaction in order, parents and
//! children in one call, and the same refusals `sendrawtransaction` gives;
//! what one `getblock` reads.

use super::*;
use crate::testkit::ChainBuilder;
use lode_core::crypto::SecretKey;
use lode_core::tx::{TxIn, Unlock};
use lode_core::{Amount, ChainSpec};

fn pay(key: &SecretKey, prevout: OutPoint, value: Amount, to: Address) -> Transaction {
    let mut tx = Transaction {
        version: 1,
        inputs: vec![TxIn { prevout, unlock: Unlock::Signature { pubkey: key.public_key(), sig: Default::default() } }],
        outputs: vec![TxOut { value: Amount::from_units(value.units() - 1_000), address: to }],
        lock_time: 0,
    };
    tx.sign_inputs(&ChainSpec::regtest().genesis_hash(), &[key], &[value]);
    tx
}

#[test]
fn a_batch_admits_parents_and_children_and_answers_each_transaction_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let (node, blocks) = crate::testkit::regtest_node(dir.path(), &mut builder, 14);
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let methods = Methods::new(node.clone(), None, Arc::new(MiningStatus::default()), shutdown);
    let key = builder.key().clone();
    let me = builder.address();
    let coin = |i: usize| {
        let cb = &blocks[i].transactions[0];
        (OutPoint { txid: cb.txid(), vout: 0 }, cb.outputs[0].value)
    };
    let (op0, v0) = coin(0);
    let parent = pay(&key, op0, v0, me);
    let child = pay(&key, OutPoint { txid: parent.txid(), vout: 0 }, parent.outputs[0].value, me);
    let (op1, v1) = coin(1);
    let mut forged = pay(&key, op1, v1, me);
    if let Unlock::Signature { sig, .. } = &mut forged.inputs[0].unlock {
        sig.0[9] ^= 1;
    }
    let (op2, v2) = coin(2);
    let plain = pay(&key, op2, v2, me);
    let hexes: Vec<String> =
        [&child, &parent, &forged, &plain, &plain].iter().map(|t| hex::encode(t.encode())).collect();
    let mut params = vec![json!(hexes)];
    params[0].as_array_mut().expect("array").push(json!("zz"));
    let out = methods.blocking("sendrawtransactions", params, false).expect("call");
    let out = out.as_array().expect("array");
    assert_eq!(out.len(), 6);
    // The child comes before its parent: judged in the caller's order, as
    // one call each would be, so its input is missing.
    assert_eq!(out[0]["error"]["code"], json!(-26), "{out:?}");
    assert_eq!(out[1]["txid"], json!(parent.txid()));
    assert_eq!(out[2]["error"]["code"], json!(-25), "a bad signature is a consensus error: {out:?}");
    assert_eq!(out[3]["txid"], json!(plain.txid()));
    assert_eq!(out[4]["error"]["code"], json!(-27), "the second copy is already known: {out:?}");
    assert_eq!(out[5]["error"]["code"], json!(-32602), "{out:?}");
    // Parent first, child next, in one call: both go in.
    let hexes: Vec<String> = [&parent, &child].iter().map(|t| hex::encode(t.encode())).collect();
    let out = methods.blocking("sendrawtransactions", vec![json!(hexes)], false).expect("call");
    assert_eq!(out[0]["error"]["code"], json!(-27), "{out:?}");
    assert_eq!(out[1]["txid"], json!(child.txid()), "{out:?}");
    let pool = node.mempool();
    assert!(pool.contains(&parent.txid()) && pool.contains(&child.txid()) && pool.contains(&plain.txid()));
    assert!(!pool.contains(&forged.txid()));
    assert_eq!(pool.len(), 3);
}

// getblock read the block's undo data once per transaction, and a whole
// block for each output spent inside the block: quadratic in the block's
// transactions, all under the chain lock.
#[test]
fn getblock_reads_the_block_and_its_undo_data_once_whatever_spends_inside_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let (node, block) = crate::testkit::node_with_a_block_of_chained_payments(dir.path(), &mut builder, 20);
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let methods = Methods::new(node.clone(), None, Arc::new(MiningStatus::default()), shutdown);
    crate::store::BODY_READS.with(|n| n.set(0));
    let v = methods.blocking("getblock", vec![json!(block.hash())], false).expect("getblock");
    let reads = crate::store::BODY_READS.with(|n| n.get());
    assert_eq!(reads, 2, "the body and its undo data, once each");
    let txs = v["tx"].as_array().expect("transactions");
    assert_eq!(txs.len(), 21);
    for (i, tx) in txs.iter().enumerate().skip(1) {
        assert!(tx["inputs"][0]["amount"].is_u64(), "transaction {i}'s input has its amount: {tx}");
        assert_eq!(tx["fee"], json!(1_000), "transaction {i}");
    }
    // One transaction: its block (found through the index) and the undo
    // data; the block's own outputs only when it spends one of them.
    for (i, reads_wanted) in [(1, 2), (2, 3)] {
        crate::store::BODY_READS.with(|n| n.set(0));
        let txid = block.transactions[i].txid();
        let v = methods.blocking("getrawtransaction", vec![json!(txid), json!(true)], false).expect("found");
        assert_eq!(crate::store::BODY_READS.with(|n| n.get()), reads_wanted, "transaction {i}");
        assert!(v["inputs"][0]["amount"].is_u64(), "{v}");
    }
}

// Anyone can pay an address thousands of dust outputs; reading them all
// under the chain lock stalled every block and transaction behind one
// wallet query.
#[test]
fn address_queries_read_the_index_without_holding_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let (node, _) = crate::testkit::regtest_node(dir.path(), &mut builder, 3);
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let methods = Methods::new(node.clone(), None, Arc::new(MiningStatus::default()), shutdown);
    let address = builder.address().encode(&ChainSpec::regtest().address_prefix).expect("address text");
    let seen = crate::testkit::watch_address_reads(&node);
    let coins = methods.blocking("listunspent", vec![json!(address)], false).expect("listunspent");
    assert_eq!(coins.as_array().map(Vec::len), Some(3), "{coins}");
    let mut confirmations: Vec<_> =
        coins.as_array().into_iter().flatten().map(|c| c["confirmations"].clone()).collect();
    confirmations.sort_by_key(|c| c.as_u64());
    assert_eq!(confirmations, [json!(1), json!(2), json!(3)], "{coins}");
    let balance = methods.blocking("getbalance", vec![json!(address)], false).expect("getbalance");
    assert!(balance["immature"].as_u64().is_some_and(|v| v > 0), "{balance}");
    let history = methods.blocking("getaddresshistory", vec![json!(address)], false).expect("history");
    assert_eq!(history.as_array().map(Vec::len), Some(3), "{history}");
    crate::store::ON_ADDRESS_READ.with(|h| h.borrow_mut().take());
    assert_eq!(seen.get(), (3, 0), "(index reads, of them under the chain lock)");
}

// getblock and getrawtransaction read a body and its undo record (and,
// for an output spent in its own block, the body again) while holding the
// chain lock: each call held up block processing for those disk reads.
#[test]
fn block_and_transaction_queries_read_bodies_without_holding_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, block) =
        crate::testkit::node_with_a_spending_block(dir.path(), &mut ChainBuilder::new(ChainSpec::regtest()));
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let methods = Methods::new(node.clone(), None, Arc::new(MiningStatus::default()), shutdown);
    let seen = crate::testkit::watch_body_reads(&node);
    let v = methods.blocking("getblock", vec![json!(block.hash())], false).expect("getblock");
    assert_eq!(v["tx"][1]["height"], json!(13), "{v}");
    assert_eq!(v["tx"][1]["confirmations"], json!(1), "{v}");
    let txid = block.transactions[1].txid();
    let v = methods.blocking("getrawtransaction", vec![json!(txid), json!(true)], false).expect("found");
    assert_eq!((v["height"].clone(), v["confirmations"].clone()), (json!(13), json!(1)), "{v}");
    assert!(v["inputs"][0]["amount"].is_u64(), "{v}");
    crate::testkit::assert_read_off_the_chain_lock(&seen, 4);
}

// The RPC's verbose answers add a transaction's values up; a body edited
// in the data directory may carry outputs summing past u64::MAX (see
// `testkit::node_with_an_edited_body_of_huge_outputs`).
#[test]
fn verbose_answers_about_an_edited_body_with_huge_outputs_do_not_overflow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, hash, txid) = crate::testkit::node_with_an_edited_body_of_huge_outputs(dir.path());
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let methods = Methods::new(node, None, Arc::new(MiningStatus::default()), shutdown);
    let block = methods.blocking("getblock", vec![json!(hash)], false).expect("getblock");
    assert_eq!(block["tx"][1]["fee"], json!(0), "{block}");
    let tx = methods.blocking("getrawtransaction", vec![json!(txid), json!(true)], false).expect("found");
    assert_eq!(tx["fee"], json!(0), "inputs worth less than the outputs: no fee, no overflow: {tx}");
}
