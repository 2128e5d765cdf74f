//! Fee estimation from how fast transactions of each fee rate were
//! confirmed, after Bitcoin Core's `CBlockPolicyEstimator`.
//!
//! Transactions entering the mempool (without unconfirmed parents, whose
//! fee rate is not what a miner ranks them by) are tracked with their fee
//! rate and the tip height at entry. When a block connects, every statistic
//! decays by [`DECAY`] and each tracked transaction it confirms counts as
//! confirmed after `block height − entry height` blocks in its fee-rate
//! bucket (buckets spaced by [`BUCKET_SPACING`]). A tracked transaction that
//! leaves otherwise (replaced, evicted, conflicted, expired) counts as a
//! failure for every target it already outlived. The estimate for a target
//! is the median fee rate of the cheapest range of buckets (scanning down
//! from the top) in which at least [`SUCCESS_THRESHOLD`] of transactions
//! were confirmed within the target, counting still-unconfirmed ones that
//! are already older than the target as misses.
//!
//! Reorgs: a block at a height already seen only stops tracking what it
//! confirms (as Core does), so a branch switch never counts a block twice.
//! The statistics (not the tracked transactions) persist in
//! `<data-dir>/fee_estimates.dat`, written atomically.

#[cfg(test)]
mod tests;

#[cfg(test)]
thread_local! {
    /// Passes over the tracked transactions made on this thread (tests
    /// count what an answer costs).
    pub(crate) static TRACKED_SCANS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

use lode_core::Hash256;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// File name of the persisted statistics in the data directory.
pub const FILE_NAME: &str = "fee_estimates.dat";
/// Lowest bucket's upper bound, base units per byte (the default relay floor).
pub const MIN_BUCKET_RATE: f64 = 1.0;
/// Highest finite bucket bound (the wallet refuses rates above it).
pub const MAX_BUCKET_RATE: f64 = 100_000.0;
/// Ratio between consecutive bucket bounds (Core: 1.05).
pub const BUCKET_SPACING: f64 = 1.05;
/// Largest confirmation target answered; larger targets are clamped.
pub const MAX_TARGET: u32 = 48;
/// Per-block decay of every statistic: a half-life of about 144 blocks
/// (Core's medium horizon).
pub const DECAY: f64 = 0.9952;
/// Share of transactions that must have confirmed within the target.
pub const SUCCESS_THRESHOLD: f64 = 0.85;
/// Decayed transactions per block a bucket range needs before it is judged
/// (Core's `SUFFICIENT_FEETXS`); the range needs this / (1 − decay).
pub const SUFFICIENT_TXS_PER_BLOCK: f64 = 0.1;
/// Blocks between saves of the statistics (also saved at a clean stop).
pub const SAVE_EVERY_BLOCKS: u32 = 6;
/// Tracked transactions older than this many blocks are dropped as failures
/// (the mempool's expiry normally removes them first).
const MAX_TRACKED_AGE: u32 = 2016;

const MAGIC: &[u8; 8] = b"LODEFEE1";
/// Largest statistics file read: the file is about 190 KB for the current
/// buckets; a larger one is refused without being read whole.
const MAX_FEE_FILE_BYTES: u64 = 1024 * 1024;

/// Why a statistics file was not used.
#[derive(Debug, thiserror::Error)]
pub enum FeeFileError {
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Truncated, corrupted or written with other parameters.
    #[error("{path} is damaged or from another version: {why}")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// An answer to `estimatesmartfee`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeeEstimate {
    /// Base units per byte (rounded up, at least the mempool's minimum).
    pub feerate: u64,
    /// The target the estimate holds for (may exceed the one asked for
    /// when only a longer target has enough data).
    pub blocks: u32,
    /// Why the answer is only the mempool's minimum, if it is.
    pub errors: Vec<String>,
}

/// A tracked mempool transaction.
#[derive(Clone, Copy, Debug)]
struct Tracked {
    height: u32,
    bucket: usize,
    rate: f64,
}

/// The estimator.
pub struct FeeEstimator {
    /// Upper bounds of the buckets, ascending; the last is infinite.
    bounds: Vec<f64>,
    /// Decayed count of transactions confirmed per bucket.
    count: Vec<f64>,
    /// Decayed sum of their fee rates per bucket.
    rate_sum: Vec<f64>,
    /// `conf[t-1][b]`: decayed count confirmed within `t` blocks.
    conf: Vec<Vec<f64>>,
    /// `fail[t-1][b]`: decayed count that left unconfirmed after `t` blocks or more.
    fail: Vec<Vec<f64>>,
    tracked: HashMap<Hash256, Tracked>,
    /// Highest block height processed.
    best_height: u32,
    /// Where to save, and blocks processed since the last save.
    path: Option<PathBuf>,
    unsaved_blocks: u32,
}

impl Default for FeeEstimator {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_bounds() -> Vec<f64> {
    let mut bounds = Vec::new();
    let mut b = MIN_BUCKET_RATE;
    while b <= MAX_BUCKET_RATE {
        bounds.push(b);
        b *= BUCKET_SPACING;
    }
    bounds.push(f64::INFINITY);
    bounds
}

impl FeeEstimator {
    /// An estimator with no data.
    pub fn new() -> FeeEstimator {
        let bounds = bucket_bounds();
        let n = bounds.len();
        let targets = MAX_TARGET as usize;
        FeeEstimator {
            bounds,
            count: vec![0.0; n],
            rate_sum: vec![0.0; n],
            conf: vec![vec![0.0; n]; targets],
            fail: vec![vec![0.0; n]; targets],
            tracked: HashMap::new(),
            best_height: 0,
            path: None,
            unsaved_blocks: 0,
        }
    }

    /// The bucket of a fee rate: the first whose upper bound is not below it.
    fn bucket(&self, rate: f64) -> usize {
        self.bounds.partition_point(|b| *b < rate).min(self.bounds.len() - 1)
    }

    /// Highest block height processed.
    pub fn best_height(&self) -> u32 {
        self.best_height
    }

    /// Number of mempool transactions being followed.
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Starts following a transaction that entered the mempool when the tip
    /// was at `tip_height`, paying `rate` base units per byte.
    pub fn track(&mut self, txid: Hash256, rate: f64, tip_height: u32) {
        if !rate.is_finite() || rate < 0.0 {
            return;
        }
        // Entered while the estimator lags the tip (a restart with an old
        // file, a reorg in progress): its delay would be mismeasured.
        if tip_height != self.best_height {
            return;
        }
        let bucket = self.bucket(rate);
        self.tracked.insert(txid, Tracked { height: tip_height, bucket, rate });
    }

    /// A tracked transaction left the mempool without being mined
    /// (replaced, evicted, conflicted, expired): a failure for every target
    /// it already outlived.
    pub fn remove_tx(&mut self, txid: &Hash256) {
        let Some(t) = self.tracked.remove(txid) else { return };
        let age = self.best_height.saturating_sub(t.height).min(MAX_TARGET);
        for target in 0..age as usize {
            self.fail[target][t.bucket] += 1.0;
        }
    }

    /// Keeps only tracked transactions `keep` accepts; the others count as
    /// having left unconfirmed (after a reorg dropped them).
    pub fn retain(&mut self, keep: impl Fn(&Hash256) -> bool) {
        let gone: Vec<Hash256> = self.tracked.keys().filter(|t| !keep(t)).copied().collect();
        for t in gone {
            self.remove_tx(&t);
        }
    }

    /// A block at `height` connected, confirming `txids`.
    pub fn process_block(&mut self, height: u32, txids: impl IntoIterator<Item = Hash256>) {
        if height <= self.best_height {
            // Seen this height before (a reorg): counting it again would
            // double its weight; only stop following what it mined.
            for t in txids {
                self.tracked.remove(&t);
            }
            return;
        }
        self.best_height = height;
        self.unsaved_blocks = self.unsaved_blocks.saturating_add(1);
        for v in self.count.iter_mut().chain(self.rate_sum.iter_mut()) {
            *v *= DECAY;
        }
        for row in self.conf.iter_mut().chain(self.fail.iter_mut()) {
            for v in row.iter_mut() {
                *v *= DECAY;
            }
        }
        for t in txids {
            let Some(tr) = self.tracked.remove(&t) else { continue };
            let blocks = height.saturating_sub(tr.height);
            if blocks == 0 {
                continue;
            }
            self.count[tr.bucket] += 1.0;
            // The bucket's average rate is what the estimate reports.
            self.rate_sum[tr.bucket] += tr.rate;
            for target in (blocks as usize)..=(MAX_TARGET as usize) {
                self.conf[target - 1][tr.bucket] += 1.0;
            }
        }
        let stale: Vec<Hash256> = self
            .tracked
            .iter()
            .filter(|(_, t)| height.saturating_sub(t.height) > MAX_TRACKED_AGE)
            .map(|(id, _)| *id)
            .collect();
        for t in stale {
            self.remove_tx(&t);
        }
    }

    /// Decayed transactions a bucket range needs before it is judged.
    fn sufficient() -> f64 {
        SUFFICIENT_TXS_PER_BLOCK / (1.0 - DECAY)
    }

    /// The median fee rate of the cheapest bucket range where at least
    /// `threshold` of transactions confirmed within `target` blocks
    /// (Core's `EstimateMedianVal`), or `None` without enough data.
    pub fn estimate(&self, target: u32, threshold: f64) -> Option<f64> {
        let target = target.clamp(1, MAX_TARGET);
        let waiting = self.waiting_by_age();
        let mut extra = vec![0.0f64; self.bounds.len()];
        for row in &waiting[target as usize..] {
            for (e, w) in extra.iter_mut().zip(row) {
                *e += w;
            }
        }
        self.estimate_with(target, threshold, &extra)
    }

    /// Still-unconfirmed tracked transactions per bucket, by age in blocks
    /// (row `a`: `a` blocks old; the last row: [`MAX_TARGET`] or older).
    /// One pass over everything tracked, whatever the number of targets
    /// answered from it: the pool can track hundreds of thousands.
    fn waiting_by_age(&self) -> Vec<Vec<f64>> {
        #[cfg(test)]
        TRACKED_SCANS.with(|n| n.set(n.get() + 1));
        let mut rows = vec![vec![0.0f64; self.bounds.len()]; MAX_TARGET as usize + 1];
        for t in self.tracked.values() {
            let age = self.best_height.saturating_sub(t.height).min(MAX_TARGET) as usize;
            rows[age][t.bucket] += 1.0;
        }
        rows
    }

    /// [`Self::estimate`] with `extra`, the still-unconfirmed transactions
    /// per bucket already older than `target` (counted as misses).
    fn estimate_with(&self, target: u32, threshold: f64, extra: &[f64]) -> Option<f64> {
        let target = target.clamp(1, MAX_TARGET) as usize;
        let n = self.bounds.len();
        let (conf, fail) = (&self.conf[target - 1], &self.fail[target - 1]);
        let (mut n_conf, mut total, mut n_fail, mut n_extra) = (0.0, 0.0, 0.0, 0.0);
        let mut near = n - 1;
        let mut new_range = true;
        let mut best: Option<(usize, usize)> = None;
        for b in (0..n).rev() {
            if new_range {
                near = b;
                new_range = false;
            }
            n_conf += conf[b];
            total += self.count[b];
            n_fail += fail[b];
            n_extra += extra[b];
            if total >= Self::sufficient() {
                let share = n_conf / (total + n_fail + n_extra);
                if share >= threshold {
                    // Passing: remember it and look for a cheaper range.
                    best = Some((b, near));
                    (n_conf, total, n_fail, n_extra) = (0.0, 0.0, 0.0, 0.0);
                    new_range = true;
                }
                // Failing: keep widening downwards (a cheaper range can
                // still pass once more buckets are in).
            }
        }
        let (low, high) = best?;
        let in_range: f64 = self.count[low..=high].iter().sum();
        let mut seen = 0.0;
        for b in low..=high {
            seen += self.count[b];
            if seen >= in_range / 2.0 && self.count[b] > 0.0 {
                return Some(self.rate_sum[b] / self.count[b]);
            }
        }
        None
    }

    /// `estimatesmartfee`: the rate for `target` blocks (clamped to
    /// 1..=[`MAX_TARGET`]), never below what a longer target needs, nor
    /// below `min_rate`; the first longer target with data when `target`
    /// has none; `min_rate` with an error when no target has data.
    pub fn estimate_smart(&self, target: u32, min_rate: u64) -> FeeEstimate {
        self.estimate_smart_all(&[target], min_rate).swap_remove(0)
    }

    /// [`Self::estimate_smart`] for each of `targets`, from one pass over
    /// the tracked transactions (a page of every target asked for one pass
    /// per target and bucket range: hundreds, under the estimator's lock).
    pub fn estimate_smart_all(&self, targets: &[u32], min_rate: u64) -> Vec<FeeEstimate> {
        let waiting = self.waiting_by_age();
        // From the longest target down, so a shorter target never answers
        // less than a longer one: `found[t]` is the shortest target at or
        // above `t` with data, with the highest rate of those above it.
        let mut found: Vec<Option<(u32, f64)>> = vec![None; MAX_TARGET as usize + 1];
        let mut extra = vec![0.0f64; self.bounds.len()];
        let mut best: Option<(u32, f64)> = None;
        let mut floor = 0.0f64;
        for t in (1..=MAX_TARGET).rev() {
            // Older than `t`: the rows of age `t` and up.
            for (e, w) in extra.iter_mut().zip(&waiting[t as usize]) {
                *e += w;
            }
            if let Some(r) = self.estimate_with(t, SUCCESS_THRESHOLD, &extra) {
                floor = floor.max(r);
                best = Some((t, floor));
            }
            found[t as usize] = best;
        }
        targets
            .iter()
            .map(|&target| self.smart_answer(target, found[target.clamp(1, MAX_TARGET) as usize], min_rate))
            .collect()
    }

    /// The answer for `target` given the shortest target at or above it
    /// with data and its rate.
    fn smart_answer(&self, target: u32, found: Option<(u32, f64)>, min_rate: u64) -> FeeEstimate {
        let target = target.clamp(1, MAX_TARGET);
        match found {
            Some((blocks, rate)) => {
                // Rounded up (a hair of float noise aside) so paying it meets it.
                let feerate = ((rate - 1e-9).ceil().max(0.0) as u64).max(min_rate);
                FeeEstimate { feerate, blocks, errors: Vec::new() }
            }
            None => FeeEstimate {
                feerate: min_rate,
                blocks: target,
                errors: vec![format!(
                    "insufficient data: fewer than {:.0} recent transactions confirmed in any fee-rate range for \
                     {target} blocks or more ({} blocks seen, {} transactions followed); answering the mempool's \
                     minimum fee rate",
                    Self::sufficient(),
                    self.best_height,
                    self.tracked.len()
                )],
            },
        }
    }

    /// Sets where [`FeeEstimator::save_due`] saves.
    pub fn set_path(&mut self, path: PathBuf) {
        self.path = Some(path);
    }

    /// Lowers the best height to `tip` (a file from a longer chain than
    /// the one on disk, e.g. after a resync), so new blocks count again.
    pub fn clamp_height(&mut self, tip: u32) {
        self.best_height = self.best_height.min(tip);
    }

    /// The statistics as file bytes, with the path to write them to, when
    /// [`SAVE_EVERY_BLOCKS`] blocks passed since the last save (resets the
    /// count: the caller writes outside the node's locks).
    pub fn save_due(&mut self) -> Option<(PathBuf, Vec<u8>)> {
        if self.unsaved_blocks < SAVE_EVERY_BLOCKS {
            return None;
        }
        let path = self.path.clone()?;
        self.unsaved_blocks = 0;
        Some((path, self.to_bytes()))
    }

    /// The statistics as file bytes with the path to write them to, if any.
    pub fn snapshot(&mut self) -> Option<(PathBuf, Vec<u8>)> {
        let path = self.path.clone()?;
        self.unsaved_blocks = 0;
        Some((path, self.to_bytes()))
    }

    /// Encodes the statistics (not the tracked transactions): magic, bucket
    /// count, target count, decay, best height, the arrays as f64
    /// little-endian, then a SHA-256 of everything before.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 8 * self.bounds.len() * (2 + 2 * MAX_TARGET as usize));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.bounds.len() as u32).to_le_bytes());
        out.extend_from_slice(&MAX_TARGET.to_le_bytes());
        out.extend_from_slice(&DECAY.to_bits().to_le_bytes());
        out.extend_from_slice(&self.best_height.to_le_bytes());
        let rows = [&self.count, &self.rate_sum].into_iter().chain(self.conf.iter()).chain(self.fail.iter());
        for row in rows {
            for v in row {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        let sum = lode_core::hash::sha256(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Decodes [`FeeEstimator::to_bytes`]; `Err` names what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<FeeEstimator, &'static str> {
        let mut e = FeeEstimator::new();
        let n = e.bounds.len();
        let header = 8 + 4 + 4 + 8 + 4;
        let values = n * (2 + 2 * MAX_TARGET as usize);
        if bytes.len() != header + 8 * values + 32 {
            return Err("wrong length");
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if lode_core::hash::sha256(body) != sum {
            return Err("checksum mismatch");
        }
        if &body[..8] != MAGIC {
            return Err("unknown header");
        }
        let u32_at = |i: usize| u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        let f64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[i..i + 8]);
            f64::from_le_bytes(b)
        };
        if u32_at(8) as usize != n || u32_at(12) != MAX_TARGET || f64_at(16).to_bits() != DECAY.to_bits() {
            return Err("written with other bucket, target or decay parameters");
        }
        e.best_height = u32_at(24);
        let mut at = header;
        let mut next = || {
            let v = f64_at(at);
            at += 8;
            v
        };
        let rows = [&mut e.count, &mut e.rate_sum].into_iter().chain(e.conf.iter_mut()).chain(e.fail.iter_mut());
        for row in rows {
            for v in row.iter_mut() {
                let x = next();
                if !x.is_finite() || x < 0.0 {
                    return Err("a negative or non-finite statistic");
                }
                *v = x;
            }
        }
        Ok(e)
    }

    /// Reads a statistics file; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<FeeEstimator>, FeeFileError> {
        let name = path.display().to_string();
        match crate::files::read_capped(path, MAX_FEE_FILE_BYTES) {
            Ok(bytes) => {
                FeeEstimator::from_bytes(&bytes).map(Some).map_err(|why| FeeFileError::Damaged { path: name, why })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(FeeFileError::Io { path: name, source }),
        }
    }
}

/// Writes a statistics file whole or not at all (see [`crate::files::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::files::write_atomic(path, bytes, crate::files::Access::Default)
}
