//! Chain events announced to peers: blocks this node connected (except
//! ones its own initial sync fetched; see `requests/compact.rs` for how)
//! and transactions, published over gossipsub.

use crate::chain_api::ChainEvent;
use crate::p2p::workers::{self};
use libp2p::gossipsub::{self};
use std::sync::atomic::Ordering;
use tokio::sync::broadcast;

use super::{Internal, Service};

/// Most bytes of mempool transactions re-announced after missed chain
/// events (the pool can be far larger; what is left out reaches peers when
/// mined).
const REANNOUNCE_MAX_BYTES: usize = 32 * 1024 * 1024;

impl Service {
    /// Announces the newest block a catch-up fetched, if the download is
    /// idle (called on the one-second tick).
    pub(in crate::p2p) fn flush_sync_announce(&mut self) {
        // Checked here, not when the block connected: a catch-up long
        // enough to count as initial sync again ends in it, and its newest
        // block is still news once it is over (seen: never announced).
        if !self.downloader.is_idle() || self.shared.initial_sync.load(Ordering::Relaxed) {
            return;
        }
        if let Some(b) = self.sync_announce.take() {
            self.announced.insert(b.hash().0);
            self.announce_block(b);
        }
    }

    pub(super) fn on_chain_event(
        &mut self,
        ev: Result<ChainEvent, broadcast::error::RecvError>,
        events: &mut Option<broadcast::Receiver<ChainEvent>>,
    ) {
        let (topic, data) = match ev {
            Ok(ChainEvent::Block(b)) => {
                self.refresh_local();
                let hash = b.hash();
                // Old blocks our own sync fetched are news to nobody while
                // we catch up; a catch-up announces its newest block on the
                // next tick that finds the download idle and initial sync
                // over, not each block of its runs (Core announces a new
                // tip, not a batch). Not on each drain: a download fed
                // one status at a time drains every few blocks (112
                // announcements for 300 blocks, measured). Everything else
                // is announced, initial sync or not: above all what this
                // node mined or was handed over RPC, which nobody else can
                // tell the network about.
                if self.fetched.contains(&hash.0) {
                    self.sync_announce = Some(b);
                    return;
                }
                self.announced.insert(hash.0);
                self.announce_block(b);
                return;
            }
            Ok(ChainEvent::Prevalidated(b)) => {
                self.announce_prevalidated(b);
                return;
            }
            Ok(ChainEvent::Tx(t)) => (self.names.txs.clone(), lode_core::codec::Encode::encode(t.as_ref())),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                // Missed blocks reach peers through status exchange; missed
                // transactions have no such path (there is no mempool sync),
                // so the mempool's are offered again.
                tracing::warn!(skipped = n, "missed chain events; re-announcing the mempool's transactions");
                self.reannounce_mempool();
                return;
            }
            Err(broadcast::error::RecvError::Closed) => {
                *events = None;
                return;
            }
        };
        // Transactions are always announced: in initial sync the node
        // ignores gossiped ones, but its own (RPC, wallet) must leave it.
        self.publish_unseen(topic, data);
    }

    /// Reads the mempool off the loop (at most [`REANNOUNCE_MAX_BYTES`])
    /// and hands its transactions back as [`Internal::Reannounce`].
    fn reannounce_mempool(&mut self) {
        if self.reannouncing {
            // The read under way may predate what was just missed: one more
            // read once it is done (dropping this lost those transactions
            // for good under a long burst).
            self.reannounce_again = true;
            return;
        }
        self.reannouncing = true;
        let chain = self.chain.clone();
        let tx = self.internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut bytes = 0usize;
            chain.mempool_scan(&mut |_, t| {
                if bytes < REANNOUNCE_MAX_BYTES {
                    let data = lode_core::codec::Encode::encode(t);
                    bytes += data.len();
                    out.push(data);
                }
            });
            let _ = tx.send(Internal::Reannounce(out));
        });
    }

    /// Publishes the encoded transactions not announced lately.
    pub(in crate::p2p) fn on_reannounce(&mut self, txs: Vec<Vec<u8>>) {
        self.reannouncing = false;
        let mut announced = 0usize;
        for data in txs {
            announced += usize::from(self.publish_unseen(self.names.txs.clone(), data));
        }
        tracing::info!(announced, "re-announced missed transactions");
        if std::mem::take(&mut self.reannounce_again) {
            self.reannounce_mempool();
        }
    }

    /// Publishes `data` unless we published or forwarded it lately (what
    /// came by gossip is forwarded by gossipsub once validated); true when
    /// it was published.
    fn publish_unseen(&mut self, topic: gossipsub::IdentTopic, data: Vec<u8>) -> bool {
        if !self.seen.insert(workers::gossip_id(&data)) {
            return false;
        }
        match self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
            Ok(_) | Err(gossipsub::PublishError::Duplicate) => {}
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                tracing::debug!("no peer to announce to")
            }
            Err(e) => tracing::warn!(%e, "announcing failed"),
        }
        true
    }
}
