//! Work off the network loop: block and transaction validation workers
//! (chain calls block), and the bounded set of gossip ids already seen.

use super::compact::ExtraPool;
use super::service::{Internal, Origin};
use crate::chain_api::{BlockSource, NetworkChain, TxOutcome};
use libp2p::gossipsub::MessageId;
use libp2p::PeerId;
use lode_core::block::Block;
use lode_core::Transaction;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Work for the block validation worker.
pub(crate) struct BlockJob {
    pub block: Block,
    pub origin: Origin,
}

/// Submits blocks one batch at a time, in arrival order, so a synced run
/// of blocks reaches the chain parent first.
pub(super) async fn block_worker(
    chain: Arc<dyn NetworkChain>,
    mut rx: mpsc::UnboundedReceiver<BlockJob>,
    out: mpsc::UnboundedSender<Internal>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 16 {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let chain = chain.clone();
        let done = tokio::task::spawn_blocking(move || {
            // Blocks we asked for are stored whatever their work; gossip
            // must beat our tip to be stored (AcceptBlock). Consecutive
            // jobs of one source go to the chain as one run (its pipeline
            // connects them together).
            let source_of = |o: &Origin| match o {
                Origin::Sync { .. } => BlockSource::Requested,
                Origin::Gossip { .. } | Origin::Compact { .. } => BlockSource::Unrequested,
            };
            let mut results = Vec::with_capacity(batch.len());
            let mut jobs = batch.into_iter().peekable();
            while let Some(first) = jobs.next() {
                let source = source_of(&first.origin);
                let mut run = vec![first];
                while let Some(j) = jobs.next_if(|j| source_of(&j.origin) == source) {
                    run.push(j);
                }
                let keys: Vec<_> = run.iter().map(|j| j.block.hash()).collect();
                let (origins, blocks): (Vec<_>, Vec<_>) = run.into_iter().map(|j| (j.origin, j.block)).unzip();
                let outcomes = chain.submit_blocks(blocks, source);
                results.extend(keys.into_iter().zip(origins).zip(outcomes).map(|((h, o), r)| (h, o, r)));
            }
            results
        })
        .await;
        match done {
            Ok(results) => {
                for (hash, origin, outcome) in results {
                    let _ = out.send(Internal::BlockDone { hash, origin, outcome });
                }
            }
            Err(e) => tracing::error!(%e, "block validation task failed"),
        }
    }
}

/// A gossiped transaction's message, its sender and its size (its share
/// of the backlog, released when the mempool has judged it).
#[derive(Debug)]
pub(crate) struct TxJob {
    pub msg: MessageId,
    pub source: PeerId,
    pub bytes: usize,
}

/// Submits gossiped transactions off the network loop. Valid ones the
/// mempool refuses (a conflict, a lost replacement, a missing parent) go
/// to the compact relay's extra pool: the next block may hold them.
pub(super) async fn tx_worker(
    chain: Arc<dyn NetworkChain>,
    mut rx: mpsc::UnboundedReceiver<(Transaction, TxJob)>,
    out: mpsc::UnboundedSender<Internal>,
    extra: Arc<Mutex<ExtraPool>>,
) {
    while let Some((tx, job)) = rx.recv().await {
        let chain = chain.clone();
        let extra = extra.clone();
        let submit = move || {
            let outcome = chain.submit_tx(tx.clone());
            if matches!(outcome, TxOutcome::Rejected(_)) {
                extra.lock().unwrap_or_else(|p| p.into_inner()).insert(tx);
            }
            outcome
        };
        match tokio::task::spawn_blocking(submit).await {
            Ok(outcome) => {
                let _ = out.send(Internal::TxDone { job, outcome });
            }
            Err(e) => tracing::error!(%e, "transaction validation task failed"),
        }
    }
}

/// A gossip message id: the SHA-256 of the payload (the same function the
/// gossipsub config uses).
pub(super) fn gossip_id(data: &[u8]) -> [u8; 32] {
    lode_core::hash::sha256(data)
}

/// A bounded set of recent ids (message ids, block hashes), oldest
/// evicted first.
pub(crate) struct SeenIds {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
    capacity: usize,
}

impl SeenIds {
    /// Gossip message ids remembered.
    pub(crate) const GOSSIP_CAPACITY: usize = 20_000;

    /// An empty set keeping at most `capacity` ids.
    pub(crate) fn with_capacity(capacity: usize) -> SeenIds {
        SeenIds { set: HashSet::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// Whether `id` is there.
    pub(crate) fn contains(&self, id: &[u8; 32]) -> bool {
        self.set.contains(id)
    }

    /// Records `id`; false when it was already there.
    pub(crate) fn insert(&mut self, id: [u8; 32]) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}
