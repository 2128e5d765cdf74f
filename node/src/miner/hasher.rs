//! The nonce loop's hasher: [`HeaderHasher`]'s scheme (midstate of the
//! header's first 64 bytes, then two compressions per nonce) shaped for
//! speed:
//! - two nonces per step in separate buffers: their compressions are
//!   independent, so the CPU overlaps them (measured here: one compression
//!   at a time runs at ~25 M/s, two independent ones at ~35 M/s);
//! - both SHA-256 input blocks are written in whole 16-byte lanes, the width
//!   SHA-NI reads them back with, so no load waits on a partial store (a
//!   store-forwarding stall costs ~10% of the loop otherwise);
//! - the result is compared as state words, without building hash bytes.
//!
//! [`HeaderHasher`]: lode_core::block::HeaderHasher

use super::PowTarget;
use lode_core::block::{BlockHeader, HEADER_SIZE};
use lode_core::Hash256;
use sha2::digest::generic_array::GenericArray;
use std::ops::Range;

/// One SHA-256 input block.
type Block64 = GenericArray<u8, sha2::digest::consts::U64>;

/// SHA-256 initial state.
const IV: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// Nonces hashed side by side.
const LANES: usize = 2;

/// Hashes one header for many nonces at two compressions each.
#[derive(Clone)]
pub struct NonceHasher {
    midstate: [u32; 8],
    /// Per lane: header bytes 64..88 and padding; the nonce is at 16..24.
    tail: [[Block64; 1]; LANES],
    /// Per lane: the second hash's only block (first digest, fixed padding).
    second: [[Block64; 1]; LANES],
}

impl NonceHasher {
    /// Caches the midstate of `header` (its nonce is ignored).
    pub fn new(header: &BlockHeader) -> NonceHasher {
        let bytes = header.to_bytes();
        let mut midstate = IV;
        sha2::compress256(&mut midstate, &[*Block64::from_slice(&bytes[..64])]);
        let mut tail = Block64::default();
        tail[..24].copy_from_slice(&bytes[64..]);
        tail[24] = 0x80;
        tail[56..].copy_from_slice(&((HEADER_SIZE as u64) * 8).to_be_bytes());
        let mut second = Block64::default();
        second[32] = 0x80;
        second[56..].copy_from_slice(&256u64.to_be_bytes());
        NonceHasher { midstate, tail: [[tail]; LANES], second: [[second]; LANES] }
    }

    /// First compression of lane `k` with `nonce`, into the lane's second block.
    #[inline(always)]
    fn first(&mut self, k: usize, nonce: u64) {
        // Bytes 16..32 of the tail: the nonce, then the 0x80 padding byte.
        lanes::put(&mut self.tail[k][0], 16, nonce.to_le_bytes(), 0x80u64.to_le_bytes());
        let mut s = self.midstate;
        sha2::compress256(&mut s, &self.tail[k]);
        let be = |i: usize| s[i].to_be_bytes();
        lanes::put4(&mut self.second[k][0], 0, [be(0), be(1), be(2), be(3)]);
        lanes::put4(&mut self.second[k][0], 16, [be(4), be(5), be(6), be(7)]);
    }

    /// Second compression of lane `k`: the block hash as state words (the
    /// hash is their big-endian bytes).
    #[inline(always)]
    fn finish(&self, k: usize) -> [u32; 8] {
        let mut out = IV;
        sha2::compress256(&mut out, &self.second[k]);
        out
    }

    /// The block hash with `nonce` in place.
    pub fn hash(&mut self, nonce: u64) -> Hash256 {
        self.first(0, nonce);
        let out = self.finish(0);
        let mut h = [0u8; 32];
        for (chunk, word) in h.chunks_exact_mut(4).zip(out) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        Hash256(h)
    }

    /// Whether state words `out` (of `nonce`) meet `target`: one compare of
    /// the top 64 bits settles all but a 2^-64 share of hashes.
    #[inline(always)]
    fn meets(&mut self, out: &[u32; 8], nonce: u64, target: &PowTarget) -> bool {
        let top = (u64::from(out[0]) << 32) | u64::from(out[1]);
        top <= target.top && target.is_met_by(&self.hash(nonce))
    }

    /// The first nonce in `nonces` whose hash meets `target`.
    #[inline]
    pub fn scan(&mut self, target: &PowTarget, nonces: Range<u64>) -> Option<u64> {
        let mut n = nonces.start;
        while nonces.end.saturating_sub(n) >= LANES as u64 {
            self.first(0, n);
            self.first(1, n + 1);
            let (a, b) = (self.finish(0), self.finish(1));
            if self.meets(&a, n, target) {
                return Some(n);
            }
            if self.meets(&b, n + 1, target) {
                return Some(n + 1);
            }
            n += LANES as u64;
        }
        (n..nonces.end).find(|&m| {
            let out = {
                self.first(0, m);
                self.finish(0)
            };
            self.meets(&out, m, target)
        })
    }
}

/// 16-byte stores: SSE2 (always present on x86-64) where available.
mod lanes {
    use super::Block64;

    /// Writes `lo` then `hi` at `at..at + 16` of `block` in one store.
    #[inline(always)]
    pub fn put(block: &mut Block64, at: usize, lo: [u8; 8], hi: [u8; 8]) {
        let [a0, a1, a2, a3, a4, a5, a6, a7] = lo;
        let [b0, b1, b2, b3, b4, b5, b6, b7] = hi;
        put4(block, at, [[a0, a1, a2, a3], [a4, a5, a6, a7], [b0, b1, b2, b3], [b4, b5, b6, b7]]);
    }

    /// Writes four 4-byte words at `at..at + 16` of `block` in one store.
    #[inline(always)]
    pub fn put4(block: &mut Block64, at: usize, w: [[u8; 4]; 4]) {
        assert!(at + 16 <= block.len());
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{__m128i, _mm_set_epi32, _mm_storeu_si128};
            let v = |b: [u8; 4]| i32::from_le_bytes(b);
            // SAFETY: SSE2 is part of the x86-64 baseline; the destination is
            // 16 in-bounds bytes (asserted above) and storeu has no alignment
            // requirement.
            unsafe {
                let lane = _mm_set_epi32(v(w[3]), v(w[2]), v(w[1]), v(w[0]));
                _mm_storeu_si128(block.as_mut_ptr().add(at).cast::<__m128i>(), lane);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        for (i, word) in w.iter().enumerate() {
            block[at + 4 * i..at + 4 * i + 4].copy_from_slice(word);
        }
    }
}
