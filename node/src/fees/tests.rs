use super::*;

/// Fee rates offered every block, two transactions each.
const RATES: [u64; 17] = [1, 2, 3, 5, 8, 10, 12, 15, 18, 20, 25, 30, 40, 50, 60, 80, 100];
/// Blocks after which a transaction nobody mines leaves the mempool.
const EXPIRY: u32 = 20;

/// A synthetic fee market: every block, two transactions at each rate of
/// [`RATES`] enter; the miner confirms a transaction `delay(rate)` blocks
/// after it entered, or never (it expires after [`EXPIRY`] blocks).
struct Market {
    est: FeeEstimator,
    next_id: u64,
    /// (txid, entry height, rate) of pending transactions.
    pending: Vec<(Hash256, u32, u64)>,
    tip: u32,
}

impl Market {
    fn new() -> Market {
        Market { est: FeeEstimator::new(), next_id: 0, pending: Vec::new(), tip: 0 }
    }

    fn id(&mut self) -> Hash256 {
        self.next_id += 1;
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&self.next_id.to_le_bytes());
        Hash256(b)
    }

    fn run(&mut self, blocks: u32, delay: impl Fn(u64) -> Option<u32>) {
        for _ in 0..blocks {
            for r in RATES {
                for _ in 0..2 {
                    let id = self.id();
                    self.est.track(id, r as f64, self.tip);
                    self.pending.push((id, self.tip, r));
                }
            }
            let height = self.tip + 1;
            let (mined, rest): (Vec<_>, Vec<_>) =
                self.pending.drain(..).partition(|(_, h, r)| delay(*r).is_some_and(|d| h + d <= height));
            self.est.process_block(height, mined.iter().map(|m| m.0));
            self.tip = height;
            let (expired, rest): (Vec<_>, Vec<_>) = rest.into_iter().partition(|(_, h, _)| height - h >= EXPIRY);
            for (id, _, _) in expired {
                self.est.remove_tx(&id);
            }
            self.pending = rest;
        }
    }

    fn rate(&self, target: u32) -> u64 {
        let e = self.est.estimate_smart(target, 1);
        assert!(e.errors.is_empty(), "{e:?}");
        e.feerate
    }
}

fn market_delay(r: u64) -> Option<u32> {
    match r {
        50.. => Some(1),
        20.. => Some(3),
        10.. => Some(6),
        _ => None,
    }
}

#[test]
fn converges_to_the_rates_a_synthetic_market_confirms_in_1_3_and_6_blocks() {
    let mut m = Market::new();
    m.run(200, market_delay);
    assert_eq!(m.rate(1), 50);
    assert_eq!(m.rate(2), 50, "20–49 take three blocks");
    assert_eq!(m.rate(3), 20);
    assert_eq!(m.rate(5), 20);
    assert_eq!(m.rate(6), 10);
    assert_eq!(m.rate(48), 10, "below 10 nothing is ever mined");
    assert_eq!(m.est.estimate_smart(6, 1).blocks, 6);
    assert_eq!(m.est.estimate_smart(1000, 1).blocks, MAX_TARGET, "targets are clamped");
    assert_eq!(m.est.estimate_smart(1, 70).feerate, 70, "never below the mempool's minimum");

    // The market gets cheaper: 30 and up confirm at once. Old data decays
    // away and the estimate follows.
    m.run(400, |r| match r {
        30.. => Some(1),
        10.. => Some(2),
        _ => None,
    });
    assert_eq!(m.rate(1), 30);
    assert_eq!(m.rate(2), 10);
}

#[test]
fn without_enough_data_it_answers_the_minimum_and_says_so() {
    let e = FeeEstimator::new().estimate_smart(6, 3);
    assert_eq!((e.feerate, e.blocks), (3, 6));
    assert!(e.errors[0].starts_with("insufficient data"), "{e:?}");
    // A few blocks of a thin market are not enough either.
    let mut m = Market::new();
    m.run(2, market_delay);
    assert!(!m.est.estimate_smart(1, 1).errors.is_empty());
}

#[test]
fn transactions_leaving_unconfirmed_count_as_failures_for_targets_they_outlived() {
    // Every block ten transactions at 60 (all mined in the next block) and
    // ten at 50, of which five are mined in the next block and five are
    // replaced two blocks after entering. For one block, 50 succeeds a third
    // of the time (the replaced ones and those waiting count against it);
    // for three blocks the replaced ones outlived no target: 50 passes.
    let mut e = FeeEstimator::new();
    let mut n = 0u64;
    let mut waiting: Vec<(Hash256, u32)> = Vec::new();
    for tip in 0..150u32 {
        let mut next_block = Vec::new();
        for (rate, replaced) in [(60.0, 0), (50.0, 5)] {
            for i in 0..10 {
                n += 1;
                let mut b = [0u8; 32];
                b[..8].copy_from_slice(&n.to_le_bytes());
                e.track(Hash256(b), rate, tip);
                if i < replaced {
                    waiting.push((Hash256(b), tip));
                } else {
                    next_block.push(Hash256(b));
                }
            }
        }
        e.process_block(tip + 1, next_block);
        let (gone, kept): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|(_, h)| tip + 1 - h >= 2);
        for (id, _) in gone {
            e.remove_tx(&id);
        }
        waiting = kept;
    }
    assert_eq!(e.estimate_smart(1, 1).feerate, 60);
    assert_eq!(e.estimate_smart(2, 1).feerate, 60);
    assert_eq!(e.estimate_smart(3, 1).feerate, 50);
    // Leaving before a target passed is no failure for it: a transaction
    // gone within its first block hurts no target.
    let mut e = FeeEstimator::new();
    e.track(Hash256([1; 32]), 5.0, 0);
    e.remove_tx(&Hash256([1; 32]));
    assert!(e.fail.iter().flatten().all(|v| *v == 0.0));
}

#[test]
fn a_reorg_reconnecting_seen_heights_changes_nothing() {
    let mut m = Market::new();
    m.run(100, market_delay);
    let before = m.est.to_bytes();
    let estimates: Vec<u64> = (1..=10).map(|t| m.rate(t)).collect();
    // The last two heights connect again on another branch, mining what
    // is pending: they only stop being followed.
    let pending: Vec<Hash256> = m.pending.iter().map(|p| p.0).collect();
    m.est.process_block(m.tip - 1, pending.clone());
    m.est.process_block(m.tip, Vec::new());
    assert_eq!(m.est.to_bytes(), before, "no statistic moved");
    assert_eq!(m.est.tracked(), 0);
    assert_eq!((1..=10).map(|t| m.rate(t)).collect::<Vec<_>>(), estimates);
    // Transactions entering while the estimator lags the tip are not followed.
    m.est.track(Hash256([9; 32]), 10.0, m.tip + 5);
    assert_eq!(m.est.tracked(), 0);
}

#[test]
fn statistics_survive_a_round_trip_and_damaged_files_are_refused() {
    let mut m = Market::new();
    m.run(60, market_delay);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    m.est.set_path(path.clone());
    // Due only every SAVE_EVERY_BLOCKS blocks.
    let (p, bytes) = m.est.snapshot().unwrap();
    assert!(m.est.save_due().is_none());
    write_atomic(&p, &bytes).unwrap();
    let loaded = FeeEstimator::load(&path).unwrap().unwrap();
    assert_eq!(loaded.best_height(), 60);
    for t in [1, 3, 6] {
        assert_eq!(loaded.estimate_smart(t, 1).feerate, m.est.estimate_smart(t, 1).feerate);
    }
    m.run(SAVE_EVERY_BLOCKS, market_delay);
    assert!(m.est.save_due().is_some());
    assert!(FeeEstimator::load(&dir.path().join("none")).unwrap().is_none());
    for (damage, why) in [
        (bytes[..bytes.len() - 1].to_vec(), "length"),
        (
            {
                let mut b = bytes.clone();
                b[100] ^= 1;
                b
            },
            "checksum",
        ),
        (b"hello".to_vec(), "length"),
    ] {
        std::fs::write(&path, &damage).unwrap();
        let e = FeeEstimator::load(&path).err().unwrap().to_string();
        assert!(e.contains(why) && e.contains("damaged"), "{e}");
    }
    // A restarted node with a shorter chain lowers the best height.
    let mut l = FeeEstimator::from_bytes(&bytes).unwrap();
    l.clamp_height(10);
    assert_eq!(l.best_height(), 10);
}

#[test]
fn a_statistics_file_larger_than_its_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, vec![0u8; MAX_FEE_FILE_BYTES as usize + 1]).unwrap();
    let e = FeeEstimator::load(&path).err().unwrap().to_string();
    assert!(e.contains("larger than"), "{e}");
}

// The explorer's fee page asks for every target: each target scanned the
// tracked transactions once per target at or above it (903 passes for
// the page, under the estimator's lock that block connection needs).
#[test]
fn every_target_is_answered_from_one_pass_over_the_tracked_transactions_as_each_alone_would_be() {
    let mut m = Market::new();
    // Long waits at the low rates leave many transactions tracked, of
    // every age, so the misses matter to the answers.
    m.run(60, |r| match r {
        40.. => Some(1),
        15.. => Some(4),
        5.. => Some(12),
        _ => None,
    });
    assert!(m.est.tracked.len() > 100, "{} tracked", m.est.tracked.len());
    let targets: Vec<u32> = (0..=MAX_TARGET + 2).collect();
    super::TRACKED_SCANS.with(|n| n.set(0));
    let all = m.est.estimate_smart_all(&targets, 1);
    assert_eq!(super::TRACKED_SCANS.with(|n| n.get()), 1, "passes over the tracked transactions");
    // Each target as Core answers it alone: the per-target estimate from
    // the longest target down, never below a longer target's rate.
    for (&target, got) in targets.iter().zip(&all) {
        let clamped = target.clamp(1, MAX_TARGET);
        let mut found = None;
        let mut floor = 0.0f64;
        for t in (clamped..=MAX_TARGET).rev() {
            // The misses as the estimator counted them before, one pass
            // per target: still unconfirmed and at least `t` blocks old.
            let mut extra = vec![0.0f64; m.est.bounds.len()];
            for tr in m.est.tracked.values() {
                if m.est.best_height.saturating_sub(tr.height) >= t {
                    extra[tr.bucket] += 1.0;
                }
            }
            if let Some(r) = m.est.estimate_with(t, SUCCESS_THRESHOLD, &extra) {
                floor = floor.max(r);
                found = Some((t, floor));
            }
        }
        let want = m.est.smart_answer(target, found, 1);
        let (got, want) =
            ((got.feerate, got.blocks, got.errors.is_empty()), (want.feerate, want.blocks, want.errors.is_empty()));
        assert_eq!(got, want, "target {target}");
    }
    assert!(all.iter().any(|e| e.errors.is_empty()), "the market gave the estimator data");
}
