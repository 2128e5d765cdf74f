//! Whole-node figures with real `lode-node` processes on loopback: sync
//! from one and from three archive peers, and from one archive peer beside
//! three pruned ones (block propagation is in `propagation`, mempool
//! admission in `mempool`).

use crate::figures::{Report, Rounds};
use crate::import::{import_into, standard, IMPORT_RUN};
use lode_core::crypto::SigCache;
use lode_core::{Block, ChainSpec};
use lode_node::chain::{Chain, ChainConfig};
use lode_tests::{free_port, wait_for, NodeOptions, TestNode};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `--prune-blocks` of the pruned servers: the smallest window the node
/// accepts, so their horizon is as high as a real pruned peer's can be.
const PRUNE_BLOCKS: u32 = 288;

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

/// Bytes of the files under `dir` (apparent sizes, symlinks not followed).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}

fn start_on(dir: &Path, args: Vec<String>, bootnodes: Vec<String>) -> TestNode {
    TestNode::start_in(dir, NodeOptions { args, bootnodes, ..Default::default() }, free_port(), free_port())
}

/// Imports `blocks` into a new pruned chain in `dir` (the state of a
/// `--prune-blocks` node synced to the tip); returns its prune height.
fn import_pruned(dir: &Path, blocks: &[Block]) -> u64 {
    let config = ChainConfig { prune_blocks: Some(PRUNE_BLOCKS), ..ChainConfig::default() };
    let mut chain = Chain::open(dir, ChainSpec::regtest(), Arc::new(SigCache::new(1000)), config).expect("open chain");
    for run in blocks.chunks(IMPORT_RUN) {
        let (results, _) = chain.accept_blocks(run.to_vec());
        for r in results {
            r.expect("import");
        }
    }
    // Flushing a pruned chain also compacts its body and undo column
    // families (`Chain::flush`), as a pruned node's clean stop does.
    chain.flush().expect("flush");
    chain.prune_height().map_or(0, |h| u64::from(h.0))
}

/// What a serving node holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    /// Every block body.
    Archive,
    /// `--prune-blocks PRUNE_BLOCKS`, synced to the tip and pruned.
    Pruned,
}

/// One sync: its seconds, the client's view of its peers at the tip, and
/// the serving nodes' data directory sizes after a clean stop.
struct SyncRun {
    seconds: f64,
    peers: Vec<Value>,
    history_unavailable: Value,
    /// (server kind, bytes of its data directory, bytes of its `chain/`).
    disk: Vec<(Server, u64, u64)>,
}

/// Starts fresh servers of `kinds` on copies of the seeds and times a new
/// node syncing to `tip` from all of them. Fresh servers each time:
/// servers that met through an earlier client would find each other and
/// serve a "one peer" client.
fn sync_once(work: &Path, seeds: (&Path, &Path), kinds: &[Server], tip: &str) -> SyncRun {
    let mut servers: Vec<(Server, TestNode)> = kinds
        .iter()
        .enumerate()
        .map(|(i, &kind)| {
            let d = work.join(format!("server{i}"));
            match kind {
                Server::Archive => {
                    copy_dir(seeds.0, &d);
                    (kind, start_on(&d, Vec::new(), Vec::new()))
                }
                Server::Pruned => {
                    copy_dir(seeds.1, &d);
                    (kind, start_on(&d, vec!["--prune-blocks".into(), PRUNE_BLOCKS.to_string()], Vec::new()))
                }
            }
        })
        .collect();
    let boots: Vec<String> = servers.iter().map(|(_, s)| s.p2p_addr()).collect();
    let ids: Vec<(String, Server)> = servers.iter().map(|(k, s)| (s.peer_id(), *k)).collect();
    let client_dir = work.join("client");
    std::fs::create_dir_all(&client_dir).expect("mkdir");
    let start = Instant::now();
    let client = start_on(&client_dir, Vec::new(), boots);
    wait_for("sync", Duration::from_secs(1800), || (client.tip() == tip).then_some(()));
    let seconds = start.elapsed().as_secs_f64();
    // Which peer delivered what (fields of issue 20's `getpeerinfo`; null
    // on a node without them).
    let peers = client
        .rpc("getpeerinfo", json!([]))
        .as_array()
        .map(|list| {
            list.iter()
                .map(|p| {
                    let role = ids.iter().find(|(id, _)| p["peer_id"] == id.as_str()).map(|(_, k)| *k);
                    json!({
                        "server": match role {
                            Some(Server::Archive) => "archive",
                            Some(Server::Pruned) => "pruned",
                            None => "other",
                        },
                        "archive": p["archive"],
                        "lowest_height": p["lowest_height"],
                        "blocks_received": p["blocks_received"],
                        "blocks_missing": p["blocks_missing"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let history_unavailable = client.rpc("getblockchaininfo", json!([]))["history_unavailable"].clone();
    drop(client);
    // Sizes after a clean stop: a pruned node's stop flushes and compacts
    // its body and undo column families (`Chain::flush`), so deleted bodies
    // have left the disk; the bench forces no compaction of its own, and an
    // archive's column families stay as RocksDB left them.
    let disk = servers
        .iter_mut()
        .map(|(kind, s)| {
            s.stop();
            (*kind, dir_bytes(&s.data_dir), dir_bytes(&s.data_dir.join("chain")))
        })
        .collect();
    drop(servers);
    let _ = std::fs::remove_dir_all(work);
    SyncRun { seconds, peers, history_unavailable, disk }
}

/// Sync of the standard workload from one and from three archive peers,
/// and from one archive and three pruned peers, each round beside an
/// in-process import of the same blocks.
pub fn sync(report: &mut Report) {
    eprintln!("sync");
    let w = standard(report);
    let n = w.blocks.len();
    let tip = w.tip.to_hex();
    let tmp = tempfile::tempdir().expect("tempdir");
    let seed = tmp.path().join("seed");
    import_into(&seed.join("chain"), &w.blocks);
    // Built once and copied for each round: importing is cheaper than a
    // sync, and the copy starts every round from the same state.
    let pruned_seed = tmp.path().join("seed-pruned");
    let prune_height = import_pruned(&pruned_seed.join("chain"), &w.blocks);
    let archive = [Server::Archive];
    let archive3 = [Server::Archive; 3];
    let mixed = [Server::Archive, Server::Pruned, Server::Pruned, Server::Pruned];
    let (mut one, mut three, mut mix, mut disk) =
        (Rounds::default(), Rounds::default(), Rounds::default(), Rounds::default());
    let (mut mixed_seconds, mut import_seconds, mut mixed_peers, mut mixed_history) = (vec![], vec![], vec![], vec![]);
    let (mut archive_bytes, mut pruned_bytes, mut chain_bytes) = (vec![], vec![], vec![]);
    for round in 0..report.rounds() {
        let dir = tmp.path().join(format!("import{round}"));
        let import_s = import_into(&dir, &w.blocks);
        import_seconds.push(import_s);
        let import_rate = n as f64 / import_s;
        let _ = std::fs::remove_dir_all(&dir);
        for (kinds, rounds) in [(&archive[..], &mut one), (&archive3[..], &mut three), (&mixed[..], &mut mix)] {
            let work = tmp.path().join(format!("sync{round}-{}", kinds.len()));
            let run = sync_once(&work, (&seed, &pruned_seed), kinds, &tip);
            rounds.push(import_rate, n as f64 / run.seconds);
            if kinds == mixed {
                mixed_seconds.push(run.seconds);
                mixed_peers.push(Value::Array(run.peers));
                mixed_history.push(run.history_unavailable);
                let of = |k: Server| run.disk.iter().filter(move |d| d.0 == k);
                let (a, a_chain) = of(Server::Archive).map(|d| (d.1, d.2)).next().expect("an archive server");
                let pruned: Vec<u64> = of(Server::Pruned).map(|d| d.1).collect();
                disk.push(a as f64 / MIB, pruned[0] as f64 / MIB);
                archive_bytes.push(a);
                chain_bytes
                    .push(json!({"archive": a_chain, "pruned": of(Server::Pruned).map(|d| d.2).collect::<Vec<_>>()}));
                pruned_bytes.push(pruned);
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
    report.add_rounds(
        "sync.mixed",
        &format!(
            "sync {n} blocks from 1 archive + 3 pruned (--prune-blocks {PRUNE_BLOCKS}) peers, process start to tip"
        ),
        "blocks/s",
        "in-process import of the same blocks, blocks/s",
        &mix,
    );
    report.detail(
        "sync.mixed",
        json!({
            "blocks": n,
            "prune_blocks": PRUNE_BLOCKS,
            "pruned_servers_prune_height": prune_height,
            "sync_seconds": mixed_seconds,
            "import_seconds": import_seconds,
            "client_history_unavailable_at_tip": mixed_history,
            "client_peers_at_tip": mixed_peers,
        }),
    );
    report.add_rounds(
        "sync.mixed_disk",
        &format!("data directory of a pruned server (--prune-blocks {PRUNE_BLOCKS}) after sync.mixed, clean stop"),
        "MiB",
        "the archive server's data directory, same run, MiB",
        &disk,
    );
    report.detail(
        "sync.mixed_disk",
        json!({
            "archive_bytes": archive_bytes,
            "pruned_bytes": pruned_bytes,
            "chain_dir_bytes": chain_bytes,
            "pruned_servers_prune_height": prune_height,
            "compaction": "none forced by the bench; a pruned node compacts its body and undo column families when it flushes on a clean stop",
        }),
    );
}

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;
