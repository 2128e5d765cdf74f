//! Harness for black-box tests: real `lode-node` and `lode-wallet`
//! processes on 127.0.0.1 with free ports and temporary data directories,
//! driven over JSON-RPC. Every wait has a deadline; every process started is
//! killed when its handle drops.

pub mod raw_client;
pub mod wallet_cli;

use base64::Engine;
use lode_core::block::{merkle_root, Block, BlockHeader, BLOCK_VERSION};
use lode_core::pow::CompactTarget;
use lode_core::subsidy::block_subsidy;
use lode_core::tx::TxOut;
use lode_core::validation::{check_header, BlockError};
use lode_core::{Address, ChainSpec, Hash256, Height, Transaction};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where a workspace binary is (beside the running executable, or one
/// folder up: test binaries live in target/<profile>/deps), if it exists.
pub fn find_bin(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let here = exe.parent()?;
    [Some(here.join(name)), here.parent().map(|p| p.join(name))].into_iter().flatten().find(|p| p.is_file())
}

/// Where the workspace's binary `name` is; panics with the build command
/// when it is missing.
pub fn bin(name: &str) -> PathBuf {
    find_bin(name).unwrap_or_else(|| {
        panic!("{name} is missing: build the workspace binaries first (cargo build --release --workspace --bins)")
    })
}

/// Ports handed out by [`free_port`] in this process, never handed out twice.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Ports [`free_port`] picks from: below the kernel's ephemeral range
/// (32768 and up on Linux), so outgoing connections do not take them, and
/// below `lode-testnet`'s default 30000.
pub const TEST_PORTS: std::ops::Range<u16> = 20_000..29_900;

/// A random number (std's per-process random hasher keys, a counter and the pid).
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

/// Whether nothing listens on `port` right now (on any local address).
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("0.0.0.0", port)).is_ok()
}

/// A port nobody listens on right now, picked at random from
/// [`TEST_PORTS`] and never returned twice by this process. Another
/// process may still take it before the node binds it: [`TestNode`]
/// notices the node's bind failure and starts it again on new ports.
pub fn free_port() -> u16 {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let span = u64::from(TEST_PORTS.end - TEST_PORTS.start);
    for _ in 0..10_000 {
        let port = TEST_PORTS.start + (random_u64() % span) as u16;
        if !handed.contains(&port) && port_is_free(port) {
            handed.insert(port);
            return port;
        }
    }
    panic!("no free port in {TEST_PORTS:?}");
}

/// A base port for `lode-testnet --base-port` with `nodes` nodes: node `i`
/// uses `base + 10 i` to `base + 10 i + 2`, all free now and never handed
/// out before by this process.
pub fn free_base_port(nodes: usize) -> u16 {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let span = u64::from(TEST_PORTS.end - TEST_PORTS.start) - 10 * nodes as u64;
    for _ in 0..10_000 {
        let base = TEST_PORTS.start + (random_u64() % span) as u16;
        let ports: Vec<u16> = (0..nodes as u16).flat_map(|i| (0..4).map(move |k| base + 10 * i + k)).collect();
        if ports.iter().all(|p| !handed.contains(p) && port_is_free(*p)) {
            handed.extend(ports);
            return base;
        }
    }
    panic!("no free block of ports in {TEST_PORTS:?}");
}

/// Whether a node's log (its stderr) says it stopped because a port it
/// was given was taken.
pub fn is_bind_failure(log: &str) -> bool {
    let log = log.to_lowercase();
    log.contains("cannot bind") || log.contains("cannot listen") || log.contains("address already in use")
}

/// Polls `cond` until it returns `Some` or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An error object returned by the node.
#[derive(Debug, Clone)]
pub struct RpcError {
    /// JSON-RPC code (or the HTTP status for transport errors).
    pub code: i64,
    /// Message.
    pub message: String,
}

/// A JSON-RPC client for a node on 127.0.0.1 that authenticates with the
/// cookie in its data directory (read at every call: it changes at restart).
#[derive(Clone, Debug)]
pub struct Rpc {
    /// The node's RPC port.
    pub port: u16,
    /// The node's data directory.
    pub data_dir: PathBuf,
    client: reqwest::blocking::Client,
}

impl Rpc {
    /// A client for the node with this data directory and RPC port.
    pub fn new(data_dir: &Path, port: u16) -> Rpc {
        let client =
            reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().expect("http client");
        Rpc { port, data_dir: data_dir.to_path_buf(), client }
    }

    /// The RPC URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Calls a method; `Err` for JSON-RPC errors and transport failures.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let secret = std::fs::read_to_string(self.data_dir.join(".cookie"))
            .map_err(|e| RpcError { code: 0, message: format!("no cookie: {e}") })?;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("__cookie__:{}", secret.trim()));
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let resp = self
            .client
            .post(self.url())
            .header("Authorization", format!("Basic {auth}"))
            .json(&body)
            .send()
            .map_err(|e| RpcError { code: 0, message: e.to_string() })?;
        let status = resp.status();
        let v: Value =
            resp.json().map_err(|e| RpcError { code: i64::from(status.as_u16()), message: e.to_string() })?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            return Err(RpcError {
                code: err["code"].as_i64().unwrap_or(0),
                message: err["message"].as_str().unwrap_or_default().to_string(),
            });
        }
        Ok(v["result"].clone())
    }
}

/// Options for starting a node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Chain name or spec path.
    pub chain: String,
    /// Extra flags.
    pub args: Vec<String>,
    /// Bootnode multiaddrs.
    pub bootnodes: Vec<String>,
    /// Serve metrics on a free port (`--metrics-port`, see [`TestNode::metrics_port`]).
    pub metrics: bool,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions { chain: "regtest".into(), args: Vec::new(), bootnodes: Vec::new(), metrics: false }
    }
}

/// How long a node may take from spawn to answering RPC.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long all attempts at starting a node (new ports after a bind failure) may take.
const START_DEADLINE: Duration = Duration::from_secs(180);
/// How long a node may take to exit after `stop`.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running node process.
pub struct TestNode {
    child: Option<Child>,
    /// Its data directory.
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// RPC port (a new one if the first was taken when the node started).
    pub rpc_port: u16,
    /// P2P port (likewise).
    pub p2p_port: u16,
    /// Metrics port, with [`NodeOptions::metrics`].
    pub metrics_port: Option<u16>,
    opts: NodeOptions,
    rpc: Rpc,
}

impl TestNode {
    /// Starts a node in a fresh temporary data directory.
    pub fn start(opts: NodeOptions) -> TestNode {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut n = TestNode::start_in(&dir, opts, free_port(), free_port());
        n._tmp = Some(tmp);
        n
    }

    /// Starts three nodes, the second and third bootstrapping from the
    /// first: the smallest network where what one node relays can be seen
    /// to reach a node it was not sent to.
    pub fn start_three() -> [TestNode; 3] {
        let n0 = TestNode::start(NodeOptions::default());
        let boot = n0.p2p_addr();
        let n1 = TestNode::start(NodeOptions { bootnodes: vec![boot.clone()], ..Default::default() });
        let n2 = TestNode::start(NodeOptions { bootnodes: vec![boot], ..Default::default() });
        [n0, n1, n2]
    }

    /// Starts a node on an existing data directory, trying these ports first.
    pub fn start_in(dir: &Path, opts: NodeOptions, rpc_port: u16, p2p_port: u16) -> TestNode {
        std::fs::create_dir_all(dir).expect("data directory");
        let metrics_port = opts.metrics.then(free_port);
        let mut n = TestNode {
            child: None,
            data_dir: dir.to_path_buf(),
            _tmp: None,
            rpc_port,
            p2p_port,
            metrics_port,
            opts,
            rpc: Rpc::new(dir, rpc_port),
        };
        n.spawn();
        n
    }

    /// Starts the process and waits for its RPC. A port taken by someone
    /// else between [`free_port`] and the node's bind (the node exits
    /// saying so) is not the node's fault: start again on new ports,
    /// within [`START_DEADLINE`].
    fn spawn(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        for attempt in 1.. {
            match self.try_spawn() {
                Ok(()) => return,
                Err(why) => {
                    assert!(
                        attempt < 10 && Instant::now() < deadline,
                        "lode-node could not bind its ports after {attempt} attempts: {why}"
                    );
                    eprintln!("lode-node could not bind (port taken meanwhile?), starting it on new ports: {why}");
                    self.rpc_port = free_port();
                    self.p2p_port = free_port();
                    self.metrics_port = self.metrics_port.map(|_| free_port());
                    self.rpc.port = self.rpc_port;
                }
            }
        }
    }

    /// One start: `Err` with the log line when the node exited because a
    /// port was taken; panics on any other early exit or on a timeout.
    fn try_spawn(&mut self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.data_dir.join(".cookie"));
        let log_path = self.data_dir.join("node.log");
        let log_start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("log file");
        let mut cmd = Command::new(bin("lode-node"));
        cmd.arg("--chain")
            .arg(&self.opts.chain)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--rpc-port")
            .arg(self.rpc_port.to_string())
            .arg("--listen")
            .arg(format!("/ip4/127.0.0.1/tcp/{}", self.p2p_port))
            .arg("--no-mdns")
            .args(&self.opts.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(port) = self.metrics_port {
            cmd.arg("--metrics-port").arg(port.to_string());
        }
        for b in &self.opts.bootnodes {
            cmd.arg("--bootnode").arg(b);
        }
        self.child = Some(cmd.spawn().expect("spawn lode-node"));
        let cookie = self.data_dir.join(".cookie");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                let text = std::fs::read(&log_path).unwrap_or_default();
                let new = String::from_utf8_lossy(text.get(log_start as usize..).unwrap_or_default()).to_string();
                if is_bind_failure(&new) {
                    return Err(new.trim().lines().last().unwrap_or_default().to_string());
                }
                panic!("lode-node exited early with {status}; log:\n{}", self.log_tail());
            }
            if cookie.exists() && self.call("getblockchaininfo", json!([])).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("timed out after {START_TIMEOUT:?} waiting for the node's RPC; log:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of the node's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.data_dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The chain this node runs.
    pub fn chain(&self) -> &str {
        &self.opts.chain
    }

    /// The RPC URL.
    pub fn rpc_url(&self) -> String {
        self.rpc.url()
    }

    /// Calls a method; `Err` for JSON-RPC errors and transport failures.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        self.rpc.call(method, params)
    }

    /// Calls a method that must succeed.
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        match self.call(method, params.clone()) {
            Ok(v) => v,
            Err(e) => panic!("{method}({params}) failed: {} {}\nlog:\n{}", e.code, e.message, self.log_tail()),
        }
    }

    /// Active chain height.
    pub fn height(&self) -> u64 {
        self.rpc("getblockchaininfo", json!([]))["height"].as_u64().expect("height")
    }

    /// Tip hash.
    pub fn tip(&self) -> String {
        self.rpc("getblockchaininfo", json!([]))["best_hash"].as_str().expect("hash").to_string()
    }

    /// A multiaddr other nodes can use as `--bootnode`.
    pub fn p2p_addr(&self) -> String {
        let info = self.rpc("getnetworkinfo", json!([]));
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.p2p_port, info["peer_id"].as_str().expect("peer id"))
    }

    /// Peer id.
    pub fn peer_id(&self) -> String {
        self.rpc("getnetworkinfo", json!([]))["peer_id"].as_str().expect("peer id").to_string()
    }

    /// The process id while the node runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running (it has not exited).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the process with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Asks the node to stop over RPC, waits for the process to exit and
    /// asserts it exited successfully (a node that crashes on the way out
    /// fails the test); returns that status.
    pub fn stop(&mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else { panic!("stop: the node is not running") };
        let asked = self.call("stop", json!([]));
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                waited => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "lode-node did not exit within {STOP_TIMEOUT:?} of `stop` ({waited:?}, stop answered {asked:?}); log:\n{}",
                        self.log_tail()
                    );
                }
            }
        };
        assert!(
            status.success(),
            "lode-node exited with {status} after `stop` (stop answered {asked:?}); log:\n{}",
            self.log_tail()
        );
        status
    }

    /// Starts the process again on the same directory (SIGKILL first if it runs).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts again after `stop`/`kill`.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "start_again: the node is still running");
        self.spawn();
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
        // For post-mortems: LODE_TEST_KEEP_LOGS=<dir> keeps every node's log
        // there (named by port) after its temporary data directory is gone.
        if let Some(dir) = std::env::var_os("LODE_TEST_KEEP_LOGS") {
            let dir = PathBuf::from(dir);
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::copy(self.data_dir.join("node.log"), dir.join(format!("node-{}.log", self.p2p_port)));
        }
    }
}

/// A block on `parent` (at `height`) that is valid in every respect but
/// its nonce: a coinbase committing to the height and paying exactly the
/// subsidy to `to`, the merkle root, `time` and `bits` as given. Set the
/// nonce with [`set_nonce`].
pub fn block_template(
    spec: &ChainSpec,
    parent: Hash256,
    height: u32,
    time: u64,
    bits: CompactTarget,
    to: Address,
) -> Block {
    let reward = block_subsidy(spec, Height(height));
    let coinbase =
        Transaction::coinbase(Height(height), b"lode-tests".to_vec(), vec![TxOut { value: reward, address: to }]);
    let header = BlockHeader {
        version: BLOCK_VERSION,
        prev_hash: parent,
        merkle_root: merkle_root(&[coinbase.txid()]).0,
        time,
        bits,
        nonce: 0,
    };
    Block { header, transactions: vec![coinbase] }
}

/// Sets the first nonce from the current one whose hash meets the
/// block's target (`meet`), or misses it with every other header rule
/// holding (`!meet`). Meant for easy targets (regtest).
pub fn set_nonce(block: &mut Block, spec: &ChainSpec, meet: bool) {
    loop {
        match (check_header(&block.header, spec), meet) {
            (Ok(()), true) | (Err(BlockError::HighHash(_)), false) => return,
            (Ok(()) | Err(BlockError::HighHash(_)), _) => block.header.nonce += 1,
            (Err(e), _) => panic!("the header breaks a rule besides proof of work: {e}"),
        }
    }
}

/// Runs `lode-wallet` against `node` with `LODE_WALLET_PASSPHRASE` set.
pub fn wallet(node: &TestNode, wallet_file: &Path, args: &[&str]) -> Output {
    Command::new(bin("lode-wallet"))
        .arg("--chain")
        .arg(node.chain())
        .arg("--wallet")
        .arg(wallet_file)
        .arg("--rpc")
        .arg(node.rpc_url())
        .arg("--data-dir")
        .arg(&node.data_dir)
        .args(args)
        .env("LODE_WALLET_PASSPHRASE", "correct horse battery staple")
        .stdin(Stdio::null())
        .output()
        .expect("run lode-wallet")
}

/// A fresh regtest address whose key nobody needs (mining rewards sink).
pub fn burn_address(node: &TestNode) -> String {
    let prefix = node.rpc("getblockchaininfo", json!([]))["chain"].as_str().map(|c| match c {
        "regtest" => "lrt",
        "devnet" => "ldev",
        _ => "ltb",
    });
    lode_core::Address([0x42; 20]).encode(prefix.expect("chain")).expect("address")
}

/// A key the test controls, with its regtest address.
pub struct TestKey {
    /// Secret key.
    pub sk: lode_core::crypto::SecretKey,
    /// Its address.
    pub address: lode_core::Address,
    /// The address as text.
    pub text: String,
}

impl TestKey {
    /// A fresh key on regtest.
    pub fn new() -> TestKey {
        let sk = lode_core::crypto::SecretKey::generate();
        let address = lode_core::Address::from_pubkey(&sk.public_key());
        let text = address.encode("lrt").expect("regtest prefix");
        TestKey { sk, address, text }
    }

    /// Spendable (mature) coins of this key on `node`, largest first.
    pub fn coins(&self, node: &TestNode) -> Vec<Value> {
        let maturity = u64::from(lode_core::ChainSpec::regtest().coinbase_maturity);
        let list = node.rpc("listunspent", json!([self.text]));
        let mut v: Vec<Value> = list
            .as_array()
            .expect("array")
            .iter()
            .filter(|c| {
                !c["coinbase"].as_bool().unwrap_or(false) || c["confirmations"].as_u64().unwrap_or(0) >= maturity
            })
            .cloned()
            .collect();
        v.sort_by_key(|c| std::cmp::Reverse(c["amount"].as_u64().unwrap_or(0)));
        v
    }

    /// Hex of a signed transaction paying `amount` of `coin` to `to`, the
    /// rest minus `fee` back to this key.
    pub fn pay(&self, coin: &Value, to: &lode_core::Address, amount: u64, fee: u64) -> (String, String) {
        use lode_core::codec::Encode;
        use lode_core::tx::{OutPoint, TxIn, Unlock};
        use lode_core::Amount;
        let value = coin["amount"].as_u64().expect("amount");
        let op = OutPoint {
            txid: Hash256::from_hex(coin["txid"].as_str().expect("txid")).expect("hex"),
            vout: coin["vout"].as_u64().expect("vout") as u32,
        };
        let mut outputs = vec![TxOut { value: Amount::from_units(amount), address: *to }];
        if value > amount + fee {
            outputs.push(TxOut { value: Amount::from_units(value - amount - fee), address: self.address });
        }
        let mut tx = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prevout: op,
                unlock: Unlock::Signature {
                    pubkey: self.sk.public_key(),
                    sig: lode_core::crypto::Signature::default(),
                },
            }],
            outputs,
            lock_time: 0,
        };
        tx.sign_inputs(&lode_core::ChainSpec::regtest().genesis_hash(), &[&self.sk], &[Amount::from_units(value)]);
        (tx.txid().to_hex(), hex::encode(tx.encode()))
    }
}

impl Default for TestKey {
    fn default() -> Self {
        Self::new()
    }
}
