//! The network task: owns the swarm and every piece of peer state, reacts
//! to swarm events, handle commands, chain events and results of blocking
//! chain calls, and runs periodic maintenance (status exchange, dialing,
//! ban expiry, sync scheduling, peer store saves).

use super::behaviour::{build_swarm, Names};
use super::codec::{Request, Response, Status};
use super::peers::{Peer, PeerStore};
use super::sync::{Downloader, Limits, Progress};
use super::workers::{self, BlockJob, SeenIds};
use super::{BannedPeer, P2pConfig, P2pError, PeerInfo, Shared, PEER_STORE_FILE};
use crate::chain_api::{BlockOutcome, ChainEvent, HeadersOutcome, NetworkChain, TipInfo, TxOutcome};
use futures::StreamExt;
use libp2p::gossipsub::{self, MessageId};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use lode_core::block::BlockHeader;
use lode_core::{Hash256, Transaction};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};

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
/// Bytes of replies to peers' requests being read or sent at once; a
/// request beyond it is refused (the peer asks someone else).
pub(super) const MAX_SERVING_BYTES: usize = 32 * 1024 * 1024;
/// Requests of one peer being served at once. An honest peer keeps at
/// most a status, a header and four block requests open.
pub(super) const MAX_SERVING_PER_PEER: usize = 8;
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
/// Total budget of downloaded blocks waiting for submission.
const MAX_READY_BYTES: usize = 64 * 1024 * 1024;
/// Outstanding block requests per peer.
const REQUESTS_PER_PEER: usize = 4;
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
    /// Tests play a misbehaving peer with this.
    #[cfg(test)]
    PublishRaw {
        blocks: bool,
        data: Vec<u8>,
    },
}

/// An `add_peer` waiting for its connection: (address, reply, deadline).
pub(crate) type PendingDial = (String, oneshot::Sender<Result<(), P2pError>>, Instant);

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
}

/// Our chain as peers see it; `commitment` belongs to `tip`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalView {
    pub tip: TipInfo,
    pub best_header: TipInfo,
    pub commitment: Hash256,
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
    Missing(Vec<Hash256>),
    BlockDone {
        hash: Hash256,
        origin: Origin,
        outcome: BlockOutcome,
    },
    TxDone {
        job: workers::TxJob,
        outcome: TxOutcome,
    },
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
    /// Bytes of gossip transactions waiting for the mempool, per sender.
    pub(super) tx_backlog_peer: HashMap<PeerId, usize>,
    /// Inbound requests being served: (peer, bytes held for the reply).
    pub(super) serving: HashMap<InboundRequestId, (PeerId, usize)>,
    pub(super) serving_bytes: usize,
    /// Blocks we announced (servable even once off our active chain).
    pub(super) announced: SeenIds,
    /// Blocks downloaded by sync, not worth announcing while catching up.
    pub(super) fetched: SeenIds,
    /// Each peer's gossipsub score at the last check: a drop means
    /// gossipsub refused a message of theirs (see `check_gossip_scores`).
    pub(super) gossip_scores: HashMap<PeerId, f64>,
    pub(super) counted_mismatches: HashSet<(PeerId, Hash256)>,
    /// Ids of gossip messages seen lately, so we do not republish what
    /// gossipsub already forwards.
    pub(super) seen: SeenIds,
    last_dial: Instant,
    last_decay: Instant,
    last_save: Instant,
    pub(super) last_kad: Instant,
    /// A lookup was skipped for being too soon after the last.
    pub(super) kad_wanted: bool,
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
    params.topics.insert(names.txs.hash(), topic);
    (params, gossipsub::PeerScoreThresholds::default())
}

pub(super) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

impl Service {
    /// Builds the swarm, starts listening and spawns the task; returns the
    /// listen addresses once every listener is up.
    pub(crate) async fn spawn(
        mut config: P2pConfig,
        chain: Arc<dyn NetworkChain>,
        key: Keypair,
        shared: Arc<Shared>,
        commands: mpsc::Receiver<Command>,
    ) -> Result<Vec<String>, P2pError> {
        let spec = chain.spec().clone();
        let names = Names::new(&spec)?;
        let local_id = key.public().to_peer_id();
        if config.listen.is_empty() {
            let addr = format!("/ip4/0.0.0.0/tcp/{}", spec.default_p2p_port);
            config.listen.push(addr.parse().map_err(|_| P2pError::InvalidAddress(addr))?);
        }
        let mut bootnodes = config.bootnodes.clone();
        for b in &spec.bootnodes {
            match b.parse::<Multiaddr>() {
                Ok(a) if !bootnodes.contains(&a) => bootnodes.push(a),
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(bootnode = %b, "ignoring an unparsable bootnode in the chain spec")
                }
            }
        }
        bootnodes.retain(|a| peer_of(a) != Some(local_id));

        let mut swarm = build_swarm(&config, key, &spec, &names)?;
        let (score_params, thresholds) = gossip_scoring(&names);
        swarm
            .behaviour_mut()
            .gossipsub
            .with_peer_score(score_params, thresholds)
            .map_err(|e| P2pError::Config(format!("gossipsub scoring: {e}")))?;
        let mut waiting = HashSet::new();
        for addr in &config.listen {
            let id = swarm
                .listen_on(addr.clone())
                .map_err(|e| P2pError::Listen { addr: addr.to_string(), why: e.to_string() })?;
            waiting.insert(id);
        }

        let mut store = PeerStore::load(&config.data_dir.join(PEER_STORE_FILE));
        for (peer, _) in store.bans() {
            swarm.behaviour_mut().blocked.block_peer(peer);
        }
        swarm.behaviour_mut().guard.set_bans(store.banned_ips());
        // Bans that ran out while the node was down.
        store.expire_bans();

        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let (block_jobs, block_rx) = mpsc::unbounded_channel();
        let (tx_jobs, tx_rx) = mpsc::unbounded_channel();
        tokio::spawn(workers::block_worker(chain.clone(), block_rx, internal_tx.clone()));
        tokio::spawn(workers::tx_worker(chain.clone(), tx_rx, internal_tx.clone()));

        let limits = Limits {
            window: config.download_window.max(1),
            per_request: config.blocks_per_request.clamp(1, super::codec::MAX_BLOCKS_PER_REQUEST),
            per_peer: REQUESTS_PER_PEER,
            max_requests: MAX_BLOCK_REQUESTS,
            max_ready_bytes: MAX_READY_BYTES,
            stall_min: STALL_TIMEOUT_MIN,
            stall_max: STALL_TIMEOUT_MAX.min(config.request_timeout).max(STALL_TIMEOUT_MIN),
        };
        let now = Instant::now();
        let events = chain.subscribe();
        let mut service = Service {
            genesis: spec.genesis_hash(),
            max_block_size: spec.max_block_size,
            config,
            chain,
            swarm,
            names,
            shared,
            local_id,
            internal_tx,
            block_jobs,
            tx_jobs,
            peers: HashMap::new(),
            store,
            local: None,
            refreshing: false,
            refresh_again: false,
            listen_addrs: Vec::new(),
            bootnodes,
            pending_dials: HashMap::new(),
            dialing: HashSet::new(),
            wrong_chain: HashMap::new(),
            status_requests: HashMap::new(),
            headers_pending: None,
            headers_next: None,
            presync: None,
            header_peers: HashSet::new(),
            header_sources: HashMap::new(),
            headers_sent: None,
            downloader: Downloader::new(limits),
            progress: Progress::new(Duration::from_secs(5)),
            gossip_backlog: 0,
            gossip_backlog_bytes: 0,
            tx_backlog: 0,
            tx_backlog_bytes: 0,
            tx_backlog_peer: HashMap::new(),
            serving: HashMap::new(),
            serving_bytes: 0,
            announced: SeenIds::with_capacity(ANNOUNCED_BLOCKS),
            fetched: SeenIds::with_capacity(FETCHED_BLOCKS),
            gossip_scores: HashMap::new(),
            counted_mismatches: HashSet::new(),
            seen: SeenIds::with_capacity(SeenIds::GOSSIP_CAPACITY),
            last_dial: now,
            last_decay: now,
            last_save: now,
            last_kad: now.checked_sub(KAD_MIN_INTERVAL).unwrap_or(now),
            kad_wanted: false,
        };
        service.refresh_local();

        // Listeners report their addresses asynchronously: wait for them
        // here so callers can print a usable bootnode address at once.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !waiting.is_empty() {
            let ev = tokio::time::timeout_at(deadline, service.swarm.select_next_some()).await.map_err(|_| {
                P2pError::Listen { addr: "all".into(), why: "no listen address reported within 10 s".into() }
            })?;
            match &ev {
                SwarmEvent::NewListenAddr { listener_id, .. } => {
                    waiting.remove(listener_id);
                }
                SwarmEvent::ListenerClosed { listener_id, reason: Err(e), .. } if waiting.contains(listener_id) => {
                    return Err(P2pError::Listen { addr: "listener".into(), why: e.to_string() });
                }
                _ => {}
            }
            service.on_swarm_event(ev);
        }
        let listening = service.listen_strings();
        service.dial_bootnodes();
        tokio::spawn(service.run(commands, internal_rx, events));
        Ok(listening)
    }
}

impl Service {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut internal: mpsc::UnboundedReceiver<Internal>,
        events: broadcast::Receiver<ChainEvent>,
    ) {
        let mut events = Some(events);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let done = loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown(done)) => break Some(done),
                    Some(cmd) => self.on_command(cmd),
                    // Every handle is gone: nobody can use the network.
                    None => break None,
                },
                Some(msg) = internal.recv() => self.on_internal(msg),
                ev = next_event(&mut events) => self.on_chain_event(ev, &mut events),
                _ = tick.tick() => self.on_tick(),
            }
        };
        self.store.expire_bans();
        if let Err(e) = self.store.flush() {
            tracing::warn!(%e, "cannot save the peer store");
        }
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in connected {
            let _ = self.swarm.disconnect_peer_id(p);
        }
        tracing::info!("p2p network stopped");
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn on_chain_event(
        &mut self,
        ev: Result<ChainEvent, broadcast::error::RecvError>,
        events: &mut Option<broadcast::Receiver<ChainEvent>>,
    ) {
        let (topic, data) = match ev {
            Ok(ChainEvent::Block(b)) => {
                self.refresh_local();
                let hash = b.hash();
                // Old blocks our own sync fetched are news to nobody while
                // we catch up. Everything else is announced, initial sync
                // or not: above all what this node mined or was handed
                // over RPC, which nobody else can tell the network about.
                if self.shared.initial_sync.load(Ordering::Relaxed) && self.fetched.contains(&hash.0) {
                    return;
                }
                self.announced.insert(hash.0);
                (self.names.blocks.clone(), lode_core::codec::Encode::encode(b.as_ref()))
            }
            Ok(ChainEvent::Tx(t)) => (self.names.txs.clone(), lode_core::codec::Encode::encode(t.as_ref())),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(skipped = n, "missed chain events; peers catch up through status exchange");
                return;
            }
            Err(broadcast::error::RecvError::Closed) => {
                *events = None;
                return;
            }
        };
        // What came by gossip is forwarded by gossipsub once validated.
        // Transactions are always announced: in initial sync the node
        // ignores gossiped ones, but its own (RPC, wallet) must leave it.
        if !self.seen.insert(workers::gossip_id(&data)) {
            return;
        }
        match self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
            Ok(_) | Err(gossipsub::PublishError::Duplicate) => {}
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                tracing::debug!("no peer to announce to")
            }
            Err(e) => tracing::warn!(%e, "announcing failed"),
        }
    }

    /// Reads tip, best header and commitment on a blocking thread.
    pub(super) fn refresh_local(&mut self) {
        if self.refreshing {
            self.refresh_again = true;
            return;
        }
        self.refreshing = true;
        let chain = self.chain.clone();
        let tx = self.internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            // The commitment must belong to the tip we report: retry if a
            // block connected in between.
            let mut view = None;
            for _ in 0..3 {
                let tip = chain.tip();
                let commitment = chain.utxo_commitment();
                let best_header = chain.best_header();
                if chain.tip().hash == tip.hash {
                    view = Some(LocalView { tip, best_header, commitment });
                    break;
                }
            }
            let _ = tx.send(Internal::Local(view));
        });
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        for peer in self.store.expire_bans() {
            tracing::info!(%peer, "ban expired");
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
        let expired: Vec<ConnectionId> =
            self.pending_dials.iter().filter(|(_, (_, _, t))| *t <= now).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some((addr, reply, _)) = self.pending_dials.remove(&id) {
                let _ = reply.send(Err(P2pError::Dial { addr, why: "timed out".into() }));
            }
        }
        self.refresh_local();
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                !p.status_pending
                    && p.last_status.is_none_or(|t| now.saturating_duration_since(t) >= self.config.status_interval)
            })
            .map(|(id, _)| *id)
            .collect();
        for p in due {
            self.request_status(p);
        }
        self.check_header_timeout(now);
        self.maybe_request_headers(None);
        if let Some(peer) = self.downloader.check_stall(now) {
            tracing::info!(%peer, timeout = ?self.downloader.stall_timeout(), "block download stalled on a peer; its blocks go to others");
        }
        self.schedule_downloads();
        self.check_gossip_scores();
        self.forget_gone_peers();
        if now.saturating_duration_since(self.last_dial) >= self.config.dial_interval {
            self.last_dial = now;
            self.top_up();
        }
        if now.saturating_duration_since(self.last_decay) >= Duration::from_secs(60) {
            self.last_decay = now;
            // Old offences fade: one point a minute back toward zero.
            for p in self.peers.values_mut() {
                p.score = (p.score + 1).min(0);
            }
        }
        if self.kad_wanted || now.saturating_duration_since(self.last_kad) >= KAD_INTERVAL {
            // With an empty table there is nobody to ask.
            if self.swarm.behaviour_mut().kad.kbuckets().next().is_some() {
                self.discover();
            }
        }
        if now.saturating_duration_since(self.last_save) >= Duration::from_secs(10) {
            self.last_save = now;
            if let Err(e) = self.store.save() {
                tracing::warn!(%e, "cannot save the peer store");
            }
        }
        self.update_sync_state();
    }

    /// Initial sync, decided on the node's own evidence only: the best
    /// header chain we hold (its proof of work checked, and above the
    /// anti-DoS work threshold) is far ahead of the tip, and the tip is
    /// old. A peer's claimed height or work never counts: a peer could
    /// otherwise hold us in initial sync for free by claiming a chain and
    /// serving nothing.
    pub(super) fn update_sync_state(&mut self) {
        let Some(local) = self.local else { return };
        let target = local.best_header.height.0;
        let height = local.tip.height.0;
        let stale = local.tip.time.saturating_add(MAX_TIP_AGE_SECS) < super::peers::unix_now();
        let syncing = stale && target > height.saturating_add(INITIAL_SYNC_LAG);
        let was = self.shared.initial_sync.swap(syncing, Ordering::Relaxed);
        if syncing {
            if !was {
                tracing::info!(height, target, "initial sync started");
            }
            self.progress.tick(Instant::now(), height, target);
        } else if was {
            tracing::info!(height, "initial sync finished");
            self.progress.reset();
        }
    }

    /// Our status from the cached view (`None` before the first read).
    pub(super) fn our_status(&self) -> Option<Status> {
        self.local.map(|l| Status {
            genesis: self.genesis,
            best_hash: l.tip.hash,
            height: l.tip.height.0,
            chainwork: l.tip.chainwork,
            utxo_commitment: l.commitment,
        })
    }

    pub(super) fn request_status(&mut self, peer: PeerId) {
        let Some(status) = self.our_status() else {
            return;
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.status_pending = true;
        p.last_status = Some(Instant::now());
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, Request::Status(status));
        self.status_requests.insert(id, peer);
    }
}

impl Service {
    /// Drops per-peer state of peers that are gone (the disconnect
    /// handler clears the rest).
    fn forget_gone_peers(&mut self) {
        let peers = &self.peers;
        self.header_sources.retain(|p, _| peers.contains_key(p));
        self.gossip_scores.retain(|p, _| peers.contains_key(p));
        if let Some((p, _)) = &self.presync {
            if !peers.contains_key(p) {
                self.presync = None;
            }
        }
    }

    /// Charges peers for gossip that gossipsub refused before we saw it
    /// (above a topic's size limit, or carrying fields an anonymous
    /// message must not have): their gossipsub score, fed only by such
    /// refusals, dropped since the last check.
    fn check_gossip_scores(&mut self) {
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in peers {
            let Some(score) = self.swarm.behaviour().gossipsub.peer_score(&peer) else { continue };
            let last = self.gossip_scores.insert(peer, score).unwrap_or(0.0);
            if score < last - 1e-9 {
                self.misbehave(
                    peer,
                    super::peers::penalty::MALFORMED,
                    "oversized or malformed gossip (refused by gossipsub)",
                );
            }
        }
    }
}

async fn next_event(
    events: &mut Option<broadcast::Receiver<ChainEvent>>,
) -> Result<ChainEvent, broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
