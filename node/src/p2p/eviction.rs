//! Inbound eviction, after Bitcoin Core's `SelectNodeToEvict`: when every
//! inbound slot is taken, a newcomer may replace the least useful inbound
//! peer. Peers an attacker finds hard to imitate are protected first (a
//! secret-keyed choice of address groups, the lowest pings, the latest
//! senders of novel transactions and blocks, then the longest connected
//! half); the victim is the youngest peer of the largest address group
//! left, so an attacker filling slots from few networks evicts its own.

use super::addresses::AddrGroup;
use libp2p::PeerId;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Peers protected by the keyed hash of their address group.
pub const PROTECT_BY_GROUP: usize = 4;
/// Peers protected for the lowest ping.
pub const PROTECT_BY_PING: usize = 8;
/// Peers protected for the latest novel transaction.
pub const PROTECT_BY_TX: usize = 4;
/// Peers protected for the latest novel block.
pub const PROTECT_BY_BLOCK: usize = 4;

/// What eviction knows about one inbound peer.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The peer.
    pub peer: PeerId,
    /// When it connected.
    pub connected_at: Instant,
    /// Its lowest ping so far.
    pub min_ping: Option<Duration>,
    /// When it last sent a block new to us that we accepted.
    pub last_block: Option<Instant>,
    /// When it last sent a transaction new to us that we accepted.
    pub last_tx: Option<Instant>,
    /// Its address group.
    pub group: AddrGroup,
    /// Its group ranked under this node's secret.
    pub keyed_group: u64,
}

/// Sorts the most deserving last (ties: the longer connected) and drops
/// the last `k` from the candidates (they are protected).
fn protect(c: &mut Vec<Candidate>, k: usize, rank: impl Fn(&Candidate, &Candidate) -> Ordering) {
    c.sort_by(|a, b| rank(a, b).then_with(|| b.connected_at.cmp(&a.connected_at)).then_with(|| a.peer.cmp(&b.peer)));
    let keep = c.len().saturating_sub(k);
    c.truncate(keep);
}

/// Lower ping ranks higher; no measurement ranks lowest.
fn by_ping(a: &Candidate, b: &Candidate) -> Ordering {
    match (a.min_ping, b.min_ping) {
        (Some(x), Some(y)) => y.cmp(&x),
        (x, y) => x.is_some().cmp(&y.is_some()),
    }
}

/// The inbound peer to disconnect to make room for a newcomer, or `None`
/// when every candidate is protected (then the newcomer is refused).
pub fn select_to_evict(mut c: Vec<Candidate>) -> Option<PeerId> {
    protect(&mut c, PROTECT_BY_GROUP, |a, b| a.keyed_group.cmp(&b.keyed_group));
    protect(&mut c, PROTECT_BY_PING, by_ping);
    protect(&mut c, PROTECT_BY_TX, |a, b| a.last_tx.cmp(&b.last_tx));
    protect(&mut c, PROTECT_BY_BLOCK, |a, b| a.last_block.cmp(&b.last_block));
    let half = c.len() / 2;
    protect(&mut c, half, |a, b| b.connected_at.cmp(&a.connected_at));
    // The largest group left; among equals, the one with the youngest
    // member (Bitcoin Core's tie-break).
    let mut groups: HashMap<AddrGroup, (usize, &Candidate)> = HashMap::new();
    for cand in &c {
        let e = groups.entry(cand.group).or_insert((0, cand));
        e.0 += 1;
        if cand.connected_at > e.1.connected_at {
            e.1 = cand;
        }
    }
    groups
        .into_values()
        .max_by(|(n, a), (m, b)| n.cmp(m).then_with(|| a.connected_at.cmp(&b.connected_at)))
        .map(|(_, youngest)| youngest.peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    /// `n` candidates connected one second apart, oldest first, each in
    /// its own group, with equal keyed groups (so only the rules under
    /// test tell them apart).
    fn candidates(n: usize) -> (Instant, Vec<Candidate>) {
        let t0 = Instant::now();
        let c = (0..n)
            .map(|i| Candidate {
                peer: PeerId::random(),
                connected_at: t0 + Duration::from_secs(i as u64),
                min_ping: None,
                last_block: None,
                last_tx: None,
                group: AddrGroup::of(IpAddr::V4(Ipv4Addr::new(20, i as u8, 0, 1))),
                keyed_group: 0,
            })
            .collect();
        (t0, c)
    }

    #[test]
    fn with_few_inbound_peers_everyone_is_protected() {
        let (_, c) = candidates(PROTECT_BY_GROUP + PROTECT_BY_PING + PROTECT_BY_TX + PROTECT_BY_BLOCK);
        assert_eq!(select_to_evict(c), None);
        assert_eq!(select_to_evict(Vec::new()), None);
    }

    #[test]
    fn the_youngest_of_the_largest_group_goes() {
        let (_, mut c) = candidates(30);
        // Seven young peers in one /16, none of them the youngest overall.
        let crowd = AddrGroup::of("30.1.0.0".parse().unwrap());
        for cand in &mut c[22..29] {
            cand.group = crowd;
        }
        assert_eq!(select_to_evict(c.clone()), Some(c[28].peer));
        // Without the crowd, the youngest peer goes.
        let (_, c) = candidates(30);
        assert_eq!(select_to_evict(c.clone()), Some(c[29].peer));
    }

    #[test]
    fn novel_blocks_and_transactions_and_low_ping_protect_a_peer() {
        let (t0, c) = candidates(30);
        let youngest = c[29].peer;
        for useful in [
            |c: &mut Candidate, t: Instant| c.last_block = Some(t),
            |c: &mut Candidate, t: Instant| c.last_tx = Some(t),
            |c: &mut Candidate, _: Instant| c.min_ping = Some(Duration::from_millis(1)),
        ] {
            let mut c = c.clone();
            useful(&mut c[29], t0 + Duration::from_secs(100));
            let victim = select_to_evict(c.clone());
            assert!(victim.is_some());
            assert_ne!(victim, Some(youngest), "a useful peer is protected");
        }
    }

    #[test]
    fn the_keyed_group_protects_whole_groups_unpredictably() {
        let (_, mut c) = candidates(30);
        c[29].keyed_group = u64::MAX;
        assert_ne!(select_to_evict(c.clone()), Some(c[29].peer));
    }

    #[test]
    fn the_longest_connected_half_is_protected() {
        let (_, mut c) = candidates(30);
        // Twenty are protected by the other rules (the oldest, as nothing
        // else tells them apart); of the ten left, the older five are
        // shielded by uptime before groups are counted, so their shared
        // group does not make one of them the victim.
        let crowd = AddrGroup::of("30.1.0.0".parse().unwrap());
        for cand in &mut c[20..23] {
            cand.group = crowd;
        }
        assert_eq!(select_to_evict(c.clone()), Some(c[29].peer));
    }
}
