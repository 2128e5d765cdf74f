//! Difficulty and work: arbitrary timestamp and bits sequences, on the
//! built-in networks and on specs with any spacing and window a spec file
//! may legally name, into `next_bits`; and arbitrary bits into chain work.
//! Never a panic; the next target is never easier than the limit nor zero;
//! work is at least one and never falls as the target gets harder.

use arbitrary::{Arbitrary, Unstructured};
use lode_core::difficulty::{next_bits, window_len, HeaderSample};
use lode_core::pow::{CompactTarget, Work};
use lode_core::spec::DifficultyAlgorithm;
use lode_core::ChainSpec;

#[derive(Arbitrary, Debug)]
enum SpecChoice {
    Regtest,
    Devnet,
    Testnet,
    /// Testnet with another spacing and window (kept only if a spec file
    /// naming them would load).
    Custom {
        spacing: u64,
        window: u32,
    },
}

#[derive(Arbitrary, Debug)]
enum Time {
    /// The previous time plus a small step (real chains).
    Step(u16),
    /// The previous time minus a small step (allowed within the median rule).
    Back(u8),
    /// Anything.
    Absolute(u64),
}

#[derive(Arbitrary, Debug)]
struct Input {
    spec: SpecChoice,
    start: u64,
    samples: Vec<(Time, Option<u32>)>,
    extra_bits: Vec<u32>,
}

fn spec_for(choice: &SpecChoice) -> Option<ChainSpec> {
    Some(match *choice {
        SpecChoice::Regtest => ChainSpec::regtest(),
        SpecChoice::Devnet => ChainSpec::devnet(),
        SpecChoice::Testnet => ChainSpec::testnet(),
        SpecChoice::Custom { spacing, window } => {
            let mut spec = ChainSpec::testnet();
            spec.target_spacing_secs = spacing;
            spec.difficulty = DifficultyAlgorithm::Lwma { window };
            spec.max_future_block_secs = 0;
            // Only what the loader accepts: the same checks a spec file meets.
            let json = serde_json::to_string(&spec).ok()?;
            ChainSpec::from_json(&json).ok()?
        }
    })
}

/// The fuzz entry point.
pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else { return };
    check(&input);
}

fn check(input: &Input) {
    let Some(spec) = spec_for(&input.spec) else { return };
    let limit = spec.pow_limit.to_target().expect("a loaded spec has a valid limit");
    let mut chain = vec![HeaderSample { time: input.start, bits: spec.genesis.bits }];
    for (time, bits) in input.samples.iter().take(4 * 1024) {
        let prev = chain.last().map(|s| s.time).unwrap_or(0);
        let time = match *time {
            Time::Step(d) => prev.saturating_add(u64::from(d)),
            Time::Back(d) => prev.saturating_sub(u64::from(d)),
            Time::Absolute(t) => t,
        };
        let start = chain.len().saturating_sub(window_len(&spec));
        let expected = next_bits(&spec, &chain[start..]);
        let target = expected.to_target().unwrap_or_else(|e| panic!("next_bits gave unusable bits {expected}: {e}"));
        assert!(target.0 <= limit.0, "next_bits {expected} is easier than the limit {}", spec.pow_limit);
        if matches!(spec.difficulty, DifficultyAlgorithm::Fixed) {
            assert_eq!(expected, spec.pow_limit);
        }
        // A header may carry other bits (it is then invalid); retargeting
        // must still cope with them in its window.
        chain.push(HeaderSample { time, bits: bits.map(CompactTarget).unwrap_or(expected) });
    }
    // Chain work along the sequence and over arbitrary bits.
    let mut total = Work::ZERO;
    let mut all: Vec<u32> = chain.iter().map(|s| s.bits.0).collect();
    all.extend(input.extra_bits.iter().take(1024));
    for bits in all {
        let Ok(target) = CompactTarget(bits).to_target() else { continue };
        let work = target.work();
        assert!(work.0 >= crypto_one(), "work of {bits:#x} is zero");
        let before = total;
        total = total.saturating_add(&work);
        assert!(total >= before, "cumulative work fell");
        // Compact form rounds down: never easier than the target it came from.
        let round = target.to_compact().to_target().expect("a target's compact form decodes");
        assert!(round.0 <= target.0, "compact form of {bits:#x} is easier than the target");
        assert!(round.work() >= work, "rounding down lost work");
        // A harder target (half) proves at least as much work.
        let half = lode_core::pow::Target(target.0.shr_vartime(1));
        if half.0 != crypto_bigint::U256::ZERO {
            assert!(half.work() >= work, "a harder target proves less work");
        }
    }
}

fn crypto_one() -> crypto_bigint::U256 {
    crypto_bigint::U256::ONE
}
