//! The miner's hash counter and its rate over a sliding window.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Width of the sliding window the rate is averaged over.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Least time between two samples.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Hashes done so far and (time, total) samples of the last window.
pub(super) struct Meter {
    hashes: AtomicU64,
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl Meter {
    pub(super) fn new() -> Meter {
        Meter { hashes: AtomicU64::new(0), samples: Mutex::new(VecDeque::from([(Instant::now(), 0)])) }
    }

    fn samples(&self) -> MutexGuard<'_, VecDeque<(Instant, u64)>> {
        // Samples are plain numbers: a panic elsewhere cannot corrupt them.
        self.samples.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `n` more hashes; now and then records a sample.
    #[inline]
    pub(super) fn add(&self, n: u64) {
        let total = self.hashes.fetch_add(n, Ordering::Relaxed) + n;
        // Never make a mining thread wait: skip the sample if contended.
        let Ok(mut samples) = self.samples.try_lock() else { return };
        let now = Instant::now();
        if samples.back().is_none_or(|(at, _)| now.duration_since(*at) >= SAMPLE_EVERY) {
            samples.push_back((now, total));
            prune(&mut samples, now);
        }
    }

    /// Total hashes so far.
    pub(super) fn total(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    /// Hashes per second over the last [`RATE_WINDOW`] (0 when idle that long).
    pub(super) fn rate(&self) -> f64 {
        let total = self.total();
        let now = Instant::now();
        let mut samples = self.samples();
        prune(&mut samples, now);
        match samples.front() {
            Some((at, base)) => {
                let secs = now.duration_since(*at).as_secs_f64();
                if secs > 0.0 {
                    total.saturating_sub(*base) as f64 / secs
                } else {
                    0.0
                }
            }
            None => 0.0,
        }
    }
}

/// Drops samples older than the window.
fn prune(samples: &mut VecDeque<(Instant, u64)>, now: Instant) {
    while samples.front().is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW) {
        samples.pop_front();
    }
}

/// A cloneable reader of the miner's hash rate.
#[derive(Clone)]
pub struct HashRate {
    pub(super) meter: Arc<Meter>,
}

impl HashRate {
    /// Hashes per second over the last ten seconds.
    pub fn get(&self) -> f64 {
        self.meter.rate()
    }

    /// Hashes tried since the miner started.
    pub fn total(&self) -> u64 {
        self.meter.total()
    }
}
