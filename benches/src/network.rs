//! Whole-node figures with real `lode-node` processes on loopback: sync
//! from one and from three peers (block propagation is in `propagation`,
//! mempool admission in `mempool`).

use crate::figures::{Report, Rounds};
use crate::import::{import_into, standard};
use lode_tests::{free_port, wait_for, NodeOptions, TestNode};
use std::path::Path;
use std::time::{Duration, Instant};

/// Copies a data directory (without RocksDB's lock file).
pub fn copy_dir(from: &Path, to: &Path) {
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
