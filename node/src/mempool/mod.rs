//! The transaction memory pool: transactions valid against the tip's UTXO
//! set (plus their unconfirmed parents), waiting for a block. Signatures
//! checked here go into the shared signature cache so the block that mines
//! them connects without verifying them again.

mod select;

use lode_core::crypto::SigCache;
use lode_core::tx::OutPoint;
use lode_core::validation::{
    check_transaction, check_tx_inputs, verify_sig_checks, Coin, ConnectContext, TxError, UtxoView,
};
use lode_core::{Amount, Block, Hash256, Height, Transaction};
use std::collections::{HashMap, HashSet};

/// Admission and size rules (not consensus).
#[derive(Clone, Debug)]
pub struct MempoolPolicy {
    /// Minimum fee rate, base units per byte.
    pub min_fee_rate: u64,
    /// Total bytes of transactions held before the cheapest are evicted.
    pub max_bytes: usize,
    /// Longest chain of unconfirmed ancestors (including the new one).
    pub max_chain: usize,
    /// Seconds after which an unmined transaction is dropped.
    pub expiry_secs: u64,
    /// Largest transaction relayed.
    pub max_tx_size: usize,
}

impl Default for MempoolPolicy {
    fn default() -> Self {
        MempoolPolicy {
            min_fee_rate: 1,
            max_bytes: 64 << 20,
            max_chain: 25,
            expiry_secs: 14 * 24 * 3600,
            max_tx_size: 100_000,
        }
    }
}

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Breaks a consensus rule.
    #[error("invalid transaction: {0}")]
    Invalid(#[from] TxError),
    /// Coinbases only come in blocks.
    #[error("a coinbase cannot enter the mempool")]
    Coinbase,
    /// Already in the mempool or the chain.
    #[error("transaction {0} is already known")]
    AlreadyKnown(Hash256),
    /// Spends an outpoint a mempool transaction already spends.
    #[error("conflicts with mempool transaction {with}: both spend {}:{}", .outpoint.txid, .outpoint.vout)]
    Conflict {
        /// The contested outpoint.
        outpoint: OutPoint,
        /// The transaction already spending it.
        with: Hash256,
    },
    /// An input is neither unspent in the chain nor created by the mempool.
    #[error("input {index} ({}:{}) is missing or already spent", .outpoint.txid, .outpoint.vout)]
    MissingInputs {
        /// Input index.
        index: usize,
        /// The outpoint.
        outpoint: OutPoint,
    },
    /// Pays too little.
    #[error("fee {fee} for {size} bytes is below the minimum relay fee of {required}")]
    FeeTooLow {
        /// Fee paid.
        fee: u64,
        /// Size.
        size: usize,
        /// Fee required.
        required: u64,
    },
    /// Too many unconfirmed ancestors.
    #[error("chain of {length} unconfirmed transactions exceeds the limit of {limit}")]
    ChainTooLong {
        /// Length with this transaction.
        length: usize,
        /// Limit.
        limit: usize,
    },
    /// Full, and this transaction pays less than what it would evict.
    #[error("mempool full: fee rate too low to evict anything")]
    MempoolFull,
    /// Larger than the relay limit.
    #[error("transaction of {size} bytes exceeds the relay limit of {max}")]
    TooLarge {
        /// Size.
        size: usize,
        /// Limit.
        max: usize,
    },
}

impl MempoolError {
    /// Whether the sender broke a consensus rule (and deserves a penalty).
    pub fn is_consensus_invalid(&self) -> bool {
        matches!(self, MempoolError::Invalid(_) | MempoolError::Coinbase)
    }
}

/// A held transaction.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The transaction.
    pub tx: Transaction,
    /// Fee paid.
    pub fee: Amount,
    /// Encoded size.
    pub size: usize,
    /// Arrival time.
    pub time: u64,
}

impl Entry {
    /// Fee per byte, scaled by 1000 to keep integer precision.
    pub fn fee_rate_milli(&self) -> u64 {
        self.fee.units().saturating_mul(1000) / self.size.max(1) as u64
    }
}

/// The pool.
pub struct Mempool {
    policy: MempoolPolicy,
    entries: HashMap<Hash256, Entry>,
    /// Which mempool transaction spends each outpoint.
    spends: HashMap<OutPoint, Hash256>,
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
        if let Some(e) = self.pool.entries.get(&op.txid) {
            return e.tx.outputs.get(op.vout as usize).map(|o| Coin {
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
        Mempool { policy, entries: HashMap::new(), spends: HashMap::new(), bytes: 0 }
    }

    /// The policy.
    pub fn policy(&self) -> &MempoolPolicy {
        &self.policy
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total encoded bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether a transaction is held.
    pub fn contains(&self, txid: &Hash256) -> bool {
        self.entries.contains_key(txid)
    }

    /// A held transaction.
    pub fn get(&self, txid: &Hash256) -> Option<Transaction> {
        self.entries.get(txid).map(|e| e.tx.clone())
    }

    /// Ids of every held transaction.
    pub fn txids(&self) -> Vec<Hash256> {
        self.entries.keys().copied().collect()
    }

    /// Every held transaction.
    pub fn transactions(&self) -> impl Iterator<Item = &Transaction> {
        self.entries.values().map(|e| &e.tx)
    }

    /// The mempool transaction spending `op`, if any.
    pub fn spender(&self, op: &OutPoint) -> Option<Hash256> {
        self.spends.get(op).copied()
    }

    /// Validates `tx` against `view` (the tip's UTXO set) and the pool, and
    /// admits it. `next_height` is the height of the next block.
    pub fn accept(
        &mut self,
        tx: Transaction,
        view: &impl UtxoView,
        next_height: Height,
        ctx: &ConnectContext,
        sig_cache: &SigCache,
        now: u64,
    ) -> Result<Hash256, MempoolError> {
        let txid = tx.txid();
        if self.entries.contains_key(&txid) {
            return Err(MempoolError::AlreadyKnown(txid));
        }
        let size = tx.encoded_size();
        if size > self.policy.max_tx_size {
            return Err(MempoolError::TooLarge { size, max: self.policy.max_tx_size });
        }
        check_transaction(&tx, self.policy.max_tx_size)?;
        if tx.is_coinbase() {
            return Err(MempoolError::Coinbase);
        }
        for input in &tx.inputs {
            if let Some(with) = self.spends.get(&input.prevout) {
                return Err(MempoolError::Conflict { outpoint: input.prevout, with: *with });
            }
        }
        let pool_view = PoolView { base: view, pool: self, height: next_height };
        let (fee, checks) = match check_tx_inputs(&tx, next_height, ctx, &pool_view) {
            Ok(r) => r,
            Err(TxError::MissingOrSpentInput { index, outpoint }) => {
                return Err(MempoolError::MissingInputs { index, outpoint })
            }
            Err(e) => return Err(e.into()),
        };
        let required = self.policy.min_fee_rate.saturating_mul(size as u64);
        if fee.units() < required {
            return Err(MempoolError::FeeTooLow { fee: fee.units(), size, required });
        }
        let length = self.ancestors(&tx).len() + 1;
        if length > self.policy.max_chain {
            return Err(MempoolError::ChainTooLong { length, limit: self.policy.max_chain });
        }
        if let Err(i) = verify_sig_checks(&checks, Some(sig_cache)) {
            return Err(TxError::BadSignature(i).into());
        }
        sig_cache.insert_all(&checks);
        let entry = Entry { tx, fee, size, time: now };
        self.make_room(&entry)?;
        for input in &entry.tx.inputs {
            self.spends.insert(input.prevout, txid);
        }
        self.bytes += size;
        self.entries.insert(txid, entry);
        Ok(txid)
    }

    /// Evicts the cheapest packages until `entry` fits, or refuses it.
    fn make_room(&mut self, entry: &Entry) -> Result<(), MempoolError> {
        while self.bytes + entry.size > self.policy.max_bytes {
            let Some((victim, rate)) =
                self.entries.iter().map(|(id, e)| (*id, self.package_rate(id, e))).min_by_key(|(_, r)| *r)
            else {
                return Err(MempoolError::MempoolFull);
            };
            if rate >= entry.fee_rate_milli() {
                return Err(MempoolError::MempoolFull);
            }
            self.remove_with_descendants(&victim);
        }
        Ok(())
    }

    /// Fee rate of a transaction with its descendants (what evicting it frees).
    fn package_rate(&self, txid: &Hash256, e: &Entry) -> u64 {
        let (mut fee, mut size) = (e.fee.units(), e.size);
        for d in self.descendants(txid) {
            if let Some(de) = self.entries.get(&d) {
                fee += de.fee.units();
                size += de.size;
            }
        }
        fee.saturating_mul(1000) / size.max(1) as u64
    }

    /// Unconfirmed ancestors of `tx` in the pool.
    fn ancestors(&self, tx: &Transaction) -> HashSet<Hash256> {
        let mut out = HashSet::new();
        let mut stack: Vec<Hash256> =
            tx.inputs.iter().map(|i| i.prevout.txid).filter(|t| self.entries.contains_key(t)).collect();
        while let Some(t) = stack.pop() {
            if out.insert(t) {
                if let Some(e) = self.entries.get(&t) {
                    stack.extend(e.tx.inputs.iter().map(|i| i.prevout.txid).filter(|p| self.entries.contains_key(p)));
                }
            }
        }
        out
    }

    /// Pool transactions spending outputs of `txid`, transitively.
    fn descendants(&self, txid: &Hash256) -> Vec<Hash256> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![*txid];
        while let Some(t) = stack.pop() {
            let Some(e) = self.entries.get(&t) else { continue };
            for vout in 0..e.tx.outputs.len() {
                if let Some(child) = self.spends.get(&OutPoint { txid: t, vout: vout as u32 }) {
                    if seen.insert(*child) {
                        out.push(*child);
                        stack.push(*child);
                    }
                }
            }
        }
        out
    }

    fn remove_one(&mut self, txid: &Hash256) -> Option<Entry> {
        let e = self.entries.remove(txid)?;
        for input in &e.tx.inputs {
            if self.spends.get(&input.prevout) == Some(txid) {
                self.spends.remove(&input.prevout);
            }
        }
        self.bytes -= e.size;
        Some(e)
    }

    fn remove_with_descendants(&mut self, txid: &Hash256) {
        let mut all = self.descendants(txid);
        all.push(*txid);
        for t in all {
            self.remove_one(&t);
        }
    }

    /// Drops the block's transactions and everything that now conflicts
    /// with it (with their descendants).
    pub fn remove_for_block(&mut self, block: &Block) {
        for tx in block.transactions.iter().skip(1) {
            let txid = tx.txid();
            // Mined: its children stay valid (their parent is now confirmed).
            self.remove_one(&txid);
            for input in &tx.inputs {
                if let Some(other) = self.spends.get(&input.prevout).copied() {
                    if other != txid {
                        self.remove_with_descendants(&other);
                    }
                }
            }
        }
    }

    /// Re-admits transactions of disconnected blocks (oldest first); those
    /// no longer valid are dropped.
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
            if self.accept(tx, view, next_height, ctx, sig_cache, now).is_ok() {
                admitted += 1;
            }
        }
        admitted
    }

    /// Drops transactions older than the policy's expiry.
    pub fn expire(&mut self, now: u64) -> usize {
        let old: Vec<Hash256> = self
            .entries
            .iter()
            .filter(|(_, e)| now.saturating_sub(e.time) > self.policy.expiry_secs)
            .map(|(id, _)| *id)
            .collect();
        let before = self.entries.len();
        for t in old {
            self.remove_with_descendants(&t);
        }
        before - self.entries.len()
    }
}

#[cfg(test)]
mod tests;
