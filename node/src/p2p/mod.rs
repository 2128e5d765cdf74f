//! Peer-to-peer networking on libp2p: discovery, gossip, headers-first sync, peer scoring.
//!
//! One task owns the swarm and all peer state (`service`); the rest of
//! the node talks to it through a cloneable [`P2pHandle`]. Chain calls run
//! on blocking threads and report back to that task, so a slow block never
//! stalls the network loop.
//!
//! # Wire protocol
//!
//! TCP + noise + yamux; identify, ping, Kademlia (server mode), mDNS
//! (optional), gossipsub and one request-response protocol. Every name
//! starts with `/lode/<network_id>/<first 16 hex digits of the genesis
//! hash>`, so nodes of different chains cannot open a stream to each other;
//! identify's protocol version is that prefix, and a peer whose version or
//! protocol list does not match (or whose status names another genesis) is
//! disconnected with a logged reason and not redialed for ten minutes.
//!
//! - `<prefix>/sync/1`: frames of a `u32` little-endian length and a body
//!   (tag byte, then fields in the consensus encoding). Requests: `Status`
//!   (genesis, tip hash, height, chainwork, UTXO commitment; the reply is
//!   the responder's status), `GetHeaders{locator ≤ 128}` → ≤ 2,000 headers
//!   of the responder's active chain after the first locator hash it knows,
//!   `GetBlocks{hashes ≤ 128}` → the blocks it has on its active chain
//!   (or announced lately), each once, in order, stopping before one that
//!   would take the reply past 4 MiB (at least one block; replies of up to
//!   8 MiB are read). Requests are capped at 16 KiB; each block in a reply
//!   at the spec's `max_block_size`; a peer has at most 8 requests served
//!   at once.
//! - `<prefix>/blocks/1`, `<prefix>/tx/1`: gossipsub topics carrying the
//!   consensus encoding; message id = SHA-256 of the payload; anonymous
//!   (no author signatures); every message is validated by the chain
//!   before it is forwarded (accept) or dropped (ignore); what the node
//!   finds invalid costs the sender score. A message above its topic's
//!   size limit (block size or the 100,000-byte relay policy, plus 1 KiB)
//!   is refused by gossipsub itself, whose peer scoring counts only such
//!   refusals; the node turns them into the same penalty as undecodable
//!   gossip.
//! - `<prefix>/cmpctblock/1` (gossip) and `<prefix>/cmpct/1`
//!   (request-response): compact block relay, Lode's BIP152 (see
//!   `compact`). Blocks go compact to peers subscribed to the compact
//!   topic and whole on `blocks/1` only while some peer takes full blocks
//!   but not compact ones; `--no-compact-blocks` turns compact relay off.
//! - `<prefix>/kad/1`: Kademlia.
//!
//! # Sync
//!
//! Peers exchange status on connect and every `status_interval`. Headers
//! come from one peer at a time (2,000 per round), chosen by the work its
//! headers proved, its claimed work only breaking ties; a peer whose
//! header request times out (5 s), whose headers do not connect, or stop
//! short of the work it claims is skipped for a while (5 s doubling). The
//! chain checks their proof of work before any body is asked for. Bodies
//! of the best header chain are fetched from every peer that is ahead (or
//! served the headers), up to `download_window` scheduled, 16 requests in
//! flight and four of `blocks_per_request` per peer; a request holding up
//! the lowest missing block for the stall timeout (2 s, doubling to 16 s)
//! is reassigned and its peer held to one request at a time; failed or
//! timed-out requests go back to the queue for any peer; blocks are
//! handed to the chain in chain order. A gossiped block whose parent is
//! unknown makes the node ask its sender for headers. "Initial sync" is
//! the node's own judgement, never a peer's claim: its best stored header
//! is more than 12 blocks ahead of its tip and the tip is over 24 hours
//! old. While in it the node ignores gossiped transactions and does not
//! announce blocks its sync downloaded; what it mines or is handed over
//! RPC, blocks and transactions, is always announced.
//!
//! # Misbehaviour
//!
//! Scores start at 0; a peer at -100 is disconnected and banned for
//! `ban_duration`, its peer id and the IP address it connected from (a
//! fresh key from the same address is refused before the handshake;
//! `127.0.0.1` and `::1` are exempt while `exempt_loopback` is set). Bans
//! persist in `peers.json` (at most 10,000, written in the background)
//! and are enforced on both inbound and outbound connections. Penalties:
//! invalid block or headers, undecodable or oversized message: 100;
//! invalid transaction: 50; unsolicited or non-connecting reply: 20;
//! each request above
//! `request_rate`, a duplicate hash in `GetBlocks` or a request beyond the
//! 8 a peer may have served at once: 5. A timed-out request costs nothing
//! (the work goes to another peer). Scores recover one point a
//! minute.
//!
//! # Eclipse resistance
//!
//! One address holds at most `max_inbound_per_ip` inbound connections.
//! Addresses enter the peer store's "tried" table only once this node has
//! connected to them; what peers announce stays in "new", bounded per
//! source group. Outbound peers are kept in distinct address groups (/16
//! IPv4, /32 IPv6; loopback exempt). When the inbound slots are full a
//! newcomer evicts the least useful inbound peer if one is unprotected
//! (`eviction.rs`), and is refused otherwise.

mod addresses;
mod behaviour;
mod codec;
mod compact;
mod connections;
mod eviction;
#[cfg(feature = "test-support")]
pub mod fuzzing;
mod identity;
#[cfg(any(test, feature = "test-support"))]
pub mod mock;
mod peers;
#[cfg(any(test, feature = "test-support"))]
pub mod queues;
#[cfg(test)]
mod raw_peer;
mod requests;
mod service;
mod services;
mod sync;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_peers;
/// Wire messages for the fuzz targets.
#[cfg(feature = "test-support")]
pub mod wire;
mod workers;
mod wrong_chain;

use crate::chain_api::NetworkChain;
use libp2p::{Multiaddr, PeerId};
use serde::Serialize;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub use compact::RelayStats;
pub use identity::KEY_FILE;

/// File name of the peer store (known addresses and bans) in the data directory.
pub const PEER_STORE_FILE: &str = "peers.json";

/// Network settings.
#[derive(Clone, Debug)]
pub struct P2pConfig {
    /// Addresses to listen on; empty means `/ip4/0.0.0.0/tcp/<spec default port>`.
    pub listen: Vec<Multiaddr>,
    /// Peers dialed at start (and again when no peer is left); the chain
    /// spec's bootnodes are added to these.
    pub bootnodes: Vec<Multiaddr>,
    /// Discover peers on the local network.
    pub mdns: bool,
    /// Discover peers (Kademlia, and mDNS when `mdns`); off, the node
    /// connects only to its bootnodes, `addpeer` and peers it has been
    /// connected to (`--no-discovery`: a test network keeps its graph).
    pub discovery: bool,
    /// Where the identity key and the peer store live.
    pub data_dir: PathBuf,
    /// Most connected peers.
    pub max_peers: usize,
    /// Most inbound peers (the rest of `max_peers` is kept for our dials).
    pub max_inbound: usize,
    /// Outbound peers the node keeps dialing until it has.
    pub target_outbound: usize,
    /// Most connections to one peer.
    pub max_connections_per_peer: u32,
    /// Most inbound connections (pending or established) from one IP address.
    pub max_inbound_per_ip: usize,
    /// `127.0.0.1` and `::1` are exempt from address bans and the
    /// per-address limit (a local testnet runs every node there).
    pub exempt_loopback: bool,
    /// How long a misbehaving peer stays banned.
    pub ban_duration: Duration,
    /// How often each peer's status (tip, work, UTXO commitment) is asked for.
    pub status_interval: Duration,
    /// How long a sync request may take before it is reassigned.
    pub request_timeout: Duration,
    /// How often missing outbound peers are dialed.
    pub dial_interval: Duration,
    /// Connections with no protocol activity are closed after this.
    pub idle_connection_timeout: Duration,
    /// Most block bodies scheduled for download at once.
    pub download_window: usize,
    /// Most blocks asked for in one request.
    pub blocks_per_request: usize,
    /// Sync requests a second a peer may make (bursts of twice that)
    /// before each extra one costs it score. An honest peer keeps at most
    /// a handful in flight, so only a flood comes near the default.
    pub request_rate: u32,
    /// Relay blocks compact (BIP152 high-bandwidth mode) to peers that
    /// speak it; off (`--no-compact-blocks`), blocks travel whole only.
    pub compact_blocks: bool,
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            listen: Vec::new(),
            bootnodes: Vec::new(),
            mdns: true,
            discovery: true,
            data_dir: PathBuf::from("."),
            max_peers: 50,
            max_inbound: 40,
            target_outbound: 8,
            max_connections_per_peer: 2,
            max_inbound_per_ip: 4,
            exempt_loopback: true,
            ban_duration: Duration::from_secs(24 * 60 * 60),
            status_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            dial_interval: Duration::from_secs(2),
            idle_connection_timeout: Duration::from_secs(120),
            download_window: 512,
            blocks_per_request: 16,
            request_rate: 500,
            compact_blocks: true,
        }
    }
}

/// A connected peer as `getpeerinfo` shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// The remote address of the connection.
    pub address: String,
    /// `"inbound"` or `"outbound"`.
    pub direction: String,
    /// Height of its tip, from its last status (0 before the first).
    pub height: u32,
    /// Hash of its tip, from its last status (empty before the first).
    pub best_hash: String,
    /// Misbehaviour score: 0 is clean, banned at -100.
    pub score: i32,
    /// It reported our tip with a different UTXO commitment.
    pub commitment_mismatch: bool,
    /// Address group of `address` (/16 IPv4, /32 IPv6, or `local <ip>`).
    pub address_group: String,
    /// Seconds since it connected.
    pub connected_secs: u64,
    /// Its lowest ping round trip in milliseconds, once measured.
    pub min_ping_ms: Option<u64>,
    /// It advertised keeping every block body (`None` until it says, and
    /// for peers that do not speak the services protocol).
    pub archive: Option<bool>,
    /// Lowest height whose body it advertised keeping.
    pub lowest_height: Option<u32>,
    /// Block bodies it delivered to our sync.
    pub blocks_received: u64,
    /// Block bodies we asked it for that its replies left out.
    pub blocks_missing: u64,
}

/// A banned peer as `listbanned` shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BannedPeer {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// When the ban ends (unix seconds).
    pub until: u64,
    /// IP addresses banned with it (those it connected from).
    pub addresses: Vec<String>,
}

/// Network failures.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// The identity key file could not be read or written.
    #[error("p2p identity key {path}: {why}")]
    Identity {
        /// The key file.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// A behaviour or protocol could not be configured.
    #[error("p2p configuration: {0}")]
    Config(String),
    /// The transport could not be built.
    #[error("p2p transport: {0}")]
    Transport(String),
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {why}")]
    Listen {
        /// The address.
        addr: String,
        /// What went wrong.
        why: String,
    },
    /// A string that is not a multiaddr.
    #[error("invalid multiaddr {0:?}")]
    InvalidAddress(String),
    /// A string that is not a peer id.
    #[error("invalid peer id {0:?}")]
    InvalidPeerId(String),
    /// The peer is not connected.
    #[error("peer {0} is not connected")]
    NotConnected(String),
    /// The peer is not banned.
    #[error("peer {0} is not banned")]
    NotBanned(String),
    /// The peer is banned.
    #[error("peer {0} is banned")]
    Banned(String),
    /// Dialing failed.
    #[error("cannot connect to {addr}: {why}")]
    Dial {
        /// The address dialed.
        addr: String,
        /// What went wrong.
        why: String,
    },
    /// The network task has stopped.
    #[error("the p2p service is not running")]
    Stopped,
}

/// State the handle reads without a round trip to the network task.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) initial_sync: AtomicBool,
    pub(crate) inbound: AtomicUsize,
    pub(crate) outbound: AtomicUsize,
    pub(crate) mismatches: AtomicU64,
    pub(crate) relay: Arc<compact::RelayCounters>,
    /// Connected peers that advertised keeping every body.
    pub(crate) archive_peers: AtomicUsize,
    /// Sync needs bodies below every connected peer's horizon.
    pub(crate) history_unavailable: AtomicBool,
}

/// Controls a running network service; cheap to clone.
#[derive(Clone)]
pub struct P2pHandle {
    peer_id: PeerId,
    commands: mpsc::Sender<service::Command>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for P2pHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pHandle").field("peer_id", &self.peer_id).finish()
    }
}

fn parse_peer(s: &str) -> Result<PeerId, P2pError> {
    PeerId::from_str(s.trim()).map_err(|_| P2pError::InvalidPeerId(s.to_string()))
}

impl P2pHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> service::Command) -> Result<T, P2pError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| P2pError::Stopped)?;
        rx.await.map_err(|_| P2pError::Stopped)
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> String {
        self.peer_id.to_string()
    }

    /// Full listen multiaddrs including `/p2p/<id>`, usable as `--bootnode`.
    pub async fn listen_addresses(&self) -> Vec<String> {
        self.ask(service::Command::ListenAddrs).await.unwrap_or_default()
    }

    /// Connected peers.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        self.ask(service::Command::Peers).await.unwrap_or_default()
    }

    /// Dials `addr` and waits until connected (or failed); it is then kept
    /// in the peer store.
    pub async fn add_peer(&self, addr: &str) -> Result<(), P2pError> {
        let ma = Multiaddr::from_str(addr.trim()).map_err(|_| P2pError::InvalidAddress(addr.to_string()))?;
        self.ask(|tx| service::Command::AddPeer(ma, tx)).await?
    }

    /// Closes every connection to the peer (it may reconnect).
    pub async fn disconnect(&self, peer_id: &str) -> Result<(), P2pError> {
        let p = parse_peer(peer_id)?;
        self.ask(|tx| service::Command::Disconnect(p, tx)).await?
    }

    /// Disconnects the peer and refuses it, and the IP address it
    /// connected from, both ways for `secs` seconds (0: the configured ban
    /// duration).
    pub async fn ban(&self, peer_id: &str, secs: u64) -> Result<(), P2pError> {
        let p = parse_peer(peer_id)?;
        self.ask(|tx| service::Command::Ban(p, secs, tx)).await?
    }

    /// Lifts a ban, with the address bans that came with it.
    pub async fn unban(&self, peer_id: &str) -> Result<(), P2pError> {
        let p = parse_peer(peer_id)?;
        self.ask(|tx| service::Command::Unban(p, tx)).await?
    }

    /// Current bans.
    pub async fn banned(&self) -> Vec<BannedPeer> {
        self.ask(service::Command::Banned).await.unwrap_or_default()
    }

    /// True while the node is far behind the best peer it knows.
    pub fn initial_sync(&self) -> bool {
        self.shared.initial_sync.load(Ordering::Relaxed)
    }

    /// Connected peers as (inbound, outbound).
    pub fn connection_counts(&self) -> (usize, usize) {
        (self.shared.inbound.load(Ordering::Relaxed), self.shared.outbound.load(Ordering::Relaxed))
    }

    /// Connected peers that advertised keeping every block body.
    pub fn archive_peers(&self) -> usize {
        self.shared.archive_peers.load(Ordering::Relaxed)
    }

    /// True while sync needs block bodies that no connected peer keeps
    /// (every one has pruned them).
    pub fn history_unavailable(&self) -> bool {
        self.shared.history_unavailable.load(Ordering::Relaxed)
    }

    /// Times a peer at our tip reported a different UTXO commitment.
    pub fn commitment_mismatches(&self) -> u64 {
        self.shared.mismatches.load(Ordering::Relaxed)
    }

    /// Counters of block relay (compact and full), for metrics and benchmarks.
    pub fn relay_stats(&self) -> RelayStats {
        self.shared.relay.snapshot()
    }

    /// Saves the peer store and closes the swarm; returns when done.
    pub async fn shutdown(&self) {
        let _ = self.ask(service::Command::Shutdown).await;
    }

    #[cfg(test)]
    async fn publish_raw(&self, blocks: bool, data: Vec<u8>) {
        let _ = self.commands.send(service::Command::PublishRaw { blocks, data }).await;
    }

    /// How many gossip topics this node has seen `peer` subscribe to.
    #[cfg(test)]
    async fn gossip_topics_of(&self, peer: &str) -> usize {
        let Ok(p) = parse_peer(peer) else { return 0 };
        self.ask(|tx| service::Command::TopicsOf(p, tx)).await.unwrap_or(0)
    }

    /// Publishes `data` as this node's compact form of `block`, kept for
    /// `getblocktxn` as an announced block is.
    #[cfg(test)]
    async fn publish_compact_raw(&self, data: Vec<u8>, block: lode_core::Block) {
        let block = Arc::new(block);
        let _ = self.commands.send(service::Command::PublishCompactRaw { data, block }).await;
    }
}

/// Starts the network: loads (or creates) the identity, listens, dials
/// bootnodes and the peer store, and spawns the service task. Returns once
/// every listener is up.
pub async fn start(config: P2pConfig, chain: Arc<dyn NetworkChain>) -> Result<P2pHandle, P2pError> {
    let key = identity::load_or_create(&config.data_dir)?;
    let peer_id = key.public().to_peer_id();
    let shared = Arc::new(Shared::default());
    let (commands, rx) = mpsc::channel(64);
    let ready = service::Service::spawn(config, chain, key, shared.clone(), rx).await?;
    tracing::info!(%peer_id, listen = ?ready, "p2p network started");
    Ok(P2pHandle { peer_id, commands, shared })
}
