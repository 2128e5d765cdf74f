//! The chain's RPC answers as Bitcoin Core's do, against a real node:
//! `submitblock` says null, "duplicate", "inconclusive" or names the broken
//! rule; `getchaintips` lists every branch with its status; `getblock` of a
//! block it does not have names the hash; `generatetoaddress` returns only
//! blocks that connected.

use lode_core::codec::Encode;
use lode_core::{Address, Block, ChainSpec, Hash256};
use lode_tests::{block_template, burn_address, set_nonce, NodeOptions, TestNode};
use serde_json::{json, Value};

fn hex_of(b: &Block) -> String {
    hex::encode(b.encode())
}

/// A mined block on `parent` (at `height`), paying `to`, with `extra` as a
/// salt so two blocks on one parent differ.
fn mined(node: &TestNode, parent: &str, height: u32, salt: u64) -> Block {
    let spec = ChainSpec::regtest();
    let header = node.rpc("getblockheader", json!([parent]));
    let time = header["time"].as_u64().expect("time") + 1 + salt;
    let mut b = block_template(
        &spec,
        Hash256::from_hex(parent).expect("hash"),
        height,
        time,
        spec.pow_limit,
        Address([salt as u8; 20]),
    );
    set_nonce(&mut b, &spec, true);
    b
}

#[test]
fn submitblock_getchaintips_and_getblock_answer_as_core_does() {
    let node = TestNode::start(NodeOptions::default());
    node.rpc("generatetoaddress", json!([3, burn_address(&node)]));
    let h2 = node.rpc("getblockhash", json!([2])).as_str().expect("hash").to_string();
    let h3 = node.tip();

    // A new block on the tip: null, and it is the tip.
    let b4 = mined(&node, &h3, 4, 1);
    assert_eq!(node.rpc("submitblock", json!([hex_of(&b4)])), Value::Null);
    assert_eq!(node.tip(), b4.hash().to_hex());
    // Again: "duplicate".
    assert_eq!(node.rpc("submitblock", json!([hex_of(&b4)])), json!("duplicate"));
    // A valid block on a side branch (lighter than the tip): "inconclusive".
    let side = mined(&node, &h2, 3, 2);
    assert_eq!(node.rpc("submitblock", json!([hex_of(&side)])), json!("inconclusive"));
    assert_eq!(node.tip(), b4.hash().to_hex(), "a lighter branch does not win");
    // A block whose coinbase claims too much: an error naming the rule.
    let mut greedy = mined(&node, &b4.hash().to_hex(), 5, 3);
    greedy.transactions[0].outputs[0].value = lode_core::Amount::from_coins(1_000_000);
    greedy.header.merkle_root = greedy.compute_merkle_root().0;
    set_nonce(&mut greedy, &ChainSpec::regtest(), true);
    let err = node.call("submitblock", json!([hex_of(&greedy)])).expect_err("invalid");
    assert!(err.message.contains("coinbase") && err.message.contains(&greedy.hash().to_hex()), "{}", err.message);
    let again = node.call("submitblock", json!([hex_of(&greedy)])).expect_err("known invalid");
    assert!(again.message.contains("duplicate-invalid"), "{}", again.message);

    let tips = node.rpc("getchaintips", json!([]));
    let tips = tips.as_array().expect("array");
    let status_of = |hash: &Hash256| {
        tips.iter().find(|t| t["hash"] == json!(hash)).map(|t| (t["status"].clone(), t["branchlen"].clone()))
    };
    assert_eq!(status_of(&b4.hash()), Some((json!("active"), json!(0))));
    assert_eq!(status_of(&side.hash()), Some((json!("valid-headers"), json!(1))));
    assert_eq!(status_of(&greedy.hash()), Some((json!("invalid"), json!(1))));
    assert_eq!(tips.len(), 3, "{tips:?}");

    // getblock of something the node does not have names it.
    let unknown = Hash256([0x5a; 32]).to_hex();
    let err = node.call("getblock", json!([unknown, true])).expect_err("unknown");
    assert!(err.message.contains(&unknown), "{}", err.message);

    // generatetoaddress returns blocks that are on the chain.
    let hashes = node.rpc("generatetoaddress", json!([2, burn_address(&node)]));
    let last = hashes.as_array().and_then(|a| a.last()).and_then(Value::as_str).expect("hash").to_string();
    assert_eq!(node.tip(), last);
    assert_eq!(node.height(), 6);
}
