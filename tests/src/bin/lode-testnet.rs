//! `lode-testnet`: a local devnet of N nodes on 127.0.0.1 (the README's
//! first command runs it through `scripts/testnet.sh`). Node 0 is the
//! bootnode; nodes 0 and 1 mine to a wallet created on first run. Shows each
//! node's height, peers, mempool and hash rate until Ctrl-C, then stops every
//! node cleanly. Running it again reuses the chain in the same folder.

use lode_tests::{bin, wait_for};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BASE_PORT: u16 = 30_000;
const PASSPHRASE: &str = "lode-testnet";

struct Node {
    index: usize,
    dir: PathBuf,
    rpc_port: u16,
    p2p_port: u16,
    metrics_port: u16,
    child: Child,
}

fn usage() -> ! {
    eprintln!("usage: lode-testnet [--nodes N] [--miners M] [--dir DIR] [--chain devnet|PATH]");
    std::process::exit(2);
}

fn rpc(node: &Node, method: &str, params: Value) -> Option<Value> {
    let secret = std::fs::read_to_string(node.dir.join(".cookie")).ok()?;
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().ok()?;
    let v: Value = client
        .post(format!("http://127.0.0.1:{}/", node.rpc_port))
        .basic_auth("__cookie__", Some(secret.trim()))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .ok()?
        .json()
        .ok()?;
    v.get("result").cloned()
}

fn wallet_cmd(dir: &Path, chain: &str) -> Command {
    let mut c = Command::new(bin("lode-wallet"));
    c.arg("--chain").arg(chain).arg("--wallet").arg(dir.join("wallet.json")).env("LODE_WALLET_PASSPHRASE", PASSPHRASE);
    c
}

fn main() {
    let mut nodes_n = 3usize;
    let mut miners = 2usize;
    let mut chain = "devnet".to_string();
    let mut dir = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".local/share/lode/local-testnet"))
        .unwrap_or_else(|| PathBuf::from("local-testnet"));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--nodes" => nodes_n = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()),
            "--miners" => miners = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()),
            "--dir" => dir = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "--chain" => chain = args.next().unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    if nodes_n == 0 || nodes_n > 50 {
        usage();
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        std::process::exit(1);
    }
    // One wallet for the miners, created on first run.
    if !dir.join("wallet.json").exists() {
        let out = wallet_cmd(&dir, &chain).arg("new").output().expect("run lode-wallet new");
        if !out.status.success() {
            eprintln!("lode-wallet new failed: {}", String::from_utf8_lossy(&out.stderr));
            std::process::exit(1);
        }
        println!("Created the miners' wallet {} (passphrase \"{PASSPHRASE}\"):", dir.join("wallet.json").display());
        println!("{}", String::from_utf8_lossy(&out.stdout));
    }
    let out = wallet_cmd(&dir, &chain).args(["--json", "address"]).output().expect("run lode-wallet address");
    let address =
        serde_json::from_slice::<Value>(&out.stdout).ok().and_then(|v| v["address"].as_str().map(str::to_owned));
    let Some(address) = address else {
        eprintln!("cannot read the wallet address: {}", String::from_utf8_lossy(&out.stderr));
        std::process::exit(1);
    };

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut bootnode: Option<String> = None;
    for index in 0..nodes_n {
        let ndir = dir.join(format!("node{index}"));
        std::fs::create_dir_all(&ndir).expect("node dir");
        let base = BASE_PORT + (index as u16) * 10;
        let (rpc_port, p2p_port, metrics_port) = (base, base + 1, base + 2);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(ndir.join("node.log")).expect("log");
        let mut cmd = Command::new(bin("lode-node"));
        cmd.args([
            "--chain",
            &chain,
            "--no-mdns",
            "--rpc-port",
            &rpc_port.to_string(),
            "--metrics-port",
            &metrics_port.to_string(),
        ])
        .arg("--data-dir")
        .arg(&ndir)
        .args(["--listen", &format!("/ip4/127.0.0.1/tcp/{p2p_port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        if index < miners {
            cmd.args(["--mine", "--mine-threads", "1", "--miner-address", &address]);
        }
        if let Some(b) = &bootnode {
            cmd.args(["--bootnode", b]);
        }
        let child = cmd.spawn().expect("spawn lode-node");
        let node = Node { index, dir: ndir, rpc_port, p2p_port, metrics_port, child };
        wait_for("node RPC", Duration::from_secs(60), || rpc(&node, "getblockchaininfo", json!([])));
        if index == 0 {
            let id = rpc(&node, "getnetworkinfo", json!([]))
                .and_then(|v| v["peer_id"].as_str().map(str::to_owned))
                .expect("peer id");
            bootnode = Some(format!("/ip4/127.0.0.1/tcp/{p2p_port}/p2p/{id}"));
        }
        nodes.push(node);
    }
    println!("Local {chain} testnet in {}", dir.display());
    for n in &nodes {
        println!(
            "  node{}: rpc http://127.0.0.1:{} (cookie {}), metrics http://127.0.0.1:{}/metrics, p2p {}{}",
            n.index,
            n.rpc_port,
            n.dir.join(".cookie").display(),
            n.metrics_port,
            n.p2p_port,
            if n.index < miners { ", mining" } else { "" }
        );
    }
    println!("Bootnode: {}", bootnode.unwrap_or_default());
    println!("Try the wallet (passphrase via LODE_WALLET_PASSPHRASE={PASSPHRASE}):");
    let w = dir.join("wallet.json");
    let d0 = nodes[0].dir.display();
    println!(
        "  lode-wallet --chain {chain} --wallet {} --data-dir {d0} --rpc http://127.0.0.1:{} balance",
        w.display(),
        nodes[0].rpc_port
    );
    println!("  lode-wallet --chain {chain} --wallet {} --data-dir {d0} --rpc http://127.0.0.1:{} send --to <ADDR> --amount 1.5 --wait", w.display(), nodes[0].rpc_port);
    println!("Ctrl-C stops every node.\n");
    while !stop.load(Ordering::SeqCst) {
        let mut line = String::new();
        for n in &mut nodes {
            if let Ok(Some(status)) = n.child.try_wait() {
                line.push_str(&format!("node{}: exited ({status})  ", n.index));
                continue;
            }
            let info = rpc(n, "getblockchaininfo", json!([])).unwrap_or(Value::Null);
            let peers = rpc(n, "getnetworkinfo", json!([])).map(|v| v["connections"].clone()).unwrap_or(Value::Null);
            let pool = rpc(n, "getmempoolinfo", json!([])).map(|v| v["size"].clone()).unwrap_or(Value::Null);
            let rate = rpc(n, "getmininginfo", json!([])).and_then(|v| v["hashrate"].as_f64()).unwrap_or(0.0);
            let tip = info["best_hash"].as_str().map(|s| &s[..12]).unwrap_or("?").to_string();
            line.push_str(&format!(
                "node{}: h={} {} peers={} mempool={} {:.1}MH/s  ",
                n.index,
                info["height"],
                tip,
                peers,
                pool,
                rate / 1e6
            ));
        }
        println!("{line}");
        for _ in 0..50 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    println!("stopping...");
    for n in &nodes {
        let _ = rpc(n, "stop", json!([]));
    }
    for n in &mut nodes {
        let _ = wait_for("node exit", Duration::from_secs(30), || n.child.try_wait().ok().flatten());
    }
    println!("all nodes stopped; run again to continue the same chain");
}
