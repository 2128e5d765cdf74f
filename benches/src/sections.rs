//! In-process sections: mining, signatures, block validation.

use crate::figures::{cores, interleave, Report, Rounds};
use lode_core::block::Block;
use lode_core::crypto::{verify, SecretKey, SigCache, Signature};
use lode_core::pow::CompactTarget;
use lode_core::subsidy::block_subsidy;
use lode_core::validation::{check_block, connect_block, connect_block_deferred, ConnectContext};
use lode_core::{Amount, ChainSpec, Hash256, Height};
use lode_node::miner::{build_block_template, Miner, MiningBackend};
use serde_json::json;
use sha2::digest::generic_array::GenericArray;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `f` (which reports the units it did) for at least `d` and twice;
/// returns units per second.
pub fn rate(d: Duration, mut f: impl FnMut() -> u64) -> f64 {
    let start = Instant::now();
    let (mut n, mut calls) = (0u64, 0);
    while calls < 2 || start.elapsed() < d {
        n += f();
        calls += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// A span of `full` milliseconds, a quarter of it in a quick run.
pub fn span(report: &Report, full: u64) -> Duration {
    Duration::from_millis(if report.quick { full / 4 } else { full })
}

/// A target no hash meets: the miner never leaves its nonce loop.
const UNREACHABLE: CompactTarget = CompactTarget(0x03000001);

/// Hands the miner the same unsolvable template forever.
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

type Block64 = GenericArray<u8, sha2::digest::consts::U64>;

/// SHA-256 compressions per second, the better of one chained at a time and
/// two independent at a time (the CPU overlaps those, as the nonce loop's
/// lanes may).
fn compressions(d: Duration) -> f64 {
    let (a, b) = ([*Block64::from_slice(&[0x5a; 64])], [*Block64::from_slice(&[0x33; 64])]);
    let mut state = [0u32; 8];
    let one = rate(d / 2, || {
        for _ in 0..10_000 {
            sha2::compress256(black_box(&mut state), black_box(&a));
        }
        10_000
    });
    let two = rate(d / 2, || {
        for _ in 0..5_000 {
            let (mut x, mut y) = ([0u32; 8], [0u32; 8]);
            sha2::compress256(&mut x, black_box(&a));
            sha2::compress256(&mut y, black_box(&b));
            black_box((x, y));
        }
        10_000
    });
    one.max(two)
}

/// The node's miner (`Miner::start`, the loop `--mine` runs: templates,
/// work-version checks, hash counting) on one thread, hashes per second.
fn miner_rate(template: &Block, d: Duration) -> f64 {
    let miner = Miner::start(Arc::new(Unsolvable(template.clone())), 1);
    let counter = miner.hashrate_handle();
    std::thread::sleep(Duration::from_millis(100));
    let (t0, h0) = (Instant::now(), counter.total());
    std::thread::sleep(d);
    let r = (counter.total() - h0) as f64 / t0.elapsed().as_secs_f64();
    miner.stop();
    r
}

/// The miner's real nonce loop on one thread vs the SHA-256 ceiling (two
/// compressions per nonce).
pub fn mining(report: &mut Report) {
    eprintln!("mining");
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
    let d = span(report, 1000);
    let rounds = interleave(report.rounds(), || compressions(d) / 2.0, || miner_rate(&template, d));
    report.add_rounds(
        "mining.hashes_per_thread",
        "miner nonce loop (Miner, 1 thread), hashes/s",
        "H/s",
        "SHA-256 compressions/s ÷ 2",
        &rounds,
    );
}

/// Keys, messages and signatures for the verification figures.
struct SigSet {
    keys: Vec<SecretKey>,
    msgs: Vec<Hash256>,
    sigs: Vec<Signature>,
}

fn sig_set(n: usize) -> SigSet {
    let keys: Vec<SecretKey> = (0..n).map(|_| SecretKey::generate()).collect();
    let msgs: Vec<Hash256> = (0..n).map(|i| lode_core::hash::sha256d(&(i as u64).to_le_bytes())).collect();
    let sigs = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    SigSet { keys, msgs, sigs }
}

/// Single-core `lode_core::crypto::verify` per second: what the node pays
/// per signature (key and signature parsed from bytes each time).
fn node_verify_rate(set: &SigSet, d: Duration) -> f64 {
    let pubs: Vec<_> = set.keys.iter().map(SecretKey::public_key).collect();
    let mut i = 0;
    rate(d, || {
        let j = i % pubs.len();
        assert!(verify(&pubs[j], &set.msgs[j], &set.sigs[j]));
        i += 1;
        1
    })
}

/// k256 and libsecp256k1, keys and signatures parsed outside the loop.
pub fn signatures(report: &mut Report) {
    eprintln!("signatures");
    let set = sig_set(256);
    let d = span(report, 1000);
    let k256_prepared: Vec<_> = set
        .keys
        .iter()
        .zip(&set.sigs)
        .map(|(k, s)| {
            let vk = k256::schnorr::VerifyingKey::from_bytes(&k.public_key().0).expect("valid key");
            let sig = k256::schnorr::Signature::try_from(&s.0[..]).expect("valid signature");
            (vk, sig)
        })
        .collect();
    let secp = secp256k1::SECP256K1;
    let secp_prepared: Vec<_> = set
        .keys
        .iter()
        .zip(&set.msgs)
        .zip(&set.sigs)
        .map(|((k, m), s)| {
            let pk = secp256k1::XOnlyPublicKey::from_slice(&k.public_key().0).expect("valid key");
            let sig = secp256k1::schnorr::Signature::from_slice(&s.0).expect("valid signature");
            (pk, secp256k1::Message::from_digest(m.0), sig)
        })
        .collect();
    let n = set.msgs.len();
    let (mut i, mut j) = (0, 0);
    let rounds = interleave(
        report.rounds(),
        || {
            rate(d, || {
                let (pk, m, s) = &secp_prepared[i % n];
                assert!(secp.verify_schnorr(s, m, pk).is_ok());
                i += 1;
                1
            })
        },
        || {
            rate(d, || {
                let (vk, s) = &k256_prepared[j % n];
                assert!(vk.verify_raw(&set.msgs[j % n].0, s).is_ok());
                j += 1;
                1
            })
        },
    );
    report.add_rounds(
        "signatures.k256_vs_libsecp",
        "k256 BIP-340 verifications/s, 1 core, parsed outside the loop",
        "verif/s",
        "libsecp256k1, parsed outside the loop",
        &rounds,
    );
    // Both parse inside: the node's `verify` takes bytes.
    let raw: Vec<_> = set.keys.iter().map(|k| k.public_key()).collect();
    let mut i = 0;
    let rounds = interleave(
        report.rounds(),
        || {
            rate(d, || {
                let k = i % n;
                let pk = secp256k1::XOnlyPublicKey::from_slice(&raw[k].0).expect("valid key");
                let sig = secp256k1::schnorr::Signature::from_slice(&set.sigs[k].0).expect("valid signature");
                assert!(secp.verify_schnorr(&sig, &secp256k1::Message::from_digest(set.msgs[k].0), &pk).is_ok());
                i += 1;
                1
            })
        },
        || node_verify_rate(&set, d),
    );
    report.add_rounds(
        "signatures.verify_parsed_vs_libsecp",
        "lode_core verify (k256, parses key and signature), 1 core",
        "verif/s",
        "libsecp256k1, parsing inside the loop too",
        &rounds,
    );
    crate::signatures_batch::batch_figures(report);
}

/// Single-core verifications per second through the node's `verify`.
pub fn single_verify_rate(report: &Report) -> f64 {
    static SET: std::sync::OnceLock<SigSet> = std::sync::OnceLock::new();
    node_verify_rate(SET.get_or_init(|| sig_set(64)), span(report, 1000))
}

/// The signature bound: cores × single-core verify rate.
pub fn signature_bound(report: &Report) -> f64 {
    single_verify_rate(report) * cores() as f64
}

/// Block validation throughput against the parallel signature bound.
pub fn validation(report: &mut Report) {
    eprintln!("block validation");
    let spec = ChainSpec::regtest();
    for n in [1000usize, 5000] {
        let (block, utxo, height) = lode_node::testkit::spend_block(&spec, n);
        let ctx = ConnectContext {
            genesis: spec.genesis_hash(),
            coinbase_maturity: spec.coinbase_maturity,
            subsidy: block_subsidy(&spec, height),
        };
        let cache = SigCache::new(n * 2);
        for tx in &block.transactions[1..] {
            cache.insert_all(&tx.sig_checks(&spec.genesis_hash(), &[Amount::from_coins(1)]));
        }
        let d = span(report, 1500);
        let validate = |cache: Option<&SigCache>| {
            rate(d, || {
                check_block(&block, &spec).expect("valid block");
                connect_block(&block, height, &ctx, &utxo, cache).expect("connects");
                n as u64
            })
        };
        // The bound: cores × one core verifying this block's signatures
        // as block connection does (one batch, no cache).
        let prepared = connect_block_deferred(&block, height, &ctx, &utxo).expect("connects");
        let one_core = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("1-thread pool");
        let bound = || {
            let start = Instant::now();
            one_core.install(|| prepared.verify(None).expect("valid signatures"));
            cores() as f64 * n as f64 / start.elapsed().as_secs_f64()
        };
        let (mut uncached, mut cached) = (Rounds::default(), Rounds::default());
        for _ in 0..report.rounds() {
            let bound = bound();
            let plain = validate(None);
            uncached.push(bound, plain);
            cached.push(plain, validate(Some(&cache)));
        }
        report.add_rounds(
            &format!("validation.block_{n}"),
            &format!("check_block + connect_block, {n}-tx blocks"),
            "tx/s",
            "cores × 1-core batch verify rate of the same block's signatures",
            &uncached,
        );
        report.add_rounds(
            &format!("validation.block_{n}_cached"),
            &format!("same {n}-tx block, signatures cached"),
            "tx/s",
            "same block, uncached",
            &cached,
        );
        report.detail(&format!("validation.block_{n}"), json!({"transactions": n, "cores": cores()}));
    }
}
