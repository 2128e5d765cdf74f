//! Chain state: the header tree, most-work fork choice with reorgs, the
//! orphan pool, and the only writer of the UTXO set. Processing order, top
//! to bottom in [`Chain::accept_block`]: known? → parent known? → header
//! (proof of work first, then bits and time) → body rules → store →
//! activate the best chain (connect with signatures last).

mod accept;
mod connect;
mod headers;
mod index;
mod orphans;
mod prune;
mod tip_update;
mod tips;
mod update;
mod verify;

pub use headers::{HeaderChainOutcome, NEAR_TIP_BLOCKS};
pub use index::Entry;
pub use orphans::OrphanPool;
pub use prune::MIN_PRUNE_BLOCKS;
pub use tip_update::{ConnectedBlock, TipUpdate, MAX_READMIT_BYTES, MAX_UPDATE_CONNECTED};
pub use tips::{ChainTip, TipStatus};
pub use verify::IntegrityReport;

use crate::store::{BlockStatus, ChainStateRecord, Store, StoreError, UtxoCommitment};
use index::HeaderIndex;
use lode_core::block::{Block, BlockHeader};
use lode_core::crypto::SigCache;
use lode_core::difficulty::{next_bits, window_len};
use lode_core::pow::Work;
use lode_core::validation::{median_time_past, BlockError};
use lode_core::{ChainSpec, Hash256, Height};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Chain-state failures.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// Storage failed; nothing was marked invalid.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The block or header breaks a consensus rule.
    #[error("invalid block {hash}: {source}")]
    Invalid {
        /// Block hash.
        hash: Hash256,
        /// The rule.
        source: BlockError,
    },
    /// Already known to be invalid.
    #[error("block {0} is known to be invalid")]
    KnownInvalid(Hash256),
    /// Descends from an invalid block.
    #[error("block {0} descends from an invalid block")]
    InvalidAncestor(Hash256),
    /// The header's parent is unknown.
    #[error("parent {0} of the header is unknown")]
    UnknownParent(Hash256),
    /// `--prune-blocks` below the minimum.
    #[error("--prune-blocks {keep} is too small: at least {min} blocks must be kept")]
    PruneTooSmall {
        /// Asked for.
        keep: u32,
        /// The minimum.
        min: u32,
    },
    /// A pruned database opened as an archive.
    #[error(
        "this data directory was pruned (block bodies below height {prune_height} are deleted); run with \
         --prune-blocks, or resync from an empty data directory to get an archive node again"
    )]
    PrunedNeedsResync {
        /// Its prune height.
        prune_height: Height,
    },
    /// Timestamp too far ahead: try again later.
    #[error("block {hash} deferred: {source}")]
    Deferred {
        /// Block hash.
        hash: Hash256,
        /// Why.
        source: BlockError,
    },
}

/// Where a block came from, which decides whether a low-work block is
/// worth storing (Bitcoin Core's `AcceptBlock` rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockSource {
    /// Asked for during sync, submitted by the operator, or mined here:
    /// stored whatever the work of its branch.
    Requested,
    /// Unsolicited (gossip): stored only when its branch has at least the
    /// active tip's work, so a cheap low-work block costs us nothing.
    Unrequested,
}

/// What happened to an offered block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockAccepted {
    /// Stored, and the active chain now contains it.
    Connected,
    /// Stored on the best header chain, waiting for an ancestor's body.
    Stored,
    /// Stored on a side branch that has not (yet) won.
    SideBranch,
    /// Already had it.
    AlreadyHave,
    /// Parent unknown; held as an orphan.
    Orphan {
        /// First missing ancestor.
        missing: Hash256,
    },
    /// Unrequested and its branch has less work than the active tip:
    /// neither stored nor worth relaying.
    LowWork,
}

/// Tunables.
#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// RocksDB memory in bytes: block cache and memtables together.
    pub cache_bytes: usize,
    /// Signature checks the shared signature cache remembers (about 100
    /// bytes each).
    pub sig_cache_entries: usize,
    /// Orphan pool count limit.
    pub max_orphans: usize,
    /// Orphan pool byte limit.
    pub max_orphan_bytes: usize,
    /// fsync every update (survives power loss, slower).
    pub sync_writes: bool,
    /// Keep only the bodies and undo data of the last this many blocks
    /// (`--prune-blocks`; at least [`MIN_PRUNE_BLOCKS`]); `None`: keep all.
    pub prune_blocks: Option<u32>,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            cache_bytes: 64 << 20,
            sig_cache_entries: DEFAULT_SIG_CACHE_ENTRIES,
            max_orphans: 200,
            max_orphan_bytes: 64 << 20,
            sync_writes: false,
            prune_blocks: None,
        }
    }
}

/// Default of [`ChainConfig::sig_cache_entries`]: about 20 MiB, a full
/// mempool's worth of one-input transactions.
pub const DEFAULT_SIG_CACHE_ENTRIES: usize = 200_000;

/// Largest arrival number a stored header may carry: far beyond any count
/// of headers a node receives (2^62 at a million a second is 146,000 years),
/// and far enough below u64::MAX that counting on from it cannot overflow.
const MAX_STORED_SEQ: u64 = 1 << 62;

/// The chain state.
pub struct Chain {
    spec: ChainSpec,
    store: Arc<Store>,
    index: HeaderIndex,
    /// Active chain, by height.
    active: Vec<Hash256>,
    state: ChainStateRecord,
    commitment: UtxoCommitment,
    best_header: Hash256,
    orphans: OrphanPool,
    sig_cache: Arc<SigCache>,
    next_seq: u64,
    config: ChainConfig,
    /// Headers (`None`) and bodies accepted by the current call and not
    /// yet written: each goes into its block's connect batch (one batch
    /// per block), the rest into one batch at the end of the call. Their
    /// records are taken from the index when written.
    unwritten: HashMap<Hash256, Option<Arc<Block>>>,
    /// Lowest active height whose body is stored; `None` for an archive.
    prune: Option<Height>,
    /// Fork height of the last deep reorg refused with a warning: every
    /// new block on that branch is refused again, at debug level.
    deep_reorg_warned: Option<Height>,
    /// Deep-reorg refusals logged as warnings (the rest at debug).
    deep_reorg_warnings: u64,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Chain {
    /// Opens the chain in `dir` (creating it with the genesis block), loading
    /// the header tree into memory. No rescan: the UTXO set is on disk.
    pub fn open(
        dir: &Path,
        spec: ChainSpec,
        sig_cache: Arc<SigCache>,
        config: ChainConfig,
    ) -> Result<Chain, ChainError> {
        let genesis = spec.genesis_block();
        let genesis_hash = spec.genesis_hash();
        let store = Arc::new(Store::open(dir, genesis_hash, spec.max_block_size, config.cache_bytes)?);
        // Before anything else is written: a pruned database opened as an
        // archive must stay untouched.
        let prune = prune::open_prune_state(&store, &config)?;
        let mut index = HeaderIndex::default();
        let mut records = store.all_headers()?;
        let state = match store.chain_state()? {
            Some(s) => s,
            None => {
                let target = genesis
                    .header
                    .bits
                    .to_target()
                    .map_err(|e| ChainError::Invalid { hash: genesis_hash, source: BlockError::InvalidBits(e) })?;
                let entry = Entry {
                    header: genesis.header,
                    height: Height::GENESIS,
                    work: target.work(),
                    status: BlockStatus::Valid,
                    seq: 0,
                    chain_data: true,
                };
                let state = ChainStateRecord {
                    tip: genesis_hash,
                    height: Height::GENESIS,
                    commitment: UtxoCommitment::default().to_hash().0,
                    utxo_count: 0,
                    total_amount: 0,
                };
                let mut batch = store.batch();
                batch.put_block(&genesis_hash, &genesis);
                batch.put_header(&genesis_hash, &entry.record());
                batch.put_height(Height::GENESIS, &genesis_hash);
                batch.put_chain_state(&state);
                store.write(batch, true)?;
                records = vec![(genesis_hash, entry.record())];
                state
            }
        };
        // Parents before children.
        records.sort_by_key(|(_, r)| r.height);
        let mut next_seq = 0;
        for (hash, r) in records {
            // Each header one above its stored parent: a crafted record
            // naming itself (or any loop) as parent would otherwise send
            // the walk below round for ever, growing `active` until memory
            // ran out.
            let parent_height = index.get(&r.header.prev_hash).map(|p| p.height.0);
            if r.height.0 > 0 && parent_height.and_then(|h| h.checked_add(1)) != Some(r.height.0) {
                return Err(StoreError::Corrupt {
                    what: "header",
                    key: hash.to_hex(),
                    reason: format!("at height {} but its parent is not stored one below", r.height.0),
                }
                .into());
            }
            // Arrival numbers count headers received; a crafted one near
            // u64::MAX would overflow the next number handed out.
            if r.seq > MAX_STORED_SEQ {
                return Err(StoreError::Corrupt {
                    what: "header",
                    key: hash.to_hex(),
                    reason: format!("arrival number {} is beyond any count of received headers", r.seq),
                }
                .into());
            }
            next_seq = next_seq.max(r.seq + 1);
            let work = Work::from_be_bytes(r.chainwork);
            index.insert(
                hash,
                Entry { header: r.header, height: r.height, work, status: r.status, seq: r.seq, chain_data: false },
            );
        }
        // Recompute "whole ancestry has data" from genesis up.
        index.mark_data(&genesis_hash);
        // Not the stored height's capacity: a crafted u32::MAX would ask
        // for 128 GiB and abort instead of reporting corruption.
        let mut active = Vec::with_capacity(index.len().min(state.height.0 as usize + 1));
        let mut cur = Some(state.tip);
        while let Some(h) = cur {
            let e = index.get(&h).ok_or_else(|| StoreError::Corrupt {
                what: "chain state",
                key: h.to_hex(),
                reason: "tip ancestry missing from the header index".into(),
            })?;
            active.push(h);
            cur = if e.height.0 == 0 { None } else { Some(e.header.prev_hash) };
        }
        active.reverse();
        if active.first() != Some(&genesis_hash) || active.len() != state.height.0 as usize + 1 {
            return Err(StoreError::Corrupt {
                what: "chain state",
                key: state.tip.to_hex(),
                reason: "tip does not lead to genesis".into(),
            }
            .into());
        }
        // The prune height is at most one above the tip: a reorg may fork
        // at `prune - 1` (block `prune` keeps its undo data), and a crash
        // or store error part-way leaves the tip there until the reorg
        // resumes. More would mark every active body as pruned.
        if let Some(height) = prune.filter(|p| p.0 > state.height.0.saturating_add(1)) {
            return Err(StoreError::Corrupt {
                what: "prune height",
                key: hex::encode(b"prune_height"),
                reason: format!("prune height {} is above the tip at {}", height.0, state.height.0),
            }
            .into());
        }
        let tip_work = index.get(&state.tip).map(|e| e.work).unwrap_or_default();
        index.prune_candidates(tip_work);
        let best_header = index.best_header().unwrap_or(genesis_hash);
        let orphans = OrphanPool::new(config.max_orphans, config.max_orphan_bytes);
        let commitment = UtxoCommitment::from_bytes(state.commitment);
        let mut chain = Chain {
            spec,
            store,
            index,
            active,
            state,
            commitment,
            best_header,
            orphans,
            sig_cache,
            next_seq,
            config,
            unwritten: HashMap::new(),
            prune,
            deep_reorg_warned: None,
            deep_reorg_warnings: 0,
        };
        // A crash between storing a block and connecting it, or in the middle
        // of a reorg, leaves a heavier stored branch than the tip: take it now,
        // not when the next block happens to arrive.
        let mut update = TipUpdate::default();
        chain.activate_best_chain(&mut update)?;
        if update.changed() {
            tracing::info!(
                connected = update.connected_count(),
                disconnected = update.disconnected_count(),
                height = chain.state.height.0,
                "activated the most-work stored chain at start-up"
            );
        }
        chain.catch_up_pruning()?;
        Ok(chain)
    }

    /// The chain spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The database, to read without holding the chain: a UTXO read sees
    /// whole blocks (each is one atomic batch) at the tip or at a tip
    /// connected after the caller looked.
    pub fn shared_store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// The signature cache shared with the mempool.
    pub fn sig_cache(&self) -> &Arc<SigCache> {
        &self.sig_cache
    }

    /// Tip and UTXO summary.
    pub fn state(&self) -> &ChainStateRecord {
        &self.state
    }

    /// The active tip's header entry.
    pub fn tip_entry(&self) -> &Entry {
        // The tip is always in the index (checked at open, kept by updates).
        self.index.get(&self.state.tip).unwrap_or_else(|| unreachable!("tip in index"))
    }

    /// A header entry.
    pub fn entry(&self, hash: &Hash256) -> Option<&Entry> {
        self.index.get(hash)
    }

    /// The heaviest valid-so-far header.
    pub fn best_header(&self) -> &Entry {
        self.index.get(&self.best_header).unwrap_or_else(|| self.tip_entry())
    }

    /// Hash of the active block at `height`.
    pub fn hash_at(&self, height: Height) -> Option<Hash256> {
        self.active.get(height.0 as usize).copied()
    }

    /// Whether `hash` is on the active chain.
    pub fn is_active(&self, hash: &Hash256) -> bool {
        self.index.get(hash).is_some_and(|e| self.hash_at(e.height) == Some(*hash))
    }

    /// The orphan pool.
    pub fn orphans(&self) -> &OrphanPool {
        &self.orphans
    }

    /// Number of known headers.
    pub fn header_count(&self) -> usize {
        self.index.len()
    }

    /// Median time past of the tip (the next block's lower time bound).
    pub fn median_time_past(&self) -> u64 {
        let times: Vec<u64> = self.index.samples(&self.state.tip, 11).iter().map(|s| s.time).collect();
        median_time_past(&times)
    }

    /// Bits required of a child of `parent`.
    pub fn next_bits_after(&self, parent: &Hash256) -> lode_core::pow::CompactTarget {
        next_bits(&self.spec, &self.index.samples(parent, window_len(&self.spec)))
    }

    /// Block locator of the best header chain.
    pub fn locator(&self) -> Vec<Hash256> {
        let mut out = Vec::new();
        let best = self.best_header();
        let mut height = best.height.0 as i64;
        let mut step = 1i64;
        let tip = self.best_header;
        while height > 0 {
            if let Some(h) = self.index.ancestor(&tip, Height(height as u32)) {
                out.push(h);
            }
            if out.len() >= 10 {
                step *= 2;
            }
            height -= step;
        }
        out.push(self.spec.genesis_hash());
        out
    }

    /// Active-chain headers after the first locator entry on it.
    pub fn headers_after(&self, locator: &[Hash256], max: usize) -> Vec<BlockHeader> {
        let start = locator
            .iter()
            .find_map(|h| self.index.get(h).filter(|_| self.is_active(h)).map(|e| e.height.0 as usize + 1))
            .unwrap_or(1);
        self.active.iter().skip(start).take(max).filter_map(|h| self.index.get(h).map(|e| e.header)).collect()
    }

    /// Blocks on the best header chain without bodies, lowest first.
    pub fn missing_blocks(&self, max: usize) -> Vec<(Hash256, Height)> {
        let best = self.best_header();
        if best.chain_data || max == 0 {
            return Vec::new();
        }
        let mut path = Vec::new();
        let mut cur = self.best_header;
        while let Some(e) = self.index.get(&cur) {
            if e.chain_data {
                break;
            }
            path.push((cur, e.height, e.has_data()));
            if e.height.0 == 0 {
                break;
            }
            cur = e.header.prev_hash;
        }
        path.iter().rev().filter(|(_, _, has)| !has).map(|(h, height, _)| (*h, *height)).take(max).collect()
    }

    /// The UTXO commitment at the tip.
    pub fn commitment(&self) -> Hash256 {
        self.commitment.to_hash()
    }

    /// Flushes the database (clean shutdown).
    pub fn flush(&self) -> Result<(), ChainError> {
        self.store.flush()?;
        if self.prune.is_some() {
            // Pruned bodies' space is returned now, not at some later
            // compaction (the kept window is small, so this is quick).
            self.store.compact_bodies();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod mutant_tests;

#[cfg(test)]
mod mutant_tests_reports;

#[cfg(test)]
mod crafted_store_tests;
