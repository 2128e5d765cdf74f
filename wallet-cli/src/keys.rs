//! BIP-39 words and BIP-32 derivation over secp256k1.
//!
//! Keys live at `m/86'/1'/0'/<chain>/<index>`: the BIP-86 shape, since
//! outputs are locked to x-only (BIP-340) keys, with SLIP-44 coin type 1
//! ("any test network") for every Lode network; `<chain>` is 0 for
//! receiving addresses and 1 for change, as in BIP-44. The account path is
//! stored in the wallet file, so a later format can change it without
//! breaking older wallets.

use bip32::{ChildNumber, DerivationPath, XPrv};
use bip39::{Language, Mnemonic};
use lode_core::crypto::SecretKey;
use lode_core::Address;

/// The account every new wallet uses.
pub const DEFAULT_ACCOUNT_PATH: &str = "m/86'/1'/0'";

/// Wallet key errors.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Words that are not a valid English BIP-39 mnemonic.
    #[error("invalid mnemonic: {0}")]
    Mnemonic(String),
    /// A word count BIP-39 does not define.
    #[error("a mnemonic has 12, 15, 18, 21 or 24 words, not {0}")]
    WordCount(usize),
    /// The stored account path does not parse.
    #[error("invalid derivation path {0:?}")]
    Path(String),
    /// Derivation failed (an invalid child key: probability below 2^-127).
    #[error("key derivation failed: {0}")]
    Derive(String),
}

/// Which branch of the account a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Branch {
    /// Addresses handed out to payers.
    Receive,
    /// Change outputs of the wallet's own payments.
    Change,
}

impl Branch {
    /// Both branches.
    pub const ALL: [Branch; 2] = [Branch::Receive, Branch::Change];

    fn child(self) -> u32 {
        match self {
            Branch::Receive => 0,
            Branch::Change => 1,
        }
    }
}

/// A fresh mnemonic of `words` words from the operating system's randomness.
pub fn new_mnemonic(words: usize) -> Result<String, KeyError> {
    if !matches!(words, 12 | 15 | 18 | 21 | 24) {
        return Err(KeyError::WordCount(words));
    }
    let mut entropy = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut entropy);
    let len = words / 3 * 4;
    let m =
        Mnemonic::from_entropy_in(Language::English, &entropy[..len]).map_err(|e| KeyError::Mnemonic(e.to_string()))?;
    Ok(m.to_string())
}

/// Normalises words (case, spacing) and checks them, checksum included.
pub fn parse_mnemonic(words: &str) -> Result<String, KeyError> {
    let joined = words.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let count = joined.split(' ').filter(|w| !w.is_empty()).count();
    if !matches!(count, 12 | 15 | 18 | 21 | 24) {
        return Err(KeyError::WordCount(count));
    }
    let m = Mnemonic::parse_in(Language::English, joined.as_str()).map_err(|e| KeyError::Mnemonic(e.to_string()))?;
    Ok(m.to_string())
}

/// The BIP-39 seed of `words` with `passphrase` (PBKDF2-HMAC-SHA512 over
/// the NFKD-normalised words and "mnemonic" + passphrase).
pub fn seed(words: &str, passphrase: &str) -> Result<[u8; 64], KeyError> {
    let m = Mnemonic::parse_in(Language::English, words).map_err(|e| KeyError::Mnemonic(e.to_string()))?;
    Ok(m.to_seed(passphrase))
}

/// The keys of one wallet: the two branch keys of its account, derived once.
pub struct Keychain {
    receive: XPrv,
    change: XPrv,
}

impl Keychain {
    /// Derives the account's branches from the words and the BIP-39
    /// passphrase (the "25th word"; empty for none).
    pub fn from_mnemonic(words: &str, passphrase: &str, account_path: &str) -> Result<Keychain, KeyError> {
        Keychain::from_seed(&seed(words, passphrase)?, account_path)
    }

    /// Derives the account's branches from a BIP-39 seed.
    pub fn from_seed(seed: &[u8; 64], account_path: &str) -> Result<Keychain, KeyError> {
        let path: DerivationPath = account_path.parse().map_err(|_| KeyError::Path(account_path.to_string()))?;
        let account = XPrv::derive_from_path(seed, &path).map_err(|e| KeyError::Derive(e.to_string()))?;
        let branch = |b: Branch| {
            let child = ChildNumber::new(b.child(), false).map_err(|e| KeyError::Derive(e.to_string()))?;
            account.derive_child(child).map_err(|e| KeyError::Derive(e.to_string()))
        };
        Ok(Keychain { receive: branch(Branch::Receive)?, change: branch(Branch::Change)? })
    }

    /// The secret key at `index` of `branch`.
    pub fn key(&self, branch: Branch, index: u32) -> Result<SecretKey, KeyError> {
        let parent = match branch {
            Branch::Receive => &self.receive,
            Branch::Change => &self.change,
        };
        let child = ChildNumber::new(index, false).map_err(|e| KeyError::Derive(e.to_string()))?;
        let xprv = parent.derive_child(child).map_err(|e| KeyError::Derive(e.to_string()))?;
        let bytes: [u8; 32] = xprv.private_key().to_bytes().into();
        SecretKey::from_bytes(&bytes).map_err(|_| KeyError::Derive("child key out of range".into()))
    }

    /// The address of the key at `index` of `branch`.
    pub fn address(&self, branch: Branch, index: u32) -> Result<Address, KeyError> {
        Ok(Address::from_pubkey(&self.key(branch, index)?.public_key()))
    }
}

/// BIP-39's official English vectors (passphrase "TREZOR"): words and seed.
#[cfg(test)]
pub const TREZOR_VECTORS: [(&str, &str); 4] = [
    (
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04",
    ),
    (
        "legal winner thank year wave sausage worth useful legal winner thank yellow",
        "2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe1296106559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607",
    ),
    (
        "letter advice cage absurd amount doctor acoustic avoid letter advice cage above",
        "d71de856f81a8acc65e6fc851a38d4d7ec216fd0796d0a6827a3ad6ed5511a30fa280f12eb2e47ed2ac03b5c462a0358d18d69fe4f985ec81778c1b370b652a8",
    ),
    (
        "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong",
        "ac27495480225222079d7be181583751e86f571027b0497b5b5d11218e0a8a13332572917f0f8e5a589620c6f15b11c61dee327651a14c34e18231052e48c069",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    const ABANDON: &str =
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

    #[test]
    fn trezor_vectors_give_the_published_seeds() {
        for (words, want) in TREZOR_VECTORS {
            assert_eq!(hex::encode(seed(words, "TREZOR").unwrap()), want, "{words}");
        }
        assert_ne!(seed(ABANDON, "").unwrap(), seed(ABANDON, "TREZOR").unwrap());
    }

    #[test]
    fn bip39_vector() {
        // BIP-39 test vector: all-zero entropy, passphrase "TREZOR".
        let m = Mnemonic::parse_in(Language::English, ABANDON).unwrap();
        assert_eq!(
            hex::encode(m.to_seed("TREZOR")),
            "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"
        );
        assert_eq!(Mnemonic::from_entropy_in(Language::English, &[0u8; 16]).unwrap().to_string(), ABANDON);
    }

    /// Keys of "abandon … about" at the wallet's own path m/86'/1'/0',
    /// computed by an independent BIP-39/BIP-32 derivation (PBKDF2 and
    /// HMAC-SHA512 by hand, plain secp256k1 arithmetic) that reproduces the
    /// published BIP-86 keys at m/86'/0'/0'.
    const TESTNET_RECEIVE: [&str; 3] = [
        "55355ca83c973f1d97ce0e3843c85d78905af16b4dc531bc488e57212d230116",
        "3058679f6d60b87ef921d98a2a9a1f1e0779dae27bedbd1cdb2f147a07835ac9",
        "b68df382cad577d8304d5a8e640c3cb42d77c10016ab754caa4d6e68b6cb296d",
    ];
    const TESTNET_CHANGE_0: &str = "b10ac97f676cf1f3ccdacb0b78171282bbe94a94df143201700dc59bcc15f368";

    #[test]
    fn the_wallets_own_path_gives_independently_derived_keys() {
        let k = Keychain::from_mnemonic(ABANDON, "", DEFAULT_ACCOUNT_PATH).unwrap();
        for (i, want) in TESTNET_RECEIVE.iter().enumerate() {
            let key = k.key(Branch::Receive, i as u32).unwrap().public_key();
            assert_eq!(hex::encode(key.0), *want, "m/86'/1'/0'/0/{i}");
            assert_eq!(k.address(Branch::Receive, i as u32).unwrap(), Address::from_pubkey(&key));
        }
        assert_eq!(hex::encode(k.key(Branch::Change, 0).unwrap().public_key().0), TESTNET_CHANGE_0);
        // The seed the wallet derives from the words (no passphrase).
        let seed = "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc1\
                    9a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4";
        let seed: [u8; 64] = hex::decode(seed).unwrap().try_into().unwrap();
        let from_seed = Keychain::from_seed(&seed, DEFAULT_ACCOUNT_PATH).unwrap();
        assert_eq!(from_seed.address(Branch::Receive, 2).unwrap(), k.address(Branch::Receive, 2).unwrap());
    }

    #[test]
    fn bip32_vector_one() {
        let seed = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let path: DerivationPath = "m/0'/1/2'/2/1000000000".parse().unwrap();
        let xprv = XPrv::derive_from_path(&seed, &path).unwrap();
        assert_eq!(
            &*xprv.to_string(bip32::Prefix::XPRV),
            "xprvA41z7zogVVwxVSgdKUHDy1SKmdb533PjDz7J6N6mV6uS3ze1ai8FHa8kmHScGpWmj4WggLyQjgPie1rFSruoUihUZREPSL39UNdE3BBDu76"
        );
    }

    #[test]
    fn bip86_vectors_give_the_published_x_only_keys() {
        // BIP-86: "abandon … about", m/86'/0'/0'/0/0 and /0/1 internal keys.
        let k = Keychain::from_mnemonic(ABANDON, "", "m/86'/0'/0'").unwrap();
        assert_eq!(
            hex::encode(k.key(Branch::Receive, 0).unwrap().public_key().0),
            "cc8a4bc64d897bddc5fbc2f670f7a8ba0b386779106cf1223c6fc5d7cd6fc115"
        );
        assert_eq!(
            hex::encode(k.key(Branch::Receive, 1).unwrap().public_key().0),
            "83dfe85a3151d2517290da461fe2815591ef69f2b18a2ce63f01697a8b313145"
        );
    }

    #[test]
    fn branches_and_indexes_differ_and_are_deterministic() {
        let k = Keychain::from_mnemonic(ABANDON, "", DEFAULT_ACCOUNT_PATH).unwrap();
        let r0 = k.address(Branch::Receive, 0).unwrap();
        assert_eq!(
            Keychain::from_mnemonic(ABANDON, "", DEFAULT_ACCOUNT_PATH).unwrap().address(Branch::Receive, 0).unwrap(),
            r0
        );
        assert_ne!(k.address(Branch::Receive, 1).unwrap(), r0);
        assert_ne!(k.address(Branch::Change, 0).unwrap(), r0);
        // Coin type 1 is not the BIP-86 mainnet key.
        assert_ne!(
            hex::encode(k.key(Branch::Receive, 0).unwrap().public_key().0),
            "cc8a4bc64d897bddc5fbc2f670f7a8ba0b386779106cf1223c6fc5d7cd6fc115"
        );
        assert!(matches!(Keychain::from_mnemonic(ABANDON, "", "m/86'/x"), Err(KeyError::Path(_))));
    }

    #[test]
    fn restore_from_words_gives_the_same_keys() {
        for n in [12, 24] {
            let words = new_mnemonic(n).unwrap();
            assert_eq!(words.split(' ').count(), n);
            let messy = format!("  {}\n", words.to_uppercase().replace(' ', " \t "));
            let again = parse_mnemonic(&messy).unwrap();
            assert_eq!(again, words);
            let a = Keychain::from_mnemonic(&words, "", DEFAULT_ACCOUNT_PATH).unwrap();
            let b = Keychain::from_mnemonic(&again, "", DEFAULT_ACCOUNT_PATH).unwrap();
            for branch in Branch::ALL {
                assert_eq!(a.address(branch, 7).unwrap(), b.address(branch, 7).unwrap());
            }
        }
        assert!(matches!(new_mnemonic(13), Err(KeyError::WordCount(13))));
    }

    #[test]
    fn bad_words_are_refused() {
        assert!(matches!(parse_mnemonic("abandon abandon abandon"), Err(KeyError::WordCount(3))));
        // Right count, wrong checksum.
        let bad = ABANDON.replace("about", "abandon");
        assert!(matches!(parse_mnemonic(&bad), Err(KeyError::Mnemonic(_))));
        // A word outside the list.
        let unknown = ABANDON.replace("about", "lodestar");
        assert!(matches!(parse_mnemonic(&unknown), Err(KeyError::Mnemonic(_))));
    }
}
