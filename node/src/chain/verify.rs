//! On-demand integrity check: every active block's body against its hash,
//! and the UTXO set against the stored commitment and totals.

use super::{Chain, ChainError};
use crate::store::UtxoCommitment;
use lode_core::crypto::SigCache;
use lode_core::validation::{BlockError, PendingConnect};
use lode_core::Height;
use serde::Serialize;

/// Verifies a block's signatures, skipping those the cache holds; returns
/// how many were verified and how many were cached. The one place block
/// connection checks signatures (the import pipeline calls it on the
/// thread pool while the previous block is written).
pub(super) fn check_signatures(pending: &PendingConnect, cache: &SigCache) -> Result<(usize, usize), BlockError> {
    pending.verify(Some(cache))
}

/// Result of [`Chain::verify_integrity`].
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Whether everything checked out.
    pub ok: bool,
    /// Active blocks re-read and re-hashed.
    pub blocks_checked: u64,
    /// Coins re-hashed into the commitment.
    pub utxos_checked: u64,
    /// The first problem found.
    pub error: Option<String>,
}

impl Chain {
    /// Re-reads every active block and the whole UTXO set. Reports the first
    /// corrupt record instead of failing on it.
    pub fn verify_integrity(&self) -> Result<IntegrityReport, ChainError> {
        let mut report = IntegrityReport { ok: true, blocks_checked: 0, utxos_checked: 0, error: None };
        let prune_height = self.prune.map_or(0, |h| h.0);
        for height in 0..=self.state.height.0 {
            let Some(hash) = self.hash_at(Height(height)) else { continue };
            if height < prune_height {
                // Pruned: its body must be gone, or the prune height and
                // the deletes were not written together.
                match self.store.has_block(&hash) {
                    Ok(false) => continue,
                    Ok(true) => {
                        return Ok(fail(
                            report,
                            format!(
                                "block {hash} at height {height} is below the prune height {prune_height} but stored"
                            ),
                        ))
                    }
                    Err(e) => return Ok(fail(report, format!("block at height {height}: {e}"))),
                }
            }
            match self.store.block(&hash) {
                Ok(Some(block)) => {
                    let (root, mutated) = block.compute_merkle_root();
                    if mutated || root != block.header.merkle_root {
                        return Ok(fail(
                            report,
                            format!("block {hash} at height {height}: transactions do not match the merkle root"),
                        ));
                    }
                    report.blocks_checked += 1;
                }
                Ok(None) => return Ok(fail(report, format!("block {hash} at height {height} is missing"))),
                Err(e) => return Ok(fail(report, format!("block at height {height}: {e}"))),
            }
        }
        let coins = match self.store.all_coins() {
            Ok(c) => c,
            Err(e) => return Ok(fail(report, e.to_string())),
        };
        let mut commitment = UtxoCommitment::default();
        let mut total: u64 = 0;
        for (op, coin) in &coins {
            commitment.add(op, coin);
            total = total.saturating_add(coin.output.value.units());
            report.utxos_checked += 1;
        }
        if commitment.to_hash().0 != self.state.commitment {
            return Ok(fail(
                report,
                format!(
                    "UTXO set hashes to {} but the stored commitment is {}",
                    commitment.to_hash(),
                    self.commitment()
                ),
            ));
        }
        if coins.len() as u64 != self.state.utxo_count || total != self.state.total_amount {
            return Ok(fail(
                report,
                format!(
                    "UTXO set has {} coins worth {total}, stored summary says {} worth {}",
                    coins.len(),
                    self.state.utxo_count,
                    self.state.total_amount
                ),
            ));
        }
        Ok(report)
    }
}

fn fail(mut report: IntegrityReport, error: String) -> IntegrityReport {
    report.ok = false;
    report.error = Some(error);
    report
}
