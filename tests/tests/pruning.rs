//! A pruned node (`--prune-blocks`) as a black box: SIGKILLed several times
//! while it syncs, it restarts consistent (UTXO set, prune height and stored
//! bodies in agreement); `getblock` below the prune height is the pruned
//! error; the explorer answers 410; the flag's limits and the refusal to
//! reopen a pruned directory as an archive.

use lode_core::subsidy::total_supply_at;
use lode_core::{ChainSpec, Height};
use lode_tests::{bin, burn_address, free_port, wait_for, NodeOptions, TestNode};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONVERGE: Duration = Duration::from_secs(90);
/// The smallest window, so a few hundred blocks already prune.
const KEEP: u64 = 288;
/// Blocks the archive node mines ahead of the pruned one each round.
const BATCH: u64 = 700;
/// JSON-RPC code of a pruned body (docs/rpc.md).
const PRUNED: i64 = -1;

fn mine(n: &TestNode, blocks: u64) {
    let addr = burn_address(n);
    n.rpc("generatetoaddress", json!([blocks, addr]));
}

fn connections(n: &TestNode) -> u64 {
    n.rpc("getnetworkinfo", json!([]))["connections"].as_u64().expect("connections")
}

/// Everything a restarted pruned node must agree on: the integrity check,
/// the UTXO total, the prune height for its tip, every body from the prune
/// height up readable and none below it.
fn check_consistent(node: &TestNode, spec: &ChainSpec, what: &str) -> u64 {
    assert_eq!(node.rpc("verifychain", json!([]))["ok"], true, "{what}: verifychain");
    let height = node.height();
    let utxo = node.rpc("gettxoutsetinfo", json!([]));
    assert_eq!(utxo["height"], height, "{what}");
    assert_eq!(utxo["total_amount"], total_supply_at(spec, Height(height as u32)).units(), "{what}: UTXO total");
    let info = node.rpc("getblockchaininfo", json!([]));
    assert_eq!(info["pruned"], true, "{what}");
    let prune = info["prune_height"].as_u64().expect("prune_height");
    assert_eq!(prune, (height + 1).saturating_sub(KEEP), "{what}: prune height at tip {height}");
    for h in 0..=height {
        let hash = node.rpc("getblockhash", json!([h]));
        let got = node.call("getblock", json!([hash, false]));
        if h < prune {
            let err = got.expect_err("a body below the prune height is gone");
            assert_eq!(err.code, PRUNED, "{what}: height {h}: {}", err.message);
            assert!(err.message.contains("pruned"), "{}", err.message);
        } else {
            got.unwrap_or_else(|e| panic!("{what}: body at height {h} (prune height {prune}): {e:?}"));
        }
    }
    prune
}

#[test]
fn pruned_node_killed_during_sync_restarts_consistent() {
    let started = Instant::now();
    let spec = ChainSpec::regtest();
    let archive = TestNode::start(NodeOptions::default());
    let explorer = free_port();
    let args = vec!["--prune-blocks".into(), KEEP.to_string(), "--explorer-port".into(), explorer.to_string()];
    let mut pruned = TestNode::start(NodeOptions { bootnodes: vec![archive.p2p_addr()], args, ..Default::default() });
    wait_for("a connection", CONVERGE, || (connections(&pruned) > 0).then_some(()));
    let id = pruned.peer_id();
    let mut kills = Vec::new();
    for (round, fraction) in [0.6, 0.4, 0.8, 0.5, 0.7].into_iter().enumerate() {
        if kills.len() == 3 {
            break;
        }
        // Cut off while the archive mines ahead; reconnected, then killed
        // partway through the sync; restarted still cut off, so what it
        // has is what survived the kill.
        archive.rpc("banpeer", json!([id, 3600]));
        wait_for("cut off", CONVERGE, || (connections(&pruned) == 0).then_some(()));
        let start = pruned.height();
        mine(&archive, BATCH);
        let target = archive.height();
        archive.rpc("unbanpeer", json!([id]));
        pruned.rpc("addpeer", json!([archive.p2p_addr()]));
        let threshold = start + 1 + ((target - start - 2) as f64 * fraction) as u64;
        let deadline = Instant::now() + CONVERGE;
        let seen = loop {
            let h = pruned.height();
            if h >= threshold {
                break h;
            }
            assert!(Instant::now() < deadline, "round {round}: stuck at {h} of {target}");
        };
        if seen < target {
            pruned.kill();
        }
        archive.rpc("banpeer", json!([id, 3600]));
        if seen >= target {
            eprintln!("round {round}: synced before the kill; no crash this round");
            continue;
        }
        pruned.start_again();
        let after = pruned.height();
        assert!(after >= seen, "round {round}: blocks connected before the kill were lost ({seen} then {after})");
        let prune = check_consistent(&pruned, &spec, &format!("after kill {round}"));
        if after < target {
            kills.push((start, seen, after, prune, target));
        }
    }
    eprintln!("kills (start, seen, after restart, prune height, target): {kills:?}");
    assert!(kills.len() >= 3, "three SIGKILLs landed mid-sync: {kills:?}");
    // Reconnected it catches up, pruning as it goes, and agrees with the
    // archive on the UTXO set.
    archive.rpc("unbanpeer", json!([id]));
    pruned.rpc("addpeer", json!([archive.p2p_addr()]));
    let tip = archive.tip();
    wait_for("caught up", CONVERGE, || (pruned.tip() == tip).then_some(()));
    check_consistent(&pruned, &spec, "caught up");
    assert_eq!(pruned.rpc("gettxoutsetinfo", json!([])), archive.rpc("gettxoutsetinfo", json!([])));
    let info = archive.rpc("getblockchaininfo", json!([]));
    assert_eq!((info["pruned"].clone(), info["prune_height"].clone()), (json!(false), json!(null)));
    // The explorer: 410 with a JSON error for a pruned block's transactions,
    // and the header still answers.
    let old = pruned.rpc("getblockhash", json!([5]));
    let old = old.as_str().expect("hash");
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
    let url = |p: &str| format!("http://127.0.0.1:{explorer}{p}");
    let resp = client.get(url(&format!("/api/block/{old}/txs"))).send().expect("explorer");
    assert_eq!(resp.status().as_u16(), 410);
    let body: serde_json::Value = resp.json().expect("json error");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("pruned")), "{body}");
    let resp = client.get(url(&format!("/api/block/{old}"))).send().expect("explorer");
    assert_eq!(resp.status().as_u16(), 200);
    let coinbase = archive.rpc("getblock", json!([old]))["tx"][0]["txid"].clone();
    let err = pruned.call("getrawtransaction", json!([coinbase])).expect_err("its block is pruned");
    assert_eq!(err.code, PRUNED, "{}", err.message);
    // Reopened without --prune-blocks the directory is refused, untouched.
    pruned.stop();
    let out = Command::new(bin("lode-node"))
        .args(["--chain", "regtest", "--no-p2p", "--rpc-port", &free_port().to_string(), "--data-dir"])
        .arg(&pruned.data_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run lode-node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a pruned directory opened as an archive: {stderr}");
    assert!(stderr.contains("pruned") && stderr.contains("resync"), "{stderr}");
    pruned.start_again();
    check_consistent(&pruned, &spec, "after the refused archive start");
    let mut nodes = [archive, pruned];
    for n in nodes.iter_mut() {
        assert!(n.stop().success());
    }
    eprintln!("pruned crash and restart: {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn prune_window_below_the_minimum_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bin("lode-node"))
        .args(["--chain", "regtest", "--no-p2p", "--prune-blocks", "287", "--rpc-port", &free_port().to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run lode-node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--prune-blocks 287 is too small") && stderr.contains("288"), "{stderr}");
}
