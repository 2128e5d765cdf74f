//! Message handling: gossip validation, the sync protocol's requests and
//! replies, headers-first sync and block download scheduling, and the
//! outcomes of chain calls.

use super::codec::{Request, Response, Status, MAX_HEADERS, MAX_LOCATOR};
use super::peers::penalty;
use super::service::{
    Internal, Origin, Service, HEADERS_TIMEOUT, MAX_GOSSIP_BACKLOG, MAX_GOSSIP_BACKLOG_BYTES, MAX_SERVING_BYTES,
    MAX_SERVING_PER_PEER, MAX_TX_BACKLOG, MAX_TX_BACKLOG_BYTES, MAX_TX_BACKLOG_PEER_BYTES,
};
use super::workers::{BlockJob, TxJob};
use crate::chain_api::{BlockOutcome, HeadersOutcome, TxOutcome};
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::request_response::{self, InboundRequestId, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use lode_core::block::{Block, BlockHeader, HEADER_SIZE};
use lode_core::codec::Decode;
use lode_core::pow::Work;
use lode_core::{Hash256, Transaction};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// First wait before asking a peer for headers again after it failed us
/// (timed out, did not connect, or proved nothing it claimed); it doubles
/// with each failure in a row.
const HEADERS_RETRY_BASE: Duration = Duration::from_secs(5);
/// Longest such wait.
const HEADERS_RETRY_MAX: Duration = Duration::from_secs(600);

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
            Internal::Locator { peer, mut locator } => {
                if !self.peers.contains_key(&peer) {
                    self.headers_pending = None;
                    return;
                }
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
            Internal::Missing(hashes) => {
                self.downloader.refilling = false;
                self.downloader.add(hashes);
                self.schedule_downloads();
            }
            Internal::BlockDone { hash, origin, outcome } => self.on_block_done(hash, origin, outcome),
            Internal::TxDone { job, outcome } => {
                let TxJob { msg, source, bytes } = job;
                self.tx_backlog = self.tx_backlog.saturating_sub(1);
                self.tx_backlog_bytes = self.tx_backlog_bytes.saturating_sub(bytes);
                if let Some(held) = self.tx_backlog_peer.get_mut(&source) {
                    *held = held.saturating_sub(bytes);
                    if *held == 0 {
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

    /// A reply has been sent or given up on: its bytes are free.
    fn done_serving(&mut self, id: &InboundRequestId) {
        if let Some((_, bytes)) = self.serving.remove(id) {
            self.serving_bytes = self.serving_bytes.saturating_sub(bytes);
        }
    }

    /// Takes a serving slot for a request of `peer` holding up to `bytes`;
    /// false (refuse the request) when the peer has too many open or our
    /// budget is spent.
    fn start_serving(&mut self, id: InboundRequestId, peer: PeerId, bytes: usize) -> bool {
        let open = self.serving.values().filter(|(p, _)| *p == peer).count();
        if open >= MAX_SERVING_PER_PEER {
            self.misbehave(peer, penalty::FLOOD, "too many requests open at once");
            return false;
        }
        if self.serving_bytes.saturating_add(bytes) > MAX_SERVING_BYTES {
            // Busy, not the peer's fault: it asks someone else.
            tracing::debug!(%peer, serving = self.serving_bytes, "serving budget spent; refusing a request");
            return false;
        }
        self.serving_bytes += bytes;
        self.serving.insert(id, (peer, bytes));
        true
    }

    fn report(&mut self, msg: &MessageId, source: &PeerId, acceptance: MessageAcceptance) {
        self.swarm.behaviour_mut().gossipsub.report_message_validation_result(msg, source, acceptance);
    }

    pub(super) fn on_gossip(&mut self, source: PeerId, msg: MessageId, message: gossipsub::Message) {
        self.seen.insert(super::workers::gossip_id(&message.data));
        if message.topic == self.names.blocks.hash() {
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
            let tx = match Transaction::decode_all(&message.data, super::codec::max_tx_size()) {
                Ok(t) => t,
                Err(e) => {
                    self.report(&msg, &source, MessageAcceptance::Ignore);
                    self.misbehave(source, penalty::MALFORMED, &format!("undecodable gossip transaction: {e}"));
                    return;
                }
            };
            let bytes = message.data.len();
            let held = self.tx_backlog_peer.get(&source).copied().unwrap_or(0);
            // Far behind, the mempool cannot judge transactions yet. The
            // backlog is bounded in count, in bytes, and in bytes per
            // sender, so one flooder neither exhausts memory nor crowds
            // out everyone else's transactions.
            if self.shared.initial_sync.load(Ordering::Relaxed)
                || self.tx_backlog >= MAX_TX_BACKLOG
                || self.tx_backlog_bytes.saturating_add(bytes) > MAX_TX_BACKLOG_BYTES
                || held.saturating_add(bytes) > MAX_TX_BACKLOG_PEER_BYTES
            {
                self.report(&msg, &source, MessageAcceptance::Ignore);
                return;
            }
            self.tx_backlog += 1;
            self.tx_backlog_bytes += bytes;
            *self.tx_backlog_peer.entry(source).or_insert(0) += bytes;
            let _ = self.tx_jobs.send((tx, TxJob { msg, source, bytes }));
        } else {
            self.report(&msg, &source, MessageAcceptance::Ignore);
        }
    }

    fn on_block_done(&mut self, hash: Hash256, origin: Origin, outcome: BlockOutcome) {
        match origin {
            Origin::Gossip { msg, source, bytes } => {
                self.gossip_backlog = self.gossip_backlog.saturating_sub(1);
                self.gossip_backlog_bytes = self.gossip_backlog_bytes.saturating_sub(bytes);
                if matches!(outcome, BlockOutcome::Accepted { new_tip: true }) {
                    self.note_novel_block(source);
                }
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
                        MessageAcceptance::Ignore
                    }
                };
                self.report(&msg, &source, acceptance);
            }
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

    pub(super) fn on_sync_event(&mut self, ev: request_response::Event<Request, Response>) {
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
                if !self.start_serving(request_id, peer, MAX_HEADERS * HEADER_SIZE) {
                    return;
                }
                let chain = self.chain.clone();
                let tx = self.internal_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let headers = chain.headers_after(&locator, MAX_HEADERS);
                    let _ =
                        tx.send(Internal::Respond { id: request_id, channel, response: Response::Headers(headers) });
                });
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
                let budget = super::codec::block_reply_budget(self.max_block_size);
                // A reply holds at most the budget (which is at least one
                // maximal block): hold that until it is read and sent.
                if !self.start_serving(request_id, peer, budget) {
                    return;
                }
                // Side branches we announced stay servable; others a peer
                // cannot have learned from us (only the active chain's
                // headers are served), so they are not read at all.
                let announced: HashSet<Hash256> =
                    hashes.iter().filter(|h| self.announced.contains(&h.0)).copied().collect();
                let chain = self.chain.clone();
                let tx = self.internal_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let blocks = chain.serve_blocks(&hashes, &announced, budget);
                    let _ = tx.send(Internal::Respond { id: request_id, channel, response: Response::Blocks(blocks) });
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
            let budget = super::codec::block_reply_budget(self.max_block_size);
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
        let was_headers = self.headers_pending.as_ref().is_some_and(|(_, r)| *r == Some(id));
        if was_headers {
            self.headers_pending = None;
            self.headers_sent = None;
            self.header_strike(peer, "header request failed");
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
        let now = Instant::now();
        let sources = &self.header_sources;
        let resting = |id: &PeerId| sources.get(id).and_then(|s| s.retry_at).is_some_and(|t| t > now);
        let proven = |id: &PeerId| sources.get(id).map(|s| s.proven).unwrap_or(Work::ZERO);
        let peer = preferred.filter(|p| self.peers.contains_key(p) && !resting(p)).or_else(|| {
            self.peers
                .iter()
                .filter(|(id, p)| !resting(id) && p.status.as_ref().map(|s| s.chainwork) != p.headers_exhausted_at)
                .filter_map(|(id, p)| p.status.as_ref().map(|s| (id, s.chainwork)))
                .filter(|(_, work)| *work > local.best_header.chainwork)
                // What a peer's headers proved comes first, what it claims
                // only breaks ties: a claim costs nothing to make.
                .max_by_key(|(id, work)| (proven(id), *work))
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
            if self.claims_unproven(&peer) {
                self.header_strike(peer, "no headers for the work it claims");
            }
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
            self.header_strike(peer, "headers do not form a chain");
            self.misbehave(peer, penalty::INVALID_HEADERS, "headers do not form a chain");
            return;
        }
        let count = headers.len();
        // A continuation of a light chain being checked is offered whole.
        let headers = match self.presync.take() {
            Some((p, mut held)) if p == peer && held.last().map(BlockHeader::hash) == Some(headers[0].prev_hash) => {
                held.extend(headers);
                held
            }
            _ => headers,
        };
        let chain = self.chain.clone();
        let tx = self.internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            let outcome = chain.accept_headers(&headers);
            // What the peer's headers proved: the work of the last one,
            // now that it is ours.
            let proven = match outcome {
                HeadersOutcome::Accepted { .. } => headers.last().and_then(|h| chain.header_work(&h.hash())),
                _ => None,
            };
            let checked = (outcome == HeadersOutcome::LowWork).then_some(headers);
            let _ = tx.send(Internal::HeadersDone { peer, count, outcome, checked, proven });
        });
    }

    fn on_headers_done(
        &mut self,
        peer: PeerId,
        count: usize,
        outcome: HeadersOutcome,
        checked: Option<Vec<BlockHeader>>,
    ) {
        self.headers_pending = None;
        match outcome {
            HeadersOutcome::LowWork => {
                let held = checked.unwrap_or_default();
                if count >= MAX_HEADERS && held.len() + MAX_HEADERS <= super::service::MAX_PRESYNC_HEADERS {
                    tracing::debug!(%peer, held = held.len(), "header chain below the work threshold so far; fetching more");
                    self.header_success(&peer);
                    self.presync = Some((peer, held));
                    self.maybe_request_headers(Some(peer));
                    return;
                }
                // No penalty: an honest peer on a light branch sends this too.
                tracing::info!(%peer, headers = held.len(), "peer's header chain has too little work to store; ignoring it");
                self.headers_exhausted(&peer);
            }
            HeadersOutcome::Accepted { new } => {
                tracing::debug!(%peer, count, new, "headers accepted");
                self.header_peers.insert(peer);
                self.refresh_local();
                self.schedule_downloads();
                if count >= MAX_HEADERS && new > 0 {
                    // A full reply that taught us something: the peer has
                    // more. (A full reply of known headers, say ones the
                    // chain deferred, would only repeat itself.)
                    self.header_success(&peer);
                    self.maybe_request_headers(Some(peer));
                    return;
                }
                if self.claims_unproven(&peer) {
                    // Known headers in reply to a claim of more work: a
                    // peer does not keep us waiting on a chain it lacks.
                    self.header_strike(peer, "its headers stop short of the work it claims");
                } else {
                    self.header_success(&peer);
                }
                self.headers_exhausted(&peer);
            }
            HeadersOutcome::Unconnected => {
                self.header_strike(peer, "headers do not connect");
                self.misbehave(peer, penalty::UNSOLICITED, "headers do not connect to our chain")
            }
            HeadersOutcome::Invalid(reason) => {
                self.header_strike(peer, "invalid headers");
                self.misbehave(peer, penalty::INVALID_HEADERS, &format!("invalid headers: {reason}"))
            }
        }
        if let Some(next) = self.headers_next.take() {
            self.maybe_request_headers(Some(next));
        }
    }

    /// Whether the peer claims more work than its headers proved.
    fn claims_unproven(&self, peer: &PeerId) -> bool {
        let claimed = self.peers.get(peer).and_then(|p| p.status.as_ref()).map(|s| s.chainwork);
        let proven = self.header_sources.get(peer).map(|s| s.proven).unwrap_or(Work::ZERO);
        claimed.is_some_and(|c| c > proven)
    }

    /// The peer failed a header request (timed out, sent headers that do
    /// not connect, or fewer than it claims): move on to another peer and
    /// ask this one again only after a wait that doubles with each failure
    /// in a row. No penalty by itself: an honest peer can be slow.
    pub(super) fn header_strike(&mut self, peer: PeerId, why: &str) {
        let src = self.header_sources.entry(peer).or_default();
        src.strikes = src.strikes.saturating_add(1);
        let wait =
            HEADERS_RETRY_BASE.saturating_mul(1u32 << src.strikes.saturating_sub(1).min(8)).min(HEADERS_RETRY_MAX);
        src.retry_at = Some(Instant::now() + wait);
        tracing::debug!(%peer, why, strikes = src.strikes, ?wait, "not asking this peer for headers for a while");
        if self.presync.as_ref().is_some_and(|(p, _)| *p == peer) {
            self.presync = None;
        }
    }

    /// The peer's headers served us well: its failures are forgotten.
    fn header_success(&mut self, peer: &PeerId) {
        if let Some(src) = self.header_sources.get_mut(peer) {
            src.strikes = 0;
            src.retry_at = None;
        }
    }

    /// Abandons a header request unanswered for [`HEADERS_TIMEOUT`] and
    /// asks the next peer (a late reply is then ignored).
    pub(super) fn check_header_timeout(&mut self, now: Instant) {
        let Some((peer, Some(_))) = self.headers_pending else { return };
        if self.headers_sent.is_none_or(|t| now.saturating_duration_since(t) < HEADERS_TIMEOUT) {
            return;
        }
        tracing::info!(%peer, "header request unanswered; asking another peer");
        self.headers_pending = None;
        self.headers_sent = None;
        self.header_strike(peer, "header request timed out");
        let next = self.headers_next.take();
        self.maybe_request_headers(next);
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
            self.fetched.insert(block.hash().0);
            let _ = self.block_jobs.send(BlockJob { block, origin: Origin::Sync { peer } });
        }
    }
}

/// Bytes a reply takes in memory until sent (its encoded size, roughly).
fn response_size(response: &Response) -> usize {
    match response {
        Response::Status(_) => 256,
        Response::Headers(h) => h.len() * HEADER_SIZE,
        Response::Blocks(b) => b.iter().map(Block::encoded_size).sum(),
    }
}
