//! Choosing transactions for a block: best ancestor-package fee rate first
//! (a rich child pulls in its poor parent), every parent before its
//! children, within a byte budget. Once a package is in, its descendants'
//! package rates are recomputed without it (Bitcoin Core's algorithm).

use super::graph::FeeRate;
use super::Mempool;
use lode_core::{Amount, Hash256, Transaction};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

/// Bytes of the smallest transaction that can exist (one signed input,
/// one output): below this much room the block is full.
const MIN_TX_BYTES: u64 = 150;

/// Consecutive packages that did not fit before a nearly full block
/// (within [`NEARLY_FULL`] bytes) is declared full.
const MAX_MISSES: usize = 1000;

/// Room left under which misses start counting.
const NEARLY_FULL: u64 = 4000;

/// A candidate in the selection heap: best rate first, then the oldest.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    rate: FeeRate,
    time: Reverse<u64>,
    txid: Reverse<Hash256>,
}

impl Mempool {
    /// Transactions for a block of at most `max_bytes` (their encoded
    /// sizes), in a valid order, and the sum of their fees.
    pub fn select_for_block(&self, max_bytes: usize) -> (Vec<Transaction>, Amount) {
        let max_bytes = max_bytes as u64;
        let mut heap: BinaryHeap<Candidate> = self
            .slots
            .iter()
            .map(|(id, s)| Candidate { rate: s.ancestors, time: Reverse(s.entry.time), txid: Reverse(*id) })
            .collect();
        // Packages that lost chosen ancestors (the rest are as cached).
        let mut modified: HashMap<Hash256, FeeRate> = HashMap::new();
        let mut chosen: Vec<Transaction> = Vec::new();
        let mut in_block: HashSet<Hash256> = HashSet::new();
        let (mut used, mut fees, mut misses) = (0u64, 0u64, 0usize);
        while let Some(Candidate { rate, txid: Reverse(id), .. }) = heap.pop() {
            let Some(slot) = self.slots.get(&id) else { continue };
            // Skip what is already in, and heap entries made stale by an update.
            let current = modified.get(&id).copied().unwrap_or(slot.ancestors);
            if in_block.contains(&id) || !current.same_as(&rate) {
                continue;
            }
            if used + rate.size > max_bytes {
                misses += 1;
                if misses > MAX_MISSES && max_bytes - used < NEARLY_FULL {
                    break;
                }
                continue;
            }
            misses = 0;
            // Missing ancestors in dependency order (fewer ancestors first), then it.
            let mut members: Vec<(usize, Hash256)> = self
                .ancestors(&slot.entry.tx)
                .into_iter()
                .filter(|a| !in_block.contains(a))
                .map(|a| (self.ancestor_count(&a), a))
                .collect();
            members.sort_unstable();
            members.push((usize::MAX, id));
            for (_, m) in members {
                let Some(ms) = self.slots.get(&m) else { continue };
                used += ms.entry.size as u64;
                fees = fees.saturating_add(ms.entry.fee.units());
                in_block.insert(m);
                chosen.push(ms.entry.tx.clone());
                modified.remove(&m);
                // Descendants no longer carry this one in their packages.
                let own = ms.entry.fee_rate();
                for d in self.descendants(&m) {
                    if in_block.contains(&d) {
                        continue;
                    }
                    let Some(ds) = self.slots.get(&d) else { continue };
                    let package = modified.entry(d).or_insert(ds.ancestors);
                    *package = package.minus(own);
                    heap.push(Candidate { rate: *package, time: Reverse(ds.entry.time), txid: Reverse(d) });
                }
            }
            if max_bytes - used < MIN_TX_BYTES {
                break;
            }
        }
        (chosen, Amount::from_units(fees))
    }
}
