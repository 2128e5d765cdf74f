//! A small JSON-RPC client for the node, with one-line errors that say
//! whether the node is down, the cookie is wrong, the chain differs or the
//! node refused, and typed views of the results the wallet relies on.

use base64::Engine;
use lode_core::Hash256;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// JSON-RPC error code for "not found" (unknown transaction).
pub const NOT_FOUND: i64 = -5;
/// JSON-RPC error code for "transaction already known".
pub const ALREADY_KNOWN: i64 = -27;

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

impl Client {
    /// Reads the cookie and prepares requests (no traffic yet).
    pub fn new(url: &str, cookie_path: &std::path::Path) -> Result<Client, RpcError> {
        let parsed = normalise_url(url)?;
        let secret = std::fs::read_to_string(cookie_path)
            .map_err(|e| RpcError::NoCookie { path: cookie_path.display().to_string(), why: e.to_string() })?;
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
        Ok(Client { url: url.to_string(), auth: format!("Basic {auth}"), http })
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
        let text = resp.text().map_err(|e| protocol(e.to_string()))?;
        let v: Value = serde_json::from_str(&text).map_err(|_| {
            let snippet: String = text.chars().take(80).collect();
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

/// The innermost cause of a transport error ("Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
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
    pub confirmed: u64,
    /// Net effect of mempool transactions (may be negative).
    pub unconfirmed: i64,
    /// Coinbase outputs not yet mature.
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
    #[serde(default)]
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
    #[serde(default)]
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
}
