//! Scalars for the multi-scalar multiplication: the GLV split of a 256-bit
//! scalar into two halves below 2^128 (k = k1 + k2·λ mod n), and the
//! signed-digit recodings of such halves.
//!
//! The split follows libsecp256k1 and k256's `arithmetic/mul.rs` (whose
//! constants and bound proof are reproduced here; k256 keeps them private):
//! c1 = round(k·g1 / 2^384), c2 = round(k·g2 / 2^384),
//! k2 = c1·(−b1) + c2·(−b2), k1 = k − k2·λ, and both |k1|, |k2| < 2^128.

// k256's field operators take the right operand by reference to skip a
// copy of the limbs; clippy would have them by value.
#![allow(clippy::op_ref)]

use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::scalar::IsHigh;
use k256::{FieldBytes, Scalar, U256};
use std::sync::LazyLock;

/// g1 and g2 as little-endian 64-bit limbs.
const G1: [u64; 4] = [0xe893209a45dbb031, 0x3daa8a1471e8ca7f, 0xe86c90e49284eb15, 0x3086d221a7d46bcd];
const G2: [u64; 4] = [0x1571b4ae8ac47f71, 0x221208ac9df506c6, 0x6f547fa90abfe4c4, 0xe4437ed6010e8828];

struct Consts {
    minus_b1: Scalar,
    minus_b2: Scalar,
    minus_lambda: Scalar,
}

static CONSTS: LazyLock<Consts> = LazyLock::new(|| Consts {
    minus_b1: scalar_from_hex("00000000000000000000000000000000e4437ed6010e88286f547fa90abfe4c3"),
    minus_b2: scalar_from_hex("fffffffffffffffffffffffffffffffe8a280ac50774346dd765cda83db1562c"),
    minus_lambda: scalar_from_hex("ac9c52b33fa3cf1f5ad9e3fd77ed9ba4a880b9fc8ec739c2e0cfc810b51283cf"),
});

/// λ, the scalar of the endomorphism (for tests).
#[cfg(test)]
pub(crate) fn lambda() -> Scalar {
    -CONSTS.minus_lambda
}

fn scalar_from_hex(s: &str) -> Scalar {
    let mut bytes = [0u8; 32];
    if hex::decode_to_slice(s, &mut bytes).is_err() {
        return Scalar::ZERO;
    }
    <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(bytes))
}

/// Little-endian limbs of a scalar.
fn limbs(k: &Scalar) -> [u64; 4] {
    let b = k.to_bytes();
    let mut out = [0u64; 4];
    for (i, limb) in out.iter_mut().enumerate() {
        let at = 24 - 8 * i;
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[at..at + 8]);
        *limb = u64::from_be_bytes(w);
    }
    out
}

/// round(k·g / 2^384): at most 2^128 because g < 2^256 and k < 2^256.
fn mul_shift_384(k: &[u64; 4], g: &[u64; 4]) -> Scalar {
    let mut prod = [0u64; 8];
    for i in 0..4 {
        let mut carry: u128 = 0;
        for j in 0..4 {
            let t = u128::from(k[i]) * u128::from(g[j]) + u128::from(prod[i + j]) + carry;
            prod[i + j] = t as u64;
            carry = t >> 64;
        }
        prod[i + 4] = carry as u64;
    }
    let round = u128::from(prod[5] >> 63);
    let hi = (u128::from(prod[7]) << 64) | u128::from(prod[6]);
    // hi < 2^128 − 1 here (k·g < 2^512 − 2^384), so adding the bit cannot wrap.
    Scalar::from(hi.wrapping_add(round))
}

/// A scalar below 2^128 in absolute value: `mag` times −1 if `neg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Half {
    pub mag: u128,
    pub neg: bool,
}

/// `k` as a [`Half`] if k or −k is below 2^128.
pub(crate) fn half(k: &Scalar) -> Option<Half> {
    let neg = bool::from(k.is_high());
    let m = if neg { -k } else { *k };
    let l = limbs(&m);
    if l[2] != 0 || l[3] != 0 {
        return None;
    }
    Some(Half { mag: (u128::from(l[1]) << 64) | u128::from(l[0]), neg })
}

/// The GLV split: (k1, k2) with k = k1 + k2·λ. `None` would mean the bound
/// proof failed; callers then treat the batch as unproven.
pub(crate) fn split(k: &Scalar) -> Option<(Half, Half)> {
    let l = limbs(k);
    let c = &*CONSTS;
    let c1 = mul_shift_384(&l, &G1) * c.minus_b1;
    let c2 = mul_shift_384(&l, &G2) * c.minus_b2;
    let k2 = c1 + c2;
    let k1 = k + &(k2 * c.minus_lambda);
    Some((half(&k1)?, half(&k2)?))
}

/// `width` bits of `k` from bit `at` (bits past 127 read as zero).
#[inline]
fn bits(k: u128, at: usize, width: usize) -> u32 {
    if at >= 128 {
        return 0;
    }
    ((k >> at) as u32) & ((1u32 << width) - 1)
}

/// Signed base-2^c digits of `k` < 2^128, each in [−2^(c−1), 2^(c−1)],
/// least significant first, into `out` (length [`windows`]`(c)`).
pub(crate) fn signed_digits(k: u128, c: usize, out: &mut [i16]) {
    let half = 1u32 << (c - 1);
    let mut carry = 0u32;
    for (w, d) in out.iter_mut().enumerate() {
        let v = bits(k, w * c, c) + carry;
        if v > half {
            *d = (v as i32 - (1i32 << c)) as i16;
            carry = 1;
        } else {
            *d = v as i16;
            carry = 0;
        }
    }
}

/// How many signed base-2^c digits a scalar below 2^128 needs (the last
/// carry included).
pub(crate) fn windows(c: usize) -> usize {
    128 / c + 1
}

/// Width-`w` non-adjacent form of `k` < 2^128: odd digits below 2^(w−1) in
/// absolute value, at least w−1 zeros between non-zero ones. Returns the
/// number of digits written (at most 129).
pub(crate) fn wnaf(k: u128, w: usize, out: &mut [i8; 130]) -> usize {
    out.fill(0);
    let mut carry = 0u32;
    let mut i = 0;
    let mut last = 0;
    while i < 129 {
        if bits(k, i, 1) == carry {
            i += 1;
            continue;
        }
        let now = w.min(129 - i);
        let word = bits(k, i, now) + carry;
        carry = (word >> (w - 1)) & 1;
        let d = word as i32 - ((carry as i32) << w);
        out[i] = d as i8;
        last = i + 1;
        i += now;
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::elliptic_curve::Field;

    fn value(h: &Half) -> Scalar {
        let s = Scalar::from(h.mag);
        if h.neg {
            -s
        } else {
            s
        }
    }

    #[test]
    fn split_recombines_and_stays_small() {
        let mut rng = rand::thread_rng();
        let lambda = lambda();
        let mut samples: Vec<Scalar> = (0..2000).map(|_| Scalar::random(&mut rng)).collect();
        samples.extend([Scalar::ZERO, Scalar::ONE, -Scalar::ONE, lambda, -lambda, lambda + Scalar::ONE]);
        for k in samples {
            let (k1, k2) = split(&k).expect("split within bound");
            assert_eq!(value(&k1) + value(&k2) * lambda, k);
        }
    }

    #[test]
    fn digits_recombine() {
        let mut rng = rand::thread_rng();
        let mut samples: Vec<u128> = (0..500).map(|_| rand::Rng::gen(&mut rng)).collect();
        samples.extend([0, 1, u128::MAX, u128::MAX - 1, 1 << 127]);
        for k in samples {
            for c in 2..=13 {
                let mut d = vec![0i16; windows(c)];
                signed_digits(k, c, &mut d);
                let mut acc = Scalar::ZERO;
                for &di in d.iter().rev() {
                    acc = acc * Scalar::from(1u64 << c) + Scalar::from(di.unsigned_abs() as u64) * sign(di < 0);
                    assert!(di.unsigned_abs() <= 1 << (c - 1));
                }
                assert_eq!(acc, Scalar::from(k), "c = {c}");
            }
            for w in 2..=8 {
                let mut d = [0i8; 130];
                let n = wnaf(k, w, &mut d);
                let mut acc = Scalar::ZERO;
                for &di in d[..n].iter().rev() {
                    acc = acc.double() + Scalar::from(di.unsigned_abs() as u64) * sign(di < 0);
                    assert!(di == 0 || (di % 2 != 0 && di.unsigned_abs() < 1 << (w - 1)));
                }
                assert_eq!(acc, Scalar::from(k), "w = {w}");
            }
        }
    }

    fn sign(neg: bool) -> Scalar {
        if neg {
            -Scalar::ONE
        } else {
            Scalar::ONE
        }
    }
}
