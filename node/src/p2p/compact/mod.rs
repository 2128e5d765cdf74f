//! Compact block relay, Lode's BIP152: a block travels as its header,
//! 6-byte short ids of its transactions (SipHash-2-4 keyed by the header
//! and a nonce) and the coinbase; receivers rebuild it from their mempool
//! and a small pool of recent extra transactions, ask the sender only for
//! what they lack (`getblocktxn` / `blocktxn`), and fall back to the full
//! block on a short-id collision or a merkle mismatch.
//!
//! Relay is BIP152's high-bandwidth mode over gossipsub: a compact block is
//! forwarded (reported `Accept`) as soon as its header's proof of work and
//! context are valid, it extends our tip and it has been rebuilt (so we
//! can answer `getblocktxn` for it), before the chain connects it. A
//! forwarder therefore answers only for the header: when the body later
//! fails, nobody who relayed it compact is penalised. The node that made
//! it is: whoever announces a block it connected itself (its own, or one
//! that reached it whole) vouches for it to each compact peer over
//! `<prefix>/cmpct/1`, and a vouched block that fails costs the voucher
//! the invalid-block penalty.
//!
//! `encoding` holds the wire forms, `reconstruct` the rebuilding,
//! `extra` the extra pool and `siphash` the short-id hash; the service's
//! handlers live in `requests/compact.rs`.

pub mod encoding;
pub mod extra;
pub mod reconstruct;
pub mod siphash;
#[cfg(test)]
mod tests;

use crate::p2p::workers::SeenIds;
use libp2p::gossipsub::MessageId;
use libp2p::request_response::OutboundRequestId;
use libp2p::PeerId;
use lode_core::block::Block;
use lode_core::codec::DecodeError;
use lode_core::Hash256;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use encoding::{CmpctCodec, CmpctRequest, CmpctResponse, CompactBlock};
pub use extra::ExtraPool;
pub use reconstruct::PartialBlock;

/// Compact blocks being rebuilt at once; more are ignored (the block
/// still arrives through sync).
pub const MAX_PENDING: usize = 16;
/// Of those, rebuilds one peer's compact blocks may hold: a peer that
/// never answers `getblocktxn` cannot take every slot.
pub const MAX_PENDING_PER_PEER: usize = 4;
/// Other peers' copies kept per block being rebuilt (with the first
/// sender's, three peers per block, as Bitcoin Core allows).
pub const MAX_ALTERNATES: usize = 2;
/// Rebuilt or announced blocks kept to answer `getblocktxn` from memory.
pub const RECENT_BLOCKS: usize = 8;
/// Blocks remembered as relayed compact (not announced again).
pub const HANDLED_BLOCKS: usize = 1024;
/// Blocks whose vouchers are remembered.
pub const VOUCHED_BLOCKS: usize = 256;
/// Vouchers remembered per block.
pub const VOUCHERS_PER_BLOCK: usize = 16;
/// Blocks one vouch request names at most. A node that connects blocks
/// faster than a round trip (a miner's burst, a catch-up) keeps one vouch
/// request in flight per peer and coalesces the rest, newest kept: one
/// request per block would read as a request flood and get it banned.
pub const MAX_VOUCH_HASHES: usize = 16;
/// Compact-relayed blocks remembered as invalid (a late vouch for one is
/// charged at once).
pub const INVALID_REMEMBERED: usize = 1024;

/// Why a compact block or message cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The bytes do not decode.
    #[error("undecodable: {0}")]
    Decode(#[from] DecodeError),
    /// More transactions than a block of the spec's size can hold.
    #[error("{count} transactions, more than a block can hold ({max})")]
    TooManyTransactions {
        /// Claimed.
        count: usize,
        /// Most possible.
        max: usize,
    },
    /// No transaction at all (a block has at least its coinbase).
    #[error("no transactions")]
    Empty,
    /// A prefilled index beyond the block.
    #[error("prefilled index {index} outside a block of {count} transactions")]
    PrefilledIndex {
        /// The index.
        index: u32,
        /// Transactions in the block.
        count: usize,
    },
    /// Prefilled indexes that do not increase.
    #[error("prefilled index {0} does not follow the previous one")]
    PrefilledOrder(u32),
    /// `getblocktxn` indexes that do not increase.
    #[error("requested index {0} does not follow the previous one")]
    IndexOrder(u32),
    /// Two transactions of the compact block share a short id.
    #[error("short id collision inside the compact block")]
    ShortIdCollision,
    /// A `blocktxn` reply with the wrong number of transactions.
    #[error("expected {expected} transactions, got {got}")]
    WrongTxCount {
        /// Asked for.
        expected: usize,
        /// Received.
        got: usize,
    },
    /// The rebuilt block's merkle root differs from its header's.
    #[error("rebuilt block does not match its merkle root")]
    MerkleMismatch,
}

/// Counters of compact relay, read by `/metrics` and the propagation
/// benchmark (bytes are message payloads as first delivered: gossipsub's
/// duplicate copies are dropped before the node sees them).
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Compact blocks received by gossip.
    pub compact_blocks: AtomicU64,
    /// Bytes of compact blocks and `blocktxn` replies received.
    pub compact_bytes: AtomicU64,
    /// Bytes of full blocks received (block gossip and sync replies,
    /// compact fallbacks included).
    pub full_block_bytes: AtomicU64,
    /// Blocks rebuilt from compact blocks.
    pub reconstructed: AtomicU64,
    /// Transactions of rebuilt blocks found in our mempool or extra pool.
    pub txs_from_pool: AtomicU64,
    /// Transactions fetched with `getblocktxn`.
    pub txs_fetched: AtomicU64,
    /// Full blocks asked for after a collision or merkle mismatch.
    pub fallbacks: AtomicU64,
    /// Compact blocks forwarded before their block was connected.
    pub fast_relayed: AtomicU64,
    /// Vouch requests received (each may carry several blocks).
    pub vouch_requests: AtomicU64,
    /// Blocks this node announced to its peers (made or relayed here, or
    /// the newest block of a catch-up).
    pub blocks_announced: AtomicU64,
}

/// A snapshot of [`RelayCounters`].
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RelayStats {
    /// Compact blocks received by gossip.
    pub compact_blocks: u64,
    /// Bytes of compact blocks and `blocktxn` replies received.
    pub compact_bytes: u64,
    /// Bytes of full blocks received.
    pub full_block_bytes: u64,
    /// Blocks rebuilt from compact blocks.
    pub reconstructed: u64,
    /// Transactions found in our own pools.
    pub txs_from_pool: u64,
    /// Transactions fetched with `getblocktxn`.
    pub txs_fetched: u64,
    /// Full blocks asked for after a collision or merkle mismatch.
    pub fallbacks: u64,
    /// Compact blocks forwarded before they were connected.
    pub fast_relayed: u64,
    /// Vouch requests received.
    pub vouch_requests: u64,
    /// Blocks this node announced to its peers.
    pub blocks_announced: u64,
}

impl RelayCounters {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Current values.
    pub fn snapshot(&self) -> RelayStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RelayStats {
            compact_blocks: get(&self.compact_blocks),
            compact_bytes: get(&self.compact_bytes),
            full_block_bytes: get(&self.full_block_bytes),
            reconstructed: get(&self.reconstructed),
            txs_from_pool: get(&self.txs_from_pool),
            txs_fetched: get(&self.txs_fetched),
            fallbacks: get(&self.fallbacks),
            fast_relayed: get(&self.fast_relayed),
            vouch_requests: get(&self.vouch_requests),
            blocks_announced: get(&self.blocks_announced),
        }
    }
}

/// A compact block being rebuilt.
#[derive(Debug)]
pub struct Pending {
    /// Its header.
    pub header: lode_core::block::BlockHeader,
    /// Transactions in the block.
    pub tx_count: usize,
    /// Every transaction has been asked for (the rebuild failed once).
    pub fallback: bool,
    /// Who sent it to us (asked for missing transactions).
    pub source: PeerId,
    /// Its gossip message, reported once.
    pub msg: Option<MessageId>,
    /// It extends our tip: forwarded once rebuilt, before connecting.
    pub fast: bool,
    /// Rebuilding, waiting for `blocktxn`.
    pub partial: Option<PartialBlock>,
    /// When it arrived.
    pub since: Instant,
    /// The same block from other peers, unreported, oldest first: the
    /// rebuild moves to the next when its source fails us without fault
    /// (no reply, an empty one), so a peer that relays a block first and
    /// then stays silent cannot hold it back from us.
    pub alternates: Vec<Alternate>,
}

/// Another peer's compact form of a block being rebuilt.
#[derive(Debug)]
pub struct Alternate {
    /// Who sent it.
    pub source: PeerId,
    /// Its gossip message, reported when the rebuild ends.
    pub msg: MessageId,
    /// Its compact block (short ids keyed by its own nonce).
    pub compact: CompactBlock,
}

/// What a compact block's blocking preparation found.
#[derive(Debug)]
pub enum Prepared {
    /// We already have the block (or know it invalid).
    AlreadyHave,
    /// The header breaks a rule in context (bits, time).
    HeaderInvalid(String),
    /// The header's parent is unknown.
    Orphan,
    /// The header's chain is too light to store.
    LowWork,
    /// The header is stored but would not be our new tip: no rebuild (a
    /// known header skips the anti-DoS work check, so a peer could
    /// otherwise have us rebuild stale blocks for free).
    NotBest,
    /// Rebuilding started (maybe already complete).
    Started(Result<PartialBlock, CompactError>),
}

/// The service's compact relay state.
pub struct Relay {
    /// Relay blocks compact (off with `--no-compact-blocks`: full blocks only).
    pub enabled: bool,
    /// Blocks being rebuilt.
    pub pending: HashMap<Hash256, Pending>,
    /// `getblocktxn` requests in flight.
    pub txn_requests: HashMap<OutboundRequestId, Hash256>,
    /// Rebuilt or announced blocks, newest last, to serve `getblocktxn`.
    recent: VecDeque<Arc<Block>>,
    /// Blocks whose compact form we have relayed or are handling: never
    /// announced again as a new compact message.
    pub handled: SeenIds,
    /// Blocks made here and relayed before they were connected, newest
    /// last: vouched for once they connect.
    pub made_here: VecDeque<Hash256>,
    /// Peers that vouched for blocks (see the module doc).
    vouchers: HashMap<Hash256, Vec<PeerId>>,
    vouch_order: VecDeque<Hash256>,
    /// Our vouches waiting for a peer's previous vouch request to finish.
    vouch_queue: HashMap<PeerId, VecDeque<Hash256>>,
    /// Our vouch requests in flight, one per peer at most.
    pub vouch_requests: HashMap<OutboundRequestId, PeerId>,
    /// Compact-relayed blocks found invalid.
    pub invalid: SeenIds,
    /// Recent transactions not in the mempool, for rebuilding.
    pub extra: Arc<Mutex<ExtraPool>>,
    /// Counters for metrics.
    pub counters: Arc<RelayCounters>,
}

impl Relay {
    /// Empty state.
    pub fn new(enabled: bool, counters: Arc<RelayCounters>) -> Relay {
        Relay {
            enabled,
            pending: HashMap::new(),
            txn_requests: HashMap::new(),
            recent: VecDeque::new(),
            handled: SeenIds::with_capacity(HANDLED_BLOCKS),
            made_here: VecDeque::new(),
            vouchers: HashMap::new(),
            vouch_order: VecDeque::new(),
            vouch_queue: HashMap::new(),
            vouch_requests: HashMap::new(),
            invalid: SeenIds::with_capacity(INVALID_REMEMBERED),
            extra: Arc::new(Mutex::new(ExtraPool::default())),
            counters,
        }
    }

    /// Keeps `block` to answer `getblocktxn` for it.
    pub fn remember(&mut self, block: Arc<Block>) {
        let hash = block.hash();
        if self.recent.iter().any(|b| b.hash() == hash) {
            return;
        }
        self.recent.push_back(block);
        while self.recent.len() > RECENT_BLOCKS {
            self.recent.pop_front();
        }
    }

    /// A block kept in memory.
    pub fn recent(&self, hash: &Hash256) -> Option<Arc<Block>> {
        self.recent.iter().rev().find(|b| b.hash() == *hash).cloned()
    }

    /// Records that `peer` vouched for `hash`.
    pub fn vouch(&mut self, hash: Hash256, peer: PeerId) {
        if !self.vouchers.contains_key(&hash) {
            self.vouch_order.push_back(hash);
            while self.vouch_order.len() > VOUCHED_BLOCKS {
                if let Some(old) = self.vouch_order.pop_front() {
                    self.vouchers.remove(&old);
                }
            }
        }
        let list = self.vouchers.entry(hash).or_default();
        if list.len() < VOUCHERS_PER_BLOCK && !list.contains(&peer) {
            list.push(peer);
        }
    }

    /// Queues our vouch for `hash` to `peer` (the oldest dropped beyond
    /// [`MAX_VOUCH_HASHES`]).
    pub fn queue_vouch(&mut self, peer: PeerId, hash: Hash256) {
        let queue = self.vouch_queue.entry(peer).or_default();
        queue.push_back(hash);
        while queue.len() > MAX_VOUCH_HASHES {
            queue.pop_front();
        }
    }

    /// The vouches to send `peer` now: none while one of ours is in flight.
    pub fn take_vouches(&mut self, peer: &PeerId) -> Option<Vec<Hash256>> {
        if self.vouch_requests.values().any(|p| p == peer) {
            return None;
        }
        let queue = self.vouch_queue.remove(peer)?;
        (!queue.is_empty()).then(|| queue.into_iter().collect())
    }

    /// Forgets what was waiting for a peer that left.
    pub fn peer_gone(&mut self, peer: &PeerId) {
        self.vouch_queue.remove(peer);
        self.vouch_requests.retain(|_, p| p != peer);
    }

    /// Peers that vouched for `hash` (forgotten once taken).
    pub fn take_vouchers(&mut self, hash: &Hash256) -> Vec<PeerId> {
        self.vouchers.remove(hash).unwrap_or_default()
    }
}
