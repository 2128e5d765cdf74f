//! Every p2p message: sync requests and responses, gossiped blocks and
//! transactions, the services reply, and compact relay's gossiped compact
//! blocks, `getblocktxn`/vouch requests and `blocktxn`/ack replies. A
//! message that decodes re-encodes to exactly the input or is refused;
//! never a panic; the bytes held while decoding stay within a small
//! multiple of the input. The first byte picks the message kind.

use crate::alloc::bounded;
use lode_core::codec::{Decode, Encode};
use lode_core::{Block, ChainSpec, Transaction};
use lode_node::p2p::wire::{
    max_tx_size, CmpctRequest, CmpctResponse, CompactBlock, ServicesReply, SyncRequest, SyncResponse,
};
use std::sync::OnceLock;

const FACTOR: usize = 8;

/// The message kinds, by selector byte (`data[0] % len`).
pub const KINDS: [&str; 8] = [
    "sync_request",
    "sync_response",
    "gossip_block",
    "gossip_tx",
    "services_reply",
    "compact_block",
    "compact_request",
    "compact_response",
];

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
        "compact_block" => {
            if let Ok(b) = bounded("compact block", n, FACTOR, || CompactBlock::decode(input, max)) {
                assert_eq!(b.encode(), input, "compact block re-encodes differently");
            }
        }
        "compact_request" => {
            if let Ok(r) = bounded("compact request", n, FACTOR, || CmpctRequest::decode(input, max)) {
                assert_eq!(r.encode(), input, "compact request re-encodes differently");
            }
        }
        "compact_response" => {
            if let Ok(r) = bounded("compact response", n, FACTOR, || CmpctResponse::decode(input)) {
                assert_eq!(r.encode(), input, "compact response re-encodes differently");
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
