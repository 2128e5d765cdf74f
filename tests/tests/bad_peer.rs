//! Misbehaving peers, each from its own identity (its own `lode-badpeer`
//! process and key): garbage on the sync protocol, undecodable gossip,
//! gossip over the block size limit (just over, and far over), and a block
//! that is valid in every respect but its proof of work. Each is disconnected and banned; the bad-PoW block is
//! never stored, while the same block with a nonce that meets the target
//! is accepted (so PoW alone got it refused); the honest nodes carry on.

use lode_core::codec::{Decode, Encode};
use lode_core::subsidy::block_subsidy;
use lode_core::validation::{check_block, check_header, median_time_past, BlockError};
use lode_core::{Block, ChainSpec, Height};
use lode_tests::{bin, burn_address, set_nonce, wait_for, NodeOptions, TestNode};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A running `lode-badpeer`, killed if the test fails before it exits.
struct BadPeer {
    child: Child,
    id: String,
    /// Further lines it printed on stdout (the block hex in `badpow` mode).
    lines: Vec<String>,
}

impl Drop for BadPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_bad_peer(target: &TestNode, mode: &[String], extra_lines: usize) -> BadPeer {
    let mut child = Command::new(bin("lode-badpeer"))
        .arg(target.p2p_addr())
        .arg("regtest")
        .args(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn lode-badpeer");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut read_line = || {
        let mut line = String::new();
        out.read_line(&mut line).expect("read lode-badpeer's stdout");
        line.trim().to_string()
    };
    let id = read_line();
    let lines = (0..extra_lines).map(|_| read_line()).collect();
    let peer = BadPeer { child, id, lines };
    assert!(peer.id.starts_with("12D3"), "{mode:?}: peer id {:?}", peer.id);
    peer
}

/// Waits until `node` has banned the peer and the peer (which exits 0 once
/// disconnected after misbehaving) has exited; checks it is not connected.
fn expect_banned_and_cut_off(node: &TestNode, mut peer: BadPeer, what: &str) {
    let id = peer.id.clone();
    wait_for(&format!("the {what} peer to be banned"), Duration::from_secs(60), || {
        let banned = node.rpc("listbanned", json!([]));
        banned.as_array()?.iter().any(|p| p["peer_id"] == json!(id)).then_some(())
    });
    let status = wait_for(&format!("the {what} peer to be cut off"), Duration::from_secs(60), || {
        peer.child.try_wait().ok().flatten()
    });
    assert!(status.success(), "lode-badpeer ({what}) was not disconnected after misbehaving: {status}");
    let peers = node.rpc("getpeerinfo", json!([]));
    assert!(
        !peers.as_array().expect("peers").iter().any(|p| p["peer_id"] == json!(id)),
        "the {what} peer is still connected: {peers}"
    );
}

fn header(node: &TestNode, hash: &Value) -> Value {
    node.rpc("getblockheader", json!([hash]))
}

#[test]
fn a_garbage_sending_peer_is_banned_and_honest_nodes_keep_going() {
    let started = Instant::now();
    let spec = ChainSpec::regtest();
    let a = TestNode::start(NodeOptions::default());
    let b = TestNode::start(NodeOptions { bootnodes: vec![a.p2p_addr()], ..Default::default() });
    b.rpc("generatetoaddress", json!([3, burn_address(&b)]));
    let tip = b.tip();
    wait_for("a has b's blocks", Duration::from_secs(60), || (a.tip() == tip).then_some(()));

    for mode in ["sync", "garbage", "toolarge"] {
        let peer = spawn_bad_peer(&a, &[mode.to_string()], 0);
        expect_banned_and_cut_off(&a, peer, mode);
    }

    // A block on the honest tip, valid but for its proof of work.
    let height = a.height();
    assert_eq!(height, 3);
    let parent = a.rpc("getblockheader", json!([tip]));
    let times: Vec<u64> =
        (0..=height).map(|h| header(&a, &a.rpc("getblockhash", json!([h])))["time"].as_u64().expect("time")).collect();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let time = now.max(median_time_past(&times) + 1);
    let bits = parent["bits"].as_str().expect("bits").to_string();
    let args = ["badpow".to_string(), tip.clone(), (height + 1).to_string(), time.to_string(), bits];
    let peer = spawn_bad_peer(&a, &args, 1);
    let bad = Block::decode_all(&hex::decode(&peer.lines[0]).expect("block hex"), spec.max_block_size)
        .expect("the bad-PoW block decodes");
    let bad_hash = bad.hash().to_hex();
    expect_banned_and_cut_off(&a, peer, "bad-PoW");
    // What was sent: on the tip, committing to the next height, paying the
    // subsidy, merkle root right; only the hash misses the target.
    assert_eq!(bad.header.prev_hash.to_hex(), tip);
    assert!(matches!(check_header(&bad.header, &spec), Err(BlockError::HighHash(_))), "refused for its hash");
    check_block(&bad, &spec).expect("every context-free block rule holds");
    let paid: u64 = bad.transactions[0].outputs.iter().map(|o| o.value.units()).sum();
    assert_eq!(paid, block_subsidy(&spec, Height(height as u32 + 1)).units());
    assert_eq!(a.tip(), tip, "the bad-PoW block did not move the tip");
    assert!(a.call("getblockheader", json!([bad_hash])).is_err(), "the bad-PoW block was not stored");

    // The same block with a nonce that meets the target is accepted: proof
    // of work was its only fault.
    let mut good = bad.clone();
    set_nonce(&mut good, &spec, true);
    assert_ne!(good.header.nonce, bad.header.nonce);
    let good_hash = good.hash().to_hex();
    assert_eq!(a.rpc("submitblock", json!([hex::encode(good.encode())])), Value::Null, "its valid twin connects");
    assert_eq!(a.tip(), good_hash);

    // The honest pair keeps mining and converges above it.
    wait_for("b takes the twin", Duration::from_secs(60), || (b.tip() == good_hash).then_some(()));
    b.rpc("generatetoaddress", json!([2, burn_address(&b)]));
    let tip = b.tip();
    wait_for("honest nodes converge", Duration::from_secs(60), || (a.tip() == tip).then_some(()));
    assert_eq!(a.height(), height + 3, "two more blocks on the twin");
    assert_eq!(a.rpc("getblockheader", json!([good_hash]))["in_best_chain"], true);
    eprintln!("bad peer: {:.1}s", started.elapsed().as_secs_f64());
}

/// A gossip message 100 kB over the block size limit: beyond the gossip
/// transport's frame limit, so it never reaches the node's own checks
/// unless the node makes it (the p2p docs promise a ban for an oversized
/// message, as for any malformed one).
#[test]
fn an_oversized_gossip_sender_is_banned() {
    let a = TestNode::start(NodeOptions::default());
    let peer = spawn_bad_peer(&a, &["oversized".to_string()], 0);
    expect_banned_and_cut_off(&a, peer, "oversized");
    assert_eq!(a.height(), 0);
    a.rpc("generatetoaddress", json!([1, burn_address(&a)]));
    assert_eq!(a.height(), 1, "the node still works");
}
