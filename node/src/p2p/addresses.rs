//! Address policy: the IP behind a connection, address groups for outbound
//! diversity and inbound eviction, and the swarm behaviour that enforces
//! address bans and the per-address inbound limit before a connection is
//! even upgraded.
//!
//! A peer id costs nothing to replace, an address does: bans and limits
//! key on the address as well as the id. `127.0.0.1` and `::1` are exempt
//! by default (a local testnet runs every node there); every other address,
//! `127.0.0.2` included, is treated like any host.

use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished, DialFailure, ListenFailure};
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent,
    ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::task::{Context, Poll};

/// The IP address of a multiaddr (IPv4-mapped IPv6 as IPv4, so one host
/// has one key whichever way it reached us).
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(canonical(IpAddr::V6(ip))),
        _ => None,
    })
}

/// IPv4-mapped IPv6 addresses as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Whether `ip` is exempt from address bans and per-address limits:
/// `127.0.0.1` and `::1` when `exempt_loopback` is set (the default), so a
/// local testnet with every node on one address keeps working.
pub fn is_exempt(ip: IpAddr, exempt_loopback: bool) -> bool {
    exempt_loopback && (ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST))
}

/// Addresses an operator plausibly controls many of together: the unit of
/// outbound diversity and of inbound eviction (after Bitcoin Core's
/// netgroups).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddrGroup {
    /// A routable IPv4 address: its /16.
    V4([u8; 2]),
    /// A routable IPv6 address: its /32.
    V6([u8; 4]),
    /// A loopback, private or link-local address: the address itself (a
    /// whole /16 of them is one LAN, not one operator on the internet).
    Local(IpAddr),
}

impl AddrGroup {
    /// The group of `ip`.
    pub fn of(ip: IpAddr) -> AddrGroup {
        match canonical(ip) {
            IpAddr::V4(v4) => {
                if v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified() {
                    AddrGroup::Local(IpAddr::V4(v4))
                } else {
                    let o = v4.octets();
                    AddrGroup::V4([o[0], o[1]])
                }
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                // fc00::/7 unique local, fe80::/10 link local.
                let local =
                    v6.is_loopback() || v6.is_unspecified() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80;
                if local {
                    AddrGroup::Local(IpAddr::V6(v6))
                } else {
                    let o = v6.octets();
                    AddrGroup::V6([o[0], o[1], o[2], o[3]])
                }
            }
        }
    }

    /// The group of a multiaddr's IP, if it has one.
    pub fn of_addr(addr: &Multiaddr) -> Option<AddrGroup> {
        ip_of(addr).map(AddrGroup::of)
    }

    /// Loopback groups are exempt from outbound diversity: every node of a
    /// local testnet shares one address.
    pub fn is_loopback(&self) -> bool {
        matches!(self, AddrGroup::Local(ip) if ip.is_loopback())
    }
}

impl fmt::Display for AddrGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrGroup::V4([a, b]) => write!(f, "{a}.{b}.0.0/16"),
            AddrGroup::V6([a, b, c, d]) => {
                write!(f, "{:x}:{:x}::/32", u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))
            }
            AddrGroup::Local(ip) => write!(f, "local {ip}"),
        }
    }
}

/// Takes up to `want` dial candidates, in order, keeping only addresses in
/// groups not yet `taken` (loopback and addresses without an IP always
/// pass) and marking each pick's groups taken: outbound peers end up one
/// per group.
pub fn pick_diverse(
    candidates: impl IntoIterator<Item = (PeerId, Vec<Multiaddr>)>,
    taken: &mut HashSet<AddrGroup>,
    want: usize,
) -> Vec<(PeerId, Vec<Multiaddr>)> {
    let mut out = Vec::new();
    for (peer, addrs) in candidates {
        if out.len() >= want {
            break;
        }
        let free: Vec<Multiaddr> = addrs
            .into_iter()
            .filter(|a| AddrGroup::of_addr(a).is_none_or(|g| g.is_loopback() || !taken.contains(&g)))
            .collect();
        if free.is_empty() {
            continue;
        }
        taken.extend(free.iter().filter_map(AddrGroup::of_addr).filter(|g| !g.is_loopback()));
        out.push((peer, free));
    }
    out
}

/// Enforces address bans (both directions) and the per-address inbound
/// limit, and remembers the groups of dials in flight. Sits before the
/// other behaviours so a refused connection never reaches them; an inbound
/// connection from a banned address is refused before the noise handshake.
pub struct AddressGuard {
    exempt_loopback: bool,
    max_inbound_per_ip: usize,
    /// Banned addresses and when each ban ends (unix seconds); a ban that
    /// has run out is ignored even before the service removes it.
    banned: HashMap<IpAddr, u64>,
    /// Inbound connections, pending and established, and their address.
    inbound: HashMap<ConnectionId, IpAddr>,
    inbound_per_ip: HashMap<IpAddr, usize>,
    /// Groups of the addresses of each outbound dial in flight.
    pending_out: HashMap<ConnectionId, Vec<AddrGroup>>,
    /// A secret for ranking groups, so an attacker cannot predict which
    /// groups eviction protects.
    group_key: u64,
}

/// Why the guard refused a connection.
#[derive(Debug)]
pub enum Refused {
    /// The address is banned.
    Banned(IpAddr),
    /// The address already has its share of inbound connections.
    TooMany(IpAddr, usize),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Banned(ip) => write!(f, "address {ip} is banned"),
            Refused::TooMany(ip, n) => write!(f, "address {ip} already has {n} inbound connections"),
        }
    }
}

impl std::error::Error for Refused {}

impl AddressGuard {
    /// A guard with no bans.
    pub fn new(exempt_loopback: bool, max_inbound_per_ip: usize) -> AddressGuard {
        AddressGuard {
            exempt_loopback,
            max_inbound_per_ip: max_inbound_per_ip.max(1),
            banned: HashMap::new(),
            inbound: HashMap::new(),
            inbound_per_ip: HashMap::new(),
            pending_out: HashMap::new(),
            group_key: rand::random(),
        }
    }

    /// Replaces the banned addresses (the peer store is the source of truth).
    pub fn set_bans(&mut self, bans: HashMap<IpAddr, u64>) {
        self.banned = bans;
    }

    /// Whether connections to or from `ip` are refused now.
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !is_exempt(ip, self.exempt_loopback)
            && self.banned.get(&ip).is_some_and(|until| *until > super::peers::unix_now())
    }

    /// Whether `ip` is exempt from the per-address rules.
    pub fn exempt(&self, ip: IpAddr) -> bool {
        is_exempt(canonical(ip), self.exempt_loopback)
    }

    /// Groups of the outbound dials in flight.
    pub fn pending_outbound_groups(&self) -> impl Iterator<Item = AddrGroup> + '_ {
        self.pending_out.values().flatten().copied()
    }

    /// A ranking of `group` under this node's secret key.
    pub fn keyed_group(&self, group: &AddrGroup) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.group_key.hash(&mut h);
        group.hash(&mut h);
        h.finish()
    }

    fn check_address(&self, addr: &Multiaddr) -> Result<(), ConnectionDenied> {
        match ip_of(addr) {
            Some(ip) if self.is_banned(ip) => Err(ConnectionDenied::new(Refused::Banned(ip))),
            _ => Ok(()),
        }
    }

    fn forget_inbound(&mut self, id: &ConnectionId) {
        if let Some(ip) = self.inbound.remove(id) {
            if let Some(n) = self.inbound_per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.inbound_per_ip.remove(&ip);
                }
            }
        }
    }
}

impl NetworkBehaviour for AddressGuard {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.check_address(remote_addr)?;
        let Some(ip) = ip_of(remote_addr) else { return Ok(()) };
        if !self.exempt(ip) {
            let n = self.inbound_per_ip.get(&ip).copied().unwrap_or(0);
            if n >= self.max_inbound_per_ip {
                return Err(ConnectionDenied::new(Refused::TooMany(ip, n)));
            }
        }
        // Counted from the start: a flood of half-open handshakes from one
        // address is held to the same limit.
        self.inbound.insert(connection_id, ip);
        *self.inbound_per_ip.entry(ip).or_default() += 1;
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // A ban made during the handshake.
        if let Err(e) = self.check_address(remote_addr) {
            self.forget_inbound(&connection_id);
            return Err(e);
        }
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        _effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let groups: Vec<AddrGroup> = addresses.iter().filter_map(AddrGroup::of_addr).collect();
        if !groups.is_empty() {
            self.pending_out.insert(connection_id, groups);
        }
        Ok(Vec::new())
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.pending_out.remove(&connection_id);
        self.check_address(addr)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                connection_id,
                endpoint: ConnectedPoint::Dialer { .. },
                ..
            }) => {
                self.pending_out.remove(&connection_id);
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => self.forget_inbound(&connection_id),
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => self.forget_inbound(&connection_id),
            FromSwarm::DialFailure(DialFailure { connection_id, .. }) => {
                self.pending_out.remove(&connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _peer: PeerId, _id: ConnectionId, event: THandlerOutEvent<Self>) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn groups_are_slash16_slash32_or_the_local_address() {
        assert_eq!(AddrGroup::of(ip("1.2.3.4")), AddrGroup::of(ip("1.2.200.9")));
        assert_ne!(AddrGroup::of(ip("1.2.3.4")), AddrGroup::of(ip("1.3.3.4")));
        assert_eq!(AddrGroup::of(ip("2001:db8:1::1")), AddrGroup::of(ip("2001:db8:ffff::2")));
        assert_ne!(AddrGroup::of(ip("2001:db8::1")), AddrGroup::of(ip("2001:db9::1")));
        assert_eq!(AddrGroup::of(ip("::ffff:1.2.3.4")), AddrGroup::of(ip("1.2.9.9")));
        // Each LAN or loopback host is its own group.
        assert_ne!(AddrGroup::of(ip("192.168.1.2")), AddrGroup::of(ip("192.168.1.3")));
        assert_ne!(AddrGroup::of(ip("127.0.0.2")), AddrGroup::of(ip("127.0.0.3")));
        assert!(AddrGroup::of(ip("127.0.0.5")).is_loopback());
        assert!(!AddrGroup::of(ip("10.0.0.1")).is_loopback());
        assert_eq!(AddrGroup::of(ip("1.2.3.4")).to_string(), "1.2.0.0/16");
        assert_eq!(AddrGroup::of(ip("2001:db8::1")).to_string(), "2001:db8::/32");
    }

    #[test]
    fn outbound_picks_are_one_per_group_except_loopback() {
        let a = |s: &str| -> Multiaddr { s.parse().unwrap() };
        let (p1, p2, p3, p4, p5) =
            (PeerId::random(), PeerId::random(), PeerId::random(), PeerId::random(), PeerId::random());
        let cands = vec![
            (p1, vec![a("/ip4/1.2.3.4/tcp/1")]),
            (p2, vec![a("/ip4/1.2.9.9/tcp/1")]),
            (p3, vec![a("/ip4/5.6.7.8/tcp/1")]),
            (p4, vec![a("/ip4/127.0.0.1/tcp/1")]),
            (p5, vec![a("/ip4/127.0.0.1/tcp/2")]),
        ];
        let mut taken = HashSet::new();
        let picks: Vec<PeerId> = pick_diverse(cands.clone(), &mut taken, 10).into_iter().map(|(p, _)| p).collect();
        assert_eq!(picks, vec![p1, p3, p4, p5], "1.2/16 once, loopback always");
        // A group already held by an outbound peer is skipped.
        let mut taken: HashSet<AddrGroup> = [AddrGroup::of(ip("5.6.0.1"))].into();
        let picks: Vec<PeerId> = pick_diverse(cands, &mut taken, 2).into_iter().map(|(p, _)| p).collect();
        assert_eq!(picks, vec![p1, p4]);
    }

    #[test]
    fn only_the_usual_loopback_addresses_are_exempt() {
        assert!(is_exempt(ip("127.0.0.1"), true));
        assert!(is_exempt(ip("::1"), true));
        assert!(!is_exempt(ip("127.0.0.2"), true));
        assert!(!is_exempt(ip("127.0.0.1"), false));
        let mut g = AddressGuard::new(true, 1);
        let later = super::super::peers::unix_now() + 100;
        g.set_bans([(ip("127.0.0.2"), later), (ip("127.0.0.1"), later), (ip("10.0.0.1"), 1)].into());
        assert!(g.is_banned(ip("127.0.0.2")));
        assert!(!g.is_banned(ip("127.0.0.1")), "exempt");
        assert!(!g.is_banned(ip("10.0.0.1")), "expired");
        assert!(g.is_banned(ip("::ffff:127.0.0.2")), "mapped addresses are the same host");
    }
}
