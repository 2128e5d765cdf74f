//! Addresses: the 20-byte hash of an x-only public key, written in bech32m
//! with the chain spec's human-readable prefix.

use crate::crypto::PublicKey;
use crate::hash::sha256d;
use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The 20-byte public-key hash an output is locked to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Address(pub [u8; 20]);

/// Why a string is not an address of this network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not bech32m, or the checksum does not match (a typo).
    #[error("not a valid bech32m address (bad characters or checksum): {0}")]
    Malformed(String),
    /// A valid address of another network.
    #[error("address is for network prefix {found:?}, expected {expected:?}")]
    WrongNetwork {
        /// The prefix this network uses.
        expected: String,
        /// The prefix the address carries.
        found: String,
    },
    /// The payload is not 20 bytes.
    #[error("address payload is {0} bytes, expected 20")]
    WrongLength(usize),
    /// The chain spec's prefix is not a valid bech32 prefix.
    #[error("invalid address prefix {0:?}")]
    BadPrefix(String),
}

impl Address {
    /// The address that `pubkey` can spend from.
    pub fn from_pubkey(pubkey: &PublicKey) -> Address {
        let h = sha256d(&pubkey.0);
        let mut a = [0u8; 20];
        a.copy_from_slice(&h.0[..20]);
        Address(a)
    }

    /// bech32m text with the network's prefix.
    pub fn encode(&self, prefix: &str) -> Result<String, AddressError> {
        let hrp = Hrp::parse(prefix).map_err(|_| AddressError::BadPrefix(prefix.to_string()))?;
        bech32::encode::<Bech32m>(hrp, &self.0).map_err(|_| AddressError::BadPrefix(prefix.to_string()))
    }

    /// Parses bech32m text, requiring the network's prefix.
    pub fn decode(s: &str, prefix: &str) -> Result<Address, AddressError> {
        let short: String = s.chars().take(100).collect();
        let checked = CheckedHrpstring::new::<Bech32m>(s).map_err(|_| AddressError::Malformed(short))?;
        let found = checked.hrp().to_lowercase();
        if found != prefix.to_lowercase() {
            return Err(AddressError::WrongNetwork { expected: prefix.to_string(), found });
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let arr: [u8; 20] = bytes.as_slice().try_into().map_err(|_| AddressError::WrongLength(bytes.len()))?;
        Ok(Address(arr))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_network_and_checksum() {
        let a = Address([7u8; 20]);
        let s = a.encode("lrt").unwrap();
        assert!(s.starts_with("lrt1"));
        assert_eq!(Address::decode(&s, "lrt"), Ok(a));
        assert!(matches!(Address::decode(&s, "ldev"), Err(AddressError::WrongNetwork { .. })));
        // Flip one character: the checksum catches it.
        let mut chars: Vec<char> = s.chars().collect();
        let i = chars.len() - 3;
        chars[i] = if chars[i] == 'q' { 'p' } else { 'q' };
        let typo: String = chars.into_iter().collect();
        assert!(matches!(Address::decode(&typo, "lrt"), Err(AddressError::Malformed(_))));
    }
}
