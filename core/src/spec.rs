//! Network definitions loaded from `chain-spec/*.json`.

use crate::amount::{Amount, Height, MAX_MONEY};
use crate::block::{Block, BlockHeader, BLOCK_VERSION};
use crate::hash::Hash256;
use crate::pow::{CompactError, CompactTarget, Work};
use crate::subsidy::total_supply_at;
use crate::tx::{Transaction, MAX_COINBASE_EXTRA};
use serde::{Deserialize, Serialize};

/// How the difficulty moves from block to block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "lowercase")]
pub enum DifficultyAlgorithm {
    /// Every block carries `pow_limit` (regtest).
    Fixed,
    /// LWMA-1 over the last `window` solve times.
    Lwma {
        /// Number of solve times averaged.
        window: u32,
    },
}

/// The genesis block's parameters and its expected hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisSpec {
    /// Header timestamp.
    pub time: u64,
    /// Header bits.
    pub bits: CompactTarget,
    /// Header nonce (found by mining the genesis once).
    pub nonce: u64,
    /// Text in the genesis coinbase.
    pub message: String,
    /// The hash the above must produce; a spec that disagrees is refused.
    pub hash: Hash256,
}

/// One network's consensus parameters and defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// Network name (`regtest`, `devnet`, `testnet`).
    pub name: String,
    /// bech32m human-readable prefix of addresses.
    pub address_prefix: String,
    /// Short id that, with the genesis hash, names p2p protocols and topics.
    pub network_id: String,
    /// The genesis block.
    pub genesis: GenesisSpec,
    /// Intended seconds between blocks.
    pub target_spacing_secs: u64,
    /// Retargeting rule.
    pub difficulty: DifficultyAlgorithm,
    /// The easiest target any block may have.
    pub pow_limit: CompactTarget,
    /// Subsidy of the first blocks, in base units.
    pub initial_subsidy: Amount,
    /// Blocks between subsidy halvings.
    pub halving_interval: u32,
    /// Confirmations before a coinbase output may be spent.
    pub coinbase_maturity: u32,
    /// Largest encoded block in bytes.
    pub max_block_size: usize,
    /// How far past local time a block's timestamp may be (seconds); with a
    /// retarget at most spacing × window / 20 (see [`max_future_limit`]).
    pub max_future_block_secs: u64,
    /// Default p2p TCP port.
    pub default_p2p_port: u16,
    /// Default JSON-RPC port.
    pub default_rpc_port: u16,
    /// Multiaddrs of well-known peers (may be empty).
    pub bootnodes: Vec<String>,
    /// Cumulative work (hex) below which a header chain is not stored:
    /// header sync checks such a chain without keeping it (0 on test
    /// networks that start from nothing).
    #[serde(default)]
    pub minimum_chain_work: Work,
}

/// Why a chain spec was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Not JSON of the expected shape.
    #[error("chain spec is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    /// The genesis parameters do not hash to the stated genesis hash.
    #[error("genesis block hashes to {computed}, but the spec says {stated}")]
    GenesisHashMismatch {
        /// The hash written in the spec.
        stated: Hash256,
        /// The hash of the block the spec describes.
        computed: Hash256,
    },
    /// The genesis block does not meet its own target.
    #[error("genesis block does not meet its own proof-of-work target")]
    GenesisPow,
    /// Bits that do not describe a target.
    #[error("invalid {field}: {source}")]
    Bits {
        /// Which field.
        field: &'static str,
        /// The decoding problem.
        source: CompactError,
    },
    /// A field outside its allowed range.
    #[error("invalid {field}: {why}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A name that is neither a built-in network nor usable.
    #[error("unknown chain {0:?}: expected regtest, devnet, testnet or a path to a spec file")]
    UnknownChain(String),
}

/// With a per-block retarget the future-time limit may be at most
/// `spacing × window / 20`: LWMA reads every solve time, so a miner stamping
/// its blocks as far ahead as allowed borrows that much time from the window
/// and, with a limit near the window's length, can ratchet the difficulty up
/// (LWMA-1's author recommends about `T·N/20`; see docs/protocol.md).
pub const FUTURE_LIMIT_WINDOW_DIVISOR: u64 = 20;

/// The largest `max_future_block_secs` a retargeting spec with this spacing
/// and window may use (rounded down).
pub fn max_future_limit(target_spacing_secs: u64, window: u32) -> u64 {
    target_spacing_secs.saturating_mul(u64::from(window)) / FUTURE_LIMIT_WINDOW_DIVISOR
}

const REGTEST_JSON: &str = include_str!("../../chain-spec/regtest.json");
const DEVNET_JSON: &str = include_str!("../../chain-spec/devnet.json");
const TESTNET_JSON: &str = include_str!("../../chain-spec/testnet.json");

impl ChainSpec {
    /// Parses and checks a spec: field ranges, genesis proof of work and hash.
    pub fn from_json(text: &str) -> Result<ChainSpec, SpecError> {
        let spec: ChainSpec = serde_json::from_str(text)?;
        spec.validate()?;
        Ok(spec)
    }

    /// A built-in network by name.
    pub fn builtin(name: &str) -> Result<ChainSpec, SpecError> {
        let text = match name {
            "regtest" => REGTEST_JSON,
            "devnet" => DEVNET_JSON,
            "testnet" => TESTNET_JSON,
            other => return Err(SpecError::UnknownChain(other.to_string())),
        };
        ChainSpec::from_json(text)
    }

    /// The built-in regtest spec.
    pub fn regtest() -> ChainSpec {
        Self::builtin_checked("regtest")
    }

    /// The built-in devnet spec.
    pub fn devnet() -> ChainSpec {
        Self::builtin_checked("devnet")
    }

    /// The built-in testnet spec.
    pub fn testnet() -> ChainSpec {
        Self::builtin_checked("testnet")
    }

    fn builtin_checked(name: &str) -> ChainSpec {
        // The built-in files are compiled in and covered by tests; a broken
        // one is a build defect, not bad input.
        Self::builtin(name).unwrap_or_else(|e| panic!("built-in {name} spec is invalid: {e}"))
    }

    /// The genesis block described by the spec.
    pub fn genesis_block(&self) -> Block {
        let coinbase = Transaction::coinbase(Height::GENESIS, self.genesis.message.as_bytes().to_vec(), Vec::new());
        let merkle_root = coinbase.txid();
        Block {
            header: BlockHeader {
                version: BLOCK_VERSION,
                prev_hash: Hash256::ZERO,
                merkle_root,
                time: self.genesis.time,
                bits: self.genesis.bits,
                nonce: self.genesis.nonce,
            },
            transactions: vec![coinbase],
        }
    }

    /// The genesis hash (as stated and verified at load).
    pub fn genesis_hash(&self) -> Hash256 {
        self.genesis.hash
    }

    fn validate(&self) -> Result<(), SpecError> {
        let field = |field: &'static str, why: &str| Err(SpecError::Field { field, why: why.to_string() });
        // The name is the default data directory's last folder: anything
        // but one plain path component (`..`, `/`) would move it elsewhere.
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.name.is_empty() || self.name.len() > 64 || !self.name.chars().all(plain) {
            return field("name", "must be 1 to 64 ASCII letters, digits, '-' or '_'");
        }
        if bech32::Hrp::parse(&self.address_prefix).is_err() || self.address_prefix.is_empty() {
            return field("address_prefix", "not a valid bech32 prefix");
        }
        if self.network_id.is_empty() || !self.network_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return field("network_id", "must be non-empty ASCII letters, digits or '-'");
        }
        if self.target_spacing_secs == 0 {
            return field("target_spacing_secs", "must be positive");
        }
        if let DifficultyAlgorithm::Lwma { window } = self.difficulty {
            if !(2..=1000).contains(&window) {
                return field("difficulty.window", "must be between 2 and 1000");
            }
            let max = max_future_limit(self.target_spacing_secs, window);
            if self.max_future_block_secs > max {
                return Err(SpecError::Field {
                    field: "max_future_block_secs",
                    why: format!(
                        "{} s is too far ahead for a per-block retarget: at most spacing x window / {} = {max} s",
                        self.max_future_block_secs, FUTURE_LIMIT_WINDOW_DIVISOR
                    ),
                });
            }
        }
        if self.halving_interval == 0 {
            return field("halving_interval", "must be positive");
        }
        if !self.initial_subsidy.is_valid() || total_supply_at(self, Height(u32::MAX)) > MAX_MONEY {
            return field("initial_subsidy", "the subsidy schedule would exceed MAX_MONEY");
        }
        if self.max_block_size < 1000 || self.max_block_size > 32 * 1024 * 1024 {
            return field("max_block_size", "must be between 1000 bytes and 32 MiB");
        }
        if self.genesis.message.len() > MAX_COINBASE_EXTRA {
            return field("genesis.message", "longer than the coinbase extra-data limit");
        }
        let limit = self.pow_limit.to_target().map_err(|source| SpecError::Bits { field: "pow_limit", source })?;
        let genesis_target =
            self.genesis.bits.to_target().map_err(|source| SpecError::Bits { field: "genesis.bits", source })?;
        if genesis_target.0 > limit.0 {
            return field("genesis.bits", "easier than pow_limit");
        }
        let genesis = self.genesis_block();
        let computed = genesis.hash();
        if !genesis_target.is_met_by(&computed) {
            return Err(SpecError::GenesisPow);
        }
        if computed != self.genesis.hash {
            return Err(SpecError::GenesisHashMismatch { stated: self.genesis.hash, computed });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_specs_load() {
        for name in ["regtest", "devnet", "testnet"] {
            let spec = ChainSpec::builtin(name).unwrap();
            assert_eq!(spec.name, name);
            assert_eq!(spec.genesis_block().hash(), spec.genesis_hash());
        }
        assert!(matches!(ChainSpec::builtin("mainnet"), Err(SpecError::UnknownChain(_))));
    }

    #[test]
    fn wrong_genesis_hash_is_refused() {
        let text = REGTEST_JSON.replace(&ChainSpec::regtest().genesis.hash.to_hex(), &"00".repeat(32));
        assert!(matches!(ChainSpec::from_json(&text), Err(SpecError::GenesisHashMismatch { .. })));
    }

    #[test]
    fn changed_genesis_message_is_refused() {
        let spec = ChainSpec::regtest();
        let mut v: serde_json::Value = serde_json::from_str(REGTEST_JSON).unwrap();
        v["genesis"]["message"] = serde_json::Value::String(format!("{} (edited)", spec.genesis.message));
        let err = ChainSpec::from_json(&v.to_string()).unwrap_err();
        assert!(matches!(err, SpecError::GenesisHashMismatch { .. } | SpecError::GenesisPow), "{err}");
    }

    #[test]
    fn retargeting_specs_keep_the_future_limit_small_next_to_the_window() {
        assert_eq!(ChainSpec::testnet().max_future_block_secs, 180, "60 s x 60 / 20");
        assert_eq!(ChainSpec::devnet().max_future_block_secs, 11, "5 s x 45 / 20, rounded down");
        for (json, old_limit) in [(TESTNET_JSON, 7200), (DEVNET_JSON, 7200), (TESTNET_JSON, 181), (DEVNET_JSON, 12)] {
            let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
            v["max_future_block_secs"] = old_limit.into();
            assert!(
                matches!(
                    ChainSpec::from_json(&v.to_string()),
                    Err(SpecError::Field { field: "max_future_block_secs", .. })
                ),
                "{old_limit} accepted"
            );
        }
        // Regtest has no retarget: its limit may stay large, so a burst of
        // thousands of blocks a second (each one second past the median
        // time) stays acceptable.
        let mut v: serde_json::Value = serde_json::from_str(REGTEST_JSON).unwrap();
        v["max_future_block_secs"] = 7200.into();
        assert!(ChainSpec::from_json(&v.to_string()).is_ok());
    }

    #[test]
    fn garbage_and_bad_fields_are_refused() {
        assert!(matches!(ChainSpec::from_json("{"), Err(SpecError::Json(_))));
        let mut v: serde_json::Value = serde_json::from_str(REGTEST_JSON).unwrap();
        v["halving_interval"] = 0.into();
        assert!(matches!(
            ChainSpec::from_json(&v.to_string()),
            Err(SpecError::Field { field: "halving_interval", .. })
        ));
        let mut v: serde_json::Value = serde_json::from_str(REGTEST_JSON).unwrap();
        v["pow_limit"] = "04923456".into();
        assert!(matches!(ChainSpec::from_json(&v.to_string()), Err(SpecError::Bits { .. })));
        let mut v: serde_json::Value = serde_json::from_str(REGTEST_JSON).unwrap();
        v["surprise"] = 1.into();
        assert!(matches!(ChainSpec::from_json(&v.to_string()), Err(SpecError::Json(_))));
    }

    #[test]
    fn a_name_that_is_not_one_plain_folder_name_is_refused() {
        for name in ["../../x", "a/b", "..", "", "a b", &"x".repeat(65)] {
            let mut v: serde_json::Value = serde_json::from_str(REGTEST_JSON).unwrap();
            v["name"] = name.into();
            assert!(
                matches!(ChainSpec::from_json(&v.to_string()), Err(SpecError::Field { field: "name", .. })),
                "{name:?} accepted"
            );
        }
        let mut v: serde_json::Value = serde_json::from_str(REGTEST_JSON).unwrap();
        v["name"] = "my-test_net2".into();
        assert!(ChainSpec::from_json(&v.to_string()).is_ok());
    }
}
