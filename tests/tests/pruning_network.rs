//! Issue 20 as a black box: pruned peers in a live network. One archive
//! node and three pruned ones (`--prune-blocks 288`) serve a new node: the
//! bodies below the pruned nodes' horizon come from the archive node only,
//! the recent ones from all, and no pruned node is asked for a body it
//! does not keep. A second new node loses its only archive peer mid-sync:
//! it reports that history is unavailable (and keeps answering) instead of
//! hanging, and finishes once another archive node joins.
//!
//! Every node runs with `--no-discovery` (the harness adds `--no-mdns`), so
//! each knows only the peers the test names.

use lode_tests::{burn_address, NodeOptions, TestNode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The smallest window a pruned node may keep.
const KEEP: u64 = 288;
/// Length of the chain: the pruned nodes' horizon ends up well above the
/// first download window's start, and a few hundred bodies lie below it.
const CHAIN: u64 = 700;
/// Blocks per `generatetoaddress` call, so no single call runs long.
const MINE_CHUNK: u64 = 100;
/// How long a sync of the chain may take on a loaded machine.
const SYNC: Duration = Duration::from_secs(60);
/// How long a node may take to notice it has no archive peer left.
const NOTICE: Duration = Duration::from_secs(60);
/// How often the kill loop polls for the archive node's connection: fast,
/// so the kill lands before the old bodies are all downloaded.
const KILL_POLL: Duration = Duration::from_millis(5);

/// A node and the name failure messages give it.
type Named<'a> = (&'a str, &'a TestNode);

/// The network every part runs on: archive node `a` (running), archive
/// node `b` (synced, then stopped, its data directory kept) and three
/// pruned nodes, all at `tip`.
struct Net {
    a: TestNode,
    b: TestNode,
    pruned: Vec<TestNode>,
    tip: String,
    /// The pruned nodes' lowest stored body (the same for all three).
    horizon: u64,
}

fn options(bootnodes: Vec<String>, prune: bool, metrics: bool) -> NodeOptions {
    let mut args = vec!["--no-discovery".to_string()];
    if prune {
        args.extend(["--prune-blocks".to_string(), KEEP.to_string()]);
    }
    NodeOptions { args, bootnodes, metrics, ..Default::default() }
}

/// The last log lines of every node named, for failure messages.
fn tails(nodes: &[Named]) -> String {
    nodes.iter().map(|(name, n)| format!("\n--- {name} log tail ---\n{}", n.log_tail())).collect()
}

/// Polls `cond` every 50 ms until it gives `Some`; past `timeout` fails
/// naming `what` with the log tails of `nodes`.
fn wait<T>(what: &str, timeout: Duration, nodes: &[Named], mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}{}", tails(nodes));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn chain_info(n: &TestNode) -> Value {
    n.rpc("getblockchaininfo", json!([]))
}

/// `n`'s `getpeerinfo` entry for the peer with this id, if connected.
fn peer_entry(n: &TestNode, id: &str) -> Option<Value> {
    let peers = n.rpc("getpeerinfo", json!([]));
    peers.as_array().expect("getpeerinfo is an array").iter().find(|p| p["peer_id"] == json!(id)).cloned()
}

fn count(entry: &Value, field: &str) -> u64 {
    entry[field].as_u64().unwrap_or_else(|| panic!("getpeerinfo {field} is not a number: {entry}"))
}

fn mine(n: &TestNode, blocks: u64) {
    let addr = burn_address(n);
    let mut left = blocks;
    while left > 0 {
        let now = left.min(MINE_CHUNK);
        let mined = n.rpc("generatetoaddress", json!([now, addr]));
        assert_eq!(mined.as_array().map(Vec::len), Some(now as usize), "generatetoaddress {now}: {mined}");
        left -= now;
    }
}

/// Archive A mines the chain; archive B and three pruned nodes sync it from
/// A; the pruned nodes prune down to the last [`KEEP`] bodies; B stops.
fn start_network() -> Net {
    let a = TestNode::start(options(Vec::new(), false, false));
    mine(&a, CHAIN);
    let tip = a.tip();
    let boot = vec![a.p2p_addr()];
    let mut b = TestNode::start(options(boot.clone(), false, false));
    let pruned: Vec<TestNode> = (0..3).map(|_| TestNode::start(options(boot.clone(), true, false))).collect();
    wait("archive B to sync from A", SYNC, &[("A", &a), ("B", &b)], || (b.tip() == tip).then_some(()));
    let horizon = CHAIN + 1 - KEEP;
    for (i, p) in pruned.iter().enumerate() {
        let name = format!("P{}", i + 1);
        let info = wait(&format!("{name} to sync from A and prune"), SYNC, &[("A", &a), (&name, p)], || {
            let info = chain_info(p);
            let pruned_past_genesis = info["pruned"] == json!(true) && info["prune_height"].as_u64() > Some(0);
            (info["best_hash"] == json!(tip) && pruned_past_genesis).then_some(info)
        });
        // A block's connect prunes in the same batch: at the tip the
        // window is exact.
        assert_eq!(info["prune_height"], json!(horizon), "{name}: {info}");
    }
    assert_eq!(chain_info(&a)["pruned"], json!(false), "A is an archive node");
    assert_eq!(chain_info(&b)["pruned"], json!(false), "B is an archive node");
    b.stop();
    Net { a, b, pruned, tip, horizon }
}

/// Part 1: a new node with A and the three pruned nodes as bootnodes syncs
/// the whole chain, taking every body below the horizon from A and never
/// asking a pruned node for one it does not keep.
fn a_new_node_fetches_old_bodies_only_from_the_archive_peer(net: &Net) {
    let started = Instant::now();
    let mut boots = vec![net.a.p2p_addr()];
    boots.extend(net.pruned.iter().map(TestNode::p2p_addr));
    let mut n1 = TestNode::start(options(boots, false, true));
    let logs = [("N1", &n1), ("A", &net.a)];
    wait("N1 to sync the chain from A and the pruned nodes", SYNC, &logs, || (n1.tip() == net.tip).then_some(()));
    eprintln!("N1 synced {CHAIN} blocks in {:.1}s", started.elapsed().as_secs_f64());
    let a_id = net.a.peer_id();
    let p_ids: Vec<String> = net.pruned.iter().map(TestNode::peer_id).collect();
    // The service answers may trail the sync; the counters are final once
    // the chain is synced (nothing is mined meanwhile).
    let (a, ps) = wait("N1 to know all four peers' services", SYNC, &logs, || {
        let a = peer_entry(&n1, &a_id).filter(|e| !e["archive"].is_null())?;
        let ps: Option<Vec<Value>> =
            p_ids.iter().map(|id| peer_entry(&n1, id).filter(|e| !e["archive"].is_null())).collect();
        Some((a, ps?))
    });
    eprintln!("N1's peers: A {a}");
    for (i, p) in ps.iter().enumerate() {
        eprintln!("N1's peers: P{} {p}", i + 1);
    }
    assert_eq!((a["archive"].clone(), a["lowest_height"].clone()), (json!(true), json!(0)), "A: {a}");
    assert_eq!(count(&a, "blocks_missing"), 0, "A keeps every body: {a}");
    // Nobody else keeps bodies 1 to horizon - 1.
    assert!(count(&a, "blocks_received") >= net.horizon - 1, "A delivered the bodies below the horizon: {a}");
    let mut from_pruned = 0;
    for (i, (p, node)) in ps.iter().zip(&net.pruned).enumerate() {
        let prune_height = chain_info(node)["prune_height"].clone();
        assert_eq!(p["archive"], json!(false), "P{}: {p}", i + 1);
        assert_eq!(p["lowest_height"], prune_height, "P{} advertises its prune height: {p}", i + 1);
        assert_eq!(count(p, "blocks_missing"), 0, "P{} was asked for a body below its horizon: {p}", i + 1);
        from_pruned += count(p, "blocks_received");
    }
    // Not every pruned peer gets a share: the 288 recent bodies are 18
    // requests, handed to whichever peers have free request slots when
    // they are scheduled (rate-weighted, up to 8 each), and runs with one
    // pruned peer at 0 were seen (e.g. 0, 144, 80). That the recent bodies
    // did not all come from A is what the scheduler promises.
    assert!(from_pruned > 0, "no recent body came from a pruned peer: {ps:?}");
    let total = count(&a, "blocks_received") + from_pruned;
    assert!(total >= CHAIN, "{total} bodies received for a chain of {CHAIN}");
    let net_info = n1.rpc("getnetworkinfo", json!([]));
    assert_eq!(net_info["archive_peers"], json!(1), "only A is an archive peer: {net_info}");
    // The gauge is sampled once a second, so it may trail the RPC.
    let metrics_port = n1.metrics_port.expect("metrics port");
    wait("lode_p2p_archive_peers 1 on N1's metrics endpoint", Duration::from_secs(10), &logs, || {
        let text = reqwest::blocking::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .and_then(|r| r.text())
            .expect("N1's metrics");
        let gauge = text
            .lines()
            .find_map(|l| l.strip_prefix("lode_p2p_archive_peers "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        (gauge == Some(1.0)).then_some(())
    });
    n1.stop();
}

/// Part 2: a new node loses its only archive peer mid-sync. It says
/// history is unavailable (and keeps answering RPC) instead of hanging,
/// takes nothing from the pruned peers below their horizon, and finishes
/// once archive B joins.
fn losing_the_only_archive_peer_reports_history_unavailable_until_another_joins(net: &mut Net) {
    // No bootnodes: the peers are added over RPC once the node answers, so
    // the sync cannot run ahead of the test while the harness waits for
    // the RPC port.
    let mut n2 = TestNode::start(options(Vec::new(), false, false));
    let a_id = net.a.peer_id();
    let a_addr = net.a.p2p_addr();
    let p_ids: Vec<String> = net.pruned.iter().map(TestNode::peer_id).collect();
    let p_addrs: Vec<String> = net.pruned.iter().map(TestNode::p2p_addr).collect();
    n2.rpc("addpeer", json!([a_addr]));
    for addr in &p_addrs {
        n2.rpc("addpeer", json!([addr]));
    }
    // Killed as soon as it shows up: A serves up to 128 bodies per round
    // trip, and killed after its first delivery instead it had once
    // delivered all of them before the kill landed (N2's chain was at 80
    // then only because downloaded bodies wait to be connected).
    let deadline = Instant::now() + SYNC;
    let a_seen = loop {
        if let Some(entry) = peer_entry(&n2, &a_id) {
            break entry;
        }
        if Instant::now() >= deadline {
            panic!("N2 never connected to A{}", tails(&[("N2", &n2), ("A", &net.a)]));
        }
        std::thread::sleep(KILL_POLL);
    };
    net.a.kill();
    // Read after the kill: the height at the kill is at most this.
    let at_kill = n2.height();
    eprintln!("A killed: N2 at height {at_kill}, A's entry when last seen: {a_seen}");
    let logs = [("N2", &n2), ("A", &net.a), ("P1", &net.pruned[0])];
    // Either N2 reports that history is unavailable (it lacks a body below
    // the horizon that nobody serves now), or A had delivered every such
    // body before the kill and N2 reaches the tip: then the scenario did
    // not happen.
    let info = wait("N2 to report block history unavailable", NOTICE, &logs, || {
        let info = chain_info(&n2);
        if info["best_hash"] == json!(net.tip) {
            panic!(
                "the scenario did not happen: A had delivered every body below the pruned horizon {} before it \
                 was killed (N2 at {at_kill} at the kill){}",
                net.horizon,
                tails(&logs)
            );
        }
        (info["history_unavailable"] == json!(true)).then_some(info)
    });
    assert!(at_kill < net.horizon, "killed at {at_kill}, not below the horizon {}", net.horizon);
    eprintln!("N2 reports history unavailable: {info}");
    // It did not hang: the process runs and answers promptly, below the
    // horizon it cannot cross without an archive peer (bodies downloaded
    // before the kill may still be connecting, up to the first gap).
    assert!(n2.is_running(), "N2 exited{}", tails(&[("N2", &n2)]));
    let asked = Instant::now();
    let info = chain_info(&n2);
    assert!(asked.elapsed() < Duration::from_secs(10), "getblockchaininfo took {:?}", asked.elapsed());
    let height = info["height"].as_u64().expect("height");
    assert!(height < net.horizon, "N2 crossed the horizon {} with no archive peer: {info}", net.horizon);
    assert_eq!(info["history_unavailable"], json!(true), "{info}");
    assert_eq!(n2.rpc("getnetworkinfo", json!([]))["archive_peers"], json!(0));
    let log = std::fs::read_to_string(n2.data_dir.join("node.log")).expect("N2's log");
    assert!(log.contains("block history unavailable"), "no warning in N2's log{}", tails(&[("N2", &n2)]));
    let logs = [("N2", &n2), ("P1", &net.pruned[0])];
    for (i, id) in p_ids.iter().enumerate() {
        let p = wait(&format!("N2 to list P{}", i + 1), SYNC, &logs, || peer_entry(&n2, id));
        assert_eq!(count(&p, "blocks_missing"), 0, "P{} was asked for a body below its horizon: {p}", i + 1);
    }
    // Archive B comes back with the whole chain and N2 finishes.
    net.b.start_again();
    n2.rpc("addpeer", json!([net.b.p2p_addr()]));
    let logs = [("N2", &n2), ("B", &net.b)];
    wait("N2 to finish the sync from B", SYNC, &logs, || (n2.tip() == net.tip).then_some(()));
    let info = chain_info(&n2);
    assert_eq!(info["history_unavailable"], json!(false), "history still unavailable at the tip: {info}");
    let b_id = net.b.peer_id();
    let b = wait("N2 to know B's services", SYNC, &logs, || peer_entry(&n2, &b_id).filter(|e| !e["archive"].is_null()));
    assert_eq!((b["archive"].clone(), b["lowest_height"].clone()), (json!(true), json!(0)), "B: {b}");
    assert!(count(&b, "blocks_received") > 0, "B delivered the bodies A did not: {b}");
    assert_eq!(n2.rpc("getnetworkinfo", json!([]))["archive_peers"], json!(1));
    for (i, id) in p_ids.iter().enumerate() {
        let p = peer_entry(&n2, id).unwrap_or_else(|| panic!("N2 lost P{}", i + 1));
        assert_eq!(count(&p, "blocks_missing"), 0, "P{} was asked for a body below its horizon: {p}", i + 1);
    }
    n2.stop();
}

/// One network for both parts: mining and syncing it is most of the cost,
/// and part 2 kills its archive node, so part 1 runs first.
#[test]
fn pruned_peers_serve_recent_bodies_and_losing_the_only_archive_peer_reports_history_unavailable() {
    let started = Instant::now();
    let mut net = start_network();
    eprintln!("network of 1 archive and 3 pruned nodes at {CHAIN}: {:.1}s", started.elapsed().as_secs_f64());
    a_new_node_fetches_old_bodies_only_from_the_archive_peer(&net);
    losing_the_only_archive_peer_reports_history_unavailable_until_another_joins(&mut net);
    for n in net.pruned.iter_mut().chain([&mut net.b]) {
        n.stop();
    }
    eprintln!("pruning network: {:.1}s", started.elapsed().as_secs_f64());
}
