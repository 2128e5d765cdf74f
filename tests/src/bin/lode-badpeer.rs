//! `lode-badpeer`: a misbehaving peer for the black-box tests. It dials a
//! node, joins its block gossip and misbehaves in one way (one way per
//! process, so each has its own identity and its own consequence), then
//! waits to be thrown out. Prints its peer id on the first line of stdout.
//!
//! Modes:
//! - `sync`: garbage on the sync protocol (a garbage status reply and a
//!   garbage request);
//! - `garbage`: gossip that does not decode as a block;
//! - `toolarge`: a gossip message 1 KiB over the spec's block size limit
//!   (inside the transport's frame limit, so the node's own checks see it);
//! - `oversized`: a gossip message 100 kB over the block size limit;
//! - `badpow PARENT HEIGHT TIME BITS`: a block on `PARENT` at `HEIGHT`
//!   that is valid in every respect (coinbase committing to the height and
//!   paying the subsidy, merkle root, `TIME`, `BITS`) except that its hash
//!   misses the target. The block's hex is the second line of stdout.
//!
//! Exit status 0 once the node has disconnected it after it misbehaved,
//! 1 if that did not happen within 60 s, 2 for bad arguments.

use futures::StreamExt;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use lode_core::codec::Encode;
use lode_core::pow::CompactTarget;
use lode_core::validation::{check_block, check_header, BlockError};
use lode_core::{Address, Block, ChainSpec, Hash256};
use lode_tests::raw_client::{
    blocks_topic, exit_with, gossip_config, join, protocol_prefix, raw_swarm, target_and_chain, Failure, RawPeerConfig,
    RawPeerEvent, SyncCodec,
};
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: lode-badpeer MULTIADDR CHAIN sync|garbage|toolarge|oversized|badpow PARENT HEIGHT TIME BITS";

/// The `badpow` block: valid but for its proof of work (checked here, so a
/// test relying on it cannot pass for another reason).
fn bad_pow_block(spec: &ChainSpec, args: &mut impl Iterator<Item = String>) -> Result<Block, String> {
    let mut next = |what: &str| args.next().ok_or_else(|| format!("badpow needs {what}; {USAGE}"));
    let parent = Hash256::from_hex(&next("PARENT")?).map_err(|e| format!("PARENT: {e}"))?;
    let height: u32 = next("HEIGHT")?.parse().map_err(|e| format!("HEIGHT: {e}"))?;
    let time: u64 = next("TIME")?.parse().map_err(|e| format!("TIME: {e}"))?;
    let bits = u32::from_str_radix(&next("BITS")?, 16).map_err(|e| format!("BITS (hex): {e}"))?;
    let mut block = lode_tests::block_template(spec, parent, height, time, CompactTarget(bits), Address([0x42; 20]));
    check_block(&block, spec).map_err(|e| format!("the template breaks a block rule: {e}"))?;
    loop {
        match check_header(&block.header, spec) {
            Err(BlockError::HighHash(_)) => return Ok(block),
            Ok(()) => block.header.nonce += 1,
            Err(e) => return Err(format!("the header breaks a rule besides proof of work: {e}")),
        }
    }
}

#[tokio::main]
async fn main() {
    exit_with("lode-badpeer", run().await);
}

async fn run() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let usage = || Failure::Usage(USAGE.to_string());
    let (target, spec) = target_and_chain(&mut args, USAGE)?;
    let mode = args.next().ok_or_else(usage)?;
    // What to gossip, per mode ("sync" only misbehaves on the sync protocol).
    let payloads: Vec<Vec<u8>> = match mode.as_str() {
        "badpow" => vec![bad_pow_block(&spec, &mut args).map_err(Failure::Usage)?.encode()],
        "garbage" => vec![b"definitely not a block".to_vec()],
        "toolarge" => vec![vec![0xab; spec.max_block_size + 1024]],
        "oversized" => vec![vec![0xab; spec.max_block_size + 100_000]],
        "sync" => vec![],
        _ => return Err(usage()),
    };
    let prefix = protocol_prefix(&spec);
    let blocks = blocks_topic(&prefix);
    let mut swarm = raw_swarm(RawPeerConfig {
        prefix,
        gossip: gossip_config(spec.max_block_size * 4).build()?,
        // Unframed bytes under the sync protocol's name, so the node does
        // not drop us as a stranger before it sees what we send.
        codec: SyncCodec::Unframed,
        sync: request_response::Config::default(),
        identify: true,
        idle_timeout: Duration::from_secs(60),
    })?;
    join(&mut swarm, &blocks, target)?;
    // The block's hex second (the dial completes only as the swarm is
    // polled below, so nothing happens in between).
    if mode == "badpow" {
        println!("{}", hex::encode(&payloads[0]));
    }
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
                SwarmEvent::Behaviour(RawPeerEvent::Sync(request_response::Event::Message {
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
                            eprintln!("sent bad message {sent} ({} bytes)", payloads[sent].len());
                            sent += 1;
                        }
                        Err(e) => eprintln!("publish: {e}"),
                    }
                }
            }
        }
    }
    Err(Failure::Other(format!("the node never disconnected us ({sent} bad messages sent)")))
}
