//! The HTTP side of JSON-RPC: cookie authentication, body limits, timeouts,
//! JSON-RPC 2.0 framing. Method semantics live in `methods`.

use super::methods::Methods;
use super::RpcError;
use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rand::RngCore;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a response write may make no progress before the connection
/// is dropped (a client that never reads).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest request body accepted.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// A client must send its headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// And its body within this time.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the kernel's backlog. Every
/// connection was served before, cookie or not: thousands of idle ones
/// took the file descriptors RocksDB, the peers and the explorer need.
pub const MAX_CONNECTIONS: usize = 64;

/// The cookie file: a fresh secret per run, readable only by the owner.
pub struct Cookie {
    path: PathBuf,
    expected_header: String,
}

impl Cookie {
    /// Writes `<dir>/.cookie` with a new random secret (mode 0600).
    pub fn create(dir: &Path) -> std::io::Result<Cookie> {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let secret = hex::encode(secret);
        let path = dir.join(".cookie");
        crate::files::write_atomic(&path, secret.as_bytes(), crate::files::Access::Private)?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("__cookie__:{secret}"));
        Ok(Cookie { path, expected_header: format!("Basic {token}") })
    }

    /// Removes the cookie file (clean shutdown).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    fn authorises(&self, req: &Request<Incoming>) -> bool {
        let Some(value) = req.headers().get(hyper::header::AUTHORIZATION) else { return false };
        let got = value.as_bytes();
        let want = self.expected_header.as_bytes();
        // Constant-time comparison: the secret must not leak through timing.
        got.len() == want.len() && got.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Binds the RPC port; fails at once if it is taken.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves JSON-RPC on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    cookie: Arc<Cookie>,
    methods: Arc<Methods>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    serve_within(listener, cookie, methods, shutdown, MAX_CONNECTIONS).await
}

/// [`serve`] with at most `max_connections` connections open.
pub(crate) async fn serve_within(
    listener: TcpListener,
    cookie: Arc<Cookie>,
    methods: Arc<Methods>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    max_connections: usize,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let mut acceptor = crate::listen::Acceptor::new(listener, "rpc");
    while let Some(((stream, peer), slot)) = acceptor.next_within(&slots, &mut shutdown).await {
        let stream = crate::listen::WriteTimeout::new(stream, WRITE_TIMEOUT);
        let cookie = cookie.clone();
        let methods = methods.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let cookie = cookie.clone();
                let methods = methods.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req, &cookie, &methods).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%peer, %e, "rpc connection ended with an error");
            }
            drop(slot);
        });
    }
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}

async fn handle(req: Request<Incoming>, cookie: &Cookie, methods: &Arc<Methods>) -> Response<Full<Bytes>> {
    if !cookie.authorises(&req) {
        let mut r = respond(
            StatusCode::UNAUTHORIZED,
            json!({"error": "authentication required: use the cookie in <data-dir>/.cookie"}),
        );
        r.headers_mut()
            .insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Basic realm=\"lode\""));
        // Whoever lacks the cookie does not keep the connection (and its slot).
        r.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
        return r;
    }
    if req.method() != Method::POST {
        return respond(StatusCode::METHOD_NOT_ALLOWED, json!({"error": "use POST"}));
    }
    let body = Limited::new(req.into_body(), MAX_BODY);
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => {
            return respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": format!("request body above {MAX_BODY} bytes")}),
            )
        }
        Err(_) => return respond(StatusCode::REQUEST_TIMEOUT, json!({"error": "request body too slow"})),
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return respond(StatusCode::OK, error_response(Value::Null, RpcError::parse(e.to_string()))),
    };
    let reply = match value {
        Value::Array(calls) if !calls.is_empty() && calls.len() <= MAX_BATCH_CALLS => {
            call_batch(calls, methods, MAX_BATCH_ANSWER_BYTES).await
        }
        Value::Array(_) => error_response(
            Value::Null,
            RpcError::invalid_request(format!("batch must hold 1 to {MAX_BATCH_CALLS} calls")),
        ),
        single => call(single, methods).await,
    };
    respond(StatusCode::OK, reply)
}

fn error_response(id: Value, e: RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message}})
}

/// Calls in one JSON-RPC batch.
const MAX_BATCH_CALLS: usize = 1000;

/// Bytes of answers one batch may gather; calls started after that are
/// answered with an error (1,000 raw 2 MB blocks would be 4 GB of hex,
/// held twice while the reply is written).
const MAX_BATCH_ANSWER_BYTES: usize = 64 << 20;

/// Counts the bytes of a JSON answer without building its text.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json_size(v: &Value) -> usize {
    let mut n = ByteCount(0);
    let _ = serde_json::to_writer(&mut n, v);
    n.0
}

/// Calls of a batch in progress at once.
fn batch_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

/// Runs a batch's calls concurrently, a few per core at a time; answers
/// keep the calls' order. After each call the task yields: a call that
/// completes without waiting (a small `sendrawtransaction` is admitted on
/// the async worker) would otherwise let one batch of 1,000 hold a
/// runtime worker, and the network and every other RPC client with it,
/// from its first call to its last. Once the answers pass `budget` bytes
/// the calls not yet started are refused (those running finish: at most
/// a few answers over).
async fn call_batch(calls: Vec<Value>, methods: &Arc<Methods>, budget: usize) -> Value {
    use futures::stream::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let spent = AtomicUsize::new(0);
    let spent = &spent;
    let out: Vec<Value> = futures::stream::iter(calls)
        .map(|c| async move {
            if spent.load(Ordering::Relaxed) > budget {
                let id = c.get("id").cloned().unwrap_or(Value::Null);
                let why = format!("the batch's answers passed {budget} bytes: send the remaining calls again");
                return error_response(id, RpcError::invalid_request(why));
            }
            let answer = call(c, methods).await;
            spent.fetch_add(json_size(&answer), Ordering::Relaxed);
            tokio::task::yield_now().await;
            answer
        })
        .buffered(batch_parallelism())
        .collect()
        .await;
    Value::Array(out)
}

async fn call(request: Value, methods: &Arc<Methods>) -> Value {
    let Value::Object(obj) = request else {
        return error_response(Value::Null, RpcError::invalid_request("request must be a JSON object"));
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = obj.get("method").and_then(Value::as_str).map(str::to_owned) else {
        return error_response(id, RpcError::invalid_request("missing method"));
    };
    let params = match obj.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return error_response(id, RpcError::invalid_params("params must be an array")),
    };
    match methods.dispatch(&method, params).await {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => error_response(id, e),
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
