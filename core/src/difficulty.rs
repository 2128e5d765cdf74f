//! Per-block difficulty retargeting: LWMA-1 (linearly weighted moving
//! average), as used by many small proof-of-work chains because it reacts to
//! hash-rate swings within a window while resisting timestamp games.

use crate::pow::{CompactTarget, Target};
use crate::spec::{ChainSpec, DifficultyAlgorithm};
use crypto_bigint::{U256, U512};

/// The time and bits of one ancestor, the only facts retargeting needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderSample {
    /// Header timestamp.
    pub time: u64,
    /// Header bits.
    pub bits: CompactTarget,
}

/// How many ancestors (ending with the parent) [`next_bits`] wants.
pub fn window_len(spec: &ChainSpec) -> usize {
    match spec.difficulty {
        DifficultyAlgorithm::Fixed => 1,
        DifficultyAlgorithm::Lwma { window } => window as usize + 1,
    }
}

/// The bits a block must carry, given its recent ancestors oldest first and
/// ending with its parent (at most [`window_len`] are used).
pub fn next_bits(spec: &ChainSpec, ancestors: &[HeaderSample]) -> CompactTarget {
    let window = match spec.difficulty {
        DifficultyAlgorithm::Fixed => return spec.pow_limit,
        DifficultyAlgorithm::Lwma { window } => window as usize,
    };
    let Ok(limit) = spec.pow_limit.to_target() else {
        return spec.pow_limit;
    };
    if ancestors.len() < 2 {
        return spec.genesis.bits;
    }
    let samples = &ancestors[ancestors.len().saturating_sub(window + 1)..];
    // u128 throughout: a spec file may name any spacing, and the weighted
    // sum of up to 1000 capped solve times must not overflow (a panic).
    let n = (samples.len() - 1) as u128;
    let spacing = u128::from(spec.target_spacing_secs.max(1));
    // k = n(n+1)T/2 normalises the weights so steady blocks keep the target.
    let k = n * (n + 1) * spacing / 2;

    let mut weighted: u128 = 0;
    let mut sum_targets = U512::ZERO;
    let mut prev_time = samples[0].time;
    for (i, s) in samples[1..].iter().enumerate() {
        // Timestamps may go backwards within the median rule; LWMA-1 treats
        // them as monotonic and caps one solve time at 6T, so a single forged
        // timestamp moves the target a bounded amount.
        let time = s.time.max(prev_time.saturating_add(1));
        let solve = u128::from(time - prev_time).min(6 * spacing);
        prev_time = time;
        weighted += (i as u128 + 1) * solve;
        let target = s.bits.to_target().map(|t| t.0).unwrap_or(limit.0);
        sum_targets = sum_targets.wrapping_add(&target.resize::<{ U512::LIMBS }>());
    }
    let numerator = sum_targets.wrapping_mul(&U512::from_u128(weighted));
    let denominator = U512::from_u128(n).wrapping_mul(&U512::from_u128(k));
    let next = numerator.wrapping_div(&denominator);
    let limit_wide = limit.0.resize::<{ U512::LIMBS }>();
    let next = if next > limit_wide || next == U512::ZERO {
        if next == U512::ZERO {
            U256::ONE
        } else {
            limit.0
        }
    } else {
        next.resize::<{ U256::LIMBS }>()
    };
    Target(next).to_compact()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ChainSpec;

    /// Simulates mining with a hash rate that changes at block `switch`.
    /// Solve times are exponential with mean work / hashrate (a fixed-seed
    /// generator keeps the test deterministic).
    fn simulate(
        spec: &ChainSpec,
        rate_before: f64,
        rate_after: f64,
        switch: usize,
        blocks: usize,
    ) -> Vec<HeaderSample> {
        let mut chain = vec![HeaderSample { time: 1_000_000, bits: spec.genesis.bits }];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut uniform = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut clock = 1_000_000f64;
        for h in 1..=blocks {
            let start = chain.len().saturating_sub(window_len(spec));
            let bits = next_bits(spec, &chain[start..]);
            let work = bits.to_target().unwrap().work().as_f64();
            let rate = if h < switch { rate_before } else { rate_after };
            let solve = -(1.0 - uniform()).ln() * work / rate;
            clock += solve;
            chain.push(HeaderSample { time: clock as u64, bits });
        }
        chain
    }

    fn mean_spacing(chain: &[HeaderSample]) -> f64 {
        (chain[chain.len() - 1].time - chain[0].time) as f64 / (chain.len() - 1) as f64
    }

    #[test]
    fn converges_after_tenfold_hashrate_jump_up_and_down() {
        let spec = ChainSpec::testnet();
        let t = spec.target_spacing_secs as f64;
        // A rate 100x what mines at the spacing at the limit, so a 10x drop
        // still leaves the equilibrium well inside the allowed range.
        let genesis_work = spec.genesis.bits.to_target().unwrap().work().as_f64();
        let base = 100.0 * genesis_work / t;
        for (before, after) in [(base, base * 10.0), (base * 10.0, base)] {
            let chain = simulate(&spec, before, after, 600, 2600);
            // Skip the window the algorithm needs to react, then measure.
            let settled = &chain[1000..];
            let mean = mean_spacing(settled);
            assert!((mean - t).abs() / t < 0.10, "mean spacing {mean} vs target {t} ({before} -> {after})");
        }
    }

    #[test]
    fn never_easier_than_the_pow_limit() {
        let spec = ChainSpec::testnet();
        let genesis_work = spec.genesis.bits.to_target().unwrap().work().as_f64();
        // A hash rate 1000x too small: blocks take forever, the target rises
        // to the limit and stops there.
        let chain = simulate(&spec, genesis_work / 60_000.0, genesis_work / 60_000.0, 0, 200);
        let limit = spec.pow_limit.to_target().unwrap();
        for s in &chain {
            let t = s.bits.to_target().unwrap();
            assert!(t.0 <= limit.0, "target above the limit");
        }
        assert_eq!(chain.last().unwrap().bits, spec.pow_limit);
    }

    #[test]
    fn fixed_difficulty_always_returns_the_limit() {
        let spec = ChainSpec::regtest();
        let s = HeaderSample { time: 5, bits: spec.pow_limit };
        assert_eq!(next_bits(&spec, &[s, s, s]), spec.pow_limit);
    }

    #[test]
    fn steady_blocks_keep_the_target() {
        let spec = ChainSpec::testnet();
        let bits = CompactTarget(0x1d0fffff);
        let chain: Vec<HeaderSample> =
            (0..=60).map(|i| HeaderSample { time: 1000 + i * spec.target_spacing_secs, bits }).collect();
        let next = next_bits(&spec, &chain);
        let a = next.to_target().unwrap().work().as_f64();
        let b = bits.to_target().unwrap().work().as_f64();
        assert!((a / b - 1.0).abs() < 0.001, "{next} vs {bits}");
    }
}
