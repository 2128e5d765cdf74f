//! BIP-340 batch verification: u signatures pass together iff
//! (Σ aᵢ·sᵢ)·G = Σ aᵢ·Rᵢ + Σ (aᵢ·eᵢ)·Pᵢ for weights a₁ = 1 and a₂…aᵤ drawn
//! from a hash of the whole batch, with Rᵢ = lift_x(rᵢ), Pᵢ = lift_x(pkᵢ).
//!
//! The weights are 128-bit: a batch holding an invalid signature passes
//! with probability at most 2^-128 over the weights, and whoever chose the
//! signatures cannot predict the weights without fixing the whole batch
//! first (they are a SHA-256 stream keyed by the batch's every byte, as
//! BIP-340 recommends). 128-bit weights also make each aᵢ·Rᵢ a 128-bit
//! scalar multiplication; only the aᵢ·eᵢ·Pᵢ terms need the GLV split.

// k256's field operators take the right operand by reference to skip a
// copy of the limbs; clippy would have them by value.
#![allow(clippy::op_ref)]

use super::glv::{half, split};
use super::key_cache::KeyCache;
use super::msm::{msm, Msm, Term};
use super::point::Affine;
use super::{verify_with, SigCheck};
use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::PrimeField;
use k256::{FieldBytes, Scalar, U256};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const CHALLENGE_TAG: &[u8] = b"BIP0340/challenge";
/// Domain of the weight seed.
const WEIGHTS_TAG: &[u8] = b"lode/batch-weights/v1";
/// At or below this size the first invalid signature is found by single
/// verification rather than by splitting the batch further.
const BISECT_LEAF: usize = 4;

/// Verifies every check with the process-wide key cache. `Err(i)`: check
/// `i` is the first invalid one (exactly what single verification of each,
/// in order, would report).
pub fn verify_batch(checks: &[SigCheck]) -> Result<(), usize> {
    verify_batch_with(checks, KeyCache::global())
}

/// [`verify_batch`] with a given key cache.
pub fn verify_batch_with(checks: &[SigCheck], keys: &KeyCache) -> Result<(), usize> {
    if batch_holds(checks, keys) {
        return Ok(());
    }
    match first_invalid(checks, keys) {
        Some(i) => Err(i),
        // Unreachable unless the batch and the single paths disagree; the
        // single path is the reference, and it accepted every signature.
        None => Ok(()),
    }
}

/// The first check that fails, by bisection: a half that passes as a batch
/// holds no invalid signature, so only failing halves are searched.
fn first_invalid(checks: &[SigCheck], keys: &KeyCache) -> Option<usize> {
    if checks.len() <= BISECT_LEAF {
        return checks.iter().position(|c| !verify_with(&c.pubkey, &c.msg, &c.sig, keys));
    }
    let mid = checks.len() / 2;
    let (left, right) = checks.split_at(mid);
    if !batch_holds(left, keys) {
        if let Some(i) = first_invalid(left, keys) {
            return Some(i);
        }
    }
    first_invalid(right, keys).map(|i| i + mid)
}

/// SHA-256 with the BIP-340 challenge tag already absorbed.
fn challenge_hasher() -> Sha256 {
    let tag = Sha256::digest(CHALLENGE_TAG);
    let mut h = Sha256::new();
    h.update(tag);
    h.update(tag);
    h
}

/// The weights a₂…aᵤ (a₁ = 1): a SHA-256 counter-mode stream under a seed
/// that hashes every key, message and signature of the batch.
fn weights(checks: &[SigCheck]) -> Vec<u128> {
    let mut seed = Sha256::new();
    seed.update(WEIGHTS_TAG);
    seed.update((checks.len() as u64).to_le_bytes());
    for c in checks {
        seed.update(c.pubkey.0);
        seed.update(c.msg.0);
        seed.update(c.sig.0);
    }
    let seed = seed.finalize();
    let mut out = Vec::with_capacity(checks.len());
    out.push(1u128);
    let mut counter = 0u64;
    while out.len() < checks.len() {
        let block = Sha256::new().chain_update(seed).chain_update(counter.to_le_bytes()).finalize();
        counter += 1;
        for chunk in block.chunks_exact(16) {
            let mut w = [0u8; 16];
            w.copy_from_slice(chunk);
            // Zero would drop a signature from the equation.
            out.push(u128::from_le_bytes(w).max(1));
        }
    }
    out.truncate(checks.len());
    out
}

/// Whether the batch equation holds: true means every signature is valid
/// (but for the 2^-128 chance above); false means at least one is not, or
/// a key, r or s is malformed.
pub(crate) fn batch_holds(checks: &[SigCheck], keys: &KeyCache) -> bool {
    batch_holds_by(checks, keys, Msm::Auto)
}

/// [`batch_holds`] with a chosen multi-scalar multiplication; exposed for
/// the benchmarks that choose between them.
#[doc(hidden)]
pub fn batch_holds_by(checks: &[SigCheck], keys: &KeyCache, how: Msm) -> bool {
    if checks.is_empty() {
        return true;
    }
    holds_with_weights(checks, keys, &weights(checks), how)
}

/// The batch equation under the given weights (tests use unit weights to
/// show what the random ones defend against).
pub(crate) fn holds_with_weights(checks: &[SigCheck], keys: &KeyCache, a: &[u128], how: Msm) -> bool {
    let tagged = challenge_hasher();

    // One term per distinct x: R and P are both lift_x of their x, so equal
    // x means an equal point, and a key that signs many inputs is
    // decompressed and multiplied once.
    let mut index: HashMap<[u8; 32], usize> = HashMap::with_capacity(2 * checks.len());
    let mut xs: Vec<[u8; 32]> = Vec::with_capacity(2 * checks.len());
    let mut coef: Vec<Scalar> = Vec::with_capacity(2 * checks.len());
    let mut is_key: Vec<bool> = Vec::with_capacity(2 * checks.len());
    let mut slot = |x: &[u8; 32], key: bool, xs: &mut Vec<[u8; 32]>, coef: &mut Vec<Scalar>| -> usize {
        *index.entry(*x).or_insert_with(|| {
            xs.push(*x);
            coef.push(Scalar::ZERO);
            is_key.push(key);
            xs.len() - 1
        })
    };
    let mut s_sum = Scalar::ZERO;
    for (c, &ai) in checks.iter().zip(a) {
        let mut r = [0u8; 32];
        r.copy_from_slice(&c.sig.0[..32]);
        let mut s_bytes = [0u8; 32];
        s_bytes.copy_from_slice(&c.sig.0[32..]);
        // s ≥ n is invalid (BIP-340); s = 0 too, as k256's single
        // verification rejects it and both paths must agree.
        let Some(s) = Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(s_bytes))) else {
            return false;
        };
        if bool::from(s.is_zero()) {
            return false;
        }
        let e_bytes = tagged.clone().chain_update(r).chain_update(c.pubkey.0).chain_update(c.msg.0).finalize();
        let e = <Scalar as Reduce<U256>>::reduce_bytes(&e_bytes);
        let ai = Scalar::from(ai);
        s_sum += ai * s;
        let i = slot(&r, false, &mut xs, &mut coef);
        coef[i] += ai;
        let j = slot(&c.pubkey.0, true, &mut xs, &mut coef);
        coef[j] += ai * e;
    }

    let key_xs: Vec<&[u8; 32]> = xs.iter().zip(&is_key).filter(|(_, k)| **k).map(|(x, _)| x).collect();
    let mut key_points = Vec::new();
    keys.get_many(&key_xs, &mut key_points);
    let mut key_points = key_points.into_iter();

    let mut terms: Vec<Term> = Vec::with_capacity(xs.len() + 1);
    for ((k, x), key) in coef.iter().zip(&xs).zip(&is_key) {
        let point = if *key { key_points.next().flatten() } else { Affine::lift_x(x) };
        let Some(point) = point else {
            return false;
        };
        match term(point, k) {
            Some(Some(t)) => terms.push(t),
            Some(None) => {}
            None => return false,
        }
    }
    match term(Affine::generator(), &-s_sum) {
        Some(Some(t)) => terms.push(t),
        Some(None) => {}
        None => return false,
    }
    msm(&terms, how).is_infinity()
}

/// k·P as a term: one half if |k| < 2^128, else the GLV split; `Some(None)`
/// for k = 0, `None` if the split's bound failed (never, by its proof).
fn term(point: Affine, k: &Scalar) -> Option<Option<Term>> {
    if bool::from(k.is_zero()) {
        return Some(None);
    }
    if let Some(k1) = half(k) {
        return Some(Some(Term { point, k1, k2: None }));
    }
    let (k1, k2) = split(k)?;
    Some(Some(Term { point, k1, k2: Some(k2) }))
}
