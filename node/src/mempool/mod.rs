//! The transaction memory pool: transactions valid against the tip's UTXO
//! set (plus their unconfirmed parents), waiting for a block. Signatures
//! checked here go into the shared signature cache so the block that mines
//! them connects without verifying them again.
//!
//! Synchronous by design: the node wraps it in a mutex. Policy (fee floor,
//! size cap, chain limits, expiry) is separate from consensus: only
//! [`MempoolError::Invalid`] and [`MempoolError::Coinbase`] mean the sender
//! broke a rule.//!
//! This module holds the pool itself and its read-only queries; the parts
//! live in `types` (policy, errors, entries), `admit` (admission), `replace`
//! (conflicts and replace-by-fee), `remove` (blocks, reorgs, expiry),
//! `graph` (the dependency graph) and `select` (block templates).

mod admit;
mod graph;
mod remove;
mod replace;
mod select;
mod types;

pub use admit::verify_unlocked;
pub use graph::FeeRate;
pub use types::{AcceptedTx, Entry, MempoolError, MempoolPolicy};

use graph::Slot;
use lode_core::tx::OutPoint;
use lode_core::validation::{Coin, UtxoView};
use lode_core::{Address, Hash256, Height, Transaction, TxOut};
use std::collections::{BTreeSet, HashMap};

#[cfg(test)]
thread_local! {
    /// Transactions `outputs_to` looked at on this thread (tests count
    /// what a query costs).
    pub(crate) static OUTPUT_SCANS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The pool.
pub struct Mempool {
    policy: MempoolPolicy,
    slots: HashMap<Hash256, Slot>,
    /// Which mempool transaction spends each outpoint.
    spends: HashMap<OutPoint, Hash256>,
    /// Eviction order: (score, txid), cheapest first.
    by_score: BTreeSet<(FeeRate, Hash256)>,
    /// Transactions paying or spending from each address: address queries
    /// cost what they return, not a scan of the pool.
    by_address: HashMap<Address, BTreeSet<Hash256>>,
    bytes: usize,
}

/// The chain's UTXO set overlaid with the mempool's own outputs.
struct PoolView<'a, V: UtxoView> {
    base: &'a V,
    pool: &'a Mempool,
    height: Height,
}

impl<V: UtxoView> UtxoView for PoolView<'_, V> {
    fn coin(&self, op: &OutPoint) -> Option<Coin> {
        if let Some(s) = self.pool.slots.get(&op.txid) {
            return s.entry.tx.outputs.get(op.vout as usize).map(|o| Coin {
                output: *o,
                height: self.height,
                coinbase: false,
            });
        }
        self.base.coin(op)
    }
}

impl Mempool {
    /// An empty pool.
    pub fn new(policy: MempoolPolicy) -> Mempool {
        Mempool {
            policy,
            slots: HashMap::new(),
            spends: HashMap::new(),
            by_score: BTreeSet::new(),
            by_address: HashMap::new(),
            bytes: 0,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &MempoolPolicy {
        &self.policy
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Total encoded bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether a transaction is held.
    pub fn contains(&self, txid: &Hash256) -> bool {
        self.slots.contains_key(txid)
    }

    /// A held transaction (cloned).
    pub fn get(&self, txid: &Hash256) -> Option<Transaction> {
        self.slots.get(txid).map(|s| s.entry.tx.clone())
    }

    /// A held transaction with its fee, size and arrival time.
    pub fn entry(&self, txid: &Hash256) -> Option<&Entry> {
        self.slots.get(txid).map(|s| &s.entry)
    }

    /// Ids of every held transaction.
    pub fn txids(&self) -> Vec<Hash256> {
        self.slots.keys().copied().collect()
    }

    /// Every held transaction with its fee, size and arrival time.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.slots.values().map(|s| &s.entry)
    }

    /// Every held transaction.
    pub fn transactions(&self) -> impl Iterator<Item = &Transaction> {
        self.slots.values().map(|s| &s.entry.tx)
    }

    /// The mempool transaction spending `op`, if any.
    pub fn spends(&self, op: &OutPoint) -> Option<Hash256> {
        self.spends.get(op).copied()
    }

    /// Same as [`Mempool::spends`] (older name).
    pub fn spender(&self, op: &OutPoint) -> Option<Hash256> {
        self.spends(op)
    }

    /// Every outpoint some mempool transaction spends (chain coins and
    /// outputs of other mempool transactions alike).
    pub fn spent_outpoints(&self) -> impl Iterator<Item = &OutPoint> {
        self.spends.keys()
    }

    /// Unconfirmed outputs paying `address` that no mempool transaction
    /// spends: what an unconfirmed balance adds.
    pub fn outputs_to(&self, address: &Address) -> Vec<(OutPoint, TxOut)> {
        let mut out = Vec::new();
        // Through the address index: a public explorer page asks for any
        // address, and a scan of the whole pool (under the chain lock too)
        // cost every output the pool holds.
        let paying = self.by_address.get(address).into_iter().flatten();
        for (txid, s) in paying.filter_map(|t| self.slots.get(t).map(|s| (t, s))) {
            #[cfg(test)]
            OUTPUT_SCANS.with(|n| n.set(n.get() + 1));
            for (vout, o) in s.entry.tx.outputs.iter().enumerate() {
                let op = OutPoint { txid: *txid, vout: vout as u32 };
                if o.address == *address && !self.spends.contains_key(&op) {
                    out.push((op, *o));
                }
            }
        }
        out
    }

    /// Held transactions that pay or spend from `address`.
    pub fn touching(&self, address: &Address) -> Vec<&Entry> {
        self.by_address.get(address).into_iter().flatten().filter_map(|t| self.slots.get(t).map(|s| &s.entry)).collect()
    }

    /// Fee and size of a held transaction with all its in-pool descendants.
    pub fn descendant_package(&self, txid: &Hash256) -> Option<FeeRate> {
        self.slots.get(txid).map(|s| s.descendants)
    }

    /// Sizes of a held transaction's in-pool ancestor and descendant
    /// packages, itself included in both (as Bitcoin Core counts them).
    pub fn package_counts(&self, txid: &Hash256) -> Option<(usize, usize)> {
        self.slots.get(txid).map(|s| (s.ancestor_count, s.descendant_count))
    }
}

#[cfg(test)]
mod tests;
