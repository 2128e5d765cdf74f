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
//!
//! This module holds the shared limits, penalties and clock; the parts live
//! in `state` (per-peer state), `store` (tried/new tables), `bans` (ban
//! list, expiry, bound) and `persist` (loading and background saves).

mod bans;
mod persist;
mod state;
mod store;
#[cfg(test)]
mod tests;

pub use state::{Direction, Peer, ServicesState};
pub use store::{dialable, PeerStore};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
