//! The wallet end to end against real nodes: mine to a new wallet, watch
//! the coinbase mature, pay a second wallet, check exact amounts, fee and
//! change, restore from the words, refuse bad input without touching the
//! file, and send twice without a block in between. Then across nodes: a
//! payment sent through one node, mined by another, seen by a third.

use lode_core::ChainSpec;
use lode_tests::wallet_cli::{wallet_address, wallet_err, wallet_json};
use lode_tests::{burn_address, wait_for, wallet, NodeOptions, TestNode};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// The mnemonic printed by `new --json` (field `mnemonic` or `words`).
fn words_of(created: &Value) -> String {
    let w = created.get("mnemonic").or_else(|| created.get("words")).expect("new --json reports the words");
    match w {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        other => panic!("unexpected words {other}"),
    }
}

fn balance(node: &TestNode, file: &Path) -> (u64, i64, u64) {
    let b = wallet_json(node, file, &["balance"]);
    (b["confirmed"].as_u64().unwrap(), b["unconfirmed"].as_i64().unwrap(), b["immature"].as_u64().unwrap())
}

#[test]
fn wallet_end_to_end_on_one_node() {
    let node = TestNode::start(NodeOptions { args: vec!["--no-p2p".into()], ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.wallet"), dir.path().join("b.wallet"));
    let created = wallet_json(&node, &a, &["new"]);
    let words = words_of(&created);
    wallet_json(&node, &b, &["new"]);
    let addr_a = wallet_address(&node, &a);
    let addr_b = wallet_address(&node, &b);
    let spec = ChainSpec::regtest();
    let subsidy = spec.initial_subsidy.units();

    node.rpc("generatetoaddress", json!([1, addr_a]));
    assert_eq!(balance(&node, &a), (0, 0, subsidy), "a fresh coinbase is immature");
    node.rpc("generatetoaddress", json!([spec.coinbase_maturity, burn_address(&node)]));
    assert_eq!(balance(&node, &a), (subsidy, 0, 0), "mature after coinbase_maturity blocks");

    // Bad input is refused before signing, and the file is untouched.
    let before = std::fs::read(&a).unwrap();
    let wrong_net = lode_core::Address([3; 20]).encode("ldev").unwrap();
    let mut typo = addr_b.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == 'q' { 'p' } else { 'q' });
    for (args, why) in [
        (vec!["send", "--to", wrong_net.as_str(), "--amount", "1"], "network"),
        (vec!["send", "--to", typo.as_str(), "--amount", "1"], "checksum"),
        (vec!["send", "--to", addr_b.as_str(), "--amount", "1.000000001"], "decimal"),
        (vec!["send", "--to", addr_b.as_str(), "--amount", "0"], "zero"),
        (vec!["send", "--to", addr_b.as_str(), "--amount", "-1"], ""),
        (vec!["send", "--to", addr_b.as_str(), "--amount", "1000"], "balance"),
    ] {
        let e = wallet_err(&node, &a, &args).to_lowercase();
        assert!(e.contains(why), "{args:?}: {e}");
        assert_eq!(std::fs::read(&a).unwrap(), before, "{args:?} changed the wallet file");
    }
    let out = wallet(&node, &a, &["balance"]);
    assert!(out.status.success());
    let wrong = std::process::Command::new(lode_tests::bin("lode-wallet"))
        .args(["--chain", "regtest", "--wallet"])
        .arg(&a)
        .args(["--rpc", &node.rpc_url(), "--data-dir"])
        .arg(&node.data_dir)
        .arg("balance")
        .env("LODE_WALLET_PASSPHRASE", "wrong passphrase")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).to_lowercase().contains("passphrase"));
    assert_eq!(std::fs::read(&a).unwrap(), before);

    // Pay b 12.5 coins; exact amounts, fee and change on both sides.
    let sent = wallet_json(&node, &a, &["send", "--to", &addr_b, "--amount", "12.5"]);
    let txid = sent["txid"].as_str().unwrap().to_string();
    let tx = node.rpc("getrawtransaction", json!([txid, true]));
    let fee = tx["fee"].as_u64().unwrap();
    assert!(fee > 0);
    let amount = 1_250_000_000u64;
    assert_eq!(balance(&node, &b), (0, amount as i64, 0));
    let status = wallet_json(&node, &a, &["status", &txid]);
    assert_eq!(
        status,
        json!({"txid": txid, "status": "mempool", "height": null, "confirmations": 0, "block_hash": null}),
        "before a block"
    );
    node.rpc("generatetoaddress", json!([1, burn_address(&node)]));
    assert_eq!(balance(&node, &b), (amount, 0, 0));
    assert_eq!(balance(&node, &a), (subsidy - amount - fee, 0, 0), "change comes back to a");
    let mined_at = node.height();
    let mined_in = node.rpc("getblockhash", json!([mined_at]));
    let status = wallet_json(&node, &a, &["status", &txid]);
    assert_eq!(
        status,
        json!({"txid": txid, "status": "confirmed", "height": mined_at, "confirmations": 1, "block_hash": mined_in}),
        "in the block just mined"
    );
    node.rpc("generatetoaddress", json!([2, burn_address(&node)]));
    let status = wallet_json(&node, &b, &["status", &txid]);
    assert_eq!(
        (&status["status"], &status["height"], &status["confirmations"]),
        (&json!("confirmed"), &json!(mined_at), &json!(3))
    );
    let unknown = "ab".repeat(32);
    assert_eq!(wallet_json(&node, &a, &["status", &unknown])["status"], "unknown");
    let text = wallet(&node, &a, &["status", &txid]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("confirmed at height {mined_at} (3 confirmations)")), "{text}");

    // Two sends in a row without a block: no double spend between them.
    let s1 = wallet_json(&node, &a, &["send", "--to", &addr_b, "--amount", "1"]);
    let s2 = wallet_json(&node, &a, &["send", "--to", &addr_b, "--amount", "2"]);
    assert_ne!(s1["txid"], s2["txid"]);
    assert_eq!(node.rpc("getmempoolinfo", json!([]))["size"], 2, "both accepted by the mempool");
    node.rpc("generatetoaddress", json!([1, burn_address(&node)]));
    assert_eq!(balance(&node, &b).0, amount + 300_000_000);

    // Offline signing, then broadcast; history lists what happened.
    let offline = wallet_json(&node, &a, &["send", "--to", &addr_b, "--amount", "0.5", "--offline"]);
    assert_eq!(node.rpc("getmempoolinfo", json!([]))["size"], 0, "offline does not submit");
    let hex = offline["hex"].as_str().unwrap().to_string();
    let broadcast = wallet_json(&node, &a, &["broadcast", &hex]);
    assert_eq!(broadcast["txid"], offline["txid"]);
    node.rpc("generatetoaddress", json!([1, burn_address(&node)]));
    let history = wallet_json(&node, &b, &["history"]);
    let rows = history.as_array().unwrap();
    assert_eq!(rows.len(), 4, "four payments received: {history}");
    assert!(rows.iter().all(|r| r["direction"] == "received" && r["confirmations"].as_u64().unwrap() >= 1));

    // Restore from the words into a fresh file: same balance.
    let restored = dir.path().join("restored.wallet");
    wallet_json(&node, &restored, &["restore", "--words", &words]);
    assert_eq!(balance(&node, &restored).0, balance(&node, &a).0);
}

#[test]
fn payment_sent_through_one_node_is_mined_by_another_and_seen_by_a_third() {
    let [n0, n1, n2] = TestNode::start_three();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.wallet"), dir.path().join("b.wallet"));
    wallet_json(&n0, &a, &["new"]);
    wallet_json(&n0, &b, &["new"]);
    let addr_a = wallet_address(&n0, &a);
    let addr_b = wallet_address(&n0, &b);
    let maturity = u64::from(ChainSpec::regtest().coinbase_maturity);
    n1.rpc("generatetoaddress", json!([1, addr_a]));
    n1.rpc("generatetoaddress", json!([maturity, burn_address(&n1)]));
    let tip = n1.tip();
    wait_for("n0 sees the coins", Duration::from_secs(60), || (n0.tip() == tip).then_some(()));
    let txid = wallet_json(&n0, &a, &["send", "--to", &addr_b, "--amount", "3"])["txid"].as_str().unwrap().to_string();
    wait_for("the payment reaches n1's mempool", Duration::from_secs(60), || {
        n1.rpc("getrawmempool", json!([])).as_array().unwrap().iter().any(|t| t == &json!(txid)).then_some(())
    });
    n1.rpc("generatetoaddress", json!([1, burn_address(&n1)]));
    wait_for("n2 sees it confirmed", Duration::from_secs(60), || {
        let v = n2.call("getrawtransaction", json!([txid, true])).ok()?;
        (v["confirmations"].as_u64()? >= 1).then_some(())
    });
    assert_eq!(n2.rpc("getbalance", json!([addr_b]))["confirmed"], 300_000_000);
}
