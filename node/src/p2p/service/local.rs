//! Our own chain as peers see it: the cached local view read on a blocking
//! thread, the initial-sync judgement, and the status we send.

use crate::p2p::codec::{Request, Status};
use libp2p::PeerId;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Internal, LocalView, Service, INITIAL_SYNC_LAG, MAX_TIP_AGE_SECS};

impl Service {
    /// Reads tip, best header and commitment on a blocking thread.
    pub(in crate::p2p) fn refresh_local(&mut self) {
        if self.refreshing {
            self.refresh_again = true;
            return;
        }
        self.refreshing = true;
        let chain = self.chain.clone();
        let tx = self.internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            // The commitment must belong to the tip we report: retry if a
            // block connected in between.
            let mut view = None;
            for _ in 0..3 {
                let tip = chain.tip();
                let commitment = chain.utxo_commitment();
                let best_header = chain.best_header();
                let served = chain.served_bodies();
                if chain.tip().hash == tip.hash {
                    view = Some(LocalView { tip, best_header, commitment, served });
                    break;
                }
            }
            let _ = tx.send(Internal::Local(view));
        });
    }

    /// Initial sync, decided on the node's own evidence only: the best
    /// header chain we hold (its proof of work checked, and above the
    /// anti-DoS work threshold) is far ahead of the tip, and the tip is
    /// old. A peer's claimed height or work never counts: a peer could
    /// otherwise hold us in initial sync for free by claiming a chain and
    /// serving nothing.
    pub(in crate::p2p) fn update_sync_state(&mut self) {
        let Some(local) = self.local else { return };
        let target = local.best_header.height.0;
        let height = local.tip.height.0;
        let stale = local.tip.time.saturating_add(MAX_TIP_AGE_SECS) < crate::p2p::peers::unix_now();
        let syncing = stale && target > height.saturating_add(INITIAL_SYNC_LAG);
        let was = self.shared.initial_sync.swap(syncing, Ordering::Relaxed);
        if syncing {
            if !was {
                tracing::info!(height, target, "initial sync started");
            }
            self.progress.tick(Instant::now(), height, target);
        } else if was {
            tracing::info!(height, "initial sync finished");
            self.progress.reset();
        }
    }

    /// Our status from the cached view (`None` before the first read).
    pub(in crate::p2p) fn our_status(&self) -> Option<Status> {
        self.local.map(|l| Status {
            genesis: self.genesis,
            best_hash: l.tip.hash,
            height: l.tip.height.0,
            chainwork: l.tip.chainwork,
            utxo_commitment: l.commitment,
        })
    }

    pub(in crate::p2p) fn request_status(&mut self, peer: PeerId) {
        // Which bodies it keeps does not depend on our view: ask even
        // before our first chain read.
        self.request_services(peer);
        let Some(status) = self.our_status() else {
            return;
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.status_pending = true;
        p.last_status = Some(Instant::now());
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, Request::Status(status));
        self.status_requests.insert(id, peer);
    }
}
