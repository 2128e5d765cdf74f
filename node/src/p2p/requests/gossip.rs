//! Gossip validation and relay: decoding and pre-checking gossiped blocks
//! and transactions, the bounded backlogs they wait in, and the verdicts
//! reported to gossipsub once the chain has judged them.

use crate::chain_api::BlockOutcome;
use crate::p2p::peers::penalty;
use crate::p2p::service::{
    Origin, Service, MAX_GOSSIP_BACKLOG, MAX_GOSSIP_BACKLOG_BYTES, MAX_TX_BACKLOG, MAX_TX_BACKLOG_BYTES,
    MAX_TX_BACKLOG_PEER, MAX_TX_BACKLOG_PEER_BYTES,
};
use crate::p2p::workers::{BlockJob, TxJob};
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::PeerId;
use lode_core::block::Block;
use lode_core::codec::Decode;
use lode_core::{Hash256, Transaction};
use std::sync::atomic::Ordering;

impl Service {
    pub(super) fn report(&mut self, msg: &MessageId, source: &PeerId, acceptance: MessageAcceptance) {
        self.swarm.behaviour_mut().gossipsub.report_message_validation_result(msg, source, acceptance);
    }

    pub(in crate::p2p) fn on_gossip(&mut self, source: PeerId, msg: MessageId, message: gossipsub::Message) {
        self.seen.insert(crate::p2p::workers::gossip_id(&message.data));
        if message.topic == self.names.cmpct_blocks.hash() {
            self.on_compact_gossip(source, msg, &message.data);
        } else if message.topic == self.names.blocks.hash() {
            crate::p2p::compact::RelayCounters::add(&self.compact.counters.full_block_bytes, message.data.len());
            // Our own verdicts are reported as "ignore" and charged by
            // our score (see `gossip_scoring`), never twice.
            let block = match Block::decode_all(&message.data, self.max_block_size) {
                Ok(b) => b,
                Err(e) => {
                    self.report(&msg, &source, MessageAcceptance::Ignore);
                    self.misbehave(source, penalty::MALFORMED, &format!("undecodable gossip block: {e}"));
                    return;
                }
            };
            // Proof of work before the queue: a block that costs its sender
            // nothing costs us nothing either.
            if let Err(e) = lode_core::validation::check_header(&block.header, self.chain.spec()) {
                self.report(&msg, &source, MessageAcceptance::Ignore);
                self.misbehave(source, penalty::INVALID_BLOCK, &format!("gossip block fails proof of work: {e}"));
                return;
            }
            let bytes = message.data.len();
            if self.gossip_backlog >= MAX_GOSSIP_BACKLOG
                || self.gossip_backlog_bytes.saturating_add(bytes) > MAX_GOSSIP_BACKLOG_BYTES
            {
                self.report(&msg, &source, MessageAcceptance::Ignore);
                return;
            }
            self.gossip_backlog += 1;
            self.gossip_backlog_bytes += bytes;
            let _ = self.block_jobs.send(BlockJob { block, origin: Origin::Gossip { msg, source, bytes } });
        } else if message.topic == self.names.txs.hash() {
            // Held to the relay policy's size, not the block size: nothing
            // larger can enter a mempool, so nobody honest relays it.
            let tx = match Transaction::decode_all(&message.data, crate::p2p::codec::max_tx_size()) {
                Ok(t) => t,
                Err(e) => {
                    self.report(&msg, &source, MessageAcceptance::Ignore);
                    self.misbehave(source, penalty::MALFORMED, &format!("undecodable gossip transaction: {e}"));
                    return;
                }
            };
            let bytes = message.data.len();
            let held = self.tx_backlog_peer.get(&source).copied().unwrap_or_default();
            // Far behind, the mempool cannot judge transactions yet. The
            // backlog is bounded in count, in bytes, and in bytes per
            // sender, in count and in bytes, so one flooder neither
            // exhausts memory nor crowds out everyone else's transactions.
            if self.shared.initial_sync.load(Ordering::Relaxed)
                || self.tx_backlog >= MAX_TX_BACKLOG
                || self.tx_backlog_bytes.saturating_add(bytes) > MAX_TX_BACKLOG_BYTES
                || held.bytes.saturating_add(bytes) > MAX_TX_BACKLOG_PEER_BYTES
                || held.count >= MAX_TX_BACKLOG_PEER
            {
                self.report(&msg, &source, MessageAcceptance::Ignore);
                return;
            }
            self.tx_backlog += 1;
            self.tx_backlog_bytes += bytes;
            let held = self.tx_backlog_peer.entry(source).or_default();
            held.count += 1;
            held.bytes += bytes;
            let _ = self.tx_jobs.send((tx, TxJob { msg, source, bytes }));
        } else {
            self.report(&msg, &source, MessageAcceptance::Ignore);
        }
    }

    pub(super) fn on_block_done(&mut self, hash: Hash256, origin: Origin, outcome: BlockOutcome) {
        match origin {
            Origin::Gossip { msg, source, bytes } => {
                self.gossip_backlog = self.gossip_backlog.saturating_sub(1);
                self.gossip_backlog_bytes = self.gossip_backlog_bytes.saturating_sub(bytes);
                if matches!(outcome, BlockOutcome::Accepted { new_tip: true }) {
                    self.note_novel_block(source);
                }
                let acceptance = match outcome {
                    // Relayed only once it is on our active chain: a side
                    // branch is stored but not forwarded. With compact
                    // relay, peers that speak it hear of the block compact
                    // (`announce_block`); it goes on whole only if a peer
                    // does not.
                    BlockOutcome::Accepted { new_tip: true }
                        if !self.compact.enabled || self.legacy_peers_present() =>
                    {
                        MessageAcceptance::Accept
                    }
                    BlockOutcome::Accepted { new_tip: true } => MessageAcceptance::Ignore,
                    BlockOutcome::Accepted { new_tip: false }
                    | BlockOutcome::AlreadyHave
                    | BlockOutcome::LowWork
                    | BlockOutcome::Deferred(_) => MessageAcceptance::Ignore,
                    BlockOutcome::Orphan { missing_parent } => {
                        tracing::debug!(%hash, %missing_parent, peer = %source, "orphan block; fetching its ancestors");
                        self.request_headers_for_orphan(source, hash);
                        MessageAcceptance::Ignore
                    }
                    BlockOutcome::Invalid(reason) => {
                        self.misbehave(source, penalty::INVALID_BLOCK, &format!("invalid block {hash}: {reason}"));
                        MessageAcceptance::Ignore
                    }
                };
                self.report(&msg, &source, acceptance);
            }
            Origin::Compact { source } => self.on_compact_block_done(hash, source, outcome),
            Origin::Sync { peer } => {
                self.downloader.submitted(&hash);
                if matches!(outcome, BlockOutcome::Accepted { .. }) {
                    self.note_novel_block(peer);
                }
                match outcome {
                    BlockOutcome::Invalid(reason) => {
                        self.misbehave(peer, penalty::INVALID_BLOCK, &format!("served invalid block {hash}: {reason}"))
                    }
                    BlockOutcome::Orphan { missing_parent } => {
                        tracing::debug!(%hash, %missing_parent, "downloaded block is an orphan")
                    }
                    BlockOutcome::Deferred(reason) => {
                        tracing::debug!(%hash, reason, "downloaded block deferred")
                    }
                    BlockOutcome::Accepted { .. } | BlockOutcome::AlreadyHave | BlockOutcome::LowWork => {}
                }
                self.schedule_downloads();
            }
        }
        self.refresh_local();
    }
}
