//! `lode-node`: the full node binary.

use clap::Parser;
use lode_core::{Address, ChainSpec};
use lode_node::chain::ChainConfig;
use lode_node::mempool::MempoolPolicy;
use lode_node::node::Node;
use lode_node::p2p::{self, P2pConfig};
use lode_node::rpc::{self, Cookie, Methods, MiningStatus};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A Lode full node.
#[derive(Parser, Debug)]
#[command(name = "lode-node", version, about = "Lode full node: chain, mempool, miner, p2p and JSON-RPC")]
struct Args {
    /// Network: regtest, devnet, testnet, or a path to a chain-spec JSON file.
    #[arg(long, default_value = "devnet")]
    chain: String,
    /// Data directory (default: <user data dir>/lode/<chain>).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// P2P TCP port on all interfaces (default: the chain spec's).
    #[arg(long)]
    p2p_port: Option<u16>,
    /// Listen multiaddr instead of --p2p-port (repeatable).
    #[arg(long)]
    listen: Vec<String>,
    /// Peer to connect to at start (repeatable multiaddr with /p2p/<id>).
    #[arg(long)]
    bootnode: Vec<String>,
    /// Disable mDNS discovery.
    #[arg(long)]
    no_mdns: bool,
    /// Disable peer discovery (Kademlia and mDNS): connect only to bootnodes, `addpeer` peers and known peers.
    #[arg(long)]
    no_discovery: bool,
    /// Relay blocks whole only (no BIP152 compact blocks).
    #[arg(long)]
    no_compact_blocks: bool,
    /// Disable networking entirely (a standalone node).
    #[arg(long)]
    no_p2p: bool,
    /// JSON-RPC port (default: the chain spec's).
    #[arg(long)]
    rpc_port: Option<u16>,
    /// Address the JSON-RPC server binds to.
    #[arg(long, default_value = "127.0.0.1")]
    rpc_bind: IpAddr,
    /// Prometheus metrics port (off when absent).
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Block explorer and JSON API port (off when absent; read-only, no cookie).
    #[arg(long)]
    explorer_port: Option<u16>,
    /// Address the block explorer binds to.
    #[arg(long, default_value = "127.0.0.1")]
    explorer_bind: IpAddr,
    /// Mine blocks.
    #[arg(long)]
    mine: bool,
    /// Address that mined blocks pay (required with --mine).
    #[arg(long)]
    miner_address: Option<String>,
    /// Mining threads (default: all cores).
    #[arg(long)]
    mine_threads: Option<usize>,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// RocksDB memory in MiB: block cache and write buffers together (at least 16).
    #[arg(long, default_value_t = 64)]
    db_cache_mb: usize,
    /// Signature checks the signature cache remembers (about 100 bytes each).
    #[arg(long, default_value_t = lode_node::chain::DEFAULT_SIG_CACHE_ENTRIES)]
    sig_cache_entries: usize,
    /// Keep only the bodies and undo data of the last N blocks (N at least
    /// 288); older bodies are deleted as new blocks connect. A data directory
    /// once pruned needs this flag from then on (or a resync from empty).
    #[arg(long, value_name = "N")]
    prune_blocks: Option<u32>,
    /// Seconds a misbehaving peer stays banned.
    #[arg(long, default_value_t = 3600)]
    ban_secs: u64,
    /// Target outbound peer count.
    #[arg(long, default_value_t = 8)]
    outbound_peers: usize,
    /// Maximum connected peers.
    #[arg(long, default_value_t = 50)]
    max_peers: usize,
}

/// How often the mempool drops transactions past their expiry.
const MEMPOOL_EXPIRY_INTERVAL: Duration = Duration::from_secs(60);

fn default_data_dir(chain: &str) -> Result<PathBuf, String> {
    let base = match std::env::var_os("XDG_DATA_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set; pass --data-dir")?).join(".local/share"),
    };
    Ok(base.join("lode").join(chain))
}

/// Largest chain-spec file read: a spec is a few hundred bytes of JSON.
const MAX_SPEC_FILE_BYTES: u64 = 1024 * 1024;

fn load_spec(chain: &str) -> Result<ChainSpec, String> {
    match chain {
        "regtest" | "devnet" | "testnet" => ChainSpec::builtin(chain).map_err(|e| e.to_string()),
        path => {
            let bytes = lode_node::files::read_capped_any(Path::new(path), MAX_SPEC_FILE_BYTES)
                .map_err(|e| format!("cannot read chain spec {path}: {e}"))?;
            let text = String::from_utf8(bytes).map_err(|_| format!("chain spec {path} is not UTF-8"))?;
            ChainSpec::from_json(&text).map_err(|e| format!("chain spec {path}: {e}"))
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p=warn,libp2p_gossipsub=error"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() {
    let args = Args::parse();
    init_logging(&args.log_format);
    lode_node::fault::abort_on_panic();
    lode_node::memory::limit_malloc_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => fail(format!("cannot start the async runtime: {e}")),
    };
    if let Err(e) = runtime.block_on(run(args)) {
        fail(e);
    }
}

fn fail(msg: String) -> ! {
    eprintln!("lode-node: error: {msg}");
    std::process::exit(1);
}

async fn run(args: Args) -> Result<(), String> {
    let spec = load_spec(&args.chain)?;
    if let Some(keep) = args.prune_blocks.filter(|k| *k < lode_node::chain::MIN_PRUNE_BLOCKS) {
        return Err(format!(
            "--prune-blocks {keep} is too small: at least {} blocks must be kept",
            lode_node::chain::MIN_PRUNE_BLOCKS
        ));
    }
    let miner_address = match &args.miner_address {
        Some(s) => Some(Address::decode(s, &spec.address_prefix).map_err(|e| format!("--miner-address: {e}"))?),
        None => None,
    };
    if args.mine && miner_address.is_none() {
        return Err("--mine needs --miner-address".into());
    }
    // Ports first: a port in use fails before anything is written.
    let rpc_addr = SocketAddr::new(args.rpc_bind, args.rpc_port.unwrap_or(spec.default_rpc_port));
    let rpc_listener = rpc::bind(rpc_addr).await.map_err(|e| format!("cannot bind RPC to {rpc_addr}: {e}"))?;
    let metrics_listener = match args.metrics_port {
        Some(port) => {
            let addr = SocketAddr::new(args.rpc_bind, port);
            Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot bind metrics to {addr}: {e}"))?)
        }
        None => None,
    };
    let explorer_listener = match args.explorer_port {
        Some(port) => {
            let addr = SocketAddr::new(args.explorer_bind, port);
            let bound = lode_node::explorer::bind(addr).await;
            Some(bound.map_err(|e| format!("cannot bind the explorer to {addr}: {e}"))?)
        }
        None => None,
    };
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir(&spec.name)?,
    };
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let config = ChainConfig {
        cache_bytes: args.db_cache_mb << 20,
        sig_cache_entries: args.sig_cache_entries,
        prune_blocks: args.prune_blocks,
        ..ChainConfig::default()
    };
    let node = Node::open(&data_dir.join("chain"), spec.clone(), config, MempoolPolicy::default())
        .map_err(|e| format!("cannot open the chain in {}: {e}", data_dir.display()))?;
    {
        let chain = node.chain();
        tracing::info!(chain = %spec.name, height = chain.state().height.0, tip = %chain.state().tip, prune_height = ?chain.prune_height().map(|h| h.0), data_dir = %data_dir.display(), "chain loaded");
    }
    node.set_miner_address(miner_address);
    node.load_fee_estimates(data_dir.join(lode_node::fees::FILE_NAME));

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let p2p = if args.no_p2p {
        None
    } else {
        let listen = if args.listen.is_empty() {
            vec![format!("/ip4/0.0.0.0/tcp/{}", args.p2p_port.unwrap_or(spec.default_p2p_port))]
        } else {
            args.listen.clone()
        };
        let parse = |s: &String| s.parse().map_err(|e| format!("bad multiaddr {s}: {e}"));
        let mut bootnodes = Vec::new();
        for b in spec.bootnodes.iter().chain(args.bootnode.iter()) {
            bootnodes.push(parse(b)?);
        }
        let config = P2pConfig {
            listen: listen.iter().map(parse).collect::<Result<_, _>>()?,
            bootnodes,
            mdns: !args.no_mdns,
            discovery: !args.no_discovery,
            compact_blocks: !args.no_compact_blocks,
            data_dir: data_dir.clone(),
            max_peers: args.max_peers,
            target_outbound: args.outbound_peers,
            ban_duration: Duration::from_secs(args.ban_secs),
            ..P2pConfig::default()
        };
        let handle = p2p::start(config, node.clone()).await.map_err(|e| format!("p2p: {e}"))?;
        tracing::info!(peer_id = %handle.local_peer_id(), addrs = ?handle.listen_addresses().await, "p2p listening");
        Some(handle)
    };

    let mining = Arc::new(MiningStatus::default());
    let threads =
        args.mine_threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
    let miner = if args.mine {
        mining.mining.store(true, Ordering::Relaxed);
        mining.threads.store(threads, Ordering::Relaxed);
        tracing::info!(threads, "mining");
        Some(lode_node::miner::Miner::start(node.clone(), threads))
    } else {
        None
    };

    let cookie = Arc::new(Cookie::create(&data_dir).map_err(|e| format!("cannot write the RPC cookie: {e}"))?);
    let methods = Arc::new(Methods::new(node.clone(), p2p.clone(), mining.clone(), shutdown_tx.clone()));
    tokio::spawn(rpc::serve(rpc_listener, cookie.clone(), methods, shutdown_rx.clone()));
    tracing::info!(%rpc_addr, "JSON-RPC listening");
    if let Some(l) = explorer_listener {
        tracing::info!(addr = ?l.local_addr().ok(), "block explorer listening");
        let explorer = lode_node::explorer::Explorer::new(node.clone(), p2p.clone(), shutdown_rx.clone());
        tokio::spawn(lode_node::explorer::serve(l, explorer));
    }
    if let Some(l) = metrics_listener {
        tracing::info!(addr = ?l.local_addr().ok(), "metrics listening");
        tokio::spawn(lode_node::metrics::serve(l, node.clone(), shutdown_rx.clone()));
    }

    // Gauges that live outside the node.
    {
        let node = node.clone();
        let p2p = p2p.clone();
        let miner_rate = miner.as_ref().map(|m| m.hashrate_handle());
        let mut rx = shutdown_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = rx.changed() => break,
                }
                if let Some(rate) = &miner_rate {
                    node.metrics.hashrate.set(rate.get());
                }
                if let Some(p) = &p2p {
                    let (i, o) = p.connection_counts();
                    node.metrics.peers.set((i + o) as f64);
                    node.metrics.commitment_mismatches.set(p.commitment_mismatches() as f64);
                    node.metrics.archive_peers.set(p.archive_peers() as f64);
                    node.metrics.history_unavailable.set(if p.history_unavailable() { 1.0 } else { 0.0 });
                    *node.metrics.relay.lock().unwrap_or_else(|e| e.into_inner()) = p.relay_stats();
                }
            }
        });
    }

    // Mempool expiry: an unmined transaction leaves after the policy's age
    // even when no block arrives to trigger a cleanup.
    {
        let node = node.clone();
        let mut rx = shutdown_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(MEMPOOL_EXPIRY_INTERVAL);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = rx.changed() => break,
                }
                let node = node.clone();
                let _ = tokio::task::spawn_blocking(move || node.expire_mempool()).await;
            }
        });
    }

    let mut rx = shutdown_rx.clone();
    tokio::select! {
        _ = wait_for_signal() => tracing::info!("signal received, shutting down"),
        _ = rx.changed() => tracing::info!("stop requested over RPC, shutting down"),
    }
    let _ = shutdown_tx.send(true);
    if let Some(m) = miner {
        tokio::task::spawn_blocking(move || m.stop()).await.map_err(|e| e.to_string())?;
    }
    if let Some(p) = &p2p {
        p.shutdown().await;
    }
    let flushed = tokio::task::spawn_blocking({
        let node = node.clone();
        move || node.chain().flush().map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?;
    if let Err(e) = flushed {
        tracing::error!(%e, "flushing the database failed");
    }
    if let Err(e) = node.save_fee_estimates() {
        tracing::warn!(%e, "saving fee estimates failed");
    }
    cookie.remove();
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
