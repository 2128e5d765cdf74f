//! Block download bookkeeping for headers-first sync: which bodies are
//! wanted (in chain order), which peer is fetching which, and which have
//! arrived and wait for their turn to be submitted (the chain accepts them
//! in order). Pure state, driven by the service; no I/O here.

use libp2p::request_response::OutboundRequestId;
use libp2p::PeerId;
use lode_core::block::Block;
use lode_core::Hash256;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug)]
enum Slot {
    Queued,
    InFlight,
    Ready(Box<Block>, PeerId, usize),
}

/// Download window limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most bodies scheduled at once (queued + in flight + waiting).
    pub window: usize,
    /// Most hashes per request.
    pub per_request: usize,
    /// Outstanding requests of a peer whose delivery rate is not measured yet.
    pub per_peer: usize,
    /// Most outstanding requests of one peer, however fast.
    pub per_peer_max: usize,
    /// Most outstanding requests in all (replies are bounded in bytes, so
    /// this bounds the bytes in flight).
    pub max_requests: usize,
    /// Stop requesting while this many downloaded bytes wait for
    /// submission or are being validated.
    pub max_ready_bytes: usize,
    /// First stall timeout: the request holding the lowest missing block
    /// is reassigned once it is this old and the download waits on it.
    pub stall_min: Duration,
    /// The stall timeout doubles on each stall up to this.
    pub stall_max: Duration,
}

/// An outstanding block request.
#[derive(Debug)]
struct InFlight {
    peer: PeerId,
    hashes: Vec<Hash256>,
    sent: Instant,
    /// Given up on (stalled): its blocks went back to the queue, but a
    /// late reply is still used for whatever is not yet downloaded.
    stale: bool,
}

/// What a block reply did to the schedule.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Blocks in the reply that were not asked for.
    pub unsolicited: usize,
    /// Asked-for blocks the reply left out.
    pub missing: usize,
    /// Asked-for blocks it delivered.
    pub received: usize,
}

/// The block download schedule.
#[derive(Debug)]
pub struct Downloader {
    limits: Limits,
    order: VecDeque<Hash256>,
    slots: HashMap<Hash256, Slot>,
    /// Height of each scheduled block (peers serve heights from a horizon up).
    heights: HashMap<Hash256, u32>,
    requests: HashMap<OutboundRequestId, InFlight>,
    peer_requests: HashMap<PeerId, usize>,
    lacks: HashMap<PeerId, HashSet<Hash256>>,
    /// Blocks handed to the chain and not yet processed, with their size.
    submitting: HashMap<Hash256, usize>,
    /// Bytes of downloaded blocks held: waiting for their turn or being
    /// validated.
    ready_bytes: usize,
    /// Current stall timeout (see [`Limits::stall_min`]).
    stall_timeout: Duration,
    /// Peers that stalled the download: one request at a time until they
    /// answer one in time.
    slow: HashSet<PeerId>,
    /// Lowest height each candidate peer serves, as of the last [`Self::plan`].
    horizons: HashMap<PeerId, u32>,
    /// Outstanding requests each candidate may have, as of the last plan.
    allowances: HashMap<PeerId, usize>,
    /// Each peer's measured delivery rate in bytes a second (a moving
    /// average of its replies).
    rates: HashMap<PeerId, f64>,
    /// When each peer's last reply arrived: with requests pipelined, a
    /// reply's time is measured from here, not from when it was sent.
    last_delivery: HashMap<PeerId, Instant>,
    /// No refill before this: the last one offered bodies nobody serves,
    /// and asking again at once would only spin.
    refill_hold: Option<Instant>,
    /// A `missing_blocks` query is running.
    pub refilling: bool,
}

/// How long after dropping bodies nobody serves the window is refilled
/// (the refill offers them again, for a peer that may have come since).
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);

impl Downloader {
    /// An empty schedule.
    pub fn new(limits: Limits) -> Downloader {
        Downloader {
            limits,
            order: VecDeque::new(),
            slots: HashMap::new(),
            heights: HashMap::new(),
            requests: HashMap::new(),
            peer_requests: HashMap::new(),
            lacks: HashMap::new(),
            submitting: HashMap::new(),
            ready_bytes: 0,
            stall_timeout: limits.stall_min,
            slow: HashSet::new(),
            horizons: HashMap::new(),
            allowances: HashMap::new(),
            rates: HashMap::new(),
            last_delivery: HashMap::new(),
            refill_hold: None,
            refilling: false,
        }
    }

    /// Whether the schedule is short enough to ask the chain for more.
    pub fn wants_refill(&self) -> bool {
        !self.refilling
            && self.order.len() + self.submitting.len() < self.limits.window / 2 + 1
            && self.refill_hold.is_none_or(|t| Instant::now() >= t)
    }

    /// How many bodies to ask the chain for.
    pub fn window(&self) -> usize {
        self.limits.window
    }

    /// Schedules bodies (lowest first, with their heights) not already
    /// scheduled or submitted.
    pub fn add(&mut self, blocks: Vec<(Hash256, u32)>) -> usize {
        let mut added = 0;
        for (h, height) in blocks {
            if self.order.len() + self.submitting.len() >= self.limits.window {
                break;
            }
            if self.slots.contains_key(&h) || self.submitting.contains_key(&h) {
                continue;
            }
            self.slots.insert(h, Slot::Queued);
            self.heights.insert(h, height);
            // Bodies come back after being dropped as unavailable: keep
            // the schedule in height order, since it is released in order.
            let heights = &self.heights;
            let at = self.order.partition_point(|o| heights.get(o).is_some_and(|x| *x <= height));
            self.order.insert(at, h);
            added += 1;
        }
        added
    }

    /// The peers that may be asked for bodies now, each with the lowest
    /// height it serves, and how many requests each may have outstanding:
    /// a share of all requests in proportion to its measured delivery rate
    /// (a peer not yet measured gets the default), so a fast peer serves
    /// more and a slow one holds few blocks the window waits on.
    pub fn plan(&mut self, peers: &[(PeerId, u32)]) {
        self.horizons = peers.iter().copied().collect();
        let measured: Vec<f64> = peers.iter().filter_map(|(p, _)| self.rates.get(p).copied()).collect();
        let mean = if measured.is_empty() { 0.0 } else { measured.iter().sum::<f64>() / measured.len() as f64 };
        let total: f64 = peers.iter().map(|(p, _)| self.rates.get(p).copied().unwrap_or(mean)).sum();
        let slots = self.limits.max_requests as f64;
        self.allowances = peers
            .iter()
            .map(|(p, _)| {
                let n = match self.rates.get(p) {
                    // Rounded share; the float is small and non-negative.
                    Some(rate) if total > 0.0 => (slots * rate / total).round() as usize,
                    Some(_) => 1,
                    None => self.limits.per_peer,
                };
                (*p, n.clamp(1, self.limits.per_peer_max))
            })
            .collect();
    }

    /// The next hashes to ask `peer` for, or `None` when it is busy, has
    /// nothing we need at or above its horizon, or too many downloaded
    /// bodies are waiting.
    pub fn next_batch(&mut self, peer: &PeerId) -> Option<Vec<Hash256>> {
        let allowance = if self.slow.contains(peer) {
            1
        } else {
            self.allowances.get(peer).copied().unwrap_or(self.limits.per_peer)
        };
        let horizon = self.horizons.get(peer).copied().unwrap_or(0);
        if self.peer_requests.get(peer).copied().unwrap_or(0) >= allowance
            || self.requests.len() >= self.limits.max_requests
            || self.ready_bytes >= self.limits.max_ready_bytes
        {
            return None;
        }
        let lacks = self.lacks.get(peer);
        let batch: Vec<Hash256> = self
            .order
            .iter()
            .filter(|h| matches!(self.slots.get(*h), Some(Slot::Queued)) && !lacks.is_some_and(|l| l.contains(*h)))
            .filter(|h| self.heights.get(*h).is_some_and(|height| *height >= horizon))
            .take(self.limits.per_request)
            .copied()
            .collect();
        if batch.is_empty() {
            return None;
        }
        for h in &batch {
            self.slots.insert(*h, Slot::InFlight);
        }
        Some(batch)
    }

    /// Records the request that carries a batch from [`Self::next_batch`].
    pub fn register(&mut self, id: OutboundRequestId, peer: PeerId, hashes: Vec<Hash256>) {
        self.register_at(id, peer, hashes, Instant::now());
    }

    fn register_at(&mut self, id: OutboundRequestId, peer: PeerId, hashes: Vec<Hash256>, sent: Instant) {
        *self.peer_requests.entry(peer).or_insert(0) += 1;
        self.requests.insert(id, InFlight { peer, hashes, sent, stale: false });
    }

    fn finish_request(&mut self, id: &OutboundRequestId) -> Option<InFlight> {
        let req = self.requests.remove(id)?;
        if let Some(n) = self.peer_requests.get_mut(&req.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.peer_requests.remove(&req.peer);
            }
        }
        Some(req)
    }

    /// The current stall timeout.
    pub fn stall_timeout(&self) -> Duration {
        self.stall_timeout
    }

    /// Bitcoin Core's block stalling detection: when the lowest block not
    /// yet downloaded holds the download up (blocks wait behind it, or
    /// nothing is left for other peers to fetch) and its request is older
    /// than the stall timeout, that request's blocks go back to the queue
    /// for other peers, the peer is held to one request at a time, and the
    /// timeout doubles (up to the cap) so a slow network is not mistaken
    /// for a stalling peer again and again. Returns the stalling peer.
    pub fn check_stall(&mut self, now: Instant) -> Option<PeerId> {
        let front = self.order.iter().find(|h| !matches!(self.slots.get(*h), Some(Slot::Ready(..))))?;
        if !matches!(self.slots.get(front), Some(Slot::InFlight)) {
            return None;
        }
        let waiting_behind = self.ready_bytes > self.submitting.values().sum::<usize>();
        let nothing_queued = !self.slots.values().any(|s| matches!(s, Slot::Queued));
        if !waiting_behind && !nothing_queued {
            return None;
        }
        let (id, peer) =
            self.requests.iter().find(|(_, r)| !r.stale && r.hashes.contains(front)).map(|(id, r)| (*id, r.peer))?;
        let req = self.requests.get_mut(&id)?;
        if now.saturating_duration_since(req.sent) < self.stall_timeout {
            return None;
        }
        req.stale = true;
        let hashes = req.hashes.clone();
        self.requeue(&hashes);
        self.slow.insert(peer);
        self.stall_timeout = (self.stall_timeout * 2).min(self.limits.stall_max);
        Some(peer)
    }

    fn requeue(&mut self, hashes: &[Hash256]) {
        for h in hashes {
            if let Some(slot @ Slot::InFlight) = self.slots.get_mut(h) {
                *slot = Slot::Queued;
            }
        }
    }

    /// Whether `id` is one of our block requests.
    pub fn owns(&self, id: &OutboundRequestId) -> bool {
        self.requests.contains_key(id)
    }

    /// A block reply: asked-for blocks become ready, left-out ones go back
    /// to the queue (not to this peer again).
    /// `complete` says the reply was not cut short by the responder's
    /// byte budget, so what it left out the peer does not have.
    pub fn on_blocks(
        &mut self,
        id: &OutboundRequestId,
        blocks: Vec<(Block, usize)>,
        complete: bool,
    ) -> Option<(PeerId, Delivery)> {
        self.on_blocks_at(id, blocks, complete, Instant::now())
    }

    fn on_blocks_at(
        &mut self,
        id: &OutboundRequestId,
        blocks: Vec<(Block, usize)>,
        complete: bool,
        now: Instant,
    ) -> Option<(PeerId, Delivery)> {
        let InFlight { peer, hashes, stale, sent } = self.finish_request(id)?;
        let mut asked: HashSet<Hash256> = hashes.iter().copied().collect();
        let mut delivery = Delivery::default();
        let mut bytes = 0usize;
        for (block, size) in blocks {
            let h = block.hash();
            if !asked.remove(&h) {
                delivery.unsolicited += 1;
                continue;
            }
            delivery.received += 1;
            bytes = bytes.saturating_add(size);
            // A late reply to a stalled request still fills blocks that
            // went back to the queue or to another peer.
            if let Some(slot @ (Slot::InFlight | Slot::Queued)) = self.slots.get_mut(&h) {
                *slot = Slot::Ready(Box::new(block), peer, size);
                self.ready_bytes += size;
            }
        }
        delivery.missing = asked.len();
        self.measure(peer, bytes, sent, now);
        if stale {
            // Its blocks were reassigned when it stalled: what it left out
            // is someone else's now.
            return Some((peer, delivery));
        }
        if asked.len() < hashes.len() {
            // Served in time: no longer held back, and the network is
            // faster than the stall timeout assumed (Core decays it too).
            self.slow.remove(&peer);
            self.stall_timeout = self.stall_timeout.mul_f64(0.85).max(self.limits.stall_min);
        }
        if !asked.is_empty() {
            let left: Vec<Hash256> = asked.into_iter().collect();
            if complete {
                self.lacks.entry(peer).or_default().extend(left.iter().copied());
            }
            self.requeue(&left);
        }
        Some((peer, delivery))
    }

    /// Folds one reply into the peer's delivery rate.
    fn measure(&mut self, peer: PeerId, bytes: usize, sent: Instant, now: Instant) {
        let from = self.last_delivery.get(&peer).map_or(sent, |t| (*t).max(sent));
        let secs = now.saturating_duration_since(from).as_secs_f64().max(0.001);
        let sample = bytes as f64 / secs;
        let rate = self.rates.entry(peer).or_insert(sample);
        *rate = 0.5 * *rate + 0.5 * sample;
        self.last_delivery.insert(peer, now);
    }

    /// Whether request `id` was found stalling the download (its blocks
    /// already went to other peers).
    pub fn is_stalling(&self, id: &OutboundRequestId) -> bool {
        self.requests.get(id).is_some_and(|r| r.stale)
    }

    /// A failed or timed-out request: its hashes go back to the queue for
    /// any peer (the next batch may well go elsewhere).
    pub fn on_failure(&mut self, id: &OutboundRequestId) -> Option<PeerId> {
        let req = self.finish_request(id)?;
        if !req.stale {
            self.requeue(&req.hashes);
        }
        Some(req.peer)
    }

    /// A disconnected peer: its requests are reassigned.
    pub fn peer_gone(&mut self, peer: &PeerId) {
        let ids: Vec<OutboundRequestId> =
            self.requests.iter().filter(|(_, r)| r.peer == *peer).map(|(id, _)| *id).collect();
        for id in ids {
            self.on_failure(&id);
        }
        self.lacks.remove(peer);
        self.slow.remove(peer);
        self.rates.remove(peer);
        self.last_delivery.remove(peer);
        self.horizons.remove(peer);
        self.allowances.remove(peer);
    }

    /// The peer reported a new status: it may have blocks it lacked before.
    pub fn forget_lacks(&mut self, peer: &PeerId) {
        self.lacks.remove(peer);
    }

    /// Drops queued hashes that none of the planned peers can serve (each
    /// lacks it or has pruned it), so one block nobody has does not stall
    /// the window (a later refill retries it).
    pub fn drop_unavailable(&mut self) {
        if self.horizons.is_empty() {
            return;
        }
        let serves = |p: &PeerId, h: &Hash256| {
            let height = self.heights.get(h).copied().unwrap_or(0);
            height >= self.horizons.get(p).copied().unwrap_or(0) && !self.lacks.get(p).is_some_and(|l| l.contains(h))
        };
        let gone: Vec<Hash256> = self
            .order
            .iter()
            .filter(|h| matches!(self.slots.get(*h), Some(Slot::Queued)))
            .filter(|h| !self.horizons.keys().any(|p| serves(p, h)))
            .copied()
            .collect();
        if gone.is_empty() {
            return;
        }
        self.refill_hold = Some(Instant::now() + UNAVAILABLE_RETRY);
        let set: HashSet<Hash256> = gone.into_iter().collect();
        self.order.retain(|h| !set.contains(h));
        for h in &set {
            self.slots.remove(h);
            self.heights.remove(h);
        }
        for l in self.lacks.values_mut() {
            l.retain(|h| !set.contains(h));
        }
    }

    /// Downloaded blocks whose predecessors in the schedule are all done,
    /// in order, with the peer that served each; they count as submitting
    /// until [`Self::submitted`].
    pub fn take_ready(&mut self) -> Vec<(Block, PeerId)> {
        let mut out = Vec::new();
        while let Some(h) = self.order.front().copied() {
            match self.slots.get(&h) {
                Some(Slot::Ready(..)) => {}
                _ => break,
            }
            self.order.pop_front();
            if let Some(Slot::Ready(block, peer, size)) = self.slots.remove(&h) {
                // Its bytes stay counted until the chain is done with it.
                self.submitting.insert(h, size);
                out.push((*block, peer));
            }
        }
        out
    }

    /// The chain has processed a submitted block.
    pub fn submitted(&mut self, hash: &Hash256) {
        if let Some(size) = self.submitting.remove(hash) {
            self.ready_bytes = self.ready_bytes.saturating_sub(size);
            self.heights.remove(hash);
        }
    }

    /// The lowest height above `tip` whose body is neither downloaded nor
    /// with the chain: where sync has to fetch next.
    pub fn first_missing(&self, tip: u32) -> u32 {
        let held = self
            .submitting
            .keys()
            .chain(self.slots.iter().filter(|(_, s)| matches!(s, Slot::Ready(..))).map(|(h, _)| h));
        let mut heights: Vec<u32> = held.filter_map(|h| self.heights.get(h).copied()).collect();
        heights.sort_unstable();
        let mut next = tip.saturating_add(1);
        for h in heights {
            if h == next {
                next = next.saturating_add(1);
            } else if h > next {
                break;
            }
        }
        next
    }

    /// Nothing scheduled, in flight or waiting for the chain.
    pub fn is_idle(&self) -> bool {
        self.order.is_empty() && self.slots.is_empty() && self.submitting.is_empty()
    }

    /// Bodies scheduled and not yet processed by the chain.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.order.len() + self.submitting.len()
    }

    /// Bodies being fetched right now.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.slots.values().filter(|s| matches!(s, Slot::InFlight)).count()
    }
}

/// Rate-limited sync progress line: height / target, blocks per second, ETA.
#[derive(Debug)]
pub struct Progress {
    last: Option<(Instant, u32)>,
    every: Duration,
}

impl Progress {
    /// Logs at most once per `every`.
    pub fn new(every: Duration) -> Progress {
        Progress { last: None, every }
    }

    /// Logs if due; `target` is the best known height.
    pub fn tick(&mut self, now: Instant, height: u32, target: u32) {
        match self.last {
            None => self.last = Some((now, height)),
            Some((at, from)) if now.saturating_duration_since(at) >= self.every => {
                let secs = now.saturating_duration_since(at).as_secs_f64().max(0.001);
                let rate = f64::from(height.saturating_sub(from)) / secs;
                let left = target.saturating_sub(height);
                let eta = if rate > 0.0 { format!("{:.0}s", f64::from(left) / rate) } else { "unknown".into() };
                tracing::info!(height, target, blocks_per_sec = format!("{rate:.1}"), eta = %eta, "initial sync progress: {height}/{target}");
                self.last = Some((now, height));
            }
            Some(_) => {}
        }
    }

    /// Sync finished or paused: the next rate starts afresh.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_core::ChainSpec;

    fn limits() -> Limits {
        Limits {
            window: 8,
            per_request: 2,
            per_peer: 2,
            per_peer_max: 4,
            max_requests: 16,
            max_ready_bytes: 1 << 20,
            stall_min: Duration::from_secs(2),
            stall_max: Duration::from_secs(16),
        }
    }

    fn blocks(n: usize) -> Vec<Block> {
        let mut b = crate::testkit::ChainBuilder::new(ChainSpec::regtest());
        b.blocks(n, 0)
    }

    /// The blocks' hashes with their heights (the first block at height 1).
    fn scheduled(chain: &[Block]) -> Vec<(Hash256, u32)> {
        chain.iter().zip(1..).map(|(b, h)| (b.hash(), h)).collect()
    }

    fn id(n: u64) -> OutboundRequestId {
        // Ids are opaque; make distinct ones through a real behaviour.
        thread_local! {
            static IDS: std::cell::RefCell<Vec<OutboundRequestId>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        IDS.with(|ids| {
            let mut ids = ids.borrow_mut();
            if ids.is_empty() {
                let codec = super::super::codec::SyncCodec::new(1000, 1000);
                let proto = libp2p::StreamProtocol::new("/t/1");
                let mut rr = libp2p::request_response::Behaviour::with_codec(
                    codec,
                    [(proto, libp2p::request_response::ProtocolSupport::Full)],
                    Default::default(),
                );
                let p = PeerId::random();
                for _ in 0..64 {
                    ids.push(rr.send_request(&p, super::super::codec::Request::GetBlocks { hashes: vec![] }));
                }
            }
            ids[n as usize]
        })
    }

    #[test]
    fn blocks_are_released_in_order_and_missing_ones_reassigned() {
        let chain = blocks(4);
        let hashes: Vec<Hash256> = chain.iter().map(Block::hash).collect();
        let mut d = Downloader::new(limits());
        assert_eq!(d.add(scheduled(&chain)), 4);
        let (a, b) = (PeerId::random(), PeerId::random());
        let first = d.next_batch(&a).unwrap();
        assert_eq!(first, hashes[0..2]);
        d.register(id(0), a, first);
        let second = d.next_batch(&b).unwrap();
        assert_eq!(second, hashes[2..4]);
        d.register(id(1), b, second);
        assert!(d.next_batch(&a).is_none(), "nothing left to ask for");

        // b answers first: nothing is released until block 0 and 1 arrive.
        d.on_blocks(&id(1), vec![(chain[2].clone(), 10), (chain[3].clone(), 10)], true).unwrap();
        assert!(d.take_ready().is_empty());
        // a leaves block 1 out: it goes back to the queue, not to a again.
        let (_, del) = d.on_blocks(&id(0), vec![(chain[0].clone(), 10)], true).unwrap();
        assert_eq!(del.missing, 1);
        let ready = d.take_ready();
        assert_eq!(ready.len(), 1);
        assert!(d.next_batch(&a).is_none());
        let retry = d.next_batch(&b).unwrap();
        assert_eq!(retry, vec![hashes[1]]);
        d.register(id(2), b, retry);
        d.on_blocks(&id(2), vec![(chain[1].clone(), 10)], true).unwrap();
        let ready: Vec<Hash256> = d.take_ready().iter().map(|(b, _)| b.hash()).collect();
        assert_eq!(ready, hashes[1..4]);
        assert_eq!(d.pending(), 4, "all four wait for the chain");
        for h in &hashes {
            d.submitted(h);
        }
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn a_stalled_request_is_reassigned_and_the_timeout_doubles() {
        let chain = blocks(4);
        let hashes: Vec<Hash256> = chain.iter().map(Block::hash).collect();
        let mut d = Downloader::new(limits());
        d.add(scheduled(&chain));
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let first = d.next_batch(&a).unwrap();
        d.register_at(id(10), a, first, t0);
        let second = d.next_batch(&b).unwrap();
        d.register_at(id(11), b, second, t0);
        // b delivers; a sits on blocks 0 and 1, which everything waits for.
        d.on_blocks(&id(11), vec![(chain[2].clone(), 10), (chain[3].clone(), 10)], true).unwrap();
        assert!(d.check_stall(t0 + Duration::from_secs(1)).is_none(), "within the stall timeout");
        assert_eq!(d.check_stall(t0 + Duration::from_secs(2)), Some(a));
        assert_eq!(d.stall_timeout(), Duration::from_secs(4), "doubled");
        assert!(d.next_batch(&a).is_none(), "a staller gets one request at a time");
        let retry = d.next_batch(&b).unwrap();
        assert_eq!(retry, hashes[0..2], "a's blocks go to b");
        d.register_at(id(12), b, retry, t0 + Duration::from_secs(2));
        // a's late reply still counts; b's copy of block 0 is then ignored.
        let (_, del) = d.on_blocks(&id(10), vec![(chain[0].clone(), 10)], true).unwrap();
        assert_eq!(del.unsolicited, 0);
        d.on_blocks(&id(12), vec![(chain[0].clone(), 10), (chain[1].clone(), 10)], true).unwrap();
        assert_eq!(d.take_ready().len(), 4);
    }

    #[test]
    fn failures_and_disconnects_requeue() {
        let chain = blocks(2);
        let hashes: Vec<Hash256> = chain.iter().map(Block::hash).collect();
        let mut d = Downloader::new(limits());
        d.add(scheduled(&chain));
        let a = PeerId::random();
        let batch = d.next_batch(&a).unwrap();
        d.register(id(3), a, batch);
        assert_eq!(d.in_flight(), 2);
        assert_eq!(d.on_failure(&id(3)), Some(a));
        assert_eq!(d.in_flight(), 0);
        let batch = d.next_batch(&a).unwrap();
        d.register(id(4), a, batch);
        d.peer_gone(&a);
        assert_eq!(d.in_flight(), 0);
        assert!(d.on_failure(&id(4)).is_none(), "already handled");
        // Unsolicited blocks are counted, not stored.
        let batch = d.next_batch(&a).unwrap();
        d.register(id(5), a, batch);
        let other = blocks(1).remove(0);
        let (_, del) = d.on_blocks(&id(5), vec![(other, 1)], true).unwrap();
        assert_eq!((del.unsolicited, del.missing), (1, 2));
        d.plan(&[(a, 0)]);
        d.drop_unavailable();
        assert_eq!(d.pending(), 0);
        let _ = hashes;
    }

    #[test]
    fn a_pruned_peer_is_never_asked_below_its_horizon() {
        let chain = blocks(6);
        let hashes: Vec<Hash256> = chain.iter().map(Block::hash).collect();
        let mut d = Downloader::new(limits());
        d.add(scheduled(&chain));
        let (archive, pruned) = (PeerId::random(), PeerId::random());
        // The pruned peer keeps heights 4 and up.
        d.plan(&[(pruned, 4), (archive, 0)]);
        let first = d.next_batch(&pruned).unwrap();
        assert_eq!(first, hashes[3..5], "heights 4 and 5, not the lowest queued");
        d.register(id(20), pruned, first);
        let second = d.next_batch(&pruned).unwrap();
        assert_eq!(second, hashes[5..6]);
        d.register(id(21), pruned, second);
        assert!(d.next_batch(&pruned).is_none(), "nothing left at or above its horizon");
        assert_eq!(d.next_batch(&archive).unwrap(), hashes[0..2], "the old bodies go to the archive peer");
    }

    #[test]
    fn bodies_below_every_horizon_are_dropped_and_come_back_with_an_archive_peer() {
        let chain = blocks(4);
        let mut d = Downloader::new(limits());
        d.add(scheduled(&chain));
        let (p1, p2) = (PeerId::random(), PeerId::random());
        d.plan(&[(p1, 3), (p2, 3)]);
        d.drop_unavailable();
        assert_eq!(d.pending(), 2, "heights 1 and 2 nobody serves are dropped; 3 and 4 stay");
        // The next refill offers them again; an archive peer takes them.
        let archive = PeerId::random();
        d.add(scheduled(&chain[..2]));
        d.plan(&[(p1, 3), (p2, 3), (archive, 0)]);
        d.drop_unavailable();
        assert_eq!(d.pending(), 4);
        assert_eq!(d.next_batch(&archive).unwrap(), vec![chain[0].hash(), chain[1].hash()]);
    }

    #[test]
    fn the_first_missing_height_skips_bodies_already_downloaded_or_with_the_chain() {
        let chain = blocks(5);
        let mut d = Downloader::new(limits());
        d.add(scheduled(&chain));
        assert_eq!(d.first_missing(0), 1, "nothing downloaded yet");
        let p = PeerId::random();
        let batch = d.next_batch(&p).unwrap();
        d.register(id(40), p, batch);
        let batch = d.next_batch(&p).unwrap();
        d.register(id(41), p, batch);
        d.on_blocks(&id(40), vec![(chain[0].clone(), 10), (chain[1].clone(), 10)], true).unwrap();
        d.on_blocks(&id(41), vec![(chain[2].clone(), 10)], true).unwrap();
        assert_eq!(d.first_missing(0), 4, "heights 1-3 are ready, 4 went back to the queue");
        assert_eq!(d.take_ready().len(), 3);
        assert_eq!(d.first_missing(0), 4, "with the chain now, still held");
        d.submitted(&chain[0].hash());
        assert_eq!(d.first_missing(1), 4, "the tip moved past the first");
    }

    #[test]
    fn requests_are_shared_in_proportion_to_measured_delivery_rate() {
        let chain = blocks(40);
        let mut d = Downloader::new(Limits {
            window: 64,
            per_request: 1,
            per_peer: 2,
            per_peer_max: 8,
            max_requests: 8,
            ..limits()
        });
        d.add(scheduled(&chain));
        let (fast, slow) = (PeerId::random(), PeerId::random());
        d.plan(&[(fast, 0), (slow, 0)]);
        // Unmeasured, each gets the default.
        let t0 = Instant::now();
        let mut n = 30;
        for peer in [fast, slow] {
            for _ in 0..2 {
                let batch = d.next_batch(&peer).unwrap();
                d.register_at(id(n), peer, batch, t0);
                n += 1;
            }
            assert!(d.next_batch(&peer).is_none(), "default allowance of two");
        }
        // fast delivers its two blocks in 10 ms, slow its two in 100 ms.
        let block = |i: usize| vec![(chain[i].clone(), 1000)];
        d.on_blocks_at(&id(30), block(0), true, t0 + Duration::from_millis(5)).unwrap();
        d.on_blocks_at(&id(31), block(1), true, t0 + Duration::from_millis(10)).unwrap();
        d.on_blocks_at(&id(32), block(2), true, t0 + Duration::from_millis(50)).unwrap();
        d.on_blocks_at(&id(33), block(3), true, t0 + Duration::from_millis(100)).unwrap();
        d.plan(&[(fast, 0), (slow, 0)]);
        let mut count = |peer: PeerId, n: &mut u64| {
            let mut k = 0;
            while let Some(batch) = d.next_batch(&peer) {
                d.register(id(*n), peer, batch);
                *n += 1;
                k += 1;
            }
            k
        };
        let mut next = 34;
        let (f, s) = (count(fast, &mut next), count(slow, &mut next));
        assert!(f >= 5 * s, "ten times the rate should get most of the eight requests: fast {f}, slow {s}");
        assert!(s >= 1, "a slow peer still gets one");
    }
}
