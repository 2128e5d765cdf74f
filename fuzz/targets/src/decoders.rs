//! Decoders of everything Lode reads from outside that lode-core (and the
//! wallet) owns: a value that decodes re-encodes to exactly the input (one
//! encoding per value), or the input is refused; never a panic; the bytes
//! a binary decoder holds stay within a small multiple of the input.
//!
//! The first input byte picks the decoder, the rest is its input. JSON
//! decoders (chain spec, wallet contents) cannot be byte-canonical:
//! whitespace and key order are free. For them the check is that decoding
//! the re-encoding gives the same value and re-encoding is a fixed point.

use crate::alloc::bounded;
use crate::wallet_file::{self, Kdf, WalletData};
use lode_core::amount::{Amount, COIN, MAX_MONEY};
use lode_core::block::{Block, BlockHeader, HEADER_SIZE};
use lode_core::codec::{Decode, Encode};
use lode_core::validation::check_block;
use lode_core::{Address, ChainSpec, Transaction};
use std::sync::OnceLock;

/// Binary decoders may hold this many bytes per input byte (a decoded
/// input is ~3.5x its smallest encoding; vectors round up).
const BINARY_FACTOR: usize = 8;

/// The decoders, by selector byte (`data[0] % len`).
pub const DECODERS: [&str; 8] =
    ["transaction", "header", "block", "address", "amount", "chain_spec", "wallet_file", "wallet_contents"];

fn regtest() -> &'static ChainSpec {
    static SPEC: OnceLock<ChainSpec> = OnceLock::new();
    SPEC.get_or_init(ChainSpec::regtest)
}

/// The fuzz entry point.
pub fn run(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else { return };
    match DECODERS[selector as usize % DECODERS.len()] {
        "transaction" => transaction(input),
        "header" => header(input),
        "block" => block(input),
        "address" => address(input),
        "amount" => amount(input),
        "chain_spec" => chain_spec(input),
        "wallet_file" => wallet_file(input),
        _ => wallet_contents(input),
    }
}

/// Transaction: canonical, and `encoded_size` agrees with the encoding.
pub fn transaction(input: &[u8]) {
    let limit = regtest().max_block_size;
    let Ok(tx) = bounded("transaction", input.len(), BINARY_FACTOR, || Transaction::decode_all(input, limit)) else {
        return;
    };
    assert_eq!(tx.encode(), input, "transaction re-encodes differently");
    assert_eq!(tx.encoded_size(), input.len(), "encoded_size disagrees with the encoding");
    let _ = lode_core::validation::check_transaction(&tx, limit);
}

/// Header: every 88 bytes are a header, and only 88 bytes are.
pub fn header(input: &[u8]) {
    match BlockHeader::decode_all(input, HEADER_SIZE) {
        Ok(h) => {
            assert_eq!(h.encode(), input);
            assert_eq!(h.to_bytes().as_slice(), input);
            let _ = lode_core::validation::check_header(&h, regtest());
        }
        Err(_) => assert_ne!(input.len(), HEADER_SIZE, "a full-length header was refused"),
    }
}

/// Block: canonical, sized right, and the context-free rules never panic.
pub fn block(input: &[u8]) {
    let spec = regtest();
    let Ok(b) = bounded("block", input.len(), BINARY_FACTOR, || Block::decode_all(input, spec.max_block_size)) else {
        return;
    };
    assert_eq!(b.encode(), input, "block re-encodes differently");
    assert_eq!(b.encoded_size(), input.len(), "encoded_size disagrees with the encoding");
    let _ = check_block(&b, spec);
}

/// Address text: decodes only with the network's prefix, and encodes back
/// to the input (bech32 allows an all-upper-case form, which encodes lower).
pub fn address(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else { return };
    let prefix = &regtest().address_prefix;
    let Ok(a) = bounded("address", input.len(), 64, || Address::decode(text, prefix)) else { return };
    let back = a.encode(prefix).expect("the regtest prefix encodes");
    assert!(back == text || back == text.to_lowercase(), "address {text:?} re-encodes as {back:?}");
    assert_eq!(Address::decode(&back, prefix), Ok(a));
}

/// Decimal amounts: the parser agrees with an independent one written
/// here, and its display form parses back to the same amount.
pub fn amount(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else { return };
    let parsed = Amount::parse_coins(text).ok();
    assert_eq!(parsed.map(Amount::units), model_parse_coins(text), "parse_coins({text:?}) disagrees with the model");
    if let Some(a) = parsed {
        let shown = a.to_string();
        assert_eq!(Amount::parse_coins(&shown), Ok(a), "{shown} does not parse back");
    }
}

/// The grammar the wallet and RPC document: optional surrounding
/// whitespace, ASCII digits, at most one point, at most 8 decimals, at
/// least one digit, at most 21 million coins.
pub fn model_parse_coins(text: &str) -> Option<u64> {
    let s = text.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) || frac.len() > 8 {
        return None;
    }
    let significant = whole.trim_start_matches('0');
    if significant.len() > 9 {
        return None;
    }
    let whole_units: u128 = significant.parse::<u128>().unwrap_or(0) * u128::from(COIN);
    let frac_units: u128 = format!("{frac:0<8}").parse().ok()?;
    let units = whole_units + frac_units;
    (units <= u128::from(MAX_MONEY.units())).then_some(units as u64)
}

/// Chain-spec JSON: a spec that loads serialises to JSON that loads to the
/// same spec, and serialising is a fixed point.
pub fn chain_spec(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else { return };
    let Ok(spec) = ChainSpec::from_json(text) else { return };
    let json = serde_json::to_string(&spec).expect("a loaded spec serialises");
    let again = ChainSpec::from_json(&json).expect("a serialised spec loads");
    assert_eq!(again, spec);
    assert_eq!(serde_json::to_string(&again).expect("serialises"), json);
}

/// Cheap scrypt parameters, so the fuzzer spends its time on parsing.
pub const FUZZ_KDF: Kdf = Kdf { log_n: 10, r: 1, p: 1 };
/// The passphrase the wallet-file seeds were sealed with.
pub const FUZZ_PASSPHRASE: &str = "fuzz";

fn scratch_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder")).path()
}

/// The wallet file: any bytes are refused or decrypt to contents that
/// are saved and loaded back unchanged. Never a panic on a damaged or
/// doctored header (scrypt parameters, lengths).
pub fn wallet_file(input: &[u8]) {
    // Parameters a header may name cost up to 1 GiB and seconds of scrypt:
    // the decoder is right to accept them, but a fuzzer cannot afford them.
    if let (Some(b"LODEWLT2"), Some(&log_n)) = (input.get(..8), input.get(8)) {
        let u32_at = |i: usize| input.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if log_n > 12 || u32_at(9).is_some_and(|r| r > 2) || u32_at(13).is_some_and(|p| p > 2) {
            return;
        }
    }
    if input.starts_with(b"LODEWLT1") {
        return; // fixed 2^15 scrypt: too slow to fuzz, same parser after the header
    }
    let thread = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let path = scratch_dir().join(format!("in-{thread}"));
    std::fs::write(&path, input).expect("the scratch file is writable");
    let Ok(data) = wallet_file::load(&path, FUZZ_PASSPHRASE) else { return };
    let out = scratch_dir().join(format!("out-{thread}"));
    let _ = std::fs::remove_file(&out);
    wallet_file::save_with(&out, FUZZ_PASSPHRASE, &data, true, FUZZ_KDF).expect("a loaded wallet saves");
    let back = wallet_file::load(&out, FUZZ_PASSPHRASE).expect("a saved wallet loads");
    assert_eq!(back, data);
}

/// The wallet's decrypted contents (JSON): what loads saves and loads back
/// unchanged, and serialising is a fixed point.
pub fn wallet_contents(input: &[u8]) {
    let Ok(data) = serde_json::from_slice::<WalletData>(input) else { return };
    if data.check_counters().is_err() {
        return;
    }
    let json = serde_json::to_vec(&data).expect("wallet data serialises");
    let again: WalletData = serde_json::from_slice(&json).expect("serialised wallet data loads");
    assert_eq!(again, data);
    assert_eq!(serde_json::to_vec(&again).expect("serialises"), json);
}
