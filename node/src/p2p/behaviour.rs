//! The libp2p behaviour stack and the chain-specific protocol names.
//!
//! Every protocol id and topic carries the network id and a genesis hash
//! prefix, so nodes of different chains cannot even negotiate a stream
//! with each other; identify tells us early when a peer is on another
//! chain and the service drops it.

use super::addresses::AddressGuard;
use super::codec::SyncCodec;
use super::compact::CmpctCodec;
use super::services::ServicesCodec;
use super::{P2pConfig, P2pError};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    allow_block_list, connection_limits, identify, kad, mdns, noise, ping, request_response, tcp, yamux,
    StreamProtocol, Swarm,
};
use lode_core::ChainSpec;
use std::time::Duration;

/// Protocol ids and topics of one chain.
#[derive(Clone, Debug)]
pub struct Names {
    /// `/lode/<network>/<genesis prefix>`.
    pub prefix: String,
    /// The sync request-response protocol.
    pub sync: StreamProtocol,
    /// The Kademlia protocol.
    pub kad: StreamProtocol,
    /// Gossip topic for blocks.
    pub blocks: IdentTopic,
    /// Gossip topic for transactions.
    pub txs: IdentTopic,
    /// Gossip topic for compact blocks (high-bandwidth relay).
    pub cmpct_blocks: IdentTopic,
    /// The compact block request-response protocol (`getblocktxn`, vouches).
    pub cmpct: StreamProtocol,
    /// The service advertisement protocol (which bodies a peer keeps).
    pub services: StreamProtocol,
}

impl Names {
    /// Names for `spec`'s chain.
    pub fn new(spec: &ChainSpec) -> Result<Names, P2pError> {
        let genesis = spec.genesis_hash().to_hex();
        let prefix = format!("/lode/{}/{}", spec.network_id, &genesis[..16.min(genesis.len())]);
        let proto = |suffix: &str| {
            StreamProtocol::try_from_owned(format!("{prefix}/{suffix}"))
                .map_err(|e| P2pError::Config(format!("protocol name: {e}")))
        };
        Ok(Names {
            sync: proto("sync/1")?,
            kad: proto("kad/1")?,
            blocks: IdentTopic::new(format!("{prefix}/blocks/1")),
            txs: IdentTopic::new(format!("{prefix}/tx/1")),
            cmpct_blocks: IdentTopic::new(format!("{prefix}/cmpctblock/1")),
            cmpct: proto("cmpct/1")?,
            services: proto("services/1")?,
            prefix,
        })
    }
}

/// All behaviours of a Lode node. Order matters: the block list, the
/// address guard and the connection limits come first so they veto
/// connections before the others see them.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Banned peers, refused in both directions.
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Banned addresses (both directions) and the per-address inbound cap.
    pub guard: AddressGuard,
    /// Total, inbound and per-peer connection caps.
    pub limits: connection_limits::Behaviour,
    /// Learns peers' listen addresses and protocols.
    pub identify: identify::Behaviour,
    /// Liveness.
    pub ping: ping::Behaviour,
    /// Peer discovery (off with `--no-discovery`).
    pub kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    /// Local network discovery (off with `--no-mdns`).
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Block and transaction propagation.
    pub gossipsub: gossipsub::Behaviour,
    /// Status, headers and blocks.
    pub sync: request_response::Behaviour<SyncCodec>,
    /// Missing transactions of compact blocks, and vouches.
    pub cmpct: request_response::Behaviour<CmpctCodec>,
    /// Which block bodies peers keep (archive or pruned, and from where).
    pub services: request_response::Behaviour<ServicesCodec>,
}

/// A `getblocktxn` unanswered for this long is given up and the full
/// block asked for: gossipsub forgets a message left unvalidated for about
/// five heartbeats, and the block is late by then anyway.
pub const COMPACT_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Inbound peers the node keeps: never the slots its own dials need.
pub fn inbound_slots(config: &P2pConfig) -> usize {
    config.max_inbound.min(config.max_peers.saturating_sub(config.target_outbound).max(1))
}

/// Bytes of blocks in one `GetBlocks` reply: several blocks, at least one
/// maximal block.
pub fn block_reply_budget(spec: &ChainSpec) -> usize {
    (8 * 1024 * 1024).max(spec.max_block_size)
}

fn gossip_config(spec: &ChainSpec, names: &Names) -> Result<gossipsub::Config, P2pError> {
    let limits = super::codec::gossip_limits(spec.max_block_size);
    gossipsub::ConfigBuilder::default()
        // Forward only what the chain accepted.
        .validate_messages()
        // Content addressing: the same block or transaction from two
        // sources is one message, and republishing it is a no-op.
        .message_id_fn(|m: &gossipsub::Message| MessageId::from(super::workers::gossip_id(&m.data).to_vec()))
        // Blocks and transactions prove themselves; author signatures
        // would only cost time and reveal who mined.
        .validation_mode(ValidationMode::Anonymous)
        .max_transmit_size(limits.frame)
        .max_transmit_size_for_topic(limits.block, names.blocks.hash())
        .max_transmit_size_for_topic(limits.tx, names.txs.hash())
        .max_transmit_size_for_topic(limits.block, names.cmpct_blocks.hash())
        // Form the mesh soon after start; the default waits five seconds.
        .heartbeat_initial_delay(Duration::from_millis(100))
        .heartbeat_interval(Duration::from_secs(1))
        .build()
        .map_err(|e| P2pError::Config(format!("gossipsub: {e}")))
}

/// Builds the swarm (TCP + noise + yamux) with every behaviour configured.
pub fn build_swarm(
    config: &P2pConfig,
    key: Keypair,
    spec: &ChainSpec,
    names: &Names,
) -> Result<Swarm<Behaviour>, P2pError> {
    let peer_id = key.public().to_peer_id();
    let gossip = gossip_config(spec, names)?;
    let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip)
        .map_err(|e| P2pError::Config(e.to_string()))?;
    // Full blocks stay subscribed with compact relay on: peers that do not
    // speak compact blocks (other implementations) still gossip them.
    let mut topics = vec![&names.blocks, &names.txs];
    if config.compact_blocks {
        topics.push(&names.cmpct_blocks);
    }
    for topic in topics {
        gossipsub.subscribe(topic).map_err(|e| P2pError::Config(format!("subscribe: {e}")))?;
    }

    let mut kad_config = kad::Config::new(names.kad.clone());
    kad_config.set_query_timeout(Duration::from_secs(30));
    // The service bootstraps itself when the table has entries; the
    // built-in timer only warns while the node is alone.
    kad_config.set_periodic_bootstrap_interval(None);
    // Lode keeps no records of its own in the DHT; a store open to every
    // peer (1,024 records of up to 16 KiB, kept 48 h and republished
    // hourly to the closest peers) would be free storage and bandwidth
    // amplification for whoever asks. Inbound puts are handed to the
    // service as events, which drops them; nothing is republished.
    kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
    kad_config.set_replication_interval(None);
    kad_config.set_publication_interval(None);
    kad_config.set_provider_publication_interval(None);
    // Without discovery there is no Kademlia at all: its own automatic
    // bootstrap (on every new routing-table entry, not configurable) would
    // otherwise dial the peers' peers.
    let kad = config.discovery.then(|| {
        let mut kad = kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
        // Every node serves the DHT: there are no special nodes.
        kad.set_mode(Some(kad::Mode::Server));
        kad
    });

    let mdns = if config.mdns && config.discovery {
        match mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(%e, "mDNS is unavailable, continuing without it");
                None
            }
        }
    } else {
        None
    };

    // One connection above the caps: a newcomer to full inbound slots is
    // let in so the service can evict a less useful peer for it (or drop
    // it when every inbound peer is protected).
    let total = u32::try_from(config.max_peers.saturating_add(1)).unwrap_or(u32::MAX);
    let inbound = u32::try_from(inbound_slots(config).saturating_add(1)).unwrap_or(u32::MAX);
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(total))
        .with_max_established_incoming(Some(inbound))
        .with_max_established_per_peer(Some(config.max_connections_per_peer))
        .with_max_pending_incoming(Some(inbound.max(8)))
        .with_max_pending_outgoing(Some(u32::try_from(config.target_outbound.max(8) * 2).unwrap_or(u32::MAX)));

    let codec = SyncCodec::new(spec.max_block_size, block_reply_budget(spec));
    let sync = request_response::Behaviour::with_codec(
        codec,
        [(names.sync.clone(), request_response::ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(config.request_timeout)
            .with_max_concurrent_streams(64),
    );

    let cmpct = request_response::Behaviour::with_codec(
        CmpctCodec::new(spec.max_block_size),
        [(names.cmpct.clone(), request_response::ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(config.request_timeout.min(COMPACT_REQUEST_TIMEOUT))
            .with_max_concurrent_streams(64),
    );

    let services = request_response::Behaviour::with_codec(
        ServicesCodec,
        [(names.services.clone(), request_response::ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(config.request_timeout).with_max_concurrent_streams(8),
    );

    let behaviour = Behaviour {
        blocked: allow_block_list::Behaviour::default(),
        guard: AddressGuard::new(config.exempt_loopback, config.max_inbound_per_ip),
        limits: connection_limits::Behaviour::new(limits),
        identify: identify::Behaviour::new(
            identify::Config::new(names.prefix.clone(), key.public())
                .with_agent_version(format!("lode-node/{}", env!("CARGO_PKG_VERSION"))),
        ),
        ping: ping::Behaviour::new(ping::Config::new()),
        kad: Toggle::from(kad),
        mdns: Toggle::from(mdns),
        gossipsub,
        sync,
        cmpct,
        services,
    };

    let idle = config.idle_connection_timeout;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_behaviour(move |_| behaviour)
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build();
    Ok(swarm)
}
