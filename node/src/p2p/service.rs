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
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use lode_core::{Hash256, Transaction};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Behind the best peer by more than this many blocks counts as initial sync.
const INITIAL_SYNC_LAG: u32 = 12;
/// Gossip blocks waiting for validation beyond this are ignored.
pub(super) const MAX_GOSSIP_BACKLOG: usize = 256;
/// Gossip transactions waiting for the mempool beyond this are ignored.
pub(super) const MAX_TX_BACKLOG: usize = 10_000;
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
    Gossip { msg: MessageId, source: PeerId },
    Sync { peer: PeerId },
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
    Respond { channel: ResponseChannel<Response>, response: Response },
    Locator { peer: PeerId, locator: Vec<Hash256> },
    HeadersDone { peer: PeerId, count: usize, outcome: HeadersOutcome },
    Missing(Vec<Hash256>),
    BlockDone { hash: Hash256, origin: Origin, outcome: BlockOutcome },
    TxDone { msg: MessageId, source: PeerId, outcome: TxOutcome },
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
    pub(super) tx_jobs: mpsc::UnboundedSender<(Transaction, MessageId, PeerId)>,
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
    /// Peers that served us headers: they have the bodies too.
    pub(super) header_peers: HashSet<PeerId>,
    pub(super) downloader: Downloader,
    pub(super) progress: Progress,
    pub(super) gossip_backlog: usize,
    pub(super) tx_backlog: usize,
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
            max_ready_bytes: MAX_READY_BYTES,
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
            header_peers: HashSet::new(),
            downloader: Downloader::new(limits),
            progress: Progress::new(Duration::from_secs(5)),
            gossip_backlog: 0,
            tx_backlog: 0,
            counted_mismatches: HashSet::new(),
            seen: SeenIds::default(),
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
        if let Err(e) = self.store.save() {
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
        // While far behind, what we connect is old news to our peers; and
        // what came by gossip is forwarded by gossipsub once validated.
        if self.shared.initial_sync.load(Ordering::Relaxed) || !self.seen.insert(workers::gossip_id(&data)) {
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
        self.maybe_request_headers(None);
        self.schedule_downloads();
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

    /// Initial sync: far behind the best peer or the best header.
    pub(super) fn update_sync_state(&mut self) {
        let Some(local) = self.local else { return };
        // Trust heights only from peers that backed their claim with
        // headers: a lying status must not flip us into initial sync.
        let best_peer = self
            .peers
            .iter()
            .filter(|(id, _)| self.header_peers.contains(id))
            .filter_map(|(_, p)| p.status.as_ref())
            .filter(|s| s.chainwork > local.tip.chainwork)
            .map(|s| s.height)
            .max()
            .unwrap_or(0);
        let target = best_peer.max(local.best_header.height.0);
        let height = local.tip.height.0;
        let syncing = target > height.saturating_add(INITIAL_SYNC_LAG);
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

async fn next_event(
    events: &mut Option<broadcast::Receiver<ChainEvent>>,
) -> Result<ChainEvent, broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
