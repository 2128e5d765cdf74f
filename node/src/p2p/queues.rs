//! The service's queues and their bounds, read on its own task: the
//! `p2p_service` fuzz target holds them to their bounds after every step,
//! and tests read them.

use super::service::{
    Command, Service, MAX_GOSSIP_BACKLOG, MAX_GOSSIP_BACKLOG_BYTES, MAX_PRESYNC_HEADERS, MAX_SERVING_BYTES,
    MAX_SERVING_PER_PEER, MAX_TX_BACKLOG, MAX_TX_BACKLOG_BYTES, MAX_TX_BACKLOG_PEER, MAX_TX_BACKLOG_PEER_BYTES,
};
use super::P2pHandle;
use std::collections::HashMap;
use tokio::sync::oneshot;

/// The service's queues, read on its own task.
#[derive(Clone, Debug, Default)]
pub struct QueueStats {
    /// Gossip blocks waiting for validation, and their bytes.
    pub gossip_backlog: usize,
    /// Bytes of those.
    pub gossip_backlog_bytes: usize,
    /// Gossip transactions waiting for the mempool.
    pub tx_backlog: usize,
    /// Bytes of those.
    pub tx_backlog_bytes: usize,
    /// The largest share of that backlog's bytes held by one sender.
    pub tx_backlog_peer_max: usize,
    /// The most transactions of that backlog from one sender.
    pub tx_backlog_peer_count_max: usize,
    /// Inbound requests being served.
    pub serving: usize,
    /// Bytes held for their replies.
    pub serving_bytes: usize,
    /// The most requests one peer has being served.
    pub serving_per_peer_max: usize,
    /// Headers of a light chain held while it is checked.
    pub presync_headers: usize,
    /// Connected peers.
    pub peers: usize,
    /// Compact blocks being rebuilt.
    pub compact_pending: usize,
    /// Kademlia lookups started so far (a counter, not a queue: tests
    /// see discovery retries through it).
    pub discovery_lookups: u64,
}

impl QueueStats {
    /// The first queue beyond its bound, named; `max_peers` is the
    /// service's connection limit.
    pub fn check(&self, max_peers: usize) -> Result<(), String> {
        let bounds = [
            ("gossip backlog", self.gossip_backlog, MAX_GOSSIP_BACKLOG),
            ("gossip backlog bytes", self.gossip_backlog_bytes, MAX_GOSSIP_BACKLOG_BYTES),
            ("tx backlog", self.tx_backlog, MAX_TX_BACKLOG),
            ("tx backlog bytes", self.tx_backlog_bytes, MAX_TX_BACKLOG_BYTES),
            ("tx backlog of one peer", self.tx_backlog_peer_max, MAX_TX_BACKLOG_PEER_BYTES),
            ("tx backlog count of one peer", self.tx_backlog_peer_count_max, MAX_TX_BACKLOG_PEER),
            ("serving bytes", self.serving_bytes, MAX_SERVING_BYTES),
            ("requests served for one peer", self.serving_per_peer_max, MAX_SERVING_PER_PEER),
            ("presync headers", self.presync_headers, MAX_PRESYNC_HEADERS),
            ("peers", self.peers, max_peers),
            ("compact blocks being rebuilt", self.compact_pending, crate::p2p::compact::MAX_PENDING),
        ];
        match bounds.iter().find(|(_, n, bound)| n > bound) {
            Some((what, n, bound)) => Err(format!("{what}: {n} > {bound} ({self:?})")),
            None => Ok(()),
        }
    }

    /// Whether every backlog is empty.
    pub fn drained(&self) -> bool {
        self.gossip_backlog == 0
            && self.gossip_backlog_bytes == 0
            && self.tx_backlog == 0
            && self.tx_backlog_bytes == 0
            && self.tx_backlog_peer_max == 0
            && self.serving == 0
            && self.serving_bytes == 0
    }
}

impl Service {
    pub(super) fn queue_stats(&self) -> QueueStats {
        let mut per_peer: HashMap<_, usize> = HashMap::new();
        for (peer, _) in self.serving.values() {
            *per_peer.entry(*peer).or_default() += 1;
        }
        QueueStats {
            gossip_backlog: self.gossip_backlog,
            gossip_backlog_bytes: self.gossip_backlog_bytes,
            tx_backlog: self.tx_backlog,
            tx_backlog_bytes: self.tx_backlog_bytes,
            tx_backlog_peer_max: self.tx_backlog_peer.values().map(|b| b.bytes).max().unwrap_or(0),
            tx_backlog_peer_count_max: self.tx_backlog_peer.values().map(|b| b.count).max().unwrap_or(0),
            serving: self.serving.len(),
            serving_bytes: self.serving_bytes,
            serving_per_peer_max: per_peer.values().copied().max().unwrap_or(0),
            presync_headers: self.presync.as_ref().map_or(0, |(_, h)| h.len()),
            peers: self.peers.len(),
            compact_pending: self.compact.pending.len(),
            discovery_lookups: self.kad_lookups,
        }
    }
}

impl P2pHandle {
    /// The service's queues (None once it has stopped).
    pub async fn queues(&self) -> Option<QueueStats> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Queues(tx)).await.ok()?;
        rx.await.ok()
    }
}
