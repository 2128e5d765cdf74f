//! Every p2p message: sync requests and responses, gossiped blocks and
//! transactions. (Compact-block messages join when that protocol lands.) A
//! message that decodes re-encodes to exactly the input or is refused;
//! never a panic; the bytes held while decoding stay within a small
//! multiple of the input. The first byte picks the message kind.

use crate::alloc::bounded;
use lode_core::codec::{Decode, Encode};
use lode_core::{Block, ChainSpec, Transaction};
use lode_node::p2p::wire::{max_tx_size, ServicesReply, SyncRequest, SyncResponse};
use std::sync::OnceLock;

const FACTOR: usize = 8;

/// The message kinds, by selector byte (`data[0] % len`).
pub const KINDS: [&str; 5] = ["sync_request", "sync_response", "gossip_block", "gossip_tx", "services_reply"];

fn max_block_size() -> usize {
    static SPEC: OnceLock<ChainSpec> = OnceLock::new();
    SPEC.get_or_init(ChainSpec::regtest).max_block_size
}

/// The fuzz entry point.
pub fn run(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else { return };
    let n = input.len();
    let max = max_block_size();
    match KINDS[selector as usize % KINDS.len()] {
        "sync_request" => {
            if let Ok(m) = bounded("sync request", n, FACTOR, || SyncRequest::decode(input)) {
                assert_eq!(m.encode(), input, "sync request re-encodes differently");
            }
        }
        "sync_response" => {
            if let Ok(m) = bounded("sync response", n, FACTOR, || SyncResponse::decode(input, max)) {
                assert_eq!(m.encode(), input, "sync response re-encodes differently");
            }
        }
        "services_reply" => {
            if let Ok(s) = bounded("services reply", n, FACTOR, || ServicesReply::decode(input)) {
                assert_eq!(s.encode(), input, "services reply re-encodes differently");
            }
        }
        "gossip_block" => {
            if let Ok(b) = bounded("gossip block", n, FACTOR, || Block::decode_all(input, max)) {
                assert_eq!(b.encode(), input);
            }
        }
        _ => {
            if let Ok(t) = bounded("gossip tx", n, FACTOR, || Transaction::decode_all(input, max_tx_size())) {
                assert_eq!(t.encode(), input);
            }
        }
    }
}
