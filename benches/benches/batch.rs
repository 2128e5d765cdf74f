//! BIP-340 batch verification for batch sizes 16 to 4,096, per signature,
//! beside its references (k256 and libsecp256k1 single verification), and
//! the choices inside it: Strauss against Pippenger at each window width,
//! and a cold against a warm key cache.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lode_core::crypto::{batch_holds_by, verify_with, window_for, KeyCache, Msm, SecretKey, SigCheck};
use std::hint::black_box;
use std::time::Duration;

fn checks(n: usize) -> Vec<SigCheck> {
    (0..n)
        .map(|i| {
            let sk = SecretKey::generate();
            let msg = lode_core::hash::sha256d(&(i as u64).to_le_bytes());
            SigCheck { pubkey: sk.public_key(), msg, sig: sk.sign(&msg) }
        })
        .collect()
}

fn references(c: &mut Criterion) {
    let set = checks(64);
    let mut g = c.benchmark_group("batch/reference");
    g.throughput(Throughput::Elements(1));
    let cold = KeyCache::new(0);
    let mut i = 0;
    g.bench_function("k256 single verify (cold key)", |b| {
        b.iter(|| {
            let c = &set[i % set.len()];
            i += 1;
            assert!(verify_with(&c.pubkey, &c.msg, &c.sig, &cold));
        })
    });
    let secp = secp256k1::SECP256K1;
    let prepared: Vec<_> = set
        .iter()
        .map(|c| {
            (
                secp256k1::XOnlyPublicKey::from_slice(&c.pubkey.0).expect("valid key"),
                secp256k1::Message::from_digest(c.msg.0),
                secp256k1::schnorr::Signature::from_slice(&c.sig.0).expect("valid signature"),
            )
        })
        .collect();
    g.bench_function("libsecp256k1 single verify (key parsed in loop)", |b| {
        b.iter(|| {
            let (_, m, s) = &prepared[i % prepared.len()];
            let pk = secp256k1::XOnlyPublicKey::from_slice(&set[i % set.len()].pubkey.0).expect("valid key");
            i += 1;
            assert!(secp.verify_schnorr(s, m, black_box(&pk)).is_ok());
        })
    });
    g.finish();
}

fn sizes(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch/size");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    for n in [16usize, 64, 256, 1024, 4096] {
        let set = checks(n);
        g.throughput(Throughput::Elements(n as u64));
        let cold = KeyCache::new(0);
        g.bench_function(format!("{n} sigs, cold keys"), |b| {
            b.iter(|| assert!(batch_holds_by(&set, &cold, Msm::Auto)))
        });
        let warm = KeyCache::new(2 * n);
        g.bench_function(format!("{n} sigs, warm keys"), |b| {
            b.iter(|| assert!(batch_holds_by(&set, &warm, Msm::Auto)))
        });
    }
    g.finish();
}

fn choices(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch/msm");
    g.sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(300));
    for n in [4usize, 8, 16, 32, 64, 256, 1024, 4096] {
        let set = checks(n);
        let warm = KeyCache::new(2 * n);
        g.throughput(Throughput::Elements(n as u64));
        if n <= 64 {
            g.bench_function(format!("{n} sigs strauss"), |b| {
                b.iter(|| assert!(batch_holds_by(&set, &warm, Msm::Strauss)))
            });
        }
        // About 3 (point, half) pairs per signature: R, and P split in two.
        let auto = window_for(3 * n);
        for w in auto.saturating_sub(2).max(3)..=auto + 2 {
            g.bench_function(format!("{n} sigs pippenger c={w}"), |b| {
                b.iter(|| assert!(batch_holds_by(&set, &warm, Msm::Pippenger(w))))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, references, sizes, choices);
criterion_main!(benches);
