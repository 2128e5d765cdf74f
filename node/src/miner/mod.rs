//! Block templates and the nonce search: N threads over disjoint nonce
//! ranges with a cached SHA-256 midstate ([`NonceHasher`]: two compressions
//! per nonce), restarting the moment the tip changes or better transactions
//! arrive, and giving the CPU back when stopped.

mod hasher;
mod rate;

pub use hasher::NonceHasher;
pub use rate::{HashRate, RATE_WINDOW};

use lode_core::block::{merkle_root, Block, BlockHeader};
use lode_core::pow::{CompactError, CompactTarget, Target};
use lode_core::subsidy::block_subsidy;
use lode_core::{Address, Amount, ChainSpec, Hash256, Height, Transaction, TxOut};
use rand::RngCore;
use rate::Meter;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Nonces tried between checks for new work (well under a millisecond).
pub const CHUNK: u64 = 8_192;

/// How often an idle thread (no template) asks again.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// How often a long search moves the header time up to the clock.
const CLOCK_ROLL: Duration = Duration::from_secs(1);

/// Tag after the random bytes of every coinbase's extra data.
const COINBASE_TAG: &[u8] = b"/lode/";

/// Where the miner gets work and delivers blocks (the node implements it).
pub trait MiningBackend: Send + Sync + 'static {
    /// A fresh template (header + txs), or `None` when there is nothing to
    /// mine (e.g. still syncing).
    fn template(&self) -> Option<Block>;
    /// Increases whenever the tip changes or better transactions arrive;
    /// threads restart when it moves.
    fn work_version(&self) -> u64;
    /// A solved block.
    fn submit_mined(&self, block: Block);
}

/// A block on `parent` paying subsidy plus `fees` to `address`, with `txs`
/// (already in a valid order) after the coinbase and the merkle root set.
/// The coinbase commits to `height` and carries 8 random bytes, so two
/// miners paying one address never search the same header space.
#[allow(clippy::too_many_arguments)]
pub fn build_block_template(
    spec: &ChainSpec,
    parent: Hash256,
    height: Height,
    bits: CompactTarget,
    time: u64,
    address: Address,
    txs: Vec<Transaction>,
    fees: Amount,
) -> Block {
    let mut extra = vec![0u8; 8];
    rand::thread_rng().fill_bytes(&mut extra);
    extra.extend_from_slice(COINBASE_TAG);
    let subsidy = block_subsidy(spec, height);
    // Fees of valid transactions cannot overflow; if they did, claiming the
    // subsidy alone keeps the block valid.
    let reward = subsidy.checked_add(fees).filter(|r| r.is_valid()).unwrap_or(subsidy);
    // Past the last halving a block without fees claims nothing: its
    // coinbase has no outputs (a zero-value output is never valid).
    let outputs = if reward == Amount::ZERO { Vec::new() } else { vec![TxOut { value: reward, address }] };
    let coinbase = Transaction::coinbase(height, extra, outputs);
    let mut transactions = Vec::with_capacity(txs.len() + 1);
    transactions.push(coinbase);
    transactions.extend(txs);
    let ids: Vec<Hash256> = transactions.iter().map(Transaction::txid).collect();
    let header = BlockHeader { version: 1, prev_hash: parent, merkle_root: merkle_root(&ids).0, time, bits, nonce: 0 };
    Block { header, transactions }
}

/// A block's target with its top 64 bits kept apart: almost every hash is
/// rejected by one integer compare.
#[derive(Clone, Copy, Debug)]
pub struct PowTarget {
    target: Target,
    top: u64,
}

impl PowTarget {
    /// Expands compact bits.
    pub fn new(bits: CompactTarget) -> Result<PowTarget, CompactError> {
        let target = bits.to_target()?;
        let be = target.to_be_bytes();
        let mut top = [0u8; 8];
        top.copy_from_slice(&be[..8]);
        Ok(PowTarget { target, top: u64::from_be_bytes(top) })
    }

    /// Whether `hash`, read big-endian, is at or below the target.
    #[inline(always)]
    pub fn is_met_by(&self, hash: &Hash256) -> bool {
        let h = hash.0;
        let top = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        top < self.top || (top == self.top && self.target.is_met_by(hash))
    }
}

/// The nonce loop: hashes the hasher's header with each nonce in `nonces`
/// and returns the first that meets `target`.
#[inline]
pub fn scan(hasher: &mut NonceHasher, target: &PowTarget, nonces: Range<u64>) -> Option<u64> {
    hasher.scan(target, nonces)
}

/// Unix seconds now.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Searches `header` over `nonces` in chunks of [`CHUNK`], counting hashes
/// into `meter` and asking `keep_going` between chunks. When the range is
/// exhausted the time moves forward one second and the range starts over;
/// with `follow_clock`, the time also follows the clock during long
/// searches. Returns the winning nonce (with `header.time` as searched).
fn search(
    header: &mut BlockHeader,
    target: &PowTarget,
    nonces: Range<u64>,
    follow_clock: bool,
    meter: &Meter,
    mut keep_going: impl FnMut() -> bool,
) -> Option<u64> {
    let mut hasher = NonceHasher::new(header);
    let mut nonce = nonces.start;
    let mut clock_checked = Instant::now();
    loop {
        if nonce >= nonces.end {
            header.time += 1;
            hasher = NonceHasher::new(header);
            nonce = nonces.start;
        }
        let end = nonce.saturating_add(CHUNK).min(nonces.end);
        if let Some(n) = scan(&mut hasher, target, nonce..end) {
            meter.add(n - nonce + 1);
            return Some(n);
        }
        meter.add(end - nonce);
        nonce = end;
        if !keep_going() {
            return None;
        }
        if follow_clock && clock_checked.elapsed() >= CLOCK_ROLL {
            clock_checked = Instant::now();
            let now = unix_now();
            if now > header.time {
                header.time = now;
                hasher = NonceHasher::new(header);
            }
        }
    }
}

/// Mines `block` in place on the calling thread (regtest's
/// `generatetoaddress`); false if `stop` was raised first or the header's
/// bits name no valid target.
pub fn mine_block(block: &mut Block, stop: &AtomicBool) -> bool {
    let Ok(target) = PowTarget::new(block.header.bits) else { return false };
    let meter = Meter::new();
    match search(&mut block.header, &target, 0..u64::MAX, false, &meter, || !stop.load(Ordering::Relaxed)) {
        Some(nonce) => {
            block.header.nonce = nonce;
            true
        }
        None => false,
    }
}

/// Mining threads to use by default: one per available core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What the mining threads share.
struct Shared {
    stop: AtomicBool,
    /// Bumped when a thread solves a block: the others drop that round.
    round: AtomicU64,
    /// Serialises submitting a block and fetching the next template, so no
    /// thread builds on the tip a block being submitted is about to replace.
    submit: Mutex<()>,
    meter: Arc<Meter>,
}

impl Shared {
    fn submit_lock(&self) -> MutexGuard<'_, ()> {
        self.submit.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Running miner threads; stopping (or dropping) gives the CPU back.
pub struct Miner {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Miner {
    /// Starts `threads` mining threads (0 means [`default_threads`]), each
    /// on its own slice of the nonce space.
    pub fn start(backend: Arc<dyn MiningBackend>, threads: usize) -> Miner {
        let n = if threads == 0 { default_threads() } else { threads };
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            round: AtomicU64::new(0),
            submit: Mutex::new(()),
            meter: Arc::new(Meter::new()),
        });
        let mut handles = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let (backend, s) = (backend.clone(), shared.clone());
            match std::thread::Builder::new()
                .name(format!("miner-{i}"))
                .spawn(move || mine_loop(backend.as_ref(), &s, i, n as u64))
            {
                Ok(h) => handles.push(h),
                Err(e) => tracing::error!(%e, thread = i, "cannot start a mining thread"),
            }
        }
        tracing::info!(threads = handles.len(), "miner started");
        Miner { shared, threads: handles }
    }

    /// Number of mining threads running.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Hashes per second over the last ten seconds.
    pub fn hashrate(&self) -> f64 {
        self.shared.meter.rate()
    }

    /// A reader of the hash rate that outlives borrows of the miner.
    pub fn hashrate_handle(&self) -> HashRate {
        HashRate { meter: self.shared.meter.clone() }
    }

    /// Whether the threads are running (not stopped, at least one alive).
    pub fn is_running(&self) -> bool {
        !self.shared.stop.load(Ordering::SeqCst) && self.threads.iter().any(|t| !t.is_finished())
    }

    /// Stops and joins every thread.
    pub fn stop(mut self) {
        self.halt();
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a mining thread panicked");
            }
        }
        tracing::info!("miner stopped");
    }

    fn halt(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in &self.threads {
            t.thread().unpark();
        }
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        // Threads notice within one chunk; `stop` joins them, drop does not wait.
        self.halt();
    }
}

/// One mining thread: fetch a template, search this thread's slice of the
/// nonce space until solved or the work changes, repeat.
fn mine_loop(backend: &dyn MiningBackend, shared: &Shared, index: u64, threads: u64) {
    let span = u64::MAX / threads;
    let nonces = index * span..index * span + span;
    let stop = &shared.stop;
    while !stop.load(Ordering::Relaxed) {
        let (version, round, template) = {
            let _guard = shared.submit_lock();
            (backend.work_version(), shared.round.load(Ordering::SeqCst), backend.template())
        };
        let Some(mut block) = template else {
            idle(backend, shared, version);
            continue;
        };
        let target = match PowTarget::new(block.header.bits) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(%e, "block template has unusable bits");
                idle(backend, shared, version);
                continue;
            }
        };
        let keep_going = || {
            !stop.load(Ordering::Relaxed)
                && backend.work_version() == version
                && shared.round.load(Ordering::Relaxed) == round
        };
        let found = search(&mut block.header, &target, nonces.clone(), true, &shared.meter, keep_going);
        if let Some(nonce) = found {
            block.header.nonce = nonce;
            let _guard = shared.submit_lock();
            // Another thread solved this round first: ours would be a sibling.
            if shared.round.load(Ordering::SeqCst) == round && !stop.load(Ordering::SeqCst) {
                shared.round.fetch_add(1, Ordering::SeqCst);
                backend.submit_mined(block);
            }
        }
    }
}

/// Waits while there is nothing to mine: until stopped, the work version
/// moves, or a poll interval passes.
fn idle(backend: &dyn MiningBackend, shared: &Shared, version: u64) {
    let deadline = Instant::now() + IDLE_POLL;
    while !shared.stop.load(Ordering::Relaxed) && backend.work_version() == version {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::park_timeout(left.min(Duration::from_millis(10)));
    }
}

#[cfg(test)]
mod tests;
