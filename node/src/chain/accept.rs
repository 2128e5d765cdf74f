//! Accepting headers and blocks: the checks before storage, storing
//! (unwritten until the block's connect batch or the end of the call),
//! one activation for a whole run of blocks, and each block's outcome.

use super::{unix_now, BlockAccepted, BlockSource, Chain, ChainError, Entry, TipUpdate};
use crate::store::BlockStatus;
use lode_core::block::{Block, BlockHeader};
use lode_core::pow::Work;
use lode_core::validation::{
    check_block, check_header, check_header_context, median_time_past, BlockError, HeaderContext,
};
use lode_core::{Hash256, Height};
use std::sync::Arc;

impl Chain {
    /// Adds a header to the tree after checking proof of work, bits and time.
    /// Returns whether it was new.
    pub fn accept_header(&mut self, header: &BlockHeader) -> Result<bool, ChainError> {
        let new = self.accept_header_unwritten(header)?;
        self.flush_unwritten()?;
        Ok(new)
    }

    /// [`Chain::accept_header`], leaving the record to the next write.
    pub(super) fn accept_header_unwritten(&mut self, header: &BlockHeader) -> Result<bool, ChainError> {
        let hash = header.hash();
        if let Some(e) = self.index.get(&hash) {
            return match e.status {
                BlockStatus::Invalid => Err(ChainError::KnownInvalid(hash)),
                _ => Ok(false),
            };
        }
        let parent = self.index.get(&header.prev_hash).ok_or(ChainError::UnknownParent(header.prev_hash))?;
        if parent.status == BlockStatus::Invalid {
            return Err(ChainError::InvalidAncestor(hash));
        }
        let (parent_height, parent_work) = (parent.height, parent.work);
        check_header(header, &self.spec).map_err(|source| ChainError::Invalid { hash, source })?;
        let times: Vec<u64> = self.index.samples(&header.prev_hash, 11).iter().map(|s| s.time).collect();
        let ctx = HeaderContext {
            expected_bits: self.next_bits_after(&header.prev_hash),
            median_time_past: median_time_past(&times),
            now: unix_now(),
        };
        check_header_context(header, &ctx, &self.spec).map_err(|source| {
            if source.is_temporary() {
                ChainError::Deferred { hash, source }
            } else {
                ChainError::Invalid { hash, source }
            }
        })?;
        let target = header.bits.to_target().map_err(|e| ChainError::Invalid { hash, source: e.into() })?;
        let height = Height(parent_height.0.saturating_add(1));
        let entry = Entry {
            header: *header,
            height,
            work: parent_work.saturating_add(&target.work()),
            status: BlockStatus::HeaderOnly,
            seq: self.next_seq,
            chain_data: false,
        };
        self.next_seq += 1;
        self.unwritten.entry(hash).or_insert(None);
        let best_work = self.best_header().work;
        let work = entry.work;
        self.index.insert(hash, entry);
        if work > best_work {
            self.best_header = hash;
        }
        Ok(true)
    }

    /// Validates and stores a requested block (see [`Chain::accept_block_from`]);
    /// an error drops the tip update, which only tools and tests can afford.
    pub fn accept_block(&mut self, block: Block) -> Result<(BlockAccepted, TipUpdate), ChainError> {
        let (result, update) = self.accept_block_from(block, BlockSource::Requested);
        result.map(|a| (a, update))
    }

    /// Validates and stores a block, then moves the active chain to the
    /// most-work candidate; orphans waiting on it are processed too. The
    /// tip update is returned whatever the outcome: a block that fails to
    /// connect may still have moved the tip (a reorg that failed part-way).
    pub fn accept_block_from(
        &mut self,
        block: Block,
        source: BlockSource,
    ) -> (Result<BlockAccepted, ChainError>, TipUpdate) {
        let (results, update) = self.accept_blocks_from(vec![block], source);
        let result = results.into_iter().next().unwrap_or(Ok(BlockAccepted::AlreadyHave));
        (result, update)
    }

    /// Requested blocks (see [`Chain::accept_blocks_from`]).
    pub fn accept_blocks(&mut self, blocks: Vec<Block>) -> (Vec<Result<BlockAccepted, ChainError>>, TipUpdate) {
        self.accept_blocks_from(blocks, BlockSource::Requested)
    }

    /// Validates and stores a run of blocks (normally each the parent of
    /// the next, as sync delivers them), then moves the active chain once,
    /// so consecutive blocks connect through the pipeline (`connect`).
    /// One result per block, in order; the outcome of each is what
    /// offering the blocks one at a time would give.
    pub fn accept_blocks_from(
        &mut self,
        blocks: Vec<Block>,
        source: BlockSource,
    ) -> (Vec<Result<BlockAccepted, ChainError>>, TipUpdate) {
        let mut update = TipUpdate::default();
        let mut stored: Vec<(Hash256, Option<Result<BlockAccepted, ChainError>>)> = Vec::with_capacity(blocks.len());
        // The context-free rules (merkle root, transaction rules) of a run
        // on every core at once: they need no chain state.
        let context_free: Vec<Option<Result<(), BlockError>>> = if blocks.len() > 1 {
            use rayon::prelude::*;
            blocks.par_iter().map(|b| Some(check_block(b, &self.spec))).collect()
        } else {
            vec![None; blocks.len()]
        };
        for (block, context_free) in blocks.into_iter().zip(context_free) {
            let hash = block.hash();
            let done = match self.store_block(block, source, context_free) {
                Ok(Some(outcome)) => Some(Ok(outcome)),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            };
            stored.push((hash, done));
        }
        let mut failure = None;
        if stored.iter().any(|(_, done)| done.is_none()) {
            if let Err(e) = self.activate_best_chain(&mut update) {
                failure = Some(e);
            }
        }
        if let Err(e) = self.flush_unwritten() {
            failure.get_or_insert(e);
        }
        let mut results = Vec::with_capacity(stored.len());
        for (hash, done) in stored {
            let result = match done {
                Some(r) => r,
                None => match self.stored_outcome(&hash, &update) {
                    // A storage error stopped activation: the first block
                    // it left unconnected on the way to the best chain gets
                    // the error (the blocks before it connected); the rest
                    // were not reached.
                    Ok(BlockAccepted::Stored) => failure.take().map_or(Ok(BlockAccepted::Stored), Err),
                    outcome => outcome,
                },
            };
            if result.is_ok() {
                // Orphans that were waiting for this block (always requested:
                // they passed the work gate or were asked for when they came).
                let mut ready = self.orphans.take_children(&hash);
                while let Some(child) = ready.pop() {
                    let child_hash = child.hash();
                    let (r, u) = self.accept_block_from(child, BlockSource::Requested);
                    update.merge(u);
                    if let Err(e) = r {
                        tracing::debug!(%child_hash, %e, "orphan rejected");
                    }
                    ready.extend(self.orphans.take_children(&child_hash));
                }
            }
            results.push(result);
        }
        if let Some(e) = failure {
            // No block of the run was left waiting on the best chain: the
            // failure was elsewhere (a block beyond the run, or writing
            // headers and side bodies). Not this run's fault, but the
            // operator must see it.
            tracing::error!(%e, "storage failed while activating the best chain");
        }
        (results, update)
    }

    /// What became of a stored block after activation.
    pub(super) fn stored_outcome(&self, hash: &Hash256, update: &TipUpdate) -> Result<BlockAccepted, ChainError> {
        if let Some(source) = update.invalid.iter().find(|(h, _)| h == hash).map(|(_, e)| e.clone()) {
            return Err(ChainError::Invalid { hash: *hash, source });
        }
        let height = self.index.get(hash).map(|e| e.height).unwrap_or_default();
        match self.index.get(hash).map(|e| e.status) {
            Some(BlockStatus::Invalid) => Err(ChainError::InvalidAncestor(*hash)),
            _ if self.is_active(hash) => Ok(BlockAccepted::Connected),
            _ if self.index.ancestor(&self.best_header, height) == Some(*hash) => Ok(BlockAccepted::Stored),
            _ => Ok(BlockAccepted::SideBranch),
        }
    }

    /// The checks before a block is stored, and storing it (unwritten until
    /// its connect batch or the end of the call). `Some` when the block
    /// needs no activation (known, orphan, low work). `context_free` is
    /// `check_block`'s verdict when it was already run.
    pub(super) fn store_block(
        &mut self,
        block: Block,
        source: BlockSource,
        context_free: Option<Result<(), BlockError>>,
    ) -> Result<Option<BlockAccepted>, ChainError> {
        let hash = block.hash();
        if let Some(e) = self.index.get(&hash) {
            match e.status {
                BlockStatus::Invalid => return Err(ChainError::KnownInvalid(hash)),
                BlockStatus::HaveData | BlockStatus::Valid => return Ok(Some(BlockAccepted::AlreadyHave)),
                BlockStatus::HeaderOnly => {}
            }
        } else if self.index.get(&block.header.prev_hash).is_none() {
            // Cheap checks first so junk cannot fill the pool: proof of work,
            // then a body that its header commits to (else a junk body under
            // an honest header would take the honest block's place).
            check_header(&block.header, &self.spec).map_err(|source| ChainError::Invalid { hash, source })?;
            let (root, mutated) = block.compute_merkle_root();
            if mutated {
                return Err(ChainError::Invalid { hash, source: BlockError::MerkleMutation });
            }
            if root != block.header.merkle_root {
                let source = BlockError::BadMerkleRoot { header: block.header.merkle_root, computed: root };
                return Err(ChainError::Invalid { hash, source });
            }
            self.orphans.add(block);
            let missing = self.orphans.missing_root(&hash).unwrap_or(hash);
            return Ok(Some(BlockAccepted::Orphan { missing }));
        }
        if source == BlockSource::Unrequested && self.branch_work(&block.header)? < self.tip_entry().work {
            return Ok(Some(BlockAccepted::LowWork));
        }
        self.accept_header_unwritten(&block.header)?;
        if let Err(source) = context_free.unwrap_or_else(|| check_block(&block, &self.spec)) {
            // Only a body the header commits to can condemn the header: a
            // mutated or mismatched body may be a relay's corruption.
            let (root, mutated) = block.compute_merkle_root();
            if !mutated && root == block.header.merkle_root {
                self.mark_invalid(&hash)?;
            }
            return Err(ChainError::Invalid { hash, source });
        }
        // Arrival order for ties counts from the body, not the header: the
        // branch whose blocks we could first validate wins (Core's
        // nSequenceId).
        let seq = self.next_seq;
        self.next_seq += 1;
        self.index.set_seq(&hash, seq);
        self.index.mark_data(&hash);
        self.unwritten.insert(hash, Some(Arc::new(block)));
        Ok(None)
    }

    /// Writes what this call accepted and no connect batch took, with the
    /// records as the index has them now.
    pub(super) fn flush_unwritten(&mut self) -> Result<(), ChainError> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        let mut batch = self.store.batch();
        self.put_unwritten(&mut batch);
        self.store.write(batch, self.config.sync_writes)?;
        self.unwritten.clear();
        Ok(())
    }

    /// Adds every unwritten header and body to `batch` (parents with their
    /// children: a record never reaches the disk before its parent's).
    pub(super) fn put_unwritten(&self, batch: &mut crate::store::StoreBatch<'_>) {
        for (hash, body) in &self.unwritten {
            if let Some(body) = body {
                batch.put_block(hash, body);
            }
            if let Some(e) = self.index.get(hash) {
                batch.put_header(hash, &e.record());
            }
        }
    }

    /// Cumulative work of the branch `header` would end, checking its
    /// proof of work first so the answer costs the sender real hashing.
    pub(super) fn branch_work(&self, header: &BlockHeader) -> Result<Work, ChainError> {
        let hash = header.hash();
        if let Some(e) = self.index.get(&hash) {
            return Ok(e.work);
        }
        let parent = self.index.get(&header.prev_hash).ok_or(ChainError::UnknownParent(header.prev_hash))?;
        check_header(header, &self.spec).map_err(|source| ChainError::Invalid { hash, source })?;
        let target = header.bits.to_target().map_err(|e| ChainError::Invalid { hash, source: e.into() })?;
        Ok(parent.work.saturating_add(&target.work()))
    }

    pub(super) fn mark_invalid(&mut self, hash: &Hash256) -> Result<(), ChainError> {
        let marked = self.index.mark_invalid_subtree(hash);
        let mut batch = self.store.batch();
        self.put_unwritten(&mut batch);
        for h in &marked {
            if let Some(e) = self.index.get(h) {
                batch.put_header(h, &e.record());
            }
        }
        self.store.write(batch, self.config.sync_writes)?;
        self.unwritten.clear();
        if marked.contains(&self.best_header) {
            self.best_header = self.index.best_header().unwrap_or(self.state.tip);
        }
        Ok(())
    }
}
