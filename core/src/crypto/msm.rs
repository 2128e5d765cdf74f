//! Multi-scalar multiplication Σ kᵢ·Pᵢ for batch verification, variable
//! time. Each term carries one or two scalar halves below 2^128 (the second
//! multiplies λ·P, the GLV endomorphism), so no scalar is longer than 128
//! bits. Small inputs use Strauss with width-5 wNAF; large ones Pippenger's
//! bucket method with signed windows, whose bucket additions are done in
//! affine coordinates, many at a time, sharing one inversion.

// k256's field operators take the right operand by reference to skip a
// copy of the limbs; clippy would have them by value.
#![allow(clippy::op_ref)]

use super::glv::{signed_digits, windows, wnaf, Half};
use super::point::{batch_add_pairs, batch_to_affine, Affine, Jacobian};
use k256::FieldElement as Fe;

/// k1·P + k2·λP.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Term {
    pub point: Affine,
    pub k1: Half,
    pub k2: Option<Half>,
}

/// Below this many (point, half) pairs Strauss beats Pippenger (measured
/// with `cargo bench -p lode-benches --bench batch`).
pub const STRAUSS_MAX: usize = 120;

/// Which multi-scalar multiplication to run (benchmarks compare them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msm {
    /// By the number of terms: Strauss up to [`STRAUSS_MAX`], then
    /// Pippenger with the window of [`window_for`].
    Auto,
    /// Strauss with wNAF.
    Strauss,
    /// Pippenger with this window width (2 to 12).
    Pippenger(usize),
}

/// Σ over the terms with the chosen algorithm.
pub(crate) fn msm(terms: &[Term], how: Msm) -> Jacobian {
    let halves: usize = terms.iter().map(|t| 1 + usize::from(t.k2.is_some())).sum();
    match how {
        Msm::Auto if halves <= STRAUSS_MAX => strauss(terms),
        Msm::Auto => pippenger(terms, window_for(halves)),
        Msm::Strauss => strauss(terms),
        Msm::Pippenger(c) => pippenger(terms, c.clamp(2, 12)),
    }
}

/// Pippenger's window width for `n` (point, half) pairs: balances the n
/// bucket additions per window against the 2^(c−1) buckets each window sums
/// (measured: 1,024 signatures, about 3,000 pairs, run fastest at c = 10;
/// 4,096 at c = 11).
pub fn window_for(n: usize) -> usize {
    match n {
        0..=400 => 5,
        401..=1200 => 6,
        1201..=2000 => 8,
        2001..=5000 => 10,
        5001..=20000 => 11,
        _ => 12,
    }
}

/// wNAF width for Strauss: a table of 2^(W−2) odd multiples per point.
const W: usize = 5;
const TABLE: usize = 1 << (W - 2);

/// Strauss–Shamir: one shared doubling chain, each point added from a small
/// table of its odd multiples at its wNAF digits; λP's table is P's with x
/// scaled by β, so it costs one multiplication per entry.
pub(crate) fn strauss(terms: &[Term]) -> Jacobian {
    let mut jac = Vec::with_capacity(terms.len() * TABLE);
    for t in terms {
        let p = Jacobian::from(&t.point);
        let p2 = p.double();
        let mut cur = p;
        jac.push(cur);
        for _ in 1..TABLE {
            cur = cur.add(&p2);
            jac.push(cur);
        }
    }
    let mut scratch = Vec::new();
    let table = batch_to_affine(&jac, &mut scratch);
    let endo: Vec<Affine> = terms
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            let n = if t.k2.is_some() { TABLE } else { 0 };
            table[i * TABLE..i * TABLE + n].iter().map(Affine::endo)
        })
        .collect();

    // (table offset into `table` or `endo`, uses endo, sign, digits)
    let mut rows: Vec<(usize, bool, bool, [i8; 130])> = Vec::with_capacity(2 * terms.len());
    let mut maxlen = 0;
    let mut endo_at = 0;
    for (i, t) in terms.iter().enumerate() {
        let mut d = [0i8; 130];
        maxlen = maxlen.max(wnaf(t.k1.mag, W, &mut d));
        rows.push((i * TABLE, false, t.k1.neg, d));
        if let Some(k2) = t.k2 {
            let mut d = [0i8; 130];
            maxlen = maxlen.max(wnaf(k2.mag, W, &mut d));
            rows.push((endo_at, true, k2.neg, d));
            endo_at += TABLE;
        }
    }

    let mut acc = Jacobian::INFINITY;
    for i in (0..maxlen).rev() {
        acc = acc.double();
        for (at, is_endo, neg, d) in &rows {
            let di = d[i];
            if di == 0 {
                continue;
            }
            let src = if *is_endo { &endo } else { &table };
            let p = &src[at + (di.unsigned_abs() as usize >> 1)];
            acc = if (di < 0) != *neg { acc.add_affine(&p.neg()) } else { acc.add_affine(p) };
        }
    }
    acc
}

/// Reused storage of one Pippenger run.
#[derive(Default)]
struct Scratch {
    pairs: Vec<(u32, u32)>,
    out: Vec<Option<Affine>>,
    dens: Vec<Fe>,
    nums: Vec<Fe>,
    inv: Vec<Fe>,
}

/// Below this many pairs a round of affine additions would not repay its
/// inversion; the buckets' last few points are added in Jacobian instead.
const MIN_PAIRS: usize = 24;

/// Pippenger's bucket method with signed width-`c` windows.
pub(crate) fn pippenger(terms: &[Term], c: usize) -> Jacobian {
    let mut points: Vec<Affine> = Vec::with_capacity(2 * terms.len());
    let mut mags: Vec<u128> = Vec::with_capacity(2 * terms.len());
    for t in terms {
        points.push(if t.k1.neg { t.point.neg() } else { t.point });
        mags.push(t.k1.mag);
        if let Some(k2) = t.k2 {
            let e = t.point.endo();
            points.push(if k2.neg { e.neg() } else { e });
            mags.push(k2.mag);
        }
    }
    let n = points.len();
    let nwin = windows(c);
    let mut digits = vec![0i16; nwin * n];
    let mut one = vec![0i16; nwin];
    for (i, &m) in mags.iter().enumerate() {
        signed_digits(m, c, &mut one);
        for (w, &d) in one.iter().enumerate() {
            digits[w * n + i] = d;
        }
    }

    let nb = 1usize << (c - 1);
    let mut start = vec![0u32; nb + 1];
    let mut len = vec![0u32; nb];
    let mut bucket_pts: Vec<Affine> = Vec::with_capacity(n);
    let mut s = Scratch::default();
    let mut acc = Jacobian::INFINITY;
    for w in (0..nwin).rev() {
        for _ in 0..c {
            acc = acc.double();
        }
        let row = &digits[w * n..(w + 1) * n];
        fill_buckets(row, &points, &mut start, &mut len, &mut bucket_pts);
        reduce_buckets(&mut bucket_pts, &start, &mut len, &mut s);
        acc = acc.add(&sum_buckets(&bucket_pts, &start, &len));
    }
    acc
}

/// Sorts the window's signed points into buckets by |digit| (counting sort).
fn fill_buckets(row: &[i16], points: &[Affine], start: &mut [u32], len: &mut [u32], out: &mut Vec<Affine>) {
    let nb = len.len();
    len.fill(0);
    for &d in row {
        if d != 0 {
            len[d.unsigned_abs() as usize - 1] += 1;
        }
    }
    start[0] = 0;
    for b in 0..nb {
        start[b + 1] = start[b] + len[b];
    }
    let total = start[nb] as usize;
    out.clear();
    out.resize(total, Affine { x: Fe::ZERO, y: Fe::ZERO });
    len.fill(0);
    for (i, &d) in row.iter().enumerate() {
        if d != 0 {
            let b = d.unsigned_abs() as usize - 1;
            let at = (start[b] + len[b]) as usize;
            out[at] = if d < 0 { points[i].neg() } else { points[i] };
            len[b] += 1;
        }
    }
}

/// Adds each bucket's points pairwise, all buckets at once with one shared
/// inversion per round, until too few pairs remain to repay an inversion.
fn reduce_buckets(pts: &mut [Affine], start: &[u32], len: &mut [u32], s: &mut Scratch) {
    loop {
        s.pairs.clear();
        for (b, &l) in len.iter().enumerate() {
            let at = start[b];
            for k in 0..l / 2 {
                s.pairs.push((at + 2 * k, at + 2 * k + 1));
            }
        }
        if s.pairs.len() < MIN_PAIRS {
            return;
        }
        batch_add_pairs(pts, &s.pairs, &mut s.out, &mut s.dens, &mut s.nums, &mut s.inv);
        let mut idx = 0;
        for (b, l) in len.iter_mut().enumerate() {
            let at = start[b] as usize;
            let old = *l as usize;
            if old < 2 {
                continue;
            }
            let mut kept = 0;
            for _ in 0..old / 2 {
                if let Some(p) = s.out[idx] {
                    pts[at + kept] = p;
                    kept += 1;
                }
                idx += 1;
            }
            if old % 2 == 1 {
                pts[at + kept] = pts[at + old - 1];
                kept += 1;
            }
            *l = kept as u32;
        }
    }
}

/// Σ (b+1)·bucket_b by running sums from the top bucket down.
fn sum_buckets(pts: &[Affine], start: &[u32], len: &[u32]) -> Jacobian {
    let mut running = Jacobian::INFINITY;
    let mut total = Jacobian::INFINITY;
    for b in (0..len.len()).rev() {
        let at = start[b] as usize;
        for p in &pts[at..at + len[b] as usize] {
            running = running.add_affine(p);
        }
        total = total.add(&running);
    }
    total
}
