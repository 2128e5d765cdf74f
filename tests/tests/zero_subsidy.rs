//! The zero-subsidy era on a real node: regtest halves every 150 blocks and
//! pays nothing from height 4,950; mining goes on past it (the coinbase of a
//! block without fees has no outputs) and no coin appears from nowhere.

use lode_core::subsidy::total_supply_at;
use lode_core::{ChainSpec, Height};
use lode_tests::{burn_address, NodeOptions, TestNode};
use serde_json::json;

#[test]
fn regtest_mines_5000_blocks_from_genesis_past_the_last_halving() {
    let node = TestNode::start(NodeOptions::default());
    let addr = burn_address(&node);
    let hashes = node.rpc("generatetoaddress", json!([5_000, addr]));
    assert_eq!(hashes.as_array().map(Vec::len), Some(5_000));
    assert_eq!(node.height(), 5_000);
    let info = node.rpc("gettxoutsetinfo", json!([]));
    let spec = ChainSpec::regtest();
    assert_eq!(info["total_amount"].as_u64(), Some(total_supply_at(&spec, Height(5_000)).units()));
    assert_eq!(total_supply_at(&spec, Height(5_000)), total_supply_at(&spec, Height(4_949)), "nothing paid after");
    let last = node.rpc("getblock", json!([node.tip(), true]));
    assert_eq!(last["tx"][0]["outputs"], json!([]), "a coinbase with nothing to claim has no outputs");
}
