//! `lode-badpeer`: a misbehaving peer for the black-box tests. It dials a
//! node, joins its block gossip, and sends garbage, a block with bad proof
//! of work, and an oversized message, then waits to be thrown out. Prints
//! its peer id on the first line of stdout.

use futures::StreamExt;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, tcp, yamux, Multiaddr, StreamProtocol};
use lode_core::block::{merkle_root, Block, BlockHeader};
use lode_core::codec::Encode;
use lode_core::validation::check_header;
use lode_core::{ChainSpec, Height, Transaction};
use std::io;
use std::time::{Duration, Instant};

#[derive(NetworkBehaviour)]
struct Bad {
    identify: identify::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<RawCodec>,
}

/// Speaks the sync protocol's name with arbitrary bytes (so the node does
/// not drop us as a stranger before it sees what we send).
#[derive(Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        io.take(1 << 20).read_to_end(&mut v).await?;
        Ok(v)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        io.take(1 << 20).read_to_end(&mut v).await?;
        Ok(v)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&req).await?;
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&res).await?;
        io.close().await
    }
}

/// A regtest block on genesis whose hash misses the target.
fn bad_pow_block(spec: &ChainSpec) -> Block {
    let cb = Transaction::coinbase(Height(1), b"bad".to_vec(), vec![]);
    let root = merkle_root(&[cb.txid()]).0;
    let mut header = BlockHeader {
        version: 1,
        prev_hash: spec.genesis_hash(),
        merkle_root: root,
        time: spec.genesis.time + 1,
        bits: spec.pow_limit,
        nonce: 0,
    };
    while check_header(&header, spec).is_ok() {
        header.nonce += 1;
    }
    Block { header, transactions: vec![cb] }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: lode-badpeer MULTIADDR CHAIN sync|badpow|gossip";
    let target: Multiaddr = args.next().ok_or(usage)?.parse()?;
    let spec = ChainSpec::builtin(&args.next().ok_or(usage)?)?;
    let mode = args.next().ok_or(usage)?;
    let genesis = spec.genesis_hash().to_hex();
    let prefix = format!("/lode/{}/{}", spec.network_id, &genesis[..16]);
    let blocks = IdentTopic::new(format!("{prefix}/blocks/1"));
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Anonymous)
        .max_transmit_size(spec.max_block_size * 4)
        .heartbeat_interval(Duration::from_millis(200))
        .build()?;
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)?
        .with_behaviour(|key| {
            Ok(Bad {
                identify: identify::Behaviour::new(identify::Config::new(prefix.clone(), key.public())),
                gossipsub: gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config.clone())?,
                sync: request_response::Behaviour::with_codec(
                    RawCodec,
                    [(StreamProtocol::try_from_owned(format!("{prefix}/sync/1"))?, ProtocolSupport::Full)],
                    request_response::Config::default(),
                ),
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    println!("{}", swarm.local_peer_id());
    swarm.behaviour_mut().gossipsub.subscribe(&blocks)?;
    swarm.dial(target)?;
    // What to gossip, per mode ("sync" only misbehaves on the sync protocol).
    let payloads: Vec<Vec<u8>> = match mode.as_str() {
        "badpow" => vec![bad_pow_block(&spec).encode()],
        "gossip" => vec![b"definitely not a block".to_vec(), vec![0xab; spec.max_block_size + 100_000]],
        "sync" => vec![],
        _ => return Err(usage.into()),
    };
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    while Instant::now() < deadline {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::ConnectionClosed { num_established: 0, .. } if sent > 0 => {
                    eprintln!("disconnected by the node after {sent} bad messages");
                    return Ok(());
                }
                SwarmEvent::Behaviour(BadEvent::Sync(request_response::Event::Message {
                    peer,
                    message: request_response::Message::Request { channel, .. },
                    ..
                })) => {
                    // The node asks for our status. In "sync" mode answer with
                    // garbage and send a garbage request of our own; otherwise
                    // stay silent and misbehave on gossip.
                    if mode == "sync" {
                        let _ = swarm.behaviour_mut().sync.send_response(channel, b"garbage status".to_vec());
                        swarm.behaviour_mut().sync.send_request(&peer, vec![0xff; 64]);
                        sent += 1;
                    }
                }
                other => eprintln!("{other:?}"),
            },
            _ = tick.tick() => {
                if sent < payloads.len() {
                    match swarm.behaviour_mut().gossipsub.publish(blocks.clone(), payloads[sent].clone()) {
                        Ok(_) => {
                            eprintln!("sent bad message {sent}");
                            sent += 1;
                        }
                        Err(e) => eprintln!("publish: {e}"),
                    }
                }
            }
        }
    }
    Err("the node never disconnected us".into())
}
