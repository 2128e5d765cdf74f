//! A simulated network under a timestamp attack. A miner with a tenth of the
//! hash rate stamps each of its blocks as far in the future as the rules
//! allow; the rest stamp the clock (or one second past the median time past,
//! whichever is later). Every block passes the real header rules
//! (`check_header_context`: bits from `next_bits`, time above the median of
//! the last 11, not beyond now + `max_future_block_secs`). With the spec's
//! future limit (about spacing × window / 20) the chain keeps its pace; with
//! the old two-hour limit LWMA reads the forward-stamped blocks as a burst
//! of fast ones and ratchets the difficulty up until blocks come far slower
//! than the target.

use lode_core::block::{BlockHeader, BLOCK_VERSION};
use lode_core::difficulty::{next_bits, window_len, HeaderSample};
use lode_core::validation::{check_header_context, median_time_past, HeaderContext, MEDIAN_TIME_SPAN};
use lode_core::{ChainSpec, Hash256};

/// Blocks mined before measuring, so the difficulty has settled.
const WARMUP: usize = 2_000;
/// Blocks measured.
const MEASURED: usize = 20_000;
/// The attacker's share of the hash rate.
const ATTACKER_SHARE: f64 = 0.10;
/// The largest mean spacing accepted, as a multiple of the target.
const MAX_SLOWDOWN: f64 = 1.2;

/// Figures of one run.
#[derive(Debug)]
struct Run {
    /// Mean real time between blocks over the measured part, seconds.
    mean_spacing: f64,
    /// Share of the measured blocks the attacker mined.
    attacker_blocks: f64,
}

/// Mines `WARMUP + MEASURED` blocks on `spec` at a constant total hash rate.
/// Solve times are exponential with mean work / hash rate; a fixed-seed
/// generator keeps the run deterministic.
fn simulate(spec: &ChainSpec) -> Run {
    let t = spec.target_spacing_secs as f64;
    let genesis_work = spec.genesis.bits.to_target().expect("genesis bits").work().as_f64();
    // A hash rate that mines 100 times faster than the spacing at the
    // genesis target, so the equilibrium is far from the pow limit.
    let hash_rate = 100.0 * genesis_work / t;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut uniform = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut chain = vec![HeaderSample { time: spec.genesis.time, bits: spec.genesis.bits }];
    let mut clock = spec.genesis.time as f64;
    let mut measure_start = clock;
    let mut attacker_blocks = 0usize;
    for height in 1..=WARMUP + MEASURED {
        if height == WARMUP + 1 {
            measure_start = clock;
        }
        let bits = next_bits(spec, &chain[chain.len().saturating_sub(window_len(spec))..]);
        let work = bits.to_target().expect("next_bits yields a target").work().as_f64();
        clock += -(1.0 - uniform()).ln() * work / hash_rate;
        // Every node's clock is exact: the attacker's lead is the rules'
        // allowance and nothing else.
        let now = clock as u64;
        let times: Vec<u64> = chain[chain.len().saturating_sub(MEDIAN_TIME_SPAN)..].iter().map(|s| s.time).collect();
        let mtp = median_time_past(&times);
        let attacker = uniform() < ATTACKER_SHARE;
        let time = if attacker { now + spec.max_future_block_secs } else { now }.max(mtp + 1);
        let header = BlockHeader {
            version: BLOCK_VERSION,
            prev_hash: Hash256::ZERO,
            merkle_root: Hash256::ZERO,
            time,
            bits,
            nonce: 0,
        };
        let ctx = HeaderContext { expected_bits: bits, median_time_past: mtp, now };
        if let Err(e) = check_header_context(&header, &ctx, spec) {
            panic!("block {height} breaks the header rules: {e}");
        }
        if attacker && height > WARMUP {
            attacker_blocks += 1;
        }
        chain.push(HeaderSample { time, bits });
    }
    Run {
        mean_spacing: (clock - measure_start) / MEASURED as f64,
        attacker_blocks: attacker_blocks as f64 / MEASURED as f64,
    }
}

fn report(spec: &ChainSpec, run: &Run) -> String {
    format!(
        "{}: future limit {} s, target {} s, mean spacing {:.1} s ({:.2}x), attacker mined {:.1}% of blocks",
        spec.name,
        spec.max_future_block_secs,
        spec.target_spacing_secs,
        run.mean_spacing,
        run.mean_spacing / spec.target_spacing_secs as f64,
        run.attacker_blocks * 100.0
    )
}

#[test]
fn a_forward_stamping_tenth_of_the_hash_rate_cannot_slow_the_chain() {
    for spec in [ChainSpec::testnet(), ChainSpec::devnet()] {
        let run = simulate(&spec);
        let t = spec.target_spacing_secs as f64;
        eprintln!("{}", report(&spec, &run));
        assert!(
            run.mean_spacing <= MAX_SLOWDOWN * t && run.mean_spacing >= t / MAX_SLOWDOWN,
            "{}",
            report(&spec, &run)
        );
    }
}

#[test]
fn with_the_old_two_hour_limit_the_same_attack_slows_the_chain() {
    for mut spec in [ChainSpec::testnet(), ChainSpec::devnet()] {
        spec.max_future_block_secs = 7200;
        let run = simulate(&spec);
        eprintln!("{}", report(&spec, &run));
        assert!(run.mean_spacing > MAX_SLOWDOWN * spec.target_spacing_secs as f64, "{}", report(&spec, &run));
    }
}
