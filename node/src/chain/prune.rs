//! Pruning (`--prune-blocks N`): block bodies and undo data more than N
//! blocks below the tip are deleted in the same atomic batch that connects
//! the new tip, so a process killed at any instant restarts with the prune
//! height and the stored bodies in agreement. Headers, the height index,
//! the UTXO set and the transaction and address indexes stay: the indexes
//! are small, and they let `getrawtransaction` say that a transaction's
//! block was pruned instead of "not found" (Bitcoin Core, which keeps no
//! index entries for pruned blocks, refuses `-txindex` with pruning).
//!
//! A database that was ever pruned records its prune height in the meta
//! column family; opened without pruning it is refused (its history is
//! gone: only a resync from an empty data directory brings it back). An
//! archive opened with pruning deletes its backlog at start, in bounded
//! batches. A reorg whose fork point is below the prune height is refused
//! (its undo data is gone), as Bitcoin Core does.

use super::{Chain, ChainConfig, ChainError};
use crate::store::{Store, StoreBatch};
use lode_core::{Hash256, Height};

/// Smallest `--prune-blocks` (Bitcoin Core's MIN_BLOCKS_TO_KEEP): a reorg
/// deeper than this is not expected on a healthy network.
pub const MIN_PRUNE_BLOCKS: u32 = 288;

/// Bodies deleted per batch while catching up on a backlog at start.
const CATCH_UP_STEP: u32 = 1_000;

/// Bodies one block connect may delete (normally one; more only after the
/// kept window shrank while running, which the start-up catch-up avoids).
const MAX_PRUNE_PER_CONNECT: u32 = 16;

/// Dead side branches are swept each time the prune height crosses a
/// multiple of this: a sweep walks every branch tip, so not on every block.
const SIDE_SWEEP_EVERY: u32 = 144;

/// The prune state the database and the configuration agree on: the
/// prune height, `None` for an archive. Refuses a kept window below
/// [`MIN_PRUNE_BLOCKS`] and a pruned database opened without pruning.
pub(super) fn open_prune_state(store: &Store, config: &ChainConfig) -> Result<Option<Height>, ChainError> {
    if let Some(keep) = config.prune_blocks {
        if keep < MIN_PRUNE_BLOCKS {
            return Err(ChainError::PruneTooSmall { keep, min: MIN_PRUNE_BLOCKS });
        }
    }
    match (config.prune_blocks, store.prune_height()?) {
        (None, Some(height)) => Err(ChainError::PrunedNeedsResync { prune_height: height }),
        (None, None) => Ok(None),
        (Some(_), Some(height)) => Ok(Some(height)),
        (Some(keep), None) => {
            let mut batch = store.batch();
            batch.put_prune_height(Height::GENESIS);
            store.write(batch, true)?;
            tracing::info!(keep, "pruning enabled: block bodies below the last {keep} blocks will be deleted");
            Ok(Some(Height::GENESIS))
        }
    }
}

impl Chain {
    /// Lowest height whose block body is stored: `None` for an archive
    /// node, which stores every body.
    pub fn prune_height(&self) -> Option<Height> {
        self.prune
    }

    /// Whether this node is configured to prune (`--prune-blocks`), even
    /// before it has pruned anything.
    pub fn is_pruning(&self) -> bool {
        self.config.prune_blocks.is_some()
    }

    /// Deep-reorg refusals logged as warnings so far.
    #[cfg(test)]
    pub(super) fn deep_reorg_warnings(&self) -> u64 {
        self.deep_reorg_warnings
    }

    /// Whether the body of `hash` is known to have been pruned: on the
    /// active chain below the prune height, or on a dead side branch whose
    /// stored body a sweep deleted.
    pub fn is_pruned(&self, hash: &Hash256) -> bool {
        let Some(prune) = self.prune else { return false };
        let Some(e) = self.index.get(hash).filter(|e| e.has_data()) else { return false };
        if self.is_active(hash) {
            e.height < prune
        } else {
            // Bodies are deleted only by pruning.
            matches!(self.store.has_block(hash), Ok(false))
        }
    }

    /// The prune height after connecting a block at `height` (from
    /// `current`), with the deletes added to `batch`. Only active heights
    /// below the block's parent are pruned, and those are all applied in
    /// memory by the time the pipeline builds this block.
    pub(super) fn prune_into(&self, batch: &mut StoreBatch<'_>, height: Height, current: Height) -> Height {
        let Some(keep) = self.config.prune_blocks else { return current };
        let target = (height.0 + 1).saturating_sub(keep).min(current.0.saturating_add(MAX_PRUNE_PER_CONNECT));
        let mut next = current.0;
        while next < target {
            let Some(hash) = self.active.get(next as usize) else { break };
            batch.prune_block(hash);
            next += 1;
        }
        if next != current.0 {
            batch.put_prune_height(Height(next));
            if next / SIDE_SWEEP_EVERY != current.0 / SIDE_SWEEP_EVERY {
                self.sweep_dead_branches(batch, Height(next));
            }
        }
        Height(next)
    }

    /// Adds to `batch` the deletion of every stored body on a side branch
    /// that forks below `prune` (fork height + 1 < prune): the deep-reorg
    /// refusal keeps such a branch from ever becoming active, so its bodies
    /// are dead weight (Bitcoin Core's pruning drops them with their block
    /// files). Returns how many were deleted.
    fn sweep_dead_branches(&self, batch: &mut StoreBatch<'_>, prune: Height) -> usize {
        let mut deleted = std::collections::HashSet::new();
        for leaf in self.index.leaves() {
            let mut branch = Vec::new();
            let mut cur = leaf;
            let fork = loop {
                let Some(e) = self.index.get(&cur) else { break None };
                if self.is_active(&cur) {
                    break Some(e.height);
                }
                if e.has_data() {
                    branch.push(cur);
                }
                if e.height.0 == 0 {
                    break None;
                }
                cur = e.header.prev_hash;
            };
            if fork.is_none_or(|f| f.0.saturating_add(1) >= prune.0) {
                continue;
            }
            for hash in branch {
                if !deleted.contains(&hash) && matches!(self.store.has_block(&hash), Ok(true)) {
                    batch.prune_block(&hash);
                    deleted.insert(hash);
                }
            }
        }
        if !deleted.is_empty() {
            tracing::info!(bodies = deleted.len(), prune_height = prune.0, "pruned the bodies of dead side branches");
        }
        deleted.len()
    }

    /// Deletes the bodies a freshly enabled (or narrowed) prune window
    /// leaves below it, `CATCH_UP_STEP` heights per atomic batch, logging
    /// progress.
    pub(super) fn catch_up_pruning(&mut self) -> Result<(), ChainError> {
        let (Some(keep), Some(mut current)) = (self.config.prune_blocks, self.prune) else { return Ok(()) };
        let target = (self.state.height.0 + 1).saturating_sub(keep);
        if current.0 >= target {
            return Ok(());
        }
        let started = current;
        tracing::info!(from = current.0, to = target, "pruning the stored backlog");
        while current.0 < target {
            let end = current.0.saturating_add(CATCH_UP_STEP).min(target);
            let mut batch = self.store.batch();
            for h in current.0..end {
                if let Some(hash) = self.active.get(h as usize) {
                    batch.prune_block(hash);
                }
            }
            batch.put_prune_height(Height(end));
            if end == target {
                self.sweep_dead_branches(&mut batch, Height(end));
            }
            self.store.write(batch, self.config.sync_writes)?;
            current = Height(end);
            self.prune = Some(current);
            tracing::info!(pruned_to = end, target, "pruning the backlog: bodies below height {end} deleted");
        }
        self.store.compact_bodies();
        tracing::info!(from = started.0, prune_height = current.0, "pruned the backlog");
        Ok(())
    }

    /// Whether moving to a branch that forks at `fork_height` would have to
    /// disconnect a block whose undo data was pruned; logs the refusal.
    pub(super) fn reorg_too_deep(&mut self, best: &Hash256, fork_height: Height) -> bool {
        let Some(prune) = self.prune else { return false };
        if self.state.height <= fork_height || fork_height.0.saturating_add(1) >= prune.0 {
            return false;
        }
        if self.deep_reorg_warned.replace(fork_height) == Some(fork_height) {
            tracing::debug!(candidate = %best, fork_height = fork_height.0, "refusing a reorg below the prune height again");
            return true;
        }
        self.deep_reorg_warnings += 1;
        tracing::warn!(
            candidate = %best,
            fork_height = fork_height.0,
            prune_height = prune.0,
            tip_height = self.state.height.0,
            "refusing a reorg: the fork point at height {} is below the prune height {}, so the undo data to \
             disconnect back to it was deleted; staying on the current chain (a resync from an empty data \
             directory can follow the other branch)",
            fork_height.0,
            prune.0
        );
        true
    }
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;
