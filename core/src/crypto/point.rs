//! Variable-time secp256k1 group arithmetic over k256's field, for
//! verification only (every input is public, so nothing here needs to be
//! constant-time). Every point this module returns has coordinates of
//! magnitude 1, which is what the formulas below assume of their inputs.

// k256's field operators take the right operand by reference to skip a
// copy of the limbs; clippy would have them by value.
#![allow(clippy::op_ref)]

use k256::FieldElement as Fe;
use std::sync::LazyLock;

/// A non-zero cube root of unity in the field: (x, y) ↦ (β·x, y) is
/// multiplication by λ on the curve (the GLV endomorphism).
static BETA: LazyLock<Fe> =
    LazyLock::new(|| fe_from_hex("7ae96a2b657c07106e64479eac3434e99cf0497512f58995c1396c28719501ee"));

/// The generator, x then y.
static GENERATOR: LazyLock<Affine> = LazyLock::new(|| Affine {
    x: fe_from_hex("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"),
    y: fe_from_hex("483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"),
});

/// A compile-time constant in hex; a typo is caught by the tests that use
/// every constant.
fn fe_from_hex(s: &str) -> Fe {
    let mut bytes = [0u8; 32];
    if hex::decode_to_slice(s, &mut bytes).is_err() {
        return Fe::ZERO;
    }
    Option::from(Fe::from_bytes(&bytes.into())).unwrap_or(Fe::ZERO)
}

fn is_zero(a: &Fe) -> bool {
    bool::from(a.normalizes_to_zero())
}

/// A finite point (x, y).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Affine {
    pub x: Fe,
    pub y: Fe,
}

impl Affine {
    /// The generator G.
    pub fn generator() -> Affine {
        *GENERATOR
    }

    /// BIP-340 `lift_x`: the point with this x and an even y, or `None` if
    /// x ≥ p or x³ + 7 is not a square.
    pub fn lift_x(bytes: &[u8; 32]) -> Option<Affine> {
        let x: Fe = Option::from(Fe::from_bytes(&(*bytes).into()))?;
        let c = x.square() * &x + &Fe::from_u64(7);
        let y: Fe = Option::from(c.sqrt())?;
        let y = y.normalize();
        let y = if bool::from(y.is_odd()) { y.negate(1).normalize() } else { y };
        Some(Affine { x, y })
    }

    /// -P.
    pub fn neg(&self) -> Affine {
        Affine { x: self.x, y: self.y.negate(1).normalize_weak() }
    }

    /// λ·P.
    pub fn endo(&self) -> Affine {
        Affine { x: self.x * &*BETA, y: self.y }
    }

    /// Big-endian x and y (for tests and for handing keys to k256).
    pub fn to_bytes(self) -> ([u8; 32], [u8; 32]) {
        (self.x.normalize().to_bytes().into(), self.y.normalize().to_bytes().into())
    }
}

/// A point in Jacobian coordinates (X/Z², Y/Z³), or infinity.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Jacobian {
    x: Fe,
    y: Fe,
    z: Fe,
    inf: bool,
}

impl From<&Affine> for Jacobian {
    fn from(a: &Affine) -> Jacobian {
        Jacobian { x: a.x, y: a.y, z: Fe::ONE, inf: false }
    }
}

impl Jacobian {
    /// The point at infinity.
    pub const INFINITY: Jacobian = Jacobian { x: Fe::ZERO, y: Fe::ONE, z: Fe::ZERO, inf: true };

    /// Whether this is the point at infinity.
    pub fn is_infinity(&self) -> bool {
        self.inf
    }

    /// 2·P (secp256k1 has no point of order two, so a finite P stays finite).
    pub fn double(&self) -> Jacobian {
        if self.inf {
            return *self;
        }
        let a = self.x.square();
        let b = self.y.square();
        let c = b.square();
        let d = (self.x * &b).mul_single(4).normalize_weak();
        let e = a.mul_single(3);
        let x3 = (e.square() + &d.double().negate(2)).normalize_weak();
        let y3 = (e * &(d + &x3.negate(1)) + &c.mul_single(8).negate(8)).normalize_weak();
        let z3 = (self.y * &self.z).double().normalize_weak();
        Jacobian { x: x3, y: y3, z: z3, inf: false }
    }

    /// P + Q for an affine Q.
    pub fn add_affine(&self, q: &Affine) -> Jacobian {
        if self.inf {
            return Jacobian::from(q);
        }
        let z1z1 = self.z.square();
        let u2 = q.x * &z1z1;
        let s2 = q.y * &z1z1 * &self.z;
        let h = u2 + &self.x.negate(1);
        let r = s2 + &self.y.negate(1);
        self.finish_add(&self.x, &self.y, h, r, self.z)
    }

    /// P + Q.
    pub fn add(&self, q: &Jacobian) -> Jacobian {
        if self.inf {
            return *q;
        }
        if q.inf {
            return *self;
        }
        let z1z1 = self.z.square();
        let z2z2 = q.z.square();
        let u1 = self.x * &z2z2;
        let u2 = q.x * &z1z1;
        let s1 = self.y * &z2z2 * &q.z;
        let s2 = q.y * &z1z1 * &self.z;
        let h = u2 + &u1.negate(1);
        let r = s2 + &s1.negate(1);
        self.finish_add(&u1, &s1, h, r, self.z * &q.z)
    }

    /// The common tail of both additions: `u1`, `s1` are P's x and y scaled
    /// to Q's Z, `h` = U2 − U1 and `r` = S2 − S1 (magnitude ≤ 3), `z` = Z1·Z2.
    fn finish_add(&self, u1: &Fe, s1: &Fe, h: Fe, r: Fe, z: Fe) -> Jacobian {
        if is_zero(&h) {
            // Same x: either the same point (double) or opposite (infinity).
            return if is_zero(&r) { self.double() } else { Jacobian::INFINITY };
        }
        let hh = h.square();
        let hhh = h * &hh;
        let v = *u1 * &hh;
        let x3 = (r.square() + &hhh.negate(1) + &v.double().negate(2)).normalize_weak();
        let y3 = (r * &(v + &x3.negate(1)) + &(*s1 * &hhh).negate(1)).normalize_weak();
        let z3 = z * &h;
        Jacobian { x: x3, y: y3, z: z3, inf: false }
    }

    /// The affine point, or `None` at infinity (one field inversion).
    #[cfg(test)]
    pub fn to_affine(self) -> Option<Affine> {
        if self.inf {
            return None;
        }
        let zi: Fe = Option::from(self.z.invert())?;
        let zi2 = zi.square();
        Some(Affine { x: (self.x * &zi2).normalize(), y: (self.y * &zi2 * &zi).normalize() })
    }
}

/// Replaces every element by its inverse with one field inversion
/// (Montgomery's trick). Every element must be non-zero; `scratch` is
/// reused storage.
pub(crate) fn batch_invert(vals: &mut [Fe], scratch: &mut Vec<Fe>) {
    if vals.is_empty() {
        return;
    }
    scratch.clear();
    let mut acc = Fe::ONE;
    for v in vals.iter() {
        acc *= v;
        scratch.push(acc);
    }
    // Zero only if some element was zero, which callers exclude.
    let mut inv: Fe = Option::from(acc.invert()).unwrap_or(Fe::ZERO);
    for i in (1..vals.len()).rev() {
        let vi = vals[i];
        vals[i] = inv * &scratch[i - 1];
        inv *= &vi;
    }
    vals[0] = inv;
}

/// Converts finite Jacobian points to affine with one inversion.
pub(crate) fn batch_to_affine(points: &[Jacobian], scratch: &mut Vec<Fe>) -> Vec<Affine> {
    let mut zs: Vec<Fe> = points.iter().map(|p| p.z).collect();
    batch_invert(&mut zs, scratch);
    points
        .iter()
        .zip(zs)
        .map(|(p, zi)| {
            let zi2 = zi.square();
            Affine { x: (p.x * &zi2).normalize_weak(), y: (p.y * &zi2 * &zi).normalize_weak() }
        })
        .collect()
}

/// Sums pairs of affine points with one inversion for all of them:
/// `out[k]` = `pts[a] + pts[b]` for the k-th pair `(a, b)`, or `None` where
/// the sum is infinity. `dens`, `nums` and `scratch` are reused storage.
pub(crate) fn batch_add_pairs(
    pts: &[Affine],
    pairs: &[(u32, u32)],
    out: &mut Vec<Option<Affine>>,
    dens: &mut Vec<Fe>,
    nums: &mut Vec<Fe>,
    scratch: &mut Vec<Fe>,
) {
    dens.clear();
    nums.clear();
    out.clear();
    for &(a, b) in pairs {
        let (p, q) = (&pts[a as usize], &pts[b as usize]);
        let dx = q.x + &p.x.negate(1);
        if !is_zero(&dx) {
            dens.push(dx);
            nums.push(q.y + &p.y.negate(1));
            out.push(Some(*p));
        } else if is_zero(&(q.y + &p.y.negate(1))) {
            // P + P: the tangent's slope 3x²/2y (y ≠ 0 on this curve).
            dens.push(p.y.double());
            nums.push(p.x.square().mul_single(3));
            out.push(Some(*p));
        } else {
            // P + (−P) = infinity; a unit keeps the inversion defined.
            dens.push(Fe::ONE);
            nums.push(Fe::ZERO);
            out.push(None);
        }
    }
    batch_invert(dens, scratch);
    for (k, &(a, b)) in pairs.iter().enumerate() {
        if out[k].is_none() {
            continue;
        }
        let (p, q) = (&pts[a as usize], &pts[b as usize]);
        let l = nums[k] * &dens[k];
        let x3 = (l.square() + &(p.x + &q.x).negate(2)).normalize_weak();
        let y3 = (l * &(p.x + &x3.negate(1)) + &p.y.negate(1)).normalize_weak();
        out[k] = Some(Affine { x: x3, y: y3 });
    }
}
