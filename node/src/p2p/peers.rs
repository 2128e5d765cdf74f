//! What the node knows about peers: per-connection state with misbehaviour
//! scores, request rate limits and what inbound eviction weighs, bans (of
//! peer ids and the addresses they used) with expiry, and the peer store
//! persisted in the data directory (so a restarted node finds the network
//! with every bootnode down).
//!
//! The store keeps two tables, after Bitcoin Core's address manager:
//! "tried" holds addresses this node has itself connected to; "new" holds
//! addresses it was only told about (a peer's identify listen addresses).
//! Each table has its own bound, so a flood of unverified addresses can
//! never push out the verified ones, and one source group can fill only a
//! small part of "new". Saving happens on a blocking thread, debounced, so
//! a burst of bans never stalls the network task on disk writes.

use super::addresses::{ip_of, AddrGroup};
use super::codec::Status;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A peer whose score falls to this is disconnected and banned.
pub const BAN_THRESHOLD: i32 = -100;
/// Most peers in the "tried" table; the least recently seen go first.
pub const MAX_TRIED: usize = 1000;
/// Most peers in the "new" table; the least recently seen go first.
pub const MAX_NEW: usize = 1000;
/// Most "new" entries learned from peers of one address group.
pub const MAX_NEW_PER_SOURCE: usize = 64;
/// Most bans kept; beyond it the ban that ends first is dropped.
pub const MAX_BANS: usize = 10_000;
/// Least time between two background saves of the store.
pub const SAVE_DEBOUNCE: Duration = Duration::from_secs(1);
/// Most addresses remembered per peer.
const MAX_ADDRS_PER_PEER: usize = 4;
/// Longest wait before redialing an address that failed.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Penalties, as score points lost. Honest nodes never send a malformed or
/// invalid message (they validate before relaying), so those ban at once.
pub mod penalty {
    /// A block that breaks a consensus rule.
    pub const INVALID_BLOCK: i32 = 100;
    /// Headers that break a rule (bad proof of work, bits).
    pub const INVALID_HEADERS: i32 = 100;
    /// A message that does not decode or is larger than allowed.
    pub const MALFORMED: i32 = 100;
    /// A consensus-invalid transaction (bad signature, overspend).
    pub const INVALID_TX: i32 = 50;
    /// A reply that does not answer the request (unconnected headers,
    /// blocks we did not ask for).
    pub const UNSOLICITED: i32 = 20;
    /// One request above the rate limit (also: a duplicate hash in a
    /// block request, a request beyond the few served at once). A timed-out
    /// request costs nothing: slowness is not hostility.
    pub const FLOOD: i32 = 5;
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Which side opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The peer dialed us.
    Inbound,
    /// We dialed the peer.
    Outbound,
}

impl Direction {
    /// `"inbound"` or `"outbound"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// A token bucket: `rate` requests per second, bursts up to `capacity`.
#[derive(Clone, Debug)]
pub struct RateLimit {
    tokens: f64,
    capacity: f64,
    rate: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket.
    pub fn new(rate: f64, capacity: f64) -> RateLimit {
        RateLimit { tokens: capacity, capacity, rate, last: Instant::now() }
    }

    /// Takes one token; false when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A connected peer.
#[derive(Debug)]
pub struct Peer {
    /// The remote address of its first connection.
    pub address: Multiaddr,
    /// Direction of its first connection.
    pub direction: Direction,
    /// Open connections.
    pub connections: u32,
    /// Misbehaviour score: starts at 0, banned at [`BAN_THRESHOLD`].
    pub score: i32,
    /// Its last status.
    pub status: Option<Status>,
    /// It reported our tip with a different UTXO commitment.
    pub commitment_mismatch: bool,
    /// Its claimed work when it last ran out of headers for us: not asked
    /// again until it claims something new.
    pub headers_exhausted_at: Option<lode_core::pow::Work>,
    /// A status request to it is outstanding.
    pub status_pending: bool,
    /// When we last asked for its status.
    pub last_status: Option<Instant>,
    /// Inbound request budget.
    pub requests: RateLimit,
    /// Addresses it says it listens on (from identify).
    pub listen_addrs: Vec<Multiaddr>,
    /// Address group of `address`.
    pub group: Option<AddrGroup>,
    /// When it connected.
    pub connected_at: Instant,
    /// Its lowest ping round trip so far.
    pub min_ping: Option<Duration>,
    /// When it last gave us a block we did not have and accepted.
    pub last_block: Option<Instant>,
    /// When it last gave us a transaction we did not have and accepted.
    pub last_tx: Option<Instant>,
}

impl Peer {
    /// A freshly connected peer allowed `request_rate` requests a second
    /// (bursts of twice that).
    pub fn new(address: Multiaddr, direction: Direction, request_rate: u32) -> Peer {
        let rate = f64::from(request_rate.max(1));
        Peer {
            direction,
            connections: 1,
            score: 0,
            status: None,
            commitment_mismatch: false,
            headers_exhausted_at: None,
            status_pending: false,
            last_status: None,
            requests: RateLimit::new(rate, 2.0 * rate),
            listen_addrs: Vec::new(),
            group: AddrGroup::of_addr(&address),
            address,
            connected_at: Instant::now(),
            min_ping: None,
            last_block: None,
            last_tx: None,
        }
    }
}

/// An entry of the address tables.
#[derive(Clone, Debug)]
struct Known {
    addrs: Vec<Multiaddr>,
    last_seen: u64,
    /// Group of the peer that told us (new table only): bounds what one
    /// network can put in the table.
    source: Option<AddrGroup>,
}

/// A ban: until when, and the addresses it covers besides the peer id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    /// End of the ban (unix seconds).
    pub until: u64,
    /// Addresses the peer connected from when it was banned.
    pub addrs: Vec<IpAddr>,
}

#[derive(Serialize, Deserialize, Default)]
struct StoreFile {
    peers: Vec<StoredPeer>,
    bans: Vec<StoredBan>,
}

#[derive(Serialize, Deserialize)]
struct StoredPeer {
    peer_id: String,
    addrs: Vec<String>,
    last_seen: u64,
    /// Absent in stores written before the tables existed: such entries
    /// load as "new" (unverified), the safe side.
    #[serde(default)]
    tried: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredBan {
    peer_id: String,
    until: u64,
    #[serde(default)]
    addrs: Vec<String>,
}

/// Strips a trailing `/p2p/<id>` and keeps only addresses worth redialing.
pub fn dialable(addr: &Multiaddr) -> Option<Multiaddr> {
    let mut out = Multiaddr::empty();
    let mut has_tcp = false;
    for p in addr.iter() {
        match p {
            Protocol::P2p(_) => break,
            Protocol::Ip4(ip) if ip.is_unspecified() => return None,
            Protocol::Ip6(ip) if ip.is_unspecified() => return None,
            Protocol::Tcp(0) => return None,
            Protocol::Tcp(_) => {
                has_tcp = true;
                out.push(p);
            }
            Protocol::P2pCircuit => return None,
            other => out.push(other),
        }
    }
    has_tcp.then_some(out)
}

/// The store's contents copied for a background write: cheap to take on
/// the network task (ids and addresses are cloned, not formatted).
struct Snapshot {
    peers: Vec<(PeerId, Vec<Multiaddr>, u64, bool)>,
    bans: Vec<(PeerId, Ban)>,
}

impl Snapshot {
    fn encode(self) -> std::io::Result<Vec<u8>> {
        let file = StoreFile {
            peers: self
                .peers
                .into_iter()
                .map(|(id, addrs, last_seen, tried)| StoredPeer {
                    peer_id: id.to_string(),
                    addrs: addrs.iter().map(|a| a.to_string()).collect(),
                    last_seen,
                    tried,
                })
                .collect(),
            bans: self
                .bans
                .into_iter()
                .map(|(id, b)| StoredBan {
                    peer_id: id.to_string(),
                    until: b.until,
                    addrs: b.addrs.iter().map(|a| a.to_string()).collect(),
                })
                .collect(),
        };
        serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)
    }
}

/// Writes of the store file, one at a time and newest wins.
#[derive(Debug, Default)]
struct Writer {
    /// Sequence number of the last snapshot taken.
    seq: u64,
    /// Held while writing; holds the sequence number last written, so an
    /// older snapshot that lost the race never overwrites a newer one.
    lock: Arc<Mutex<u64>>,
    /// A background write is queued or running.
    busy: Arc<AtomicBool>,
    /// The last background write failed: the next save tries again.
    failed: Arc<AtomicBool>,
    /// Files written so far.
    writes: Arc<AtomicU64>,
    last: Option<Instant>,
}

fn write_snapshot(
    path: &Path,
    lock: &Mutex<u64>,
    writes: &AtomicU64,
    seq: u64,
    snapshot: Snapshot,
) -> std::io::Result<()> {
    let mut written = lock.lock().unwrap_or_else(|e| e.into_inner());
    if *written >= seq {
        return Ok(());
    }
    let bytes = snapshot.encode()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    *written = seq;
    writes.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn new_known(source: Option<AddrGroup>) -> Known {
    Known { addrs: Vec::new(), last_seen: 0, source }
}

/// Known peers (tried and new) and bans, saved as JSON in the data directory.
#[derive(Debug)]
pub struct PeerStore {
    path: PathBuf,
    tried: HashMap<PeerId, Known>,
    new: HashMap<PeerId, Known>,
    /// Failed dials: (failures in a row, not before).
    backoff: HashMap<PeerId, (u32, Instant)>,
    bans: HashMap<PeerId, Ban>,
    dirty: bool,
    writer: Writer,
}

impl PeerStore {
    /// Loads `path`; a missing or unreadable file starts an empty store.
    pub fn load(path: &Path) -> PeerStore {
        let mut store = PeerStore {
            path: path.to_path_buf(),
            tried: HashMap::new(),
            new: HashMap::new(),
            backoff: HashMap::new(),
            bans: HashMap::new(),
            dirty: false,
            writer: Writer::default(),
        };
        let file: StoreFile = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(path = %path.display(), %e, "peer store is unreadable, starting empty");
                    return store;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return store,
            Err(e) => {
                tracing::warn!(path = %path.display(), %e, "cannot read the peer store, starting empty");
                return store;
            }
        };
        for p in file.peers {
            let Ok(id) = PeerId::from_str(&p.peer_id) else {
                continue;
            };
            let addrs: Vec<Multiaddr> = p
                .addrs
                .iter()
                .filter_map(|a| Multiaddr::from_str(a).ok())
                .filter_map(|a| dialable(&a))
                .take(MAX_ADDRS_PER_PEER)
                .collect();
            if !addrs.is_empty() {
                let table = if p.tried { &mut store.tried } else { &mut store.new };
                table.insert(id, Known { addrs, last_seen: p.last_seen, source: None });
            }
        }
        let now = unix_now();
        for b in file.bans {
            if let Ok(id) = PeerId::from_str(&b.peer_id) {
                if b.until > now {
                    let addrs = b.addrs.iter().filter_map(|a| IpAddr::from_str(a).ok()).collect();
                    store.bans.insert(id, Ban { until: b.until, addrs });
                }
            }
        }
        store.evict();
        store.bound_bans();
        store
    }

    fn snapshot(&mut self) -> (u64, Snapshot) {
        let mut peers = Vec::with_capacity(self.tried.len() + self.new.len());
        for (tried, table) in [(true, &self.tried), (false, &self.new)] {
            peers.extend(table.iter().map(|(id, k)| (*id, k.addrs.clone(), k.last_seen, tried)));
        }
        let bans = self.bans.iter().map(|(id, b)| (*id, b.clone())).collect();
        self.writer.seq += 1;
        (self.writer.seq, Snapshot { peers, bans })
    }

    /// Saves the store if it changed, on a blocking thread (at most one
    /// write in flight and one per [`SAVE_DEBOUNCE`]; a change that has to
    /// wait is saved by a later call, the network task calls this every few
    /// seconds). Without a tokio runtime it writes at once.
    pub fn save(&mut self) -> std::io::Result<()> {
        if self.writer.failed.swap(false, Ordering::Relaxed) {
            self.dirty = true;
        }
        if !self.dirty || self.writer.busy.load(Ordering::Acquire) {
            return Ok(());
        }
        let now = Instant::now();
        if self.writer.last.is_some_and(|t| now.saturating_duration_since(t) < SAVE_DEBOUNCE) {
            return Ok(());
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.flush();
        };
        let (seq, snapshot) = self.snapshot();
        let (path, lock, busy, failed, writes) = (
            self.path.clone(),
            self.writer.lock.clone(),
            self.writer.busy.clone(),
            self.writer.failed.clone(),
            self.writer.writes.clone(),
        );
        busy.store(true, Ordering::Release);
        runtime.spawn_blocking(move || {
            if let Err(e) = write_snapshot(&path, &lock, &writes, seq, snapshot) {
                tracing::warn!(path = %path.display(), %e, "cannot save the peer store");
                failed.store(true, Ordering::Relaxed);
            }
            busy.store(false, Ordering::Release);
        });
        self.dirty = false;
        self.writer.last = Some(now);
        Ok(())
    }

    /// Writes the store now, on this thread, after any write in flight
    /// (for shutdown: nothing is left for a background thread).
    pub fn flush(&mut self) -> std::io::Result<()> {
        let pending = self.writer.busy.load(Ordering::Acquire) || self.writer.failed.swap(false, Ordering::Relaxed);
        if !self.dirty && !pending {
            return Ok(());
        }
        let (seq, snapshot) = self.snapshot();
        write_snapshot(&self.path, &self.writer.lock, &self.writer.writes, seq, snapshot)?;
        self.dirty = false;
        self.writer.last = Some(Instant::now());
        Ok(())
    }

    /// Files written so far.
    #[cfg(test)]
    pub fn writes(&self) -> u64 {
        self.writer.writes.load(Ordering::Relaxed)
    }

    /// The lock every write takes (tests hold it to stall the writer).
    #[cfg(test)]
    pub fn writer_lock(&self) -> Arc<Mutex<u64>> {
        self.writer.lock.clone()
    }

    /// A successful outbound connection: the address is verified, so it
    /// enters the tried table (first in the peer's list), failures forgotten.
    pub fn record_success(&mut self, peer: PeerId, addr: &Multiaddr) {
        let Some(addr) = dialable(addr) else { return };
        let k = self.tried.entry(peer).or_insert_with(|| new_known(None));
        k.addrs.retain(|a| *a != addr);
        k.addrs.insert(0, addr.clone());
        k.addrs.truncate(MAX_ADDRS_PER_PEER);
        k.last_seen = unix_now();
        if let Some(n) = self.new.get_mut(&peer) {
            n.addrs.retain(|a| *a != addr);
            if n.addrs.is_empty() {
                self.new.remove(&peer);
            }
        }
        self.backoff.remove(&peer);
        self.dirty = true;
        self.evict();
    }

    /// Listen addresses a peer announced (how inbound peers become
    /// dialable): unverified, so they go to the new table, charged to
    /// `source`, the group of the connection that told us.
    pub fn add_addrs(&mut self, peer: PeerId, addrs: &[Multiaddr], source: Option<AddrGroup>) {
        let tried = self.tried.get(&peer);
        let addrs: Vec<Multiaddr> =
            addrs.iter().filter_map(dialable).filter(|a| !tried.is_some_and(|t| t.addrs.contains(a))).collect();
        if addrs.is_empty() {
            return;
        }
        let k = self.new.entry(peer).or_insert_with(|| new_known(source));
        for a in addrs {
            if !k.addrs.contains(&a) && k.addrs.len() < MAX_ADDRS_PER_PEER {
                k.addrs.push(a);
            }
        }
        k.last_seen = unix_now();
        self.dirty = true;
        if let Some(src) = source {
            self.bound_source(src);
        }
        self.evict();
    }

    /// Keeps at most [`MAX_NEW_PER_SOURCE`] new entries from one source
    /// group, dropping its least recently seen.
    fn bound_source(&mut self, src: AddrGroup) {
        let mut from: Vec<(u64, PeerId)> =
            self.new.iter().filter(|(_, k)| k.source == Some(src)).map(|(id, k)| (k.last_seen, *id)).collect();
        if from.len() <= MAX_NEW_PER_SOURCE {
            return;
        }
        from.sort();
        for (_, id) in from.iter().take(from.len() - MAX_NEW_PER_SOURCE) {
            self.new.remove(id);
        }
    }

    /// A failed dial: back off exponentially before trying again.
    pub fn record_failure(&mut self, peer: &PeerId, now: Instant) {
        if !self.contains(peer) {
            return;
        }
        let failures = self.backoff.get(peer).map(|(f, _)| *f).unwrap_or(0).saturating_add(1);
        let wait = Duration::from_secs(1u64 << failures.min(6)).min(MAX_BACKOFF);
        self.backoff.insert(*peer, (failures, now + wait));
    }

    /// Forgets failures so the peer is dialed at the next chance.
    pub fn clear_backoff(&mut self, peer: &PeerId) {
        self.backoff.remove(peer);
    }

    /// Forgets a peer (another chain, or an address that turned out wrong).
    pub fn remove(&mut self, peer: &PeerId) {
        let a = self.tried.remove(peer).is_some();
        let b = self.new.remove(peer).is_some();
        self.backoff.remove(peer);
        self.dirty |= a || b;
    }

    /// Whether the peer has an entry in either table.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.tried.contains_key(peer) || self.new.contains_key(peer)
    }

    /// Whether the peer has an address this node has connected to.
    #[cfg(test)]
    pub fn is_tried(&self, peer: &PeerId) -> bool {
        self.tried.contains_key(peer)
    }

    /// Verified addresses of a peer (from our own successful dials).
    pub fn tried_ips(&self, peer: &PeerId) -> Vec<IpAddr> {
        self.tried.get(peer).map(|k| k.addrs.iter().filter_map(ip_of).collect()).unwrap_or_default()
    }

    /// Peers worth dialing now, best first: tried and new entries taken
    /// in turn (each table most recently seen first), so verified peers
    /// come early while new ones still get explored. A tried peer's
    /// unverified addresses follow its verified ones; banned peers and
    /// addresses are left out.
    pub fn candidates(&self, now: Instant, skip: impl Fn(&PeerId) -> bool) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let banned_ips = self.banned_ips();
        let ok = |id: &PeerId| {
            !skip(id) && !self.bans.contains_key(id) && self.backoff.get(id).is_none_or(|(_, t)| *t <= now)
        };
        let usable = |addrs: &mut Vec<Multiaddr>| {
            addrs.retain(|a| ip_of(a).is_none_or(|ip| !banned_ips.contains_key(&ip)));
            !addrs.is_empty()
        };
        let mut tried: Vec<(&PeerId, &Known)> = self.tried.iter().filter(|(id, _)| ok(id)).collect();
        tried.sort_by_key(|(_, k)| std::cmp::Reverse(k.last_seen));
        let mut new: Vec<(&PeerId, &Known)> =
            self.new.iter().filter(|(id, _)| ok(id) && !self.tried.contains_key(*id)).collect();
        new.sort_by_key(|(_, k)| std::cmp::Reverse(k.last_seen));
        let mut tried = tried.into_iter().filter_map(|(id, k)| {
            let mut addrs = k.addrs.clone();
            if let Some(n) = self.new.get(id) {
                addrs.extend(n.addrs.iter().filter(|a| !k.addrs.contains(a)).cloned());
            }
            usable(&mut addrs).then_some((*id, addrs))
        });
        let mut new = new.into_iter().filter_map(|(id, k)| {
            let mut addrs = k.addrs.clone();
            usable(&mut addrs).then_some((*id, addrs))
        });
        let mut out = Vec::new();
        loop {
            let (a, b) = (tried.next(), new.next());
            if a.is_none() && b.is_none() {
                return out;
            }
            out.extend(a);
            out.extend(b);
        }
    }

    /// Bans `peer` and the addresses `addrs` until `until` (unix seconds);
    /// returns peers whose bans were dropped to stay within [`MAX_BANS`].
    pub fn ban(&mut self, peer: PeerId, until: u64, addrs: Vec<IpAddr>) -> Vec<PeerId> {
        let entry = self.bans.entry(peer).or_insert(Ban { until, addrs: Vec::new() });
        entry.until = entry.until.max(until);
        for a in addrs {
            if !entry.addrs.contains(&a) {
                entry.addrs.push(a);
            }
        }
        self.dirty = true;
        self.bound_bans()
    }

    fn bound_bans(&mut self) -> Vec<PeerId> {
        let mut dropped = Vec::new();
        if self.bans.len() > MAX_BANS {
            let mut by_end: Vec<(u64, PeerId)> = self.bans.iter().map(|(p, b)| (b.until, *p)).collect();
            by_end.sort();
            for (_, p) in by_end.into_iter().take(self.bans.len() - MAX_BANS) {
                self.bans.remove(&p);
                dropped.push(p);
            }
            self.dirty = true;
        }
        dropped
    }

    /// Lifts a ban (with its addresses); true when there was one.
    pub fn unban(&mut self, peer: &PeerId) -> bool {
        let had = self.bans.remove(peer).is_some();
        if had {
            self.dirty = true;
            self.clear_backoff(peer);
        }
        had
    }

    /// Whether `peer` is banned now.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.bans.get(peer).is_some_and(|b| b.until > unix_now())
    }

    /// Banned addresses and when each ban ends (the latest of its bans).
    pub fn banned_ips(&self) -> HashMap<IpAddr, u64> {
        let mut out: HashMap<IpAddr, u64> = HashMap::new();
        for b in self.bans.values() {
            for ip in &b.addrs {
                let e = out.entry(*ip).or_default();
                *e = (*e).max(b.until);
            }
        }
        out
    }

    /// Current bans as (peer, until).
    pub fn bans(&self) -> Vec<(PeerId, u64)> {
        self.ban_list().into_iter().map(|(p, b)| (p, b.until)).collect()
    }

    /// Current bans with their addresses, ending soonest first.
    pub fn ban_list(&self) -> Vec<(PeerId, Ban)> {
        let mut v: Vec<(PeerId, Ban)> = self.bans.iter().map(|(p, b)| (*p, b.clone())).collect();
        v.sort_by_key(|(p, b)| (b.until, p.to_string()));
        v
    }

    /// Removes and returns bans that have run out.
    pub fn expire_bans(&mut self) -> Vec<PeerId> {
        let now = unix_now();
        let expired: Vec<PeerId> = self.bans.iter().filter(|(_, b)| b.until <= now).map(|(p, _)| *p).collect();
        for p in &expired {
            self.bans.remove(p);
            self.dirty = true;
        }
        expired
    }

    fn evict(&mut self) {
        for (table, max) in [(&mut self.tried, MAX_TRIED), (&mut self.new, MAX_NEW)] {
            if table.len() <= max {
                continue;
            }
            let mut by_age: Vec<(u64, PeerId)> = table.iter().map(|(p, k)| (k.last_seen, *p)).collect();
            by_age.sort();
            for (_, p) in by_age.into_iter().take(table.len() - max) {
                table.remove(&p);
            }
        }
        let known: HashSet<PeerId> = self.tried.keys().chain(self.new.keys()).copied().collect();
        self.backoff.retain(|p, _| known.contains(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn store_round_trips_peers_and_bans() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers.json");
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut s = PeerStore::load(&path);
        s.record_success(a, &addr(&format!("/ip4/127.0.0.1/tcp/4000/p2p/{a}")));
        s.ban(b, unix_now() + 100, Vec::new());
        s.save().unwrap();
        let s = PeerStore::load(&path);
        let c = s.candidates(Instant::now(), |_| false);
        assert_eq!(c, vec![(a, vec![addr("/ip4/127.0.0.1/tcp/4000")])]);
        assert!(s.is_banned(&b));
    }

    #[test]
    fn failures_back_off_and_bans_exclude() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PeerStore::load(&dir.path().join("peers.json"));
        let a = PeerId::random();
        s.record_success(a, &addr("/ip4/10.0.0.1/tcp/1"));
        let now = Instant::now();
        s.record_failure(&a, now);
        assert!(s.candidates(now, |_| false).is_empty());
        assert_eq!(s.candidates(now + MAX_BACKOFF, |_| false).len(), 1);
        s.clear_backoff(&a);
        s.ban(a, unix_now() + 100, Vec::new());
        assert!(s.candidates(now, |_| false).is_empty());
        assert!(s.unban(&a));
        assert_eq!(s.candidates(now, |_| false).len(), 1);
    }

    #[test]
    fn only_dialable_addresses_are_kept() {
        assert!(dialable(&addr("/ip4/0.0.0.0/tcp/5")).is_none());
        assert!(dialable(&addr("/ip4/1.2.3.4/udp/5")).is_none());
        assert_eq!(dialable(&addr("/ip4/1.2.3.4/tcp/5")), Some(addr("/ip4/1.2.3.4/tcp/5")));
    }

    #[test]
    fn rate_limit_refills() {
        let t = Instant::now();
        let mut r = RateLimit::new(10.0, 2.0);
        assert!(r.take(t) && r.take(t));
        assert!(!r.take(t));
        assert!(r.take(t + Duration::from_millis(150)));
    }

    #[test]
    fn corrupt_store_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers.json");
        std::fs::write(&path, b"{nope").unwrap();
        let s = PeerStore::load(&path);
        assert!(s.candidates(Instant::now(), |_| false).is_empty());
    }
}
