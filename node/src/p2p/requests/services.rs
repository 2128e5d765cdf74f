//! Service advertisement: asking peers which bodies they keep, answering
//! theirs, and what the node makes of the answers (which peers sync may
//! ask for which heights, whether history is reachable at all, and whether
//! enough archive peers are known).

use crate::p2p::peers::{penalty, ServicesState};
use crate::p2p::service::Service;
use crate::p2p::services::{Services, ServicesRequest};
use libp2p::request_response::{self, OutboundFailure};
use libp2p::PeerId;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Fewer known archive peers than this is a warning: one more loss and
/// the history below every pruned peer's horizon may be unreachable.
pub(in crate::p2p) const MIN_ARCHIVE_PEERS: usize = 2;
/// The archive-peer warning and the history-unavailable warning repeat at
/// most this often while their condition lasts.
const WARN_EVERY: Duration = Duration::from_secs(600);
/// A node just started has not met its peers yet: no archive-peer warning
/// before this.
const ARCHIVE_WARN_GRACE: Duration = Duration::from_secs(60);

impl Service {
    /// Asks `peer` which bodies it keeps: on connection, and with each
    /// status request while it prunes (its horizon moves with its tip).
    /// Archive peers and peers that do not speak the protocol are not
    /// asked again.
    pub(in crate::p2p) fn request_services(&mut self, peer: PeerId) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        let ask = match p.services {
            ServicesState::Unknown => true,
            ServicesState::Known(s) => !s.archive,
            ServicesState::Pending | ServicesState::Unsupported => false,
        };
        if !ask {
            return;
        }
        // A pruned peer keeps its last answer until the new one arrives:
        // only a peer never heard from is held back from body requests.
        if p.services == ServicesState::Unknown {
            p.services = ServicesState::Pending;
        }
        self.swarm.behaviour_mut().services.send_request(&peer, ServicesRequest::Query);
    }

    /// What we advertise (`None` before the first read of our chain).
    fn our_services(&self) -> Option<Services> {
        self.local.map(|l| Services {
            archive: l.served.archive,
            lowest_height: if l.served.archive { 0 } else { l.served.lowest.0 },
        })
    }

    pub(in crate::p2p) fn on_services_event(&mut self, ev: request_response::Event<ServicesRequest, Services>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let allowed = self.peers.get_mut(&peer).is_none_or(|p| p.requests.take(Instant::now()));
                    if !allowed {
                        self.misbehave(peer, penalty::FLOOD, "request rate limit exceeded");
                        return;
                    }
                    match request {
                        ServicesRequest::Query => {
                            if let Some(ours) = self.our_services() {
                                let _ = self.swarm.behaviour_mut().services.send_response(channel, ours);
                            }
                        }
                        ServicesRequest::Malformed(why) => {
                            self.misbehave(peer, penalty::MALFORMED, &format!("malformed services request: {why}"))
                        }
                    }
                }
                request_response::Message::Response { response, .. } => self.on_peer_services(peer, response),
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                let Some(p) = self.peers.get_mut(&peer) else { return };
                let unsupported = matches!(error, OutboundFailure::UnsupportedProtocols);
                if unsupported {
                    p.services = ServicesState::Unsupported;
                } else if p.services == ServicesState::Pending {
                    // Asked again with the next status request; no bodies
                    // are asked of it meanwhile.
                    p.services = ServicesState::Unknown;
                }
                match error {
                    OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        self.misbehave(peer, penalty::MALFORMED, &format!("malformed services reply: {e}"));
                    }
                    e if !unsupported => tracing::debug!(%peer, %e, "services request failed"),
                    _ => tracing::debug!(%peer, "peer does not advertise services; assuming it keeps every body"),
                }
                self.schedule_downloads();
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound services request failed")
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_peer_services(&mut self, peer: PeerId, services: Services) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        if p.services != ServicesState::Known(services) {
            tracing::debug!(%peer, archive = services.archive, lowest_height = services.lowest_height, "peer services");
        }
        p.services = ServicesState::Known(services);
        // A horizon that moved down (a resynced peer) may serve what it
        // lacked before.
        self.downloader.forget_lacks(&peer);
        self.update_counts();
        self.schedule_downloads();
    }

    /// History is unavailable when we are behind and the lowest body we
    /// need and do not hold yet (`next`) is below the horizon of every peer
    /// that could serve our best header chain: no request can make
    /// progress, so say so rather than appear to hang. Called after each
    /// scheduling round.
    pub(in crate::p2p) fn check_history(&mut self, eligible: &[(PeerId, u32)], behind: bool, next: u32) {
        let Some(local) = self.local else { return };
        let unavailable = behind && !eligible.is_empty() && eligible.iter().all(|(_, horizon)| *horizon > next);
        let was = self.shared.history_unavailable.swap(unavailable, Ordering::Relaxed);
        let now = Instant::now();
        if unavailable {
            if !was || self.history_warned.is_none_or(|t| now.saturating_duration_since(t) >= WARN_EVERY) {
                self.history_warned = Some(now);
                let lowest = eligible.iter().map(|(_, h)| *h).min().unwrap_or(0);
                tracing::warn!(
                    next_height = next,
                    lowest_served = lowest,
                    peers = eligible.len(),
                    "block history unavailable: every connected peer has pruned the bodies sync needs next; waiting for an archive peer"
                );
            }
        } else if was {
            self.history_warned = None;
            tracing::info!(height = local.tip.height.0, "block history available again: sync continues");
        }
    }

    /// Warns (rate limited) while fewer than [`MIN_ARCHIVE_PEERS`] connected
    /// peers keep the whole history.
    pub(in crate::p2p) fn check_archive_peers(&mut self, now: Instant) {
        let archive = self.shared.archive_peers.load(Ordering::Relaxed);
        if archive >= MIN_ARCHIVE_PEERS {
            self.archive_warned = None;
            return;
        }
        if now.saturating_duration_since(self.started) < ARCHIVE_WARN_GRACE
            || self.archive_warned.is_some_and(|t| now.saturating_duration_since(t) < WARN_EVERY)
        {
            return;
        }
        self.archive_warned = Some(now);
        tracing::warn!(
            archive_peers = archive,
            wanted = MIN_ARCHIVE_PEERS,
            "few archive peers: the block history depends on {archive} connected node(s) keeping every body"
        );
    }
}
