//! JSON-RPC 2.0 over HTTP: the operator's and the wallet's interface.

mod methods;
pub use methods::MiningStatus;
mod params;
mod server;

pub use methods::Methods;
pub use server::{bind, serve, Cookie, MAX_BODY};

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// JSON-RPC error code.
    pub code: i64,
    /// Readable message.
    pub message: String,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into() }
    }
    /// Body is not JSON.
    pub fn parse(m: impl Into<String>) -> Self {
        Self::new(-32700, m)
    }
    /// Not a JSON-RPC request.
    pub fn invalid_request(m: impl Into<String>) -> Self {
        Self::new(-32600, m)
    }
    /// Unknown method.
    pub fn method_not_found(m: &str) -> Self {
        Self::new(-32601, format!("method not found: {m}"))
    }
    /// Bad parameters.
    pub fn invalid_params(m: impl Into<String>) -> Self {
        Self::new(-32602, m)
    }
    /// Server-side failure.
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(-32603, m)
    }
    /// Unknown block, transaction or height.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(-5, m)
    }
    /// A block body (or a transaction's block) this pruned node deleted:
    /// known, but not available here (Bitcoin Core answers pruned data
    /// with its misc error, -1).
    pub fn pruned(m: impl Into<String>) -> Self {
        Self::new(-1, m)
    }
    /// Consensus-invalid transaction.
    pub fn tx_invalid(m: impl Into<String>) -> Self {
        Self::new(-25, m)
    }
    /// Policy-rejected transaction.
    pub fn tx_rejected(m: impl Into<String>) -> Self {
        Self::new(-26, m)
    }
    /// Already known transaction.
    pub fn tx_known(m: impl Into<String>) -> Self {
        Self::new(-27, m)
    }
    /// Not allowed here.
    pub fn not_allowed(m: impl Into<String>) -> Self {
        Self::new(-8, m)
    }
    /// P2P failure.
    pub fn p2p(m: impl Into<String>) -> Self {
        Self::new(-9, m)
    }
}
