//! Prometheus metrics: a handful of gauges and one histogram, rendered in
//! the text exposition format on `GET /metrics`. Hand-rolled because the
//! set is small and fixed.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A value that goes up and down.
#[derive(Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    /// Reads the value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Bucket bounds of the block validation histogram, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A cumulative histogram.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; 10],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation in seconds.
    pub fn observe(&self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }
}

/// Everything the node exports.
#[derive(Default)]
pub struct Metrics {
    /// Active chain height.
    pub height: Gauge,
    /// Known headers.
    pub headers: Gauge,
    /// Connected peers.
    pub peers: Gauge,
    /// Transactions in the mempool.
    pub mempool_size: Gauge,
    /// Bytes in the mempool.
    pub mempool_bytes: Gauge,
    /// Local hash rate (hashes/s).
    pub hashrate: Gauge,
    /// Peers at our tip with a different UTXO commitment.
    pub commitment_mismatches: Gauge,
    /// Connected peers that keep every block body.
    pub archive_peers: Gauge,
    /// 1 while sync needs bodies no connected peer keeps.
    pub history_unavailable: Gauge,
    /// Bytes in the database's block cache, memtables charged to it
    /// (bounded by `--db-cache-mb`).
    pub db_cache_bytes: Gauge,
    /// Time to process a block.
    pub block_validation: Histogram,
    /// Block relay counters, copied from the network every second.
    pub relay: std::sync::Mutex<crate::p2p::RelayStats>,
}

impl Metrics {
    /// Prometheus text format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let gauges: [(&str, &str, &Gauge); 10] = [
            ("lode_chain_height", "Height of the active chain", &self.height),
            ("lode_headers", "Known block headers", &self.headers),
            ("lode_peers", "Connected peers", &self.peers),
            ("lode_mempool_transactions", "Transactions in the mempool", &self.mempool_size),
            ("lode_mempool_bytes", "Bytes of transactions in the mempool", &self.mempool_bytes),
            ("lode_hashrate", "Local mining hash rate, hashes per second", &self.hashrate),
            (
                "lode_db_cache_bytes",
                "Bytes in the database block cache, memtables included (bounded by --db-cache-mb)",
                &self.db_cache_bytes,
            ),
            (
                "lode_utxo_commitment_mismatches",
                "Peers at our tip whose UTXO commitment differs",
                &self.commitment_mismatches,
            ),
            (
                "lode_p2p_archive_peers",
                "Connected peers that advertise keeping every block body (a warning is logged below 2)",
                &self.archive_peers,
            ),
            (
                "lode_sync_history_unavailable",
                "1 while sync needs block bodies that every connected peer has pruned",
                &self.history_unavailable,
            ),
        ];
        for (name, help, g) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}", g.get());
        }
        let r = *self.relay.lock().unwrap_or_else(|p| p.into_inner());
        let counters: [(&str, &str, u64); 10] = [
            ("lode_compact_blocks_received_total", "Compact blocks received by gossip", r.compact_blocks),
            (
                "lode_compact_bytes_received_total",
                "Bytes of compact blocks and blocktxn replies received",
                r.compact_bytes,
            ),
            (
                "lode_full_block_bytes_received_total",
                "Bytes of full blocks received (gossip and sync replies)",
                r.full_block_bytes,
            ),
            ("lode_compact_reconstructed_total", "Blocks rebuilt from compact blocks", r.reconstructed),
            (
                "lode_compact_txs_from_pool_total",
                "Transactions of rebuilt blocks found in the mempool or extra pool",
                r.txs_from_pool,
            ),
            ("lode_compact_txs_fetched_total", "Transactions fetched with getblocktxn", r.txs_fetched),
            (
                "lode_compact_fallbacks_total",
                "Whole blocks asked for after a short-id collision or merkle mismatch",
                r.fallbacks,
            ),
            ("lode_compact_fast_relayed_total", "Compact blocks forwarded before being connected", r.fast_relayed),
            (
                "lode_blocks_announced_total",
                "Blocks announced to peers (made or relayed here, or a catch-up's newest)",
                r.blocks_announced,
            ),
            (
                "lode_compact_vouch_requests_received_total",
                "Vouch requests received (each names up to 16 blocks)",
                r.vouch_requests,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let h = &self.block_validation;
        let name = "lode_block_validation_seconds";
        let _ = writeln!(s, "# HELP {name} Time to validate and store a block\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(s, "{name}_bucket{{le=\"{b}\"}} {}", h.counts[i].load(Ordering::Relaxed));
        }
        let count = h.count.load(Ordering::Relaxed);
        let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(s, "{name}_sum {}", h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(s, "{name}_count {count}");
        s
    }
}

/// Serves `GET /metrics` until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<crate::node::Node>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut acceptor = crate::listen::Acceptor::new(listener, "metrics");
    while let Some(((stream, _), slot)) = acceptor.next_within(&slots, &mut shutdown).await {
        let stream = crate::listen::WriteTimeout::new(stream, Duration::from_secs(30));
        let node = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let node = node.clone();
                async move {
                    // Gauges are kept current by whoever changes the state:
                    // a scrape reads atomics and never waits on the chain.
                    let mut resp = if req.uri().path() == "/metrics" {
                        Response::new(Full::new(Bytes::from(node.metrics.render())))
                    } else {
                        let mut r = Response::new(Full::new(Bytes::from_static(b"see /metrics\n")));
                        *r.status_mut() = StatusCode::NOT_FOUND;
                        r
                    };
                    resp.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
            drop(slot);
        });
    }
}

/// Scrapes served at once (a scraper or two; more wait in the backlog).
const MAX_CONNECTIONS: usize = 8;

#[cfg(test)]
mod tests {
    use crate::chain::ChainConfig;
    use crate::mempool::MempoolPolicy;
    use crate::node::Node;
    use lode_core::ChainSpec;
    use std::io::{Read, Write};
    use std::time::Duration;

    #[test]
    fn a_scrape_answers_while_the_chain_and_mempool_are_locked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = Node::open(dir.path(), ChainSpec::regtest(), ChainConfig::default(), MempoolPolicy::default())
            .expect("open");
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (_stop, rx) = tokio::sync::watch::channel(false);
        rt.spawn(super::serve(listener, node.clone(), rx));
        // As during a long block validation.
        let _chain = node.chain();
        let _pool = node.mempool();
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: lode\r\nConnection: close\r\n\r\n").expect("send");
        let mut body = String::new();
        s.read_to_string(&mut body).expect("a reply while the locks are held");
        assert!(body.contains("lode_chain_height 0"), "{body}");
    }
}
