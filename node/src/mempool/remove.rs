//! Removal: transactions mined by a block (and their conflicts),
//! re-admission and revalidation after a reorg, explicit removal, and
//! expiry.

use super::admit::FeeFloor;
use super::{Mempool, PoolView};
use lode_core::crypto::SigCache;
use lode_core::validation::{ConnectContext, UtxoView};
use lode_core::{Block, Hash256, Height, Transaction};

impl Mempool {
    /// Drops the block's transactions and everything that now conflicts
    /// with it (with their descendants); `txids` are the ids of the
    /// block's transactions in block order. Returns the conflicting
    /// transactions removed (not the mined ones).
    pub fn remove_for_block(&mut self, block: &Block, txids: &[Hash256]) -> Vec<Hash256> {
        debug_assert_eq!(txids.len(), block.transactions.len(), "one id per transaction");
        let mut conflicts = Vec::new();
        let mut relink = false;
        for (tx, &txid) in block.transactions.iter().zip(txids).skip(1) {
            if self.slots.contains_key(&txid) {
                // A valid block mines parents first; a parent left behind
                // would leave package totals stale.
                relink |= !self.parents(tx).is_empty();
                // Mined: its children stay valid (their parent is now confirmed).
                self.unlink(&txid);
            }
            for input in &tx.inputs {
                if let Some(other) = self.spends.get(&input.prevout).copied() {
                    if other != txid {
                        conflicts.extend(self.remove_tree(&other));
                    }
                }
            }
        }
        if relink {
            self.rebuild_packages();
        }
        conflicts
    }

    /// Re-admits transactions of disconnected blocks (oldest first; coinbases
    /// skipped; the relay fee floor waived, see [`FeeFloor::Waived`]), then re-checks what the pool already held against the new
    /// tip (see [`Mempool::revalidate`]). Those no longer valid are dropped.
    /// Returns how many of `txs` were admitted.
    pub fn readmit(
        &mut self,
        txs: Vec<Transaction>,
        view: &impl UtxoView,
        next_height: Height,
        ctx: &ConnectContext,
        sig_cache: &SigCache,
        now: u64,
    ) -> usize {
        let mut admitted = 0;
        for tx in txs {
            if tx.is_coinbase() {
                continue;
            }
            if self.admit(tx, view, next_height, ctx, sig_cache, now, FeeFloor::Waived).is_ok() {
                admitted += 1;
            }
        }
        self.revalidate(view, next_height, ctx);
        admitted
    }

    /// After the tip moved other than by connecting blocks (a reorg):
    /// drops every transaction whose inputs are no longer available or
    /// mature (with its descendants) and recomputes package totals.
    /// Signatures are not re-verified: an outpoint names its output by
    /// transaction id, so a coin that still exists is the one signed for.
    /// Returns the removed transactions.
    pub fn revalidate(&mut self, view: &impl UtxoView, next_height: Height, ctx: &ConnectContext) -> Vec<Hash256> {
        // Re-admitted parents may now sit under children the pool held:
        // refresh every package first (removals below keep them exact).
        self.rebuild_packages();
        let mut order: Vec<(usize, Hash256)> = self.slots.keys().map(|id| (self.ancestor_count(id), *id)).collect();
        order.sort_unstable();
        let mut removed = Vec::new();
        for (_, id) in order {
            let Some(slot) = self.slots.get(&id) else { continue };
            let pool_view = PoolView { base: view, pool: self, height: next_height };
            let ok = inputs_available(&slot.entry.tx, next_height, ctx, &pool_view);
            if !ok {
                removed.extend(self.remove_tree(&id));
            }
        }
        removed
    }

    /// Removes a transaction and everything spending its outputs, returns the removed ids (empty when it was not held).
    pub fn remove_with_descendants(&mut self, txid: &Hash256) -> Vec<Hash256> {
        self.remove_tree(txid)
    }

    /// Drops transactions older than the policy's expiry (with their
    /// descendants). Returns how many were dropped.
    pub fn expire(&mut self, now: u64) -> usize {
        self.expire_ids(now).len()
    }

    /// Same as [`Mempool::expire`], returning the dropped ids.
    pub fn expire_ids(&mut self, now: u64) -> Vec<Hash256> {
        let old: Vec<Hash256> = self
            .slots
            .iter()
            .filter(|(_, s)| now.saturating_sub(s.entry.time) > self.policy.expiry_secs)
            .map(|(id, _)| *id)
            .collect();
        old.iter().flat_map(|t| self.remove_tree(t)).collect()
    }
}

/// Whether every input of `tx` exists in `view` and, if a coinbase output,
/// has matured by `height`.
fn inputs_available(tx: &Transaction, height: Height, ctx: &ConnectContext, view: &impl UtxoView) -> bool {
    tx.inputs.iter().all(|i| match view.coin(&i.prevout) {
        None => false,
        Some(c) => !c.coinbase || height.0.saturating_sub(c.height.0) >= ctx.coinbase_maturity,
    })
}
