//! Sections on a real `lode-node` process: its own resident memory while it
//! imports 10,000 blocks through `submitblock`, and the time from launching
//! it on that data directory until its RPC answers.

use crate::figures::{proc_status_mib, Report};
use crate::import::{open_chain, standard_size};
use lode_core::codec::Encode;
use lode_core::ChainSpec;
use lode_node::testkit::ChainBuilder;
use lode_tests::{bin, free_port, NodeOptions, Rpc, TestNode};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A stopped node's data directory holding `height` blocks.
pub struct DataDir {
    _tmp: tempfile::TempDir,
    /// The data directory (`chain/` inside).
    pub path: PathBuf,
    /// Blocks on its chain.
    pub height: u64,
}

/// Blocks imported for the memory figure.
fn memory_size(report: &Report) -> usize {
    if report.quick {
        400
    } else {
        10_000
    }
}

/// A gauge from the node's `/metrics` (plain HTTP on 127.0.0.1).
fn metric(port: u16, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// RSS of the node (MiB): total, anonymous (heap), file-backed.
fn rss(pid: u32) -> (f64, f64, f64) {
    let get = |f| proc_status_mib(pid, f).unwrap_or(0.0);
    (get("VmRSS"), get("RssAnon"), get("RssFile"))
}

/// The node's resident memory while it imports 10,000 blocks of the
/// standard workload through RPC; leaves the stopped data directory for
/// the restart figure.
pub fn memory(report: &mut Report) -> DataDir {
    eprintln!("memory (node process)");
    let n = memory_size(report);
    let (_, txs) = standard_size(report);
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("node");
    let mut node =
        TestNode::start_in(&path, NodeOptions { metrics: true, ..Default::default() }, free_port(), free_port());
    let metrics_port = node.metrics_port.expect("metrics on");
    let pid = node.pid().expect("node pid");
    // Generated while the node imports (the bench holds at most 16 blocks,
    // so its own memory stays out of the way).
    let (tx, rx) = std::sync::mpsc::sync_channel::<(String, usize)>(16);
    let producer = std::thread::spawn(move || {
        let mut builder = ChainBuilder::new(ChainSpec::regtest());
        for _ in 0..n {
            let b = builder.next_block(txs);
            let count = b.transactions.len() - 1;
            if tx.send((hex::encode(b.encode()), count)).is_err() {
                break;
            }
        }
        builder.tip().to_hex()
    });
    let marks = [n / 4, n / 2, n];
    let mut at_marks = Vec::new();
    let mut series = Vec::new();
    let (mut total_tx, mut bytes) = (0usize, 0usize);
    let start = Instant::now();
    for i in 1..=n {
        let (hex, count) = rx.recv().expect("generator");
        bytes += hex.len() / 2;
        total_tx += count;
        let r = node.rpc("submitblock", json!([hex]));
        assert!(r.is_null(), "block {i} not connected: {r}");
        if marks.contains(&i) {
            at_marks.push(rss(pid));
        }
        if i % (n / 20).max(1) == 0 {
            let cache_mib = metric(metrics_port, "lode_db_cache_bytes").unwrap_or(0.0) / (1024.0 * 1024.0);
            series.push(json!([i, rss(pid).0, cache_mib]));
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let tip = producer.join().expect("generator thread");
    assert_eq!(node.tip(), tip, "the node followed the whole import");
    let peak = proc_status_mib(pid, "VmHWM").unwrap_or(0.0);
    node.stop();
    let (q1, half, full) = (at_marks[0], at_marks[1], at_marks[2]);
    report.add_goal(
        "import.node_rss_growth",
        &format!("node RSS after {n} blocks ÷ after {} (submitblock)", n / 4),
        "×",
        "goal: ≤ 1.2",
        1.2,
        &[full.0 / q1.0],
    );
    let mib = |x: (f64, f64, f64)| json!({"rss": x.0, "anon": x.1, "file": x.2});
    report.detail(
        "import.node_rss_growth",
        json!({
            "blocks": n,
            "transactions": total_tx,
            "rss_mib_at": {"25%": mib(q1), "50%": mib(half), "100%": mib(full)},
            "rss_mib_series": series,
            "series_columns": ["blocks", "VmRSS MiB", "lode_db_cache_bytes MiB (block cache + charged memtables)"],
            "import_seconds": seconds,
            "db_cache_mb": "node default",
        }),
    );
    report.note(format!(
        "node RSS over the {n}-block import: {:.0} / {:.0} / {:.0} MiB at 25 / 50 / 100 % (heap {:.0} / {:.0} / {:.0}), peak {peak:.0} MiB",
        q1.0, half.0, full.0, q1.1, half.1, full.1
    ));
    let chain_mib = bytes as f64 / (1024.0 * 1024.0);
    let mut r = crate::figures::Rounds::default();
    r.push(chain_mib, peak);
    report.add_rounds(
        "import.node_rss_peak_mb",
        &format!("node peak RSS (VmHWM) over the {n}-block import"),
        "MiB",
        "size of the blocks it imported (MiB)",
        &r,
    );
    DataDir { _tmp: tmp, path, height: n as u64 }
}

/// A data directory of `n` small blocks, made in process (for `--only
/// restart`).
fn small_data_dir(n: usize) -> DataDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("node");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let mut chain = open_chain(&path.join("chain"), 10);
    for _ in 0..n {
        chain.accept_block(builder.next_block(1)).expect("import");
    }
    chain.flush().expect("flush");
    DataDir { _tmp: tmp, path, height: n as u64 }
}

/// Launches `lode-node` on `dir` and returns the milliseconds until its
/// RPC answers with the chain at `height`; stops it cleanly after.
fn launch_until_rpc(dir: &Path, height: u64) -> f64 {
    let _ = std::fs::remove_file(dir.join(".cookie"));
    let (rpc_port, p2p_port) = (free_port(), free_port());
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("node.log")).expect("log file");
    let start = Instant::now();
    let mut child = Command::new(bin("lode-node"))
        .arg("--chain")
        .arg("regtest")
        .arg("--data-dir")
        .arg(dir)
        .arg("--rpc-port")
        .arg(rpc_port.to_string())
        .arg("--listen")
        .arg(format!("/ip4/127.0.0.1/tcp/{p2p_port}"))
        .arg("--no-mdns")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn lode-node");
    let rpc = Rpc::new(dir, rpc_port);
    let cookie = dir.join(".cookie");
    let answered = loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("lode-node exited with {status} before its RPC answered; see {}", dir.join("node.log").display());
        }
        if cookie.exists() {
            if let Ok(info) = rpc.call("getblockchaininfo", json!([])) {
                assert_eq!(info["height"].as_u64(), Some(height), "the node reopened the whole chain");
                break start.elapsed().as_secs_f64() * 1000.0;
            }
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lode-node's RPC did not answer within 120 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = rpc.call("stop", json!([]));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                assert!(status.success(), "lode-node exited with {status} after stop");
                break;
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("lode-node did not stop within 60 s");
            }
        }
    }
    answered
}

/// Time from launching `lode-node` on a data directory of many blocks
/// until its RPC answers, against a goal.
pub fn restart(report: &mut Report, dir: Option<DataDir>) {
    eprintln!("restart");
    let dir = dir.unwrap_or_else(|| small_data_dir(memory_size(report)));
    let runs = report.rounds().max(3);
    let ms: Vec<f64> = (0..runs).map(|_| launch_until_rpc(&dir.path, dir.height)).collect();
    report.add_goal(
        "restart.to_rpc_ms",
        &format!("launch lode-node on {} blocks until its RPC answers", dir.height),
        "ms",
        "goal: < 2 s",
        2000.0,
        &ms,
    );
    report.detail("restart.to_rpc_ms", json!({"blocks": dir.height}));
}
