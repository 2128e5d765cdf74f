//! Lode's fuzz targets as ordinary functions of bytes. The libFuzzer
//! binaries in `fuzz/fuzz_targets` and `fuzz/node/fuzz_targets` are
//! one-line wrappers around them; `cargo test -p lode-fuzz` replays the
//! committed corpus and every regression input through the same functions,
//! so a crash the fuzzer found stays fixed without a fuzzer.

pub mod alloc;
pub mod decoders;
pub mod difficulty;
pub mod validation;

#[cfg(feature = "node")]
pub mod chain_model;
#[cfg(feature = "node")]
pub mod p2p_decoders;
#[cfg(feature = "node")]
pub mod p2p_service;
#[cfg(feature = "node")]
pub mod rpc;

/// The wallet file's decoder, compiled from wallet-cli's own source: the
/// wallet is a binary crate with no library to link.
#[path = "../../../wallet-cli/src/file.rs"]
#[allow(dead_code, clippy::all)]
pub mod wallet_file;

/// What the wallet source reaches for through `crate::bounded` (its capped
/// file reads), compiled from wallet-cli's own source too.
#[path = "../../../wallet-cli/src/bounded.rs"]
#[allow(dead_code, clippy::all)]
mod bounded;

/// What the wallet source reaches for through `crate::keys` (the default
/// account path: kept equal to wallet-cli's by the replay test).
mod keys {
    pub const DEFAULT_ACCOUNT_PATH: &str = "m/86'/1'/0'";
}

/// What the wallet source reaches for through `crate::view`.
mod view {
    pub const GAP_LIMIT: u32 = 20;
}

/// A fuzz target: a name (its corpus folder) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target this build has.
pub fn targets() -> Vec<Target> {
    #[allow(unused_mut)]
    let mut t: Vec<Target> =
        vec![("decoders", decoders::run), ("difficulty", difficulty::run), ("validation", validation::run)];
    #[cfg(feature = "node")]
    t.extend([
        ("p2p_decoders", p2p_decoders::run as fn(&[u8])),
        ("rpc", rpc::run),
        ("chain_model", chain_model::run),
        ("p2p_service", p2p_service::run),
    ]);
    t
}
