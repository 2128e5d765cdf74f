//! Mempool admission through `sendrawtransaction` from concurrent clients,
//! each round beside the signature bound.
//!
//! The clients are deliberately thin: each holds one keep-alive HTTP/1.1
//! connection and writes requests serialized before the clock starts, so
//! the two cores the figure is read against go to the node, not to a
//! general-purpose HTTP client's JSON and connection handling (which cost
//! as much CPU per call as the node's whole admission did).

use crate::figures::{Report, Rounds};
use crate::import::import_into;
use crate::network::copy_dir;
use crate::sections::signature_bound;
use base64::Engine;
use lode_core::codec::Encode;
use lode_core::ChainSpec;
use lode_node::testkit::ChainBuilder;
use lode_tests::{free_port, NodeOptions, TestNode};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

/// One keep-alive JSON-RPC connection to a node on 127.0.0.1.
struct RawRpc {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RawRpc {
    fn connect(port: u16) -> RawRpc {
        let writer = TcpStream::connect(("127.0.0.1", port)).expect("connect to RPC");
        writer.set_nodelay(true).expect("nodelay");
        let reader = BufReader::new(writer.try_clone().expect("clone stream"));
        RawRpc { reader, writer }
    }

    /// Sends one prepared request and returns the response body.
    fn roundtrip(&mut self, request: &[u8]) -> Vec<u8> {
        self.writer.write_all(request).expect("write request");
        let mut length = None;
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("read header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                }
            }
        }
        let mut body = vec![0; length.expect("content-length in the response")];
        self.reader.read_exact(&mut body).expect("read body");
        body
    }
}

/// A `sendrawtransaction` request, serialized whole (headers and body).
fn request(port: u16, auth: &str, tx_hex: &str) -> Vec<u8> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "sendrawtransaction", "params": [tx_hex]}).to_string();
    format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
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
    let mut rounds = Rounds::default();
    let mut node_cpu = Vec::new();
    for round in 0..report.rounds() {
        let bound = signature_bound(report);
        let dir = tmp.path().join(format!("node{round}"));
        copy_dir(&seed, &dir);
        let node = TestNode::start_in(&dir, NodeOptions::default(), free_port(), free_port());
        let secret = std::fs::read_to_string(dir.join(".cookie")).expect("cookie");
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("__cookie__:{}", secret.trim()));
        let port = node.rpc_port;
        let chunks: Vec<Vec<Vec<u8>>> = (0..clients)
            .map(|c| hexes.iter().skip(c).step_by(clients).map(|h| request(port, &auth, h)).collect())
            .collect();
        let mut conns: Vec<RawRpc> = (0..clients).map(|_| RawRpc::connect(port)).collect();
        let cpu_before = node.pid().map(process_cpu_seconds);
        let start = Instant::now();
        std::thread::scope(|s| {
            for (conn, chunk) in conns.iter_mut().zip(&chunks) {
                s.spawn(move || {
                    for req in chunk {
                        let body = conn.roundtrip(req);
                        let v: Value = serde_json::from_slice(&body).expect("JSON response");
                        assert!(v["error"].is_null(), "refused: {v}");
                    }
                });
            }
        });
        let elapsed = start.elapsed().as_secs_f64();
        if let (Some(before), Some(after)) = (cpu_before, node.pid().map(process_cpu_seconds)) {
            node_cpu.push((after - before) / hexes.len() as f64 * 1e6);
        }
        let size = node.rpc("getmempoolinfo", json!([]))["size"].as_u64().unwrap_or(0);
        assert_eq!(size as usize, hexes.len(), "every transaction admitted");
        rounds.push(bound, hexes.len() as f64 / elapsed);
        drop(conns);
        drop(node);
        let _ = std::fs::remove_dir_all(&dir);
    }
    report.add_rounds(
        "mempool.rpc_accept",
        &format!("{} tx via sendrawtransaction, {clients} keep-alive clients", hexes.len()),
        "tx/s",
        "cores × 1-core verify rate",
        &rounds,
    );
    report.detail("mempool.rpc_accept", json!({"node_cpu_us_per_tx": node_cpu}));
}

/// User + system CPU seconds a process has used (Linux `/proc`; 0 elsewhere).
fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after ')'.
    // In clock ticks of USER_HZ, which is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}
