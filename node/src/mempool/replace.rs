//! Replace-by-fee: what a newcomer conflicts with, and Bitcoin Core's
//! rules for when it may replace those transactions.

use super::{FeeRate, Mempool, MempoolError};
use lode_core::tx::OutPoint;
use lode_core::{Hash256, Transaction};
use std::collections::HashSet;

/// What a newcomer conflicts with.
pub(super) struct Conflicts {
    /// One contested outpoint and its spender (for messages).
    pub(super) outpoint: OutPoint,
    pub(super) with: Hash256,
    /// Transactions spending an outpoint it spends.
    pub(super) direct: Vec<Hash256>,
    /// Those and all their descendants: what replacing evicts.
    pub(super) all: HashSet<Hash256>,
}

impl Mempool {
    /// The pooled transactions `tx` conflicts with, or `None`; refuses a
    /// replacement that would evict too many or spends what it replaces.
    pub(super) fn conflicts_of(&self, tx: &Transaction) -> Result<Option<Conflicts>, MempoolError> {
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
    pub(super) fn check_replacement(&self, c: &Conflicts, rate: FeeRate) -> Result<(), MempoolError> {
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
}
