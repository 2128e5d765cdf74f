//! Mempool admission from RPC and peers: the checks before signatures
//! under a short mempool lock, signatures with no lock held, then
//! admission proper under the lock again.
//!
//! Small transactions from RPC may be admitted on the async worker that
//! parsed the request ([`Node::try_submit_inline`]): handing each one to a
//! blocking thread and back cost more CPU than its signature check
//! (measured with `lode-bench --only mempool`, see docs/performance.md).
//! That path takes the mempool lock twice (before and after the
//! signatures) and waits up to [`INLINE_LOCK_WAIT`] each time, enough for
//! another admission to finish; a lock held longer (a tip move, a block
//! template) hands the transaction back for the blocking path.

use super::{lock, Node};
use crate::chain_api::ChainEvent;
use crate::mempool::{Mempool, MempoolError};
use crate::store::StoreView;
use lode_core::crypto::SigCheck;
use lode_core::subsidy::block_subsidy;
use lode_core::tx::OutPoint;
use lode_core::validation::{Coin, ConnectContext, UtxoView};
use lode_core::{Hash256, Height, Transaction};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// Most inputs a transaction may have to be admitted on an async worker:
/// each input is one signature check (about 75 µs on one core), and a
/// worker should not be kept from its other tasks much longer than that.
pub const INLINE_MAX_INPUTS: usize = 4;

/// How long the inline path waits for a busy mempool lock, each of the
/// two times it takes it. Another
/// admission holds it for a few microseconds (its checks, not its
/// signatures), and handing the transaction to a blocking thread instead
/// costs a thread wake-up, a second wake-up back and a second precheck:
/// with four clients a quarter of the admission CPU was spent on that
/// path (`perf record` of the node under `lode-bench --only mempool`).
/// Following a tip move holds the lock far longer; that is not waited for.
pub const INLINE_LOCK_WAIT: Duration = Duration::from_micros(50);

/// What [`Node::try_submit_inline`] did.
#[derive(Debug)]
pub enum InlineSubmit {
    /// Admitted or refused.
    Decided(Result<Hash256, MempoolError>),
    /// Too large for an async worker, or a lock was busy: admit it with
    /// [`Node::submit_transaction`] on a blocking thread. Signatures that
    /// were already verified are in the signature cache by then.
    Blocking(Transaction),
}

/// The lock if it is free now (a poisoned lock is taken as `lock` does).
fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// The lock if it becomes free within `wait`. Yields between attempts so
/// that a holder sharing this core can finish.
fn lock_within<T>(m: &Mutex<T>, wait: Duration) -> Option<MutexGuard<'_, T>> {
    let mut deadline = None;
    loop {
        if let Some(guard) = try_lock(m) {
            return Some(guard);
        }
        let until = *deadline.get_or_insert_with(|| Instant::now() + wait);
        if Instant::now() >= until {
            return None;
        }
        std::thread::yield_now();
    }
}

/// The store's UTXO set, remembering every coin read (found or not), so
/// that admission can reuse what its precheck read.
struct ReadCoins<'a> {
    store: StoreView<'a>,
    read: RefCell<HashMap<OutPoint, Option<Coin>>>,
}

impl UtxoView for ReadCoins<'_> {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        if let Some(coin) = self.read.borrow().get(outpoint) {
            return *coin;
        }
        let coin = self.store.coin(outpoint);
        self.read.borrow_mut().insert(*outpoint, coin);
        coin
    }
}

/// What a precheck found and read: admission repeats the pool's checks
/// but, while the tip has not moved, takes the coins and the tip context
/// from here instead of reading the store again (three reads per input
/// before: precheck, the admission checks, the spent outputs).
struct Prechecked {
    checks: Vec<SigCheck>,
    read: HashMap<OutPoint, Option<Coin>>,
    tip_moves: u64,
    next: Height,
    ctx: ConnectContext,
}

impl Node {
    /// Validates a transaction against the tip and admits it to the mempool.
    ///
    /// Holds no chain lock, and no lock at all while signatures are
    /// verified, so concurrent requests verify in parallel. UTXOs are read
    /// from the database directly: each block is one atomic batch and the
    /// mempool follows every tip move under its own lock after the batch
    /// is written, so a transaction admitted against a tip that moved is
    /// removed or rechecked like one admitted just before the move. The
    /// tip height is read before the UTXOs, so it is never newer than them
    /// (a stale height only delays a coinbase spend by a block).
    pub fn submit_transaction(&self, tx: Transaction) -> Result<Hash256, MempoolError> {
        let pre = self.precheck_with(&tx, lock(&self.mempool))?;
        crate::mempool::verify_unlocked(&pre.checks, &self.sig_cache)?;
        self.admit_with(tx, lock(&self.mempool), Some(pre))
    }

    /// [`Node::submit_transaction`] for a caller on an async worker: the
    /// same checks, but it waits for the mempool lock at most
    /// [`INLINE_LOCK_WAIT`] and takes only transactions of at most
    /// [`INLINE_MAX_INPUTS`] inputs; anything else is handed back as
    /// [`InlineSubmit::Blocking`].
    pub fn try_submit_inline(&self, tx: Transaction) -> InlineSubmit {
        self.submit_inline_within(tx, INLINE_LOCK_WAIT)
    }

    /// [`Node::try_submit_inline`] waiting at most `wait` for the lock.
    fn submit_inline_within(&self, tx: Transaction, wait: Duration) -> InlineSubmit {
        if tx.inputs.len() > INLINE_MAX_INPUTS {
            return InlineSubmit::Blocking(tx);
        }
        let Some(pool) = lock_within(&self.mempool, wait) else {
            return InlineSubmit::Blocking(tx);
        };
        let pre = match self.precheck_with(&tx, pool) {
            Ok(pre) => pre,
            Err(e) => return InlineSubmit::Decided(Err(e)),
        };
        if let Err(e) = crate::mempool::verify_unlocked(&pre.checks, &self.sig_cache) {
            return InlineSubmit::Decided(Err(e));
        }
        match lock_within(&self.mempool, wait) {
            Some(pool) => InlineSubmit::Decided(self.admit_with(tx, pool, Some(pre))),
            None => InlineSubmit::Blocking(tx),
        }
    }

    /// Validates and admits transactions as one batch: the checks before
    /// signatures one by one, every signature of the batch in parallel,
    /// then admission in order, so a child may follow its parent in the
    /// same batch. One result per transaction, in order.
    pub fn submit_transactions(&self, txs: Vec<Transaction>) -> Vec<Result<Hash256, MempoolError>> {
        use rayon::prelude::*;
        let prechecked: Vec<_> = txs.iter().map(|tx| self.precheck_with(tx, lock(&self.mempool))).collect();
        let verified: Vec<Option<MempoolError>> = prechecked
            .par_iter()
            .map(|p| {
                p.as_ref().ok().and_then(|pre| crate::mempool::verify_unlocked(&pre.checks, &self.sig_cache).err())
            })
            .collect();
        txs.into_iter()
            .zip(prechecked)
            .zip(verified)
            .map(|((tx, pre), bad_signature)| match (pre, bad_signature) {
                (_, Some(e)) => Err(e),
                (Ok(pre), None) => self.admit_with(tx, lock(&self.mempool), Some(pre)),
                // Maybe a parent or a conflict earlier in the batch: the
                // whole path again, now that those were admitted.
                (Err(_), None) => self.submit_transaction(tx),
            })
            .collect()
    }

    fn tip_context(&self) -> (Height, ConnectContext) {
        let next = Height(self.tip_height.load(Ordering::Acquire).saturating_add(1));
        let ctx = ConnectContext {
            genesis: self.spec.genesis_hash(),
            coinbase_maturity: self.spec.coinbase_maturity,
            subsidy: block_subsidy(&self.spec, next),
        };
        (next, ctx)
    }

    /// Every admission check but signatures, under the given (briefly
    /// held) mempool lock.
    fn precheck_with(&self, tx: &Transaction, pool: MutexGuard<'_, Mempool>) -> Result<Prechecked, MempoolError> {
        let txid = tx.txid();
        if self.store.tx_location(&txid).ok().flatten().is_some() {
            return Err(MempoolError::AlreadyKnown(txid));
        }
        // Under the mempool lock, so no tip move is followed while the
        // coins are read; the tip height is read before them.
        let tip_moves = self.tip_moves.load(Ordering::Acquire);
        let (next, ctx) = self.tip_context();
        let view = ReadCoins { store: StoreView::new(&self.store), read: RefCell::default() };
        let checks = pool.precheck(tx, &view, next, &ctx)?;
        Ok(Prechecked { checks, read: view.read.into_inner(), tip_moves, next, ctx })
    }

    /// Admission proper, under the given mempool lock; the signatures are
    /// normally cached by now.
    /// A precheck's coins are reused if the mempool has not followed a tip
    /// move since: it is then as if the transaction were admitted at the
    /// precheck, and the next tip move removes or rechecks it like any
    /// other.
    fn admit_with(
        &self,
        tx: Transaction,
        mut pool: MutexGuard<'_, Mempool>,
        pre: Option<Prechecked>,
    ) -> Result<Hash256, MempoolError> {
        let txid = tx.txid();
        let fresh = pre.filter(|p| p.tip_moves == self.tip_moves.load(Ordering::Acquire));
        let (next, ctx, read) = match fresh {
            Some(p) => (p.next, p.ctx, p.read),
            None => {
                let (next, ctx) = self.tip_context();
                (next, ctx, HashMap::new())
            }
        };
        let view = ReadCoins { store: StoreView::new(&self.store), read: RefCell::new(read) };
        let event = Arc::new(tx.clone());
        {
            let accepted = pool.accept(tx, &view, next, &ctx, &self.sig_cache, crate::chain::unix_now())?;
            let mut fees = lock(&self.fees);
            for gone in accepted.replaced.iter().chain(&accepted.evicted) {
                fees.remove_tx(gone);
            }
            // A child's own rate is not what miners rank it by (its
            // package is): only parentless transactions are followed.
            if accepted.ancestors == 0 {
                let rate = accepted.fee.units() as f64 / accepted.size.max(1) as f64;
                fees.track(txid, rate, next.0.saturating_sub(1));
            }
            if !accepted.replaced.is_empty() {
                tracing::debug!(%txid, replaced = accepted.replaced.len(), "replacement admitted");
            }
            // Only the pool's gauges changed (refresh_metrics would wait
            // for the chain lock).
            self.metrics.mempool_size.set(pool.len() as f64);
            self.metrics.mempool_bytes.set(pool.bytes() as f64);
        }
        drop(pool);
        let _ = self.events.send(ChainEvent::Tx(event));
        self.work_version.txs_changed();
        Ok(txid)
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
