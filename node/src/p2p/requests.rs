//! Message handling: gossip validation, the sync protocol's requests and
//! replies, headers-first sync and block download scheduling, and the
//! outcomes of chain calls.

use super::codec::{Request, Response, Status, MAX_HEADERS, MAX_LOCATOR};
use super::peers::penalty;
use super::service::{Internal, Origin, Service};
use super::workers::BlockJob;
use crate::chain_api::{BlockOutcome, HeadersOutcome, TxOutcome};
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use lode_core::block::{Block, BlockHeader};
use lode_core::codec::Decode;
use lode_core::{Hash256, Transaction};
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Service {
    pub(super) fn on_internal(&mut self, msg: Internal) {
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
            Internal::Respond { channel, response } => {
                // The peer may have gone; nothing to do then.
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
            }
            Internal::Locator { peer, mut locator } => {
                if !self.peers.contains_key(&peer) {
                    self.headers_pending = None;
                    return;
                }
                locator.truncate(MAX_LOCATOR);
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, Request::GetHeaders { locator });
                self.headers_pending = Some((peer, Some(id)));
            }
            Internal::HeadersDone { peer, count, outcome } => self.on_headers_done(peer, count, outcome),
            Internal::Missing(hashes) => {
                self.downloader.refilling = false;
                self.downloader.add(hashes);
                self.schedule_downloads();
            }
            Internal::BlockDone { hash, origin, outcome } => self.on_block_done(hash, origin, outcome),
            Internal::TxDone { msg, source, outcome } => {
                self.tx_backlog = self.tx_backlog.saturating_sub(1);
                let acceptance = match outcome {
                    TxOutcome::Accepted => MessageAcceptance::Accept,
                    TxOutcome::AlreadyHave | TxOutcome::Rejected(_) => MessageAcceptance::Ignore,
                    TxOutcome::Invalid(reason) => {
                        self.misbehave(source, penalty::INVALID_TX, &format!("invalid transaction: {reason}"));
                        MessageAcceptance::Reject
                    }
                };
                self.swarm.behaviour_mut().gossipsub.report_message_validation_result(&msg, &source, acceptance);
            }
        }
    }

    fn report(&mut self, msg: &MessageId, source: &PeerId, acceptance: MessageAcceptance) {
        self.swarm.behaviour_mut().gossipsub.report_message_validation_result(msg, source, acceptance);
    }

    pub(super) fn on_gossip(&mut self, source: PeerId, msg: MessageId, message: gossipsub::Message) {
        self.seen.insert(super::workers::gossip_id(&message.data));
        if message.topic == self.names.blocks.hash() {
            let block = match Block::decode_all(&message.data, self.max_block_size) {
                Ok(b) => b,
                Err(e) => {
                    self.report(&msg, &source, MessageAcceptance::Reject);
                    self.misbehave(source, penalty::MALFORMED, &format!("undecodable gossip block: {e}"));
                    return;
                }
            };
            // Proof of work before the queue: a block that costs its sender
            // nothing costs us nothing either.
            if let Err(e) = lode_core::validation::check_header(&block.header, self.chain.spec()) {
                self.report(&msg, &source, MessageAcceptance::Reject);
                self.misbehave(source, penalty::INVALID_BLOCK, &format!("gossip block fails proof of work: {e}"));
                return;
            }
            if self.gossip_backlog >= super::service::MAX_GOSSIP_BACKLOG {
                self.report(&msg, &source, MessageAcceptance::Ignore);
                return;
            }
            self.gossip_backlog += 1;
            let _ = self.block_jobs.send(BlockJob { block, origin: Origin::Gossip { msg, source } });
        } else if message.topic == self.names.txs.hash() {
            let tx = match Transaction::decode_all(&message.data, self.max_block_size) {
                Ok(t) => t,
                Err(e) => {
                    self.report(&msg, &source, MessageAcceptance::Reject);
                    self.misbehave(source, penalty::MALFORMED, &format!("undecodable gossip transaction: {e}"));
                    return;
                }
            };
            // Far behind, the mempool cannot judge transactions yet.
            if self.shared.initial_sync.load(Ordering::Relaxed) || self.tx_backlog >= super::service::MAX_TX_BACKLOG {
                self.report(&msg, &source, MessageAcceptance::Ignore);
                return;
            }
            self.tx_backlog += 1;
            let _ = self.tx_jobs.send((tx, msg, source));
        } else {
            self.report(&msg, &source, MessageAcceptance::Ignore);
        }
    }

    fn on_block_done(&mut self, hash: Hash256, origin: Origin, outcome: BlockOutcome) {
        match origin {
            Origin::Gossip { msg, source } => {
                self.gossip_backlog = self.gossip_backlog.saturating_sub(1);
                let acceptance = match outcome {
                    // Relayed only once it is on our active chain: a side
                    // branch is stored but not forwarded.
                    BlockOutcome::Accepted { new_tip: true } => MessageAcceptance::Accept,
                    BlockOutcome::Accepted { new_tip: false }
                    | BlockOutcome::AlreadyHave
                    | BlockOutcome::LowWork
                    | BlockOutcome::Deferred(_) => MessageAcceptance::Ignore,
                    BlockOutcome::Orphan { missing_parent } => {
                        tracing::debug!(%hash, %missing_parent, peer = %source, "orphan block; fetching its ancestors");
                        self.maybe_request_headers(Some(source));
                        MessageAcceptance::Ignore
                    }
                    BlockOutcome::Invalid(reason) => {
                        self.misbehave(source, penalty::INVALID_BLOCK, &format!("invalid block {hash}: {reason}"));
                        MessageAcceptance::Reject
                    }
                };
                self.report(&msg, &source, acceptance);
            }
            Origin::Sync { peer } => {
                self.downloader.submitted(&hash);
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

    pub(super) fn on_sync_event(&mut self, ev: request_response::Event<Request, Response>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => self.on_request(peer, request, channel),
                request_response::Message::Response { request_id, response } => {
                    self.on_response(peer, request_id, response)
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                self.on_outbound_failure(peer, request_id, error)
            }
            request_response::Event::InboundFailure { peer, error, .. } => match error {
                request_response::InboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    self.misbehave(peer, penalty::MALFORMED, &format!("malformed request: {e}"));
                }
                e => tracing::debug!(%peer, %e, "inbound request failed"),
            },
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_request(&mut self, peer: PeerId, request: Request, channel: ResponseChannel<Response>) {
        let allowed = self.peers.get_mut(&peer).is_none_or(|p| p.requests.take(Instant::now()));
        if !allowed {
            // Dropping the channel refuses the request.
            self.misbehave(peer, penalty::FLOOD, "request rate limit exceeded");
            return;
        }
        match request {
            Request::Malformed(why) => {
                // Dropping the channel refuses it.
                self.misbehave(peer, penalty::MALFORMED, &format!("malformed request: {why}"));
            }
            Request::Status(status) => {
                if let Some(ours) = self.our_status() {
                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, Response::Status(ours));
                }
                self.on_peer_status(peer, status);
            }
            Request::GetHeaders { locator } => {
                let chain = self.chain.clone();
                let tx = self.internal_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let headers = chain.headers_after(&locator, MAX_HEADERS);
                    let _ = tx.send(Internal::Respond { channel, response: Response::Headers(headers) });
                });
            }
            Request::GetBlocks { hashes } => {
                let chain = self.chain.clone();
                let tx = self.internal_tx.clone();
                let budget = super::behaviour::block_reply_budget(chain.spec());
                tokio::task::spawn_blocking(move || {
                    let mut blocks = Vec::new();
                    let mut bytes = 0usize;
                    for h in hashes {
                        let Some(b) = chain.block(&h) else { continue };
                        let size = b.encoded_size();
                        // Always at least one block, then stay within budget.
                        if !blocks.is_empty() && bytes + size > budget {
                            break;
                        }
                        bytes += size;
                        blocks.push(b);
                    }
                    let _ = tx.send(Internal::Respond { channel, response: Response::Blocks(blocks) });
                });
            }
        }
    }

    fn on_response(&mut self, peer: PeerId, id: OutboundRequestId, response: Response) {
        if self.status_requests.remove(&id).is_some() {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.status_pending = false;
            }
            match response {
                Response::Status(s) => self.on_peer_status(peer, s),
                _ => self.misbehave(peer, penalty::UNSOLICITED, "wrong reply to a status request"),
            }
        } else if self.headers_pending.as_ref().is_some_and(|(_, r)| *r == Some(id)) {
            match response {
                Response::Headers(h) => self.on_headers(peer, h),
                _ => {
                    self.headers_pending = None;
                    self.misbehave(peer, penalty::UNSOLICITED, "wrong reply to a headers request");
                }
            }
        } else if self.downloader.owns(&id) {
            let blocks = match response {
                Response::Blocks(b) => b,
                _ => {
                    self.downloader.on_failure(&id);
                    self.misbehave(peer, penalty::UNSOLICITED, "wrong reply to a blocks request");
                    return;
                }
            };
            let sized: Vec<(Block, usize)> = blocks
                .into_iter()
                .map(|b| {
                    let size = b.encoded_size();
                    (b, size)
                })
                .collect();
            // The responder stops before a block that would overflow its
            // budget: only a reply with room for one more block proves the
            // left-out blocks are really missing there.
            let total: usize = sized.iter().map(|(_, s)| s).sum();
            let budget = super::behaviour::block_reply_budget(self.chain.spec());
            let complete = total.saturating_add(self.max_block_size) <= budget;
            if let Some((_, delivery)) = self.downloader.on_blocks(&id, sized, complete) {
                if delivery.unsolicited > 0 {
                    self.misbehave(peer, penalty::UNSOLICITED, "sent blocks that were not asked for");
                }
            }
            self.schedule_downloads();
        }
    }

    fn on_outbound_failure(&mut self, peer: PeerId, id: OutboundRequestId, error: OutboundFailure) {
        let was_status = self.status_requests.remove(&id).is_some();
        if was_status {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.status_pending = false;
            }
        }
        if self.headers_pending.as_ref().is_some_and(|(_, r)| *r == Some(id)) {
            self.headers_pending = None;
        }
        self.downloader.on_failure(&id);
        match error {
            OutboundFailure::UnsupportedProtocols => {
                let reason = format!("does not speak {}", self.names.sync);
                self.drop_wrong_chain(peer, &reason);
            }
            OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.misbehave(peer, penalty::MALFORMED, &format!("malformed reply: {e}"));
            }
            OutboundFailure::Timeout => self.misbehave(peer, penalty::TIMEOUT, "request timed out"),
            e => tracing::debug!(%peer, %e, "request failed"),
        }
        self.schedule_downloads();
    }

    fn on_peer_status(&mut self, peer: PeerId, status: Status) {
        if status.genesis != self.genesis {
            let reason = format!("genesis {} differs from ours {}", status.genesis, self.genesis);
            self.drop_wrong_chain(peer, &reason);
            return;
        }
        let local = self.local;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if let Some(l) = local {
            // Same tip, different UTXO set: one of us has a corrupt state.
            if status.best_hash == l.tip.hash {
                let mismatch = status.utxo_commitment != l.commitment;
                p.commitment_mismatch = mismatch;
                if mismatch && self.counted_mismatches.insert((peer, l.tip.hash)) {
                    self.shared.mismatches.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        %peer,
                        tip = %l.tip.hash,
                        height = l.tip.height.0,
                        ours = %l.commitment,
                        theirs = %status.utxo_commitment,
                        "UTXO COMMITMENT MISMATCH: a peer at our tip reports a different UTXO set"
                    );
                }
            }
        }
        p.status = Some(status);
        self.downloader.forget_lacks(&peer);
        self.maybe_request_headers(None);
        self.update_sync_state();
    }

    /// Starts a header request to `preferred` (a peer that showed us an
    /// orphan) or to the peer with the most work above our best header.
    pub(super) fn maybe_request_headers(&mut self, preferred: Option<PeerId>) {
        if self.headers_pending.is_some() {
            if preferred.is_some() {
                self.headers_next = preferred;
            }
            return;
        }
        let Some(local) = self.local else { return };
        let peer = preferred.filter(|p| self.peers.contains_key(p)).or_else(|| {
            self.peers
                .iter()
                .filter(|(_, p)| p.status.as_ref().map(|s| s.chainwork) != p.headers_exhausted_at)
                .filter_map(|(id, p)| p.status.as_ref().map(|s| (id, s.chainwork)))
                .filter(|(_, work)| *work > local.best_header.chainwork)
                .max_by_key(|(_, work)| *work)
                .map(|(id, _)| *id)
        });
        let Some(peer) = peer else { return };
        self.headers_pending = Some((peer, None));
        let chain = self.chain.clone();
        let tx = self.internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            let _ = tx.send(Internal::Locator { peer, locator: chain.locator() });
        });
    }

    fn on_headers(&mut self, peer: PeerId, headers: Vec<BlockHeader>) {
        if headers.is_empty() {
            self.headers_pending = None;
            self.headers_exhausted(&peer);
            if let Some(next) = self.headers_next.take() {
                self.maybe_request_headers(Some(next));
            }
            return;
        }
        // Each header must extend the one before: cheap to check here,
        // and a break is the sender's fault.
        if headers.windows(2).any(|w| w[1].prev_hash != w[0].hash()) {
            self.headers_pending = None;
            self.misbehave(peer, penalty::INVALID_HEADERS, "headers do not form a chain");
            return;
        }
        let chain = self.chain.clone();
        let tx = self.internal_tx.clone();
        let count = headers.len();
        tokio::task::spawn_blocking(move || {
            let outcome = chain.accept_headers(&headers);
            let _ = tx.send(Internal::HeadersDone { peer, count, outcome });
        });
    }

    fn on_headers_done(&mut self, peer: PeerId, count: usize, outcome: HeadersOutcome) {
        self.headers_pending = None;
        match outcome {
            HeadersOutcome::Accepted { new } => {
                tracing::debug!(%peer, count, new, "headers accepted");
                self.header_peers.insert(peer);
                self.refresh_local();
                self.schedule_downloads();
                if count >= MAX_HEADERS && new > 0 {
                    // A full reply that taught us something: the peer has
                    // more. (A full reply of known headers, say ones the
                    // chain deferred, would only repeat itself.)
                    self.maybe_request_headers(Some(peer));
                    return;
                }
                self.headers_exhausted(&peer);
            }
            HeadersOutcome::Unconnected => {
                self.misbehave(peer, penalty::UNSOLICITED, "headers do not connect to our chain")
            }
            HeadersOutcome::Invalid(reason) => {
                self.misbehave(peer, penalty::INVALID_HEADERS, &format!("invalid headers: {reason}"))
            }
        }
        if let Some(next) = self.headers_next.take() {
            self.maybe_request_headers(Some(next));
        }
    }

    /// The peer has sent all the headers it will: remember at which claim.
    fn headers_exhausted(&mut self, peer: &PeerId) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.headers_exhausted_at = p.status.as_ref().map(|s| s.chainwork);
        }
    }

    /// Refills the download window from the chain, hands batches to peers
    /// that can serve them, and passes finished blocks on in order.
    pub(super) fn schedule_downloads(&mut self) {
        let Some(local) = self.local else { return };
        let eligible: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(id, p)| {
                self.header_peers.contains(id) || p.status.as_ref().is_some_and(|s| s.chainwork > local.tip.chainwork)
            })
            .map(|(id, _)| *id)
            .collect();
        let behind = local.best_header.chainwork > local.tip.chainwork;
        if (behind || !eligible.is_empty()) && self.downloader.wants_refill() {
            self.downloader.refilling = true;
            let chain = self.chain.clone();
            let tx = self.internal_tx.clone();
            let window = self.downloader.window();
            tokio::task::spawn_blocking(move || {
                let _ = tx.send(Internal::Missing(chain.missing_blocks(window)));
            });
        }
        for peer in &eligible {
            while let Some(batch) = self.downloader.next_batch(peer) {
                let id =
                    self.swarm.behaviour_mut().sync.send_request(peer, Request::GetBlocks { hashes: batch.clone() });
                self.downloader.register(id, *peer, batch);
            }
        }
        if !eligible.is_empty() {
            self.downloader.drop_unavailable(&eligible);
        }
        for (block, peer) in self.downloader.take_ready() {
            let _ = self.block_jobs.send(BlockJob { block, origin: Origin::Sync { peer } });
        }
    }
}
