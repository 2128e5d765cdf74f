//! The extra pool: a few recent transactions that are not in the mempool
//! but may well be in the next block (a conflicting spend the mempool
//! refused, a transaction that lost a replacement race, one that arrived
//! before its parent), offered to block reconstruction beside the mempool
//! as Bitcoin Core's `vExtraTxnForCompact` is. Bounded in count and bytes;
//! the oldest leaves first.

use lode_core::{Hash256, Transaction};
use std::collections::{HashSet, VecDeque};

/// Transactions kept by default.
pub const EXTRA_POOL_TXS: usize = 512;
/// Bytes kept at most.
pub const EXTRA_POOL_BYTES: usize = 2 * 1024 * 1024;

/// A bounded first-in first-out pool of transactions.
#[derive(Debug)]
pub struct ExtraPool {
    txs: VecDeque<(Hash256, Transaction, usize)>,
    ids: HashSet<Hash256>,
    bytes: usize,
    max_txs: usize,
    max_bytes: usize,
}

impl Default for ExtraPool {
    fn default() -> Self {
        ExtraPool::new(EXTRA_POOL_TXS, EXTRA_POOL_BYTES)
    }
}

impl ExtraPool {
    /// An empty pool of at most `max_txs` transactions and `max_bytes`.
    pub fn new(max_txs: usize, max_bytes: usize) -> ExtraPool {
        ExtraPool { txs: VecDeque::new(), ids: HashSet::new(), bytes: 0, max_txs, max_bytes }
    }

    /// Keeps `tx`, evicting the oldest beyond the bounds.
    pub fn insert(&mut self, tx: Transaction) {
        let size = tx.encoded_size();
        if self.max_txs == 0 || size > self.max_bytes {
            return;
        }
        let txid = tx.txid();
        if !self.ids.insert(txid) {
            return;
        }
        self.txs.push_back((txid, tx, size));
        self.bytes += size;
        while self.txs.len() > self.max_txs || self.bytes > self.max_bytes {
            let Some((id, _, s)) = self.txs.pop_front() else { break };
            self.ids.remove(&id);
            self.bytes = self.bytes.saturating_sub(s);
        }
    }

    /// Calls `f` with every transaction.
    pub fn scan(&self, f: &mut dyn FnMut(&Hash256, &Transaction)) {
        for (id, tx, _) in &self.txs {
            f(id, tx);
        }
    }
}
