//! The miner's nonce loop against the machine's raw SHA-256 limit: each
//! nonce costs two compressions on a cached midstate, so the ceiling per
//! thread is (compressions/s) ÷ 2, measured in the same run. Compressions
//! are measured one at a time and two independent ones at a time (the CPU
//! overlaps those, as it overlaps the loop's two nonce lanes); the ceiling
//! is the better of the two. Goal: the loop reaches at least 90% of it.
//! After criterion's figures the bench prints the median ratio of several
//! interleaved rounds with its spread, and the running miner's own rate on
//! all cores (lode-bench's `mining.hashes_per_thread` times that miner on
//! one thread).
//!
//! `cargo bench -p lode-benches --bench miner`

use criterion::{Criterion, Throughput};
use lode_core::block::{Block, BlockHeader};
use lode_core::pow::CompactTarget;
use lode_core::{Amount, ChainSpec, Hash256, Height};
use lode_node::miner::{
    build_block_template, default_threads, scan, Miner, MiningBackend, NonceHasher, PowTarget, CHUNK,
};
use sha2::digest::generic_array::GenericArray;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A target no hash meets: the loop never exits early.
const UNREACHABLE: CompactTarget = CompactTarget(0x03000001);

fn header() -> BlockHeader {
    BlockHeader {
        version: 1,
        prev_hash: Hash256([1; 32]),
        merkle_root: Hash256([2; 32]),
        time: 1_764_028_800,
        bits: UNREACHABLE,
        nonce: 0,
    }
}

/// SHA-256 initial state.
const IV: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

type Block64 = GenericArray<u8, sha2::digest::consts::U64>;

/// `CHUNK` compressions of one 64-byte block chained through one state:
/// the plain "one compression at a time" rate.
fn compress_chain(state: &mut [u32; 8], block: &[Block64; 1]) {
    for _ in 0..CHUNK {
        sha2::compress256(black_box(&mut *state), black_box(block));
    }
}

/// `CHUNK` compressions two independent ones at a time: the CPU overlaps
/// them, as it overlaps the nonce loop's two lanes. The stricter ceiling.
fn compress_pairs(a: &[Block64; 1], b: &[Block64; 1]) {
    for _ in 0..CHUNK / 2 {
        let (mut x, mut y) = (IV, IV);
        sha2::compress256(&mut x, black_box(a));
        sha2::compress256(&mut y, black_box(b));
        black_box((x, y));
    }
}

/// The miner's loop over `CHUNK` nonces from `start`.
fn nonce_chunk(hasher: &mut NonceHasher, target: &PowTarget, start: u64) {
    assert!(black_box(scan(hasher, target, start..start + CHUNK)).is_none());
}

fn criterion_figures(c: &mut Criterion) {
    let mut g = c.benchmark_group("miner");
    g.throughput(Throughput::Elements(CHUNK));
    let (a, b) = ([*Block64::from_slice(&[0x5a; 64])], [*Block64::from_slice(&[0x33; 64])]);
    g.bench_function("reference: SHA-256 compressions, one at a time", |bench| {
        let mut state = IV;
        bench.iter(|| compress_chain(&mut state, &a))
    });
    g.bench_function("reference: SHA-256 compressions, two independent at a time", |bench| {
        bench.iter(|| compress_pairs(&a, &b))
    });
    let target = PowTarget::new(UNREACHABLE).expect("valid bits");
    g.bench_function("nonce loop: hashes (2 compressions each)", |bench| {
        let mut hasher = NonceHasher::new(&header());
        let mut start = 0u64;
        bench.iter(|| {
            nonce_chunk(&mut hasher, &target, start);
            start += CHUNK;
        })
    });
    g.finish();
}

/// Per-second rate of `f` (which does `CHUNK` units) over about `span`.
fn rate(span: Duration, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < span {
        f();
        n += CHUNK;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// The median of `xs` (the upper middle for an even count).
fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Always hands out the same unsolvable template.
struct Unsolvable(Block);

impl MiningBackend for Unsolvable {
    fn template(&self) -> Option<Block> {
        Some(self.0.clone())
    }
    fn work_version(&self) -> u64 {
        1
    }
    fn submit_mined(&self, _: Block) {}
}

fn ratio_report(full: bool) {
    let (rounds, span) = if full { (7, Duration::from_millis(400)) } else { (2, Duration::from_millis(20)) };
    let (a, b) = ([*Block64::from_slice(&[0x5a; 64])], [*Block64::from_slice(&[0x33; 64])]);
    let target = PowTarget::new(UNREACHABLE).expect("valid bits");
    let mut hasher = NonceHasher::new(&header());
    let (mut ones, mut twos, mut nonces, mut ratios, mut start) = (vec![], vec![], vec![], vec![], 0u64);
    for _ in 0..rounds {
        let mut state = IV;
        let one = rate(span, || compress_chain(&mut state, &a));
        let two = rate(span, || compress_pairs(&a, &b));
        let nonce = rate(span, || {
            nonce_chunk(&mut hasher, &target, start);
            start += CHUNK;
        });
        ratios.push(nonce / (one.max(two) / 2.0));
        ones.push(one);
        twos.push(two);
        nonces.push(nonce);
    }
    let (one, two, nonce) = (median(&ones), median(&twos), median(&nonces));
    let ceiling = one.max(two) / 2.0;
    let (lo, hi) = (ratios.iter().copied().fold(f64::INFINITY, f64::min), ratios.iter().copied().fold(0.0, f64::max));
    println!("\nminer ratio (medians of {rounds} interleaved rounds of {span:?}, one thread):");
    println!("  SHA-256 compressions/s, one at a time        {:>7.2} M", one / 1e6);
    println!("  SHA-256 compressions/s, two at a time        {:>7.2} M", two / 1e6);
    println!("  ceiling: best compressions/s / 2             {:>7.2} M hashes/s", ceiling / 1e6);
    println!("  nonce loop                                   {:>7.2} M hashes/s", nonce / 1e6);
    println!(
        "  ratio to the ceiling, median of rounds       {:>7.3}   [{lo:.3}..{hi:.3}] (goal >= 0.90)",
        median(&ratios)
    );

    // The real miner: threads, work-version checks, hash counting.
    let threads = default_threads();
    let spec = ChainSpec::regtest();
    let template = build_block_template(
        &spec,
        spec.genesis_hash(),
        Height(1),
        UNREACHABLE,
        0,
        Default::default(),
        vec![],
        Amount::ZERO,
    );
    let miner = Miner::start(Arc::new(Unsolvable(template)), threads);
    let rate = miner.hashrate_handle();
    std::thread::sleep(if full { Duration::from_millis(500) } else { Duration::from_millis(50) });
    let (t0, h0) = (Instant::now(), rate.total());
    std::thread::sleep(if full { Duration::from_secs(3) } else { Duration::from_millis(100) });
    let per_thread = (rate.total() - h0) as f64 / t0.elapsed().as_secs_f64() / threads as f64;
    miner.stop();
    let label = format!("Miner on {threads} threads, per thread");
    println!("  {label:<45}{:>7.2} M hashes/s", per_thread / 1e6);
    println!(
        "  its ratio to the one-thread ceiling          {:>7.3}   (cores shared with the OS)",
        per_thread / ceiling
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    criterion_figures(&mut c);
    c.final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` runs a quick pass.
    ratio_report(std::env::args().any(|a| a == "--bench"));
}
