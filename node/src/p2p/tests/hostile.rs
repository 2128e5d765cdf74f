//! A hostile peer built from bare libp2p parts: gossipsub with no size
//! limits of ours, our sync protocol answered as a test scripts it, and
//! compact-relay requests sent as a test writes them.

use super::super::codec::{Request, Response, Status, SyncCodec};
use super::super::compact::{CmpctCodec, CmpctRequest, CmpctResponse};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::kad;
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId};
use lode_core::block::BlockHeader;
use lode_core::ChainSpec;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(NetworkBehaviour)]
struct Evil {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
    cmpct: request_response::Behaviour<CmpctCodec>,
    kad: kad::Behaviour<kad::store::MemoryStore>,
}

/// How the hostile peer answers header and block requests.
#[derive(Clone)]
pub enum Serve {
    /// An empty list.
    Nothing,
    /// These headers, whatever was asked.
    Headers(Vec<BlockHeader>),
    /// Never: the request is held until it times out.
    Hold,
    /// A full window of these headers, `delay` after each request, one
    /// header further along each time (padding: one new header a reply).
    Slide { headers: Vec<BlockHeader>, delay: Duration },
}

enum Cmd {
    Request(Request),
    Cmpct(CmpctRequest),
    Publish { blocks: bool, data: Vec<u8> },
    PublishCompact(Vec<u8>),
    KadPut(kad::Record),
    KadGet(kad::RecordKey),
}

/// A connected hostile peer.
pub struct RawPeer {
    pub id: PeerId,
    cmds: mpsc::UnboundedSender<Cmd>,
    replies: mpsc::UnboundedReceiver<Result<Response, String>>,
    cmpct_replies: mpsc::UnboundedReceiver<Result<CmpctResponse, String>>,
    /// Compact-relay requests the node sent us (never answered).
    cmpct_asked: mpsc::UnboundedReceiver<CmpctRequest>,
    kad_results: mpsc::UnboundedReceiver<kad::QueryResult>,
    /// The connection to the node was refused or has closed.
    closed: Arc<AtomicBool>,
}

impl RawPeer {
    /// Dials `target`, answering status requests with `status`,
    /// header requests per `headers` and block requests per `blocks`.
    pub async fn connect(target: &str, status: Status, headers: Serve, blocks: Serve) -> RawPeer {
        let spec = ChainSpec::regtest();
        let names = super::super::behaviour::Names::new(&spec).unwrap();
        let config = gossipsub::ConfigBuilder::default()
            .validation_mode(ValidationMode::Anonymous)
            // Content ids, as nodes use: anonymous messages otherwise
            // all share one id and only the first is ever sent.
            .message_id_fn(|m: &gossipsub::Message| {
                gossipsub::MessageId::from(super::super::workers::gossip_id(&m.data).to_vec())
            })
            .max_transmit_size(8 << 20)
            .heartbeat_initial_delay(Duration::from_millis(100))
            .heartbeat_interval(Duration::from_millis(200))
            .build()
            .unwrap();
        let budget = super::super::behaviour::block_reply_budget(&spec);
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
            .unwrap()
            .with_behaviour(|key| Evil {
                gossipsub: gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config).unwrap(),
                sync: request_response::Behaviour::with_codec(
                    SyncCodec::new(spec.max_block_size, budget),
                    [(names.sync.clone(), ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(20))
                        .with_max_concurrent_streams(256),
                ),
                cmpct: request_response::Behaviour::with_codec(
                    CmpctCodec::new(spec.max_block_size),
                    [(names.cmpct.clone(), ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
                ),
                kad: {
                    let id = key.public().to_peer_id();
                    let mut kad = kad::Behaviour::with_config(
                        id,
                        kad::store::MemoryStore::new(id),
                        kad::Config::new(names.kad.clone()),
                    );
                    kad.set_mode(Some(kad::Mode::Client));
                    kad
                },
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        for t in [&names.blocks, &names.txs, &names.cmpct_blocks] {
            swarm.behaviour_mut().gossipsub.subscribe(t).unwrap();
        }
        let id = *swarm.local_peer_id();
        let addr: Multiaddr = target.parse().unwrap();
        let peer = super::super::service::peer_of(&addr).unwrap();
        swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        swarm.dial(addr).unwrap();
        let (cmds, mut cmd_rx) = mpsc::unbounded_channel();
        let (reply_tx, replies) = mpsc::unbounded_channel();
        let (cmpct_reply_tx, cmpct_replies) = mpsc::unbounded_channel();
        let (asked_tx, cmpct_asked) = mpsc::unbounded_channel();
        let (kad_tx, kad_results) = mpsc::unbounded_channel();
        let cmpct_topic: IdentTopic = names.cmpct_blocks.clone();
        let (blocks_topic, txs_topic): (IdentTopic, IdentTopic) = (names.blocks.clone(), names.txs.clone());
        let closed = Arc::new(AtomicBool::new(false));
        let closed_flag = closed.clone();
        tokio::spawn(async move {
            let mut held: Vec<ResponseChannel<Response>> = Vec::new();
            let mut held_cmpct: Vec<ResponseChannel<CmpctResponse>> = Vec::new();
            let mut slid = 0usize;
            let mut delayed: Vec<(tokio::time::Instant, ResponseChannel<Response>, Response)> = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let answer = |serve: &Serve, headers: bool| match serve {
                Serve::Hold => None,
                Serve::Nothing if headers => Some(Response::Headers(Vec::new())),
                Serve::Nothing => Some(Response::Blocks(Vec::new())),
                Serve::Headers(h) => Some(Response::Headers(h.clone())),
                Serve::Slide { .. } => None,
            };
            loop {
                tokio::select! {
                    cmd = cmd_rx.recv() => match cmd {
                        Some(Cmd::Request(r)) => {
                            swarm.behaviour_mut().sync.send_request(&peer, r);
                        }
                        Some(Cmd::Cmpct(r)) => {
                            swarm.behaviour_mut().cmpct.send_request(&peer, r);
                        }
                        Some(Cmd::KadPut(record)) => {
                            let _ = swarm.behaviour_mut().kad.put_record_to(record, std::iter::once(peer), kad::Quorum::One);
                        }
                        Some(Cmd::KadGet(key)) => {
                            swarm.behaviour_mut().kad.get_record(key);
                        }
                        Some(Cmd::PublishCompact(data)) => {
                            let _ = swarm.behaviour_mut().gossipsub.publish(cmpct_topic.clone(), data);
                        }
                        Some(Cmd::Publish { blocks, data }) => {
                            let topic = if blocks { blocks_topic.clone() } else { txs_topic.clone() };
                            let _ = swarm.behaviour_mut().gossipsub.publish(topic, data);
                        }
                        None => return,
                    },
                    _ = tick.tick() => {
                        let now = tokio::time::Instant::now();
                        let (due, later): (Vec<_>, Vec<_>) = delayed.drain(..).partition(|(t, _, _)| *t <= now);
                        delayed = later;
                        for (_, channel, reply) in due {
                            let _ = swarm.behaviour_mut().sync.send_response(channel, reply);
                        }
                    }
                    ev = swarm.select_next_some() => match ev {
                        SwarmEvent::Behaviour(EvilEvent::Sync(request_response::Event::Message { message, .. })) => match message {
                            request_response::Message::Request { request, channel, .. } => {
                                let reply = match request {
                                    Request::Status(_) => Some(Response::Status(status.clone())),
                                    Request::GetHeaders { .. } => match &headers {
                                        Serve::Slide { headers: all, delay } => {
                                            let end = (slid + super::super::codec::MAX_HEADERS).min(all.len());
                                            let window = all[slid.min(end)..end].to_vec();
                                            slid += 1;
                                            let due = tokio::time::Instant::now() + *delay;
                                            delayed.push((due, channel, Response::Headers(window)));
                                            continue;
                                        }
                                        _ => answer(&headers, true),
                                    },
                                    Request::GetBlocks { .. } => answer(&blocks, false),
                                    Request::Malformed(_) => None,
                                };
                                match reply {
                                    Some(r) => {
                                        let _ = swarm.behaviour_mut().sync.send_response(channel, r);
                                    }
                                    None => held.push(channel),
                                }
                            }
                            request_response::Message::Response { response, .. } => {
                                let _ = reply_tx.send(Ok(response));
                            }
                        },
                        SwarmEvent::Behaviour(EvilEvent::Kad(kad::Event::OutboundQueryProgressed { result, .. })) => {
                            // Every step: a record found comes before the last.
                            let _ = kad_tx.send(result);
                        }
                        SwarmEvent::Behaviour(EvilEvent::Sync(request_response::Event::OutboundFailure { error, .. })) => {
                            let _ = reply_tx.send(Err(error.to_string()));
                        }
                        SwarmEvent::Behaviour(EvilEvent::Cmpct(request_response::Event::Message {
                            message: request_response::Message::Response { response, .. },
                            ..
                        })) => {
                            let _ = cmpct_reply_tx.send(Ok(response));
                        }
                        SwarmEvent::Behaviour(EvilEvent::Cmpct(request_response::Event::Message {
                            message: request_response::Message::Request { request, channel, .. },
                            ..
                        })) => {
                            // Held, never answered: the asker's request stays open.
                            held_cmpct.push(channel);
                            let _ = asked_tx.send(request);
                        }
                        SwarmEvent::Behaviour(EvilEvent::Cmpct(request_response::Event::OutboundFailure { error, .. })) => {
                            let _ = cmpct_reply_tx.send(Err(error.to_string()));
                        }
                        // The node's connection only: the peer's Kademlia may
                        // dial others the node names.
                        SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } if peer_id == peer => {
                            closed_flag.store(true, Ordering::Relaxed)
                        }
                        SwarmEvent::OutgoingConnectionError { peer_id: Some(p), .. } if p == peer => {
                            closed_flag.store(true, Ordering::Relaxed)
                        }
                        _ => {}
                    },
                }
            }
        });
        RawPeer { id, cmds, replies, cmpct_replies, cmpct_asked, kad_results, closed }
    }

    /// Whether the node refused or closed our connection.
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Sends a sync request (the reply comes through [`Self::reply`]).
    pub fn request(&self, r: Request) {
        let _ = self.cmds.send(Cmd::Request(r));
    }

    /// The next reply (or failure), within `secs` seconds.
    pub async fn reply(&mut self, secs: u64) -> Option<Result<Response, String>> {
        tokio::time::timeout(Duration::from_secs(secs), self.replies.recv()).await.ok().flatten()
    }

    /// Sends a compact-relay request (the reply comes through
    /// [`Self::cmpct_reply`]).
    pub fn cmpct_request(&self, r: CmpctRequest) {
        let _ = self.cmds.send(Cmd::Cmpct(r));
    }

    /// The next compact-relay reply (or failure), within `secs` seconds.
    pub async fn cmpct_reply(&mut self, secs: u64) -> Option<Result<CmpctResponse, String>> {
        tokio::time::timeout(Duration::from_secs(secs), self.cmpct_replies.recv()).await.ok().flatten()
    }

    /// Stores `record` at the node through Kademlia, returning the result.
    pub async fn kad_put(&mut self, record: kad::Record) -> Option<kad::QueryResult> {
        let _ = self.cmds.send(Cmd::KadPut(record));
        tokio::time::timeout(Duration::from_secs(20), self.kad_results.recv()).await.ok().flatten()
    }

    /// Looks `key` up through Kademlia (this peer's store starts empty):
    /// the query's first step, a record found or how it ended.
    pub async fn kad_get(&mut self, key: kad::RecordKey) -> Option<kad::QueryResult> {
        let _ = self.cmds.send(Cmd::KadGet(key));
        tokio::time::timeout(Duration::from_secs(20), self.kad_results.recv()).await.ok().flatten()
    }

    /// Publishes raw bytes on the compact block topic.
    pub fn publish_compact(&self, data: Vec<u8>) {
        let _ = self.cmds.send(Cmd::PublishCompact(data));
    }

    /// The `getblocktxn` requests the node has sent us so far.
    pub fn blocktxn_asked(&mut self) -> usize {
        let mut n = 0;
        while let Ok(r) = self.cmpct_asked.try_recv() {
            n += usize::from(matches!(r, CmpctRequest::GetBlockTxn { .. }));
        }
        n
    }

    /// Publishes raw bytes on the block or transaction topic.
    pub fn publish(&self, blocks: bool, data: Vec<u8>) {
        let _ = self.cmds.send(Cmd::Publish { blocks, data });
    }
}
