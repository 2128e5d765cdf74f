//! The network task: owns the swarm and every piece of peer state, reacts
//! to swarm events, handle commands, chain events and results of blocking
//! chain calls, and runs periodic maintenance (status exchange, dialing,
//! ban expiry, sync scheduling, peer store saves).
//!
//! This module holds the task's state ([`Service`]), its limits and the
//! messages it receives; `spawn` builds it, `event_loop` runs it (with the
//! periodic maintenance), `local` keeps our own chain view, sync state and
//! status, and `announce` publishes chain events to peers.

mod announce;
mod event_loop;
mod local;
mod spawn;

use super::behaviour::Names;
use super::codec::Response;
use super::peers::{Peer, PeerStore};
use super::sync::{Downloader, Progress};
use super::workers::{self, BlockJob, SeenIds};
use super::{BannedPeer, P2pConfig, P2pError, PeerInfo, Shared};
use crate::chain_api::{BlockOutcome, HeadersOutcome, NetworkChain, TipInfo, TxOutcome};
use libp2p::gossipsub::{self, MessageId};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, Swarm};
use lode_core::block::BlockHeader;
use lode_core::{Hash256, Transaction};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Behind the best header we hold (verified proof of work, not a peer's
/// claim) by more than this many blocks counts as initial sync...
const INITIAL_SYNC_LAG: u32 = 12;
/// ...unless our tip is younger than this (Bitcoin Core's maximum tip
/// age): a node with a recent tip is caught up whatever headers it holds.
const MAX_TIP_AGE_SECS: u64 = 24 * 60 * 60;
/// Most headers held for a chain that has not yet shown enough work to be
/// stored (88 bytes each: 4.4 MB); a longer light chain is given up on.
pub(super) const MAX_PRESYNC_HEADERS: usize = 50_000;
/// Gossip blocks waiting for validation beyond this are ignored.
pub(super) const MAX_GOSSIP_BACKLOG: usize = 256;
/// Bytes of gossip blocks waiting for validation beyond which more are
/// ignored (the count alone would allow 256 maximal blocks: 512 MB).
pub(super) const MAX_GOSSIP_BACKLOG_BYTES: usize = 32 * 1024 * 1024;
/// Gossip transactions waiting for the mempool beyond this are ignored.
pub(super) const MAX_TX_BACKLOG: usize = 10_000;
/// Bytes of gossip transactions waiting for the mempool beyond which
/// more are ignored.
pub(super) const MAX_TX_BACKLOG_BYTES: usize = 16 * 1024 * 1024;
/// One peer's share of that backlog, so a flooder cannot crowd out the
/// transactions of everyone else.
pub(super) const MAX_TX_BACKLOG_PEER_BYTES: usize = 2 * 1024 * 1024;
/// One peer's share of the backlog's count: small transactions fill the
/// count long before a peer's bytes (10,000 of 177 bytes are 1.7 MB).
pub(super) const MAX_TX_BACKLOG_PEER: usize = MAX_TX_BACKLOG / 8;
/// Bytes of replies to peers' requests being read or sent at once; a
/// request beyond it waits until replies are sent.
pub(super) const MAX_SERVING_BYTES: usize = 32 * 1024 * 1024;
/// One peer's share of [`MAX_SERVING_BYTES`]: two block replies at most
/// (each reserves 4 MiB until its blocks are read), so eight of one
/// peer's block requests, or a peer that never reads its replies, cannot
/// hold the whole budget; its further requests wait for its own replies.
pub(super) const MAX_SERVING_BYTES_PER_PEER: usize = MAX_SERVING_BYTES / 4;
/// Requests of one peer being served at once (statuses are answered at
/// once and not counted). An honest peer syncing from us keeps up to
/// [`MAX_REQUESTS_PER_PEER`] block requests and one header request open:
/// with 8, its ninth was refused and charged as a flood, and a long sync
/// from a fast server banned an honest peer.
pub(super) const MAX_SERVING_PER_PEER: usize = MAX_REQUESTS_PER_PEER + 1;
/// A header request unanswered for this long is abandoned and the next
/// peer asked (the request timeout is for bodies and much longer).
pub(super) const HEADERS_TIMEOUT: Duration = Duration::from_secs(5);
/// Block hashes remembered as announced by us (served to peers even if a
/// reorganisation takes them off our active chain).
pub(super) const ANNOUNCED_BLOCKS: usize = 1024;
/// Block hashes remembered as downloaded by sync (not announced while we
/// catch up).
const FETCHED_BLOCKS: usize = 4096;
/// Weight of one invalid message in gossipsub's score: one is enough to
/// show as a drop the service turns into our own penalty.
const GOSSIP_INVALID_WEIGHT: f64 = -100.0;
/// Per-second decay of gossipsub's invalid-delivery counter (slow, so the
/// once-a-second check sees every drop).
const GOSSIP_INVALID_DECAY: f64 = 0.9;
/// How long `add_peer` waits for the connection.
pub(super) const ADD_PEER_TIMEOUT: Duration = Duration::from_secs(15);
/// A peer found on another chain is not redialed for this long.
pub(super) const WRONG_CHAIN_BACKOFF: Duration = Duration::from_secs(600);
/// Least time between two Kademlia lookups.
pub(super) const KAD_MIN_INTERVAL: Duration = Duration::from_millis(500);
/// Lookups while short of outbound peers happen at least this often.
const KAD_INTERVAL: Duration = Duration::from_secs(30);
/// First wait before asking the DHT again while short of outbound peers;
/// it doubles after each lookup up to `KAD_INTERVAL` and starts over when
/// a new peer joins. Nodes started together each ask the bootnode before
/// it knows the others: without a quick second look they met only 30 s
/// later.
pub(super) const KAD_RETRY_FIRST: Duration = Duration::from_secs(1);
/// Total budget of downloaded blocks waiting for submission.
const MAX_READY_BYTES: usize = 64 * 1024 * 1024;
/// Outstanding block requests of a peer whose delivery rate is not yet
/// measured.
const REQUESTS_PER_PEER: usize = 4;
/// Most outstanding block requests of one peer, however fast it delivers.
pub(super) const MAX_REQUESTS_PER_PEER: usize = 8;
/// Outstanding block requests in all: with replies of at most
/// [`super::codec::BLOCK_REPLY_BUDGET`] this bounds the bytes in flight.
const MAX_BLOCK_REQUESTS: usize = 16;
/// First stall timeout of block download (Bitcoin Core's 2 s): the
/// request holding the lowest missing block is reassigned after it.
const STALL_TIMEOUT_MIN: Duration = Duration::from_secs(2);
/// The stall timeout doubles on each stall up to this.
const STALL_TIMEOUT_MAX: Duration = Duration::from_secs(16);

/// Requests from the handle.
pub(crate) enum Command {
    ListenAddrs(oneshot::Sender<Vec<String>>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    AddPeer(Multiaddr, oneshot::Sender<Result<(), P2pError>>),
    Disconnect(PeerId, oneshot::Sender<Result<(), P2pError>>),
    Ban(PeerId, u64, oneshot::Sender<Result<(), P2pError>>),
    Unban(PeerId, oneshot::Sender<Result<(), P2pError>>),
    Banned(oneshot::Sender<Vec<BannedPeer>>),
    Shutdown(oneshot::Sender<()>),
    /// The fuzz target reads the queues with this.
    #[cfg(any(test, feature = "test-support"))]
    Queues(oneshot::Sender<crate::p2p::queues::QueueStats>),
    /// Tests play a misbehaving peer with this.
    #[cfg(test)]
    PublishRaw {
        blocks: bool,
        data: Vec<u8>,
    },
    /// A raw payload on the compact block topic, announcing `block`.
    #[cfg(test)]
    PublishCompactRaw {
        data: Vec<u8>,
        block: Arc<lode_core::Block>,
    },
    /// How many gossip topics we have seen the peer subscribe to (tests
    /// wait on it before publishing: gossip skips a peer not yet seen).
    #[cfg(test)]
    TopicsOf(PeerId, oneshot::Sender<usize>),
}

/// An `add_peer` dial waiting for its connection.
pub(crate) struct PendingDial {
    /// The address as the operator gave it (for errors).
    pub(crate) addr: String,
    /// The peer the address names, when it names one.
    pub(crate) peer: Option<PeerId>,
    /// Every call waiting on this dial: concurrent calls for the same peer
    /// share one dial instead of each opening a connection (one of which
    /// the per-peer limit would refuse and report as a failure).
    pub(crate) replies: Vec<oneshot::Sender<Result<(), P2pError>>>,
    /// When the calls are answered "timed out".
    pub(crate) deadline: Instant,
}

impl PendingDial {
    /// Answers every waiting call: success, or the dial failing for `why`.
    pub(crate) fn answer(self, failure: Option<&str>) {
        for reply in self.replies {
            let result = match failure {
                None => Ok(()),
                Some(why) => Err(P2pError::Dial { addr: self.addr.clone(), why: why.to_string() }),
            };
            let _ = reply.send(result);
        }
    }
}

/// Where a block being validated came from.
#[derive(Debug)]
pub(crate) enum Origin {
    /// `bytes`: its share of the gossip backlog.
    Gossip {
        msg: MessageId,
        source: PeerId,
        bytes: usize,
    },
    Sync {
        peer: PeerId,
    },
    /// Rebuilt from a compact block sent by `source`.
    Compact {
        source: PeerId,
    },
}

/// Our chain as peers see it; `commitment` belongs to `tip`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalView {
    pub tip: TipInfo,
    pub best_header: TipInfo,
    pub commitment: Hash256,
    /// The bodies we keep, as we advertise them.
    pub served: crate::chain_api::ServedBodies,
}

/// Results of blocking chain calls, delivered back to the loop.
pub(crate) enum Internal {
    Local(Option<LocalView>),
    /// A reply read off the loop; `id` releases its serving budget.
    Respond {
        id: InboundRequestId,
        channel: ResponseChannel<Response>,
        response: Response,
    },
    Locator {
        peer: PeerId,
        locator: Vec<Hash256>,
        /// The block the peer showed us is still an orphan to us.
        for_orphan: bool,
    },
    /// `checked` carries the headers back when they were too light to store.
    /// `proven`: the work of the last header, once stored.
    HeadersDone {
        peer: PeerId,
        count: usize,
        outcome: HeadersOutcome,
        checked: Option<Vec<BlockHeader>>,
        proven: Option<lode_core::pow::Work>,
    },
    Missing(Vec<(Hash256, lode_core::Height)>),
    BlockDone {
        hash: Hash256,
        origin: Origin,
        outcome: BlockOutcome,
    },
    TxDone {
        job: workers::TxJob,
        outcome: TxOutcome,
    },
    /// A compact block's header checked in context and its rebuild begun.
    CompactPrepared {
        hash: Hash256,
        prepared: super::compact::Prepared,
    },
    /// Encoded mempool transactions to re-announce after missed chain events.
    Reannounce(Vec<Vec<u8>>),
}

/// One sender's gossip transactions waiting for the mempool.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PeerBacklog {
    /// How many.
    pub count: usize,
    /// Their bytes.
    pub bytes: usize,
}

/// The network task's state.
pub(crate) struct Service {
    pub(super) config: P2pConfig,
    pub(super) chain: Arc<dyn NetworkChain>,
    pub(super) swarm: Swarm<super::behaviour::Behaviour>,
    pub(super) names: Names,
    pub(super) shared: Arc<Shared>,
    pub(super) local_id: PeerId,
    pub(super) genesis: Hash256,
    pub(super) max_block_size: usize,
    pub(super) internal_tx: mpsc::UnboundedSender<Internal>,
    pub(super) block_jobs: mpsc::UnboundedSender<BlockJob>,
    pub(super) tx_jobs: mpsc::UnboundedSender<(Transaction, workers::TxJob)>,
    pub(super) peers: HashMap<PeerId, Peer>,
    pub(super) store: PeerStore,
    pub(super) local: Option<LocalView>,
    pub(super) refreshing: bool,
    pub(super) refresh_again: bool,
    pub(super) listen_addrs: Vec<Multiaddr>,
    pub(super) bootnodes: Vec<Multiaddr>,
    pub(super) pending_dials: HashMap<ConnectionId, PendingDial>,
    pub(super) dialing: HashSet<PeerId>,
    pub(super) wrong_chain: HashMap<PeerId, Instant>,
    pub(super) status_requests: HashMap<OutboundRequestId, PeerId>,
    /// The header request in progress: (peer, request once sent).
    pub(super) headers_pending: Option<(PeerId, Option<OutboundRequestId>)>,
    /// A peer to ask for headers once the current request is done.
    pub(super) headers_next: Option<PeerId>,
    /// Headers of a chain still below the anti-DoS work threshold, checked
    /// but not stored, and the peer sending them (one at a time, bounded by
    /// [`MAX_PRESYNC_HEADERS`]).
    pub(super) presync: Option<(PeerId, Vec<BlockHeader>)>,
    /// Peers that served us headers: they have the bodies too.
    pub(super) header_peers: HashSet<PeerId>,
    /// What each peer's headers proved, and when to ask it again.
    pub(super) header_sources: HashMap<PeerId, HeaderSource>,
    /// When the header request in progress was sent.
    pub(super) headers_sent: Option<Instant>,
    pub(super) downloader: Downloader,
    pub(super) progress: Progress,
    pub(super) gossip_backlog: usize,
    pub(super) gossip_backlog_bytes: usize,
    pub(super) tx_backlog: usize,
    pub(super) tx_backlog_bytes: usize,
    /// Gossip transactions waiting for the mempool, per sender.
    pub(super) tx_backlog_peer: HashMap<PeerId, PeerBacklog>,
    /// Inbound requests being served: (peer, bytes held for the reply).
    pub(super) serving: HashMap<InboundRequestId, (PeerId, usize)>,
    pub(super) serving_bytes: usize,
    /// Requests waiting for serving bytes, oldest first.
    pub(super) serve_queue: std::collections::VecDeque<crate::p2p::requests::serve::QueuedServe>,
    /// Blocks we announced (servable even once off our active chain).
    pub(super) announced: SeenIds,
    /// Blocks downloaded by sync, not worth announcing while catching up.
    pub(super) fetched: SeenIds,
    /// The newest block our sync fetched and connected outside initial
    /// sync, announced once the download has drained (see `announce.rs`).
    pub(super) sync_announce: Option<std::sync::Arc<lode_core::block::Block>>,
    /// Each peer's gossipsub score at the last check: a drop means
    /// gossipsub refused a message of theirs (see `check_gossip_scores`).
    pub(super) gossip_scores: HashMap<PeerId, f64>,
    pub(super) counted_mismatches: HashSet<(PeerId, Hash256)>,
    /// Ids of gossip messages seen lately, so we do not republish what
    /// gossipsub already forwards.
    pub(super) seen: SeenIds,
    /// Compact block relay.
    pub(super) compact: super::compact::Relay,
    last_dial: Instant,
    last_decay: Instant,
    last_save: Instant,
    pub(super) last_kad: Instant,
    /// A lookup was skipped for being too soon after the last.
    pub(super) kad_wanted: bool,
    /// Wait before the next lookup while short of outbound peers.
    pub(super) kad_retry: Duration,
    /// Kademlia lookups started, for tests to see discovery retries.
    pub(super) kad_lookups: u64,
    /// A mempool read for re-announcement is running.
    pub(super) reannouncing: bool,
    /// Events were missed while it ran: read the pool again after it.
    pub(super) reannounce_again: bool,
    /// When the service started (warnings about peers wait a little).
    pub(super) started: Instant,
    /// When we last warned of too few archive peers.
    pub(super) archive_warned: Option<Instant>,
    /// When we last warned that history is unavailable.
    pub(super) history_warned: Option<Instant>,
}

/// What one peer's headers have shown us.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HeaderSource {
    /// Work of the best header it sent us that we hold: its verified work,
    /// as opposed to the work its status claims.
    pub proven: lode_core::pow::Work,
    /// Header requests in a row that timed out, did not connect or proved
    /// nothing new while it claimed more work.
    pub strikes: u32,
    /// Not asked for headers again before this (after strikes).
    pub retry_at: Option<Instant>,
    /// The last block it showed us whose parent we lacked (cleared by its
    /// next header reply).
    pub showed_orphan: Option<lode_core::Hash256>,
    /// Our pending header request to it was built while that block was
    /// still an orphan to us: it holds the headers leading there, so an
    /// empty reply is its fault (a peer that kept showing such blocks and
    /// answering nothing was always the next one asked, and held header
    /// sync). Not set when another peer's headers had already brought
    /// the block's ancestry: then an empty reply is honest.
    pub asked_for_orphan: bool,
}

/// Gossipsub peer scoring reduced to one signal: invalid messages, which
/// gossipsub counts for what it refuses itself (a message above its
/// topic's size limit, fields an anonymous message must not carry) before
/// the node sees it. Every other component is off, so a peer's score only
/// drops when gossipsub refused something of theirs; the service turns
/// that drop into the same penalty as an undecodable message. (Our own
/// verdicts are reported as "ignore" and penalised by the service, so
/// they are not counted twice.)
pub(super) fn gossip_scoring(names: &Names) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let topic = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: GOSSIP_INVALID_WEIGHT,
        invalid_message_deliveries_decay: GOSSIP_INVALID_DECAY,
        ..Default::default()
    };
    let mut params = gossipsub::PeerScoreParams {
        topic_score_cap: 0.0,
        app_specific_weight: 0.0,
        ip_colocation_factor_weight: 0.0,
        behaviour_penalty_weight: 0.0,
        slow_peer_weight: 0.0,
        ..Default::default()
    };
    params.topics.insert(names.blocks.hash(), topic.clone());
    params.topics.insert(names.txs.hash(), topic.clone());
    params.topics.insert(names.cmpct_blocks.hash(), topic);
    (params, gossipsub::PeerScoreThresholds::default())
}

pub(super) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}
