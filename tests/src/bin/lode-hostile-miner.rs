//! `lode-hostile-miner`: a miner that plays against the relay rules, for
//! the black-box tests. It dials one node, joins its block gossip and
//! mines (real proof of work: trivial on regtest) the blocks it is told to
//! on stdin, publishing each on the block topic. One identity for the
//! whole run, so a test can see what each block did to its standing.
//!
//! Commands on stdin, one a line:
//! - `mine KIND PARENT HEIGHT TIME BITS`: a block on `PARENT` at `HEIGHT`
//!   stamped `TIME` with `BITS` (hex), its nonce searched until the hash
//!   meets the target. `KIND` is
//!   - `valid`: a coinbase committing to the height and paying exactly the
//!     subsidy; valid wherever the parent, height, time and bits are right
//!     (use it for low-work side branches and future-stamped blocks);
//!   - `overpay`: the same with the coinbase paying one base unit more
//!     than the subsidy (the block carries no fees): every header and
//!     context-free body rule holds, only connection fails;
//!   - `missing-input`: a valid coinbase and a signed transaction spending
//!     an output that never existed: again only connection fails.
//! - `quit`: exit (as does the end of stdin).
//!
//! Stdout, one line each: the peer id first; per `mine`, `block HASH HEX`
//! once mined, then `published HASH` once handed to gossip (or
//! `error WHY`); `connected` and `disconnected` as the connection to the
//! node comes and goes. Every block is checked here against the
//! context-free rules (header and body) before it is sent, so a test that
//! sees it refused knows it was refused for the fault it carries.
//!
//! Exit status 0 at `quit` or the end of stdin, 2 for bad arguments, 1 on
//! other failures.

use futures::StreamExt;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, PublishError, ValidationMode};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, tcp, yamux, Multiaddr, StreamProtocol};
use lode_core::block::{merkle_root, BlockHeader, BLOCK_VERSION};
use lode_core::codec::Encode;
use lode_core::crypto::{SecretKey, Signature};
use lode_core::pow::CompactTarget;
use lode_core::subsidy::block_subsidy;
use lode_core::validation::{check_block, check_header, BlockError};
use lode_core::{Address, Amount, Block, ChainSpec, Hash256, Height, OutPoint, Transaction, TxIn, TxOut, Unlock};
use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: lode-hostile-miner MULTIADDR CHAIN (commands on stdin: mine valid|overpay|missing-input PARENT HEIGHT TIME BITS, quit)";

/// Where the hostile miner's coinbases pay.
const PAYOUT: Address = Address([0x66; 20]);

/// How long a block may wait for the node to be subscribed to the topic.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(30);

/// Most nonces tried before giving up (a non-regtest target).
const MAX_NONCES: u64 = 1 << 24;

#[derive(NetworkBehaviour)]
struct Hostile {
    identify: identify::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SilentCodec>,
}

/// Claims the sync protocol (a node drops peers that do not speak it) and
/// never answers: requests are read, then dropped.
#[derive(Clone, Default)]
struct SilentCodec;

async fn read_capped<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    io.take(1 << 20).read_to_end(&mut v).await?;
    Ok(v)
}

impl request_response::Codec for SilentCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_capped(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_capped(io).await
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

/// What is wrong with a block, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Valid,
    Overpay,
    MissingInput,
}

/// A parsed `mine` command.
struct Order {
    kind: Kind,
    parent: Hash256,
    height: u32,
    time: u64,
    bits: CompactTarget,
}

fn parse_mine(words: &[&str]) -> Result<Order, String> {
    let [kind, parent, height, time, bits] = words else {
        return Err(format!("mine takes KIND PARENT HEIGHT TIME BITS; got {words:?}"));
    };
    let kind = match *kind {
        "valid" => Kind::Valid,
        "overpay" => Kind::Overpay,
        "missing-input" => Kind::MissingInput,
        other => return Err(format!("unknown kind {other:?}")),
    };
    Ok(Order {
        kind,
        parent: Hash256::from_hex(parent).map_err(|e| format!("PARENT: {e}"))?,
        height: height.parse().map_err(|e| format!("HEIGHT: {e}"))?,
        time: time.parse().map_err(|e| format!("TIME: {e}"))?,
        bits: CompactTarget(u32::from_str_radix(bits, 16).map_err(|e| format!("BITS (hex): {e}"))?),
    })
}

/// A transaction spending an output nobody created (a random txid),
/// signed, paying `value` to the miner.
fn spend_of_nothing(spec: &ChainSpec, value: Amount) -> Transaction {
    let key = SecretKey::generate();
    let txid = Hash256(lode_core::hash::sha256(&key.to_bytes()));
    let mut tx = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prevout: OutPoint { txid, vout: 0 },
            unlock: Unlock::Signature { pubkey: key.public_key(), sig: Signature::default() },
        }],
        outputs: vec![TxOut { value, address: PAYOUT }],
        lock_time: 0,
    };
    let spent = Amount::from_units(value.units() + 10_000);
    tx.sign_inputs(&spec.genesis_hash(), &[&key], &[spent]);
    tx
}

/// Builds and mines the block an order asks for, and checks it breaks no
/// rule it should not.
fn mine(spec: &ChainSpec, order: &Order) -> Result<Block, String> {
    let subsidy = block_subsidy(spec, Height(order.height));
    let pay = match order.kind {
        Kind::Overpay => Amount::from_units(subsidy.units() + 1),
        Kind::Valid | Kind::MissingInput => subsidy,
    };
    let coinbase = Transaction::coinbase(
        Height(order.height),
        b"lode-hostile-miner".to_vec(),
        vec![TxOut { value: pay, address: PAYOUT }],
    );
    let mut transactions = vec![coinbase];
    if order.kind == Kind::MissingInput {
        transactions.push(spend_of_nothing(spec, Amount::from_units(100_000_000)));
    }
    let txids: Vec<Hash256> = transactions.iter().map(Transaction::txid).collect();
    let header = BlockHeader {
        version: BLOCK_VERSION,
        prev_hash: order.parent,
        merkle_root: merkle_root(&txids).0,
        time: order.time,
        bits: order.bits,
        nonce: 0,
    };
    let mut block = Block { header, transactions };
    check_block(&block, spec).map_err(|e| format!("the block breaks a context-free rule: {e}"))?;
    for _ in 0..MAX_NONCES {
        match check_header(&block.header, spec) {
            Ok(()) => return Ok(block),
            Err(BlockError::HighHash(_)) => block.header.nonce += 1,
            Err(e) => return Err(format!("the header breaks a rule besides proof of work: {e}")),
        }
    }
    Err(format!("no nonce below {MAX_NONCES} meets the target"))
}

#[tokio::main]
async fn main() {
    match run().await {
        Ok(()) => {}
        Err(Failure::Usage(e)) => {
            eprintln!("lode-hostile-miner: {e}\n{USAGE}");
            std::process::exit(2);
        }
        Err(Failure::Other(e)) => {
            eprintln!("lode-hostile-miner: {e}");
            std::process::exit(1);
        }
    }
}

enum Failure {
    Usage(String),
    Other(String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::Other(e.to_string())
    }
}

/// A block waiting to be handed to gossip.
struct Pending {
    hash: Hash256,
    bytes: Vec<u8>,
    deadline: Instant,
}

async fn run() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let usage = || Failure::Usage("missing arguments".to_string());
    let target: Multiaddr = args.next().ok_or_else(usage)?.parse().map_err(|e| Failure::Usage(format!("{e}")))?;
    let spec = ChainSpec::builtin(&args.next().ok_or_else(usage)?).map_err(|e| Failure::Usage(e.to_string()))?;
    let genesis = spec.genesis_hash().to_hex();
    let prefix = format!("/lode/{}/{}", spec.network_id, &genesis[..16]);
    let blocks = IdentTopic::new(format!("{prefix}/blocks/1"));
    let config = gossipsub::ConfigBuilder::default()
        // As the nodes: anonymous, content-addressed messages (so two
        // blocks never share an id and a block is never sent twice).
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(|m: &gossipsub::Message| MessageId::from(lode_core::hash::sha256(&m.data).to_vec()))
        .max_transmit_size(spec.max_block_size * 2)
        .heartbeat_initial_delay(Duration::from_millis(100))
        .heartbeat_interval(Duration::from_millis(200))
        .build()?;
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)?
        .with_behaviour(|key| {
            Ok(Hostile {
                identify: identify::Behaviour::new(identify::Config::new(prefix.clone(), key.public())),
                gossipsub: gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config.clone())?,
                sync: request_response::Behaviour::with_codec(
                    SilentCodec,
                    [(StreamProtocol::try_from_owned(format!("{prefix}/sync/1"))?, ProtocolSupport::Full)],
                    request_response::Config::default(),
                ),
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    println!("{}", swarm.local_peer_id());
    swarm.behaviour_mut().gossipsub.subscribe(&blocks)?;
    swarm.dial(target)?;

    // Stdin on a thread of its own; its end closes the channel.
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { return Ok(()) };
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.split_first() {
                    Some((&"quit", _)) => return Ok(()),
                    Some((&"mine", rest)) => match parse_mine(rest).and_then(|o| mine(&spec, &o)) {
                        Ok(block) => {
                            let hash = block.hash();
                            let bytes = block.encode();
                            println!("block {hash} {}", hex::encode(&bytes));
                            queue.push_back(Pending { hash, bytes, deadline: Instant::now() + PUBLISH_DEADLINE });
                        }
                        Err(e) => println!("error {e}"),
                    },
                    None => {}
                    Some(_) => println!("error unknown command {line:?}"),
                }
            }
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::ConnectionEstablished { num_established, .. } if num_established.get() == 1 => {
                    println!("connected");
                }
                SwarmEvent::ConnectionClosed { num_established: 0, cause, .. } => {
                    eprintln!("connection closed: {cause:?}");
                    println!("disconnected");
                }
                other => eprintln!("{other:?}"),
            },
            _ = tick.tick() => {
                // In order: a block's parent goes out before it.
                while let Some(p) = queue.front() {
                    match swarm.behaviour_mut().gossipsub.publish(blocks.clone(), p.bytes.clone()) {
                        Ok(_) => println!("published {}", p.hash),
                        // Nobody (yet) subscribed: try again at the next tick.
                        Err(PublishError::NoPeersSubscribedToTopic) if Instant::now() < p.deadline => break,
                        Err(e) => println!("error publishing {}: {e}", p.hash),
                    }
                    queue.pop_front();
                }
            }
        }
    }
}
