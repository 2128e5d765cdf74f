//! Named tests for what the fuzzers found. Each input is also kept in
//! fuzz/regressions/<target>/ and replayed by tests/replay.rs.

use lode_core::difficulty::{next_bits, HeaderSample};
use lode_core::spec::DifficultyAlgorithm;
use lode_core::ChainSpec;

fn regression(target: &str, name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../regressions").join(target).join(name);
    std::fs::read(path).expect("the regression input is committed")
}

/// Found by the difficulty target in its first second: a chain-spec file
/// may name any positive `target_spacing_secs`, and LWMA's normaliser
/// `n(n+1)T/2` overflowed u64 (a panic with overflow checks, a wrong
/// target without) at the first retarget. Fixed by computing in u128.
#[test]
fn retarget_survives_a_spec_file_with_a_huge_block_spacing() {
    let mut spec = ChainSpec::testnet();
    spec.target_spacing_secs = u64::MAX / 2;
    spec.difficulty = DifficultyAlgorithm::Lwma { window: 1000 };
    spec.max_future_block_secs = 0;
    let spec = ChainSpec::from_json(&serde_json::to_string(&spec).unwrap()).expect("the loader accepts it");
    let chain: Vec<HeaderSample> =
        (0..=1000u64).map(|i| HeaderSample { time: i * 1000, bits: spec.pow_limit }).collect();
    let bits = next_bits(&spec, &chain);
    let target = bits.to_target().expect("usable bits");
    assert!(target.0 <= spec.pow_limit.to_target().unwrap().0);
    // A last timestamp of u64::MAX (the solve-time clamp's +1) as well.
    let mut end = chain.clone();
    end.push(HeaderSample { time: u64::MAX, bits: spec.pow_limit });
    end.push(HeaderSample { time: 5, bits: spec.pow_limit });
    next_bits(&spec, &end[end.len() - 1001..]);
    lode_fuzz::difficulty::run(&regression("difficulty", "huge-spacing-overflow"));
}
