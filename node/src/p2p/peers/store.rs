//! The peer store's address tables: "tried" (addresses this node has
//! connected to) and "new" (addresses it was only told about), each bounded,
//! with dial backoff and the choice of peers worth dialing.

use super::super::addresses::{ip_of, AddrGroup};
use super::bans::Ban;
use super::persist::Writer;
use super::{unix_now, MAX_ADDRS_PER_PEER, MAX_BACKOFF, MAX_NEW, MAX_NEW_PER_SOURCE, MAX_TRIED};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// An entry of the address tables.
#[derive(Clone, Debug)]
pub(super) struct Known {
    pub(super) addrs: Vec<Multiaddr>,
    pub(super) last_seen: u64,
    /// Group of the peer that told us (new table only): bounds what one
    /// network can put in the table.
    pub(super) source: Option<AddrGroup>,
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

pub(super) fn new_known(source: Option<AddrGroup>) -> Known {
    Known { addrs: Vec::new(), last_seen: 0, source }
}

/// Known peers (tried and new) and bans, saved as JSON in the data directory.
#[derive(Debug)]
pub struct PeerStore {
    pub(super) path: PathBuf,
    pub(super) tried: HashMap<PeerId, Known>,
    pub(super) new: HashMap<PeerId, Known>,
    /// Failed dials: (failures in a row, not before).
    pub(super) backoff: HashMap<PeerId, (u32, Instant)>,
    pub(super) bans: HashMap<PeerId, Ban>,
    pub(super) dirty: bool,
    pub(super) writer: Writer,
}

impl PeerStore {
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

    pub(super) fn evict(&mut self) {
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
