//! The running p2p service over a mock chain, fed by several fake peers,
//! for the `p2p_service` fuzz target (lode-fuzz). The fake peers are the
//! tests' bare libp2p peer (`tests/hostile.rs`): gossip of any bytes and
//! any sync request, over real loopback connections, because the service
//! only hears peers through its swarm. After a sequence of messages the
//! service's queues are read through [`Command::Queues`] and held to their
//! bounds, and once the peers fall silent every backlog must drain to zero
//! (a counter that is never given back would close the queue for good).

#[path = "tests/hostile.rs"]
// Also a module of the p2p tests: both builds need it when tests run with
// the test-support feature on.
#[allow(dead_code, clippy::duplicate_mod)]
mod hostile;

use super::codec::{Request, Status};
use super::mock::MockChain;
pub use super::queues::QueueStats;
use super::{start, P2pConfig, P2pHandle};
use crate::chain_api::NetworkChain;
use crate::testkit::ChainBuilder;
use hostile::{RawPeer, Serve};
use lode_core::block::Block;
use lode_core::crypto::{SecretKey, Signature};
use lode_core::tx::{OutPoint, TxIn, Unlock};
use lode_core::validation::check_header;
use lode_core::{ChainSpec, Hash256, Transaction};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fake peers talking to the service at once.
pub const FAKE_PEERS: usize = 4;
/// Inbound slots of the service: fewer than the fake peers, so that
/// replacing a peer runs eviction.
const MAX_INBOUND: usize = 3;
/// How long the backlogs get to drain once the peers are silent.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// How long a fresh fake peer gets to be connected.
const CONNECT_DEADLINE: Duration = Duration::from_secs(2);

/// One thing a fake peer does.
#[derive(Clone, Debug)]
pub enum Action {
    /// Any bytes on the block (`blocks`) or transaction topic.
    Publish { peer: u8, blocks: bool, data: Vec<u8> },
    /// A block with valid proof of work on branch `branch`: the next one
    /// (extending the branch), or one with a wrong merkle root.
    Block { peer: u8, branch: u8, bad_merkle: bool },
    /// A new branch from branch `branch`'s tip.
    Fork { branch: u8 },
    /// A well-formed transaction spending coins nobody has.
    Tx { peer: u8, tag: u32, inputs: u8 },
    /// A sync request decoded from these bytes (undecodable: malformed).
    Request { peer: u8, bytes: Vec<u8> },
    /// Any bytes on the compact-block topic.
    PublishCompact { peer: u8, data: Vec<u8> },
    /// The compact form of branch `branch`'s next block (valid proof of
    /// work), which the service rebuilds, asking the sender for what its
    /// pool lacks (the fake peers never answer).
    CompactBlock { peer: u8, branch: u8, nonce: u64 },
    /// A compact-relay request (`getblocktxn`, vouch) decoded from these
    /// bytes (undecodable: malformed).
    CompactRequest { peer: u8, bytes: Vec<u8> },
    /// The peer goes and a fresh one (a new identity) takes its slot.
    Replace { peer: u8 },
    /// The peers pause for this many milliseconds.
    Pause { ms: u8 },
}

/// The service under test and its fake peers.
pub struct Harness {
    /// The service.
    pub handle: P2pHandle,
    /// Its chain.
    pub chain: Arc<MockChain>,
    addr: String,
    max_peers: usize,
    peers: Vec<Option<RawPeer>>,
    /// Slots whose fresh peer the service refused during this input (not
    /// tried again: each try waits out the deadline).
    refused: Vec<bool>,
    branches: Vec<ChainBuilder>,
}

impl Harness {
    /// Starts the service on a regtest mock chain, listening on loopback,
    /// keeping its files in `data_dir`.
    pub async fn start(data_dir: &std::path::Path) -> Harness {
        let spec = ChainSpec::regtest();
        let chain = MockChain::new(spec.clone());
        let config = P2pConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr")],
            mdns: false,
            data_dir: data_dir.to_path_buf(),
            status_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            dial_interval: Duration::from_secs(3600),
            max_inbound: MAX_INBOUND,
            max_peers: MAX_INBOUND + 2,
            ..P2pConfig::default()
        };
        let max_peers = config.max_peers;
        let handle = start(config, chain.clone()).await.expect("the p2p service starts");
        let addrs = handle.listen_addresses().await;
        let addr = addrs.into_iter().find(|a| a.contains("127.0.0.1")).expect("a loopback listen address");
        Harness {
            handle,
            chain,
            addr,
            max_peers,
            peers: (0..FAKE_PEERS).map(|_| None).collect(),
            refused: vec![false; FAKE_PEERS],
            branches: vec![ChainBuilder::new(spec)],
        }
    }

    fn status(&self) -> Status {
        let tip = self.chain.tip();
        Status {
            genesis: self.chain.spec().genesis_hash(),
            best_hash: tip.hash,
            height: tip.height.0,
            chainwork: tip.chainwork,
            utxo_commitment: self.chain.utxo_commitment(),
        }
    }

    async fn connected(&self, id: &libp2p::PeerId) -> bool {
        let id = id.to_string();
        self.handle.peers().await.iter().any(|p| p.peer_id == id)
    }

    /// Fake peer `k`, connecting a fresh one when it is missing or gone
    /// (banned, evicted); None if none got in before the deadline (the
    /// service may refuse it: that is not a failure).
    async fn peer(&mut self, k: u8) -> Option<&RawPeer> {
        let k = k as usize % FAKE_PEERS;
        let live = match &self.peers[k] {
            Some(p) => self.connected(&p.id).await,
            None => false,
        };
        if !live {
            if self.refused[k] {
                return None;
            }
            let p = RawPeer::connect(&self.addr, self.status(), Serve::Nothing, Serve::Nothing).await;
            let deadline = Instant::now() + CONNECT_DEADLINE;
            while !self.connected(&p.id).await {
                // Refused (every inbound slot protected): known at once,
                // not after the deadline, which took most of the target's
                // time (inputs ran at 0.2 a second, mostly waiting).
                if p.closed() || Instant::now() > deadline {
                    self.peers[k] = None;
                    self.refused[k] = true;
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // Gossipsub learns the new peer's topics on its own clock.
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.peers[k] = Some(p);
        }
        self.peers[k].as_ref()
    }

    async fn check(&self) -> QueueStats {
        let q = self.handle.queues().await.expect("the service is running");
        if let Err(e) = q.check(self.max_peers) {
            panic!("a p2p queue beyond its bound: {e}");
        }
        q
    }

    /// Runs `actions`, holding every queue to its bound after each, then
    /// waits for the backlogs to drain.
    pub async fn run(&mut self, actions: &[Action]) {
        self.refused.iter_mut().for_each(|r| *r = false);
        for a in actions {
            match a {
                Action::Publish { peer, blocks, data } => {
                    if let Some(p) = self.peer(*peer).await {
                        p.publish(*blocks, data.clone());
                    }
                }
                Action::Block { peer, branch, bad_merkle } => {
                    let b = *branch as usize % self.branches.len();
                    let block = if *bad_merkle { forged(&self.branches[b]) } else { self.branches[b].next_block(0) };
                    if let Some(p) = self.peer(*peer).await {
                        p.publish(true, lode_core::codec::Encode::encode(&block));
                    }
                }
                Action::Fork { branch } => {
                    if self.branches.len() < 4 {
                        let b = *branch as usize % self.branches.len();
                        let tag = self.branches.len() as u32;
                        let fork = self.branches[b].fork(tag);
                        self.branches.push(fork);
                    }
                }
                Action::Tx { peer, tag, inputs } => {
                    let tx = tx(*tag, *inputs);
                    if let Some(p) = self.peer(*peer).await {
                        p.publish(false, lode_core::codec::Encode::encode(&tx));
                    }
                }
                Action::Request { peer, bytes } => {
                    let r = Request::decode(bytes).unwrap_or_else(|e| Request::Malformed(e.to_string()));
                    if let Some(p) = self.peer(*peer).await {
                        p.request(r);
                    }
                }
                Action::PublishCompact { peer, data } => {
                    if let Some(p) = self.peer(*peer).await {
                        p.publish_compact(data.clone());
                    }
                }
                Action::CompactBlock { peer, branch, nonce } => {
                    let b = *branch as usize % self.branches.len();
                    let block = self.branches[b].clone().next_block(0);
                    let compact = super::compact::CompactBlock::from_block(&block, *nonce).encode();
                    if let Some(p) = self.peer(*peer).await {
                        p.publish_compact(compact);
                    }
                }
                Action::CompactRequest { peer, bytes } => {
                    let max = self.chain.spec().max_block_size;
                    let r = super::compact::CmpctRequest::decode(bytes, max)
                        .unwrap_or_else(|e| super::compact::CmpctRequest::Malformed(e.to_string()));
                    if let Some(p) = self.peer(*peer).await {
                        p.cmpct_request(r);
                    }
                }
                Action::Replace { peer } => {
                    self.peers[*peer as usize % FAKE_PEERS] = None;
                }
                Action::Pause { ms } => tokio::time::sleep(Duration::from_millis(u64::from(*ms))).await,
            }
            self.check().await;
        }
        let deadline = Instant::now() + DRAIN_DEADLINE;
        loop {
            let q = self.check().await;
            if q.drained() {
                break;
            }
            assert!(Instant::now() < deadline, "p2p backlogs never drained: {q:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The next block of `builder` with a wrong merkle root and valid proof of
/// work (the builder does not advance).
fn forged(builder: &ChainBuilder) -> Block {
    let mut b = builder.clone();
    let mut block = b.next_block(0);
    block.header.merkle_root = Hash256([0x5a; 32]);
    while check_header(&block.header, &ChainSpec::regtest()).is_err() {
        block.header.nonce = block.header.nonce.wrapping_add(1);
    }
    block
}

/// A well-formed transaction with `inputs` inputs nobody can spend.
fn tx(tag: u32, inputs: u8) -> Transaction {
    let pubkey = SecretKey::from_bytes(&[9; 32]).expect("a valid key").public_key();
    let inputs = (0..u32::from(inputs).max(1))
        .map(|i| {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&tag.to_le_bytes());
            id[4..8].copy_from_slice(&i.to_le_bytes());
            TxIn {
                prevout: OutPoint { txid: Hash256(id), vout: 0 },
                unlock: Unlock::Signature { pubkey, sig: Signature::default() },
            }
        })
        .collect();
    Transaction { version: 1, inputs, outputs: vec![], lock_time: 0 }
}
