//! `lode-testnet`: a local devnet of N nodes on 127.0.0.1 (the README's
//! first command runs it through `scripts/testnet.sh`). Node 0 is the
//! bootnode; the first M nodes mine to a wallet created on first run. Shows
//! each node's height, peers, mempool and hash rate until Ctrl-C (SIGINT)
//! or SIGTERM, then stops every node cleanly. Running it again on the same
//! folder continues the same chain.
//!
//! Node `i` uses ports `BASE + 10 i` (RPC), `+ 1` (p2p), `+ 2`
//! (metrics) and `+ 3` (block explorer); `--base-port` moves them
//! (default 30000). `<dir>/testnet.html` shows every node at once.
//!
//! Exit status: 0 when every node stopped cleanly, 1 when a node could not
//! start, exited with an error or had to be killed, 2 for bad arguments.

#[path = "../testnet_view.rs"]
mod testnet_view;

use lode_core::ChainSpec;
use lode_tests::find_bin;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEFAULT_BASE_PORT: u16 = 30_000;
const PASSPHRASE: &str = "lode-testnet";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

struct Node {
    index: usize,
    dir: PathBuf,
    rpc_port: u16,
    p2p_port: u16,
    metrics_port: u16,
    child: Child,
    /// Set once the process has been reaped.
    exited: Option<ExitStatus>,
}

impl Node {
    /// The exit status if the process has exited (reaping it once).
    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited
    }
}

struct Options {
    nodes: usize,
    miners: usize,
    chain: String,
    dir: PathBuf,
    base_port: u16,
}

fn usage(why: &str) -> ! {
    eprintln!("lode-testnet: {why}");
    eprintln!("usage: lode-testnet [--nodes N] [--miners M] [--dir DIR] [--chain devnet|PATH] [--base-port P]");
    std::process::exit(2);
}

fn parse_args() -> Options {
    let mut o = Options {
        nodes: 3,
        miners: 2,
        chain: "devnet".to_string(),
        dir: std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".local/share/lode/local-testnet"))
            .unwrap_or_else(|| PathBuf::from("local-testnet")),
        base_port: DEFAULT_BASE_PORT,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--nodes" => o.nodes = value().parse().unwrap_or_else(|_| usage("--nodes takes a number")),
            "--miners" => o.miners = value().parse().unwrap_or_else(|_| usage("--miners takes a number")),
            "--dir" => o.dir = PathBuf::from(value()),
            "--chain" => o.chain = value(),
            "--base-port" => o.base_port = value().parse().unwrap_or_else(|_| usage("--base-port takes a port")),
            "-h" | "--help" => usage("a local testnet"),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if o.nodes == 0 || o.nodes > 50 {
        usage("--nodes must be between 1 and 50");
    }
    if usize::from(o.base_port) + 10 * o.nodes > usize::from(u16::MAX) || o.base_port < 1024 {
        usage("--base-port leaves no room for the nodes' ports");
    }
    o
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

/// A word as the shell reads it back: unchanged when it is plain, in
/// single quotes otherwise.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:=@%+,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// How to name `name` in a printed command: the bare name when the first
/// `name` on PATH is this very binary (as after `scripts/testnet.sh` linked
/// it into ~/.local/bin), its full path otherwise.
fn command_name(name: &str, path: &Path) -> String {
    let on_path = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file()))
        .and_then(|c| c.canonicalize().ok());
    if on_path.is_some() && on_path == path.canonicalize().ok() {
        name.to_string()
    } else {
        shell_word(&path.display().to_string())
    }
}

fn wallet_cmd(wallet: &Path, chain: &str, file: &Path) -> Command {
    let mut c = Command::new(wallet);
    c.arg("--chain")
        .arg(chain)
        .arg("--wallet")
        .arg(file)
        .env("LODE_WALLET_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::null());
    c
}

/// Creates `file` if it does not exist yet; returns its address.
fn ensure_wallet(wallet: &Path, chain: &str, file: &Path, what: &str) -> Result<String, String> {
    if !file.exists() {
        let out = wallet_cmd(wallet, chain, file).arg("new").output().map_err(|e| format!("lode-wallet: {e}"))?;
        if !out.status.success() {
            return Err(format!("lode-wallet new failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        println!("Created {what} {} (passphrase \"{PASSPHRASE}\"):", file.display());
        println!("{}", String::from_utf8_lossy(&out.stdout).trim_end());
    }
    let out = wallet_cmd(wallet, chain, file)
        .args(["--json", "address"])
        .output()
        .map_err(|e| format!("lode-wallet: {e}"))?;
    serde_json::from_slice::<Value>(&out.stdout).ok().and_then(|v| v["address"].as_str().map(str::to_owned)).ok_or_else(
        || format!("cannot read the address of {}: {}", file.display(), String::from_utf8_lossy(&out.stderr)),
    )
}

/// The last lines of a node's log.
fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// Starts node `index` and waits for its RPC.
fn start_node(
    o: &Options,
    node_bin: &Path,
    index: usize,
    address: &str,
    bootnode: Option<&str>,
) -> Result<Node, String> {
    let dir = o.dir.join(format!("node{index}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let base = o.base_port + (index as u16) * 10;
    let (rpc_port, p2p_port, metrics_port) = (base, base + 1, base + 2);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("node.log"))
        .map_err(|e| format!("cannot open {}: {e}", dir.join("node.log").display()))?;
    // A cookie left by a killed run would look like a live node.
    let _ = std::fs::remove_file(dir.join(".cookie"));
    let mut cmd = Command::new(node_bin);
    cmd.args(["--chain", &o.chain, "--no-mdns", "--rpc-port", &rpc_port.to_string()])
        .args(["--metrics-port", &metrics_port.to_string()])
        // The block explorer (read-only) on the port after metrics.
        .args(["--explorer-port", &(base + 3).to_string()])
        .arg("--data-dir")
        .arg(&dir)
        .args(["--listen", &format!("/ip4/127.0.0.1/tcp/{p2p_port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if index < o.miners {
        cmd.args(["--mine", "--mine-threads", "1", "--miner-address", address]);
    }
    if let Some(b) = bootnode {
        cmd.args(["--bootnode", b]);
    }
    let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", node_bin.display()))?;
    let mut node = Node { index, dir, rpc_port, p2p_port, metrics_port, child, exited: None };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = node.poll_exit() {
            return Err(format!("node{index} exited at start ({status}):\n{}", log_tail(&node.dir)));
        }
        if rpc(&node, "getblockchaininfo", json!([])).is_some() {
            return Ok(node);
        }
        if Instant::now() > deadline {
            let _ = node.child.kill();
            let _ = node.child.wait();
            return Err(format!("node{index} did not answer RPC within {START_TIMEOUT:?}:\n{}", log_tail(&node.dir)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops every node (RPC `stop`, then waits; SIGKILL after
/// [`STOP_TIMEOUT`]); true when all exited successfully.
fn stop_all(nodes: &mut [Node]) -> bool {
    for n in nodes.iter_mut() {
        if n.poll_exit().is_none() {
            let _ = rpc(n, "stop", json!([]));
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    let mut clean = true;
    for n in nodes.iter_mut() {
        let status = loop {
            if let Some(s) = n.poll_exit() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = n.child.kill();
                let _ = n.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        match status {
            Some(s) if s.success() => {}
            Some(s) => {
                clean = false;
                eprintln!("node{} exited with {s}:\n{}", n.index, log_tail(&n.dir));
            }
            None => {
                clean = false;
                eprintln!("node{} did not stop within {STOP_TIMEOUT:?} and was killed", n.index);
            }
        }
    }
    clean
}

fn status_line(nodes: &mut [Node]) -> String {
    let mut line = String::new();
    for n in nodes.iter_mut() {
        if let Some(status) = n.poll_exit() {
            line.push_str(&format!("node{}: exited ({status})  ", n.index));
            continue;
        }
        let info = rpc(n, "getblockchaininfo", json!([])).unwrap_or(Value::Null);
        let peers = rpc(n, "getnetworkinfo", json!([])).map(|v| v["connections"].clone()).unwrap_or(Value::Null);
        let pool = rpc(n, "getmempoolinfo", json!([])).map(|v| v["size"].clone()).unwrap_or(Value::Null);
        let rate = rpc(n, "getmininginfo", json!([])).and_then(|v| v["hashrate"].as_f64()).unwrap_or(0.0);
        let tip = info["best_hash"].as_str().and_then(|s| s.get(..12)).unwrap_or("?").to_string();
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
    line
}

fn main() {
    let o = parse_args();
    let (Some(node_bin), Some(wallet_bin)) = (find_bin("lode-node"), find_bin("lode-wallet")) else {
        eprintln!("lode-testnet: lode-node and lode-wallet must be next to lode-testnet (cargo build --release --workspace --bins)");
        std::process::exit(1);
    };
    if let Err(e) = std::fs::create_dir_all(&o.dir) {
        eprintln!("lode-testnet: cannot create {}: {e}", o.dir.display());
        std::process::exit(1);
    }
    // The miners' wallet and a second one to pay, created on first run.
    let (miners_wallet, friend_wallet) = (o.dir.join("wallet.json"), o.dir.join("friend.json"));
    let addresses = ensure_wallet(&wallet_bin, &o.chain, &miners_wallet, "the miners' wallet")
        .and_then(|a| Ok((a, ensure_wallet(&wallet_bin, &o.chain, &friend_wallet, "a second wallet")?)));
    let (address, friend) = match addresses {
        Ok(a) => a,
        Err(e) => {
            eprintln!("lode-testnet: {e}");
            std::process::exit(1);
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        if let Err(e) = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst)) {
            eprintln!("lode-testnet: cannot catch Ctrl-C ({e}); stop the nodes with their `stop` RPC");
        }
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut bootnode: Option<String> = None;
    for index in 0..o.nodes {
        let started = start_node(&o, &node_bin, index, &address, bootnode.as_deref());
        let node = match started {
            Ok(n) => n,
            Err(e) => {
                eprintln!("lode-testnet: {e}");
                stop_all(&mut nodes);
                std::process::exit(1);
            }
        };
        if index == 0 {
            match rpc(&node, "getnetworkinfo", json!([])).and_then(|v| v["peer_id"].as_str().map(str::to_owned)) {
                Some(id) => bootnode = Some(format!("/ip4/127.0.0.1/tcp/{}/p2p/{id}", node.p2p_port)),
                None => eprintln!("lode-testnet: node0 reports no peer id; nodes will not find each other"),
            }
        }
        nodes.push(node);
    }
    println!("Local {} testnet in {}", o.chain, o.dir.display());
    for n in &nodes {
        println!(
            "  node{}: rpc http://127.0.0.1:{} (cookie {}), metrics http://127.0.0.1:{}/metrics, p2p {}{}",
            n.index,
            n.rpc_port,
            n.dir.join(".cookie").display(),
            n.metrics_port,
            n.p2p_port,
            if n.index < o.miners { ", mining" } else { "" }
        );
    }
    println!("Bootnode: {}", bootnode.as_deref().unwrap_or("none"));
    let explorers: Vec<(String, String)> =
        nodes.iter().map(|n| (format!("node{}", n.index), format!("http://127.0.0.1:{}", n.rpc_port + 3))).collect();
    for (name, url) in &explorers {
        println!("  {name}: block explorer {url}/");
    }
    let view = o.dir.join("testnet.html");
    match testnet_view::write(&view, &explorers) {
        Ok(()) => println!("Testnet view (every node's height, tip, peers, hash rate): file://{}", view.display()),
        Err(e) => eprintln!("lode-testnet: cannot write {}: {e}", view.display()),
    }
    let wallet = format!(
        "LODE_WALLET_PASSPHRASE={PASSPHRASE} {} --chain {} --data-dir {} --rpc http://127.0.0.1:{}",
        command_name("lode-wallet", &wallet_bin),
        shell_word(&o.chain),
        shell_word(&nodes[0].dir.display().to_string()),
        nodes[0].rpc_port
    );
    let miners = shell_word(&miners_wallet.display().to_string());
    let second = shell_word(&friend_wallet.display().to_string());
    let maturity = match o.chain.as_str() {
        "regtest" | "devnet" | "testnet" => ChainSpec::builtin(&o.chain).ok(),
        path => std::fs::read_to_string(path).ok().and_then(|t| ChainSpec::from_json(&t).ok()),
    }
    .map_or_else(|| "the chain spec's coinbase_maturity".to_string(), |s| s.coinbase_maturity.to_string());
    println!("Try the wallet (mining rewards can be spent after {maturity} blocks):");
    println!("  {wallet} --wallet {miners} balance");
    println!("  {wallet} --wallet {miners} send --to {friend} --amount 1.5 --wait");
    println!("  {wallet} --wallet {second} balance");
    println!("Ctrl-C stops every node.\n");
    while !stop.load(Ordering::SeqCst) {
        println!("{}", status_line(&mut nodes));
        for _ in 0..50 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    println!("stopping...");
    if stop_all(&mut nodes) {
        println!("all nodes stopped; run again to continue the same chain");
    } else {
        eprintln!("lode-testnet: not every node stopped cleanly (logs in {}/node*/node.log)", o.dir.display());
        std::process::exit(1);
    }
}
