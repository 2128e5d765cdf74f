//! What the network layer needs from the chain and the mempool. The node
//! implements this over its chain state; p2p code depends only on this trait
//! so it can be tested with a mock.

use lode_core::block::{Block, BlockHeader};
use lode_core::pow::Work;
use lode_core::{ChainSpec, Hash256, Height, Transaction};
use std::collections::HashSet;
use std::sync::Arc;

pub use crate::chain::BlockSource;

/// A chain tip or best header, as peers exchange it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TipInfo {
    /// Block hash.
    pub hash: Hash256,
    /// Height.
    pub height: Height,
    /// Cumulative work up to and including the block.
    pub chainwork: Work,
    /// The block header's timestamp (unix seconds): how recent the chain is.
    pub time: u64,
}

/// Result of offering a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// Stored and valid as far as checked; `new_tip` when it is now on the
    /// active chain (only then is it relayed).
    Accepted {
        /// Whether the best chain changed.
        new_tip: bool,
    },
    /// Already stored (or already known invalid: see `Invalid`).
    AlreadyHave,
    /// Unrequested, on a branch with less work than our tip: not stored,
    /// not relayed, and no fault of the sender's (it may have been first).
    LowWork,
    /// The parent is unknown; the block is held in the orphan pool.
    Orphan {
        /// The parent to fetch.
        missing_parent: Hash256,
    },
    /// Breaks a consensus rule: the sender misbehaved.
    Invalid(String),
    /// Not invalid but not usable now (timestamp too far ahead).
    Deferred(String),
}

/// Result of offering a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxOutcome {
    /// Entered the mempool.
    Accepted,
    /// Already in the mempool or the chain.
    AlreadyHave,
    /// Breaks a consensus rule (bad signature, overspend): penalise the sender.
    Invalid(String),
    /// Valid but refused by local policy (fee, conflict, missing parent): ignore.
    Rejected(String),
}

/// Result of offering headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadersOutcome {
    /// Headers connected to the header tree (`new` of them were unknown).
    Accepted {
        /// Headers that were new.
        new: usize,
    },
    /// The first header's parent is unknown.
    Unconnected,
    /// Valid, but the chain they end has too little work to be stored yet
    /// (below the anti-DoS threshold): offer them again with the next batch.
    LowWork,
    /// A header breaks a rule (bad proof of work, bits, time).
    Invalid(String),
}

/// Something peers should hear about.
#[derive(Clone, Debug)]
pub enum ChainEvent {
    /// A block was accepted (mined here or received), announce it.
    Block(Arc<Block>),
    /// A block made here or handed to this node (mined, `submitblock`,
    /// `generatetoaddress`) extends the tip and passed its header checks
    /// in context and the context-free body checks; it is being connected.
    /// Relayed compact at once, as Bitcoin Core's `NewPoWValidBlock`
    /// (BIP152 high-bandwidth mode); a `Block` event follows if it connects.
    Prevalidated(Arc<Block>),
    /// A transaction entered the mempool, announce it.
    Tx(Arc<Transaction>),
}

/// The chain and mempool as the network layer sees them. Methods may block
/// (block validation takes milliseconds to seconds): call them from
/// `tokio::task::spawn_blocking`, never directly on an async worker.
pub trait NetworkChain: Send + Sync + 'static {
    /// The chain spec.
    fn spec(&self) -> &ChainSpec;
    /// The active tip (fully validated chain).
    fn tip(&self) -> TipInfo;
    /// The tip of the heaviest known header chain (may be ahead of `tip`).
    fn best_header(&self) -> TipInfo;
    /// The UTXO commitment at the active tip.
    fn utxo_commitment(&self) -> Hash256;
    /// Block locator from the best header chain: dense near the tip, then
    /// exponentially sparser, ending with genesis.
    fn locator(&self) -> Vec<Hash256>;
    /// Headers of our best header chain after the first locator hash we
    /// know (genesis if none), at most `max`.
    fn headers_after(&self, locator: &[Hash256], max: usize) -> Vec<BlockHeader>;
    /// Adds headers (in order, each the parent of the next) to the header tree.
    fn accept_headers(&self, headers: &[BlockHeader]) -> HeadersOutcome;
    /// Blocks on the best header chain whose bodies we lack, with their
    /// heights, lowest first, at most `max`.
    fn missing_blocks(&self, max: usize) -> Vec<(Hash256, Height)>;
    /// A stored block.
    fn block(&self, hash: &Hash256) -> Option<Block>;
    /// Blocks for a peer's `GetBlocks`, in the order asked: only those on
    /// the active chain or in `announced` (a peer cannot have learned of
    /// other side branches from us), stopping before the block that would
    /// take the total encoded size past `max_bytes` (at least one block).
    /// Implementations read the batch under one lock, not one per block.
    fn serve_blocks(&self, hashes: &[Hash256], announced: &HashSet<Hash256>, max_bytes: usize) -> Vec<Block>;
    /// Which bodies this node stores and serves, as advertised to peers
    /// (`serve_blocks` leaves out bodies below `lowest`, as it does blocks
    /// it never had).
    fn served_bodies(&self) -> ServedBodies;
    /// Cumulative work of a known header (`None` if unknown).
    fn header_work(&self, hash: &Hash256) -> Option<Work>;
    /// Whether the block is stored (or known invalid).
    fn has_block(&self, hash: &Hash256) -> bool;
    /// Validates and stores a block, moving the tip if it wins. An
    /// unrequested block on a branch lighter than the tip is not stored.
    fn submit_block(&self, block: Block, source: BlockSource) -> BlockOutcome;
    /// [`NetworkChain::submit_block`] for a run of blocks with one source
    /// (sync delivers them parent first, and the chain connects a run
    /// through its pipeline). One outcome per block, in order.
    fn submit_blocks(&self, blocks: Vec<Block>, source: BlockSource) -> Vec<BlockOutcome> {
        blocks.into_iter().map(|b| self.submit_block(b, source)).collect()
    }
    /// Validates a transaction against the tip and admits it to the mempool.
    fn submit_tx(&self, tx: Transaction) -> TxOutcome;
    /// Whether the transaction is in the mempool or the chain.
    fn has_tx(&self, txid: &Hash256) -> bool;
    /// Calls `f` with every mempool transaction and its txid, under one
    /// mempool lock (compact blocks are rebuilt from these).
    fn mempool_scan(&self, f: &mut dyn FnMut(&Hash256, &Transaction));
    /// Events to announce to peers.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ChainEvent>;
}

/// Which block bodies a node keeps and serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServedBodies {
    /// Configured to keep every body (no `--prune-blocks`).
    pub archive: bool,
    /// Lowest height whose body is stored: 0 for an archive node, the
    /// prune height for a pruned one.
    pub lowest: Height,
}
