//! The miner's work version: it moves at once when the tip or the payout
//! address changes, and for new transactions at most once per
//! [`TX_REFRESH`]. Every move makes each mining thread build a new template
//! under the chain lock; moved for every admitted transaction, a peer
//! streaming cheap replacements of its own transaction (each paying only
//! the incremental fee) kept the miner rebuilding instead of hashing and
//! arriving blocks waiting for the lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Least time between two template refreshes for new transactions
/// (Bitcoin Core's `getblocktemplate` waits 5 s; a local testnet wants a
/// payment in the next block).
pub const TX_REFRESH: Duration = Duration::from_secs(1);

/// See the module documentation.
pub struct WorkVersion {
    version: AtomicU64,
    /// Transactions arrived since the last move.
    txs_pending: AtomicBool,
    /// When the last move for transactions was, as [`Self::now_ms`].
    last_tx_move_ms: AtomicU64,
    epoch: Instant,
}

impl WorkVersion {
    /// A version that has not moved.
    pub fn new() -> WorkVersion {
        WorkVersion {
            version: AtomicU64::new(1),
            txs_pending: AtomicBool::new(false),
            last_tx_move_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// The tip or the payout changed: a new template at once (it also
    /// takes whatever transactions were pending).
    pub fn bump(&self) {
        self.txs_pending.store(false, Ordering::SeqCst);
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    /// Transactions entered (or left) the pool: a new template now if the
    /// last one for transactions is [`TX_REFRESH`] old, else when it is.
    pub fn txs_changed(&self) {
        self.txs_pending.store(true, Ordering::SeqCst);
        self.apply_due();
    }

    /// The current version, moved first for pending transactions that
    /// waited long enough (the miner reads it every few milliseconds).
    pub fn read(&self) -> u64 {
        if self.txs_pending.load(Ordering::Relaxed) {
            self.apply_due();
        }
        self.version.load(Ordering::SeqCst)
    }

    fn apply_due(&self) {
        let now = self.now_ms();
        let last = self.last_tx_move_ms.load(Ordering::SeqCst);
        let refresh = TX_REFRESH.as_millis() as u64;
        if now.saturating_sub(last) >= refresh
            && self.last_tx_move_ms.compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst).is_ok()
            && self.txs_pending.swap(false, Ordering::SeqCst)
        {
            self.version.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Milliseconds since `epoch`, plus one refresh: the first change is
    /// due at once.
    fn now_ms(&self) -> u64 {
        let since = self.epoch.elapsed() + TX_REFRESH;
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for WorkVersion {
    fn default() -> Self {
        WorkVersion::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One move per admitted transaction had every mining thread rebuild
    // its template under the chain lock for each of a replacement stream.
    #[test]
    fn a_burst_of_transactions_moves_the_work_once_then_once_more_after_the_refresh() {
        let w = WorkVersion::new();
        let start = w.read();
        for _ in 0..50 {
            w.txs_changed();
        }
        assert_eq!(w.read(), start + 1, "the first transaction moves it at once, the rest wait");
        std::thread::sleep(TX_REFRESH + Duration::from_millis(50));
        assert_eq!(w.read(), start + 2, "the waiting ones move it once the refresh is due");
        assert_eq!(w.read(), start + 2, "and only once");
        w.bump();
        assert_eq!(w.read(), start + 3, "a new tip moves it at once");
    }
}
