//! `signatures.batch_vs_libsecp` and `signatures.batch_vs_k256`: BIP-340
//! batch verification of 1,000 signatures by distinct keys on one core,
//! key cache cold, per signature, against single verification by
//! libsecp256k1 and by k256 (each parsing its key in the loop, as a block's
//! validation must), measured in interleaved rounds.

use crate::figures::{interleave, Report};
use lode_core::crypto::{verify_batch_with, verify_with, KeyCache, SecretKey, SigCheck};
use std::time::{Duration, Instant};

/// Signatures by distinct keys over distinct messages.
fn checks(n: usize) -> Vec<SigCheck> {
    (0..n)
        .map(|i| {
            let sk = SecretKey::generate();
            let msg = lode_core::hash::sha256d(&(i as u64).to_le_bytes());
            SigCheck { pubkey: sk.public_key(), msg, sig: sk.sign(&msg) }
        })
        .collect()
}

/// Signatures per second of `f`, which verifies some and returns how many.
fn per_second(d: Duration, mut f: impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed() < d {
        n += f();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Adds both batch figures to `report`.
pub fn batch_figures(report: &mut Report) {
    let n = if report.quick { 250 } else { 1000 };
    let d = Duration::from_millis(if report.quick { 300 } else { 2000 });
    let set = checks(n);
    // Capacity 0: every key is decompressed on every pass (cold cache).
    let cold = KeyCache::new(0);
    let batch = || {
        per_second(d, || {
            assert_eq!(verify_batch_with(&set, &cold), Ok(()));
            set.len()
        })
    };
    let secp = secp256k1::SECP256K1;
    let prepared: Vec<_> = set
        .iter()
        .map(|c| {
            (
                secp256k1::Message::from_digest(c.msg.0),
                secp256k1::schnorr::Signature::from_slice(&c.sig.0).expect("valid signature"),
            )
        })
        .collect();
    let mut i = 0;
    let libsecp = || {
        per_second(d, || {
            let c = &set[i % set.len()];
            let (m, s) = &prepared[i % set.len()];
            let pk = secp256k1::XOnlyPublicKey::from_slice(&c.pubkey.0).expect("valid key");
            assert!(secp.verify_schnorr(s, m, &pk).is_ok());
            i += 1;
            1
        })
    };
    let rounds = interleave(report.rounds(), libsecp, batch);
    report.add_rounds(
        "signatures.batch_vs_libsecp",
        &format!("batch verification of {n} sigs, distinct keys, cold key cache (1 core)"),
        "verif/s",
        "libsecp256k1 single verifications/s (key parsed per signature)",
        &rounds,
    );
    let mut j = 0;
    let k256 = || {
        per_second(d, || {
            let c = &set[j % set.len()];
            assert!(verify_with(&c.pubkey, &c.msg, &c.sig, &cold));
            j += 1;
            1
        })
    };
    let rounds = interleave(report.rounds(), k256, batch);
    report.add_rounds(
        "signatures.batch_vs_k256",
        &format!("batch verification of {n} sigs, distinct keys, cold key cache (1 core)"),
        "verif/s",
        "k256 single verifications/s (key decompressed per signature)",
        &rounds,
    );
}
