//! Block templates and the nonce search: N threads over disjoint nonce
//! ranges with a cached SHA-256 midstate, restarting the moment the tip
//! changes or better transactions arrive.

use lode_core::block::{merkle_root, Block, BlockHeader, HeaderHasher};
use lode_core::pow::CompactTarget;
use lode_core::subsidy::block_subsidy;
use lode_core::{Address, Amount, ChainSpec, Hash256, Height, Transaction, TxOut};
use rand::RngCore;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Nonces tried between checks for new work.
const CHUNK: u64 = 16_384;

/// Where the miner gets work and delivers blocks (the node implements it).
pub trait MiningBackend: Send + Sync + 'static {
    /// A fresh template, or `None` when there is nothing to mine.
    fn template(&self) -> Option<Block>;
    /// Increases whenever the tip changes or better transactions arrive.
    fn work_version(&self) -> u64;
    /// A solved block.
    fn submit_mined(&self, block: Block);
}

/// A block on `parent` paying subsidy plus `fees` to `address`, with `txs`.
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
    // Random extra data: two miners paying one address must not search
    // the same header space.
    let mut extra = vec![0u8; 8];
    rand::thread_rng().fill_bytes(&mut extra);
    extra.extend_from_slice(b"/lode/");
    let reward = block_subsidy(spec, height).checked_add(fees).unwrap_or_else(|| block_subsidy(spec, height));
    let coinbase = Transaction::coinbase(height, extra, vec![TxOut { value: reward, address }]);
    let mut transactions = Vec::with_capacity(txs.len() + 1);
    transactions.push(coinbase);
    transactions.extend(txs);
    let ids: Vec<Hash256> = transactions.iter().map(Transaction::txid).collect();
    let header = BlockHeader { version: 1, prev_hash: parent, merkle_root: merkle_root(&ids).0, time, bits, nonce: 0 };
    Block { header, transactions }
}

/// Searches nonces `start..end` (stepping `CHUNK` at a time while `keep_going`
/// holds); returns the winning nonce. Counts hashes into `counter`.
fn search(
    header: &BlockHeader,
    start: u64,
    end: u64,
    counter: &AtomicU64,
    mut keep_going: impl FnMut() -> bool,
) -> Option<u64> {
    let target = header.bits.to_target().ok()?;
    let mut hasher = HeaderHasher::new(header);
    let mut nonce = start;
    while nonce < end {
        let stop = (nonce + CHUNK).min(end);
        for n in nonce..stop {
            if target.is_met_by(&hasher.hash(n)) {
                counter.fetch_add(n - nonce + 1, Ordering::Relaxed);
                return Some(n);
            }
        }
        counter.fetch_add(stop - nonce, Ordering::Relaxed);
        nonce = stop;
        if !keep_going() {
            return None;
        }
    }
    None
}

/// Mines `block` in place on the calling thread (regtest's
/// `generatetoaddress`); false if `stop` was raised first.
pub fn mine_block(block: &mut Block, stop: &AtomicBool) -> bool {
    let counter = AtomicU64::new(0);
    loop {
        if let Some(n) = search(&block.header, 0, u64::MAX, &counter, || !stop.load(Ordering::Relaxed)) {
            block.header.nonce = n;
            return true;
        }
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        block.header.time += 1;
    }
}

/// Running miner threads.
pub struct Miner {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    rate: HashRate,
}

/// A cloneable reader of the miner's hash rate.
#[derive(Clone)]
pub struct HashRate {
    hashes: Arc<AtomicU64>,
    window: Arc<Mutex<RateWindow>>,
}

impl HashRate {
    /// Hashes per second, averaged over at least the last second.
    pub fn get(&self) -> f64 {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = w.at.elapsed().as_secs_f64();
        if elapsed >= 1.0 {
            let now = self.hashes.load(Ordering::Relaxed);
            w.rate = (now - w.hashes) as f64 / elapsed;
            w.hashes = now;
            w.at = Instant::now();
        }
        w.rate
    }
}

struct RateWindow {
    at: Instant,
    hashes: u64,
    rate: f64,
}

impl Miner {
    /// Starts `threads` mining threads.
    pub fn start(backend: Arc<dyn MiningBackend>, threads: usize) -> Miner {
        let stop = Arc::new(AtomicBool::new(false));
        let hashes = Arc::new(AtomicU64::new(0));
        let n = threads.max(1) as u64;
        let handles = (0..n)
            .map(|i| {
                let (backend, stop, hashes) = (backend.clone(), stop.clone(), hashes.clone());
                std::thread::Builder::new()
                    .name(format!("miner-{i}"))
                    .spawn(move || mine_loop(backend.as_ref(), &stop, &hashes, i, n))
                    .unwrap_or_else(|e| panic!("cannot spawn a mining thread: {e}"))
            })
            .collect();
        let window = Arc::new(Mutex::new(RateWindow { at: Instant::now(), hashes: 0, rate: 0.0 }));
        Miner { stop, threads: handles, rate: HashRate { hashes, window } }
    }

    /// Hashes per second, averaged over at least the last second.
    pub fn hashrate(&self) -> f64 {
        self.rate.get()
    }

    /// A reader of the hash rate that outlives borrows of the miner.
    pub fn hashrate_handle(&self) -> HashRate {
        self.rate.clone()
    }

    /// Whether the threads are running.
    pub fn is_running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    /// Stops and joins every thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn mine_loop(backend: &dyn MiningBackend, stop: &AtomicBool, hashes: &AtomicU64, index: u64, threads: u64) {
    // Disjoint nonce ranges per thread.
    let span = u64::MAX / threads;
    let (start, end) = (index * span, index * span + span);
    while !stop.load(Ordering::Relaxed) {
        let version = backend.work_version();
        let Some(mut block) = backend.template() else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let found = search(&block.header, start, end, hashes, || {
            !stop.load(Ordering::Relaxed) && backend.work_version() == version
        });
        if let Some(nonce) = found {
            block.header.nonce = nonce;
            backend.submit_mined(block);
        }
    }
}

#[cfg(test)]
mod tests;
