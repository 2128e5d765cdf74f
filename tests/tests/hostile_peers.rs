//! Hostile peers of issue 13, each a `lode-hostile` process with its own
//! identity against real nodes: a peer claiming an enormous chain and
//! serving nothing cannot hold back a payment; a block request naming one
//! block 128 times gets it once and the node's memory stays bounded; a
//! flood of large transactions from several peers keeps memory bounded.
//! Memory is the node's resident set (`VmRSS` in /proc/<pid>/status).

use lode_core::codec::Encode;
use lode_core::crypto::Signature;
use lode_core::tx::{OutPoint, TxIn, TxOut, Unlock};
use lode_core::{Amount, ChainSpec, Hash256, Transaction};
use lode_tests::{bin, burn_address, wait_for, NodeOptions, TestKey, TestNode};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The most the node's resident memory may grow under one of these
/// attacks. Without the limits of issue 13 a block request naming a 57 kB
/// block 128 times, eight at once, holds about 60 MB of replies, and a
/// transaction flood grows memory by gigabytes.
const RSS_GROWTH_BOUND_KB: u64 = 150 * 1024;

/// Transactions a second each flooder publishes (180 MB/s of 90 kB ones).
const FLOOD_RATE: &str = "2000";

/// A running `lode-hostile`, killed when dropped; its stdout lines arrive
/// on `lines`.
struct Hostile {
    child: Child,
    id: String,
    lines: mpsc::Receiver<String>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Hostile {
    fn spawn(target: &TestNode, mode: &[&str]) -> Hostile {
        let mut child = Command::new(bin("lode-hostile"))
            .arg(target.p2p_addr())
            .arg("regtest")
            .args(mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lode-hostile");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line.trim().to_string()).is_err() {
                    return;
                }
            }
        });
        let id = lines.recv_timeout(Duration::from_secs(20)).expect("lode-hostile prints its peer id");
        assert!(id.starts_with("12D3"), "{mode:?}: peer id {id:?}");
        Hostile { child, id, lines }
    }

    fn line(&self, secs: u64) -> String {
        self.lines.recv_timeout(Duration::from_secs(secs)).expect("a line from lode-hostile")
    }
}

/// The node's resident memory in kB.
fn rss_kb(node: &TestNode) -> u64 {
    let pid = node.pid().expect("node running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn connected_to(node: &TestNode, id: &str) -> bool {
    node.rpc("getpeerinfo", json!([])).as_array().is_some_and(|ps| ps.iter().any(|p| p["peer_id"] == id))
}

fn mine(n: &TestNode, blocks: u64) -> Value {
    n.rpc("generatetoaddress", json!([blocks, burn_address(n)]))
}

fn in_mempool(n: &TestNode, txid: &str) -> bool {
    n.rpc("getrawmempool", json!([])).as_array().is_some_and(|p| p.contains(&json!(txid)))
}

/// Issue 13, finding 1: a peer that claims a million blocks and serves
/// one known header must not stop the node from relaying a payment.
#[test]
fn a_peer_claiming_a_huge_chain_cannot_hold_back_a_payment() {
    let a = TestNode::start(NodeOptions::default());
    let b = TestNode::start(NodeOptions { bootnodes: vec![a.p2p_addr()], ..NodeOptions::default() });
    let alice = TestKey::new();
    a.rpc("generatetoaddress", json!([1, alice.text]));
    mine(&a, u64::from(ChainSpec::regtest().coinbase_maturity));
    wait_for("b synced", Duration::from_secs(30), || (b.tip() == a.tip()).then_some(()));

    let first = a.rpc("getblockhash", json!([1]));
    let block_hex = a.rpc("getblock", json!([first, false]));
    let liar = Hostile::spawn(&a, &["liar", block_hex.as_str().expect("block hex")]);
    wait_for("the liar connected", Duration::from_secs(20), || connected_to(&a, &liar.id).then_some(()));
    // Status exchange and a header round with the liar (1 s ticks).
    std::thread::sleep(Duration::from_secs(3));
    assert!(connected_to(&a, &liar.id), "the liar is still there");

    let started = Instant::now();
    let (paid, hex) = alice.pay(&alice.coins(&a)[0], &TestKey::new().address, 100_000_000, 10_000);
    a.rpc("sendrawtransaction", json!([hex]));
    wait_for("the payment reaches b", Duration::from_secs(10), || in_mempool(&b, &paid).then_some(()));
    mine(&b, 1);
    wait_for("the payment mined on a", Duration::from_secs(10), || {
        let tx = a.call("getrawtransaction", json!([paid, true])).ok()?;
        (tx["confirmations"].as_u64().unwrap_or(0) >= 1).then_some(())
    });
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "payment mined after {took:?}");
    assert_eq!(a.rpc("getblockchaininfo", json!([]))["initial_sync"], false, "a claim is not evidence");
    assert!(connected_to(&a, &liar.id), "silence alone is not banned");
    eprintln!("payment relayed and mined in {took:?} with the liar connected");
}

/// A transaction paying `outputs` small outputs (about 28 bytes each)
/// from alice's largest coin.
fn wide_tx(alice: &TestKey, node: &TestNode, outputs: usize) -> (String, String) {
    let coin = &alice.coins(node)[0];
    let value = coin["amount"].as_u64().expect("amount");
    let op = OutPoint {
        txid: Hash256::from_hex(coin["txid"].as_str().expect("txid")).expect("hex"),
        vout: coin["vout"].as_u64().expect("vout") as u32,
    };
    let each = 10_000u64;
    let fee = 200_000u64;
    let mut outs: Vec<TxOut> =
        (0..outputs).map(|_| TxOut { value: Amount::from_units(each), address: alice.address }).collect();
    outs.push(TxOut { value: Amount::from_units(value - each * outputs as u64 - fee), address: alice.address });
    let mut tx = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prevout: op,
            unlock: Unlock::Signature { pubkey: alice.sk.public_key(), sig: Signature::default() },
        }],
        outputs: outs,
        lock_time: 0,
    };
    tx.sign_inputs(&ChainSpec::regtest().genesis_hash(), &[&alice.sk], &[Amount::from_units(value)]);
    (tx.txid().to_hex(), hex::encode(tx.encode()))
}

/// Issue 13, finding 4: eight requests at once, each naming one 57 kB
/// block 128 times, get the block once each; memory stays bounded.
#[test]
fn duplicate_block_requests_get_one_block_and_memory_stays_bounded() {
    let a = TestNode::start(NodeOptions::default());
    let alice = TestKey::new();
    a.rpc("generatetoaddress", json!([1, alice.text]));
    mine(&a, u64::from(ChainSpec::regtest().coinbase_maturity));
    let (txid, hex) = wide_tx(&alice, &a, 2000);
    a.rpc("sendrawtransaction", json!([hex]));
    let hash = mine(&a, 1)[0].as_str().expect("block hash").to_string();
    let size = a.rpc("getblock", json!([hash, false])).as_str().expect("hex").len() / 2;
    assert!(size > 50_000, "a large block ({size} bytes)");
    assert!(a.rpc("getblock", json!([hash, true])).to_string().contains(&txid));

    let before = rss_kb(&a);
    let mut peak = before;
    let hostile = Hostile::spawn(&a, &["dupblocks", &hash, "128", "8"]);
    let mut replies = Vec::new();
    for _ in 0..8 {
        replies.push(hostile.line(30));
        peak = peak.max(rss_kb(&a));
    }
    // "reply BLOCKS BYTES": the block once, in every reply.
    assert!(replies.iter().all(|r| r.starts_with("reply 1 ")), "a block asked for 128 times: {replies:?}");
    std::thread::sleep(Duration::from_millis(500));
    peak = peak.max(rss_kb(&a));
    eprintln!("block of {size} bytes; replies {replies:?}; VmRSS {before} kB before, peak {peak} kB");
    assert!(peak - before < RSS_GROWTH_BOUND_KB, "VmRSS grew from {before} kB to {peak} kB");
    mine(&a, 1);
}

/// Issue 13, finding 3: three peers flooding 90 kB transactions that spend
/// outputs nobody has keep the node's memory bounded, and it still works.
#[test]
fn a_transaction_flood_keeps_memory_bounded() {
    let a = TestNode::start(NodeOptions::default());
    mine(&a, 1);
    let before = rss_kb(&a);
    let flooders: Vec<Hostile> = (0..3).map(|_| Hostile::spawn(&a, &["txflood", "12", "90000", FLOOD_RATE])).collect();
    // Each flood lasts 12 s from when its flooder joined the mesh; on a loaded
    // machine joining can take a while, so memory is sampled until every
    // flooder has reported, under a generous deadline.
    let started = Instant::now();
    let mut peak = before;
    let mut sent: Vec<Option<String>> = vec![None; flooders.len()];
    while sent.iter().any(Option::is_none) {
        assert!(started.elapsed() < Duration::from_secs(120), "the flooders did not finish: {sent:?}");
        peak = peak.max(rss_kb(&a));
        for (slot, f) in sent.iter_mut().zip(&flooders) {
            if slot.is_none() {
                *slot = f.lines.try_recv().ok();
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let sent: Vec<String> = sent.into_iter().flatten().collect();
    eprintln!("flood {sent:?}; VmRSS {before} kB before, peak {peak} kB");
    for s in &sent {
        let n: u64 = s.strip_prefix("sent ").and_then(|n| n.parse().ok()).unwrap_or(0);
        assert!(n > 1000, "the flood ran: {s}");
    }
    assert!(peak - before < RSS_GROWTH_BOUND_KB, "VmRSS grew from {before} kB to {peak} kB");
    let height = a.height();
    mine(&a, 1);
    assert_eq!(a.height(), height + 1, "the node still works");
}
