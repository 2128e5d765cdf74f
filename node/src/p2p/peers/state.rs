//! Per-peer state: which side opened the connection, the inbound request
//! budget and everything kept about a connected peer.

use super::super::addresses::AddrGroup;
use super::super::codec::Status;
use super::super::services::Services;
use libp2p::Multiaddr;
use std::time::{Duration, Instant};

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
    /// Open connections.
    pub connections: u32,
    /// Of them, the ones we dialed (its direction follows from it).
    pub dialed_connections: u32,
    /// Misbehaviour score: starts at 0, banned at [`BAN_THRESHOLD`](super::BAN_THRESHOLD).
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
    /// Which block bodies it keeps, as far as we know.
    pub services: ServicesState,
    /// Block bodies it delivered to our sync.
    pub blocks_received: u64,
    /// Block bodies we asked it for that its reply left out.
    pub blocks_missing: u64,
    /// Identify has reported on it (it repeats every few minutes).
    pub identified: bool,
}

/// What we know of a peer's service advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServicesState {
    /// Not asked yet, or the last request failed (asked again with the
    /// next status request).
    Unknown,
    /// Asked; its bodies are not requested until it answers.
    Pending,
    /// It answered.
    Known(Services),
    /// It does not speak the services protocol (an older node or another
    /// implementation): it serves every body it has, like an archive node.
    Unsupported,
}

impl ServicesState {
    /// Whether sync may ask it for bodies: once it has said which it keeps,
    /// or shown it does not speak the protocol. Not before: the first
    /// bodies sync wants may be below its horizon.
    pub fn may_serve_bodies(&self) -> bool {
        matches!(self, ServicesState::Known(_) | ServicesState::Unsupported)
    }

    /// Lowest height whose body we may ask it for.
    pub fn horizon(&self) -> u32 {
        match self {
            ServicesState::Known(s) => s.lowest_height,
            _ => 0,
        }
    }

    /// Whether it advertised keeping every body (`None`: it has not said).
    pub fn archive(&self) -> Option<bool> {
        match self {
            ServicesState::Known(s) => Some(s.archive),
            _ => None,
        }
    }
}

impl Peer {
    /// Another connection to it opened (`dialed`: we dialed it). A peer
    /// that dialed us first becomes outbound when we dial it too: which
    /// side connected first must not decide whether we chose a peer (an
    /// attacker dialing in first would otherwise keep our dial from
    /// counting as outbound, and its lies from raising the alarms that
    /// outbound peers raise).
    pub fn connection_opened(&mut self, dialed: bool) {
        self.connections += 1;
        self.dialed_connections += u32::from(dialed);
    }

    /// One of its connections closed (`dialed`: one we dialed); it is
    /// inbound again once none of ours is left.
    pub fn connection_closed(&mut self, dialed: bool) {
        self.connections = self.connections.saturating_sub(1);
        self.dialed_connections = self.dialed_connections.saturating_sub(u32::from(dialed));
    }

    /// Outbound while any connection to it is one we dialed (we chose the
    /// peer, whoever connected first), inbound otherwise.
    pub fn direction(&self) -> Direction {
        if self.dialed_connections > 0 {
            Direction::Outbound
        } else {
            Direction::Inbound
        }
    }

    /// A freshly connected peer allowed `request_rate` requests a second
    /// (bursts of twice that).
    pub fn new(address: Multiaddr, direction: Direction, request_rate: u32) -> Peer {
        let rate = f64::from(request_rate.max(1));
        Peer {
            connections: 1,
            dialed_connections: u32::from(direction == Direction::Outbound),
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
            services: ServicesState::Unknown,
            blocks_received: 0,
            blocks_missing: 0,
            identified: false,
        }
    }
}
