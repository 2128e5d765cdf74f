//! Construction of the network task: the swarm, listeners, the peer store
//! and its bans, the chain workers, and the wait for listen addresses.

use crate::chain_api::NetworkChain;
use crate::p2p::behaviour::{build_swarm, Names};
use crate::p2p::peers::PeerStore;
use crate::p2p::sync::{Downloader, Limits, Progress};
use crate::p2p::workers::{self, SeenIds};
use crate::p2p::{P2pConfig, P2pError, Shared, PEER_STORE_FILE};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::Multiaddr;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::{
    gossip_scoring, peer_of, Command, Service, ANNOUNCED_BLOCKS, FETCHED_BLOCKS, KAD_MIN_INTERVAL, KAD_RETRY_FIRST,
    MAX_BLOCK_REQUESTS, MAX_READY_BYTES, MAX_REQUESTS_PER_PEER, REQUESTS_PER_PEER, STALL_TIMEOUT_MAX,
    STALL_TIMEOUT_MIN,
};

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
        let compact = crate::p2p::compact::Relay::new(config.compact_blocks, shared.relay.clone());
        tokio::spawn(workers::tx_worker(chain.clone(), tx_rx, internal_tx.clone(), compact.extra.clone()));

        let limits = Limits {
            window: config.download_window.max(1),
            per_request: config.blocks_per_request.clamp(1, crate::p2p::codec::MAX_BLOCKS_PER_REQUEST),
            per_peer: REQUESTS_PER_PEER,
            per_peer_max: MAX_REQUESTS_PER_PEER,
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
            serve_queue: std::collections::VecDeque::new(),
            announced: SeenIds::with_capacity(ANNOUNCED_BLOCKS),
            fetched: SeenIds::with_capacity(FETCHED_BLOCKS),
            sync_announce: None,
            gossip_scores: HashMap::new(),
            counted_mismatches: HashSet::new(),
            seen: SeenIds::with_capacity(SeenIds::GOSSIP_CAPACITY),
            compact,
            last_dial: now,
            last_decay: now,
            last_save: now,
            last_kad: now.checked_sub(KAD_MIN_INTERVAL).unwrap_or(now),
            kad_wanted: false,
            kad_retry: KAD_RETRY_FIRST,
            kad_lookups: 0,
            reannouncing: false,
            reannounce_again: false,
            started: now,
            archive_warned: None,
            history_warned: None,
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
