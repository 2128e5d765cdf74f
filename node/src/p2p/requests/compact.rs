//! Compact block relay in the service: compact blocks arriving by gossip
//! (header checked in context and rebuild begun off the loop), missing
//! transactions asked of the sender, the fallback to the whole block,
//! fast relay before connecting, `getblocktxn` and vouches served, and the
//! chain's verdict turned into penalties by the rule of `compact/mod.rs`:
//! forwarders answer for the header, vouchers for the block.

use crate::chain_api::{BlockOutcome, HeadersOutcome};
use crate::p2p::compact::reconstruct::TxSource;
use crate::p2p::compact::{
    Alternate, CmpctRequest, CmpctResponse, CompactBlock, CompactError, PartialBlock, Pending, Prepared, RelayCounters,
    MAX_ALTERNATES, MAX_PENDING, MAX_PENDING_PER_PEER,
};
use crate::p2p::peers::penalty;
use crate::p2p::service::{Internal, Origin, Service};
use crate::p2p::workers::BlockJob;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use lode_core::block::Block;
use lode_core::{Hash256, Transaction};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A rebuild still pending after this is dropped (the block comes by sync).
const PENDING_EXPIRY: Duration = Duration::from_secs(30);

/// Own blocks relayed before their connect that are remembered for the
/// vouch that follows it (one or two are ever pending).
const MADE_HERE_REMEMBERED: usize = 16;
impl Service {
    /// A compact block arrived by gossip.
    pub(super) fn on_compact_gossip(&mut self, source: PeerId, msg: MessageId, data: &[u8]) {
        let counters = self.compact.counters.clone();
        RelayCounters::add(&counters.compact_blocks, 1);
        RelayCounters::add(&counters.compact_bytes, data.len());
        let compact = match CompactBlock::decode(data, self.max_block_size) {
            Ok(c) => c,
            Err(e) => {
                self.report(&msg, &source, MessageAcceptance::Ignore);
                self.misbehave(source, penalty::MALFORMED, &format!("undecodable compact block: {e}"));
                return;
            }
        };
        // Proof of work first: this is all a forwarder answers for.
        if let Err(e) = lode_core::validation::check_header(&compact.header, self.chain.spec()) {
            self.report(&msg, &source, MessageAcceptance::Ignore);
            self.misbehave(source, penalty::INVALID_BLOCK, &format!("compact block fails proof of work: {e}"));
            return;
        }
        let hash = compact.header.hash();
        if let Some(p) = self.compact.pending.get_mut(&hash) {
            let known = p.source == source || p.alternates.iter().any(|a| a.source == source);
            if !known && p.alternates.len() < MAX_ALTERNATES {
                p.alternates.push(Alternate { source, msg, compact });
            } else {
                self.report(&msg, &source, MessageAcceptance::Ignore);
            }
            return;
        }
        let held_by_source = self.compact.pending.values().filter(|p| p.source == source).count();
        if self.compact.invalid.contains(&hash.0)
            || self.compact.pending.len() >= MAX_PENDING
            || held_by_source >= MAX_PENDING_PER_PEER
        {
            self.report(&msg, &source, MessageAcceptance::Ignore);
            return;
        }
        // Taken on: whatever happens next, we never announce this block
        // compact ourselves (gossipsub forwards this message if it is
        // good). One ignored above may still be announced once it connects.
        self.compact.handled.insert(hash.0);
        let fast = self.local.is_some_and(|l| l.tip.hash == compact.header.prev_hash);
        self.compact.pending.insert(
            hash,
            Pending {
                header: compact.header,
                tx_count: compact.tx_count(),
                fallback: false,
                source,
                msg: Some(msg),
                fast,
                partial: None,
                since: Instant::now(),
                alternates: Vec::new(),
            },
        );
        self.prepare_compact(hash, compact);
    }

    /// Judges the header and starts the rebuild on a blocking thread; the
    /// answer comes back as [`Internal::CompactPrepared`].
    fn prepare_compact(&self, hash: Hash256, compact: CompactBlock) {
        let chain = self.chain.clone();
        let extra = self.compact.extra.clone();
        let tx = self.internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            let prepared = if chain.has_block(&hash) {
                Prepared::AlreadyHave
            } else {
                match chain.accept_headers(&[compact.header]) {
                    // Bitcoin Core likewise rebuilds only a block with more
                    // work than its tip: the rest can come by sync.
                    HeadersOutcome::Accepted { .. }
                        if chain.header_work(&hash).is_none_or(|work| work <= chain.tip().chainwork) =>
                    {
                        Prepared::NotBest
                    }
                    HeadersOutcome::Accepted { .. } => {
                        let pool = |f: &mut dyn FnMut(&Hash256, &Transaction)| chain.mempool_scan(f);
                        let extra = |f: &mut dyn FnMut(&Hash256, &Transaction)| {
                            extra.lock().unwrap_or_else(|p| p.into_inner()).scan(f)
                        };
                        let sources: [&dyn TxSource; 2] = [&pool, &extra];
                        Prepared::Started(PartialBlock::start(&compact, &sources))
                    }
                    HeadersOutcome::Unconnected => Prepared::Orphan,
                    HeadersOutcome::LowWork => Prepared::LowWork,
                    HeadersOutcome::Invalid(reason) => Prepared::HeaderInvalid(reason),
                }
            };
            let _ = tx.send(Internal::CompactPrepared { hash, prepared });
        });
    }

    /// The header was judged and the rebuild begun.
    pub(super) fn on_compact_prepared(&mut self, hash: Hash256, prepared: Prepared) {
        let Some(source) = self.compact.pending.get(&hash).map(|p| p.source) else { return };
        match prepared {
            Prepared::AlreadyHave | Prepared::LowWork | Prepared::NotBest => {
                self.compact_drop(&hash, MessageAcceptance::Ignore)
            }
            Prepared::HeaderInvalid(reason) => {
                self.compact_drop(&hash, MessageAcceptance::Ignore);
                // A forwarder must check the header in context before
                // relaying: this much it answers for.
                self.misbehave(source, penalty::INVALID_HEADERS, &format!("compact block header invalid: {reason}"));
            }
            Prepared::Orphan => {
                self.compact_drop(&hash, MessageAcceptance::Ignore);
                self.request_headers_for_orphan(source, hash);
            }
            Prepared::Started(Err(e)) => {
                tracing::debug!(%hash, %e, "compact block cannot be rebuilt; asking for the whole block");
                self.compact_fallback(&hash);
            }
            Prepared::Started(Ok(partial)) => {
                RelayCounters::add(&self.compact.counters.txs_from_pool, partial.filled_from_pool());
                if partial.missing().is_empty() {
                    let rebuilt = partial.finish();
                    self.compact_rebuilt(&hash, rebuilt);
                } else {
                    self.compact_ask(&hash, partial);
                }
            }
        }
    }

    /// Asks the sender for the transactions `partial` lacks.
    fn compact_ask(&mut self, hash: &Hash256, partial: PartialBlock) {
        let Some(p) = self.compact.pending.get_mut(hash) else { return };
        let request = CmpctRequest::GetBlockTxn { hash: *hash, indexes: partial.missing().to_vec() };
        p.partial = Some(partial);
        let id = self.swarm.behaviour_mut().cmpct.send_request(&p.source, request);
        self.compact.txn_requests.insert(id, *hash);
    }

    /// The rebuild failed (collision, merkle mismatch, a bad reply): ask
    /// for every transaction, once; after that, leave the block to sync.
    fn compact_fallback(&mut self, hash: &Hash256) {
        let Some(p) = self.compact.pending.get_mut(hash) else { return };
        if p.fallback {
            self.compact_next_source(hash);
            return;
        }
        p.fallback = true;
        RelayCounters::add(&self.compact.counters.fallbacks, 1);
        let blank = PartialBlock::blank(p.header, p.tx_count);
        self.compact_ask(hash, blank);
    }

    /// A block is rebuilt (or failed to): forward it if it extends our tip,
    /// then hand it to the chain.
    fn compact_rebuilt(&mut self, hash: &Hash256, rebuilt: Result<Block, CompactError>) {
        let block = match rebuilt {
            Ok(b) => b,
            Err(e) => {
                let Some(p) = self.compact.pending.get(hash) else { return };
                if p.fallback && e == CompactError::MerkleMismatch {
                    // Every transaction came from the sender, and an honest
                    // one checked the root before relaying.
                    let source = p.source;
                    self.misbehave(source, penalty::INVALID_BLOCK, "blocktxn contradicts its header's merkle root");
                    self.compact_next_source(hash);
                } else {
                    tracing::debug!(%hash, %e, "rebuilt block does not match; asking for the whole block");
                    self.compact_fallback(hash);
                }
                return;
            }
        };
        RelayCounters::add(&self.compact.counters.reconstructed, 1);
        let block = Arc::new(block);
        // Whoever we forward to may ask us for transactions.
        self.compact.remember(block.clone());
        let Some(p) = self.compact.pending.get_mut(hash) else { return };
        let source = p.source;
        if p.fast {
            if let Some(msg) = p.msg.take() {
                // High-bandwidth relay: on before the chain has judged it.
                RelayCounters::add(&self.compact.counters.fast_relayed, 1);
                self.report(&msg, &source, MessageAcceptance::Accept);
            }
        }
        let _ = self.block_jobs.send(BlockJob { block: (*block).clone(), origin: Origin::Compact { source } });
    }

    /// Forgets a pending rebuild, reporting its message if still
    /// unreported; other peers' copies are never forwarded.
    fn compact_drop(&mut self, hash: &Hash256, acceptance: MessageAcceptance) {
        if let Some(p) = self.compact.pending.remove(hash) {
            if let Some(msg) = p.msg {
                self.report(&msg, &p.source, acceptance);
            }
            for other in p.alternates {
                self.report(&other.msg, &other.source, MessageAcceptance::Ignore);
            }
        }
    }

    /// The rebuild's source failed us without proof of fault (no reply,
    /// an empty one, a rebuild that would not match): start again from
    /// the next peer's copy, or leave the block to sync when none is left.
    fn compact_next_source(&mut self, hash: &Hash256) {
        let Some(p) = self.compact.pending.get_mut(hash) else { return };
        if p.alternates.is_empty() {
            self.compact_drop(hash, MessageAcceptance::Ignore);
            return;
        }
        let next = p.alternates.remove(0);
        let (failed, failed_msg) = (p.source, p.msg.take());
        p.source = next.source;
        p.msg = Some(next.msg);
        p.fallback = false;
        p.partial = None;
        // The count is the copy's own: a fallback asks its sender for
        // every index, and one past its block gets us banned.
        p.tx_count = next.compact.tx_count();
        p.since = Instant::now();
        tracing::debug!(%hash, %failed, next = %next.source, "compact rebuild moves to another peer's copy");
        if let Some(msg) = failed_msg {
            self.report(&msg, &failed, MessageAcceptance::Ignore);
        }
        self.prepare_compact(*hash, next.compact);
    }

    /// The chain's verdict on a rebuilt block.
    pub(super) fn on_compact_block_done(&mut self, hash: Hash256, source: PeerId, outcome: BlockOutcome) {
        let acceptance = match outcome {
            BlockOutcome::Accepted { new_tip: true } => {
                self.note_novel_block(source);
                MessageAcceptance::Accept
            }
            BlockOutcome::Accepted { new_tip: false }
            | BlockOutcome::AlreadyHave
            | BlockOutcome::LowWork
            | BlockOutcome::Deferred(_) => MessageAcceptance::Ignore,
            BlockOutcome::Orphan { .. } => {
                self.request_headers_for_orphan(source, hash);
                MessageAcceptance::Ignore
            }
            BlockOutcome::Invalid(reason) => {
                self.compact.invalid.insert(hash.0);
                // The forwarder only vouched for the header; whoever
                // announced the block as connected answers for it.
                tracing::info!(%hash, peer = %source, %reason, "compact block invalid; its forwarder is not penalised");
                for voucher in self.compact.take_vouchers(&hash) {
                    self.misbehave(voucher, penalty::INVALID_BLOCK, &format!("vouched for invalid block {hash}"));
                }
                MessageAcceptance::Ignore
            }
        };
        self.compact_drop(&hash, acceptance);
    }

    /// Requests and replies of `<prefix>/cmpct/1`.
    pub(in crate::p2p) fn on_cmpct_event(&mut self, ev: request_response::Event<CmpctRequest, CmpctResponse>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.on_cmpct_request(peer, request, channel)
                }
                request_response::Message::Response { request_id, response } => {
                    self.on_cmpct_response(peer, request_id, response)
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                if self.compact.vouch_requests.remove(&request_id).is_some() {
                    tracing::debug!(%peer, %error, "vouch request failed");
                    self.send_vouches(peer);
                    return;
                }
                if let Some(hash) = self.compact.txn_requests.remove(&request_id) {
                    tracing::debug!(%peer, %hash, %error, "getblocktxn failed");
                    // Another peer's copy if one came, else sync.
                    self.compact_next_source(&hash);
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => match error {
                request_response::InboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    self.misbehave(peer, penalty::MALFORMED, &format!("malformed compact request: {e}"));
                }
                e => tracing::debug!(%peer, %e, "inbound compact request failed"),
            },
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_cmpct_request(&mut self, peer: PeerId, request: CmpctRequest, channel: ResponseChannel<CmpctResponse>) {
        let allowed = self.peers.get_mut(&peer).is_none_or(|p| p.requests.take(Instant::now()));
        if !allowed {
            self.misbehave(peer, penalty::FLOOD, "request rate limit exceeded");
            return;
        }
        match request {
            CmpctRequest::Malformed(why) => {
                self.misbehave(peer, penalty::MALFORMED, &format!("malformed compact request: {why}"));
            }
            CmpctRequest::Vouch { hashes } => {
                RelayCounters::add(&self.compact.counters.vouch_requests, 1);
                let _ = self.swarm.behaviour_mut().cmpct.send_response(channel, CmpctResponse::Ack);
                for hash in hashes {
                    if self.compact.invalid.contains(&hash.0) {
                        self.misbehave(peer, penalty::INVALID_BLOCK, &format!("vouched for invalid block {hash}"));
                        return;
                    }
                    self.compact.vouch(hash, peer);
                }
            }
            CmpctRequest::GetBlockTxn { hash, indexes } => {
                if let Some(block) = self.compact.recent(&hash) {
                    match pick(&block, &indexes) {
                        Some(txs) => {
                            let response = CmpctResponse::BlockTxn { hash, txs };
                            let _ = self.swarm.behaviour_mut().cmpct.send_response(channel, response);
                        }
                        None => self.misbehave(peer, penalty::MALFORMED, "getblocktxn index beyond the block"),
                    }
                    return;
                }
                // Not kept: answered empty, never read from the store. A
                // block we relayed compact is among the recent ones unless
                // newer blocks pushed it out, and then the asker's rebuild
                // is stale and sync serves it whole, within the serving
                // budget. Reading the store here would let any peer buy a
                // chain-lock hold and a block read for a 41-byte request
                // (Bitcoin Core's MAX_BLOCKTXN_DEPTH rule, stricter).
                let response = CmpctResponse::BlockTxn { hash, txs: Vec::new() };
                let _ = self.swarm.behaviour_mut().cmpct.send_response(channel, response);
            }
        }
    }

    fn on_cmpct_response(&mut self, peer: PeerId, id: OutboundRequestId, response: CmpctResponse) {
        if self.compact.vouch_requests.remove(&id).is_some() {
            self.send_vouches(peer);
            return;
        }
        let Some(hash) = self.compact.txn_requests.remove(&id) else { return };
        let txs = match response {
            CmpctResponse::BlockTxn { hash: h, txs } if h == hash => txs,
            _ => {
                self.misbehave(peer, penalty::UNSOLICITED, "wrong reply to getblocktxn");
                self.compact_fallback(&hash);
                return;
            }
        };
        let counters = self.compact.counters.clone();
        RelayCounters::add(&counters.compact_bytes, 37 + txs.iter().map(Transaction::encoded_size).sum::<usize>());
        RelayCounters::add(&counters.txs_fetched, txs.len());
        let Some(partial) = self.compact.pending.get_mut(&hash).and_then(|p| p.partial.take()) else { return };
        if txs.is_empty() {
            // It no longer has the block: another peer's copy, or sync.
            self.compact_next_source(&hash);
            return;
        }
        match partial.fill(txs) {
            Err(e @ CompactError::WrongTxCount { .. }) => {
                self.misbehave(peer, penalty::UNSOLICITED, &format!("blocktxn: {e}"));
                self.compact_fallback(&hash);
            }
            rebuilt => self.compact_rebuilt(&hash, rebuilt),
        }
    }

    /// Announces a block we connected: compact to peers that speak it
    /// (with our vouch), whole to those that do not.
    /// Relays a block made here compact before it is connected (see
    /// [`crate::chain_api::ChainEvent::Prevalidated`]); the vouch follows
    /// once it connects.
    pub(in crate::p2p) fn announce_prevalidated(&mut self, block: Arc<Block>) {
        let hash = block.hash();
        if self.compact.enabled && self.compact.handled.insert(hash.0) {
            self.publish_compact(block);
            self.compact.made_here.push_back(hash);
            if self.compact.made_here.len() > MADE_HERE_REMEMBERED {
                self.compact.made_here.pop_front();
            }
        }
    }

    fn publish_compact(&mut self, block: Arc<Block>) {
        let data = CompactBlock::from_block(&block, rand::random()).encode();
        self.compact.remember(block);
        self.seen.insert(crate::p2p::workers::gossip_id(&data));
        let topic = self.names.cmpct_blocks.clone();
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
            tracing::debug!(%e, "announcing a compact block failed");
        }
    }

    pub(in crate::p2p) fn announce_block(&mut self, block: Arc<Block>) {
        let hash = block.hash();
        RelayCounters::add(&self.compact.counters.blocks_announced, 1);
        let made_here = match self.compact.made_here.iter().position(|h| *h == hash) {
            Some(i) => self.compact.made_here.remove(i).is_some(),
            None => false,
        };
        if self.compact.enabled && (self.compact.handled.insert(hash.0) || made_here) {
            if !made_here {
                self.publish_compact(block.clone());
            }
            for peer in self.compact_peers() {
                self.compact.queue_vouch(peer, hash);
                self.send_vouches(peer);
            }
        }
        if !self.compact.enabled || self.legacy_peers_present() {
            let data = lode_core::codec::Encode::encode(block.as_ref());
            // What came by gossip is forwarded by gossipsub once validated.
            if self.seen.insert(crate::p2p::workers::gossip_id(&data)) {
                let topic = self.names.blocks.clone();
                if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
                    tracing::debug!(%e, "announcing a block failed");
                }
            }
        }
    }

    /// Sends `peer` our queued vouches unless one request is in flight.
    fn send_vouches(&mut self, peer: PeerId) {
        if let Some(hashes) = self.compact.take_vouches(&peer) {
            let id = self.swarm.behaviour_mut().cmpct.send_request(&peer, CmpctRequest::Vouch { hashes });
            self.compact.vouch_requests.insert(id, peer);
        }
    }

    /// Peers subscribed to compact blocks.
    fn compact_peers(&self) -> Vec<PeerId> {
        let cmpct = self.names.cmpct_blocks.hash();
        self.swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&cmpct))
            .map(|(p, _)| *p)
            .collect()
    }

    /// Whether a connected peer takes full blocks but not compact ones
    /// (another implementation, or a node with compact relay off): only
    /// then are full blocks gossiped.
    pub(in crate::p2p) fn legacy_peers_present(&self) -> bool {
        let (blocks, cmpct) = (self.names.blocks.hash(), self.names.cmpct_blocks.hash());
        self.swarm.behaviour().gossipsub.all_peers().any(|(_, t)| t.contains(&&blocks) && !t.contains(&&cmpct))
    }

    /// Drops rebuilds that have waited too long (their requests were lost).
    pub(in crate::p2p) fn expire_compact(&mut self, now: Instant) {
        let old: Vec<Hash256> = self
            .compact
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.since) > PENDING_EXPIRY)
            .map(|(h, _)| *h)
            .collect();
        for h in old {
            self.compact_drop(&h, MessageAcceptance::Ignore);
        }
    }
}

/// The transactions of `block` at `indexes`; `None` if one is outside it.
fn pick(block: &Block, indexes: &[u32]) -> Option<Vec<Transaction>> {
    indexes.iter().map(|i| block.transactions.get(*i as usize).cloned()).collect()
}
