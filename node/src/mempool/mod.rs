//! The transaction memory pool: transactions valid against the tip's UTXO
//! set (plus their unconfirmed parents), waiting for a block. Signatures
//! checked here go into the shared signature cache so the block that mines
//! them connects without verifying them again.
//!
//! Synchronous by design: the node wraps it in a mutex. Policy (fee floor,
//! size cap, chain limits, expiry) is separate from consensus: only
//! [`MempoolError::Invalid`] and [`MempoolError::Coinbase`] mean the sender
//! broke a rule.

mod graph;
mod select;

pub use graph::FeeRate;

use graph::Slot;
use lode_core::crypto::SigCache;
use lode_core::tx::OutPoint;
use lode_core::validation::{
    check_transaction, check_tx_inputs, verify_sig_checks, Coin, ConnectContext, TxError, UtxoView,
};
use lode_core::{Address, Amount, Block, Hash256, Height, Transaction, TxOut};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Admission and size rules (not consensus).
#[derive(Clone, Debug)]
pub struct MempoolPolicy {
    /// Minimum fee rate, base units per byte.
    pub min_fee_rate: u64,
    /// Total bytes of transactions held before the cheapest are evicted.
    pub max_bytes: usize,
    /// Most unconfirmed ancestors a transaction may have, itself included.
    pub max_chain: usize,
    /// Most unconfirmed descendants a transaction may have, itself included.
    pub max_descendants: usize,
    /// Seconds after which an unmined transaction is dropped.
    pub expiry_secs: u64,
    /// Largest transaction relayed.
    pub max_tx_size: usize,
    /// Fee rate (base units per byte) a newcomer must pay above what it
    /// evicts from a full pool or replaces.
    pub incremental_relay_fee: u64,
    /// Most transactions one replacement may evict (conflicts and their
    /// descendants together).
    pub max_replacement_evictions: usize,
}

impl Default for MempoolPolicy {
    fn default() -> Self {
        MempoolPolicy {
            min_fee_rate: 1,
            max_bytes: 64 << 20,
            max_chain: 25,
            max_descendants: 25,
            expiry_secs: 14 * 24 * 3600,
            max_tx_size: 100_000,
            incremental_relay_fee: 1,
            max_replacement_evictions: 100,
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
    /// Valid at a later height perhaps (a coinbase output mature at the
    /// sender's height, not yet at ours): refused, but not the sender's fault.
    #[error("not yet valid here: {0}")]
    Premature(TxError),
    /// Already in the mempool or the chain.
    #[error("transaction {0} is already known")]
    AlreadyKnown(Hash256),
    /// Spends an outpoint a mempool transaction already spends, and does
    /// not pay enough to replace it (full replace-by-fee, as Bitcoin Core 28).
    #[error("replacement of {with} (it spends {}:{}) refused: {why}; it must pay at least {required} (pays {fee})", .outpoint.txid, .outpoint.vout)]
    ReplacementTooCheap {
        /// A contested outpoint.
        outpoint: OutPoint,
        /// A transaction already spending it.
        with: Hash256,
        /// Which rule the fee breaks.
        why: String,
        /// Fee the newcomer pays.
        fee: u64,
        /// Smallest fee that would replace everything it conflicts with.
        required: u64,
    },
    /// Replacing would evict more transactions than the policy allows.
    #[error(
        "replacement would evict {count} transactions (conflicts and their descendants), above the limit of {limit}"
    )]
    TooManyReplacements {
        /// Transactions it would evict.
        count: usize,
        /// Limit.
        limit: usize,
    },
    /// A replacement spending an output of a transaction it replaces (it
    /// would remove its own parent).
    #[error("replacement spends output {}:{} of transaction {} it would replace", .outpoint.txid, .outpoint.vout, .outpoint.txid)]
    SpendsReplaced {
        /// The outpoint.
        outpoint: OutPoint,
    },
    /// A replacement with an unconfirmed input none of the replaced
    /// transactions had (Bitcoin Core's rule 2: its mining score could fall
    /// below theirs through a poor new parent).
    #[error("replacement adds unconfirmed input {}:{} that none of the replaced transactions spends from", .outpoint.txid, .outpoint.vout)]
    ReplacementAddsUnconfirmed {
        /// The outpoint.
        outpoint: OutPoint,
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
    #[error("{length} unconfirmed transactions in its ancestry (itself included) exceed the limit of {limit}")]
    ChainTooLong {
        /// Ancestors with this transaction (at least; counting stops past the limit).
        length: usize,
        /// Limit.
        limit: usize,
    },
    /// An unconfirmed ancestor already has the most descendants allowed.
    #[error("unconfirmed ancestor {ancestor} would have {count} descendants, above the limit of {limit}")]
    TooManyDescendants {
        /// The ancestor.
        ancestor: Hash256,
        /// Its package size with this transaction.
        count: usize,
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
    /// Its id.
    pub txid: Hash256,
    /// The transaction.
    pub tx: Transaction,
    /// Fee paid.
    pub fee: Amount,
    /// Encoded size.
    pub size: usize,
    /// Arrival time (Unix seconds).
    pub time: u64,
    /// The outputs its inputs spend, in input order (known at admission,
    /// so address queries never look them up in blocks).
    pub spent: Vec<TxOut>,
}

impl Entry {
    /// Every address it pays or spends from, each once.
    pub fn addresses(&self) -> Vec<Address> {
        let mut out: Vec<Address> = self.tx.outputs.iter().chain(&self.spent).map(|o| o.address).collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

impl Entry {
    /// Fee per byte, scaled by 1000 to keep integer precision.
    pub fn fee_rate_milli(&self) -> u64 {
        self.fee.units().saturating_mul(1000) / self.size.max(1) as u64
    }

    /// Fee over size, compared exactly.
    pub fn fee_rate(&self) -> FeeRate {
        FeeRate::new(self.fee.units(), self.size)
    }
}

/// What admission did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedTx {
    /// The admitted transaction's id.
    pub txid: Hash256,
    /// Its fee.
    pub fee: Amount,
    /// Its encoded size.
    pub size: usize,
    /// Transactions evicted to make room (cheapest packages).
    pub evicted: Vec<Hash256>,
    /// Transactions it replaced (conflicts and their descendants).
    pub replaced: Vec<Hash256>,
    /// Its unconfirmed ancestors in the pool when admitted.
    pub ancestors: usize,
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

/// What a newcomer conflicts with.
struct Conflicts {
    /// One contested outpoint and its spender (for messages).
    outpoint: OutPoint,
    with: Hash256,
    /// Transactions spending an outpoint it spends.
    direct: Vec<Hash256>,
    /// Those and all their descendants: what replacing evicts.
    all: HashSet<Hash256>,
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
        for (txid, s) in &self.slots {
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

    /// Validates `tx` against `view` (the tip's UTXO set) layered with the
    /// pool's own outputs, and admits it. `next_height` is the height of the
    /// next block; `now` is Unix seconds. Cheap checks run first; signatures
    /// last, and those that pass go into `sig_cache`.
    pub fn accept(
        &mut self,
        tx: Transaction,
        view: &impl UtxoView,
        next_height: Height,
        ctx: &ConnectContext,
        sig_cache: &SigCache,
        now: u64,
    ) -> Result<AcceptedTx, MempoolError> {
        let txid = tx.txid();
        if self.slots.contains_key(&txid) {
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
        let conflicts = self.conflicts_of(&tx)?;
        let pool_view = PoolView { base: view, pool: self, height: next_height };
        let (fee, checks) = match check_tx_inputs(&tx, next_height, ctx, &pool_view) {
            Ok(r) => r,
            Err(TxError::MissingOrSpentInput { index, outpoint }) => {
                return Err(MempoolError::MissingInputs { index, outpoint })
            }
            Err(e @ TxError::ImmatureCoinbaseSpend { .. }) => return Err(MempoolError::Premature(e)),
            Err(e) => return Err(e.into()),
        };
        let required = self.policy.min_fee_rate.saturating_mul(size as u64);
        if fee.units() < required {
            return Err(MempoolError::FeeTooLow { fee: fee.units(), size, required });
        }
        let rate = FeeRate::new(fee.units(), size);
        if let Some(c) = &conflicts {
            self.check_replacement(c, rate)?;
        }
        let doomed = conflicts.as_ref().map(|c| c.all.clone()).unwrap_or_default();
        let limit = self.policy.max_chain.saturating_sub(1);
        let ancestors = self
            .ancestors_limited(&tx, limit)
            .map_err(|n| MempoolError::ChainTooLong { length: n + 1, limit: self.policy.max_chain })?;
        for a in &ancestors {
            // Replaced descendants of this ancestor leave before it gains one.
            let leaving = if doomed.is_empty() { 0 } else { self.descendants(a).intersection(&doomed).count() };
            let count = (self.slots.get(a).map_or(0, |s| s.descendant_count) + 1).saturating_sub(leaving);
            if count > self.policy.max_descendants {
                return Err(MempoolError::TooManyDescendants {
                    ancestor: *a,
                    count,
                    limit: self.policy.max_descendants,
                });
            }
        }
        let victims = self.plan_eviction(size, rate, &ancestors, &doomed).ok_or(MempoolError::MempoolFull)?;
        // Only now the expensive part: a cheap refusal costs no verification.
        if let Err(i) = verify_sig_checks(&checks, Some(sig_cache)) {
            return Err(TxError::BadSignature(i).into());
        }
        sig_cache.insert_all(&checks);
        // Every input passed check_tx_inputs against this view just now
        // (and none spends a replaced transaction, so removing those first
        // loses nothing it needs).
        let spent: Vec<TxOut> =
            tx.inputs.iter().filter_map(|i| pool_view_coin(self, view, next_height, &i.prevout)).collect();
        let mut replaced = Vec::new();
        for d in conflicts.map(|c| c.direct).unwrap_or_default() {
            replaced.extend(self.remove_tree(&d));
        }
        let mut evicted = Vec::new();
        for v in victims {
            evicted.extend(self.remove_tree(&v));
        }
        let n_ancestors = ancestors.len();
        self.link(Entry { txid, tx, fee, size, time: now, spent }, &ancestors);
        Ok(AcceptedTx { txid, fee, size, evicted, replaced, ancestors: n_ancestors })
    }

    /// The pooled transactions `tx` conflicts with, or `None`; refuses a
    /// replacement that would evict too many or spends what it replaces.
    fn conflicts_of(&self, tx: &Transaction) -> Result<Option<Conflicts>, MempoolError> {
        let mut direct: Vec<(OutPoint, Hash256)> = Vec::new();
        for input in &tx.inputs {
            if let Some(with) = self.spends.get(&input.prevout) {
                if !direct.iter().any(|(_, d)| d == with) {
                    direct.push((input.prevout, *with));
                }
            }
        }
        let Some(&(outpoint, with)) = direct.first() else { return Ok(None) };
        let limit = self.policy.max_replacement_evictions;
        let mut all = HashSet::new();
        for (_, d) in &direct {
            all.insert(*d);
            // Stop early: a huge family must not cost a full walk.
            if all.len() > limit {
                break;
            }
            all.extend(self.descendants(d));
            if all.len() > limit {
                break;
            }
        }
        if all.len() > limit {
            return Err(MempoolError::TooManyReplacements { count: all.len(), limit });
        }
        for input in &tx.inputs {
            if all.contains(&input.prevout.txid) {
                return Err(MempoolError::SpendsReplaced { outpoint: input.prevout });
            }
        }
        // Bitcoin Core's rule 2: unconfirmed parents only where an original
        // already had them.
        let parents_of_originals: HashSet<Hash256> = direct
            .iter()
            .filter_map(|(_, d)| self.slots.get(d))
            .flat_map(|s| s.entry.tx.inputs.iter().map(|i| i.prevout.txid))
            .collect();
        for input in &tx.inputs {
            let p = input.prevout.txid;
            if self.slots.contains_key(&p) && !parents_of_originals.contains(&p) {
                return Err(MempoolError::ReplacementAddsUnconfirmed { outpoint: input.prevout });
            }
        }
        Ok(Some(Conflicts { outpoint, with, direct: direct.into_iter().map(|(_, d)| d).collect(), all }))
    }

    /// Bitcoin Core's fee rules for a replacement: a higher fee rate than
    /// each transaction it directly conflicts with, and a fee covering
    /// everything it evicts plus its own relay at the incremental rate (so
    /// a chain of replacements cannot relay for free).
    fn check_replacement(&self, c: &Conflicts, rate: FeeRate) -> Result<(), MempoolError> {
        let size = rate.size;
        // Smallest fee with a strictly higher rate than each direct conflict.
        let mut by_rate = 0u64;
        let mut worst_rate = FeeRate::default();
        for d in &c.direct {
            if let Some(s) = self.slots.get(d) {
                let r = s.entry.fee_rate();
                let need = u64::try_from(u128::from(r.fee) * u128::from(size) / u128::from(r.size.max(1)) + 1)
                    .unwrap_or(u64::MAX);
                if need > by_rate {
                    by_rate = need;
                    worst_rate = r;
                }
            }
        }
        let evicted_fees: u64 =
            c.all.iter().filter_map(|t| self.slots.get(t)).map(|s| s.entry.fee.units()).fold(0, u64::saturating_add);
        let by_total = evicted_fees.saturating_add(self.policy.incremental_relay_fee.saturating_mul(size));
        let required = by_rate.max(by_total);
        if rate.fee >= required {
            return Ok(());
        }
        let why = if rate.fee < by_rate {
            format!(
                "its fee rate {:.2}/byte is not above {:.2}/byte of the transaction it replaces",
                rate.per_byte(),
                worst_rate.per_byte()
            )
        } else {
            format!(
                "it must pay the {evicted_fees} in fees of the {} transactions it evicts plus {} per byte of its own {size} bytes",
                c.all.len(),
                self.policy.incremental_relay_fee
            )
        };
        Err(MempoolError::ReplacementTooCheap { outpoint: c.outpoint, with: c.with, why, fee: rate.fee, required })
    }

    /// Drops the block's transactions and everything that now conflicts
    /// with it (with their descendants). Returns the conflicting
    /// transactions removed (not the mined ones).
    pub fn remove_for_block(&mut self, block: &Block) -> Vec<Hash256> {
        let mut conflicts = Vec::new();
        let mut relink = false;
        for tx in block.transactions.iter().skip(1) {
            let txid = tx.txid();
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
    /// skipped), then re-checks what the pool already held against the new
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
            if self.accept(tx, view, next_height, ctx, sig_cache, now).is_ok() {
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

    /// Sizes of a held transaction's in-pool ancestor and descendant
    /// packages, itself included in both (as Bitcoin Core counts them).
    pub fn package_counts(&self, txid: &Hash256) -> Option<(usize, usize)> {
        self.slots.get(txid).map(|s| (s.ancestor_count, s.descendant_count))
    }
}

/// The output `op` names, in the pool or under it.
fn pool_view_coin(pool: &Mempool, view: &impl UtxoView, height: Height, op: &OutPoint) -> Option<TxOut> {
    PoolView { base: view, pool, height }.coin(op).map(|c| c.output)
}

/// Whether every input of `tx` exists in `view` and, if a coinbase output,
/// has matured by `height`.
fn inputs_available(tx: &Transaction, height: Height, ctx: &ConnectContext, view: &impl UtxoView) -> bool {
    tx.inputs.iter().all(|i| match view.coin(&i.prevout) {
        None => false,
        Some(c) => !c.coinbase || height.0.saturating_sub(c.height.0) >= ctx.coinbase_maturity,
    })
}

#[cfg(test)]
mod tests;
