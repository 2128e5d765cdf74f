//! Moving the active chain: pick the most-work candidate, disconnect to the
//! fork point, connect the new branch (`connect`: a pipeline). Each connect
//! or disconnect is one atomic batch (UTXO changes, undo, indexes, tip), so
//! a process killed at any instant restarts on a consistent tip.

use super::{Chain, ChainError, TipUpdate};
use crate::store::StoreError;
use lode_core::tx::OutPoint;
use lode_core::validation::Coin;
use lode_core::{Address, Block, Hash256, Transaction};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

impl Chain {
    /// Moves to the best candidate until the tip is the most-work valid
    /// block (ties: first seen, also after a reorg that failed part-way).
    /// Every block disconnected or connected is recorded in `update` as it
    /// happens, so a store error part-way still tells the caller (and the
    /// mempool and miner after it) where the tip went.
    pub(super) fn activate_best_chain(&mut self, update: &mut TipUpdate) -> Result<(), ChainError> {
        while let Some(best) = self.index.best_candidate() {
            // Candidates are ordered by work, then arrival: the tip stays
            // unless a candidate beats it by that order.
            if best == self.state.tip {
                break;
            }
            let tip_work = self.tip_entry().work;
            let Some(best_entry) = self.index.get(&best) else { break };
            if best_entry.work < tip_work {
                break;
            }
            // Branch from the fork point up to `best`.
            let mut branch = Vec::new();
            let mut cur = best;
            while !self.is_active(&cur) {
                branch.push(cur);
                match self.index.get(&cur) {
                    Some(e) if e.height.0 > 0 => cur = e.header.prev_hash,
                    _ => break,
                }
            }
            let fork_height = self.index.get(&cur).map(|e| e.height).unwrap_or_default();
            if self.reorg_too_deep(&best, fork_height) {
                // Not invalid: only unreachable from here. Dropped as a
                // candidate so the loop moves on (a new block on that
                // branch is offered, and refused, again).
                self.index.remove_candidate(&best);
                continue;
            }
            while self.state.height > fork_height {
                let height = self.state.height;
                let block = self.disconnect_tip()?;
                update.push_disconnected(block, height);
            }
            branch.reverse();
            match self.connect_branch(&branch, update) {
                Ok(()) => {}
                Err(ChainError::Invalid { hash, source }) => {
                    tracing::warn!(%hash, %source, "block failed to connect; marking it and its descendants invalid");
                    self.mark_invalid(&hash)?;
                    update.invalid.push((hash, source));
                }
                Err(e) => return Err(e),
            }
        }
        let tip_work = self.tip_entry().work;
        self.index.prune_candidates(tip_work);
        Ok(())
    }

    /// Disconnects the tip using its undo data.
    fn disconnect_tip(&mut self) -> Result<Arc<Block>, ChainError> {
        let hash = self.state.tip;
        let entry = self.tip_entry().clone();
        let corrupt = |reason: &str| StoreError::Corrupt { what: "block", key: hash.to_hex(), reason: reason.into() };
        if entry.height.0 == 0 {
            return Err(corrupt("cannot disconnect genesis").into());
        }
        let block = self.store.block(&hash)?.ok_or_else(|| corrupt("tip body missing"))?;
        let spent = self.store.undo(&hash)?.ok_or_else(|| corrupt("undo data missing"))?;
        let mut state = self.state;
        let mut commitment = self.commitment;
        let mut batch = self.store.batch();
        let spent_in_block: HashSet<OutPoint> =
            block.transactions.iter().skip(1).flat_map(|t| t.inputs.iter().map(|i| i.prevout)).collect();
        let txids: Vec<Hash256> = block.transactions.iter().map(Transaction::txid).collect();
        for (index, (tx, &txid)) in block.transactions.iter().zip(&txids).enumerate() {
            for (vout, output) in tx.outputs.iter().enumerate() {
                let op = OutPoint { txid, vout: vout as u32 };
                if spent_in_block.contains(&op) {
                    continue;
                }
                let coin = Coin { output: *output, height: entry.height, coinbase: index == 0 };
                batch.remove_coin(&op, &coin);
                commitment.remove(&op, &coin);
                state.spend(output.value);
            }
        }
        for (op, coin) in &spent {
            batch.add_coin(op, coin);
            commitment.add(op, coin);
            state.create(coin.output.value);
        }
        for (txid, (_, addresses)) in tx_addresses(&block, &txids, &spent) {
            batch.delete_tx(&txid);
            for a in addresses {
                batch.remove_history(&a, entry.height, &txid);
            }
        }
        batch.delete_undo(&hash);
        batch.delete_height(entry.height);
        let parent = entry.header.prev_hash;
        state.tip = parent;
        state.height = lode_core::Height(entry.height.0 - 1);
        state.commitment = commitment.to_hash().0;
        batch.put_chain_state(&state);
        self.store.write(batch, self.config.sync_writes)?;
        self.state = state;
        self.commitment = commitment;
        self.active.pop();
        // It is still a valid block: a candidate again if work says so.
        self.index.add_candidate(&hash);
        Ok(Arc::new(block))
    }
}

/// For each transaction of the block (`txids` its ids in block order): its
/// position and every address it pays or spends from (for the address
/// history index).
pub(super) fn tx_addresses(
    block: &Block,
    txids: &[Hash256],
    spent: &[(OutPoint, Coin)],
) -> Vec<(Hash256, (u32, Vec<Address>))> {
    let mut owners: HashMap<OutPoint, Address> = spent.iter().map(|(op, c)| (*op, c.output.address)).collect();
    let mut out = Vec::with_capacity(block.transactions.len());
    for (index, (tx, &txid)) in block.transactions.iter().zip(txids).enumerate() {
        let mut addrs: Vec<Address> = Vec::new();
        for input in tx.inputs.iter().skip(usize::from(tx.is_coinbase())) {
            if let Some(a) = owners.get(&input.prevout) {
                addrs.push(*a);
            }
        }
        for (vout, o) in tx.outputs.iter().enumerate() {
            owners.insert(OutPoint { txid, vout: vout as u32 }, o.address);
            addrs.push(o.address);
        }
        addrs.sort();
        addrs.dedup();
        out.push((txid, (index as u32, addrs)));
    }
    out
}
