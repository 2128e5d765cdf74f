//! Message handling: gossip validation, the sync protocol's requests and
//! replies, headers-first sync and block download scheduling, and the
//! outcomes of chain calls.
//!
//! This module dispatches the outcomes of chain calls run on blocking
//! threads ([`Internal`]); the handlers live in `gossip` (gossip validation
//! and relay), `serve` (sync requests and replies, peer status, block
//! download scheduling) and `headers` (headers-first sync).

mod compact;
mod gossip;
mod headers;
pub(in crate::p2p) mod serve;
mod services;

use serve::response_size;

use crate::chain_api::TxOutcome;
use crate::p2p::codec::{Request, MAX_LOCATOR};
use crate::p2p::peers::penalty;
use crate::p2p::service::{Internal, Service};
use crate::p2p::workers::TxJob;
use libp2p::gossipsub::MessageAcceptance;
use std::time::Instant;

impl Service {
    pub(in crate::p2p) fn on_internal(&mut self, msg: Internal) {
        match msg {
            Internal::Local(view) => {
                self.refreshing = false;
                if let Some(v) = view {
                    self.local = Some(v);
                }
                if std::mem::take(&mut self.refresh_again) {
                    self.refresh_local();
                }
                self.update_sync_state();
            }
            Internal::Respond { id, channel, response } => {
                // Hold what the reply really takes until it is sent.
                let bytes = response_size(&response);
                if let Some((_, held)) = self.serving.get_mut(&id) {
                    self.serving_bytes = self.serving_bytes.saturating_sub(*held).saturating_add(bytes);
                    *held = bytes;
                }
                if self.swarm.behaviour_mut().sync.send_response(channel, response).is_err() {
                    // The peer has gone; nothing will report this one.
                    self.done_serving(&id);
                }
            }
            Internal::Locator { peer, mut locator, for_orphan } => {
                if !self.peers.contains_key(&peer) {
                    self.headers_pending = None;
                    return;
                }
                self.header_sources.entry(peer).or_default().asked_for_orphan = for_orphan;
                // Continue a light chain we are still checking from its end.
                if let Some((p, held)) = &self.presync {
                    if *p == peer {
                        if let Some(last) = held.last() {
                            locator.insert(0, last.hash());
                        }
                    }
                }
                locator.truncate(MAX_LOCATOR);
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, Request::GetHeaders { locator });
                self.headers_pending = Some((peer, Some(id)));
                self.headers_sent = Some(Instant::now());
            }
            Internal::HeadersDone { peer, count, outcome, checked, proven } => {
                if let Some(work) = proven {
                    let src = self.header_sources.entry(peer).or_default();
                    src.proven = src.proven.max(work);
                }
                self.on_headers_done(peer, count, outcome, checked)
            }
            Internal::Missing(missing) => {
                // Blocks being rebuilt from compact blocks are not fetched
                // whole meanwhile (a rebuild that fails leaves them to us).
                let blocks: Vec<(lode_core::Hash256, u32)> = missing
                    .into_iter()
                    .filter(|(h, _)| !self.compact.pending.contains_key(h))
                    .map(|(h, height)| (h, height.0))
                    .collect();
                self.downloader.refilling = false;
                self.downloader.add(blocks);
                self.schedule_downloads();
            }
            Internal::BlockDone { hash, origin, outcome } => self.on_block_done(hash, origin, outcome),
            Internal::CompactPrepared { hash, prepared } => self.on_compact_prepared(hash, prepared),
            Internal::Reannounce(txs) => self.on_reannounce(txs),
            Internal::TxDone { job, outcome } => {
                let TxJob { msg, source, bytes } = job;
                self.tx_backlog = self.tx_backlog.saturating_sub(1);
                self.tx_backlog_bytes = self.tx_backlog_bytes.saturating_sub(bytes);
                if let Some(held) = self.tx_backlog_peer.get_mut(&source) {
                    held.count = held.count.saturating_sub(1);
                    held.bytes = held.bytes.saturating_sub(bytes);
                    if held.count == 0 {
                        self.tx_backlog_peer.remove(&source);
                    }
                }
                if matches!(outcome, TxOutcome::Accepted) {
                    self.note_novel_tx(source);
                }
                let acceptance = match outcome {
                    TxOutcome::Accepted => MessageAcceptance::Accept,
                    TxOutcome::AlreadyHave | TxOutcome::Rejected(_) => MessageAcceptance::Ignore,
                    TxOutcome::Invalid(reason) => {
                        self.misbehave(source, penalty::INVALID_TX, &format!("invalid transaction: {reason}"));
                        // Our verdict is charged by our score alone (see
                        // `gossip_scoring`); gossipsub only drops it.
                        MessageAcceptance::Ignore
                    }
                };
                self.swarm.behaviour_mut().gossipsub.report_message_validation_result(&msg, &source, acceptance);
            }
        }
    }
}
