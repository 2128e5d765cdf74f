//! Proof of work: compact difficulty bits, 256-bit targets and chain work.

use crate::hash::Hash256;
use crypto_bigint::{Encoding, U256};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;

/// Difficulty in Bitcoin's compact `nBits` form: a base-256 exponent in the
/// top byte and a 23-bit mantissa.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CompactTarget(pub u32);

/// Why compact bits do not describe a usable target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The sign bit is set with a non-zero mantissa.
    #[error("compact target {0:#010x} is negative")]
    Negative(u32),
    /// The target is zero: no hash could meet it.
    #[error("compact target {0:#010x} is zero")]
    Zero(u32),
    /// The value does not fit in 256 bits.
    #[error("compact target {0:#010x} overflows 256 bits")]
    Overflow(u32),
}

/// A 256-bit target: a block hash read as a big-endian integer must not exceed it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target(pub U256);

/// Expected number of hashes to find a block: 2^256 / (target + 1), summed
/// along a chain to compare branches.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Work(pub U256);

impl CompactTarget {
    /// Expands to a full target, rejecting negative, zero and overflowing forms.
    pub fn to_target(self) -> Result<Target, CompactError> {
        let bits = self.0;
        let size = (bits >> 24) as usize;
        let mantissa = bits & 0x007f_ffff;
        if mantissa != 0 && bits & 0x0080_0000 != 0 {
            return Err(CompactError::Negative(bits));
        }
        if mantissa != 0 && (size > 34 || (mantissa > 0xff && size > 33) || (mantissa > 0xffff && size > 32)) {
            return Err(CompactError::Overflow(bits));
        }
        let value = if size <= 3 {
            U256::from_u32(mantissa >> (8 * (3 - size)))
        } else {
            U256::from_u32(mantissa).shl_vartime(8 * (size - 3))
        };
        if value == U256::ZERO {
            return Err(CompactError::Zero(bits));
        }
        Ok(Target(value))
    }
}

impl Target {
    /// The compact form (rounds the target down to 23 bits of mantissa).
    pub fn to_compact(&self) -> CompactTarget {
        let mut size = self.0.bits_vartime().div_ceil(8);
        let mut compact: u32 = if size <= 3 {
            let low = self.0.as_words()[0] as u32;
            low << (8 * (3 - size))
        } else {
            self.0.shr_vartime(8 * (size - 3)).as_words()[0] as u32
        };
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        CompactTarget(compact | ((size as u32) << 24))
    }

    /// Whether `hash`, read big-endian, is at or below this target.
    pub fn is_met_by(&self, hash: &Hash256) -> bool {
        U256::from_be_bytes(hash.0).cmp_vartime(&self.0) != Ordering::Greater
    }

    /// Work a block at this target proves.
    pub fn work(&self) -> Work {
        // 2^256 / (t + 1) == (~t / (t + 1)) + 1, which stays inside 256 bits.
        let denom = self.0.wrapping_add(&U256::ONE);
        if denom == U256::ZERO {
            return Work(U256::ONE);
        }
        Work(self.0.not().wrapping_div(&denom).wrapping_add(&U256::ONE))
    }

    /// Big-endian bytes.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0.to_be_bytes()
    }
}

impl Work {
    /// No work.
    pub const ZERO: Work = Work(U256::ZERO);

    /// Sum, saturating at 2^256 - 1 (unreachable with real hash power).
    pub fn saturating_add(&self, other: &Work) -> Work {
        Work(self.0.saturating_add(&other.0))
    }

    /// Big-endian bytes, for storage and display.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0.to_be_bytes()
    }

    /// From big-endian bytes.
    pub fn from_be_bytes(bytes: [u8; 32]) -> Work {
        Work(U256::from_be_bytes(bytes))
    }

    /// Lower-case hex of the big-endian value, leading zeros trimmed.
    pub fn to_hex(&self) -> String {
        let s = hex::encode(self.to_be_bytes());
        let t = s.trim_start_matches('0');
        if t.is_empty() {
            "0".into()
        } else {
            t.into()
        }
    }

    /// The work as a float (for difficulty display and hash-rate estimates).
    pub fn as_f64(&self) -> f64 {
        self.0.as_words().iter().rev().fold(0.0, |acc, w| acc * 18446744073709551616.0 + *w as f64)
    }
}

impl Serialize for Work {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Work {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let digits = text.strip_prefix("0x").unwrap_or(&text);
        if digits.is_empty() || digits.len() > 64 {
            return Err(serde::de::Error::custom("work must be 1 to 64 hex digits"));
        }
        let padded = format!("{digits:0>64}");
        let bytes = hex::decode(&padded).map_err(|e| serde::de::Error::custom(format!("work is not hex: {e}")))?;
        let mut be = [0u8; 32];
        be.copy_from_slice(&bytes);
        Ok(Work::from_be_bytes(be))
    }
}

impl PartialOrd for Work {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Work {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp_vartime(&other.0)
    }
}

impl fmt::Debug for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Work(0x{})", self.to_hex())
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", hex::encode(self.to_be_bytes()))
    }
}

impl fmt::Display for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompactTarget({:08x})", self.0)
    }
}

impl Serialize for CompactTarget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&format!("{:08x}", self.0))
        } else {
            s.serialize_u32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for CompactTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            u32::from_str_radix(&s, 16).map(CompactTarget).map_err(serde::de::Error::custom)
        } else {
            Ok(CompactTarget(u32::deserialize(d)?))
        }
    }
}

/// Difficulty as a multiple of the easiest target `limit` (1.0 at the limit).
pub fn difficulty(bits: CompactTarget, limit: CompactTarget) -> f64 {
    match (bits.to_target(), limit.to_target()) {
        (Ok(t), Ok(l)) => t.work().as_f64() / l.work().as_f64(),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_round_trips_bitcoin_values() {
        for bits in [0x1d00ffffu32, 0x207fffff, 0x1b0404cb, 0x03123456, 0x05009234, 0x04123456] {
            let t = CompactTarget(bits).to_target().unwrap();
            assert_eq!(t.to_compact(), CompactTarget(bits), "{bits:#x}");
        }
    }

    #[test]
    fn compact_rejects_negative_zero_overflow() {
        assert_eq!(CompactTarget(0x04923456).to_target(), Err(CompactError::Negative(0x04923456)));
        assert_eq!(CompactTarget(0x00000000).to_target(), Err(CompactError::Zero(0)));
        assert_eq!(CompactTarget(0x01003456).to_target(), Err(CompactError::Zero(0x01003456)));
        assert_eq!(CompactTarget(0xff123456).to_target(), Err(CompactError::Overflow(0xff123456)));
        assert_eq!(CompactTarget(0x21010000).to_target(), Err(CompactError::Overflow(0x21010000)));
    }

    #[test]
    fn work_of_bitcoin_genesis_target() {
        // Bitcoin's genesis (0x1d00ffff) proves 0x100010001 hashes of work.
        let w = CompactTarget(0x1d00ffff).to_target().unwrap().work();
        assert_eq!(w.to_hex(), "100010001");
        let max = Target(U256::MAX).work();
        assert_eq!(max, Work(U256::ONE));
    }

    #[test]
    fn hash_meets_target_big_endian() {
        let t = CompactTarget(0x1f00ffff).to_target().unwrap();
        let mut h = [0u8; 32];
        h[2] = 0xff;
        assert!(t.is_met_by(&Hash256(h)));
        h[1] = 1;
        assert!(!t.is_met_by(&Hash256(h)));
    }
}
