//! What the node knows about peers: per-connection state with misbehaviour
//! scores and request rate limits, bans with expiry, and the peer store of
//! known-good addresses persisted in the data directory (so a restarted
//! node finds the network with every bootnode down).

use super::codec::Status;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A peer whose score falls to this is disconnected and banned.
pub const BAN_THRESHOLD: i32 = -100;
/// Most entries kept in the peer store; the least recently seen go first.
pub const MAX_STORE_ENTRIES: usize = 1000;
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
    /// One request above the rate limit.
    pub const FLOOD: i32 = 5;
    /// A request that timed out.
    pub const TIMEOUT: i32 = 2;
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
}

impl Peer {
    /// A freshly connected peer allowed `request_rate` requests a second
    /// (bursts of twice that).
    pub fn new(address: Multiaddr, direction: Direction, request_rate: u32) -> Peer {
        let rate = f64::from(request_rate.max(1));
        Peer {
            address,
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
        }
    }
}

/// A known address book entry.
#[derive(Clone, Debug)]
struct Known {
    addrs: Vec<Multiaddr>,
    last_seen: u64,
    failures: u32,
    next_try: Option<Instant>,
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
}

#[derive(Serialize, Deserialize)]
struct StoredBan {
    peer_id: String,
    until: u64,
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

/// Known peers and bans, saved as JSON in the data directory.
#[derive(Debug)]
pub struct PeerStore {
    path: PathBuf,
    known: HashMap<PeerId, Known>,
    bans: HashMap<PeerId, u64>,
    dirty: bool,
}

impl PeerStore {
    /// Loads `path`; a missing or unreadable file starts an empty store.
    pub fn load(path: &Path) -> PeerStore {
        let mut store =
            PeerStore { path: path.to_path_buf(), known: HashMap::new(), bans: HashMap::new(), dirty: false };
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
                store.known.insert(id, Known { addrs, last_seen: p.last_seen, failures: 0, next_try: None });
            }
        }
        let now = unix_now();
        for b in file.bans {
            if let Ok(id) = PeerId::from_str(&b.peer_id) {
                if b.until > now {
                    store.bans.insert(id, b.until);
                }
            }
        }
        store.evict();
        store
    }

    /// Writes the store if it changed (atomically, via a temporary file).
    pub fn save(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let file = StoreFile {
            peers: self
                .known
                .iter()
                .map(|(id, k)| StoredPeer {
                    peer_id: id.to_string(),
                    addrs: k.addrs.iter().map(|a| a.to_string()).collect(),
                    last_seen: k.last_seen,
                })
                .collect(),
            bans: self.bans.iter().map(|(id, until)| StoredBan { peer_id: id.to_string(), until: *until }).collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &self.path)?;
        self.dirty = false;
        Ok(())
    }

    /// A successful outbound connection: `addr` first, failures forgotten.
    pub fn record_success(&mut self, peer: PeerId, addr: &Multiaddr) {
        let Some(addr) = dialable(addr) else { return };
        let k = self.known.entry(peer).or_insert_with(|| Known {
            addrs: Vec::new(),
            last_seen: 0,
            failures: 0,
            next_try: None,
        });
        k.addrs.retain(|a| *a != addr);
        k.addrs.insert(0, addr);
        k.addrs.truncate(MAX_ADDRS_PER_PEER);
        k.last_seen = unix_now();
        k.failures = 0;
        k.next_try = None;
        self.dirty = true;
        self.evict();
    }

    /// Listen addresses a connected peer announced (inbound peers become
    /// dialable this way).
    pub fn add_addrs(&mut self, peer: PeerId, addrs: &[Multiaddr]) {
        let addrs: Vec<Multiaddr> = addrs.iter().filter_map(dialable).collect();
        if addrs.is_empty() {
            return;
        }
        let k = self.known.entry(peer).or_insert_with(|| Known {
            addrs: Vec::new(),
            last_seen: 0,
            failures: 0,
            next_try: None,
        });
        for a in addrs {
            if !k.addrs.contains(&a) && k.addrs.len() < MAX_ADDRS_PER_PEER {
                k.addrs.push(a);
            }
        }
        k.last_seen = unix_now();
        self.dirty = true;
        self.evict();
    }

    /// A failed dial: back off exponentially before trying again.
    pub fn record_failure(&mut self, peer: &PeerId, now: Instant) {
        if let Some(k) = self.known.get_mut(peer) {
            k.failures = k.failures.saturating_add(1);
            let wait = Duration::from_secs(1u64 << k.failures.min(6)).min(MAX_BACKOFF);
            k.next_try = Some(now + wait);
        }
    }

    /// Forgets failures so the peer is dialed at the next chance.
    pub fn clear_backoff(&mut self, peer: &PeerId) {
        if let Some(k) = self.known.get_mut(peer) {
            k.failures = 0;
            k.next_try = None;
        }
    }

    /// Forgets a peer (another chain, or an address that turned out wrong).
    pub fn remove(&mut self, peer: &PeerId) {
        if self.known.remove(peer).is_some() {
            self.dirty = true;
        }
    }

    /// Whether the peer has an entry.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.known.contains_key(peer)
    }

    /// Up to `n` peers worth dialing now, most recently seen first.
    pub fn candidates(&self, now: Instant, n: usize, skip: impl Fn(&PeerId) -> bool) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut c: Vec<(&PeerId, &Known)> = self
            .known
            .iter()
            .filter(|(id, k)| !skip(id) && k.next_try.is_none_or(|t| t <= now) && !self.bans.contains_key(*id))
            .collect();
        c.sort_by_key(|(_, k)| std::cmp::Reverse(k.last_seen));
        c.into_iter().take(n).map(|(id, k)| (*id, k.addrs.clone())).collect()
    }

    /// Bans `peer` until `until` (unix seconds).
    pub fn ban(&mut self, peer: PeerId, until: u64) {
        self.bans.insert(peer, until);
        self.dirty = true;
    }

    /// Lifts a ban; true when there was one.
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
        self.bans.get(peer).is_some_and(|until| *until > unix_now())
    }

    /// Current bans as (peer, until).
    pub fn bans(&self) -> Vec<(PeerId, u64)> {
        let mut v: Vec<(PeerId, u64)> = self.bans.iter().map(|(p, u)| (*p, *u)).collect();
        v.sort_by_key(|(p, u)| (*u, p.to_string()));
        v
    }

    /// Removes and returns bans that have run out.
    pub fn expire_bans(&mut self) -> Vec<PeerId> {
        let now = unix_now();
        let expired: Vec<PeerId> = self.bans.iter().filter(|(_, u)| **u <= now).map(|(p, _)| *p).collect();
        for p in &expired {
            self.bans.remove(p);
            self.dirty = true;
        }
        expired
    }

    fn evict(&mut self) {
        while self.known.len() > MAX_STORE_ENTRIES {
            let Some(oldest) = self.known.iter().min_by_key(|(_, k)| k.last_seen).map(|(p, _)| *p) else {
                break;
            };
            self.known.remove(&oldest);
        }
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
        s.ban(b, unix_now() + 100);
        s.save().unwrap();
        let s = PeerStore::load(&path);
        let c = s.candidates(Instant::now(), 10, |_| false);
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
        assert!(s.candidates(now, 10, |_| false).is_empty());
        assert_eq!(s.candidates(now + MAX_BACKOFF, 10, |_| false).len(), 1);
        s.clear_backoff(&a);
        s.ban(a, unix_now() + 100);
        assert!(s.candidates(now, 10, |_| false).is_empty());
        assert!(s.unban(&a));
        assert_eq!(s.candidates(now, 10, |_| false).len(), 1);
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
        assert!(s.candidates(Instant::now(), 10, |_| false).is_empty());
    }
}
