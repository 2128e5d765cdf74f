//! A single node driven over JSON-RPC: mining on regtest, transaction
//! submission (valid, double spend, bad signature, malformed), restart
//! persistence, authentication, and devnet mining with --mine.

use lode_core::codec::{Decode, Encode};
use lode_core::difficulty::{next_bits, window_len, HeaderSample};
use lode_core::pow::CompactTarget;
use lode_core::spec::DifficultyAlgorithm;
use lode_core::tx::{Transaction, Unlock};
use lode_core::{Address, ChainSpec};
use lode_tests::{wait_for, NodeOptions, TestKey, TestNode};
use serde_json::json;
use std::time::Duration;

fn tx_of((_, hex): &(String, String)) -> Transaction {
    Transaction::decode_all(&hex::decode(hex).unwrap(), 1 << 20).unwrap()
}

fn hex_of(tx: &Transaction) -> String {
    hex::encode(tx.encode())
}

#[test]
fn regtest_mining_transactions_and_restart() {
    let mut node = TestNode::start(NodeOptions { args: vec!["--no-p2p".into()], ..Default::default() });
    let alice = TestKey::new();
    let bob = TestKey::new();
    let hashes = node.rpc("generatetoaddress", json!([15, alice.text]));
    assert_eq!(hashes.as_array().unwrap().len(), 15);
    assert_eq!(node.height(), 15);

    let balance = node.rpc("getbalance", json!([alice.text]));
    let subsidy = ChainSpec::regtest().initial_subsidy.units();
    // 15 coinbases; the next block is 16, so those at heights 1..=6 have
    // the 10 confirmations maturity asks for.
    assert_eq!(balance["confirmed"].as_u64().unwrap(), 6 * subsidy);
    assert_eq!(balance["confirmed"].as_u64().unwrap() + balance["immature"].as_u64().unwrap(), 15 * subsidy);

    let coins = alice.coins(&node);
    assert!(coins.len() >= 3);
    // Valid.
    let pay = tx_of(&alice.pay(&coins[0], &bob.address, 10 * lode_core::COIN, 10_000));
    let txid = node.rpc("sendrawtransaction", json!([hex_of(&pay)]));
    assert_eq!(txid.as_str().unwrap(), pay.txid().to_hex());
    assert_eq!(node.rpc("getmempoolinfo", json!([]))["size"], 1);
    // Same again: already known.
    let again = node.call("sendrawtransaction", json!([hex_of(&pay)])).unwrap_err();
    assert_eq!(again.code, -27, "{}", again.message);
    // Double spend of the same coin to someone else.
    let double = tx_of(&alice.pay(&coins[0], &alice.address, 5 * lode_core::COIN, 10_000));
    let err = node.call("sendrawtransaction", json!([hex_of(&double)])).unwrap_err();
    assert_eq!(err.code, -26, "{}", err.message);
    assert!(err.message.contains(&pay.txid().to_hex()), "names the conflicting tx: {}", err.message);
    // Bad signature.
    let mut bad = tx_of(&alice.pay(&coins[1], &bob.address, lode_core::COIN, 10_000));
    if let Unlock::Signature { sig, .. } = &mut bad.inputs[0].unlock {
        sig.0[0] ^= 1;
    }
    let err = node.call("sendrawtransaction", json!([hex_of(&bad)])).unwrap_err();
    assert_eq!(err.code, -25, "{}", err.message);
    assert!(err.message.contains("signature"), "{}", err.message);
    // Malformed hex and undecodable bytes.
    assert_eq!(node.call("sendrawtransaction", json!(["zz"])).unwrap_err().code, -32602);
    assert_eq!(node.call("sendrawtransaction", json!(["00"])).unwrap_err().code, -32602);
    // Wrong parameter types, unknown method, unknown hash.
    assert_eq!(node.call("getblockhash", json!(["ten"])).unwrap_err().code, -32602);
    assert_eq!(node.call("nosuchmethod", json!([])).unwrap_err().code, -32601);
    assert_eq!(node.call("getblock", json!(["00".repeat(32)])).unwrap_err().code, -5);

    // Mined: the mempool empties, the payment is confirmed.
    node.rpc("generatetoaddress", json!([1, alice.text]));
    assert_eq!(node.rpc("getmempoolinfo", json!([]))["size"], 0);
    let v = node.rpc("getrawtransaction", json!([pay.txid().to_hex(), true]));
    assert_eq!(v["height"], 16);
    assert_eq!(v["fee"], 10_000);
    assert_eq!(node.rpc("getbalance", json!([bob.text]))["confirmed"], 10 * lode_core::COIN);

    let before = node.rpc("gettxoutsetinfo", json!([]));
    let status = node.stop();
    assert!(status.success(), "clean exit after stop: {status}");
    assert!(!node.data_dir.join(".cookie").exists(), "cookie removed at stop");
    node.start_again();
    assert_eq!(node.rpc("gettxoutsetinfo", json!([])), before);
    assert_eq!(node.rpc("getrawtransaction", json!([pay.txid().to_hex(), true]))["height"], 16);
    assert_eq!(node.rpc("verifychain", json!([]))["ok"], true);
    let status = node.stop();
    assert!(status.success(), "clean exit after the restart too: {status}");
}

#[test]
fn unauthenticated_rpc_is_refused() {
    let node = TestNode::start(NodeOptions { args: vec!["--no-p2p".into()], ..Default::default() });
    let client = reqwest::blocking::Client::new();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "getblockchaininfo", "params": []});
    let resp = client.post(node.rpc_url()).json(&body).send().unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = client.post(node.rpc_url()).basic_auth("__cookie__", Some("wrong")).json(&body).send().unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(node.data_dir.join(".cookie")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(node.height(), 0, "authenticated calls work");
}

#[test]
fn generatetoaddress_is_refused_off_regtest() {
    let node =
        TestNode::start(NodeOptions { chain: "devnet".into(), args: vec!["--no-p2p".into()], ..Default::default() });
    let addr = Address([1; 20]).encode("ldev").unwrap();
    assert_eq!(node.call("generatetoaddress", json!([1, addr])).unwrap_err().code, -8);
}

/// Devnet with `--mine`: every block carries the bits LWMA demands from
/// its ancestors (recomputed here from the headers the node reports), and
/// the difficulty moves the right way: easier after block 1 (its solve time
/// since the old genesis timestamp is capped at 6x the spacing), harder
/// again once blocks come clearly faster than the spacing.
#[test]
fn devnet_mine_flag_mines_and_retargets_every_block() {
    let spec = ChainSpec::devnet();
    assert!(matches!(spec.difficulty, DifficultyAlgorithm::Lwma { .. }), "devnet retargets");
    let addr = Address([7; 20]).encode(&spec.address_prefix).unwrap();
    let mut node = TestNode::start(NodeOptions {
        chain: "devnet".into(),
        args: vec![
            "--no-p2p".into(),
            "--mine".into(),
            "--mine-threads".into(),
            "1".into(),
            "--miner-address".into(),
            addr,
        ],
        ..Default::default()
    });
    let target = 12;
    wait_for("devnet blocks", Duration::from_secs(180), || (node.height() >= target).then_some(()));
    let info = node.rpc("getmininginfo", json!([]));
    assert_eq!(info["mining"], true);
    assert!(info["hashrate"].as_f64().unwrap() > 0.0);
    let headers: Vec<HeaderSample> = (0..=target)
        .map(|h| {
            let hash = node.rpc("getblockhash", json!([h]));
            let header = node.rpc("getblockheader", json!([hash]));
            let bits = u32::from_str_radix(header["bits"].as_str().expect("bits"), 16).expect("hex bits");
            HeaderSample { time: header["time"].as_u64().expect("time"), bits: CompactTarget(bits) }
        })
        .collect();
    let status = node.stop();
    assert!(status.success(), "{status}");
    assert_eq!(headers[0].bits, spec.genesis.bits);
    for h in 1..headers.len() {
        let from = h.saturating_sub(window_len(&spec));
        assert_eq!(headers[h].bits, next_bits(&spec, &headers[from..h]), "block {h} has the bits LWMA demands");
    }
    let target_of = |h: usize| headers[h].bits.to_target().expect("target").0;
    assert_eq!(headers[1].bits, spec.genesis.bits, "block 1 has only genesis to go by");
    assert!(target_of(2) > target_of(1), "easier after block 1's capped 30 s solve time");
    // Past the peak, blocks came faster than the spacing: the target fell.
    let peak = (1..headers.len()).max_by_key(|&h| target_of(h)).expect("blocks");
    let last = headers.len() - 1;
    let mean = (headers[last].time - headers[peak].time) as f64 / (last - peak).max(1) as f64;
    eprintln!(
        "devnet: bits {:?}; peak at block {peak}, then a mean spacing of {mean:.1}s (spec {}s)",
        headers.iter().map(|s| s.bits).collect::<Vec<_>>(),
        spec.target_spacing_secs
    );
    // (Only when they clearly were: LWMA weighs every solve time of its
    // window, the slow first one included, so a borderline run proves little.)
    if mean < spec.target_spacing_secs as f64 / 4.0 && last >= peak + 5 {
        assert!(target_of(last) < target_of(peak), "harder after blocks faster than the spacing");
    } else {
        eprintln!("blocks were not clearly faster than the spacing after the peak; direction not checked");
    }
    assert!(headers.iter().skip(2).all(|s| s.bits != spec.genesis.bits), "the difficulty moved off genesis");
}

#[test]
fn operator_mistakes_get_a_one_line_error_and_metrics_are_served() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let bad_spec = dir.path().join("bad.json");
    std::fs::write(&bad_spec, "{ not json").unwrap();
    let data = dir.path().join("data");
    for (args, expect) in [
        (vec!["--chain", "regtest", "--rpc-port", port.as_str(), "--no-p2p"], "cannot bind rpc"),
        (vec!["--chain", bad_spec.to_str().unwrap(), "--no-p2p"], "chain spec"),
        (vec!["--chain", "mainnet", "--no-p2p"], "cannot read chain spec"),
        (vec!["--chain", "regtest", "--mine", "--no-p2p"], "--miner-address"),
    ] {
        let out = std::process::Command::new(lode_tests::bin("lode-node"))
            .args(&args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(err.trim().lines().filter(|l| l.contains("error")).count(), 1, "one line: {err}");
        assert!(!data.join("chain").exists(), "{args:?} wrote the database");
    }
    let node = TestNode::start(NodeOptions { args: vec!["--no-p2p".into()], metrics: true, ..Default::default() });
    let metrics_port = node.metrics_port.expect("metrics port");
    node.rpc("generatetoaddress", json!([2, lode_tests::burn_address(&node)]));
    let text = reqwest::blocking::get(format!("http://127.0.0.1:{metrics_port}/metrics")).unwrap().text().unwrap();
    assert!(text.contains("lode_chain_height 2"), "{text}");
    assert!(text.contains("lode_block_validation_seconds_count"), "{text}");
}

/// The harness survives a port taken between `free_port` and the node's
/// bind: the node exits saying so and is started again on new ports.
#[test]
fn a_node_given_taken_ports_is_started_again_on_free_ones() {
    let rpc_taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let p2p_taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let (rpc_port, p2p_port) = (rpc_taken.local_addr().unwrap().port(), p2p_taken.local_addr().unwrap().port());
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::start_in(dir.path(), NodeOptions::default(), rpc_port, p2p_port);
    assert_ne!(node.rpc_port, rpc_port);
    assert_eq!(node.height(), 0);
    let log = std::fs::read_to_string(dir.path().join("node.log")).unwrap();
    assert!(lode_tests::is_bind_failure(&log), "the first start failed on the taken port: {log}");
    // The p2p port is bound after the RPC port: take only that one.
    drop(rpc_taken);
    let p2p_only = TestNode::start_in(&dir.path().join("second"), NodeOptions::default(), rpc_port, p2p_port);
    assert_ne!(p2p_only.p2p_port, p2p_port);
    assert!(p2p_only.p2p_addr().contains(&format!("/tcp/{}/", p2p_only.p2p_port)));
    assert!(node.stop().success());
}
