//! `sendrawtransactions`: one answer per transaction in order, parents and
//! children in one call, and the same refusals `sendrawtransaction` gives.

use super::*;
use crate::chain::{BlockSource, ChainConfig};
use crate::mempool::MempoolPolicy;
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
    let node = Node::open(dir.path(), ChainSpec::regtest(), ChainConfig::default(), MempoolPolicy::default())
        .expect("open node");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(14, 0);
    for b in &blocks {
        node.process_block(b.clone(), BlockSource::Requested).expect("import");
    }
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
