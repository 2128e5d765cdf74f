//! A small JSON-RPC client for the node, with one-line errors that say
//! whether the node is down, the cookie is wrong or the node refused.

use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;

/// RPC failures.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Nothing answered.
    #[error("cannot reach the node at {url}: {why} (is lode-node running with this --rpc port?)")]
    Down {
        /// URL tried.
        url: String,
        /// Transport error.
        why: String,
    },
    /// HTTP 401.
    #[error("the node at {0} refused the RPC cookie (wrong --cookie or --data-dir?)")]
    Unauthorized(String),
    /// The cookie file is missing.
    #[error("cannot read the RPC cookie {path}: {why} (pass --cookie FILE or --data-dir DIR)")]
    NoCookie {
        /// Path tried.
        path: String,
        /// Why.
        why: String,
    },
    /// A JSON-RPC error object.
    #[error("node error {code}: {message}")]
    Node {
        /// Code.
        code: i64,
        /// Message.
        message: String,
    },
    /// Not JSON-RPC.
    #[error("unexpected reply from {url}: {why}")]
    Protocol {
        /// URL.
        url: String,
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

impl Client {
    /// Reads the cookie and prepares requests.
    pub fn new(url: &str, cookie_path: &std::path::Path) -> Result<Client, RpcError> {
        let secret = std::fs::read_to_string(cookie_path)
            .map_err(|e| RpcError::NoCookie { path: cookie_path.display().to_string(), why: e.to_string() })?;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("__cookie__:{}", secret.trim()));
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| RpcError::Down { url: url.into(), why: e.to_string() })?;
        Ok(Client { url: url.to_string(), auth: format!("Basic {auth}"), http })
    }

    /// Calls `method`.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let resp = self
            .http
            .post(&self.url)
            .header("Authorization", &self.auth)
            .json(&body)
            .send()
            .map_err(|e| RpcError::Down { url: self.url.clone(), why: e.to_string() })?;
        if resp.status().as_u16() == 401 {
            return Err(RpcError::Unauthorized(self.url.clone()));
        }
        let v: Value = resp.json().map_err(|e| RpcError::Protocol { url: self.url.clone(), why: e.to_string() })?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            return Err(RpcError::Node {
                code: err["code"].as_i64().unwrap_or(0),
                message: err["message"].as_str().unwrap_or("").to_string(),
            });
        }
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    }
}
