//! A tiny in-process stand-in for `lode-node`'s JSON-RPC, for tests: HTTP on
//! 127.0.0.1 with cookie auth, a UTXO set, a mempool that checks every
//! transaction with `lode-core`'s own rules (inputs, maturity, signatures,
//! minimum fee rate) and the node's replace-by-fee rules for conflicts, a
//! settable fee estimate, and blocks mined on demand.

use base64::Engine;
use lode_core::codec::{Decode, Encode};
use lode_core::validation::{check_transaction, check_tx_inputs, verify_sig_checks, Coin, ConnectContext};
use lode_core::{Address, Amount, ChainSpec, Hash256, Height, OutPoint, Transaction, TxOut};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A known transaction.
struct Known {
    tx: Transaction,
    /// The outputs its inputs spent (None for a coinbase).
    spent: Vec<Option<TxOut>>,
    /// Height of its block; None in the mempool.
    height: Option<u32>,
}

/// The fake chain.
pub struct State {
    spec: ChainSpec,
    height: u32,
    utxos: HashMap<OutPoint, Coin>,
    txs: HashMap<Hash256, Known>,
    mempool: Vec<Hash256>,
    /// Confirmed (height, txid) per address, in block order.
    history: HashMap<Address, Vec<(u32, Hash256)>>,
    min_fee_rate: u64,
    /// What `estimatesmartfee` answers; `None`: "insufficient data".
    fee_estimate: Option<u64>,
    /// A lie told in every answer to one method: the honest answer goes
    /// through this rewrite (tests of a node that cannot be trusted).
    lie: Option<(String, Lie)>,
}

/// Rewrites an answer.
pub type Lie = Box<dyn Fn(&mut Value) + Send>;

type RpcResult = Result<Value, (i64, String)>;

fn bad(m: impl Into<String>) -> (i64, String) {
    (-32602, m.into())
}

impl State {
    fn addr(&self, v: &Value) -> Result<Address, (i64, String)> {
        let s = v.as_str().ok_or_else(|| bad("address must be a string"))?;
        Address::decode(s, &self.spec.address_prefix).map_err(|e| bad(e.to_string()))
    }

    fn text(&self, a: &Address) -> String {
        a.encode(&self.spec.address_prefix).unwrap_or_default()
    }

    /// Outputs the mempool spends.
    fn mempool_spends(&self) -> HashMap<OutPoint, Hash256> {
        let mut m = HashMap::new();
        for id in &self.mempool {
            for i in &self.txs[id].tx.inputs {
                m.insert(i.prevout, *id);
            }
        }
        m
    }

    fn dispatch(&mut self, method: &str, p: &[Value]) -> RpcResult {
        let arg = |i: usize| p.get(i).cloned().unwrap_or(Value::Null);
        match method {
            "getblockchaininfo" => Ok(json!({"chain": self.spec.name, "height": self.height, "initial_sync": false})),
            "getmempoolinfo" => Ok(json!({"size": self.mempool.len(), "bytes": 0, "min_fee_rate": self.min_fee_rate})),
            "getrawmempool" => Ok(json!(self.mempool)),
            "estimatesmartfee" => {
                let target = arg(0).as_u64().filter(|t| *t >= 1).ok_or_else(|| bad("conf_target"))?;
                Ok(match self.fee_estimate {
                    Some(r) => json!({"feerate": r, "blocks": target}),
                    None => json!({"feerate": self.min_fee_rate, "blocks": target, "errors": ["insufficient data"]}),
                })
            }
            "getmempoolentry" => {
                let id = arg(0).as_str().and_then(|s| Hash256::from_hex(s).ok()).ok_or_else(|| bad("txid"))?;
                if !self.mempool.contains(&id) {
                    return Err((-5, format!("transaction {id} is not in the mempool")));
                }
                let k = &self.txs[&id];
                Ok(json!({
                    "fee": self.fee_of(&id), "size": k.tx.encoded_size(), "ancestors": 1,
                    "descendants": self.family(&[id]).len(),
                }))
            }
            "listunspent" => {
                let a = self.addr(&arg(0))?;
                let tip = self.height;
                let list: Vec<Value> = self
                    .utxos
                    .iter()
                    .filter(|(_, c)| c.output.address == a)
                    .map(|(op, c)| json!({"txid": op.txid, "vout": op.vout, "amount": c.output.value.units(), "height": c.height.0, "coinbase": c.coinbase, "confirmations": tip + 1 - c.height.0}))
                    .collect();
                Ok(json!(list))
            }
            "getbalance" => {
                let a = self.addr(&arg(0))?;
                let next = self.height + 1;
                let (mut confirmed, mut immature, mut unconfirmed) = (0u64, 0u64, 0i64);
                for c in self.utxos.values().filter(|c| c.output.address == a) {
                    if c.coinbase && next - c.height.0 < self.spec.coinbase_maturity {
                        immature += c.output.value.units();
                    } else {
                        confirmed += c.output.value.units();
                    }
                }
                for id in &self.mempool {
                    let k = &self.txs[id];
                    unconfirmed +=
                        k.tx.outputs.iter().filter(|o| o.address == a).map(|o| o.value.units() as i64).sum::<i64>();
                    unconfirmed -= k
                        .spent
                        .iter()
                        .flatten()
                        .filter(|o| o.address == a)
                        .map(|o| o.value.units() as i64)
                        .sum::<i64>();
                }
                Ok(json!({"confirmed": confirmed, "unconfirmed": unconfirmed, "immature": immature}))
            }
            "getaddresshistory" => {
                let a = self.addr(&arg(0))?;
                let mut out: Vec<Value> = self
                    .history
                    .get(&a)
                    .into_iter()
                    .flatten()
                    .map(|(h, id)| json!({"txid": id, "height": h}))
                    .collect();
                for id in &self.mempool {
                    let k = &self.txs[id];
                    if k.tx.outputs.iter().any(|o| o.address == a) || k.spent.iter().flatten().any(|o| o.address == a) {
                        out.push(json!({"txid": id, "height": null}));
                    }
                }
                Ok(json!(out))
            }
            "getrawtransaction" => {
                let id = arg(0).as_str().and_then(|s| Hash256::from_hex(s).ok()).ok_or_else(|| bad("txid"))?;
                let k = self.txs.get(&id).ok_or((-5, format!("transaction {id} not found")))?;
                if !arg(1).as_bool().unwrap_or(false) {
                    return Ok(json!(hex::encode(k.tx.encode())));
                }
                let coinbase = k.tx.is_coinbase();
                let inputs: Vec<Value> = k
                    .tx
                    .inputs
                    .iter()
                    .zip(&k.spent)
                    .map(|(i, s)| match s {
                        Some(o) => json!({"txid": i.prevout.txid, "vout": i.prevout.vout, "address": self.text(&o.address), "amount": o.value.units()}),
                        None => json!({"coinbase": true}),
                    })
                    .collect();
                let outputs: Vec<Value> =
                    k.tx.outputs
                        .iter()
                        .enumerate()
                        .map(|(v, o)| json!({"vout": v, "address": self.text(&o.address), "amount": o.value.units()}))
                        .collect();
                let in_total: u64 = k.spent.iter().flatten().map(|o| o.value.units()).sum();
                let out_total: u64 = k.tx.outputs.iter().map(|o| o.value.units()).sum();
                let fee = if coinbase { 0 } else { in_total - out_total };
                let conf = k.height.map(|h| self.height + 1 - h).unwrap_or(0);
                Ok(json!({
                    "txid": id, "hex": hex::encode(k.tx.encode()), "size": k.tx.encoded_size(),
                    "height": k.height, "block_hash": k.height.map(|h| Hash256([h as u8; 32])),
                    "confirmations": conf, "in_mempool": k.height.is_none(), "coinbase": coinbase,
                    "inputs": inputs, "outputs": outputs, "fee": fee,
                }))
            }
            "sendrawtransaction" => {
                let bytes = arg(0).as_str().and_then(|s| hex::decode(s).ok()).ok_or_else(|| bad("hex"))?;
                let tx = Transaction::decode_all(&bytes, 1 << 20).map_err(|e| bad(e.to_string()))?;
                self.accept(tx).map(|id| json!(id))
            }
            _ => Err((-32601, format!("method {method} not found"))),
        }
    }

    fn accept(&mut self, tx: Transaction) -> RpcResult {
        let id = tx.txid();
        if self.txs.contains_key(&id) {
            return Err((-27, "already known".into()));
        }
        check_transaction(&tx, self.spec.max_block_size).map_err(|e| (-25, e.to_string()))?;
        let spends = self.mempool_spends();
        let direct: Vec<Hash256> = tx.inputs.iter().filter_map(|i| spends.get(&i.prevout).copied()).collect();
        let replaced = self.family(&direct);
        if tx.inputs.iter().any(|i| replaced.contains(&i.prevout.txid)) {
            return Err((-26, "replacement spends a transaction it replaces".into()));
        }
        let mut view = self.utxos.clone();
        for mid in &self.mempool {
            let k = &self.txs[mid];
            for (v, o) in k.tx.outputs.iter().enumerate() {
                let op = OutPoint { txid: *mid, vout: v as u32 };
                if !spends.contains_key(&op) {
                    view.insert(op, Coin { output: *o, height: Height(self.height + 1), coinbase: false });
                }
            }
        }
        let ctx = ConnectContext {
            genesis: self.spec.genesis_hash(),
            coinbase_maturity: self.spec.coinbase_maturity,
            subsidy: Amount::ZERO,
        };
        let (fee, checks) =
            check_tx_inputs(&tx, Height(self.height + 1), &ctx, &view).map_err(|e| (-25, e.to_string()))?;
        verify_sig_checks(&checks, None).map_err(|i| (-25, format!("bad signature on input {i}")))?;
        let size = tx.encoded_size() as u64;
        let required = self.min_fee_rate * size;
        if fee.units() < required {
            return Err((-26, format!("fee {} below the minimum {required}", fee.units())));
        }
        if !replaced.is_empty() {
            // The node's rules: a higher rate than each direct conflict, and
            // their fees (with descendants) plus 1 per byte of its own.
            let total: u64 = replaced.iter().map(|r| self.fee_of(r)).sum();
            let by_rate = direct
                .iter()
                .map(|d| self.fee_of(d) * size / self.txs[d].tx.encoded_size() as u64 + 1)
                .max()
                .unwrap_or(0);
            let need = by_rate.max(total + size);
            if fee.units() < need {
                return Err((-26, format!("replacement refused: it must pay at least {need} (pays {})", fee.units())));
            }
            for r in &replaced {
                self.mempool.retain(|m| m != r);
                self.txs.remove(r);
            }
        }
        let spent = tx.inputs.iter().map(|i| view.get(&i.prevout).map(|c| c.output)).collect();
        self.txs.insert(id, Known { tx, spent, height: None });
        self.mempool.push(id);
        Ok(json!(id))
    }

    /// Mines `n` blocks paying the subsidy to `to`; the first confirms the
    /// whole mempool.
    pub fn mine(&mut self, n: u32, to: &Address) {
        for _ in 0..n {
            self.height += 1;
            let h = self.height;
            let coinbase = Transaction::coinbase(
                Height(h),
                Vec::new(),
                vec![TxOut { value: self.spec.initial_subsidy, address: *to }],
            );
            let cb_id = coinbase.txid();
            self.txs.insert(cb_id, Known { tx: coinbase, spent: vec![None], height: None });
            let ids: Vec<Hash256> = std::iter::once(cb_id).chain(std::mem::take(&mut self.mempool)).collect();
            for id in ids {
                let k = self.txs.get_mut(&id).expect("known");
                k.height = Some(h);
                let coinbase = k.tx.is_coinbase();
                let mut touched: Vec<Address> = k.spent.iter().flatten().map(|o| o.address).collect();
                for i in &k.tx.inputs {
                    self.utxos.remove(&i.prevout);
                }
                for (v, o) in k.tx.outputs.iter().enumerate() {
                    self.utxos.insert(
                        OutPoint { txid: id, vout: v as u32 },
                        Coin { output: *o, height: Height(h), coinbase },
                    );
                    touched.push(o.address);
                }
                touched.sort();
                touched.dedup();
                for a in touched {
                    self.history.entry(a).or_default().push((h, id));
                }
            }
        }
    }

    /// Fee of a known non-coinbase transaction.
    fn fee_of(&self, id: &Hash256) -> u64 {
        let k = &self.txs[id];
        let inputs: u64 = k.spent.iter().flatten().map(|o| o.value.units()).sum();
        inputs.saturating_sub(k.tx.outputs.iter().map(|o| o.value.units()).sum())
    }

    /// `roots` and every mempool transaction descending from them.
    fn family(&self, roots: &[Hash256]) -> Vec<Hash256> {
        let mut out: Vec<Hash256> = Vec::new();
        let mut stack = roots.to_vec();
        while let Some(t) = stack.pop() {
            if out.contains(&t) {
                continue;
            }
            out.push(t);
            for m in &self.mempool {
                if self.txs[m].tx.inputs.iter().any(|i| i.prevout.txid == t) {
                    stack.push(*m);
                }
            }
        }
        out
    }

    /// Sets what `estimatesmartfee` answers (`None`: not enough data).
    pub fn set_fee_estimate(&mut self, r: Option<u64>) {
        self.fee_estimate = r;
    }

    /// From now on, every answer to `method` is rewritten by `lie`.
    pub fn lie_about(&mut self, method: &str, lie: Lie) {
        self.lie = Some((method.to_string(), lie));
    }

    /// Sets the minimum relay fee rate.
    pub fn set_min_fee_rate(&mut self, r: u64) {
        self.min_fee_rate = r;
    }

    /// Drops a mempool transaction (eviction).
    pub fn evict(&mut self, id: &Hash256) {
        self.mempool.retain(|m| m != id);
        self.txs.remove(id);
    }

    /// The mempool's txids.
    pub fn mempool(&self) -> Vec<Hash256> {
        self.mempool.clone()
    }

    /// A known transaction.
    pub fn tx(&self, id: &Hash256) -> Option<Transaction> {
        self.txs.get(id).map(|k| k.tx.clone())
    }
}

/// A running fake node.
pub struct FakeNode {
    port: u16,
    secret: String,
    /// Its chain, for tests to mine and inspect.
    pub state: Arc<Mutex<State>>,
}

impl FakeNode {
    /// Starts a fake node of the built-in `chain` on a free loopback port.
    pub fn start(chain: &str) -> FakeNode {
        let spec = ChainSpec::builtin(chain).expect("built-in chain");
        let state = Arc::new(Mutex::new(State {
            spec,
            height: 0,
            utxos: HashMap::new(),
            txs: HashMap::new(),
            mempool: Vec::new(),
            history: HashMap::new(),
            min_fee_rate: 1,
            fee_estimate: None,
            lie: None,
        }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let secret = format!("{:032x}", rand::random::<u128>());
        let expected =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("__cookie__:{secret}")));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                let expected = expected.clone();
                std::thread::spawn(move || serve_one(stream, &shared, &expected));
            }
        });
        FakeNode { port, secret, state }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Writes its cookie into `dir` and returns the path.
    pub fn cookie_file(&self, dir: &Path) -> PathBuf {
        let p = dir.join(".cookie");
        std::fs::write(&p, &self.secret).expect("write cookie");
        p
    }

    /// Mines `n` blocks to the address text `to`.
    pub fn mine_to(&self, n: u32, to: &str) {
        let mut s = self.state.lock().expect("lock");
        let a = Address::decode(to, &s.spec.address_prefix).expect("address");
        s.mine(n, &a);
    }

    /// Mines `n` blocks to an address nobody holds.
    pub fn mine(&self, n: u32) {
        self.state.lock().expect("lock").mine(n, &Address([0xee; 20]));
    }
}

/// Reads one HTTP request: its Authorization header and body.
fn read_request(stream: std::net::TcpStream) -> Option<(String, Vec<u8>, std::net::TcpStream)> {
    let mut reader = BufReader::new(stream);
    let mut len = 0usize;
    let mut auth = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "authorization" => auth = v.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    Some((auth, body, reader.into_inner()))
}

fn serve_one(stream: std::net::TcpStream, state: &Mutex<State>, expected_auth: &str) {
    let Some((auth, body, mut stream)) = read_request(stream) else { return };
    let (status, reply) = if auth != expected_auth {
        ("401 Unauthorized", String::new())
    } else {
        let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let method = req["method"].as_str().unwrap_or("");
        let params = req["params"].as_array().cloned().unwrap_or_default();
        let mut state = state.lock().expect("lock");
        let mut result = state.dispatch(method, &params);
        if let (Ok(v), Some((lied, lie))) = (&mut result, &state.lie) {
            if lied == method {
                lie(v);
            }
        }
        drop(state);
        let v = match result {
            Ok(r) => json!({"jsonrpc": "2.0", "id": req["id"], "result": r}),
            Err((code, message)) => {
                json!({"jsonrpc": "2.0", "id": req["id"], "error": {"code": code, "message": message}})
            }
        };
        ("200 OK", v.to_string())
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

/// A one-connection server that answers `response` verbatim; returns its URL.
pub fn serve_raw(response: impl Into<Vec<u8>>) -> String {
    let response = response.into();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        if let Some((_, _, mut s)) = listener.accept().ok().and_then(|(s, _)| read_request(s)) {
            let _ = s.write_all(&response);
        }
    });
    format!("http://127.0.0.1:{port}/")
}
