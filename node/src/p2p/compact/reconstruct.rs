//! Rebuilding a block from its compact form: prefilled transactions go to
//! their slots, short ids are matched against the mempool and the extra
//! pool, and what is left is asked of the sender. A short id that two of
//! our transactions share leaves its slot empty (asked for, as BIP152
//! says); two equal short ids inside the compact block itself, or a
//! rebuilt block whose merkle root is wrong, mean the full block.

use super::encoding::CompactBlock;
use super::CompactError;
use lode_core::block::{Block, BlockHeader};
use lode_core::{Hash256, Transaction};
use std::collections::HashMap;

/// A block being rebuilt.
#[derive(Clone, Debug)]
pub struct PartialBlock {
    header: BlockHeader,
    slots: Vec<Option<Transaction>>,
    /// Slots still empty, increasing: what `getblocktxn` asks for.
    missing: Vec<u32>,
    /// Slots filled from our own transactions (not prefilled or fetched).
    from_pool: usize,
}

/// Where our own transactions come from: the mempool and the extra pool,
/// each offered as (txid, transaction).
pub trait TxSource {
    /// Calls `f` with every transaction on offer.
    fn scan(&self, f: &mut dyn FnMut(&Hash256, &Transaction));
}

impl<F: Fn(&mut dyn FnMut(&Hash256, &Transaction))> TxSource for F {
    fn scan(&self, f: &mut dyn FnMut(&Hash256, &Transaction)) {
        self(f)
    }
}

impl PartialBlock {
    /// Starts rebuilding `compact` from the transactions `sources` offer.
    /// Fails on a short-id collision inside the compact block.
    pub fn start(compact: &CompactBlock, sources: &[&dyn TxSource]) -> Result<PartialBlock, CompactError> {
        let total = compact.tx_count();
        let mut slots: Vec<Option<Transaction>> = vec![None; total];
        for p in &compact.prefilled {
            // Decoding guarantees increasing indexes inside the block.
            if let Some(slot) = slots.get_mut(p.index as usize) {
                *slot = Some(p.tx.clone());
            }
        }
        // Short ids fill the slots the prefilled transactions left, in order.
        let mut wanted: HashMap<u64, usize> = HashMap::with_capacity(compact.short_ids.len());
        let mut ids = compact.short_ids.iter();
        for (i, slot) in slots.iter().enumerate() {
            if slot.is_some() {
                continue;
            }
            let Some(id) = ids.next() else { break };
            if wanted.insert(*id, i).is_some() {
                return Err(CompactError::ShortIdCollision);
            }
        }
        let key = compact.key();
        // The txid that filled each slot, to tell a second transaction with
        // the same short id from the same transaction offered twice.
        let mut filled_by: HashMap<usize, Hash256> = HashMap::new();
        for source in sources {
            source.scan(&mut |txid, tx| {
                if wanted.is_empty() {
                    return;
                }
                let Some(&i) = wanted.get(&key.short_id(txid)) else { return };
                match filled_by.get(&i) {
                    None => {
                        filled_by.insert(i, *txid);
                        slots[i] = Some(tx.clone());
                    }
                    Some(other) if other != txid => {
                        // Which of the two is in the block? Ask the sender.
                        wanted.remove(&key.short_id(txid));
                        filled_by.remove(&i);
                        slots[i] = None;
                    }
                    Some(_) => {}
                }
            });
        }
        let missing: Vec<u32> = slots.iter().enumerate().filter(|(_, s)| s.is_none()).map(|(i, _)| i as u32).collect();
        Ok(PartialBlock { header: compact.header, slots, missing, from_pool: filled_by.len() })
    }

    /// A rebuild of a block of `count` transactions with every slot
    /// missing: the whole block asked of the sender, the fallback after a
    /// collision or a merkle mismatch.
    pub fn blank(header: BlockHeader, count: usize) -> PartialBlock {
        PartialBlock { header, slots: vec![None; count], missing: (0..count as u32).collect(), from_pool: 0 }
    }

    /// Indexes still missing (what to ask the sender for).
    pub fn missing(&self) -> &[u32] {
        &self.missing
    }

    /// Transactions that came from our own pools.
    pub fn filled_from_pool(&self) -> usize {
        self.from_pool
    }

    /// Puts the sender's `blocktxn` transactions (in the order of
    /// [`missing`](Self::missing)) into their slots and finishes the block.
    pub fn fill(mut self, txs: Vec<Transaction>) -> Result<Block, CompactError> {
        if txs.len() != self.missing.len() {
            return Err(CompactError::WrongTxCount { expected: self.missing.len(), got: txs.len() });
        }
        for (i, tx) in std::mem::take(&mut self.missing).into_iter().zip(txs) {
            if let Some(slot) = self.slots.get_mut(i as usize) {
                *slot = Some(tx);
            }
        }
        self.finish()
    }

    /// The block, once no slot is missing, if its merkle root holds; a
    /// wrong root means one of our transactions only shared a short id
    /// with the real one (or the sender lied): the full block decides.
    pub fn finish(self) -> Result<Block, CompactError> {
        if !self.missing.is_empty() {
            return Err(CompactError::WrongTxCount { expected: self.missing.len(), got: 0 });
        }
        let transactions: Vec<Transaction> = self.slots.into_iter().flatten().collect();
        let block = Block { header: self.header, transactions };
        let (root, mutated) = block.compute_merkle_root();
        if root != block.header.merkle_root || mutated {
            return Err(CompactError::MerkleMismatch);
        }
        Ok(block)
    }
}
