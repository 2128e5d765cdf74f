//! An in-memory [`NetworkChain`] for the network tests: a header tree with
//! most-work fork choice, bodies, an orphan pool and a mempool that accepts
//! anything decodable. Block validity is proof of work plus the merkle
//! root, enough to tell an honest block from a forged one.

use crate::chain_api::{BlockOutcome, ChainEvent, HeadersOutcome, NetworkChain, TipInfo, TxOutcome};
use lode_core::block::{Block, BlockHeader};
use lode_core::pow::Work;
use lode_core::validation::check_header;
use lode_core::{ChainSpec, Hash256, Height, Transaction};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

struct Entry {
    header: BlockHeader,
    height: u32,
    work: Work,
}

#[derive(Default)]
struct State {
    headers: HashMap<Hash256, Entry>,
    bodies: HashMap<Hash256, Block>,
    /// Blocks whose every ancestor has a body.
    connected: HashSet<Hash256>,
    children: HashMap<Hash256, Vec<Hash256>>,
    orphans: HashMap<Hash256, Block>,
    tip: Hash256,
    best_header: Hash256,
    mempool: HashMap<Hash256, Transaction>,
}

/// The mock chain.
pub struct MockChain {
    spec: ChainSpec,
    state: Mutex<State>,
    events: broadcast::Sender<ChainEvent>,
    /// Report a different UTXO commitment than honest nodes.
    pub corrupt_commitment: AtomicBool,
    /// Stop announcing accepted blocks (to test orphan handling).
    pub quiet: AtomicBool,
    /// Blocks served to peers (`serve_blocks`) or read through `block()`.
    pub served: AtomicUsize,
    /// Blocks offered to `submit_block`.
    pub submitted: AtomicUsize,
    /// Calls of `block()` (one chain lock each).
    pub block_reads: AtomicUsize,
    /// Calls of `serve_blocks` (one chain lock per batch).
    pub batch_reads: AtomicUsize,
    /// Milliseconds each `submit_block` takes (a slow validator).
    pub submit_delay_ms: std::sync::atomic::AtomicU64,
    /// Milliseconds each `submit_tx` takes (a slow mempool).
    pub tx_delay_ms: std::sync::atomic::AtomicU64,
    /// Milliseconds each `serve_blocks` takes (a slow disk).
    pub serve_delay_ms: std::sync::atomic::AtomicU64,
    /// Calls of `submit_tx`.
    pub tx_submits: AtomicUsize,
    /// Accept blocks holding invalid transactions (a buggy or hostile
    /// miner's node, which then announces them as its own).
    pub sloppy: AtomicBool,
    /// Lowest height whose body it serves (a pruned peer; 0 serves all):
    /// `serve_blocks` leaves out the bodies below it, as a pruned node does.
    pub lowest_served: AtomicU32,
    /// Calls of `mempool_scan`.
    pub scans: AtomicUsize,
    /// Milliseconds each `mempool_scan` takes after reading the pool.
    pub scan_delay_ms: std::sync::atomic::AtomicU64,
}

fn work_of(h: &BlockHeader) -> Work {
    h.bits.to_target().map(|t| t.work()).unwrap_or(Work::ZERO)
}

impl MockChain {
    /// A chain holding only `spec`'s genesis block.
    pub fn new(spec: ChainSpec) -> Arc<MockChain> {
        MockChain::with_event_capacity(spec, 4096)
    }

    /// A chain whose event channel holds `capacity` events (a small one
    /// makes the network task miss events under a burst).
    pub fn with_event_capacity(spec: ChainSpec, capacity: usize) -> Arc<MockChain> {
        let genesis = spec.genesis_block();
        let g = genesis.hash();
        let mut st = State { tip: g, best_header: g, ..Default::default() };
        st.headers.insert(g, Entry { header: genesis.header, height: 0, work: work_of(&genesis.header) });
        st.bodies.insert(g, genesis);
        st.connected.insert(g);
        let (events, _) = broadcast::channel(capacity.max(1));
        Arc::new(MockChain {
            spec,
            state: Mutex::new(st),
            events,
            corrupt_commitment: AtomicBool::new(false),
            quiet: AtomicBool::new(false),
            served: AtomicUsize::new(0),
            submitted: AtomicUsize::new(0),
            block_reads: AtomicUsize::new(0),
            batch_reads: AtomicUsize::new(0),
            submit_delay_ms: std::sync::atomic::AtomicU64::new(0),
            tx_delay_ms: std::sync::atomic::AtomicU64::new(0),
            serve_delay_ms: std::sync::atomic::AtomicU64::new(0),
            tx_submits: AtomicUsize::new(0),
            sloppy: AtomicBool::new(false),
            lowest_served: AtomicU32::new(0),
            scans: AtomicUsize::new(0),
            scan_delay_ms: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends an event as if the node had accepted something.
    pub fn announce(&self, ev: ChainEvent) {
        let _ = self.events.send(ev);
    }

    /// Puts `tx` in the mempool without announcing it.
    pub fn pool_quietly(&self, tx: Transaction) {
        self.lock().mempool.insert(tx.txid(), tx);
    }

    /// Active tip height.
    pub fn height(&self) -> u32 {
        self.tip().height.0
    }

    fn add_header(st: &mut State, h: &BlockHeader) -> Result<bool, HeadersOutcome> {
        let hash = h.hash();
        if st.headers.contains_key(&hash) {
            return Ok(false);
        }
        let Some(parent) = st.headers.get(&h.prev_hash) else {
            return Err(HeadersOutcome::Unconnected);
        };
        let entry = Entry { header: *h, height: parent.height + 1, work: parent.work.saturating_add(&work_of(h)) };
        let better = entry.work > st.headers[&st.best_header].work;
        st.headers.insert(hash, entry);
        st.children.entry(h.prev_hash).or_default().push(hash);
        if better {
            st.best_header = hash;
        }
        Ok(true)
    }

    /// Connects `hash` and every stored descendant; moves the tip to the
    /// most work (first seen wins ties).
    fn connect_from(st: &mut State, hash: Hash256) {
        let mut stack = vec![hash];
        while let Some(h) = stack.pop() {
            if !st.bodies.contains_key(&h) || !st.connected.insert(h) {
                continue;
            }
            if st.headers[&h].work > st.headers[&st.tip].work {
                st.tip = h;
            }
            stack.extend(st.children.get(&h).cloned().unwrap_or_default());
        }
    }

    fn active_chain(st: &State) -> Vec<Hash256> {
        let mut v = Vec::new();
        let mut cur = st.tip;
        loop {
            v.push(cur);
            let e = &st.headers[&cur];
            if e.height == 0 {
                break;
            }
            cur = e.header.prev_hash;
        }
        v.reverse();
        v
    }

    fn best_header_chain(st: &State) -> Vec<Hash256> {
        let mut v = Vec::new();
        let mut cur = st.best_header;
        loop {
            v.push(cur);
            let e = &st.headers[&cur];
            if e.height == 0 {
                break;
            }
            cur = e.header.prev_hash;
        }
        v.reverse();
        v
    }
}

impl NetworkChain for MockChain {
    fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    fn tip(&self) -> TipInfo {
        let st = self.lock();
        let e = &st.headers[&st.tip];
        TipInfo { hash: st.tip, height: Height(e.height), chainwork: e.work, time: e.header.time }
    }

    fn best_header(&self) -> TipInfo {
        let st = self.lock();
        let e = &st.headers[&st.best_header];
        TipInfo { hash: st.best_header, height: Height(e.height), chainwork: e.work, time: e.header.time }
    }

    fn utxo_commitment(&self) -> Hash256 {
        let tip = self.lock().tip;
        let mut c = lode_core::hash::sha256d(&tip.0);
        if self.corrupt_commitment.load(Ordering::Relaxed) {
            c.0[0] ^= 0xff;
        }
        c
    }

    fn locator(&self) -> Vec<Hash256> {
        let st = self.lock();
        let chain = Self::best_header_chain(&st);
        let mut out = Vec::new();
        let mut i = chain.len() as i64 - 1;
        let mut step = 1;
        while i > 0 {
            out.push(chain[i as usize]);
            if out.len() >= 10 {
                step *= 2;
            }
            i -= step;
        }
        out.push(chain[0]);
        out
    }

    fn headers_after(&self, locator: &[Hash256], max: usize) -> Vec<BlockHeader> {
        let st = self.lock();
        let chain = Self::active_chain(&st);
        let pos: HashMap<Hash256, usize> = chain.iter().enumerate().map(|(i, h)| (*h, i)).collect();
        let start = locator.iter().find_map(|h| pos.get(h)).map(|i| i + 1).unwrap_or(1);
        chain.iter().skip(start).take(max).map(|h| st.headers[h].header).collect()
    }

    fn accept_headers(&self, headers: &[BlockHeader]) -> HeadersOutcome {
        let mut st = self.lock();
        let mut new = 0;
        for h in headers {
            if check_header(h, &self.spec).is_err() {
                return HeadersOutcome::Invalid("bad proof of work".into());
            }
            match Self::add_header(&mut st, h) {
                Ok(true) => new += 1,
                Ok(false) => {}
                Err(e) => return e,
            }
        }
        HeadersOutcome::Accepted { new }
    }

    fn missing_blocks(&self, max: usize) -> Vec<(Hash256, Height)> {
        let st = self.lock();
        Self::best_header_chain(&st)
            .into_iter()
            .filter(|h| !st.bodies.contains_key(h))
            .map(|h| (h, Height(st.headers[&h].height)))
            .take(max)
            .collect()
    }

    fn block(&self, hash: &Hash256) -> Option<Block> {
        self.block_reads.fetch_add(1, Ordering::Relaxed);
        let b = self.lock().bodies.get(hash).cloned();
        if b.is_some() {
            self.served.fetch_add(1, Ordering::Relaxed);
        }
        b
    }

    fn serve_blocks(&self, hashes: &[Hash256], announced: &HashSet<Hash256>, max_bytes: usize) -> Vec<Block> {
        self.batch_reads.fetch_add(1, Ordering::Relaxed);
        let delay = self.serve_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        let st = self.lock();
        let active: HashSet<Hash256> = Self::active_chain(&st).into_iter().collect();
        let lowest = self.lowest_served.load(Ordering::Relaxed);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for h in hashes {
            if !active.contains(h) && !announced.contains(h) {
                continue;
            }
            if st.headers.get(h).is_some_and(|e| e.height < lowest) {
                continue;
            }
            let Some(b) = st.bodies.get(h) else { continue };
            let size = b.encoded_size();
            if !out.is_empty() && bytes.saturating_add(size) > max_bytes {
                break;
            }
            bytes += size;
            out.push(b.clone());
        }
        self.served.fetch_add(out.len(), Ordering::Relaxed);
        out
    }

    fn served_bodies(&self) -> crate::chain_api::ServedBodies {
        let lowest = self.lowest_served.load(Ordering::Relaxed);
        crate::chain_api::ServedBodies { archive: lowest == 0, lowest: Height(lowest) }
    }

    fn header_work(&self, hash: &Hash256) -> Option<Work> {
        self.lock().headers.get(hash).map(|e| e.work)
    }

    fn has_block(&self, hash: &Hash256) -> bool {
        let st = self.lock();
        st.bodies.contains_key(hash) || st.orphans.contains_key(hash)
    }

    fn submit_block(&self, block: Block, _source: crate::chain_api::BlockSource) -> BlockOutcome {
        self.submitted.fetch_add(1, Ordering::Relaxed);
        let delay = self.submit_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        let hash = block.hash();
        let mut st = self.lock();
        if st.bodies.contains_key(&hash) || st.orphans.contains_key(&hash) {
            return BlockOutcome::AlreadyHave;
        }
        if check_header(&block.header, &self.spec).is_err() {
            return BlockOutcome::Invalid("bad proof of work".into());
        }
        let (root, mutated) = block.compute_merkle_root();
        if root != block.header.merkle_root || mutated || block.transactions.is_empty() {
            return BlockOutcome::Invalid("bad merkle root".into());
        }
        // The one transaction rule of the mock, as `submit_tx` has it.
        if !self.sloppy.load(Ordering::Relaxed) && block.transactions.iter().skip(1).any(|t| t.inputs.is_empty()) {
            return BlockOutcome::Invalid("a transaction without inputs".into());
        }
        if !st.headers.contains_key(&block.header.prev_hash) {
            let parent = block.header.prev_hash;
            st.orphans.insert(hash, block);
            return BlockOutcome::Orphan { missing_parent: parent };
        }
        let mut accepted = vec![block];
        let mut announce = Vec::new();
        while let Some(b) = accepted.pop() {
            let h = b.hash();
            let _ = Self::add_header(&mut st, &b.header);
            st.bodies.insert(h, b.clone());
            let parent = b.header.prev_hash;
            if st.connected.contains(&parent) {
                Self::connect_from(&mut st, h);
            }
            announce.push(b);
            // Orphans waiting for this block can come in now.
            let waiting: Vec<Hash256> =
                st.orphans.iter().filter(|(_, o)| o.header.prev_hash == h).map(|(k, _)| *k).collect();
            for w in waiting {
                if let Some(o) = st.orphans.remove(&w) {
                    accepted.push(o);
                }
            }
        }
        drop(st);
        if !self.quiet.load(Ordering::Relaxed) {
            for b in announce {
                let _ = self.events.send(ChainEvent::Block(Arc::new(b)));
            }
        }
        BlockOutcome::Accepted { new_tip: true }
    }

    fn submit_tx(&self, tx: Transaction) -> TxOutcome {
        self.tx_submits.fetch_add(1, Ordering::Relaxed);
        let delay = self.tx_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        if tx.inputs.is_empty() {
            return TxOutcome::Invalid("no inputs".into());
        }
        let id = tx.txid();
        let mut st = self.lock();
        if st.mempool.contains_key(&id) {
            return TxOutcome::AlreadyHave;
        }
        st.mempool.insert(id, tx.clone());
        drop(st);
        let _ = self.events.send(ChainEvent::Tx(Arc::new(tx)));
        TxOutcome::Accepted
    }

    fn has_tx(&self, txid: &Hash256) -> bool {
        self.lock().mempool.contains_key(txid)
    }

    fn mempool_scan(&self, f: &mut dyn FnMut(&Hash256, &Transaction)) {
        self.scans.fetch_add(1, Ordering::SeqCst);
        for (id, tx) in &self.lock().mempool {
            f(id, tx);
        }
        std::thread::sleep(std::time::Duration::from_millis(self.scan_delay_ms.load(Ordering::Relaxed)));
    }

    fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.events.subscribe()
    }
}
