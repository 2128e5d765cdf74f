//! Batch verification against single verification: BIP-340 vectors, random
//! batches with one invalid signature at each position class, signatures
//! that cancel under unit weights, malformed keys, R and s, point
//! collisions, and the multi-scalar multiplication against k256.

use super::batch::{batch_holds, holds_with_weights};
use super::glv::{half, split, Half};
use super::msm::{pippenger, strauss, Term};
use super::point::{Affine, Jacobian};
use super::*;
use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::elliptic_curve::{Field, PrimeField};
use k256::{ProjectivePoint, Scalar, U256};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// (public key, message, signature, valid) of BIP-340's test-vectors.csv,
/// indices 0–14 (15–18 sign messages that are not 32 bytes).
const VECTORS: &[(&str, &str, &str, bool)] = &[
    ("F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9", "0000000000000000000000000000000000000000000000000000000000000000", "E907831F80848D1069A5371B402410364BDF1C5F8307B0084C55F1CE2DCA821525F66A4A85EA8B71E482A74F382D2CE5EBEEE8FDB2172F477DF4900D310536C0", true),
    ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659", "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89", "6896BD60EEAE296DB48A229FF71DFE071BDE413E6D43F917DC8DCF8C78DE33418906D11AC976ABCCB20B091292BFF4EA897EFCB639EA871CFA95F6DE339E4B0A", true),
    ("DD308AFEC5777E13121FA72B9CC1B7CC0139715309B086C960E18FD969774EB8", "7E2D58D8B3BCDF1ABADEC7829054F90DDA9805AAB56C77333024B9D0A508B75C", "5831AAEED7B44BB74E5EAB94BA9D4294C49BCF2A60728D8B4C200F50DD313C1BAB745879A5AD954A72C45A91C3A51D3C7ADEA98D82F8481E0E1E03674A6F3FB7", true),
    ("25D1DFF95105F5253C4022F628A996AD3A0D95FBF21D468A1B33F8C160D8F517", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "7EB0509757E246F19449885651611CB965ECC1A187DD51B64FDA1EDC9637D5EC97582B9CB13DB3933705B32BA982AF5AF25FD78881EBB32771FC5922EFC66EA3", true),
    ("D69C3509BB99E412E68B0FE8544E72837DFA30746D8BE2AA65975F29D22DC7B9", "4DF3C3F68FCC83B27E9D42C90431A72499F17875C81A599B566C9889B9696703", "00000000000000000000003B78CE563F89A0ED9414F5AA28AD0D96D6795F9C6376AFB1548AF603B3EB45C9F8207DEE1060CB71C04E80F593060B07D28308D7F4", true),
    ("EEFDEA4CDB677750A420FEE807EACF21EB9898AE79B9768766E4FAA04A2D4A34", "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89", "6CFF5C3BA86C69EA4B7376F31A9BCB4F74C1976089B2D9963DA2E5543E17776969E89B4C5564D00349106B8497785DD7D1D713A8AE82B32FA79D5F7FC407D39B", false),
    ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659", "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89", "FFF97BD5755EEEA420453A14355235D382F6472F8568A18B2F057A14602975563CC27944640AC607CD107AE10923D9EF7A73C643E166BE5EBEAFA34B1AC553E2", false),
    ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659", "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89", "1FA62E331EDBC21C394792D2AB1100A7B432B013DF3F6FF4F99FCB33E0E1515F28890B3EDB6E7189B630448B515CE4F8622A954CFE545735AAEA5134FCCDB2BD", false),
    ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659", "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89", "6CFF5C3BA86C69EA4B7376F31A9BCB4F74C1976089B2D9963DA2E5543E177769961764B3AA9B2FFCB6EF947B6887A226E8D7C93E00C5ED0C1834FF0D0C2E6DA6", false),
    ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659", "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89", "0000000000000000000000000000000000000000000000000000000000000000123DDA8328AF9C23A94C1FEECFD123BA4FB73476F0D594DCB65C6425BD186051", false),
    ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659", "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89", "00000000000000000000000000000000000000000000000000000000000000017615FBAF5AE28864013C099742DEADB4DBA87F11AC6754F93780D5A1837CF197", false),
    ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659", "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89", "4A298DACAE57395A15D0795DDBFD1DCB564DA82B0F269BC70A74F8220429BA1D69E89B4C5564D00349106B8497785DD7D1D713A8AE82B32FA79D5F7FC407D39B", false),
    ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659", "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F69E89B4C5564D00349106B8497785DD7D1D713A8AE82B32FA79D5F7FC407D39B", false),
    ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659", "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89", "6CFF5C3BA86C69EA4B7376F31A9BCB4F74C1976089B2D9963DA2E5543E177769FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", false),
    ("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC30", "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89", "6CFF5C3BA86C69EA4B7376F31A9BCB4F74C1976089B2D9963DA2E5543E17776969E89B4C5564D00349106B8497785DD7D1D713A8AE82B32FA79D5F7FC407D39B", false),
];

fn vector(i: usize) -> (SigCheck, bool) {
    let (pk, msg, sig, valid) = VECTORS[i];
    let mut c = SigCheck { pubkey: PublicKey([0; 32]), msg: Hash256([0; 32]), sig: Signature([0; 64]) };
    hex::decode_to_slice(pk, &mut c.pubkey.0).unwrap();
    hex::decode_to_slice(msg, &mut c.msg.0).unwrap();
    hex::decode_to_slice(sig, &mut c.sig.0).unwrap();
    (c, valid)
}

fn cold() -> KeyCache {
    KeyCache::new(0)
}

/// Valid checks by distinct fresh keys over distinct messages.
fn valid_checks(n: usize) -> Vec<SigCheck> {
    (0..n)
        .map(|i| {
            let sk = SecretKey::generate();
            let msg = crate::hash::sha256d(&(i as u64).to_le_bytes());
            SigCheck { pubkey: sk.public_key(), msg, sig: sk.sign(&msg) }
        })
        .collect()
}

/// The ways a check is made invalid, by `kind`.
fn spoil(c: &mut SigCheck, kind: usize) {
    match kind % 5 {
        0 => c.msg.0[0] ^= 1,
        1 => c.sig.0[63] ^= 1,
        2 => c.sig.0[5] ^= 1,                               // R moves (or leaves the curve)
        3 => c.pubkey = SecretKey::generate().public_key(), // another key
        _ => c.sig.0[32..].copy_from_slice(&N_BYTES),       // s = n
    }
}

const N_BYTES: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc,
    0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

/// What single verification reports: the first failing index.
fn single_first(checks: &[SigCheck]) -> Result<(), usize> {
    let keys = cold();
    match checks.iter().position(|c| !verify_with(&c.pubkey, &c.msg, &c.sig, &keys)) {
        Some(i) => Err(i),
        None => Ok(()),
    }
}

#[test]
fn bip340_vectors_through_both_paths() {
    let keys = KeyCache::new(100);
    let mut all = Vec::new();
    for i in 0..VECTORS.len() {
        let (c, valid) = vector(i);
        assert_eq!(verify_with(&c.pubkey, &c.msg, &c.sig, &cold()), valid, "single, vector {i}");
        assert_eq!(verify_with(&c.pubkey, &c.msg, &c.sig, &keys), valid, "single cached, vector {i}");
        assert_eq!(verify_batch_with(&[c], &cold()).is_ok(), valid, "batch of one, vector {i}");
        assert_eq!(verify_batch_with(&[c], &keys).is_ok(), valid, "batch of one cached, vector {i}");
        all.push(c);
    }
    assert_eq!(verify_batch_with(&all[..5], &keys), Ok(()));
    assert_eq!(verify_batch_with(&all, &keys), Err(5));
    for i in 5..VECTORS.len() {
        // Each invalid vector among the valid ones, at the end of the batch.
        let mut batch = all[..5].to_vec();
        batch.push(all[i]);
        assert_eq!(verify_batch_with(&batch, &cold()), Err(5), "vector {i}");
    }
}

#[test]
fn random_batches_name_the_invalid_signature() {
    let pool = valid_checks(1000);
    for n in [1usize, 2, 3, 63, 64, 65, 1000] {
        let base = &pool[..n];
        assert_eq!(verify_batch_with(base, &cold()), Ok(()), "n = {n}");
        for (k, at) in [0, n / 2, n - 1].into_iter().enumerate() {
            let mut batch = base.to_vec();
            spoil(&mut batch[at], n + k);
            assert_eq!(verify_batch_with(&batch, &cold()), Err(at), "n = {n}, invalid at {at}");
            assert_eq!(single_first(&batch), Err(at));
        }
    }
}

#[test]
fn signatures_cancelling_under_unit_weights_still_fail() {
    let mut batch = valid_checks(8);
    // s₂ + d and s₅ − d: with every weight 1 the sum Σ sᵢ is unchanged, so
    // the unweighted equation still holds though both are invalid.
    let d = Scalar::from(12345u64);
    let bump = |c: &mut SigCheck, by: Scalar| {
        let s: Scalar = Option::from(Scalar::from_repr(*k256::FieldBytes::from_slice(&c.sig.0[32..]))).unwrap();
        c.sig.0[32..].copy_from_slice(&(s + by).to_bytes());
    };
    bump(&mut batch[2], d);
    bump(&mut batch[5], -d);
    let keys = cold();
    assert!(holds_with_weights(&batch, &keys, &[1; 8], Msm::Auto), "the attack works against unit weights");
    assert!(!batch_holds(&batch, &keys));
    assert_eq!(verify_batch_with(&batch, &keys), Err(2));
}

#[test]
fn malformed_keys_r_and_s_fail_at_their_index() {
    let base = valid_checks(10);
    let mut off_curve = [0u8; 32];
    hex::decode_to_slice(VECTORS[5].0, &mut off_curve).unwrap();
    let mut r_off = [0u8; 32];
    hex::decode_to_slice(&VECTORS[11].2[..64], &mut r_off).unwrap();
    type Spoil = Box<dyn Fn(&mut SigCheck)>;
    let cases: Vec<Spoil> = vec![
        Box::new(move |c| c.pubkey = PublicKey(off_curve)),
        Box::new(|c| c.pubkey = PublicKey([0xff; 32])),
        Box::new(move |c| c.sig.0[..32].copy_from_slice(&r_off)),
        Box::new(|c| c.sig.0[..32].copy_from_slice(&[0xff; 32])),
        Box::new(|c| c.sig.0[32..].copy_from_slice(&N_BYTES)),
        Box::new(|c| c.sig.0[32..].copy_from_slice(&[0xff; 32])),
        Box::new(|c| c.sig.0[32..].copy_from_slice(&[0; 32])),
    ];
    for (k, f) in cases.iter().enumerate() {
        for at in [0, 4, 9] {
            let mut batch = base.clone();
            f(&mut batch[at]);
            assert_eq!(single_first(&batch), Err(at), "case {k}");
            assert_eq!(verify_batch_with(&batch, &cold()), Err(at), "case {k} at {at}");
        }
    }
}

/// A BIP-340 signature with a chosen nonce (tests of colliding points).
fn sign_with_nonce(x: Scalar, k: Scalar, msg: &Hash256) -> SigCheck {
    let even = |s: Scalar| {
        let p = (ProjectivePoint::GENERATOR * s).to_affine().to_encoded_point(false);
        let odd = p.y().unwrap()[31] & 1 == 1;
        let mut xb = [0u8; 32];
        xb.copy_from_slice(p.x().unwrap());
        (if odd { -s } else { s }, xb)
    };
    let (x, px) = even(x);
    let (k, rx) = even(k);
    let t = Sha256::digest(b"BIP0340/challenge");
    let e =
        Sha256::new().chain_update(t).chain_update(t).chain_update(rx).chain_update(px).chain_update(msg.0).finalize();
    let e = <Scalar as Reduce<U256>>::reduce_bytes(&e);
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&rx);
    sig[32..].copy_from_slice(&(k + e * x).to_bytes());
    SigCheck { pubkey: PublicKey(px), msg: *msg, sig: Signature(sig) }
}

#[test]
fn colliding_points_are_handled() {
    let mut rng = rand::thread_rng();
    let x = Scalar::random(&mut rng);
    let k = Scalar::random(&mut rng);
    let lambda = super::glv::lambda();
    let m = |i: u8| Hash256([i; 32]);
    let mut batch = vec![
        sign_with_nonce(x, k, &m(1)),
        sign_with_nonce(x, k + Scalar::ONE, &m(2)),     // same key
        sign_with_nonce(k, x, &m(3)),                   // R = the first key, key = the first R
        sign_with_nonce(x * lambda, k * lambda, &m(4)), // λ·P and λ·R
        sign_with_nonce(x, k, &m(5)),                   // reused nonce
        sign_with_nonce(-x, -k, &m(6)),                 // the same x-only key and R
    ];
    for _ in 0..70 {
        // Enough terms that Pippenger runs too, many sharing one key.
        batch.push(sign_with_nonce(x, Scalar::random(&mut rng), &m(7)));
    }
    assert_eq!(single_first(&batch), Ok(()));
    assert_eq!(verify_batch_with(&batch[..6], &cold()), Ok(()));
    assert_eq!(verify_batch_with(&batch, &cold()), Ok(()));
    batch[40].sig.0[40] ^= 1;
    assert_eq!(verify_batch_with(&batch, &cold()), Err(40));
}

fn to_k256(p: &Affine) -> ProjectivePoint {
    let (x, y) = p.to_bytes();
    let e = k256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
    let a: k256::AffinePoint =
        Option::from(k256::elliptic_curve::sec1::FromEncodedPoint::from_encoded_point(&e)).unwrap();
    a.into()
}

fn same(j: &Jacobian, want: &ProjectivePoint) -> bool {
    match j.to_affine() {
        None => bool::from(k256::elliptic_curve::Group::is_identity(want)),
        Some(a) => to_k256(&a) == *want,
    }
}

fn value(h: &Half) -> Scalar {
    if h.neg {
        -Scalar::from(h.mag)
    } else {
        Scalar::from(h.mag)
    }
}

#[test]
fn msm_matches_k256() {
    let mut rng = rand::thread_rng();
    let lambda = super::glv::lambda();
    let g = Affine::generator();
    assert!(to_k256(&g) == ProjectivePoint::GENERATOR);
    assert!(to_k256(&g.endo()) == ProjectivePoint::GENERATOR * lambda);
    for n in [1usize, 2, 5, 30, 200] {
        let mut terms = Vec::new();
        let mut want = ProjectivePoint::IDENTITY;
        for i in 0..n {
            let s = Scalar::random(&mut rng);
            // Every fourth point repeats, negates or is λ times an earlier one.
            let p = match (i % 4, terms.last()) {
                (1, Some(t)) => {
                    let t: &Term = t;
                    t.point
                }
                (2, Some(t)) => t.point.neg(),
                (3, Some(t)) => t.point.endo(),
                _ => super::point::Affine::lift_x(&SecretKey::generate().public_key().0).unwrap(),
            };
            let k = if i % 3 == 0 { Scalar::from(rand::Rng::gen::<u128>(&mut rng)) } else { s };
            let t = match half(&k) {
                Some(k1) => Term { point: p, k1, k2: None },
                None => {
                    let (k1, k2) = split(&k).unwrap();
                    Term { point: p, k1, k2: Some(k2) }
                }
            };
            assert_eq!(value(&t.k1) + t.k2.map(|h| value(&h) * lambda).unwrap_or(Scalar::ZERO), k);
            want += to_k256(&p) * k;
            terms.push(t);
        }
        assert!(same(&strauss(&terms), &want), "strauss n = {n}");
        for c in 2..=9 {
            assert!(same(&pippenger(&terms, c), &want), "pippenger n = {n} c = {c}");
        }
        // The sum cancels to infinity when its own negation is appended.
        let mut both = terms.clone();
        both.extend(terms.iter().map(|t| Term { point: t.point.neg(), ..*t }));
        assert!(strauss(&both).is_infinity());
        assert!(pippenger(&both, 5).is_infinity());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn batch_agrees_with_single(n in 1usize..40, spoils in proptest::collection::vec((0usize..40, 0usize..5), 0..3)) {
        let mut batch = valid_checks(n);
        for (at, kind) in spoils {
            if at < n {
                spoil(&mut batch[at], kind);
            }
        }
        prop_assert_eq!(verify_batch_with(&batch, &cold()), single_first(&batch));
    }
}
