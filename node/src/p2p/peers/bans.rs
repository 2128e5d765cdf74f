//! Bans: peer ids and the addresses they connected from, until when, the
//! bound on how many are kept, and their expiry.

use super::{unix_now, PeerStore, MAX_BANS};
use libp2p::PeerId;
use std::collections::HashMap;
use std::net::IpAddr;

/// A ban: until when, and the addresses it covers besides the peer id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    /// End of the ban (unix seconds).
    pub until: u64,
    /// Addresses the peer connected from when it was banned.
    pub addrs: Vec<IpAddr>,
}

impl PeerStore {
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

    pub(super) fn bound_bans(&mut self) -> Vec<PeerId> {
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
}
