//! Whole-node figures with real `lode-node` processes on loopback: sync
//! from one and from three peers, block propagation to eight nodes, and
//! mempool admission through `sendrawtransaction` from concurrent clients.

use crate::figures::{Report, Rounds};
use crate::import::{import_into, standard};
use crate::sections::signature_bound;
use lode_core::codec::Encode;
use lode_core::ChainSpec;
use lode_node::testkit::ChainBuilder;
use lode_tests::{free_port, wait_for, NodeOptions, TestNode};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn start_on(dir: &Path, bootnodes: Vec<String>) -> TestNode {
    TestNode::start_in(dir, NodeOptions { bootnodes, ..Default::default() }, free_port(), free_port())
}

/// Sync of the standard workload from one and from three peers, each
/// round beside an in-process import of the same blocks.
pub fn sync(report: &mut Report) {
    eprintln!("sync");
    let w = standard(report);
    let n = w.blocks.len();
    let tip = w.tip.to_hex();
    let tmp = tempfile::tempdir().expect("tempdir");
    let seed = tmp.path().join("seed");
    import_into(&seed.join("chain"), &w.blocks);
    let (mut one, mut three) = (Rounds::default(), Rounds::default());
    for round in 0..report.rounds() {
        let dir = tmp.path().join(format!("import{round}"));
        let import_rate = n as f64 / import_into(&dir, &w.blocks);
        let _ = std::fs::remove_dir_all(&dir);
        for (peers, rounds) in [(1usize, &mut one), (3, &mut three)] {
            // Fresh servers each time: servers that met through an earlier
            // client would find each other and serve a "one peer" client.
            let servers: Vec<TestNode> = (0..peers)
                .map(|i| {
                    let d = tmp.path().join(format!("server{round}-{peers}-{i}"));
                    copy_dir(&seed, &d);
                    start_on(&d, Vec::new())
                })
                .collect();
            let boots: Vec<String> = servers.iter().map(TestNode::p2p_addr).collect();
            let client_dir = tmp.path().join(format!("client{round}-{peers}"));
            std::fs::create_dir_all(&client_dir).expect("mkdir");
            let start = Instant::now();
            let client = start_on(&client_dir, boots);
            wait_for("sync", Duration::from_secs(1800), || (client.tip() == tip).then_some(()));
            rounds.push(import_rate, n as f64 / start.elapsed().as_secs_f64());
            drop(client);
            drop(servers);
            let _ = std::fs::remove_dir_all(&client_dir);
            for i in 0..peers {
                let _ = std::fs::remove_dir_all(tmp.path().join(format!("server{round}-{peers}-{i}")));
            }
        }
    }
    for (id, peers, rounds) in [("sync.peers_1", 1, &one), ("sync.peers_3", 3, &three)] {
        report.add_rounds(
            id,
            &format!("sync {n} blocks from {peers} peer(s), process start to tip"),
            "blocks/s",
            "in-process import of the same blocks, blocks/s",
            rounds,
        );
    }
}

/// Peer ids of every node, and each node's connections by index.
fn topology(nodes: &[TestNode]) -> Vec<Vec<usize>> {
    let ids: HashMap<String, usize> = nodes.iter().enumerate().map(|(i, n)| (n.peer_id(), i)).collect();
    nodes
        .iter()
        .map(|n| {
            let peers = n.rpc("getpeerinfo", json!([]));
            let mut v: Vec<usize> = peers
                .as_array()
                .map(|a| a.iter().filter_map(|p| p["peer_id"].as_str().and_then(|id| ids.get(id).copied())).collect())
                .unwrap_or_default();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect()
}

/// Hops from node 0 to every node over the connection graph.
fn hops_from_first(graph: &[Vec<usize>]) -> Vec<Option<usize>> {
    let mut hops = vec![None; graph.len()];
    hops[0] = Some(0);
    let mut queue = VecDeque::from([0usize]);
    while let Some(i) = queue.pop_front() {
        let h = hops[i].unwrap_or(0);
        for &j in &graph[i] {
            if hops[j].is_none() {
                hops[j] = Some(h + 1);
                queue.push_back(j);
            }
        }
    }
    hops
}

/// Blocks of many transactions submitted to one of eight nodes, timed
/// until every other node has it as its tip.
pub fn propagation(report: &mut Report) {
    eprintln!("propagation");
    let (nodes_n, txs) = if report.quick { (4, 200) } else { (8, 2000) };
    let spec = ChainSpec::regtest();
    let mut builder = ChainBuilder::new(spec.clone());
    // Enough coins for the big blocks: they double every block once mature.
    let blocks = builder.blocks(spec.coinbase_maturity as usize + 14, 400);
    let bigs: Vec<_> = (0..report.rounds()).map(|_| builder.next_block(txs)).collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let seed = tmp.path().join("seed");
    import_into(&seed.join("chain"), &blocks);
    // The reference: connecting the same block in process, on a copy of
    // the chain that has had the earlier rounds' blocks.
    let check = tmp.path().join("check");
    copy_dir(&seed, &check);
    let mut nodes: Vec<TestNode> = Vec::new();
    for i in 0..nodes_n {
        let d = tmp.path().join(format!("n{i}"));
        copy_dir(&seed, &d);
        // Bootnodes form a chain plus the first; the nodes' own peer
        // discovery (Kademlia, eight outbound peers wanted) adds links.
        let boots = match i {
            0 => vec![],
            1 => vec![nodes[0].p2p_addr()],
            _ => vec![nodes[i - 1].p2p_addr(), nodes[0].p2p_addr()],
        };
        nodes.push(start_on(&d, boots));
    }
    // Let discovery settle: the graph measured below is the one used.
    let mut last = Vec::new();
    let mut stable_since = Instant::now();
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(if report.quick { 5 } else { 20 }) {
        let counts: Vec<u64> =
            nodes.iter().map(|n| n.rpc("getnetworkinfo", json!([]))["connections"].as_u64().unwrap_or(0)).collect();
        if counts != last {
            last = counts;
            stable_since = Instant::now();
        } else if last.iter().all(|&c| c > 0) && stable_since.elapsed() > Duration::from_secs(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let (mut median, mut worst) = (Rounds::default(), Rounds::default());
    let mut graphs = Vec::new();
    for big in &bigs {
        let validation = import_into(&check.join("chain"), std::slice::from_ref(big)) * 1000.0;
        let graph = topology(&nodes);
        let hops = hops_from_first(&graph);
        graphs.push(json!({"links": graph, "hops_from_submitter": hops}));
        let hash = big.hash().to_hex();
        let hex = hex::encode(big.encode());
        let start = Instant::now();
        nodes[0].rpc("submitblock", json!([hex]));
        let mut arrivals = Vec::new();
        let mut pending: Vec<usize> = (1..nodes_n).collect();
        wait_for("propagation", Duration::from_secs(300), || {
            pending.retain(|&i| {
                if nodes[i].tip() == hash {
                    arrivals.push(start.elapsed().as_secs_f64() * 1000.0);
                    false
                } else {
                    true
                }
            });
            pending.is_empty().then_some(())
        });
        arrivals.sort_by(f64::total_cmp);
        median.push(validation, arrivals[arrivals.len() / 2]);
        worst.push(validation, arrivals[arrivals.len() - 1]);
    }
    let big_txs = bigs[0].transactions.len() - 1;
    let name = format!("block of {big_txs} tx from node 0 to {} others", nodes_n - 1);
    let reference = "connecting the same block in process (ms)";
    report.add_rounds("propagation.median_ms", &format!("{name}: median arrival"), "ms", reference, &median);
    report.add_rounds("propagation.worst_ms", &format!("{name}: last arrival"), "ms", reference, &worst);
    let detail: Value = json!({"nodes": nodes_n, "transactions": big_txs, "graphs": graphs});
    report.detail("propagation.median_ms", detail);
}

/// Transactions accepted per second through RPC from concurrent clients,
/// each round beside the signature bound.
pub fn mempool(report: &mut Report) {
    eprintln!("mempool");
    let spec = ChainSpec::regtest();
    let n_tx = if report.quick { 400 } else { 4000 };
    let mut builder = ChainBuilder::new(spec.clone());
    let blocks = builder.blocks(spec.coinbase_maturity as usize + 16, 600);
    let tmp = tempfile::tempdir().expect("tempdir");
    let seed = tmp.path().join("seed");
    import_into(&seed.join("chain"), &blocks);
    // Transactions for the next block, submitted instead of mined.
    let next = builder.next_block(n_tx);
    let hexes: Vec<String> = next.transactions[1..].iter().map(|t| hex::encode(t.encode())).collect();
    let clients = 4;
    let chunks: Vec<Vec<String>> =
        (0..clients).map(|c| hexes.iter().skip(c).step_by(clients).cloned().collect()).collect();
    let mut rounds = Rounds::default();
    for round in 0..report.rounds() {
        let bound = signature_bound(report);
        let dir = tmp.path().join(format!("node{round}"));
        copy_dir(&seed, &dir);
        let node = start_on(&dir, Vec::new());
        let start = Instant::now();
        std::thread::scope(|s| {
            for chunk in &chunks {
                let node = &node;
                s.spawn(move || {
                    for h in chunk {
                        node.rpc("sendrawtransaction", json!([h]));
                    }
                });
            }
        });
        let elapsed = start.elapsed().as_secs_f64();
        let size = node.rpc("getmempoolinfo", json!([]))["size"].as_u64().unwrap_or(0);
        assert_eq!(size as usize, hexes.len(), "every transaction admitted");
        rounds.push(bound, hexes.len() as f64 / elapsed);
        drop(node);
        let _ = std::fs::remove_dir_all(&dir);
    }
    report.add_rounds(
        "mempool.rpc_accept",
        &format!("{} tx via sendrawtransaction, {clients} clients", hexes.len()),
        "tx/s",
        "cores × 1-core verify rate",
        &rounds,
    );
}
