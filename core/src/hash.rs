//! 32-byte hashes and the double SHA-256 used for every consensus identifier.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// A 32-byte hash, stored and displayed in the byte order SHA-256 produced it.
///
/// Unlike Bitcoin there is no byte reversal anywhere: the hex string is the
/// digest, and proof of work reads the digest as a big-endian integer, so a
/// block hash meeting a hard target shows its leading zeros in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash256(pub [u8; 32]);

impl Hash256 {
    /// The all-zero hash (the previous-block hash of genesis, the null outpoint).
    pub const ZERO: Hash256 = Hash256([0u8; 32]);

    /// Raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether every byte is zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0u8; 32]
    }

    /// Parses exactly 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, HashParseError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| HashParseError(s.chars().take(80).collect()))?;
        Ok(Hash256(out))
    }

    /// Lower-case hex of the digest bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// A string that is not a 64-character hex hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a 64-character hex hash: {0:?}")]
pub struct HashParseError(pub String);

impl FromStr for Hash256 {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hash256::from_hex(s)
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({})", self.to_hex())
    }
}

impl Serialize for Hash256 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Hash256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Hash256::from_hex(&s).map_err(serde::de::Error::custom)
        } else {
            Ok(Hash256(<[u8; 32]>::deserialize(d)?))
        }
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Double SHA-256 of `data`: the hash of every block header and transaction.
pub fn sha256d(data: &[u8]) -> Hash256 {
    Hash256(Sha256::digest(Sha256::digest(data)).into())
}

/// Double SHA-256 over several slices without concatenating them first.
pub fn sha256d_parts(parts: &[&[u8]]) -> Hash256 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Hash256(Sha256::digest(h.finalize()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256d_of_empty_matches_known_vector() {
        // sha256(sha256("")), a widely published value.
        assert_eq!(sha256d(b"").to_hex(), "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456");
    }

    #[test]
    fn hex_round_trip_and_rejects_bad_input() {
        let h = sha256d(b"lode");
        assert_eq!(Hash256::from_hex(&h.to_hex()), Ok(h));
        assert!(Hash256::from_hex("abc").is_err());
        assert!(Hash256::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(serde_json::to_string(&h).unwrap(), format!("\"{}\"", h));
    }

    #[test]
    fn parts_equal_concatenation() {
        assert_eq!(sha256d_parts(&[b"ab", b"cd"]), sha256d(b"abcd"));
    }
}
