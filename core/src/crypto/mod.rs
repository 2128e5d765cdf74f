//! BIP-340 Schnorr keys and signatures over secp256k1, the signature hash,
//! the bounded cache that keeps a signature from being verified twice, and
//! batch verification (with its own group arithmetic over k256's field).

mod batch;
mod glv;
mod key_cache;
mod msm;
mod point;
#[cfg(test)]
mod tests_batch;

pub use batch::{batch_holds_by, verify_batch, verify_batch_with};
pub use key_cache::{KeyCache, KEY_CACHE_ENTRIES};
pub use msm::{window_for, Msm, STRAUSS_MAX};

use crate::amount::Amount;
use crate::hash::{sha256d, sha256d_parts, Hash256};
use k256::elliptic_curve::sec1::FromEncodedPoint;
use k256::schnorr::{SigningKey, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Mutex;

/// Domain separation for the signature hash. v2 commits to every spent
/// value; v1 committed only to the input's own.
const SIGHASH_TAG: &[u8] = b"lode/sighash/v2";

/// A 32-byte x-only public key as carried in a transaction input (not yet
/// known to be a valid curve point).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

/// A 64-byte BIP-340 signature as carried in a transaction input.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl Default for Signature {
    fn default() -> Self {
        Signature([0u8; 64])
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        hex::encode(self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 64];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(Signature(out))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

/// A secret signing key.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Bytes that are not a valid secret key (zero or not below the curve order).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid secret key bytes")]
pub struct InvalidSecretKey;

impl SecretKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> SecretKey {
        SecretKey(SigningKey::random(&mut rand::rngs::OsRng))
    }

    /// A key from 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<SecretKey, InvalidSecretKey> {
        SigningKey::from_bytes(bytes).map(SecretKey).map_err(|_| InvalidSecretKey)
    }

    /// The 32 secret bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes().into()
    }

    /// The x-only public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes().into())
    }

    /// Signs a 32-byte signature hash (BIP-340 with fresh auxiliary randomness).
    pub fn sign(&self, msg: &Hash256) -> Signature {
        let mut aux = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut aux);
        self.sign_with_aux(msg, &aux)
    }

    /// Signs with caller-chosen auxiliary randomness (deterministic for tests
    /// and vectors).
    pub fn sign_with_aux(&self, msg: &Hash256, aux: &[u8; 32]) -> Signature {
        // sign_raw fails only for a secret key or nonce of zero, which a
        // constructed SigningKey and a hash-derived nonce cannot be.
        match self.0.sign_raw(&msg.0, aux) {
            Ok(sig) => Signature(sig.to_bytes()),
            Err(_) => Signature::default(),
        }
    }
}

/// Verifies a BIP-340 signature over `msg` (k256's verifier, keys through
/// the process-wide [`KeyCache`]). Invalid keys or signatures are simply
/// `false`.
pub fn verify(pubkey: &PublicKey, msg: &Hash256, sig: &Signature) -> bool {
    verify_with(pubkey, msg, sig, KeyCache::global())
}

/// [`verify`] with a given key cache.
pub fn verify_with(pubkey: &PublicKey, msg: &Hash256, sig: &Signature, keys: &KeyCache) -> bool {
    let Some(vk) = keys.get(pubkey).and_then(verifying_key) else {
        return false;
    };
    let Ok(sig) = k256::schnorr::Signature::try_from(&sig.0[..]) else {
        return false;
    };
    vk.verify_raw(&msg.0, &sig).is_ok()
}

/// k256's key for a point already known to be on the curve with even y
/// (the curve check k256 repeats costs a few multiplications, not a root).
fn verifying_key(p: point::Affine) -> Option<VerifyingKey> {
    let (x, y) = p.to_bytes();
    let encoded = k256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
    let key: k256::PublicKey = Option::from(k256::PublicKey::from_encoded_point(&encoded))?;
    VerifyingKey::try_from(key).ok()
}

/// The message an input signs: commits to the network (genesis hash), the
/// whole transaction with every signature blanked, the input's index and the
/// values of *all* the outputs the transaction spends (see
/// [`spent_values_hash`]).
pub fn signature_hash(
    genesis: &Hash256,
    blank_tx_hash: &Hash256,
    input_index: u32,
    spent_values_hash: &Hash256,
) -> Hash256 {
    sha256d_parts(&[SIGHASH_TAG, &genesis.0, &blank_tx_hash.0, &input_index.to_le_bytes(), &spent_values_hash.0])
}

/// `sha256d(count u32 | value u64 …)` of the spent outputs' values in input
/// order. Every signature commits to all of them: a signer who is told a
/// wrong value for any input (the BIP-341 fee attack on offline and hardware
/// signers) produces signatures that do not verify, instead of paying a fee
/// it never saw.
pub fn spent_values_hash(spent_values: &[Amount]) -> Hash256 {
    let mut bytes = Vec::with_capacity(4 + 8 * spent_values.len());
    // A count above u32::MAX cannot be encoded in a transaction; saturating
    // still yields a hash no real signer produced.
    bytes.extend_from_slice(&u32::try_from(spent_values.len()).unwrap_or(u32::MAX).to_le_bytes());
    for value in spent_values {
        bytes.extend_from_slice(&value.units().to_le_bytes());
    }
    sha256d(&bytes)
}

/// One signature check: what is verified and by whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigCheck {
    /// The signing key.
    pub pubkey: PublicKey,
    /// The signature hash.
    pub msg: Hash256,
    /// The signature.
    pub sig: Signature,
}

impl SigCheck {
    /// Verifies this check.
    pub fn verify(&self) -> bool {
        verify(&self.pubkey, &self.msg, &self.sig)
    }

    /// The cache key: a hash of everything the check depends on.
    pub fn cache_key(&self) -> Hash256 {
        sha256d_parts(&[&self.pubkey.0, &self.msg.0, &self.sig.0])
    }
}

/// A bounded set of signature checks already known to pass. Filled when a
/// transaction enters the mempool; block connection consults it so a block of
/// already-seen transactions does not verify their signatures again.
pub struct SigCache {
    capacity: usize,
    inner: Mutex<SigCacheInner>,
}

#[derive(Default)]
struct SigCacheInner {
    set: HashSet<Hash256>,
    order: VecDeque<Hash256>,
}

impl SigCache {
    /// A cache holding at most `capacity` entries (oldest evicted first).
    pub fn new(capacity: usize) -> SigCache {
        SigCache { capacity, inner: Mutex::new(SigCacheInner::default()) }
    }

    /// Whether this check is known to pass.
    pub fn contains(&self, check: &SigCheck) -> bool {
        let key = check.cache_key();
        self.lock().set.contains(&key)
    }

    /// Records checks that passed.
    pub fn insert_all(&self, checks: &[SigCheck]) {
        if self.capacity == 0 {
            return;
        }
        let keys: Vec<Hash256> = checks.iter().map(SigCheck::cache_key).collect();
        let mut inner = self.lock();
        for key in keys {
            if inner.set.insert(key) {
                inner.order.push_back(key);
            }
            while inner.order.len() > self.capacity {
                if let Some(old) = inner.order.pop_front() {
                    inner.set.remove(&old);
                }
            }
        }
    }

    /// Number of cached checks.
    pub fn len(&self) -> usize {
        self.lock().set.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SigCacheInner> {
        // A panic while holding this lock cannot leave the set inconsistent
        // in a way that matters (worst case: a missing entry), so recover.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let sk = SecretKey::generate();
        let msg = Hash256([3u8; 32]);
        let sig = sk.sign(&msg);
        assert!(verify(&sk.public_key(), &msg, &sig));
        assert!(!verify(&sk.public_key(), &Hash256([4u8; 32]), &sig));
        let mut bad = sig;
        bad.0[10] ^= 1;
        assert!(!verify(&sk.public_key(), &msg, &bad));
        assert!(!verify(&PublicKey([0xff; 32]), &msg, &sig));
    }

    #[test]
    fn secret_key_round_trip() {
        let sk = SecretKey::generate();
        let again = SecretKey::from_bytes(&sk.to_bytes()).unwrap();
        assert_eq!(sk.public_key(), again.public_key());
        assert!(SecretKey::from_bytes(&[0u8; 32]).is_err());
    }

    #[test]
    fn sig_cache_is_bounded() {
        let cache = SigCache::new(2);
        let mk = |i: u8| SigCheck { pubkey: PublicKey([i; 32]), msg: Hash256([i; 32]), sig: Signature([i; 64]) };
        cache.insert_all(&[mk(1), mk(2), mk(3)]);
        assert_eq!(cache.len(), 2);
        assert!(!cache.contains(&mk(1)));
        assert!(cache.contains(&mk(3)));
    }
}
