//! Connecting a branch of blocks as a pipeline. Signatures are most of the
//! work and run on every core; everything else would leave cores idle if
//! it ran between them. So, for consecutive blocks N-1, N, N+1:
//!
//! ```text
//! pool:   verify N's signatures ─────────────────────────────┐
//! other:  write N-1's batch │ build N's batch │ read and check N+1
//! ```
//!
//! and the next round starts when both sides are done. N-1 was verified in
//! the previous round, so only verified blocks are ever written, one atomic
//! batch each, in chain order: a process killed at any instant restarts on
//! a consistent tip. N is not written while N+1 is checked, so N+1's inputs
//! are looked up in N's changes first (the [`Overlay`]): N+1 may spend what
//! N created and must not see what N spent. Everything older is on disk.
//! Each block's inputs are read with one batched `MultiGet`.

use super::{Chain, ChainError, ConnectedBlock, Entry, TipUpdate};
use crate::store::{BlockStatus, ChainStateRecord, Store, StoreBatch, StoreError, TxLocation, UtxoCommitment};
use lode_core::subsidy::block_subsidy;
use lode_core::tx::OutPoint;
use lode_core::validation::{connect_block_deferred, Coin, ConnectContext, ConnectOutcome, PendingConnect};
use lode_core::{Block, Hash256, Height};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// UTXO changes of a block that is checked but not yet written: `None`
/// for a coin it spent, `Some` for one it created.
pub(super) type Overlay = HashMap<OutPoint, Option<Coin>>;

/// The overlay of a block's changes.
pub(super) fn overlay_of(outcome: &ConnectOutcome) -> Overlay {
    let mut overlay = HashMap::with_capacity(outcome.spent.len() + outcome.created.len());
    overlay.extend(outcome.spent.iter().map(|(op, _)| (*op, None)));
    overlay.extend(outcome.created.iter().map(|(op, c)| (*op, Some(*c))));
    overlay
}

/// Every coin `block` spends that exists before it: from `overlay` first,
/// the rest in one batched read. Outputs the block creates itself are not
/// found here (the validation layers them over this view), and a coin the
/// overlay spent stays missing.
pub(super) fn read_inputs(
    store: &Store,
    overlay: &Overlay,
    block: &Block,
) -> Result<HashMap<OutPoint, Coin>, StoreError> {
    let inputs = block.transactions.iter().skip(1).map(|t| t.inputs.len()).sum();
    let mut found = HashMap::with_capacity(inputs);
    let mut wanted = Vec::with_capacity(inputs);
    for input in block.transactions.iter().skip(1).flat_map(|t| &t.inputs) {
        match overlay.get(&input.prevout) {
            Some(Some(coin)) => {
                found.insert(input.prevout, *coin);
            }
            Some(None) => {}
            None => wanted.push(input.prevout),
        }
    }
    // Key order (txid bytes, then vout big-endian) is OutPoint's order:
    // sorted keys let MultiGet walk each file once.
    wanted.sort_unstable();
    wanted.dedup();
    for (op, coin) in wanted.iter().zip(store.coins(&wanted)?) {
        if let Some(coin) = coin {
            found.insert(*op, coin);
        }
    }
    Ok(found)
}

/// A block whose UTXO rules passed; signatures not yet verified.
pub(super) struct Checked {
    pub(super) hash: Hash256,
    pub(super) entry: Entry,
    pub(super) block: Arc<Block>,
    pub(super) pending: PendingConnect,
    /// Its changes, for the next block's lookups.
    pub(super) overlay: Overlay,
    started: Instant,
}

/// The chain state, UTXO commitment and prune height after a block.
type AfterBlock = (ChainStateRecord, UtxoCommitment, Option<Height>);

/// The batch that connects a checked block, and the state after it.
pub(super) struct Built<'a> {
    batch: StoreBatch<'a>,
    state: ChainStateRecord,
    commitment: UtxoCommitment,
    /// The prune height after it (`None`: an archive).
    prune: Option<Height>,
}

/// A verified block waiting to be written.
struct Ready<'a> {
    checked: Checked,
    built: Built<'a>,
    sigs: (usize, usize),
}

impl Chain {
    /// Connects `hashes` (the first a child of the tip, each the parent of
    /// the next) through the pipeline. Stops at the first block that breaks
    /// a rule (`ChainError::Invalid` naming it) or on a storage error; the
    /// blocks before it stay connected and are in `update`.
    pub(super) fn connect_branch(&mut self, hashes: &[Hash256], update: &mut TipUpdate) -> Result<(), ChainError> {
        let Some(first) = hashes.first() else { return Ok(()) };
        let sync = self.config.sync_writes;
        // Batches borrow this handle, not `self`, so a written block can
        // be applied to `self` while the next one's batch is held.
        let store = Arc::clone(&self.store);
        let mut next = Some(self.check(first, &Overlay::new())?);
        let mut ready: Option<Ready<'_>> = None;
        let mut stop: Option<ChainError> = None;
        let mut base = (self.state, self.commitment, self.prune);
        let mut index = 0;
        while next.is_some() || ready.is_some() {
            let cur = next.take();
            let to_write = ready.take();
            let this = &*self;
            let follower = if stop.is_none() { hashes.get(index + 1) } else { None };
            let (verified, (written, built, checked_next)) = rayon::join(
                || cur.as_ref().map(|c| super::verify::check_signatures(&c.pending, &this.sig_cache)),
                || {
                    let written = to_write.map(|r| {
                        let (state, commitment, prune) = (r.built.state, r.built.commitment, r.built.prune);
                        store.write(r.built.batch, sync).map(|()| (r.checked, (state, commitment, prune), r.sigs))
                    });
                    if matches!(written, Some(Err(_))) {
                        return (written, None, None);
                    }
                    let built = cur.as_ref().map(|c| this.build(&store, c, base));
                    let checked_next = match (&cur, follower) {
                        (Some(c), Some(h)) => Some(this.check(h, &c.overlay)),
                        _ => None,
                    };
                    (written, built, checked_next)
                },
            );
            if let Some(w) = written {
                let (checked, after, sigs) = w?;
                self.apply(checked, after, sigs, update);
            }
            match (cur, verified, built) {
                (Some(c), Some(Err(source)), _) => return Err(ChainError::Invalid { hash: c.hash, source }),
                (Some(checked), Some(Ok(sigs)), Some(built)) => {
                    base = (built.state, built.commitment, built.prune);
                    ready = Some(Ready { checked, built, sigs });
                }
                _ => {}
            }
            match checked_next {
                Some(Ok(c)) => {
                    next = Some(c);
                    index += 1;
                }
                Some(Err(e)) => stop = Some(e),
                None => {}
            }
        }
        stop.map_or(Ok(()), Err)
    }

    /// Reads `hash`'s inputs (after `overlay`) and checks every rule but
    /// signatures.
    pub(super) fn check(&self, hash: &Hash256, overlay: &Overlay) -> Result<Checked, ChainError> {
        let started = Instant::now();
        let entry = self.index.get(hash).cloned().ok_or(ChainError::UnknownParent(*hash))?;
        let block = match self.unwritten.get(hash) {
            Some(Some(b)) => b.clone(),
            _ => Arc::new(self.store.block(hash)?.ok_or_else(|| StoreError::Corrupt {
                what: "block",
                key: hash.to_hex(),
                reason: "body missing for a block marked as stored".into(),
            })?),
        };
        let ctx = ConnectContext {
            genesis: self.spec.genesis_hash(),
            coinbase_maturity: self.spec.coinbase_maturity,
            subsidy: block_subsidy(&self.spec, entry.height),
        };
        let coins = read_inputs(&self.store, overlay, &block)?;
        let pending = connect_block_deferred(&block, entry.height, &ctx, &coins)
            .map_err(|source| ChainError::Invalid { hash: *hash, source })?;
        let overlay = overlay_of(&pending.outcome);
        Ok(Checked { hash: *hash, entry, block, pending, overlay, started })
    }

    /// The batch that connects `c` on top of `state`, `commitment` and the
    /// prune height: its body and header too when they were not written
    /// yet, and the deletes of the bodies it pushes out of a pruned node's
    /// window (one batch per block).
    fn build<'s>(&self, store: &'s Store, c: &Checked, (mut state, mut commitment, prune): AfterBlock) -> Built<'s> {
        let (hash, height, outcome) = (&c.hash, c.entry.height, &c.pending.outcome);
        let mut batch = store.batch();
        if let Some(Some(body)) = self.unwritten.get(hash) {
            batch.put_block(hash, body);
        }
        for (op, coin) in &outcome.spent {
            batch.remove_coin(op, coin);
            commitment.remove(op, coin);
            state.spend(coin.output.value);
        }
        for (op, coin) in &outcome.created {
            batch.add_coin(op, coin);
            commitment.add(op, coin);
            state.create(coin.output.value);
        }
        batch.put_undo(hash, &outcome.spent);
        for (txid, (index, addresses)) in super::update::tx_addresses(&c.block, &outcome.txids, &outcome.spent) {
            batch.put_tx(&txid, &TxLocation { block: *hash, height, index });
            for a in addresses {
                batch.add_history(&a, height, &txid);
            }
        }
        batch.put_height(height, hash);
        let mut record = c.entry.record();
        record.status = BlockStatus::Valid;
        batch.put_header(hash, &record);
        state.tip = *hash;
        state.height = height;
        state.commitment = commitment.to_hash().0;
        batch.put_chain_state(&state);
        let prune = prune.map(|current| self.prune_into(&mut batch, height, current));
        Built { batch, state, commitment, prune }
    }

    /// Makes a written block the tip in memory.
    fn apply(
        &mut self,
        c: Checked,
        (state, commitment, prune): AfterBlock,
        (sigs, cached): (usize, usize),
        update: &mut TipUpdate,
    ) {
        self.state = state;
        self.commitment = commitment;
        self.prune = prune;
        self.active.push(c.hash);
        self.index.set_status(&c.hash, BlockStatus::Valid);
        self.unwritten.remove(&c.hash);
        tracing::debug!(
            hash = %c.hash, height = c.entry.height.0, txs = c.block.transactions.len(),
            sigs, cached, spent = c.pending.outcome.spent.len(),
            ms = c.started.elapsed().as_millis() as u64, "connected block"
        );
        update.push_connected(ConnectedBlock::new(c.block, c.entry.height, c.pending.outcome.txids));
    }
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
