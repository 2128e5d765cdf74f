//! Key layouts. Integers in keys are big-endian so RocksDB's byte order is
//! numeric order (heights iterate oldest first).

use lode_core::tx::OutPoint;
use lode_core::{Address, Hash256, Height};

const ADDR_COIN: u8 = b'u';
const ADDR_HIST: u8 = b'h';

/// `txid ‖ vout`.
pub fn outpoint(op: &OutPoint) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(&op.txid.0);
    k[32..].copy_from_slice(&op.vout.to_be_bytes());
    k
}

/// Inverse of [`outpoint`].
pub fn outpoint_from(k: &[u8]) -> Option<OutPoint> {
    if k.len() != 36 {
        return None;
    }
    Some(OutPoint { txid: hash_from(&k[..32])?, vout: u32::from_be_bytes(k[32..36].try_into().ok()?) })
}

/// A 32-byte key as a hash.
pub fn hash_from(k: &[u8]) -> Option<Hash256> {
    Some(Hash256(k.try_into().ok()?))
}

/// `'u' ‖ address`: prefix of an address's unspent coins.
pub fn addr_coin_prefix(a: &Address) -> Vec<u8> {
    let mut k = Vec::with_capacity(21);
    k.push(ADDR_COIN);
    k.extend_from_slice(&a.0);
    k
}

/// `'u' ‖ address ‖ outpoint`.
pub fn addr_coin(a: &Address, op: &OutPoint) -> Vec<u8> {
    let mut k = addr_coin_prefix(a);
    k.extend_from_slice(&outpoint(op));
    k
}

/// `'h' ‖ address`: prefix of an address's history.
pub fn addr_hist_prefix(a: &Address) -> Vec<u8> {
    let mut k = Vec::with_capacity(21);
    k.push(ADDR_HIST);
    k.extend_from_slice(&a.0);
    k
}

/// `'h' ‖ address ‖ height ‖ txid`.
pub fn addr_hist(a: &Address, h: Height, txid: &Hash256) -> Vec<u8> {
    let mut k = addr_hist_prefix(a);
    k.extend_from_slice(&h.0.to_be_bytes());
    k.extend_from_slice(&txid.0);
    k
}

/// Inverse of the suffix of [`addr_hist`].
pub fn hist_from(k: &[u8]) -> Option<(Height, Hash256)> {
    if k.len() != 36 {
        return None;
    }
    Some((Height(u32::from_be_bytes(k[..4].try_into().ok()?)), hash_from(&k[4..])?))
}
