//! Harness for black-box tests: real `lode-node` and `lode-wallet`
//! processes on 127.0.0.1 with free ports and temporary data directories,
//! driven over JSON-RPC. Every wait has a deadline; every process started is
//! killed when its handle drops.

use base64::Engine;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where the workspace's binaries are (next to this test binary's folder).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // Test binaries live in target/<profile>/deps, other binaries in
    // target/<profile>: look beside the executable, then one level up.
    let here = exe.parent().expect("executable folder");
    let path = [here.join(name), here.parent().map(|p| p.join(name)).unwrap_or_default()]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| here.join(name));
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --release --workspace --bins)",
        path.display()
    );
    path
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind port 0").local_addr().expect("local addr").port()
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

/// Options for starting a node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Chain name or spec path.
    pub chain: String,
    /// Extra flags.
    pub args: Vec<String>,
    /// Bootnode multiaddrs.
    pub bootnodes: Vec<String>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions { chain: "regtest".into(), args: Vec::new(), bootnodes: Vec::new() }
    }
}

/// A running node process.
pub struct TestNode {
    child: Option<Child>,
    /// Its data directory.
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// RPC port.
    pub rpc_port: u16,
    /// P2P port.
    pub p2p_port: u16,
    opts: NodeOptions,
    client: reqwest::blocking::Client,
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

    /// Starts a node on an existing data directory and ports.
    pub fn start_in(dir: &Path, opts: NodeOptions, rpc_port: u16, p2p_port: u16) -> TestNode {
        let client =
            reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().expect("http client");
        let mut n = TestNode { child: None, data_dir: dir.to_path_buf(), _tmp: None, rpc_port, p2p_port, opts, client };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.data_dir.join(".cookie"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("node.log"))
            .expect("log file");
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
        for b in &self.opts.bootnodes {
            cmd.arg("--bootnode").arg(b);
        }
        self.child = Some(cmd.spawn().expect("spawn lode-node"));
        let cookie = self.data_dir.join(".cookie");
        wait_for("the node's RPC", Duration::from_secs(60), || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("lode-node exited early with {status}; log:\n{}", self.log_tail());
            }
            if !cookie.exists() {
                return None;
            }
            self.call("getblockchaininfo", json!([])).ok()
        });
    }

    /// The last lines of the node's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.data_dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The RPC URL.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.rpc_port)
    }

    /// Calls a method; `Err` for JSON-RPC errors and transport failures.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let secret = std::fs::read_to_string(self.data_dir.join(".cookie"))
            .map_err(|e| RpcError { code: 0, message: format!("no cookie: {e}") })?;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("__cookie__:{}", secret.trim()));
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let resp = self
            .client
            .post(self.rpc_url())
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

    /// Kills the process with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Asks the node to stop over RPC and waits for the process to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = self.call("stop", json!([]));
        let mut child = self.child.take().expect("running");
        wait_for("the node to exit", Duration::from_secs(30), || child.try_wait().ok().flatten())
    }

    /// Starts the process again on the same directory and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts again after `stop`/`kill`.
    pub fn start_again(&mut self) {
        self.spawn();
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `lode-wallet` against `node` with `LODE_WALLET_PASSPHRASE` set.
pub fn wallet(node: &TestNode, wallet_file: &Path, args: &[&str]) -> Output {
    Command::new(bin("lode-wallet"))
        .arg("--chain")
        .arg(&node.opts.chain)
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
        use lode_core::tx::{OutPoint, Transaction, TxIn, TxOut, Unlock};
        use lode_core::{Amount, Hash256};
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
