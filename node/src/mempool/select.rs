//! Choosing transactions for a block: best ancestor-package fee rate first,
//! every parent before its children, within a byte budget.

use super::Mempool;
use lode_core::{Amount, Hash256, Transaction};
use std::collections::HashSet;

impl Mempool {
    /// Transactions for a block of at most `max_bytes`, and their fees.
    pub fn select_for_block(&self, max_bytes: usize) -> (Vec<Transaction>, Amount) {
        // Rank by the fee rate of each transaction together with its
        // unconfirmed ancestors: a rich child pulls in its poor parent.
        let mut ranked: Vec<(u64, Hash256)> = self
            .entries
            .iter()
            .map(|(id, e)| {
                let anc = self.ancestors(&e.tx);
                let (fee, size) = anc
                    .iter()
                    .filter_map(|a| self.entries.get(a))
                    .fold((e.fee.units(), e.size), |(f, s), x| (f + x.fee.units(), s + x.size));
                (fee.saturating_mul(1000) / size.max(1) as u64, *id)
            })
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut chosen: Vec<Transaction> = Vec::new();
        let mut in_block: HashSet<Hash256> = HashSet::new();
        let mut used = 0usize;
        let mut fees = 0u64;
        for (_, id) in ranked {
            if in_block.contains(&id) {
                continue;
            }
            let Some(e) = self.entries.get(&id) else { continue };
            // The package: missing ancestors in dependency order, then it.
            let mut package: Vec<Hash256> =
                self.ancestors(&e.tx).into_iter().filter(|a| !in_block.contains(a)).collect();
            package.sort_by_key(|a| self.depth(a));
            package.push(id);
            let size: usize = package.iter().filter_map(|p| self.entries.get(p)).map(|x| x.size).sum();
            if used + size > max_bytes {
                continue;
            }
            for p in package {
                if let Some(x) = self.entries.get(&p) {
                    used += x.size;
                    fees += x.fee.units();
                    in_block.insert(p);
                    chosen.push(x.tx.clone());
                }
            }
        }
        (chosen, Amount::from_units(fees))
    }

    /// Number of unconfirmed ancestors: parents always rank lower.
    fn depth(&self, txid: &Hash256) -> usize {
        self.entries.get(txid).map(|e| self.ancestors(&e.tx).len()).unwrap_or(0)
    }
}
