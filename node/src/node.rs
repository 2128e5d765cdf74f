//! The node: one owner for the chain and the mempool, shared by RPC, p2p and
//! the miner. Every state change goes through here so the mempool follows
//! the chain and peers hear about what is new.

use crate::chain::{BlockAccepted, BlockSource, Chain, ChainConfig, ChainError, TipUpdate};
use crate::chain_api::{BlockOutcome, ChainEvent, HeadersOutcome, NetworkChain, TipInfo, TxOutcome};
use crate::fees::{FeeEstimate, FeeEstimator};
use crate::mempool::{Mempool, MempoolError, MempoolPolicy};
use crate::metrics::Metrics;
use crate::miner::MiningBackend;
use lode_core::block::{Block, BlockHeader};
use lode_core::crypto::SigCache;
use lode_core::subsidy::block_subsidy;
use lode_core::validation::ConnectContext;
use lode_core::{Address, ChainSpec, Hash256, Height, Transaction};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

mod admission;
mod work;
pub use admission::{InlineSubmit, INLINE_MAX_INPUTS};

/// The node's shared state.
pub struct Node {
    spec: ChainSpec,
    chain: Mutex<Chain>,
    mempool: Mutex<Mempool>,
    /// Fee estimation from confirmation times (lock after chain and mempool).
    fees: Mutex<FeeEstimator>,
    sig_cache: Arc<SigCache>,
    /// The database, for mempool admission's UTXO reads without the chain
    /// lock (see `submit_transaction`).
    store: Arc<crate::store::Store>,
    /// Height of the active tip, set under the chain lock after each move.
    tip_height: AtomicU32,
    /// How often the mempool has followed a tip move (changed under the
    /// mempool lock): admission reuses the coins its precheck read only if
    /// this has not changed since.
    tip_moves: AtomicU64,
    events: broadcast::Sender<ChainEvent>,
    work_version: work::WorkVersion,
    miner_address: Mutex<Option<Address>>,
    /// Prometheus counters and gauges.
    pub metrics: Metrics,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is a bug we log elsewhere; the state
    // behind it is only ever changed by whole database batches, so reuse it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Node {
    /// Opens the chain in `dir`.
    pub fn open(
        dir: &Path,
        spec: ChainSpec,
        config: ChainConfig,
        policy: MempoolPolicy,
    ) -> Result<Arc<Node>, ChainError> {
        let sig_cache = Arc::new(SigCache::new(config.sig_cache_entries));
        let chain = Chain::open(dir, spec.clone(), sig_cache.clone(), config)?;
        let store = chain.shared_store();
        let tip_height = AtomicU32::new(chain.state().height.0);
        let (events, _) = broadcast::channel(1024);
        let node = Node {
            spec,
            chain: Mutex::new(chain),
            mempool: Mutex::new(Mempool::new(policy)),
            fees: Mutex::new(FeeEstimator::new()),
            sig_cache,
            store,
            tip_height,
            tip_moves: AtomicU64::new(0),
            events,
            work_version: work::WorkVersion::new(),
            miner_address: Mutex::new(None),
            metrics: Metrics::default(),
        };
        node.refresh_metrics();
        Ok(Arc::new(node))
    }

    /// The chain spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// Locks the chain for reading (RPC queries).
    pub fn chain(&self) -> MutexGuard<'_, Chain> {
        lock(&self.chain)
    }

    /// Whether some thread (this one included) holds the chain lock.
    #[cfg(test)]
    pub(crate) fn chain_is_held(&self) -> bool {
        self.chain.try_lock().is_err()
    }

    /// Locks the mempool for reading.
    pub fn mempool(&self) -> MutexGuard<'_, Mempool> {
        lock(&self.mempool)
    }

    /// Where the miner pays.
    pub fn set_miner_address(&self, address: Option<Address>) {
        *lock(&self.miner_address) = address;
        self.bump_work();
    }

    fn bump_work(&self) {
        self.work_version.bump();
    }

    fn connect_context(&self, chain: &Chain) -> (Height, ConnectContext) {
        let next = Height(chain.state().height.0 + 1);
        let ctx = ConnectContext {
            genesis: self.spec.genesis_hash(),
            coinbase_maturity: self.spec.coinbase_maturity,
            subsidy: block_subsidy(&self.spec, next),
        };
        (next, ctx)
    }

    /// Validates and stores a block; on a tip change updates the mempool and
    /// tells peers and the miner. `source` decides whether a block on a
    /// branch with less work than the tip is stored at all.
    pub fn process_block(&self, block: Block, source: BlockSource) -> Result<BlockAccepted, ChainError> {
        self.process_blocks(vec![block], source).pop().unwrap_or(Ok(BlockAccepted::AlreadyHave))
    }

    /// [`Node::process_block`] for a block made here or handed to this node
    /// (the miner, `submitblock`, `generatetoaddress`): when it extends the
    /// tip and passes the header checks in context and the context-free
    /// body checks, peers are told at once ([`ChainEvent::Prevalidated`])
    /// instead of after the connect, which takes as long again.
    pub fn process_own_block(&self, block: Block) -> Result<BlockAccepted, ChainError> {
        {
            let mut chain = lock(&self.chain);
            let hash = block.hash();
            let fresh = block.header.prev_hash == chain.state().tip && chain.entry(&hash).is_none();
            if fresh
                && lode_core::validation::check_block(&block, &self.spec).is_ok()
                && chain.accept_header(&block.header).is_ok()
            {
                let _ = self.events.send(ChainEvent::Prevalidated(Arc::new(block.clone())));
            }
        }
        self.process_block(block, BlockSource::Requested)
    }

    /// [`Node::process_block`] for a run of blocks (sync delivers them
    /// parent first): one chain lock and one activation, so consecutive
    /// blocks connect through the chain's pipeline. One result per block.
    pub fn process_blocks(&self, blocks: Vec<Block>, source: BlockSource) -> Vec<Result<BlockAccepted, ChainError>> {
        let started = std::time::Instant::now();
        let count = blocks.len().max(1);
        let arcs: Vec<Arc<Block>> = blocks.iter().map(|b| Arc::new(b.clone())).collect();
        let (results, update) = {
            let mut chain = lock(&self.chain);
            let (results, update) = chain.accept_blocks_from(blocks, source);
            self.tip_height.store(chain.state().height.0, Ordering::Release);
            // Even a block that failed may have moved the tip (a reorg that
            // failed part-way and went back): the mempool follows either way.
            if update.changed() {
                self.follow_tip(&chain, &update);
            }
            (results, update)
        };
        let per_block = started.elapsed().as_secs_f64() / count as f64;
        for (result, block) in results.iter().zip(arcs) {
            self.metrics.block_validation.observe(per_block);
            if matches!(result, Ok(BlockAccepted::Connected)) {
                let _ = self.events.send(ChainEvent::Block(block));
            }
        }
        if update.changed() {
            self.bump_work();
            self.refresh_metrics();
            // Written outside the chain lock: a save never delays a block.
            let due = lock(&self.fees).save_due();
            if let Some((path, bytes)) = due {
                if let Err(e) = crate::fees::write_atomic(&path, &bytes) {
                    tracing::warn!(path = %path.display(), %e, "saving fee estimates failed");
                }
            }
        }
        results
    }

    /// Loads the fee estimator's statistics from `path` (a damaged file is
    /// ignored with a warning) and saves them there from now on.
    pub fn load_fee_estimates(&self, path: std::path::PathBuf) {
        let tip = lock(&self.chain).state().height.0;
        let mut fees = lock(&self.fees);
        match FeeEstimator::load(&path) {
            Ok(Some(mut loaded)) => {
                loaded.clamp_height(tip);
                tracing::info!(path = %path.display(), best_height = loaded.best_height(), "fee estimates loaded");
                *fees = loaded;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%e, "ignoring the fee estimates file; estimating from scratch"),
        }
        fees.set_path(path);
    }

    /// Writes the fee estimator's statistics (at a clean stop).
    pub fn save_fee_estimates(&self) -> std::io::Result<()> {
        let snapshot = lock(&self.fees).snapshot();
        match snapshot {
            Some((path, bytes)) => crate::fees::write_atomic(&path, &bytes),
            None => Ok(()),
        }
    }

    /// `estimatesmartfee`: the fee rate to confirm within `target` blocks.
    pub fn estimate_fee(&self, target: u32) -> FeeEstimate {
        let min = lock(&self.mempool).policy().min_fee_rate;
        lock(&self.fees).estimate_smart(target, min)
    }

    /// [`Self::estimate_fee`] for each of `targets`, in one pass under the
    /// estimator's lock (which block connection takes too).
    pub fn estimate_fees(&self, targets: &[u32]) -> Vec<FeeEstimate> {
        let min = lock(&self.mempool).policy().min_fee_rate;
        lock(&self.fees).estimate_smart_all(targets, min)
    }

    /// Keeps the mempool consistent with a new tip (chain lock held), as
    /// Bitcoin Core's `removeForBlock` and `removeForReorg` do: mined and
    /// conflicting transactions leave; after a reorg the disconnected
    /// transactions come back (bounded) and everything whose inputs vanished
    /// or whose coinbase inputs are no longer mature leaves with its
    /// descendants, so no template can carry a transaction the tip refuses.
    fn follow_tip(&self, chain: &Chain, update: &TipUpdate) {
        let mut pool = lock(&self.mempool);
        self.tip_moves.fetch_add(1, Ordering::AcqRel);
        let mut fees = lock(&self.fees);
        for connected in update.connected() {
            let mined = connected.txids().get(1..).unwrap_or_default();
            fees.process_block(connected.height().0, mined.iter().copied());
            for gone in pool.remove_for_block(connected.block(), connected.txids()) {
                fees.remove_tx(&gone);
            }
        }
        if !update.reorganised() && !update.truncated() {
            return;
        }
        let (next, ctx) = self.connect_context(chain);
        let view = crate::store::StoreView::new(chain.store());
        let readd = update.disconnected_txs();
        let offered = readd.len();
        let admitted = pool.readmit(readd, &view, next, &ctx, &self.sig_cache, crate::chain::unix_now());
        // What the new tip invalidated left the pool unconfirmed.
        fees.retain(|t| pool.contains(t));
        tracing::info!(
            disconnected = update.disconnected_count(),
            connected = update.connected_count(),
            offered,
            admitted,
            pool = pool.len(),
            "mempool follows a reorganisation"
        );
    }

    /// Drops transactions older than the policy's expiry; the node runs it
    /// on a timer.
    pub fn expire_mempool(&self) -> usize {
        let expired = lock(&self.mempool).expire_ids(crate::chain::unix_now());
        let dropped = expired.len();
        {
            let mut fees = lock(&self.fees);
            for t in &expired {
                fees.remove_tx(t);
            }
        }
        if dropped > 0 {
            tracing::info!(dropped, "expired old mempool transactions");
            self.bump_work();
            self.refresh_metrics();
        }
        dropped
    }

    /// Updates gauges from current state.
    pub fn refresh_metrics(&self) {
        let (height, headers) = {
            let c = lock(&self.chain);
            (c.state().height.0, c.header_count())
        };
        let (size, bytes) = {
            let p = lock(&self.mempool);
            (p.len(), p.bytes())
        };
        self.metrics.height.set(height as f64);
        self.metrics.headers.set(headers as f64);
        self.metrics.mempool_size.set(size as f64);
        self.metrics.mempool_bytes.set(bytes as f64);
        self.metrics.db_cache_bytes.set(self.store.cache_usage() as f64);
    }

    /// Builds a block template on the tip paying `address`. The template is
    /// checked against the tip like Bitcoin Core's `TestBlockValidity`
    /// (everything but signatures, which the mempool verified): a pooled
    /// transaction the tip refuses is evicted and the template rebuilt, so
    /// one stale transaction cannot make every mined block fail.
    pub fn block_template(&self, address: Address) -> Block {
        let chain = lock(&self.chain);
        let tip = chain.tip_entry().clone();
        let tip_hash = chain.state().tip;
        let height = Height(tip.height.0 + 1);
        let bits = chain.next_bits_after(&tip_hash);
        let time = crate::chain::unix_now().max(chain.median_time_past() + 1);
        let budget = self.spec.max_block_size.saturating_sub(1000);
        let (_, ctx) = self.connect_context(&chain);
        let view = crate::store::StoreView::new(chain.store());
        let build = |txs, fees| {
            crate::miner::build_block_template(&self.spec, tip_hash, height, bits, time, address, txs, fees)
        };
        for _ in 0..TEMPLATE_ATTEMPTS {
            let (txs, fees) = lock(&self.mempool).select_for_block(budget);
            let block = build(txs, fees);
            match lode_core::validation::connect_block_deferred(&block, height, &ctx, &view) {
                Ok(_) => return block,
                Err(lode_core::validation::BlockError::Transaction { txid, source, .. }) => {
                    let mut pool = lock(&self.mempool);
                    let evicted = pool.remove_with_descendants(&txid);
                    let mut fees = lock(&self.fees);
                    for t in &evicted {
                        fees.remove_tx(t);
                    }
                    drop(fees);
                    // Gauges are refreshed by whoever changes the state
                    // (the chain lock is held here, so not refresh_metrics).
                    self.metrics.mempool_size.set(pool.len() as f64);
                    self.metrics.mempool_bytes.set(pool.bytes() as f64);
                    tracing::warn!(%txid, %source, evicted = evicted.len(), "evicted a mempool transaction the tip refuses");
                }
                Err(e) => {
                    tracing::error!(%e, "block template fails against the tip; mining without transactions");
                    break;
                }
            }
        }
        build(Vec::new(), lode_core::Amount::ZERO)
    }
}

/// Rebuilds of a template after evicting a refused transaction before
/// falling back to a block with only the coinbase.
const TEMPLATE_ATTEMPTS: usize = 8;

impl MiningBackend for Node {
    fn template(&self) -> Option<Block> {
        let address = (*lock(&self.miner_address))?;
        Some(self.block_template(address))
    }

    fn work_version(&self) -> u64 {
        self.work_version.read()
    }

    fn submit_mined(&self, block: Block) {
        let hash = block.hash();
        match self.process_own_block(block) {
            Ok(BlockAccepted::Connected) => tracing::info!(%hash, "mined a block"),
            Ok(other) => tracing::info!(%hash, ?other, "mined a block that did not become the tip"),
            Err(e) => tracing::error!(%hash, %e, "mined block rejected"),
        }
    }
}

/// What processing a block means to the network layer.
fn block_outcome(result: Result<BlockAccepted, ChainError>) -> BlockOutcome {
    match result {
        Ok(BlockAccepted::Connected) => BlockOutcome::Accepted { new_tip: true },
        Ok(BlockAccepted::Stored | BlockAccepted::SideBranch) => BlockOutcome::Accepted { new_tip: false },
        Ok(BlockAccepted::LowWork) => BlockOutcome::LowWork,
        Ok(BlockAccepted::AlreadyHave) => BlockOutcome::AlreadyHave,
        Ok(BlockAccepted::Orphan { missing }) => BlockOutcome::Orphan { missing_parent: missing },
        Err(ChainError::Deferred { source, .. }) => BlockOutcome::Deferred(source.to_string()),
        Err(ChainError::Store(e)) => {
            tracing::error!(%e, "storage error while processing a block");
            BlockOutcome::Deferred(e.to_string())
        }
        Err(ChainError::UnknownParent(p)) => BlockOutcome::Orphan { missing_parent: p },
        Err(e) => BlockOutcome::Invalid(e.to_string()),
    }
}

fn tip_info(e: &crate::chain::Entry, hash: Hash256) -> TipInfo {
    TipInfo { hash, height: e.height, chainwork: e.work, time: e.header.time }
}

impl NetworkChain for Node {
    fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    fn tip(&self) -> TipInfo {
        let c = lock(&self.chain);
        tip_info(c.tip_entry(), c.state().tip)
    }

    fn best_header(&self) -> TipInfo {
        let c = lock(&self.chain);
        let e = c.best_header();
        tip_info(e, e.header.hash())
    }

    fn utxo_commitment(&self) -> Hash256 {
        lock(&self.chain).commitment()
    }

    fn locator(&self) -> Vec<Hash256> {
        lock(&self.chain).locator()
    }

    fn headers_after(&self, locator: &[Hash256], max: usize) -> Vec<BlockHeader> {
        lock(&self.chain).headers_after(locator, max)
    }

    fn accept_headers(&self, headers: &[BlockHeader]) -> HeadersOutcome {
        match lock(&self.chain).accept_header_chain(headers) {
            Ok(crate::chain::HeaderChainOutcome::Stored { new }) => HeadersOutcome::Accepted { new },
            Ok(crate::chain::HeaderChainOutcome::LowWork) => HeadersOutcome::LowWork,
            Err(ChainError::UnknownParent(_)) => HeadersOutcome::Unconnected,
            Err(ChainError::Store(e)) => {
                tracing::error!(%e, "storing a header failed");
                HeadersOutcome::Accepted { new: 0 }
            }
            Err(e) => HeadersOutcome::Invalid(e.to_string()),
        }
    }

    fn missing_blocks(&self, max: usize) -> Vec<(Hash256, Height)> {
        lock(&self.chain).missing_blocks(max)
    }

    fn block(&self, hash: &Hash256) -> Option<Block> {
        // Read off the chain lock (see `serve_blocks`).
        let store = lock(&self.chain).shared_store();
        store.block(hash).ok().flatten()
    }

    fn serve_blocks(
        &self,
        hashes: &[Hash256],
        announced: &std::collections::HashSet<Hash256>,
        max_bytes: usize,
    ) -> Vec<Block> {
        // The chain lock only to choose what may be served; the bodies
        // (up to 128 per request, from any peer) are read without it, so a
        // peer's request never holds up block processing for its disk
        // reads. A body is keyed by its hash: a block pruned or reorganised
        // away meanwhile reads as absent or is served as it was asked for.
        let (store, servable) = {
            let chain = lock(&self.chain);
            let servable: Vec<&Hash256> =
                hashes.iter().filter(|h| chain.is_active(h) || announced.contains(*h)).collect();
            (chain.shared_store(), servable)
        };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for h in servable {
            // A pruned body reads as absent: served like a block we never had.
            let Some(b) = store.block(h).ok().flatten() else { continue };
            let size = b.encoded_size();
            if !out.is_empty() && bytes.saturating_add(size) > max_bytes {
                break;
            }
            bytes += size;
            out.push(b);
        }
        out
    }

    fn served_bodies(&self) -> crate::chain_api::ServedBodies {
        let chain = lock(&self.chain);
        crate::chain_api::ServedBodies {
            archive: !chain.is_pruning(),
            lowest: chain.prune_height().unwrap_or(Height::GENESIS),
        }
    }

    fn header_work(&self, hash: &Hash256) -> Option<lode_core::pow::Work> {
        lock(&self.chain).entry(hash).map(|e| e.work)
    }

    fn has_block(&self, hash: &Hash256) -> bool {
        let c = lock(&self.chain);
        c.entry(hash).is_some_and(|e| e.has_data() || e.status == crate::store::BlockStatus::Invalid)
            || c.orphans().contains(hash)
    }

    fn submit_block(&self, block: Block, source: BlockSource) -> BlockOutcome {
        block_outcome(self.process_block(block, source))
    }

    fn submit_blocks(&self, blocks: Vec<Block>, source: BlockSource) -> Vec<BlockOutcome> {
        self.process_blocks(blocks, source).into_iter().map(block_outcome).collect()
    }

    fn submit_tx(&self, tx: Transaction) -> TxOutcome {
        match self.submit_transaction(tx) {
            Ok(_) => TxOutcome::Accepted,
            Err(MempoolError::AlreadyKnown(_)) => TxOutcome::AlreadyHave,
            Err(e) if e.is_consensus_invalid() => TxOutcome::Invalid(e.to_string()),
            Err(e) => TxOutcome::Rejected(e.to_string()),
        }
    }

    fn has_tx(&self, txid: &Hash256) -> bool {
        if lock(&self.mempool).contains(txid) {
            return true;
        }
        lock(&self.chain).store().tx_location(txid).ok().flatten().is_some()
    }

    fn mempool_scan(&self, f: &mut dyn FnMut(&Hash256, &Transaction)) {
        for e in lock(&self.mempool).iter() {
            f(&e.txid, &e.tx);
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.events.subscribe()
    }
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
