//! Unit tests of the peer store, bans and rate limits.

use super::state::RateLimit;
use super::*;
use libp2p::{Multiaddr, PeerId};
use std::time::{Duration, Instant};

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

#[test]
fn bodies_are_asked_only_of_peers_whose_services_are_known_or_unsupported() {
    use crate::p2p::services::Services;
    // A peer not yet asked (say, connected before our first chain read)
    // may have pruned the first bodies sync wants.
    assert!(!ServicesState::Unknown.may_serve_bodies());
    assert!(!ServicesState::Pending.may_serve_bodies());
    assert!(ServicesState::Unsupported.may_serve_bodies());
    let pruned = ServicesState::Known(Services { archive: false, lowest_height: 413 });
    assert!(pruned.may_serve_bodies());
    assert_eq!(pruned.horizon(), 413);
    assert_eq!(ServicesState::Unsupported.horizon(), 0);
}

#[test]
fn a_peer_store_larger_than_its_cap_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.json");
    let a = PeerId::random();
    let mut s = PeerStore::load(&path);
    s.record_success(a, &addr(&format!("/ip4/127.0.0.1/tcp/4000/p2p/{a}")));
    s.save().unwrap();
    // Valid JSON (trailing whitespace is allowed), one byte over the cap.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.resize(persist::MAX_PEER_FILE_BYTES as usize + 1, b' ');
    std::fs::write(&path, bytes).unwrap();
    let s = PeerStore::load(&path);
    assert!(s.candidates(Instant::now(), |_| false).is_empty(), "an oversized peer store was read");
}

#[test]
fn a_peer_is_outbound_while_a_connection_we_dialed_is_open() {
    let mut p = Peer::new(addr("/ip4/10.0.0.1/tcp/4000"), Direction::Inbound, 10);
    p.connection_opened(true);
    assert_eq!((p.direction(), p.connections), (Direction::Outbound, 2), "we dialed it too");
    p.connection_closed(false);
    assert_eq!((p.direction(), p.connections), (Direction::Outbound, 1), "ours is still open");
    p.connection_opened(false);
    p.connection_closed(true);
    assert_eq!((p.direction(), p.connections), (Direction::Inbound, 1), "only its own connection is left");
}
