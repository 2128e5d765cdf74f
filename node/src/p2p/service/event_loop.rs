//! The network task's event loop and its periodic maintenance: ban and
//! dial expiry, status exchange, header and download scheduling, gossip
//! score checks, dialing, score decay, discovery and peer store saves.

use crate::chain_api::ChainEvent;
use futures::StreamExt;
use libp2p::swarm::ConnectionId;
use libp2p::PeerId;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

use super::{Command, Internal, Service, KAD_INTERVAL};

impl Service {
    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut internal: mpsc::UnboundedReceiver<Internal>,
        events: broadcast::Receiver<ChainEvent>,
    ) {
        let mut events = Some(events);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let done = loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown(done)) => break Some(done),
                    Some(cmd) => self.on_command(cmd),
                    // Every handle is gone: nobody can use the network.
                    None => break None,
                },
                Some(msg) = internal.recv() => self.on_internal(msg),
                ev = next_event(&mut events) => self.on_chain_event(ev, &mut events),
                _ = tick.tick() => self.on_tick(),
            }
        };
        self.store.expire_bans();
        if let Err(e) = self.store.flush() {
            tracing::warn!(%e, "cannot save the peer store");
        }
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in connected {
            let _ = self.swarm.disconnect_peer_id(p);
        }
        tracing::info!("p2p network stopped");
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.flush_sync_announce();
        for peer in self.store.expire_bans() {
            tracing::info!(%peer, "ban expired");
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
        let expired: Vec<ConnectionId> =
            self.pending_dials.iter().filter(|(_, d)| d.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(dial) = self.pending_dials.remove(&id) {
                dial.answer(Some("timed out"));
            }
        }
        self.refresh_local();
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                !p.status_pending
                    && p.last_status.is_none_or(|t| now.saturating_duration_since(t) >= self.config.status_interval)
            })
            .map(|(id, _)| *id)
            .collect();
        for p in due {
            self.request_status(p);
        }
        self.check_header_timeout(now);
        self.maybe_request_headers(None);
        if let Some(peer) = self.downloader.check_stall(now) {
            tracing::info!(%peer, timeout = ?self.downloader.stall_timeout(), "block download stalled on a peer; its blocks go to others");
        }
        self.schedule_downloads();
        self.check_archive_peers(now);
        self.check_gossip_scores();
        self.expire_compact(now);
        self.forget_gone_peers();
        if now.saturating_duration_since(self.last_dial) >= self.config.dial_interval {
            self.last_dial = now;
            self.top_up();
        }
        if now.saturating_duration_since(self.last_decay) >= Duration::from_secs(60) {
            self.last_decay = now;
            // Old offences fade: one point a minute back toward zero.
            for p in self.peers.values_mut() {
                p.score = (p.score + 1).min(0);
            }
        }
        let short = self.outbound_groups().0 < self.config.target_outbound;
        let due = if short { self.kad_retry } else { KAD_INTERVAL };
        if self.kad_wanted || now.saturating_duration_since(self.last_kad) >= due {
            // With an empty table there is nobody to ask.
            if self.swarm.behaviour_mut().kad.as_mut().is_some_and(|k| k.kbuckets().next().is_some()) {
                self.discover();
                if short {
                    self.kad_retry = (self.kad_retry * 2).min(KAD_INTERVAL);
                }
            }
        }
        if now.saturating_duration_since(self.last_save) >= Duration::from_secs(10) {
            self.last_save = now;
            if let Err(e) = self.store.save() {
                tracing::warn!(%e, "cannot save the peer store");
            }
        }
        self.update_sync_state();
    }
}

impl Service {
    /// Drops per-peer state of peers that are gone (the disconnect
    /// handler clears the rest).
    fn forget_gone_peers(&mut self) {
        let peers = &self.peers;
        self.header_sources.retain(|p, _| peers.contains_key(p));
        self.gossip_scores.retain(|p, _| peers.contains_key(p));
        if let Some((p, _)) = &self.presync {
            if !peers.contains_key(p) {
                self.presync = None;
            }
        }
    }

    /// Charges peers for gossip that gossipsub refused before we saw it
    /// (above a topic's size limit, or carrying fields an anonymous
    /// message must not have): their gossipsub score, fed only by such
    /// refusals, dropped since the last check.
    fn check_gossip_scores(&mut self) {
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in peers {
            let Some(score) = self.swarm.behaviour().gossipsub.peer_score(&peer) else { continue };
            let last = self.gossip_scores.insert(peer, score).unwrap_or(0.0);
            if score < last - 1e-9 {
                self.misbehave(
                    peer,
                    crate::p2p::peers::penalty::MALFORMED,
                    "oversized or malformed gossip (refused by gossipsub)",
                );
            }
        }
    }
}

async fn next_event(
    events: &mut Option<broadcast::Receiver<ChainEvent>>,
) -> Result<ChainEvent, broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
