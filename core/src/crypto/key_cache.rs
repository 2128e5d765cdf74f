//! A bounded cache of decompressed public keys (x-only key → curve point),
//! shared by single and batch verification: `lift_x` costs a field square
//! root, a large part of a verification, and keys repeat across a chain.

use super::point::Affine;
use super::PublicKey;
use std::collections::{HashMap, VecDeque};
use std::sync::{LazyLock, Mutex, MutexGuard};

/// Keys the process-wide cache holds (about 160 bytes each with overhead).
pub const KEY_CACHE_ENTRIES: usize = 65_536;

static GLOBAL: LazyLock<KeyCache> = LazyLock::new(|| KeyCache::new(KEY_CACHE_ENTRIES));

/// A bounded map of decompressed keys, oldest evicted first. Keys that are
/// not on the curve are not cached (they fail at once and cost a peer its
/// standing).
pub struct KeyCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<[u8; 32], Affine>,
    order: VecDeque<[u8; 32]>,
}

impl KeyCache {
    /// A cache holding at most `capacity` keys (0: never stores).
    pub fn new(capacity: usize) -> KeyCache {
        KeyCache { capacity, inner: Mutex::new(Inner::default()) }
    }

    /// The process-wide cache that [`super::verify`] and the batch
    /// verifier use by default.
    pub fn global() -> &'static KeyCache {
        &GLOBAL
    }

    /// Number of cached keys.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The point of `key`, decompressing it on a miss; `None` if it is not
    /// a valid x-only key.
    pub(crate) fn get(&self, key: &PublicKey) -> Option<Affine> {
        if let Some(p) = self.lock().map.get(&key.0) {
            return Some(*p);
        }
        let p = Affine::lift_x(&key.0)?;
        self.insert_all(&[(key.0, p)]);
        Some(p)
    }

    /// The points of many keys with one lock for the hits and one for the
    /// misses: `out[i]` is `None` where `keys[i]` is not a valid key.
    pub(crate) fn get_many(&self, keys: &[&[u8; 32]], out: &mut Vec<Option<Affine>>) {
        out.clear();
        let mut misses = Vec::new();
        {
            let inner = self.lock();
            for (i, k) in keys.iter().enumerate() {
                let hit = inner.map.get(*k).copied();
                if hit.is_none() {
                    misses.push(i);
                }
                out.push(hit);
            }
        }
        if misses.is_empty() {
            return;
        }
        let mut fresh = Vec::with_capacity(misses.len());
        for i in misses {
            if let Some(p) = Affine::lift_x(keys[i]) {
                out[i] = Some(p);
                fresh.push((*keys[i], p));
            }
        }
        self.insert_all(&fresh);
    }

    fn insert_all(&self, fresh: &[([u8; 32], Affine)]) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        for (k, p) in fresh {
            if inner.map.insert(*k, *p).is_none() {
                inner.order.push_back(*k);
            }
            while inner.order.len() > self.capacity {
                if let Some(old) = inner.order.pop_front() {
                    inner.map.remove(&old);
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves at worst a missing entry.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_rejects_invalid_keys() {
        let cache = KeyCache::new(2);
        let keys: Vec<PublicKey> = (0..3).map(|_| super::super::SecretKey::generate().public_key()).collect();
        for k in &keys {
            assert!(cache.get(k).is_some());
        }
        assert_eq!(cache.len(), 2);
        // x = 5: 5³ + 7 = 132 is not a square mod p.
        let mut bad = [0u8; 32];
        bad[31] = 5;
        assert!(cache.get(&PublicKey(bad)).is_none());
        assert!(cache.get(&PublicKey([0xff; 32])).is_none());
        assert_eq!(cache.len(), 2);
        let mut out = Vec::new();
        cache.get_many(&[&keys[0].0, &bad, &keys[2].0], &mut out);
        assert!(out[0].is_some() && out[1].is_none() && out[2].is_some());
    }
}
