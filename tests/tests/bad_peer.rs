//! A peer that sends garbage, a block with bad proof of work and an
//! oversized message is thrown out and banned; the honest nodes carry on.

use lode_tests::{bin, burn_address, wait_for, NodeOptions, TestNode};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_garbage_sending_peer_is_banned_and_honest_nodes_keep_going() {
    let started = Instant::now();
    let a = TestNode::start(NodeOptions::default());
    let b = TestNode::start(NodeOptions { bootnodes: vec![a.p2p_addr()], ..Default::default() });
    // Garbage on the sync protocol, a block with bad proof of work, and
    // undecodable plus oversized gossip: each from a fresh identity.
    for mode in ["sync", "badpow", "gossip"] {
        let mut bad = Command::new(bin("lode-badpeer"))
            .arg(a.p2p_addr())
            .arg("regtest")
            .arg(mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lode-badpeer");
        let mut line = String::new();
        BufReader::new(bad.stdout.take().expect("stdout")).read_line(&mut line).expect("peer id");
        let bad_id = line.trim().to_string();
        assert!(bad_id.starts_with("12D3"), "peer id: {bad_id}");
        wait_for(&format!("the {mode} peer to be banned"), Duration::from_secs(60), || {
            let banned = a.rpc("listbanned", json!([]));
            banned.as_array()?.iter().any(|p| p["peer_id"] == json!(bad_id)).then_some(())
        });
        let status = wait_for("the bad peer to be cut off", Duration::from_secs(60), || bad.try_wait().ok().flatten());
        assert!(status.success(), "lode-badpeer ({mode}) was not disconnected");
    }
    // The honest pair still mines and converges.
    b.rpc("generatetoaddress", json!([3, burn_address(&b)]));
    let tip = b.tip();
    wait_for("honest nodes converge", Duration::from_secs(60), || (a.tip() == tip).then_some(()));
    assert_eq!(a.height(), 3, "the bad-PoW block was not accepted");
    eprintln!("bad peer: {:.1}s", started.elapsed().as_secs_f64());
}
