//! A raw libp2p client for the tools and tests that play a peer of a
//! `lode-node` from outside it (`lode-badpeer`, `lode-hostile`,
//! `lode-hostile-miner`, the ban tests): the node's protocol and topic
//! names, its gossipsub settings, codecs that carry the sync protocol as
//! bytes, a swarm built from those, a TCP transport that dials from a
//! chosen local address, and how the tools read their first arguments and
//! exit.
//!
//! It deliberately does not reuse the node's own p2p code: these peers
//! must speak the wire protocol as an outsider would (and break it on
//! purpose), so a change to the node that also changed them would hide the
//! very mismatch they exist to catch.

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, FutureExt};
use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::core::Transport;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, noise, tcp, yamux, Multiaddr, StreamProtocol, Swarm};
use lode_core::ChainSpec;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The prefix of every protocol and topic name of `spec`'s network:
/// `/lode/<network id>/<first 16 hex digits of the genesis hash>`, so
/// peers of different chains never mistake each other's traffic.
pub fn protocol_prefix(spec: &ChainSpec) -> String {
    let genesis = spec.genesis_hash().to_hex();
    format!("/lode/{}/{}", spec.network_id, &genesis[..16])
}

/// The block gossip topic under `prefix`.
pub fn blocks_topic(prefix: &str) -> IdentTopic {
    IdentTopic::new(format!("{prefix}/blocks/1"))
}

/// The transaction gossip topic under `prefix`.
pub fn tx_topic(prefix: &str) -> IdentTopic {
    IdentTopic::new(format!("{prefix}/tx/1"))
}

/// The sync (request-response) protocol under `prefix`.
pub fn sync_protocol(prefix: &str) -> Result<StreamProtocol, libp2p::swarm::InvalidProtocol> {
    StreamProtocol::try_from_owned(format!("{prefix}/sync/1"))
}

/// Gossipsub settings as the nodes use them: anonymous messages with
/// content-hash ids (anonymous messages would otherwise all share one id,
/// and a node would take a second block for a duplicate of the first),
/// messages up to `max_transmit_size` bytes and a fast heartbeat so the
/// mesh forms within a test's patience. A builder, so a tool can tune
/// more before `build`.
pub fn gossip_config(max_transmit_size: usize) -> gossipsub::ConfigBuilder {
    let mut builder = gossipsub::ConfigBuilder::default();
    builder
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(|m: &gossipsub::Message| MessageId::from(lode_core::hash::sha256(&m.data).to_vec()))
        .max_transmit_size(max_transmit_size)
        .heartbeat_interval(Duration::from_millis(200));
    builder
}

/// The sync protocol with its bodies left as bytes, so a tool can send
/// anything (garbage included) and see exactly what the node answers.
#[derive(Clone, Debug)]
pub enum SyncCodec {
    /// The protocol's name over arbitrary bytes: a message is everything
    /// up to the end of the stream (at most 1 MiB). For peers that want
    /// to be taken for sync peers without speaking the protocol.
    Unframed,
    /// The protocol's framing: a little-endian `u32` length, then a body of
    /// at most `limit` bytes.
    Framed {
        /// Largest body read; a longer frame is an error.
        limit: usize,
    },
}

/// Most bytes read from an unframed stream.
const UNFRAMED_LIMIT: u64 = 1 << 20;

impl SyncCodec {
    async fn read<T: AsyncRead + Unpin + Send>(&self, io: &mut T) -> io::Result<Vec<u8>> {
        match self {
            SyncCodec::Unframed => {
                let mut v = Vec::new();
                io.take(UNFRAMED_LIMIT).read_to_end(&mut v).await?;
                Ok(v)
            }
            SyncCodec::Framed { limit } => {
                let mut len = [0u8; 4];
                io.read_exact(&mut len).await?;
                let len = u32::from_le_bytes(len) as usize;
                if len > *limit {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
                }
                let mut body = vec![0u8; len];
                io.read_exact(&mut body).await?;
                Ok(body)
            }
        }
    }

    async fn write<T: AsyncWrite + Unpin + Send>(&self, io: &mut T, body: &[u8]) -> io::Result<()> {
        if let SyncCodec::Framed { .. } = self {
            let len =
                u32::try_from(body.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "frame too large"))?;
            io.write_all(&len.to_le_bytes()).await?;
        }
        io.write_all(body).await?;
        // The stream carries one message: closing it flushes and, for an
        // unframed message, is what marks its end.
        io.close().await
    }
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        self.read(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        self.read(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        self.write(io, &req).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        self.write(io, &res).await
    }
}

/// What a raw peer runs: identify (optional: a peer that omits it tests
/// the node without it), gossipsub, and the sync protocol through a
/// [`SyncCodec`].
#[derive(NetworkBehaviour)]
pub struct RawPeer {
    /// Identify, when the peer announces itself.
    pub identify: Toggle<identify::Behaviour>,
    /// Block and transaction gossip.
    pub gossipsub: gossipsub::Behaviour,
    /// The sync protocol, as bytes.
    pub sync: request_response::Behaviour<SyncCodec>,
}

/// How to build a [`RawPeer`] swarm.
pub struct RawPeerConfig {
    /// The network's [`protocol_prefix`].
    pub prefix: String,
    /// Gossipsub settings (see [`gossip_config`]).
    pub gossip: gossipsub::Config,
    /// How the sync protocol's bodies are carried.
    pub codec: SyncCodec,
    /// Request-response settings for the sync protocol.
    pub sync: request_response::Config,
    /// Whether to run identify.
    pub identify: bool,
    /// How long an idle connection is kept (long enough that the node, not
    /// the client, decides when it ends).
    pub idle_timeout: Duration,
}

/// A TCP/noise/yamux swarm of a [`RawPeer`] with a fresh identity.
pub fn raw_swarm(config: RawPeerConfig) -> Result<Swarm<RawPeer>, Box<dyn std::error::Error + Send + Sync>> {
    let RawPeerConfig { prefix, gossip, codec, sync, identify, idle_timeout } = config;
    let protocol = sync_protocol(&prefix)?;
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)?
        .with_behaviour(|key| {
            let identify =
                identify.then(|| identify::Behaviour::new(identify::Config::new(prefix.clone(), key.public())));
            Ok(RawPeer {
                identify: Toggle::from(identify),
                gossipsub: gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip)?,
                sync: request_response::Behaviour::with_codec(codec, [(protocol, ProtocolSupport::Full)], sync),
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle_timeout))
        .build())
}

/// Starts a tool's session: prints the peer id on the first line of
/// stdout (the tests learn who the tool is from it), joins `topic` and
/// dials the node at `target`. The dial completes as the swarm is polled.
pub fn join(
    swarm: &mut Swarm<RawPeer>,
    topic: &IdentTopic,
    target: Multiaddr,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    println!("{}", swarm.local_peer_id());
    swarm.behaviour_mut().gossipsub.subscribe(topic)?;
    swarm.dial(target)?;
    Ok(())
}

/// TCP whose dials leave from a chosen local address (libp2p's TCP
/// transport cannot choose one), so one process can look like peers on
/// several loopback addresses. Dial only: it listens nowhere.
pub struct BoundTcp(pub IpAddr);

impl Transport for BoundTcp {
    type Output = libp2p::tcp::tokio::TcpStream;
    type Error = io::Error;
    type ListenerUpgrade = futures::future::Pending<Result<Self::Output, Self::Error>>;
    type Dial = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn listen_on(&mut self, _: ListenerId, addr: Multiaddr) -> Result<(), TransportError<Self::Error>> {
        Err(TransportError::MultiaddrNotSupported(addr))
    }

    fn remove_listener(&mut self, _: ListenerId) -> bool {
        false
    }

    fn dial(&mut self, addr: Multiaddr, _: DialOpts) -> Result<Self::Dial, TransportError<Self::Error>> {
        let (mut ip, mut port) = (None, None);
        for p in addr.iter() {
            match p {
                Protocol::Ip4(a) => ip = Some(IpAddr::V4(a)),
                Protocol::Ip6(a) => ip = Some(IpAddr::V6(a)),
                Protocol::Tcp(p) => port = Some(p),
                _ => {}
            }
        }
        let (Some(ip), Some(port)) = (ip, port) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let local = self.0;
        Ok(async move {
            let socket =
                if local.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
            socket.bind(SocketAddr::new(local, 0))?;
            let stream = socket.connect(SocketAddr::new(ip, port)).await?;
            stream.set_nodelay(true)?;
            Ok(libp2p::tcp::tokio::TcpStream(stream))
        }
        .boxed())
    }

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Poll::Pending
    }
}

/// Why a tool failed: bad arguments (exit status 2) or anything else (1).
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments.
    Usage(String),
    /// Any other failure.
    Other(String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::Other(e.to_string())
    }
}

/// Ends a tool as its documentation promises: status 0 on success, 2 for
/// bad arguments and 1 for other failures, the reason on stderr prefixed
/// with the tool's name (tests read it from there).
pub fn exit_with(tool: &str, outcome: Result<(), Failure>) {
    match outcome {
        Ok(()) => {}
        Err(Failure::Usage(e)) => {
            eprintln!("{tool}: {e}");
            std::process::exit(2);
        }
        Err(Failure::Other(e)) => {
            eprintln!("{tool}: {e}");
            std::process::exit(1);
        }
    }
}

/// The first two arguments every tool takes: the node's `MULTIADDR` and
/// the `CHAIN` name. A missing one is a usage failure saying `missing`.
pub fn target_and_chain(
    args: &mut impl Iterator<Item = String>,
    missing: &str,
) -> Result<(Multiaddr, ChainSpec), Failure> {
    let mut next = || args.next().ok_or_else(|| Failure::Usage(missing.to_string()));
    let target: Multiaddr = next()?.parse().map_err(|e| Failure::Usage(format!("{e}")))?;
    let spec = ChainSpec::builtin(&next()?).map_err(|e| Failure::Usage(e.to_string()))?;
    Ok((target, spec))
}
