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
use libp2p::gossipsub::PublishError;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use lode_core::block::{merkle_root, BlockHeader, BLOCK_VERSION};
use lode_core::codec::Encode;
use lode_core::crypto::{SecretKey, Signature};
use lode_core::pow::CompactTarget;
use lode_core::subsidy::block_subsidy;
use lode_core::validation::{check_block, check_header, BlockError};
use lode_core::{Address, Amount, Block, ChainSpec, Hash256, Height, OutPoint, Transaction, TxIn, TxOut, Unlock};
use lode_tests::raw_client::{
    blocks_topic, exit_with, gossip_config, join, protocol_prefix, raw_swarm, target_and_chain, Failure, RawPeerConfig,
    SyncCodec,
};
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
    // Usage failures also print the usage (the missing-argument message
    // alone does not say what is expected).
    let outcome = run().await.map_err(|f| match f {
        Failure::Usage(e) => Failure::Usage(format!("{e}\n{USAGE}")),
        other => other,
    });
    exit_with("lode-hostile-miner", outcome);
}

/// A block waiting to be handed to gossip.
struct Pending {
    hash: Hash256,
    bytes: Vec<u8>,
    deadline: Instant,
}

async fn run() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let (target, spec) = target_and_chain(&mut args, "missing arguments")?;
    let prefix = protocol_prefix(&spec);
    let blocks = blocks_topic(&prefix);
    let mut gossip = gossip_config(spec.max_block_size * 2);
    // The first heartbeat soon, so the mesh (and the first publish) does
    // not wait the default five seconds.
    gossip.heartbeat_initial_delay(Duration::from_millis(100));
    let mut swarm = raw_swarm(RawPeerConfig {
        prefix,
        gossip: gossip.build()?,
        // Claims the sync protocol (a node drops peers that do not speak
        // it) and never answers: requests are read, then dropped.
        codec: SyncCodec::Unframed,
        sync: request_response::Config::default(),
        identify: true,
        idle_timeout: Duration::from_secs(300),
    })?;
    join(&mut swarm, &blocks, target)?;

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
