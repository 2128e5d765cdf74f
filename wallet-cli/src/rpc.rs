//! A small JSON-RPC client for the node, with one-line errors that say
//! whether the node is down, the cookie is wrong, the chain differs or the
//! node refused, and typed views of the results the wallet relies on.

use base64::Engine;
use lode_core::{Hash256, COIN, MAX_MONEY};
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// JSON-RPC error code for "not found" (unknown transaction).
pub const NOT_FOUND: i64 = -5;
/// JSON-RPC error code for "transaction already known".
pub const ALREADY_KNOWN: i64 = -27;
/// The largest JSON-RPC reply body the wallet reads. The node is reached
/// over plain HTTP and is not trusted: without a cap a lying node (or
/// anything on the path) could send gigabytes and exhaust memory. An
/// honest answer can be large too: anyone can pay an address dust, and
/// `listunspent` lists every coin (about 150 bytes each), so the cap sits
/// at about 1.7 million coins rather than near a typical answer.
pub const MAX_REPLY_BYTES: u64 = 256 * 1024 * 1024;
/// Bytes read from the reply body at a time.
const READ_CHUNK: usize = 64 * 1024;

/// RPC failures.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// `--rpc` is not a URL.
    #[error("invalid --rpc URL {0:?}: {1}")]
    BadUrl(String, String),
    /// Nothing answered.
    #[error("cannot reach the node at {url}: {why} (is lode-node running, with this --rpc address?)")]
    Down {
        /// URL tried.
        url: String,
        /// Transport error.
        why: String,
    },
    /// HTTP 401.
    #[error(
        "the node at {0} refused the RPC cookie (wrong --cookie or --data-dir, or the node restarted with a new one?)"
    )]
    Unauthorized(String),
    /// The cookie file is missing or unreadable.
    #[error("cannot read the RPC cookie {path}: {why} (is the node running? pass --cookie FILE or --data-dir DIR)")]
    NoCookie {
        /// Path tried.
        path: String,
        /// Why.
        why: String,
    },
    /// The node runs another network.
    #[error("chain mismatch: the node at {url} runs {node}, this wallet uses {wallet} (pass --chain or --rpc)")]
    ChainMismatch {
        /// URL.
        url: String,
        /// What the node said.
        node: String,
        /// What the wallet expected.
        wallet: String,
    },
    /// A JSON-RPC error object.
    #[error("node error {code}: {message}")]
    Node {
        /// Code.
        code: i64,
        /// Message.
        message: String,
    },
    /// Not the JSON-RPC the wallet expects.
    #[error("unexpected reply from {url} to {method}: {why}")]
    Protocol {
        /// URL.
        url: String,
        /// Method called.
        method: String,
        /// What was wrong.
        why: String,
    },
}

/// A connection to one node.
pub struct Client {
    url: String,
    auth: String,
    http: reqwest::blocking::Client,
    /// Replies larger than this are refused ([`MAX_REPLY_BYTES`]; smaller
    /// in tests).
    max_reply: u64,
}

/// `host:port` without a scheme gets `http://`.
fn normalise_url(url: &str) -> Result<reqwest::Url, RpcError> {
    let full = if url.contains("://") { url.to_string() } else { format!("http://{url}") };
    let parsed = reqwest::Url::parse(&full).map_err(|e| RpcError::BadUrl(url.to_string(), e.to_string()))?;
    if parsed.scheme() != "http" {
        return Err(RpcError::BadUrl(url.to_string(), "only http:// is supported (the node serves plain HTTP)".into()));
    }
    Ok(parsed)
}

/// Largest cookie file read (the node writes 64 hex digits).
const MAX_COOKIE_BYTES: u64 = 4096;

impl Client {
    /// Reads the cookie and prepares requests (no traffic yet).
    pub fn new(url: &str, cookie_path: &std::path::Path) -> Result<Client, RpcError> {
        let parsed = normalise_url(url)?;
        let no_cookie = |why: String| RpcError::NoCookie { path: cookie_path.display().to_string(), why };
        let bytes =
            crate::bounded::read_regular(cookie_path, MAX_COOKIE_BYTES).map_err(|e| no_cookie(e.to_string()))?;
        let secret = String::from_utf8(bytes).map_err(|_| no_cookie("not text".into()))?;
        Client::with_secret(parsed, secret.trim())
    }

    fn with_secret(url: reqwest::Url, secret: &str) -> Result<Client, RpcError> {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("__cookie__:{secret}"));
        let host = url.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
        let loopback =
            host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60));
        if loopback {
            // An HTTP_PROXY meant for the outside world must not swallow the
            // local node's cookie.
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| RpcError::Down { url: url.to_string(), why: e.to_string() })?;
        Ok(Client { url: url.to_string(), auth: format!("Basic {auth}"), http, max_reply: MAX_REPLY_BYTES })
    }

    /// Calls `method` and returns its raw result.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let protocol = |why: String| RpcError::Protocol { url: self.url.clone(), method: method.to_string(), why };
        let resp = self.http.post(&self.url).header("Authorization", &self.auth).json(&body).send().map_err(|e| {
            let why = if e.is_timeout() { "no answer in time".to_string() } else { root_cause(&e) };
            RpcError::Down { url: self.url.clone(), why }
        })?;
        let status = resp.status();
        if status.as_u16() == 401 {
            return Err(RpcError::Unauthorized(self.url.clone()));
        }
        // A declared length over the cap is refused before reading anything;
        // an absent or false one is caught while reading.
        if resp.content_length().is_some_and(|n| n > self.max_reply) {
            return Err(protocol(too_large(self.max_reply)));
        }
        let body = read_capped(resp, self.max_reply).map_err(protocol)?;
        let v: Value = serde_json::from_slice(&body).map_err(|_| {
            let snippet: String = String::from_utf8_lossy(&body[..body.len().min(320)]).chars().take(80).collect();
            protocol(format!("HTTP {status}, not JSON: {snippet:?}"))
        })?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            return Err(RpcError::Node {
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err.get("message").and_then(Value::as_str).unwrap_or("(no message)").to_string(),
            });
        }
        v.get("result").cloned().ok_or_else(|| protocol(format!("HTTP {status}, no result field")))
    }

    /// Calls `method` and decodes its result as `T`.
    pub fn typed<T: DeserializeOwned>(&self, method: &str, params: Value) -> Result<T, RpcError> {
        let v = self.call(method, params)?;
        serde_json::from_value(v).map_err(|e| RpcError::Protocol {
            url: self.url.clone(),
            method: method.to_string(),
            why: e.to_string(),
        })
    }

    /// `getblockchaininfo`, refusing a node on another chain.
    pub fn check_chain(&self, wallet_chain: &str) -> Result<ChainInfo, RpcError> {
        let info: ChainInfo = self.typed("getblockchaininfo", json!([]))?;
        if info.chain != wallet_chain {
            return Err(RpcError::ChainMismatch {
                url: self.url.clone(),
                node: info.chain,
                wallet: wallet_chain.to_string(),
            });
        }
        Ok(info)
    }

    /// `getrawtransaction(txid, true)`; `None` when the node does not know it.
    pub fn transaction(&self, txid: &Hash256) -> Result<Option<VerboseTx>, RpcError> {
        match self.typed("getrawtransaction", json!([txid, true])) {
            Ok(tx) => Ok(Some(tx)),
            Err(RpcError::Node { code: NOT_FOUND, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Why a reply over `limit` bytes is refused.
fn too_large(limit: u64) -> String {
    format!("the reply is larger than {limit} bytes, the most the wallet reads (MAX_REPLY_BYTES); refusing it")
}

/// Reads a whole reply body in chunks, stopping with an error as soon as
/// it passes `limit` bytes: at most `limit` plus one chunk is ever held.
fn read_capped(mut body: impl std::io::Read, limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = match body.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading the reply failed: {}", root_cause(&e))),
        };
        out.extend_from_slice(&chunk[..n]);
        if out.len() as u64 > limit {
            return Err(too_large(limit));
        }
    }
}

/// The innermost cause of a transport error ("Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Refuses an amount above [`MAX_MONEY`]: no honest node reports one, and
/// the wallet's sums of amounts are only bounded while each term is.
fn check_money(units: u64) -> Result<u64, String> {
    if units > MAX_MONEY.units() {
        Err(format!("amount {units} is above the {} coins that can ever exist (MAX_MONEY)", MAX_MONEY.units() / COIN))
    } else {
        Ok(units)
    }
}

/// An amount field of a node answer, refused above [`MAX_MONEY`].
fn money<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    check_money(u64::deserialize(d)?).map_err(D::Error::custom)
}

/// An optional amount field, refused above [`MAX_MONEY`].
fn money_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(d)?.map(check_money).transpose().map_err(D::Error::custom)
}

/// A signed amount field (a net change), refused beyond ±[`MAX_MONEY`].
fn signed_money<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = i64::deserialize(d)?;
    check_money(v.unsigned_abs()).map_err(D::Error::custom)?;
    Ok(v)
}

/// `getblockchaininfo` fields the wallet uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ChainInfo {
    /// Network name.
    pub chain: String,
    /// Best-chain height.
    pub height: u32,
}

/// One `listunspent` entry (confirmed outputs only).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Unspent {
    /// Funding transaction.
    pub txid: Hash256,
    /// Output index.
    pub vout: u32,
    /// Value in base units.
    #[serde(deserialize_with = "money")]
    pub amount: u64,
    /// Height of the block that created it.
    pub height: u32,
    /// Created by a coinbase (subject to maturity).
    pub coinbase: bool,
}

/// `getbalance` of one address.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
pub struct Balance {
    /// Spendable confirmed outputs.
    #[serde(deserialize_with = "money")]
    pub confirmed: u64,
    /// Net effect of mempool transactions (may be negative).
    #[serde(deserialize_with = "signed_money")]
    pub unconfirmed: i64,
    /// Coinbase outputs not yet mature.
    #[serde(deserialize_with = "money")]
    pub immature: u64,
}

/// One `getaddresshistory` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Transaction.
    pub txid: Hash256,
    /// Block height; `None` while in the mempool.
    pub height: Option<u32>,
}

/// An input of a verbose transaction.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct VerboseIn {
    /// Spent transaction (absent for a coinbase).
    #[serde(default)]
    pub txid: Option<Hash256>,
    /// Spent output index.
    #[serde(default)]
    pub vout: Option<u32>,
    /// Address of the spent output, when the node knows it.
    #[serde(default)]
    pub address: Option<String>,
    /// Value of the spent output, when the node knows it.
    #[serde(default, deserialize_with = "money_opt")]
    pub amount: Option<u64>,
}

/// An output of a verbose transaction.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct VerboseOut {
    /// Index.
    pub vout: u32,
    /// Address it pays.
    pub address: String,
    /// Value.
    #[serde(deserialize_with = "money")]
    pub amount: u64,
}

/// `getrawtransaction(txid, true)`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct VerboseTx {
    /// Id.
    pub txid: Hash256,
    /// Height of its block in the best chain, if any.
    #[serde(default)]
    pub height: Option<u32>,
    /// Its block, if any.
    #[serde(default)]
    pub block_hash: Option<Hash256>,
    /// Confirmations (0 in the mempool or off the best chain).
    #[serde(default)]
    pub confirmations: u64,
    /// Whether it waits in the mempool.
    #[serde(default)]
    pub in_mempool: bool,
    /// Whether it is a coinbase.
    #[serde(default)]
    pub coinbase: bool,
    /// Inputs.
    pub inputs: Vec<VerboseIn>,
    /// Outputs.
    pub outputs: Vec<VerboseOut>,
    /// Fee in base units (0 for a coinbase).
    #[serde(default, deserialize_with = "money")]
    pub fee: u64,
    /// Encoded size in bytes.
    #[serde(default)]
    pub size: u64,
}

/// `getmempoolinfo` fields the wallet uses.
#[derive(Debug, Clone, Deserialize)]
pub struct MempoolInfo {
    /// The node's minimum relay fee rate (base units per byte).
    #[serde(default = "one")]
    pub min_fee_rate: u64,
    /// What a replacement pays per byte of its own on top of what it
    /// replaces (absent from older nodes: their default, 1).
    #[serde(default = "one")]
    pub incremental_relay_fee: u64,
}

/// `estimatesmartfee`.
#[derive(Debug, Clone, Deserialize)]
pub struct FeeEstimateReply {
    /// Base units per byte.
    pub feerate: u64,
    /// Target the estimate holds for.
    pub blocks: u32,
    /// Set when the node lacks data and answered its minimum.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// `getmempoolentry` (only the family size: the fee and size a
/// replacement must beat are worked out from the transaction itself).
#[derive(Debug, Clone, Deserialize)]
pub struct MempoolEntry {
    /// In-pool descendants, itself included.
    pub descendants: u64,
}

fn one() -> u64 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{serve_raw, FakeNode};

    // `--cookie` naming a named pipe hung the command before any request.
    #[test]
    fn a_cookie_path_naming_a_pipe_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = crate::bounded::named_pipe(dir.path());
        let result = crate::bounded::within_deadline(move || Client::new("127.0.0.1:1", &pipe).map(|_| ()));
        match result {
            Err(RpcError::NoCookie { why, .. }) => assert_eq!(why, "not a regular file"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn urls_are_normalised_and_checked() {
        assert_eq!(normalise_url("127.0.0.1:19443").unwrap().as_str(), "http://127.0.0.1:19443/");
        assert!(matches!(normalise_url("https://x:1"), Err(RpcError::BadUrl(..))));
        assert!(matches!(normalise_url("http://"), Err(RpcError::BadUrl(..))));
    }

    #[test]
    fn a_node_that_is_down_is_named() {
        // Bind then drop: the port is free and refuses connections.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let c = Client::with_secret(normalise_url(&format!("127.0.0.1:{port}")).unwrap(), "s").unwrap();
        let e = c.call("getblockchaininfo", json!([])).unwrap_err();
        assert!(matches!(e, RpcError::Down { .. }), "{e}");
        assert!(e.to_string().contains("cannot reach the node"), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn a_wrong_cookie_a_missing_cookie_and_a_chain_mismatch_are_named() {
        let node = FakeNode::start("regtest");
        let dir = tempfile::tempdir().unwrap();
        let cookie = dir.path().join(".cookie");
        std::fs::write(&cookie, "not-the-secret\n").unwrap();
        let c = Client::new(&node.url(), &cookie).unwrap();
        assert!(matches!(c.call("getblockchaininfo", json!([])), Err(RpcError::Unauthorized(_))));
        let e = Client::new(&node.url(), &dir.path().join("missing")).err().unwrap();
        assert!(e.to_string().contains("cannot read the RPC cookie"), "{e}");
        let c = Client::new(&node.url(), &node.cookie_file(dir.path())).unwrap();
        assert_eq!(c.check_chain("regtest").unwrap().chain, "regtest");
        let e = c.check_chain("devnet").unwrap_err();
        assert!(e.to_string().starts_with("chain mismatch: the node at"), "{e}");
    }

    #[test]
    fn node_errors_and_garbage_replies_are_reported() {
        let node = FakeNode::start("regtest");
        let dir = tempfile::tempdir().unwrap();
        let c = Client::new(&node.url(), &node.cookie_file(dir.path())).unwrap();
        let e = c.call("nosuchmethod", json!([])).unwrap_err();
        assert!(matches!(e, RpcError::Node { code: -32601, .. }), "{e}");
        assert_eq!(c.transaction(&Hash256([1; 32])).unwrap(), None);
        // A listener that answers HTML.
        let url = serve_raw("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot here!");
        let c = Client::with_secret(normalise_url(&url).unwrap(), "s").unwrap();
        let e = c.call("getblockchaininfo", json!([])).unwrap_err();
        assert!(matches!(e, RpcError::Protocol { .. }), "{e}");
        assert!(e.to_string().contains("404"), "{e}");
    }

    // A lying node could answer gigabytes; the reply is read up to a cap.
    #[test]
    fn replies_over_the_size_cap_are_refused() {
        let node = FakeNode::start("regtest");
        let dir = tempfile::tempdir().unwrap();
        let mut c = Client::new(&node.url(), &node.cookie_file(dir.path())).unwrap();
        c.max_reply = 4096;
        assert_eq!(c.check_chain("regtest").unwrap().height, 0, "a reply under the cap is read");
        node.state
            .lock()
            .unwrap()
            .lie_about("getblockchaininfo", Box::new(|v| v["padding"] = json!("x".repeat(10_000))));
        let e = c.check_chain("regtest").unwrap_err();
        assert!(matches!(e, RpcError::Protocol { .. }), "{e}");
        assert!(e.to_string().contains("larger than 4096 bytes"), "{e}");
        // Without a Content-Length the body is read until the connection
        // closes: the cap stops it while reading.
        let mut raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".to_vec();
        raw.extend_from_slice(format!("{{\"result\": \"{}\"}}", "x".repeat(100_000)).as_bytes());
        let mut c = Client::with_secret(normalise_url(&serve_raw(raw)).unwrap(), "s").unwrap();
        c.max_reply = 4096;
        let e = c.call("getblockchaininfo", json!([])).map(|_| "read whole").unwrap_err();
        assert!(e.to_string().contains("larger than 4096 bytes"), "{e}");
    }

    #[test]
    fn an_endless_reply_stops_at_the_cap() {
        use std::io::Read;
        let e = read_capped(std::io::repeat(b' '), MAX_REPLY_BYTES).unwrap_err();
        assert!(e.contains(&format!("larger than {MAX_REPLY_BYTES} bytes")), "{e}");
        let exact = read_capped(std::io::repeat(b' ').take(4096), 4096).unwrap();
        assert_eq!(exact.len(), 4096, "a reply of exactly the cap is read whole");
        assert!(read_capped(std::io::repeat(b' ').take(4097), 4096).is_err());
    }
}
