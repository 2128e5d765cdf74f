//! The pool as a dependency graph: unconfirmed parents and children found
//! through the spent-outpoint map, each transaction's ancestor and
//! descendant package totals kept up to date (block templates rank by the
//! first, eviction by the second), and an index ordered by eviction score so
//! the cheapest package is found in O(log n).

use super::{Entry, Mempool};
use lode_core::tx::OutPoint;
use lode_core::{Hash256, Transaction};
use std::cmp::Ordering;
use std::collections::HashSet;

/// A fee over a size, compared as fee per byte (exactly, by cross-multiplying).
#[derive(Clone, Copy, Debug, Default)]
pub struct FeeRate {
    /// Fee in base units.
    pub fee: u64,
    /// Size in bytes.
    pub size: u64,
}

impl FeeRate {
    /// `fee` over `size` bytes.
    pub fn new(fee: u64, size: usize) -> FeeRate {
        FeeRate { fee, size: size as u64 }
    }

    /// This rate with another package added.
    pub fn plus(self, other: FeeRate) -> FeeRate {
        FeeRate { fee: self.fee.saturating_add(other.fee), size: self.size.saturating_add(other.size) }
    }

    /// This rate with a part of the package taken away.
    pub fn minus(self, other: FeeRate) -> FeeRate {
        FeeRate { fee: self.fee.saturating_sub(other.fee), size: self.size.saturating_sub(other.size) }
    }

    /// Whether fee and size are both identical (not merely the same rate).
    pub fn same_as(&self, other: &FeeRate) -> bool {
        self.fee == other.fee && self.size == other.size
    }

    /// Base units per byte, rounded down (for display).
    pub fn per_byte(&self) -> f64 {
        self.fee as f64 / self.size.max(1) as f64
    }
}

impl Ord for FeeRate {
    fn cmp(&self, other: &Self) -> Ordering {
        // Fees are below 2^51 and sizes below 2^32: the products fit in u128.
        (u128::from(self.fee) * u128::from(other.size)).cmp(&(u128::from(other.fee) * u128::from(self.size)))
    }
}

impl PartialOrd for FeeRate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for FeeRate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for FeeRate {}

/// A held transaction with its graph bookkeeping.
pub(super) struct Slot {
    /// The public part.
    pub entry: Entry,
    /// Fee and size of this transaction plus all its in-pool ancestors.
    pub ancestors: FeeRate,
    /// Number of transactions in that package (itself included): a
    /// topological rank, since a child always has more than its parents.
    pub ancestor_count: usize,
    /// Fee and size of this transaction plus all its in-pool descendants.
    pub descendants: FeeRate,
    /// Number of transactions in that package (itself included).
    pub descendant_count: usize,
    /// The key under which it sits in the eviction index.
    pub evict_key: FeeRate,
}

impl Slot {
    pub(super) fn new(entry: Entry, ancestors: FeeRate, ancestor_count: usize) -> Slot {
        let own = entry.fee_rate();
        Slot { entry, ancestors, ancestor_count, descendants: own, descendant_count: 1, evict_key: own }
    }

    /// Eviction score: the better of its own rate and its package's rate, so
    /// a rich parent is not evicted for a cheap child (the child goes first).
    fn score(&self) -> FeeRate {
        self.entry.fee_rate().max(self.descendants)
    }
}

impl Mempool {
    /// In-pool parents of `tx` (deduplicated).
    pub(super) fn parents(&self, tx: &Transaction) -> Vec<Hash256> {
        let mut out: Vec<Hash256> = Vec::new();
        for input in &tx.inputs {
            let p = input.prevout.txid;
            if self.slots.contains_key(&p) && !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// In-pool ancestors of `tx`; `Err(n)` as soon as more than `limit` are found.
    pub(super) fn ancestors_limited(&self, tx: &Transaction, limit: usize) -> Result<HashSet<Hash256>, usize> {
        let mut out = HashSet::new();
        let mut stack = self.parents(tx);
        while let Some(t) = stack.pop() {
            if !out.insert(t) {
                continue;
            }
            if out.len() > limit {
                return Err(out.len());
            }
            if let Some(s) = self.slots.get(&t) {
                stack.extend(self.parents(&s.entry.tx));
            }
        }
        Ok(out)
    }

    /// Every in-pool ancestor of `tx`.
    pub(super) fn ancestors(&self, tx: &Transaction) -> HashSet<Hash256> {
        self.ancestors_limited(tx, usize::MAX).unwrap_or_default()
    }

    /// Size of a held transaction's ancestor package (itself included): a
    /// topological rank (a child always has more than each of its parents).
    pub(super) fn ancestor_count(&self, txid: &Hash256) -> usize {
        self.slots.get(txid).map_or(0, |s| s.ancestor_count)
    }

    /// In-pool transactions spending outputs of `txid`.
    pub(super) fn children(&self, txid: &Hash256) -> Vec<Hash256> {
        let Some(s) = self.slots.get(txid) else { return Vec::new() };
        let mut out: Vec<Hash256> = Vec::new();
        for vout in 0..s.entry.tx.outputs.len() {
            if let Some(c) = self.spends.get(&OutPoint { txid: *txid, vout: vout as u32 }) {
                if !out.contains(c) {
                    out.push(*c);
                }
            }
        }
        out
    }

    /// Every in-pool descendant of `txid` (not itself).
    pub(super) fn descendants(&self, txid: &Hash256) -> HashSet<Hash256> {
        let mut out = HashSet::new();
        let mut stack = self.children(txid);
        while let Some(t) = stack.pop() {
            if out.insert(t) {
                stack.extend(self.children(&t));
            }
        }
        out
    }

    /// Moves a slot to its current score in the eviction index.
    fn reindex(&mut self, txid: &Hash256) {
        if let Some(s) = self.slots.get_mut(txid) {
            self.by_score.remove(&(s.evict_key, *txid));
            s.evict_key = s.score();
            self.by_score.insert((s.evict_key, *txid));
        }
    }

    /// Adds a validated transaction whose in-pool ancestors are `ancestors`.
    pub(super) fn link(&mut self, entry: Entry, ancestors: &HashSet<Hash256>) {
        let txid = entry.txid;
        let own = entry.fee_rate();
        for input in &entry.tx.inputs {
            self.spends.insert(input.prevout, txid);
        }
        self.bytes += entry.size;
        for a in entry.addresses() {
            self.by_address.entry(a).or_default().insert(txid);
        }
        let package =
            ancestors.iter().filter_map(|a| self.slots.get(a)).fold(own, |acc, a| acc.plus(a.entry.fee_rate()));
        let slot = Slot::new(entry, package, ancestors.len() + 1);
        self.by_score.insert((slot.evict_key, txid));
        self.slots.insert(txid, slot);
        for a in ancestors {
            if let Some(s) = self.slots.get_mut(a) {
                s.descendants = s.descendants.plus(own);
                s.descendant_count += 1;
            }
            self.reindex(a);
        }
    }

    /// Removes one transaction, leaving its descendants (callers remove
    /// those first, or the transaction was mined and they stay valid, one
    /// ancestor fewer).
    pub(super) fn unlink(&mut self, txid: &Hash256) -> Option<Entry> {
        let descendants = self.descendants(txid);
        let slot = self.slots.remove(txid)?;
        self.by_score.remove(&(slot.evict_key, *txid));
        for input in &slot.entry.tx.inputs {
            if self.spends.get(&input.prevout) == Some(txid) {
                self.spends.remove(&input.prevout);
            }
        }
        self.bytes -= slot.entry.size;
        for a in slot.entry.addresses() {
            if let Some(set) = self.by_address.get_mut(&a) {
                set.remove(txid);
                if set.is_empty() {
                    self.by_address.remove(&a);
                }
            }
        }
        let own = slot.entry.fee_rate();
        for a in self.ancestors(&slot.entry.tx) {
            if let Some(s) = self.slots.get_mut(&a) {
                s.descendants = s.descendants.minus(own);
                s.descendant_count = s.descendant_count.saturating_sub(1);
            }
            self.reindex(&a);
        }
        for d in descendants {
            if let Some(s) = self.slots.get_mut(&d) {
                s.ancestors = s.ancestors.minus(own);
                s.ancestor_count = s.ancestor_count.saturating_sub(1);
            }
        }
        Some(slot.entry)
    }

    /// Removes `txid` and all its descendants, children before parents so
    /// every ancestor's package totals stay exact. Returns what was removed.
    pub(super) fn remove_tree(&mut self, txid: &Hash256) -> Vec<Hash256> {
        if !self.slots.contains_key(txid) {
            return Vec::new();
        }
        let mut doomed: Vec<(usize, Hash256)> =
            self.descendants(txid).into_iter().map(|d| (self.ancestor_count(&d), d)).collect();
        doomed.sort_unstable_by(|a, b| b.cmp(a));
        doomed.push((0, *txid));
        let mut removed = Vec::with_capacity(doomed.len());
        for (_, d) in doomed {
            if self.unlink(&d).is_some() {
                removed.push(d);
            }
        }
        removed
    }

    /// Recomputes every package total and the eviction index from scratch
    /// (after a reorg re-links parents under existing children).
    pub(super) fn rebuild_packages(&mut self) {
        self.by_score.clear();
        for s in self.slots.values_mut() {
            s.descendants = s.entry.fee_rate();
            s.descendant_count = 1;
        }
        let ids: Vec<Hash256> = self.slots.keys().copied().collect();
        for id in &ids {
            let Some(s) = self.slots.get(id) else { continue };
            let own = s.entry.fee_rate();
            let ancestors = self.ancestors(&s.entry.tx);
            let mut package = own;
            for a in &ancestors {
                if let Some(anc) = self.slots.get_mut(a) {
                    anc.descendants = anc.descendants.plus(own);
                    anc.descendant_count += 1;
                    package = package.plus(anc.entry.fee_rate());
                }
            }
            if let Some(s) = self.slots.get_mut(id) {
                s.ancestors = package;
                s.ancestor_count = ancestors.len() + 1;
            }
        }
        for (id, s) in self.slots.iter_mut() {
            s.evict_key = s.score();
            self.by_score.insert((s.evict_key, *id));
        }
    }

    /// The packages to evict (their roots, cheapest first) so that `size`
    /// more bytes fit, none of them scoring at least `rate` and none an
    /// ancestor of the newcomer (in `protected`); `None` if impossible.
    /// `leaving` are transactions the newcomer replaces: their bytes count
    /// as freed already.
    pub(super) fn plan_eviction(
        &self,
        size: usize,
        rate: FeeRate,
        protected: &HashSet<Hash256>,
        leaving: &HashSet<Hash256>,
    ) -> Option<Vec<Hash256>> {
        let max = self.policy.max_bytes;
        if size > max {
            return None;
        }
        let need = (self.bytes + size).saturating_sub(max);
        let mut freed: usize = leaving.iter().filter_map(|t| self.slots.get(t)).map(|s| s.entry.size).sum();
        let mut planned: HashSet<Hash256> = leaving.clone();
        let mut roots = Vec::new();
        for (score, id) in &self.by_score {
            if freed >= need {
                break;
            }
            #[cfg(test)]
            EVICTION_VISITS.with(|v| v.set(v.get() + 1));
            if planned.contains(id) || protected.contains(id) {
                continue;
            }
            // Evicting must cost the newcomer more than the victim paid:
            // the victim's rate plus the incremental relay fee, or two
            // transactions could take turns pushing each other out for free.
            let bar = FeeRate {
                fee: score.fee.saturating_add(self.policy.incremental_relay_fee.saturating_mul(score.size)),
                size: score.size,
            };
            if bar >= rate {
                return None;
            }
            for t in self.descendants(id).into_iter().chain(std::iter::once(*id)) {
                if planned.insert(t) {
                    freed += self.slots.get(&t).map_or(0, |s| s.entry.size);
                }
            }
            roots.push(*id);
        }
        (freed >= need).then_some(roots)
    }

    /// Checks the pool's bookkeeping against a recomputation (tests).
    #[cfg(test)]
    pub(super) fn assert_consistent(&self) {
        let mut bytes = 0;
        for (id, s) in &self.slots {
            bytes += s.entry.size;
            let desc = self.descendants(id);
            let total = desc
                .iter()
                .filter_map(|d| self.slots.get(d))
                .fold(s.entry.fee_rate(), |acc, d| acc.plus(d.entry.fee_rate()));
            assert!(total.same_as(&s.descendants), "package totals of {id}");
            assert_eq!(s.descendant_count, desc.len() + 1, "descendant count of {id}");
            let anc = self.ancestors(&s.entry.tx);
            let total = anc
                .iter()
                .filter_map(|a| self.slots.get(a))
                .fold(s.entry.fee_rate(), |acc, a| acc.plus(a.entry.fee_rate()));
            assert!(total.same_as(&s.ancestors), "ancestor totals of {id}");
            assert_eq!(s.ancestor_count, anc.len() + 1, "ancestor count of {id}");
            assert!(self.by_score.contains(&(s.evict_key, *id)), "index entry of {id}");
            for input in &s.entry.tx.inputs {
                assert_eq!(self.spends.get(&input.prevout), Some(id), "spend of {:?}", input.prevout);
            }
        }
        assert_eq!(self.by_score.len(), self.slots.len());
        assert_eq!(bytes, self.bytes);
        // The address index holds exactly each entry's addresses.
        let mut expected: std::collections::HashMap<lode_core::Address, std::collections::BTreeSet<Hash256>> =
            std::collections::HashMap::new();
        for (id, s) in &self.slots {
            for a in s.entry.addresses() {
                expected.entry(a).or_default().insert(*id);
            }
        }
        assert_eq!(expected, self.by_address, "address index");
    }
}

#[cfg(test)]
thread_local! {
    /// Entries of the score index one thread's eviction plans looked at: a
    /// test proves that making room walks the cheapest few, not the pool.
    pub(super) static EVICTION_VISITS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}
