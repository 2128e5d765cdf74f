//! `lode-hostile`: a hostile peer for the black-box tests of issue 13. It
//! speaks the node's sync protocol and gossip correctly enough to stay
//! connected and abuses them in one way per process. Prints its peer id on
//! the first line of stdout, then what the mode reports.
//!
//! Usage: `lode-hostile MULTIADDR CHAIN MODE [ARGS]`. Modes:
//! - `liar BLOCK_HEX`: claims a chain of a million blocks with enormous
//!   work, answers every header request with the header of `BLOCK_HEX` (a
//!   block the node already has) and never answers block requests. Runs
//!   until killed.
//! - `dupblocks HASH COUNT PARALLEL`: sends `PARALLEL` block requests at
//!   once, each naming `HASH` `COUNT` times (at most 128); prints
//!   `reply BLOCKS BYTES` for each answer (`failed WHY` for a refusal),
//!   then exits.
//! - `txflood SECS SIZE RATE`: publishes distinct well-formed transactions
//!   of at least `SIZE` bytes that spend outputs nobody has, `RATE` a
//!   second for `SECS` seconds; prints `sent N`, then exits.
//!
//! Exit status 0 when the mode ran, 1 on a failure, 2 for bad arguments.

use futures::StreamExt;
use libp2p::gossipsub;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use lode_core::codec::{put_len, put_u32, Decode, Encode, Reader};
use lode_core::crypto::{SecretKey, Signature};
use lode_core::tx::{OutPoint, TxIn, TxOut, Unlock};
use lode_core::{Address, Amount, Block, ChainSpec, Hash256, Transaction};
use lode_tests::raw_client::{
    exit_with, gossip_config, join, protocol_prefix, raw_swarm, target_and_chain, tx_topic, Failure, RawPeerConfig,
    RawPeerEvent, SyncCodec,
};
use std::time::{Duration, Instant};

/// Largest frame read from the node (a block reply is at most a few MB).
const READ_LIMIT: usize = 64 << 20;
/// Sync protocol message tags.
const TAG_STATUS: u8 = 0;
const TAG_GET_HEADERS: u8 = 1;
const TAG_GET_BLOCKS: u8 = 2;

/// A status body: genesis, tip hash, height, chainwork (big-endian),
/// UTXO commitment.
fn status(genesis: Hash256, best: Hash256, height: u32, work: [u8; 32]) -> Vec<u8> {
    let mut out = vec![TAG_STATUS];
    out.extend_from_slice(&genesis.0);
    out.extend_from_slice(&best.0);
    put_u32(&mut out, height);
    out.extend_from_slice(&work);
    out.extend_from_slice(&[0u8; 32]);
    out
}

/// A `Blocks` reply body's block count and total block bytes.
fn blocks_reply(body: &[u8], max_block_size: usize) -> Result<(usize, usize), String> {
    let mut r = Reader::new(body);
    if r.u8().map_err(|e| e.to_string())? != TAG_GET_BLOCKS {
        return Err("not a blocks reply".into());
    }
    let n = r.u32().map_err(|e| e.to_string())? as usize;
    let mut bytes = 0;
    for _ in 0..n {
        let len = r.u32().map_err(|e| e.to_string())? as usize;
        let body = r.take(len).map_err(|e| e.to_string())?;
        Block::decode_all(body, max_block_size).map_err(|e| e.to_string())?;
        bytes += len;
    }
    Ok((n, bytes))
}

/// A well-formed transaction of at least `size` bytes spending outputs
/// nobody has (distinct per `tag`).
fn junk_tx(tag: u64, size: usize, key: &SecretKey) -> Transaction {
    let pubkey = key.public_key();
    let mut tx = Transaction {
        version: 1,
        inputs: Vec::new(),
        outputs: vec![TxOut { value: Amount::from_units(1000), address: Address([7; 20]) }],
        lock_time: 0,
    };
    let one = TxIn {
        prevout: OutPoint { txid: Hash256::ZERO, vout: 0 },
        unlock: Unlock::Signature { pubkey, sig: Signature::default() },
    };
    let empty = tx.encoded_size();
    tx.inputs.push(one.clone());
    let per_input = tx.encoded_size().saturating_sub(empty).max(1);
    tx.inputs.clear();
    let count = size.saturating_sub(empty) / per_input + 1;
    for i in 0..count as u64 {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&tag.to_le_bytes());
        id[8..16].copy_from_slice(&i.to_le_bytes());
        tx.inputs.push(TxIn { prevout: OutPoint { txid: Hash256(id), vout: 0 }, ..one.clone() });
    }
    tx
}

const USAGE: &str =
    "usage: lode-hostile MULTIADDR CHAIN liar BLOCK_HEX | dupblocks HASH COUNT PARALLEL | txflood SECS SIZE RATE";

#[tokio::main]
async fn main() {
    exit_with("lode-hostile", run().await);
}

enum Mode {
    Liar { header: Vec<u8> },
    DupBlocks { hash: Hash256, count: usize, parallel: usize },
    TxFlood { secs: u64, size: usize, rate: u64 },
}

fn parse_mode(args: &mut impl Iterator<Item = String>, spec: &ChainSpec) -> Result<Mode, Failure> {
    let mut next = |what: &str| args.next().ok_or_else(|| Failure::Usage(format!("missing {what}; {USAGE}")));
    let num = |s: String, what: &str| s.parse::<u64>().map_err(|e| Failure::Usage(format!("{what}: {e}")));
    match next("MODE")?.as_str() {
        "liar" => {
            let bytes = hex::decode(next("BLOCK_HEX")?).map_err(|e| Failure::Usage(format!("BLOCK_HEX: {e}")))?;
            let block = Block::decode_all(&bytes, spec.max_block_size).map_err(|e| Failure::Usage(e.to_string()))?;
            Ok(Mode::Liar { header: block.header.to_bytes().to_vec() })
        }
        "dupblocks" => {
            let hash = Hash256::from_hex(&next("HASH")?).map_err(|e| Failure::Usage(format!("HASH: {e}")))?;
            let count = num(next("COUNT")?, "COUNT")? as usize;
            let parallel = num(next("PARALLEL")?, "PARALLEL")? as usize;
            Ok(Mode::DupBlocks { hash, count, parallel })
        }
        "txflood" => {
            let secs = num(next("SECS")?, "SECS")?;
            let size = num(next("SIZE")?, "SIZE")? as usize;
            let rate = num(next("RATE")?, "RATE")?.max(1);
            Ok(Mode::TxFlood { secs, size, rate })
        }
        _ => Err(Failure::Usage(USAGE.into())),
    }
}

async fn run() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let (target, spec) = target_and_chain(&mut args, USAGE)?;
    let mode = parse_mode(&mut args, &spec)?;
    let node = target
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::P2p(id) => Some(id),
            _ => None,
        })
        .ok_or_else(|| Failure::Usage("MULTIADDR must end in /p2p/<peer id>".into()))?;

    let genesis = spec.genesis_hash();
    let prefix = protocol_prefix(&spec);
    let txs = tx_topic(&prefix);
    let mut swarm = raw_swarm(RawPeerConfig {
        prefix,
        gossip: gossip_config(4 << 20).build()?,
        codec: SyncCodec::Framed { limit: READ_LIMIT },
        sync: request_response::Config::default()
            .with_request_timeout(Duration::from_secs(30))
            .with_max_concurrent_streams(256),
        // Without identify, as this peer always ran: the node must cope
        // with peers that never announce themselves.
        identify: false,
        idle_timeout: Duration::from_secs(120),
    })?;
    join(&mut swarm, &txs, target)?;

    // What we tell the node about our chain.
    let our_status = match &mode {
        Mode::Liar { .. } => {
            let mut work = [0u8; 32];
            work[8] = 1;
            status(genesis, Hash256([0x77; 32]), 1_000_000, work)
        }
        _ => status(genesis, genesis, 0, [0u8; 32]),
    };
    let mut held: Vec<ResponseChannel<Vec<u8>>> = Vec::new();
    let mut connected = false;
    let mut node_subscribed = false;
    let mut replies = 0usize;
    let mut sent = 0u64;
    let mut flood_started: Option<Instant> = None;
    let key = SecretKey::generate();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == node => {
                    connected = true;
                    if let Mode::DupBlocks { hash, count, parallel } = &mode {
                        let mut body = vec![TAG_GET_BLOCKS];
                        put_len(&mut body, *count);
                        for _ in 0..*count {
                            body.extend_from_slice(&hash.0);
                        }
                        for _ in 0..*parallel {
                            swarm.behaviour_mut().sync.send_request(&node, body.clone());
                        }
                    }
                }
                SwarmEvent::ConnectionClosed { num_established: 0, .. } if connected => {
                    return Err(Failure::Other("the node disconnected us".into()));
                }
                SwarmEvent::Behaviour(RawPeerEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic }))
                    if peer_id == node && topic == txs.hash() => node_subscribed = true,
                SwarmEvent::Behaviour(RawPeerEvent::Sync(request_response::Event::Message { message, .. })) => match message {
                    request_response::Message::Request { request, channel, .. } => {
                        let reply = match (request.first().copied(), &mode) {
                            (Some(TAG_STATUS), _) => Some(our_status.clone()),
                            (Some(TAG_GET_HEADERS), Mode::Liar { header }) => {
                                let mut out = vec![TAG_GET_HEADERS];
                                put_len(&mut out, 1);
                                out.extend_from_slice(header);
                                Some(out)
                            }
                            (Some(TAG_GET_HEADERS), _) => Some(vec![TAG_GET_HEADERS, 0, 0, 0, 0]),
                            (Some(TAG_GET_BLOCKS), Mode::Liar { .. }) => None,
                            (Some(TAG_GET_BLOCKS), _) => Some(vec![TAG_GET_BLOCKS, 0, 0, 0, 0]),
                            _ => None,
                        };
                        match reply {
                            Some(r) => {
                                let _ = swarm.behaviour_mut().sync.send_response(channel, r);
                            }
                            // Never answered: the node waits on us.
                            None => held.push(channel),
                        }
                    }
                    request_response::Message::Response { response, .. } => {
                        match blocks_reply(&response, spec.max_block_size) {
                            Ok((n, bytes)) => println!("reply {n} {bytes}"),
                            Err(e) => println!("failed {e}"),
                        }
                        replies += 1;
                    }
                },
                SwarmEvent::Behaviour(RawPeerEvent::Sync(request_response::Event::OutboundFailure { error, .. })) => {
                    println!("failed {}", error.to_string().replace(' ', "_"));
                    replies += 1;
                }
                _ => {}
            },
            _ = tick.tick() => {
                if let Mode::TxFlood { secs, size, rate } = &mode {
                    if !node_subscribed {
                        continue;
                    }
                    let started = *flood_started.get_or_insert_with(Instant::now);
                    let elapsed = started.elapsed();
                    if elapsed >= Duration::from_secs(*secs) {
                        println!("sent {sent}");
                        return Ok(());
                    }
                    // Keep to the rate: publish what is due by now.
                    let due = (elapsed.as_secs_f64() * *rate as f64) as u64;
                    while sent < due {
                        let tx = junk_tx(sent, *size, &key);
                        match swarm.behaviour_mut().gossipsub.publish(txs.clone(), tx.encode()) {
                            Ok(_) => {}
                            Err(e) => eprintln!("publish: {e}"),
                        }
                        sent += 1;
                    }
                }
            }
        }
        if let Mode::DupBlocks { parallel, .. } = &mode {
            if replies >= *parallel {
                return Ok(());
            }
        }
    }
    Err(Failure::Other("timed out".into()))
}
