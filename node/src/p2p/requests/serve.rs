//! The sync protocol's request/response side: serving peers' requests
//! within budget, handling replies and failures of ours, peer status, and
//! block download scheduling.

use crate::p2p::codec::{Request, Response, Status, MAX_HEADERS};
use crate::p2p::peers::penalty;
use crate::p2p::service::{
    Internal, Origin, Service, MAX_SERVING_BYTES, MAX_SERVING_BYTES_PER_PEER, MAX_SERVING_PER_PEER,
};
use crate::p2p::workers::BlockJob;
use libp2p::request_response::{self, InboundRequestId, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use lode_core::block::{Block, HEADER_SIZE};
use lode_core::Hash256;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// A request of a peer's read off the network task once its bytes fit.
pub(in crate::p2p) enum ServeJob {
    /// `GetHeaders`.
    Headers { locator: Vec<Hash256>, channel: ResponseChannel<Response> },
    /// `GetBlocks`, with the hashes we announced among them.
    Blocks { hashes: Vec<Hash256>, announced: HashSet<Hash256>, budget: usize, channel: ResponseChannel<Response> },
}

/// A request waiting for serving bytes.
pub(in crate::p2p) struct QueuedServe {
    id: InboundRequestId,
    peer: PeerId,
    bytes: usize,
    job: ServeJob,
}

impl Service {
    /// A reply has been sent or given up on: its bytes are free, and
    /// requests waiting for them start.
    pub(super) fn done_serving(&mut self, id: &InboundRequestId) {
        if let Some((_, bytes)) = self.serving.remove(id) {
            self.serving_bytes = self.serving_bytes.saturating_sub(bytes);
        }
        // A request that failed (timed out) while waiting is not started.
        self.serve_queue.retain(|q| q.id != *id);
        self.start_queued();
    }

    /// Bytes of replies `peer` holds now.
    fn serving_bytes_of(&self, peer: &PeerId) -> usize {
        self.serving.values().filter(|(p, _)| p == peer).map(|(_, b)| *b).sum()
    }

    /// Whether a reply of `bytes` for `peer` fits both the total budget and
    /// the peer's share of it (one reply always fits where nothing is held:
    /// a chain's largest block may exceed a share).
    fn serving_fits(&self, peer: &PeerId, bytes: usize) -> bool {
        let held = self.serving_bytes_of(peer);
        (self.serving_bytes == 0 || self.serving_bytes.saturating_add(bytes) <= MAX_SERVING_BYTES)
            && (held == 0 || held.saturating_add(bytes) <= MAX_SERVING_BYTES_PER_PEER)
    }

    /// Serves `job` for `peer` now, or queues it until its bytes fit (a
    /// peer's requests beyond its share, or beyond the total, wait rather
    /// than being refused: one peer holding the budget made every other
    /// peer's requests fail). More than [`MAX_SERVING_PER_PEER`] of one
    /// peer's requests open or waiting at once is refused and charged.
    fn serve(&mut self, id: InboundRequestId, peer: PeerId, bytes: usize, job: ServeJob) {
        let open = self.serving.values().filter(|(p, _)| *p == peer).count()
            + self.serve_queue.iter().filter(|q| q.peer == peer).count();
        if open >= MAX_SERVING_PER_PEER {
            self.misbehave(peer, penalty::FLOOD, "too many requests open at once");
            return;
        }
        if self.serving_fits(&peer, bytes) {
            self.dispatch(id, peer, bytes, job);
        } else {
            tracing::debug!(%peer, serving = self.serving_bytes, "serving budget or the peer's share spent; queueing");
            self.serve_queue.push_back(QueuedServe { id, peer, bytes, job });
        }
    }

    /// Starts the waiting requests that fit now, oldest first; those of
    /// peers that left are dropped (their channels with them).
    fn start_queued(&mut self) {
        let mut waiting = std::mem::take(&mut self.serve_queue);
        waiting.retain(|q| self.peers.contains_key(&q.peer));
        while let Some(q) = waiting.pop_front() {
            if self.serving_fits(&q.peer, q.bytes) {
                self.dispatch(q.id, q.peer, q.bytes, q.job);
            } else {
                self.serve_queue.push_back(q);
            }
        }
    }

    /// Reserves `bytes` for request `id` and reads its reply off the loop.
    fn dispatch(&mut self, id: InboundRequestId, peer: PeerId, bytes: usize, job: ServeJob) {
        self.serving_bytes += bytes;
        self.serving.insert(id, (peer, bytes));
        let chain = self.chain.clone();
        let tx = self.internal_tx.clone();
        match job {
            ServeJob::Headers { locator, channel } => {
                tokio::task::spawn_blocking(move || {
                    let headers = chain.headers_after(&locator, MAX_HEADERS);
                    let _ = tx.send(Internal::Respond { id, channel, response: Response::Headers(headers) });
                });
            }
            ServeJob::Blocks { hashes, announced, budget, channel } => {
                tokio::task::spawn_blocking(move || {
                    let blocks = chain.serve_blocks(&hashes, &announced, budget);
                    let _ = tx.send(Internal::Respond { id, channel, response: Response::Blocks(blocks) });
                });
            }
        }
    }

    pub(in crate::p2p) fn on_sync_event(&mut self, ev: request_response::Event<Request, Response>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request_id, request, channel } => {
                    self.on_request(peer, request_id, request, channel)
                }
                request_response::Message::Response { request_id, response } => {
                    self.on_response(peer, request_id, response)
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                self.on_outbound_failure(peer, request_id, error)
            }
            request_response::Event::InboundFailure { peer, request_id, error, .. } => {
                self.done_serving(&request_id);
                match error {
                    request_response::InboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        self.misbehave(peer, penalty::MALFORMED, &format!("malformed request: {e}"));
                    }
                    e => tracing::debug!(%peer, %e, "inbound request failed"),
                }
            }
            request_response::Event::ResponseSent { request_id, .. } => self.done_serving(&request_id),
        }
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        request_id: InboundRequestId,
        request: Request,
        channel: ResponseChannel<Response>,
    ) {
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
                self.serve(request_id, peer, MAX_HEADERS * HEADER_SIZE, ServeJob::Headers { locator, channel });
            }
            Request::GetBlocks { hashes } => {
                // The same block twice in one request only multiplies our
                // work and the reply: serve it once and charge a little.
                let mut unique = HashSet::with_capacity(hashes.len());
                let asked = hashes.len();
                let hashes: Vec<Hash256> = hashes.into_iter().filter(|h| unique.insert(*h)).collect();
                if hashes.len() < asked {
                    self.misbehave(peer, penalty::FLOOD, "duplicate hashes in a block request");
                }
                let budget = crate::p2p::codec::block_reply_budget(self.max_block_size);
                // Side branches we announced stay servable; others a peer
                // cannot have learned from us (only the active chain's
                // headers are served), so they are not read at all.
                let announced: HashSet<Hash256> =
                    hashes.iter().filter(|h| self.announced.contains(&h.0)).copied().collect();
                // A reply holds at most the budget (which is at least one
                // maximal block): hold that until it is read and sent.
                self.serve(request_id, peer, budget, ServeJob::Blocks { hashes, announced, budget, channel });
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
            // Answered: how long the chain takes with it is not the peer's doing.
            self.headers_sent = None;
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
            crate::p2p::compact::RelayCounters::add(&self.compact.counters.full_block_bytes, total);
            let budget = crate::p2p::codec::block_reply_budget(self.max_block_size);
            let complete = total.saturating_add(self.max_block_size) <= budget;
            if let Some((_, delivery)) = self.downloader.on_blocks(&id, sized, complete) {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.blocks_received = p.blocks_received.saturating_add(delivery.received as u64);
                    p.blocks_missing = p.blocks_missing.saturating_add(delivery.missing as u64);
                }
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
        let was_headers = self.headers_pending.as_ref().is_some_and(|(_, r)| *r == Some(id));
        if was_headers {
            self.headers_pending = None;
            self.headers_sent = None;
            self.header_strike(peer, "header request failed");
        }
        let stalled = self.downloader.is_stalling(&id) && matches!(error, OutboundFailure::Timeout);
        self.downloader.on_failure(&id);
        if stalled {
            // It held the front of the download until its blocks went to
            // others, then never answered: disconnected (not banned), as
            // Bitcoin Core drops a stalling peer, so a bare claim of work
            // cannot keep earning it the front of the window.
            tracing::info!(%peer, "disconnecting a peer that stalled the block download and never answered");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        match error {
            OutboundFailure::UnsupportedProtocols => {
                let reason = format!("does not speak {}", self.names.sync);
                self.drop_wrong_chain(peer, &reason);
            }
            OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.misbehave(peer, penalty::MALFORMED, &format!("malformed reply: {e}"));
            }
            // A slow peer is not a hostile one: its work goes elsewhere
            // (stall detection, header retry backoff), its score is kept.
            OutboundFailure::Timeout => tracing::debug!(%peer, "request timed out"),
            e => tracing::debug!(%peer, %e, "request failed"),
        }
        if was_headers {
            self.maybe_request_headers(None);
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
                // Only the current tip's counts matter: older ones would
                // pile up for as long as the peer stays.
                self.counted_mismatches.retain(|(_, tip)| *tip == l.tip.hash);
                // The alarm (an error and the metric) comes from peers we
                // chose: anyone can dial in under fresh peer ids and claim
                // any commitment, which would make an operator resync a
                // sound database. Inbound claims show in getpeerinfo only.
                let chosen = p.direction() == crate::p2p::peers::Direction::Outbound;
                if mismatch && !chosen {
                    tracing::debug!(%peer, tip = %l.tip.hash, "an inbound peer at our tip reports a different UTXO commitment");
                }
                if mismatch && chosen && self.counted_mismatches.insert((peer, l.tip.hash)) {
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

    /// Refills the download window from the chain, hands batches to peers
    /// that can serve them, and passes finished blocks on in order.
    pub(in crate::p2p) fn schedule_downloads(&mut self) {
        let Some(local) = self.local else { return };
        // A peer whose services answer is outstanding waits for it: it may
        // have pruned the bodies we would ask for first.
        let eligible: Vec<(PeerId, u32)> = self
            .peers
            .iter()
            .filter(|(id, p)| {
                self.header_peers.contains(id) || p.status.as_ref().is_some_and(|s| s.chainwork > local.tip.chainwork)
            })
            .filter(|(_, p)| p.services.may_serve_bodies())
            .map(|(id, p)| (*id, p.services.horizon()))
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
        self.downloader.plan(&eligible);
        for (peer, _) in &eligible {
            while let Some(batch) = self.downloader.next_batch(peer) {
                let id =
                    self.swarm.behaviour_mut().sync.send_request(peer, Request::GetBlocks { hashes: batch.clone() });
                self.downloader.register(id, *peer, batch);
            }
        }
        if !eligible.is_empty() {
            self.downloader.drop_unavailable();
        }
        let next = self.downloader.first_missing(local.tip.height.0);
        self.check_history(&eligible, behind, next);
        for (block, peer) in self.downloader.take_ready() {
            self.fetched.insert(block.hash().0);
            let _ = self.block_jobs.send(BlockJob { block, origin: Origin::Sync { peer } });
        }
    }
}

/// Bytes a reply takes in memory until sent (its encoded size, roughly).
pub(super) fn response_size(response: &Response) -> usize {
    match response {
        Response::Status(_) => 256,
        Response::Headers(h) => h.len() * HEADER_SIZE,
        Response::Blocks(b) => b.iter().map(Block::encoded_size).sum(),
    }
}
