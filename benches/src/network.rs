//! Whole-node figures with real `lode-node` processes on loopback: sync
//! from one and from three peers, block propagation to eight nodes, and
//! mempool admission through `sendrawtransaction` from concurrent clients.

use crate::figures::{cores, Report};
use lode_core::codec::Encode;
use lode_core::crypto::SigCache;
use lode_core::{Block, ChainSpec};
use lode_node::chain::{Chain, ChainConfig};
use lode_node::testkit::ChainBuilder;
use lode_tests::{free_port, wait_for, NodeOptions, TestNode};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn import_into(dir: &Path, blocks: &[Block]) -> f64 {
    let mut chain =
        Chain::open(&dir.join("chain"), ChainSpec::regtest(), Arc::new(SigCache::new(10)), ChainConfig::default())
            .expect("open");
    let start = Instant::now();
    for b in blocks {
        chain.accept_block(b.clone()).expect("import");
    }
    let t = start.elapsed().as_secs_f64();
    chain.flush().expect("flush");
    t
}

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

/// Sync of a generated chain from one and from three peers, beside import.
pub fn sync(report: &mut Report) {
    eprintln!("sync");
    let (n, txs) = if report.quick { (200, 20) } else { (2000, 200) };
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(n, txs);
    let tip = builder.tip().to_hex();
    let tmp = tempfile::tempdir().expect("tempdir");
    let seed = tmp.path().join("seed");
    let import = import_into(&seed, &blocks);
    let import_rate = n as f64 / import;
    for peers in [1usize, 3] {
        let servers: Vec<TestNode> = (0..peers)
            .map(|i| {
                let d = tmp.path().join(format!("server{peers}-{i}"));
                copy_dir(&seed, &d);
                start_on(&d, Vec::new())
            })
            .collect();
        let boots: Vec<String> = servers.iter().map(TestNode::p2p_addr).collect();
        let client_dir = tmp.path().join(format!("client{peers}"));
        std::fs::create_dir_all(&client_dir).expect("mkdir");
        let start = Instant::now();
        let client = start_on(&client_dir, boots);
        wait_for("sync", Duration::from_secs(1800), || (client.tip() == tip).then_some(()));
        let rate = n as f64 / start.elapsed().as_secs_f64();
        report.add(
            &format!("sync {n} blocks from {peers} peer(s)"),
            rate,
            "blocks/s",
            "import alone, blocks/s",
            import_rate,
        );
    }
}

/// A block of many transactions reaching eight nodes.
pub fn propagation(report: &mut Report) {
    eprintln!("propagation");
    let (nodes_n, txs) = if report.quick { (4, 200) } else { (8, 2000) };
    let spec = ChainSpec::regtest();
    let mut builder = ChainBuilder::new(spec.clone());
    // Enough coins for one big block: they double every block once mature.
    let mut blocks = builder.blocks(spec.coinbase_maturity as usize + 14, 400);
    let big = builder.next_block(txs);
    let big_txs = big.transactions.len() - 1;
    let tmp = tempfile::tempdir().expect("tempdir");
    let seed = tmp.path().join("seed");
    import_into(&seed, &blocks);
    // Its own validation time, in process, as the reference.
    let check = tmp.path().join("check");
    copy_dir(&seed, &check);
    blocks.clear();
    let validation = import_into(&check, std::slice::from_ref(&big));
    let mut nodes: Vec<TestNode> = Vec::new();
    for i in 0..nodes_n {
        let d = tmp.path().join(format!("n{i}"));
        copy_dir(&seed, &d);
        // A chain of peers plus the first: the block must cross several hops.
        let boots = match i {
            0 => vec![],
            1 => vec![nodes[0].p2p_addr()],
            _ => vec![nodes[i - 1].p2p_addr(), nodes[0].p2p_addr()],
        };
        nodes.push(start_on(&d, boots));
    }
    wait_for("mesh", Duration::from_secs(60), || {
        nodes.iter().all(|n| n.rpc("getnetworkinfo", json!([]))["connections"].as_u64().unwrap_or(0) > 0).then_some(())
    });
    let hash = big.hash().to_hex();
    let hex = hex::encode(big.encode());
    let start = Instant::now();
    nodes[0].rpc("submitblock", json!([hex]));
    let mut arrivals = Vec::new();
    let mut pending: Vec<usize> = (1..nodes_n).collect();
    wait_for("propagation", Duration::from_secs(300), || {
        pending.retain(|&i| {
            if nodes[i].tip() == hash {
                arrivals.push(start.elapsed().as_secs_f64());
                false
            } else {
                true
            }
        });
        pending.is_empty().then_some(())
    });
    arrivals.sort_by(f64::total_cmp);
    let median = arrivals[arrivals.len() / 2];
    let worst = arrivals[arrivals.len() - 1];
    let name = format!("block of {big_txs} tx to {nodes_n} nodes");
    report.add(
        &format!("{name}: median (ms)"),
        median * 1000.0,
        "ms",
        "one validation of the block (ms)",
        validation * 1000.0,
    );
    report.add(
        &format!("{name}: worst (ms)"),
        worst * 1000.0,
        "ms",
        "one validation of the block (ms)",
        validation * 1000.0,
    );
}

/// Transactions accepted per second through RPC from concurrent clients.
pub fn mempool(report: &mut Report) {
    eprintln!("mempool");
    let spec = ChainSpec::regtest();
    let n_tx = if report.quick { 400 } else { 4000 };
    let mut builder = ChainBuilder::new(spec.clone());
    let blocks = builder.blocks(spec.coinbase_maturity as usize + 16, 600);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    import_into(&dir, &blocks);
    // Transactions for the next block, submitted instead of mined.
    let next = builder.next_block(n_tx);
    let hexes: Vec<String> = next.transactions[1..].iter().map(|t| hex::encode(t.encode())).collect();
    let node = start_on(&dir, Vec::new());
    let clients = 4;
    let chunks: Vec<Vec<String>> =
        (0..clients).map(|c| hexes.iter().skip(c).step_by(clients).cloned().collect()).collect();
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
    let set = crate::sections::single_verify_rate(report);
    report.add(
        &format!("mempool: {} tx via RPC, {clients} clients", hexes.len()),
        hexes.len() as f64 / elapsed,
        "tx/s",
        "cores × 1-core verify rate",
        set * cores() as f64,
    );
}
