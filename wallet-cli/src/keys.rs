//! BIP-39 words and BIP-32 derivation over secp256k1. Receiving keys live
//! at m/86'/1'/0'/0/i: the BIP-86 shape, since outputs are locked to
//! x-only (BIP-340) keys.

use bip39::{Language, Mnemonic};
use lode_core::crypto::SecretKey;
use lode_core::Address;

/// Wallet key errors.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Words that are not a valid English BIP-39 mnemonic.
    #[error("invalid mnemonic: {0}")]
    Mnemonic(String),
    /// Derivation failed (astronomically unlikely invalid child key).
    #[error("key derivation failed: {0}")]
    Derive(String),
}

/// A fresh 12-word mnemonic from the operating system's randomness.
pub fn new_mnemonic() -> Result<String, KeyError> {
    let mut entropy = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut entropy);
    let m = Mnemonic::from_entropy_in(Language::English, &entropy).map_err(|e| KeyError::Mnemonic(e.to_string()))?;
    Ok(m.to_string())
}

/// Normalises and checks words (checksum included).
pub fn parse_mnemonic(words: &str) -> Result<String, KeyError> {
    let joined = words.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let m = Mnemonic::parse_in(Language::English, &joined).map_err(|e| KeyError::Mnemonic(e.to_string()))?;
    Ok(m.to_string())
}

/// The 64-byte BIP-39 seed of the words (no extra passphrase).
pub fn seed(words: &str) -> Result<[u8; 64], KeyError> {
    let m = Mnemonic::parse_in(Language::English, words).map_err(|e| KeyError::Mnemonic(e.to_string()))?;
    Ok(m.to_seed(""))
}

/// The receiving key at index `i`.
pub fn derive(seed: &[u8; 64], i: u32) -> Result<SecretKey, KeyError> {
    let path: bip32::DerivationPath =
        format!("m/86'/1'/0'/0/{i}").parse().map_err(|e: bip32::Error| KeyError::Derive(e.to_string()))?;
    let xprv = bip32::XPrv::derive_from_path(seed, &path).map_err(|e| KeyError::Derive(e.to_string()))?;
    let bytes: [u8; 32] = xprv.private_key().to_bytes().into();
    SecretKey::from_bytes(&bytes).map_err(|e| KeyError::Derive(e.to_string()))
}

/// The address of key `i`.
pub fn address(seed: &[u8; 64], i: u32) -> Result<Address, KeyError> {
    Ok(Address::from_pubkey(&derive(seed, i)?.public_key()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bip39_vector_and_deterministic_derivation() {
        // BIP-39 test vector: all-zero entropy.
        let words = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
        let s = seed(words).unwrap();
        let m = Mnemonic::parse_in(Language::English, words).unwrap();
        assert_eq!(hex::encode(m.to_seed("TREZOR")), "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04");
        let a0 = address(&s, 0).unwrap();
        assert_eq!(address(&s, 0).unwrap(), a0);
        assert_ne!(address(&s, 1).unwrap(), a0);
    }

    #[test]
    fn restore_from_words_gives_the_same_keys() {
        let words = new_mnemonic().unwrap();
        assert_eq!(words.split(' ').count(), 12);
        let messy = format!("  {}  ", words.to_uppercase().replace(' ', "   "));
        let again = parse_mnemonic(&messy).unwrap();
        assert_eq!(again, words);
        assert_eq!(address(&seed(&words).unwrap(), 3).unwrap(), address(&seed(&again).unwrap(), 3).unwrap());
        assert!(parse_mnemonic("abandon abandon abandon").is_err());
        let mut bad: Vec<&str> = words.split(' ').collect();
        bad.swap(0, 1);
        if bad.join(" ") != words {
            // A swapped pair almost always breaks the checksum.
            let _ = parse_mnemonic(&bad.join(" "));
        }
    }
}
