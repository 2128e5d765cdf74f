//! Fees end to end with real nodes: a payment stuck at the minimum fee rate
//! is replaced with `lode-wallet bumpfee`, the replacement relayed and
//! mined, the original gone from every mempool; a replacement paying too
//! little is refused with what it must pay; `getmempoolentry` counts a
//! family; `send` to several recipients and `sweep` make the expected
//! outputs; and `estimatesmartfee` learns from mined blocks, keeps what it
//! learnt across a restart and ignores a damaged file.

use lode_core::ChainSpec;
use lode_tests::wallet_cli::{wallet_address, wallet_err, wallet_json};
use lode_tests::{burn_address, wait_for, NodeOptions, TestKey, TestNode};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn in_mempool(node: &TestNode, txid: &str) -> bool {
    node.rpc("getrawmempool", json!([])).as_array().unwrap().iter().any(|t| t == txid)
}

#[test]
fn a_stuck_payment_is_bumped_relayed_and_mined_and_the_original_leaves_every_mempool() {
    let [n0, n1, n2] = TestNode::start_three();
    let nodes = [&n0, &n1, &n2];
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.wallet"), dir.path().join("b.wallet"));
    wallet_json(&n0, &a, &["new"]);
    wallet_json(&n0, &b, &["new"]);
    let (addr_a, addr_b) = (wallet_address(&n0, &a), wallet_address(&n0, &b));
    let maturity = u64::from(ChainSpec::regtest().coinbase_maturity);
    n1.rpc("generatetoaddress", json!([1, addr_a]));
    n1.rpc("generatetoaddress", json!([maturity, burn_address(&n1)]));
    let tip = n1.tip();
    for n in nodes {
        wait_for("every node at the funded tip", WAIT, || (n.tip() == tip).then_some(()));
    }

    // A fresh chain has no fee data: the minimum, and a reason.
    let est = n0.rpc("estimatesmartfee", json!([6]));
    assert_eq!((est["feerate"].as_u64(), est["blocks"].as_u64()), (Some(1), Some(6)), "{est}");
    assert!(est["errors"][0].as_str().unwrap().starts_with("insufficient data"), "{est}");

    // Stuck at the minimum rate, on every node.
    let stuck = wallet_json(&n0, &a, &["send", "--to", &addr_b, "--amount", "1", "--fee-rate", "1", "--yes"]);
    let old = stuck["txid"].as_str().unwrap().to_string();
    for n in nodes {
        wait_for("the payment reaches every mempool", WAIT, || in_mempool(n, &old).then_some(()));
    }
    let entry = n2.rpc("getmempoolentry", json!([old]));
    assert_eq!(entry["fee"], entry["size"], "1 per byte: {entry}");
    assert_eq!((entry["ancestors"].as_u64(), entry["descendants"].as_u64()), (Some(1), Some(1)));

    // Not higher: refused by the wallet before signing, file unchanged.
    let before = std::fs::read(&a).unwrap();
    let e = wallet_err(&n0, &a, &["bumpfee", &old, "--fee-rate", "1", "--yes"]);
    assert!(e.contains("not higher"), "{e}");
    assert_eq!(std::fs::read(&a).unwrap(), before);

    let bumped = wallet_json(&n0, &a, &["bumpfee", &old, "--fee-rate", "4", "--yes"]);
    let new = bumped["txid"].as_str().unwrap().to_string();
    assert_eq!(bumped["replaces"], json!(old));
    for n in nodes {
        wait_for("the replacement replaces the original everywhere", WAIT, || {
            (in_mempool(n, &new) && !in_mempool(n, &old)).then_some(())
        });
    }
    let entry = n1.rpc("getmempoolentry", json!([new]));
    assert_eq!(entry["fee"].as_u64().unwrap(), 4 * entry["size"].as_u64().unwrap());
    assert_eq!(n1.call("getmempoolentry", json!([old])).unwrap_err().code, -5);

    n2.rpc("generatetoaddress", json!([1, burn_address(&n2)]));
    for n in nodes {
        wait_for("the replacement confirmed everywhere", WAIT, || {
            let v = n.call("getrawtransaction", json!([new, true])).ok()?;
            (v["confirmations"].as_u64()? >= 1).then_some(())
        });
        assert_eq!(n.call("getrawtransaction", json!([old])).unwrap_err().code, -5, "the original is gone");
        assert_eq!(n.rpc("getmempoolinfo", json!([]))["size"], 0);
    }
    assert_eq!(wallet_json(&n0, &b, &["balance"])["confirmed"], 100_000_000);
    let history = wallet_json(&n0, &a, &["history"]);
    let dirs: Vec<&str> = history.as_array().unwrap().iter().map(|r| r["direction"].as_str().unwrap()).collect();
    assert_eq!(dirs, vec!["mined", "replaced", "sent"], "{history}");
}

#[test]
fn a_replacement_paying_too_little_is_refused_naming_what_it_must_pay() {
    let node = TestNode::start(NodeOptions { args: vec!["--no-p2p".into()], ..Default::default() });
    let key = TestKey::new();
    let maturity = u64::from(ChainSpec::regtest().coinbase_maturity);
    node.rpc("generatetoaddress", json!([1, key.text]));
    node.rpc("generatetoaddress", json!([maturity, burn_address(&node)]));
    let coin = key.coins(&node)[0].clone();
    let (x, y) = (lode_core::Address([7; 20]), lode_core::Address([8; 20]));
    let (first, hex) = key.pay(&coin, &x, 100_000_000, 300);
    node.rpc("sendrawtransaction", json!([hex]));
    let size = node.rpc("getmempoolentry", json!([first]))["size"].as_u64().unwrap();
    // A higher fee, but not the original's plus 1 per byte of its own.
    let (_, cheap) = key.pay(&coin, &y, 100_000_000, 301);
    let e = node.call("sendrawtransaction", json!([cheap])).unwrap_err();
    assert_eq!(e.code, -26, "{}", e.message);
    let need = 300 + size;
    assert!(e.message.contains(&format!("must pay at least {need}")) && e.message.contains(&first), "{}", e.message);
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([first]));
    // Exactly that replaces it.
    let (second, enough) = key.pay(&coin, &y, 100_000_000, need);
    node.rpc("sendrawtransaction", json!([enough]));
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([second]));
    assert_eq!(node.call("getmempoolentry", json!([first])).unwrap_err().code, -5);
}

#[test]
fn send_to_several_and_sweep_make_the_expected_outputs() {
    let node = TestNode::start(NodeOptions { args: vec!["--no-p2p".into()], ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|n| dir.path().join(format!("{n}.wallet")));
    for w in [&a, &b, &c] {
        wallet_json(&node, w, &["new"]);
    }
    let (addr_a, addr_b, addr_c) = (wallet_address(&node, &a), wallet_address(&node, &b), wallet_address(&node, &c));
    let spec = ChainSpec::regtest();
    node.rpc("generatetoaddress", json!([2, addr_a]));
    node.rpc("generatetoaddress", json!([spec.coinbase_maturity, burn_address(&node)]));
    let sent =
        wallet_json(&node, &a, &["send", "--to", &addr_b, "--amount", "1", "--to", &addr_c, "--amount", "2", "--yes"]);
    let tx = node.rpc("getrawtransaction", json!([sent["txid"], true]));
    let paid = |addr: &str| -> u64 {
        tx["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["address"] == addr)
            .map(|o| o["amount"].as_u64().unwrap())
            .sum()
    };
    assert_eq!((paid(&addr_b), paid(&addr_c)), (100_000_000, 200_000_000), "{tx}");
    assert_eq!(tx["outputs"].as_array().unwrap().len(), 3, "two payments and change: {tx}");
    assert_eq!(tx["fee"], sent["fee"]);
    node.rpc("generatetoaddress", json!([1, burn_address(&node)]));
    let left = wallet_json(&node, &a, &["balance"])["confirmed"].as_u64().unwrap();
    let swept = wallet_json(&node, &a, &["sweep", "--to", &addr_c, "--fee-rate", "2", "--yes"]);
    let tx = node.rpc("getrawtransaction", json!([swept["txid"], true]));
    let outputs = tx["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1, "{tx}");
    assert_eq!(outputs[0]["address"], json!(addr_c));
    assert_eq!(outputs[0]["amount"].as_u64().unwrap() + tx["fee"].as_u64().unwrap(), left);
    assert_eq!(tx["fee"].as_u64().unwrap(), 2 * tx["size"].as_u64().unwrap());
    node.rpc("generatetoaddress", json!([1, burn_address(&node)]));
    assert_eq!(wallet_json(&node, &a, &["balance"]), json!({"confirmed": 0, "unconfirmed": 0, "immature": 0}));
    assert!(wallet_err(&node, &a, &["sweep", "--to", &addr_c]).contains("insufficient"));
}

#[test]
fn fee_estimates_learn_from_blocks_survive_a_restart_and_ignore_a_damaged_file() {
    let mut node = TestNode::start(NodeOptions { args: vec!["--no-p2p".into()], ..Default::default() });
    let key = TestKey::new();
    let maturity = u64::from(ChainSpec::regtest().coinbase_maturity);
    let n = 30;
    node.rpc("generatetoaddress", json!([n, key.text]));
    node.rpc("generatetoaddress", json!([maturity, burn_address(&node)]));
    // Thirty payments at exactly 10 per byte, all mined in the next block.
    for coin in key.coins(&node) {
        let value = coin["amount"].as_u64().unwrap();
        let fee = 10 * 177; // one input, one output
        let (_, hex) = key.pay(&coin, &key.address, value - fee, fee);
        node.rpc("sendrawtransaction", json!([hex]));
    }
    assert_eq!(node.rpc("getmempoolinfo", json!([]))["size"], n);
    node.rpc("generatetoaddress", json!([1, burn_address(&node)]));
    assert_eq!(node.rpc("getmempoolinfo", json!([]))["size"], 0);
    let learnt = node.rpc("estimatesmartfee", json!([1]));
    assert_eq!(learnt, json!({"feerate": 10, "blocks": 1}));
    assert_eq!(node.call("estimatesmartfee", json!([0])).unwrap_err().code, -32602);

    // Saved at a clean stop, loaded at start.
    node.stop();
    let file = node.data_dir.join("fee_estimates.dat");
    assert!(file.exists(), "the estimator's file is in the data directory");
    node.start_again();
    assert_eq!(node.rpc("estimatesmartfee", json!([1])), learnt);

    // A damaged file: a warning, and estimates start from scratch.
    node.stop();
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();
    node.start_again();
    let est = node.rpc("estimatesmartfee", json!([1]));
    assert!(est["errors"][0].as_str().unwrap().starts_with("insufficient data"), "{est}");
    assert!(node.log_tail().contains("ignoring the fee estimates file"), "{}", node.log_tail());
}
