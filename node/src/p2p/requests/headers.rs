//! Headers-first sync: choosing the peer to ask for headers, handling its
//! replies and the chain's verdicts, light chains checked before they are
//! stored, and the retry backoff of peers that fail us.

use crate::chain_api::HeadersOutcome;
use crate::p2p::codec::MAX_HEADERS;
use crate::p2p::peers::penalty;
use crate::p2p::service::{Internal, Service, HEADERS_TIMEOUT};
use libp2p::PeerId;
use lode_core::block::BlockHeader;
use lode_core::pow::Work;
use std::time::{Duration, Instant};

/// First wait before asking a peer for headers again after it failed us
/// (timed out, did not connect, or proved nothing it claimed); it doubles
/// with each failure in a row.
const HEADERS_RETRY_BASE: Duration = Duration::from_secs(5);
/// Longest such wait.
const HEADERS_RETRY_MAX: Duration = Duration::from_secs(600);

impl Service {
    /// Starts a header request to `preferred` (a peer that showed us an
    /// orphan) or to the peer with the most work above our best header.
    pub(in crate::p2p) fn maybe_request_headers(&mut self, preferred: Option<PeerId>) {
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
        let orphan = self.header_sources.get(&peer).and_then(|s| s.showed_orphan);
        let chain = self.chain.clone();
        let tx = self.internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            let locator = chain.locator();
            let for_orphan = orphan.is_some_and(|h| chain.header_work(&h).is_none());
            let _ = tx.send(Internal::Locator { peer, locator, for_orphan });
        });
    }

    /// `peer` showed us `block`, whose parent we lack: ask it for the
    /// headers leading there (unless it is resting after failing us).
    pub(in crate::p2p) fn request_headers_for_orphan(&mut self, peer: PeerId, block: lode_core::Hash256) {
        self.header_sources.entry(peer).or_default().showed_orphan = Some(block);
        self.maybe_request_headers(Some(peer));
    }

    pub(super) fn on_headers(&mut self, peer: PeerId, headers: Vec<BlockHeader>) {
        let asked_for_orphan = self.header_sources.get_mut(&peer).is_some_and(|s| {
            s.showed_orphan = None;
            std::mem::take(&mut s.asked_for_orphan)
        });
        if headers.is_empty() {
            self.headers_pending = None;
            if self.claims_unproven(&peer) {
                self.header_strike(peer, "no headers for the work it claims");
            } else if asked_for_orphan {
                self.header_strike(peer, "no headers leading to the block it showed us");
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

    pub(super) fn on_headers_done(
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
                if count >= MAX_HEADERS && held.len() + MAX_HEADERS <= crate::p2p::service::MAX_PRESYNC_HEADERS {
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
                if count >= MAX_HEADERS && new * 2 >= count {
                    // A full reply mostly of headers new to us: the peer
                    // has more. (A full reply of known headers, say ones
                    // the chain deferred, would only repeat itself.)
                    self.header_success(&peer);
                    self.maybe_request_headers(Some(peer));
                    return;
                }
                if count >= MAX_HEADERS && new > 0 {
                    // Our locator told it where we are: a full reply of
                    // mostly known headers pads, one new header a round
                    // trip would hold the header slot for as long as it
                    // liked. Another peer is asked; no penalty (a reply
                    // crossing another peer's can overlap by chance).
                    self.header_strike(peer, "a full reply of mostly known headers");
                    if self.headers_next.is_none() {
                        self.maybe_request_headers(None);
                    }
                    // Fall through: headers_next, if any, is asked below.
                } else if self.claims_unproven(&peer) {
                    // Known headers in reply to a claim of more work: a
                    // peer does not keep us waiting on a chain it lacks.
                    self.header_strike(peer, "its headers stop short of the work it claims");
                    self.headers_exhausted(&peer);
                } else {
                    self.header_success(&peer);
                    self.headers_exhausted(&peer);
                }
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
    pub(in crate::p2p) fn header_strike(&mut self, peer: PeerId, why: &str) {
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
    pub(in crate::p2p) fn check_header_timeout(&mut self, now: Instant) {
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
}
