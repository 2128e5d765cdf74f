//! The block explorer and network dashboard (`--explorer-port`): an
//! Esplora-style JSON API under `/api`, server-rendered HTML pages that work
//! without JavaScript, and a Server-Sent Events stream for live updates.
//!
//! Read-only and unauthenticated by design: it shows only public chain
//! data (never the cookie, the wallet or anything that changes state), so
//! it binds 127.0.0.1 unless the operator says otherwise. Every chain or
//! mempool read runs on a blocking thread and holds a lock only for a few
//! index look-ups, never for a block body, an undo record or a coin read
//! from disk ([`query`]), and never across an `.await`.

pub(crate) mod addr;
mod api;
mod charts;
mod format;
mod home;
mod layout;
mod live;
mod network;
mod pages;
mod pool;
pub mod query;

use crate::node::Node;
use crate::p2p::P2pHandle;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long a response write may make no progress before the connection
/// is dropped (a client that stopped reading, an abandoned event stream).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// A client must send its request headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; further clients wait in the kernel's
/// backlog, so a flood cannot exhaust the node's file descriptors.
const MAX_CONNECTIONS: usize = 256;
/// Chain reads running at once: page loads queue instead of filling the
/// blocking pool that block validation and RPC also use.
const MAX_READERS: usize = 4;
/// Live event streams open at once.
const MAX_STREAMS: usize = 64;

/// Why a request could not be answered; decides the HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ExplorerError {
    /// The id, height or parameter is malformed (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but unknown (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// Known, but its block body was pruned by this node (HTTP 410).
    #[error("{0}")]
    Pruned(String),
    /// Too many clients of one kind (HTTP 503).
    #[error("{0}")]
    Busy(String),
    /// The node failed to read its own data (HTTP 500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ExplorerError {
    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            ExplorerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ExplorerError::NotFound(_) => StatusCode::NOT_FOUND,
            ExplorerError::Pruned(_) => StatusCode::GONE,
            ExplorerError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ExplorerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<crate::store::StoreError> for ExplorerError {
    fn from(e: crate::store::StoreError) -> Self {
        ExplorerError::Internal(e.to_string())
    }
}

/// What the explorer's handlers share.
pub struct Explorer {
    node: Arc<Node>,
    p2p: Option<P2pHandle>,
    readers: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Explorer {
    /// An explorer over `node`; `p2p` feeds the peers page when networking is on.
    pub fn new(node: Arc<Node>, p2p: Option<P2pHandle>, shutdown: tokio::sync::watch::Receiver<bool>) -> Arc<Self> {
        Arc::new(Explorer {
            node,
            p2p,
            readers: Arc::new(Semaphore::new(MAX_READERS)),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            shutdown,
        })
    }

    /// Runs `f` against the node on a blocking thread (chain reads may wait
    /// for a block connection to release the lock).
    async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, ExplorerError>
    where
        T: Send + 'static,
        F: FnOnce(&Node) -> Result<T, ExplorerError> + Send + 'static,
    {
        let permit = self.readers.clone().acquire_owned().await.map_err(|e| ExplorerError::Internal(e.to_string()))?;
        let node = self.node.clone();
        // The permit goes with the read, not with this future: a visitor
        // who closes the connection drops the future, but the blocking
        // read runs on, and must keep its slot until it ends.
        let read = move || {
            let _permit = permit;
            f(&node)
        };
        tokio::task::spawn_blocking(read).await.map_err(|e| ExplorerError::Internal(e.to_string()))?
    }
}

/// Binds the explorer's port; fails at once if it is taken.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Every route: the JSON API, the pages, the event stream and the assets.
pub fn router(explorer: Arc<Explorer>) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .merge(network::routes())
        .route("/", get(home::home))
        .route("/api/events", get(live::events))
        .route("/static/style.css", get(style))
        .route("/static/live.js", get(script))
        .fallback(pages::not_found)
        .with_state(explorer)
}

/// Serves the explorer on `listener` until `shutdown` fires, with the
/// RPC server's protections: accept backoff on `EMFILE`, header and
/// write timeouts, and a cap on open connections.
pub async fn serve(listener: TcpListener, explorer: Arc<Explorer>) {
    let mut shutdown = explorer.shutdown.clone();
    let app = router(explorer);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut acceptor = crate::listen::Acceptor::new(listener, "explorer");
    while let Some(((stream, peer), permit)) = acceptor.next_within(&connections, &mut shutdown).await {
        let stream = crate::listen::WriteTimeout::new(stream, WRITE_TIMEOUT);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%peer, %e, "explorer connection ended with an error");
            }
            drop(permit);
        });
    }
}

/// An embedded asset with a content type; cached for an hour (assets
/// change only with the binary).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/style.css"))
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("assets/live.js"))
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
