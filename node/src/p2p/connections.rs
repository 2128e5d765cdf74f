//! Connections and peers: handle commands, dialing and the outbound
//! target (spread over address groups), bans of peers and their addresses,
//! misbehaviour, inbound eviction, swarm and discovery events.

use super::addresses::{ip_of, pick_diverse, AddrGroup};
use super::behaviour::{inbound_slots, BehaviourEvent};
use super::eviction::{select_to_evict, Candidate};
use super::peers::{unix_now, Direction, Peer, BAN_THRESHOLD};
use super::service::{
    peer_of, Command, PendingDial, Service, ADD_PEER_TIMEOUT, KAD_MIN_INTERVAL, KAD_RETRY_FIRST, WRONG_CHAIN_BACKOFF,
};
use super::{BannedPeer, P2pError, PeerInfo};
use libp2p::gossipsub;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, kad, mdns, Multiaddr, PeerId};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::oneshot;

impl Service {
    pub(super) fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.listen_strings());
            }
            Command::Peers(reply) => {
                let mut v: Vec<PeerInfo> = self
                    .peers
                    .iter()
                    .map(|(id, p)| PeerInfo {
                        peer_id: id.to_string(),
                        address: super::peers::dialable(&p.address).unwrap_or_else(|| p.address.clone()).to_string(),
                        direction: p.direction().as_str().to_string(),
                        height: p.status.as_ref().map(|s| s.height).unwrap_or(0),
                        best_hash: p.status.as_ref().map(|s| s.best_hash.to_hex()).unwrap_or_default(),
                        score: p.score,
                        commitment_mismatch: p.commitment_mismatch,
                        address_group: p.group.map(|g| g.to_string()).unwrap_or_default(),
                        connected_secs: p.connected_at.elapsed().as_secs(),
                        min_ping_ms: p.min_ping.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                        archive: p.services.archive(),
                        lowest_height: p.services.archive().map(|_| p.services.horizon()),
                        blocks_received: p.blocks_received,
                        blocks_missing: p.blocks_missing,
                    })
                    .collect();
                v.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
                let _ = reply.send(v);
            }
            Command::AddPeer(addr, reply) => self.add_peer(addr, reply),
            Command::Disconnect(peer, reply) => {
                let r = if self.swarm.disconnect_peer_id(peer).is_ok() {
                    Ok(())
                } else {
                    Err(P2pError::NotConnected(peer.to_string()))
                };
                let _ = reply.send(r);
            }
            Command::Ban(peer, secs, reply) => {
                let secs = if secs == 0 { self.config.ban_duration.as_secs() } else { secs };
                self.ban(peer, secs, "banned by the operator");
                let _ = reply.send(Ok(()));
            }
            Command::Unban(peer, reply) => {
                let r = if self.store.unban(&peer) {
                    self.swarm.behaviour_mut().blocked.unblock_peer(peer);
                    self.sync_address_bans();
                    let _ = self.store.save();
                    tracing::info!(%peer, "peer unbanned");
                    Ok(())
                } else {
                    Err(P2pError::NotBanned(peer.to_string()))
                };
                let _ = reply.send(r);
            }
            Command::Banned(reply) => {
                let v = self
                    .store
                    .ban_list()
                    .into_iter()
                    .map(|(p, b)| BannedPeer {
                        peer_id: p.to_string(),
                        until: b.until,
                        addresses: b.addrs.iter().map(|a| a.to_string()).collect(),
                    })
                    .collect();
                let _ = reply.send(v);
            }
            Command::Shutdown(_) => {}
            #[cfg(any(test, feature = "test-support"))]
            Command::Queues(reply) => {
                let _ = reply.send(self.queue_stats());
            }
            #[cfg(test)]
            Command::PublishRaw { blocks, data } => {
                let topic = if blocks { self.names.blocks.clone() } else { self.names.txs.clone() };
                if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
                    tracing::warn!(?e, "raw publish failed");
                }
            }
            #[cfg(test)]
            Command::TopicsOf(peer, reply) => {
                let gossip = &self.swarm.behaviour().gossipsub;
                let n = gossip.all_peers().find(|(p, _)| **p == peer).map_or(0, |(_, topics)| topics.len());
                let _ = reply.send(n);
            }
            #[cfg(test)]
            Command::PublishCompactRaw { data, block } => {
                self.compact.remember(block);
                let topic = self.names.cmpct_blocks.clone();
                if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
                    tracing::warn!(?e, "raw publish failed");
                }
            }
        }
    }

    pub(super) fn listen_strings(&self) -> Vec<String> {
        self.listen_addrs.iter().map(|a| a.clone().with(Protocol::P2p(self.local_id)).to_string()).collect()
    }

    fn add_peer(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<(), P2pError>>) {
        if ip_of(&addr).is_some_and(|ip| self.swarm.behaviour().guard.is_banned(ip)) {
            let _ = reply.send(Err(P2pError::Banned(addr.to_string())));
            return;
        }
        let peer = peer_of(&addr);
        if let Some(p) = peer {
            if self.store.is_banned(&p) {
                let _ = reply.send(Err(P2pError::Banned(p.to_string())));
                return;
            }
            // Already connected: done, unless only through connections it
            // dialed and a connection slot is left for it. Then the
            // operator's pick gets a connection of ours, as Core's addnode
            // makes its own, and counts as a peer we chose (see
            // `Peer::connection_opened`).
            let dial_too = self.peers.get(&p).is_some_and(|peer| {
                peer.direction() == Direction::Inbound && peer.connections < self.config.max_connections_per_peer
            });
            if self.swarm.is_connected(&p) && !dial_too {
                let _ = reply.send(Ok(()));
                return;
            }
            // The same peer at the same address: wait on that dial (another
            // address, say a corrected one, is dialed as well).
            let same = |d: &&mut PendingDial| d.peer == Some(p) && d.addr == addr.to_string();
            if let Some(dial) = self.pending_dials.values_mut().find(same) {
                dial.replies.push(reply);
                return;
            }
            self.wrong_chain.remove(&p);
        }
        let opts = match peer {
            Some(p) => DialOpts::peer_id(p).addresses(vec![addr.clone()]).condition(PeerCondition::Always).build(),
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                let dial = PendingDial {
                    addr: addr.to_string(),
                    peer,
                    replies: vec![reply],
                    deadline: Instant::now() + ADD_PEER_TIMEOUT,
                };
                self.pending_dials.insert(id, dial);
            }
            Err(e) => {
                let _ = reply.send(Err(P2pError::Dial { addr: addr.to_string(), why: e.to_string() }));
            }
        }
    }

    fn dial(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == self.local_id
            || self.dialing.contains(&peer)
            || self.swarm.is_connected(&peer)
            || self.store.is_banned(&peer)
            || self.wrong_chain.contains_key(&peer)
        {
            return;
        }
        let guard = &self.swarm.behaviour().guard;
        let addrs: Vec<Multiaddr> =
            addrs.into_iter().filter(|a| ip_of(a).is_none_or(|ip| !guard.is_banned(ip))).collect();
        if addrs.is_empty() {
            return;
        }
        let opts = DialOpts::peer_id(peer).addresses(addrs).condition(PeerCondition::DisconnectedAndNotDialing).build();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.dialing.insert(peer);
            }
            Err(e) => tracing::debug!(%peer, %e, "dial refused"),
        }
    }

    pub(super) fn dial_bootnodes(&mut self) {
        for addr in self.bootnodes.clone() {
            match peer_of(&addr) {
                Some(p) => self.dial(p, vec![addr]),
                None => {
                    if let Err(e) = self.swarm.dial(addr.clone()) {
                        tracing::debug!(%addr, %e, "cannot dial bootnode");
                    }
                }
            }
        }
    }

    /// Outbound peers counted once per address group (every loopback
    /// peer counts: a local testnet shares one address), and the
    /// non-loopback groups they and the dials in flight occupy.
    pub(super) fn outbound_groups(&self) -> (usize, HashSet<AddrGroup>) {
        let mut groups = HashSet::new();
        let mut local = 0;
        for p in self.peers.values().filter(|p| p.direction() == Direction::Outbound) {
            match p.group {
                Some(g) if !g.is_loopback() => {
                    groups.insert(g);
                }
                _ => local += 1,
            }
        }
        let distinct = groups.len() + local;
        groups.extend(self.swarm.behaviour().guard.pending_outbound_groups().filter(|g| !g.is_loopback()));
        (distinct, groups)
    }

    /// Keeps `target_outbound` outbound peers in as many address groups
    /// (one peer per group, so an attacker with one network cannot take
    /// every slot): peer store first (tried and new in turn), then the
    /// Kademlia table, then bootnodes when alone.
    pub(super) fn top_up(&mut self) {
        let (outbound, mut taken) = self.outbound_groups();
        let want = self.config.target_outbound.saturating_sub(outbound + self.dialing.len());
        if want == 0 || self.peers.len() >= self.config.max_peers {
            return;
        }
        let now = Instant::now();
        self.wrong_chain.retain(|_, t| now.saturating_duration_since(*t) < WRONG_CHAIN_BACKOFF);
        let skip = |p: &PeerId| {
            *p == self.local_id
                || self.peers.contains_key(p)
                || self.dialing.contains(p)
                || self.wrong_chain.contains_key(p)
        };
        let mut picks = pick_diverse(self.store.candidates(now, skip), &mut taken, want);
        if picks.len() < want {
            let mut from_kad = Vec::new();
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                for bucket in kad.kbuckets() {
                    for e in bucket.iter() {
                        from_kad.push((*e.node.key.preimage(), e.node.value.iter().cloned().collect::<Vec<_>>()));
                    }
                }
            }
            from_kad.retain(|(p, _)| {
                !skip(p) && !self.store.is_banned(p) && !self.store.contains(p) && !picks.iter().any(|(q, _)| q == p)
            });
            let more = pick_diverse(from_kad, &mut taken, want - picks.len());
            picks.extend(more);
        }
        for (p, addrs) in picks {
            self.dial(p, addrs);
        }
        if self.peers.is_empty() && self.dialing.is_empty() {
            self.dial_bootnodes();
        }
    }

    /// Runs a Kademlia lookup of our own id (which connects us to the
    /// peers closest to us) while we want more outbound peers; at most
    /// every half second, the rest is deferred to the tick.
    pub(super) fn discover(&mut self) {
        let (outbound, _) = self.outbound_groups();
        if outbound >= self.config.target_outbound || !self.config.discovery {
            return;
        }
        let now = Instant::now();
        if now.saturating_duration_since(self.last_kad) < KAD_MIN_INTERVAL {
            self.kad_wanted = true;
            return;
        }
        self.kad_wanted = false;
        self.last_kad = now;
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
            if kad.bootstrap().is_ok() {
                self.kad_lookups += 1;
                tracing::debug!(lookups = self.kad_lookups, outbound, "kademlia lookup");
            }
        }
    }

    /// Lowers a peer's score; at the threshold it is banned.
    pub(super) fn misbehave(&mut self, peer: PeerId, points: i32, reason: &str) {
        let score = match self.peers.get_mut(&peer) {
            Some(p) => {
                p.score = p.score.saturating_sub(points);
                p.score
            }
            None => -points,
        };
        tracing::warn!(%peer, points, score, reason, "peer misbehaved");
        if score <= BAN_THRESHOLD {
            self.ban(peer, self.config.ban_duration.as_secs(), reason);
        }
    }

    /// Bans the peer id and the addresses it connected from: a new key
    /// is free, a new address is not.
    fn ban(&mut self, peer: PeerId, secs: u64, reason: &str) {
        if peer == self.local_id {
            return;
        }
        let until = unix_now().saturating_add(secs);
        // Only addresses we saw it use (its connection, or one we dialed
        // ourselves): what a peer merely claims could be anyone's, and
        // banning that would let a liar cut us off from honest nodes.
        let mut ips: Vec<IpAddr> = match self.peers.get(&peer) {
            Some(p) => ip_of(&p.address).into_iter().collect(),
            None => self.store.tried_ips(&peer),
        };
        let guard = &self.swarm.behaviour().guard;
        ips.retain(|ip| !guard.exempt(*ip));
        ips.sort();
        ips.dedup();
        tracing::warn!(%peer, secs, reason, addresses = ?ips, "banning peer");
        for dropped in self.store.ban(peer, until, ips.clone()) {
            self.swarm.behaviour_mut().blocked.unblock_peer(dropped);
        }
        // Closes its connections and refuses new ones in both directions.
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        self.sync_address_bans();
        // Other identities on a banned address go too.
        let same_host: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(id, p)| **id != peer && ip_of(&p.address).is_some_and(|ip| ips.contains(&ip)))
            .map(|(id, _)| *id)
            .collect();
        for other in same_host {
            tracing::info!(peer = %other, banned = %peer, "disconnecting a peer on a banned address");
            let _ = self.swarm.disconnect_peer_id(other);
        }
        // In the background and debounced: a burst of bans must not stall
        // this task on disk writes.
        let _ = self.store.save();
    }

    /// Hands the store's banned addresses to the connection guard.
    fn sync_address_bans(&mut self) {
        let bans = self.store.banned_ips();
        self.swarm.behaviour_mut().guard.set_bans(bans);
    }

    /// When a newcomer overfills the inbound slots, disconnects the least
    /// useful inbound peer (Bitcoin Core's eviction), or the newcomer when
    /// every other inbound peer is protected. False if the newcomer goes.
    fn make_room_for(&mut self, newcomer: PeerId) -> bool {
        let inbound = self.peers.values().filter(|p| p.direction() == Direction::Inbound).count();
        if inbound <= inbound_slots(&self.config) {
            return true;
        }
        let guard = &self.swarm.behaviour().guard;
        let candidates: Vec<Candidate> = self
            .peers
            .iter()
            .filter(|(id, p)| p.direction() == Direction::Inbound && **id != newcomer)
            .map(|(id, p)| {
                let group = p.group.unwrap_or(AddrGroup::Local(IpAddr::from([0, 0, 0, 0])));
                Candidate {
                    peer: *id,
                    connected_at: p.connected_at,
                    min_ping: p.min_ping,
                    last_block: p.last_block,
                    last_tx: p.last_tx,
                    group,
                    keyed_group: guard.keyed_group(&group),
                }
            })
            .collect();
        match select_to_evict(candidates) {
            Some(victim) => {
                tracing::info!(peer = %victim, %newcomer, "inbound slots full: evicting the least useful inbound peer");
                let _ = self.swarm.disconnect_peer_id(victim);
                true
            }
            None => {
                tracing::info!(peer = %newcomer, "inbound slots full and every inbound peer protected: refusing");
                let _ = self.swarm.disconnect_peer_id(newcomer);
                false
            }
        }
    }

    /// The peer gave us a block we did not have and accepted: inbound
    /// eviction protects recent sources of novel blocks.
    pub(super) fn note_novel_block(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.last_block = Some(Instant::now());
        }
    }

    /// The peer gave us a transaction we did not have and accepted.
    pub(super) fn note_novel_tx(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.last_tx = Some(Instant::now());
        }
    }

    /// A peer on another chain: drop it and do not dial it again soon.
    pub(super) fn drop_wrong_chain(&mut self, peer: PeerId, reason: &str) {
        tracing::warn!(%peer, reason, "disconnecting a peer on another chain or network");
        self.store.remove(&peer);
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
            kad.remove_peer(&peer);
        }
        super::wrong_chain::remember(&mut self.wrong_chain, peer, Instant::now());
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    pub(super) fn update_counts(&self) {
        let inbound = self.peers.values().filter(|p| p.direction() == Direction::Inbound).count();
        self.shared.inbound.store(inbound, Ordering::Relaxed);
        self.shared.outbound.store(self.peers.len() - inbound, Ordering::Relaxed);
        let archive = self.peers.values().filter(|p| p.services.archive() == Some(true)).count();
        self.shared.archive_peers.store(archive, Ordering::Relaxed);
    }

    pub(super) fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::Behaviour(ev) => self.on_behaviour_event(ev),
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(address = %address.clone().with(Protocol::P2p(self.local_id)), "listening");
                if !self.listen_addrs.contains(&address) {
                    self.listen_addrs.push(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => self.listen_addrs.retain(|a| *a != address),
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, num_established, .. } => {
                self.dialing.remove(&peer_id);
                if let Some(dial) = self.pending_dials.remove(&connection_id) {
                    dial.answer(None);
                }
                let addr = endpoint.get_remote_address().clone();
                if endpoint.is_dialer() {
                    self.store.record_success(peer_id, &addr);
                }
                if num_established.get() == 1 {
                    let dir = if endpoint.is_dialer() { Direction::Outbound } else { Direction::Inbound };
                    tracing::info!(peer = %peer_id, %addr, direction = dir.as_str(), "peer connected");
                    self.peers.insert(peer_id, Peer::new(addr, dir, self.config.request_rate));
                    if dir == Direction::Outbound || self.make_room_for(peer_id) {
                        self.request_status(peer_id);
                    }
                } else if let Some(p) = self.peers.get_mut(&peer_id) {
                    p.connection_opened(endpoint.is_dialer());
                }
                self.update_counts();
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, endpoint, num_established, cause, .. } => {
                if let Some(dial) = self.pending_dials.remove(&connection_id) {
                    dial.answer(Some("connection closed during setup"));
                }
                if num_established == 0 {
                    if self.peers.remove(&peer_id).is_some() {
                        tracing::info!(peer = %peer_id, cause = ?cause.map(|c| c.to_string()), "peer disconnected");
                    }
                    self.downloader.peer_gone(&peer_id);
                    self.compact.peer_gone(&peer_id);
                    self.header_peers.remove(&peer_id);
                    if self.headers_pending.as_ref().is_some_and(|(p, _)| *p == peer_id) {
                        self.headers_pending = None;
                    }
                    self.status_requests.retain(|_, p| *p != peer_id);
                    self.counted_mismatches.retain(|(p, _)| *p != peer_id);
                } else if let Some(p) = self.peers.get_mut(&peer_id) {
                    let was = p.direction();
                    p.connection_closed(endpoint.is_dialer());
                    // Inbound now (our connection closed, its own is left):
                    // it takes an inbound slot like a newcomer, else a peer
                    // we dialed could dial back and drop ours to get past
                    // the inbound limit.
                    if was == Direction::Outbound && p.direction() == Direction::Inbound {
                        self.make_room_for(peer_id);
                    }
                }
                self.update_counts();
            }
            SwarmEvent::OutgoingConnectionError { connection_id, peer_id, error } => {
                if let Some(p) = peer_id {
                    self.dialing.remove(&p);
                    self.store.record_failure(&p, Instant::now());
                }
                if let Some(dial) = self.pending_dials.remove(&connection_id) {
                    dial.answer(Some(&error.to_string()));
                }
                tracing::debug!(peer = ?peer_id, %error, "outgoing connection failed");
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                tracing::debug!(%send_back_addr, %error, "incoming connection failed");
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, ev: BehaviourEvent) {
        match ev {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.on_identify(peer_id, info)
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    if peer == self.local_id || self.store.is_banned(&peer) {
                        continue;
                    }
                    tracing::debug!(%peer, %addr, "found a peer by mDNS");
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        kad.add_address(&peer, addr.clone());
                    }
                    let (outbound, mut taken) = self.outbound_groups();
                    if outbound < self.config.target_outbound {
                        for (p, addrs) in pick_diverse([(peer, vec![addr])], &mut taken, 1) {
                            self.dial(p, addrs);
                        }
                    }
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message { propagation_source, message_id, message }) => {
                self.on_gossip(propagation_source, message_id, message)
            }
            BehaviourEvent::Sync(ev) => self.on_sync_event(ev),
            BehaviourEvent::Cmpct(ev) => self.on_cmpct_event(ev),
            BehaviourEvent::Services(ev) => self.on_services_event(ev),
            BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. }) => {
                tracing::trace!(%peer, "kademlia routing updated")
            }
            BehaviourEvent::Ping(ev) => match ev.result {
                Ok(rtt) => {
                    if let Some(p) = self.peers.get_mut(&ev.peer) {
                        p.min_ping = Some(p.min_ping.map_or(rtt, |m| m.min(rtt)));
                    }
                }
                Err(e) => tracing::debug!(peer = %ev.peer, %e, "ping failed"),
            },
            _ => {}
        }
    }

    fn on_identify(&mut self, peer: PeerId, info: identify::Info) {
        if info.protocol_version != self.names.prefix {
            let reason = format!("protocol version {:?}, ours is {:?}", info.protocol_version, self.names.prefix);
            self.drop_wrong_chain(peer, &reason);
            return;
        }
        if !info.protocols.contains(&self.names.sync) {
            let reason = format!("does not speak {}", self.names.sync);
            self.drop_wrong_chain(peer, &reason);
            return;
        }
        let addrs: Vec<Multiaddr> = info.listen_addrs.iter().filter_map(super::peers::dialable).collect();
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut().filter(|_| info.protocols.contains(&self.names.kad))
        {
            for a in &addrs {
                kad.add_address(&peer, a.clone());
            }
            // Ask the newcomer for peers at once: a node that only knows a
            // bootnode must not depend on it for long. A new peer changed
            // the network, so later lookups start quick again; identify
            // repeats every few minutes per connection, which is no news.
            let first = self.peers.get_mut(&peer).is_some_and(|p| !std::mem::replace(&mut p.identified, true));
            if first {
                self.kad_retry = KAD_RETRY_FIRST;
            }
            self.discover();
        }
        // Unverified until we connect to them ourselves: the new table,
        // charged to the group of the connection that told us.
        let source = self.peers.get(&peer).and_then(|p| p.group);
        self.store.add_addrs(peer, &addrs, source);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.listen_addrs = addrs;
        }
    }
}
