//! Admission: the checks a transaction passes (cheap ones first,
//! signatures last) before it enters the pool, evicting the cheapest
//! packages to make room.
//!
//! Split in two so signatures need no lock: [`Mempool::precheck`] runs
//! every check but signatures on a shared pool (a short lock) and returns
//! the signature checks; the caller verifies them with no lock held, in
//! parallel with other requests, and puts them in the signature cache;
//! [`Mempool::accept`] then repeats the cheap checks against the pool as
//! it is by then and finds the signatures cached.

use super::{AcceptedTx, Entry, FeeRate, Mempool, MempoolError, PoolView};
use lode_core::crypto::{SigCache, SigCheck};
use lode_core::tx::OutPoint;
use lode_core::validation::{check_transaction, check_tx_inputs, verify_sig_checks, ConnectContext, TxError, UtxoView};
use lode_core::{Amount, Hash256, Height, Transaction, TxOut};
use std::collections::HashSet;

/// Whether an admission must pay the relay fee floor (`min_fee_rate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FeeFloor {
    /// New transactions, from peers or RPC.
    Applies,
    /// Transactions of a disconnected block (Bitcoin Core's
    /// `bypass_limits`): a miner already accepted their fee, and a floor
    /// set higher here would drop them for good at every reorg. A full
    /// pool still evicts by rate as for any newcomer.
    Waived,
}

/// What the checks before signatures decided.
struct Plan {
    txid: Hash256,
    size: usize,
    fee: Amount,
    checks: Vec<SigCheck>,
    conflicts: Option<super::replace::Conflicts>,
    ancestors: HashSet<Hash256>,
    victims: Vec<Hash256>,
}

/// Verifies signature checks that [`Mempool::precheck`] returned, with no
/// lock held, and remembers those that pass so [`Mempool::accept`] does
/// not verify them again (when all were cached already, nothing is
/// written to the cache).
pub fn verify_unlocked(checks: &[SigCheck], sig_cache: &SigCache) -> Result<(), MempoolError> {
    match verify_sig_checks(checks, Some(sig_cache)) {
        Err(i) => Err(TxError::BadSignature(i).into()),
        Ok((0, _)) => Ok(()),
        Ok(_) => {
            sig_cache.insert_all(checks);
            Ok(())
        }
    }
}

impl Mempool {
    /// Every admission check but signatures, changing nothing: the
    /// signature checks `tx` needs, or why it would be refused now.
    pub fn precheck(
        &self,
        tx: &Transaction,
        view: &impl UtxoView,
        next_height: Height,
        ctx: &ConnectContext,
    ) -> Result<Vec<SigCheck>, MempoolError> {
        self.plan(tx, view, next_height, ctx, FeeFloor::Applies).map(|p| p.checks)
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
        self.admit(tx, view, next_height, ctx, sig_cache, now, FeeFloor::Applies)
    }

    /// [`Mempool::accept`] with the fee floor applied or waived.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn admit(
        &mut self,
        tx: Transaction,
        view: &impl UtxoView,
        next_height: Height,
        ctx: &ConnectContext,
        sig_cache: &SigCache,
        now: u64,
        floor: FeeFloor,
    ) -> Result<AcceptedTx, MempoolError> {
        let Plan { txid, size, fee, checks, conflicts, ancestors, victims } =
            self.plan(&tx, view, next_height, ctx, floor)?;
        // Only now the expensive part: a cheap refusal costs no verification
        // (and after `verify_unlocked` every check is a cache hit).
        verify_unlocked(&checks, sig_cache)?;
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

    /// The checks before signatures, in order of cost.
    fn plan(
        &self,
        tx: &Transaction,
        view: &impl UtxoView,
        next_height: Height,
        ctx: &ConnectContext,
        floor: FeeFloor,
    ) -> Result<Plan, MempoolError> {
        let txid = tx.txid();
        if self.slots.contains_key(&txid) {
            return Err(MempoolError::AlreadyKnown(txid));
        }
        let size = tx.encoded_size();
        if size > self.policy.max_tx_size {
            return Err(MempoolError::TooLarge { size, max: self.policy.max_tx_size });
        }
        check_transaction(tx, self.policy.max_tx_size)?;
        if tx.is_coinbase() {
            return Err(MempoolError::Coinbase);
        }
        let conflicts = self.conflicts_of(tx)?;
        let pool_view = PoolView { base: view, pool: self, height: next_height };
        let (fee, checks) = match check_tx_inputs(tx, next_height, ctx, &pool_view) {
            Ok(r) => r,
            Err(TxError::MissingOrSpentInput { index, outpoint }) => {
                return Err(MempoolError::MissingInputs { index, outpoint })
            }
            Err(e @ TxError::ImmatureCoinbaseSpend { .. }) => return Err(MempoolError::Premature(e)),
            Err(e) => return Err(e.into()),
        };
        let required = self.policy.min_fee_rate.saturating_mul(size as u64);
        if floor == FeeFloor::Applies && fee.units() < required {
            return Err(MempoolError::FeeTooLow { fee: fee.units(), size, required });
        }
        let rate = FeeRate::new(fee.units(), size);
        if let Some(c) = &conflicts {
            self.check_replacement(c, rate)?;
        }
        let doomed = conflicts.as_ref().map(|c| c.all.clone()).unwrap_or_default();
        let limit = self.policy.max_chain.saturating_sub(1);
        let ancestors = self
            .ancestors_limited(tx, limit)
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
        Ok(Plan { txid, size, fee, checks, conflicts, ancestors, victims })
    }
}

/// The output `op` names, in the pool or under it.
fn pool_view_coin(pool: &Mempool, view: &impl UtxoView, height: Height, op: &OutPoint) -> Option<TxOut> {
    PoolView { base: view, pool, height }.coin(op).map(|c| c.output)
}
