//! Bans by address, per-address limits, inbound eviction, the tried and
//! new tables, and background saving of the peer store. Real swarms on
//! loopback: the node listens on 127.0.0.1 (exempt from the address
//! rules, as a local testnet needs) and test clients leave from 127.0.0.2,
//! 127.0.0.3, … (treated like any other host), each with a fresh key.

use super::behaviour::{block_reply_budget, Names};
use super::codec::{Request, Response, SyncCodec};
use super::mock::MockChain;
use super::peers::{unix_now, PeerStore, MAX_BANS, MAX_NEW_PER_SOURCE};
use super::{start, P2pConfig, P2pHandle};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use libp2p::core::transport::{DialOpts as TransportDialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::core::upgrade::Version;
use libp2p::core::Transport;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, yamux, Multiaddr, PeerId};
use lode_core::ChainSpec;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(30);

/// A TCP transport whose dials leave from a chosen local address (libp2p's
/// own binds only the port it listens on, never the address).
struct BoundTcp(IpAddr);

impl Transport for BoundTcp {
    type Output = libp2p::tcp::tokio::TcpStream;
    type Error = std::io::Error;
    type ListenerUpgrade = futures::future::Pending<Result<Self::Output, Self::Error>>;
    type Dial = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn listen_on(&mut self, _: ListenerId, addr: Multiaddr) -> Result<(), TransportError<Self::Error>> {
        Err(TransportError::MultiaddrNotSupported(addr))
    }

    fn remove_listener(&mut self, _: ListenerId) -> bool {
        false
    }

    fn dial(&mut self, addr: Multiaddr, _: TransportDialOpts) -> Result<Self::Dial, TransportError<Self::Error>> {
        let (mut ip, mut port) = (None, None);
        for p in addr.iter() {
            match p {
                Protocol::Ip4(a) => ip = Some(IpAddr::V4(a)),
                Protocol::Ip6(a) => ip = Some(IpAddr::V6(a)),
                Protocol::Tcp(p) => port = Some(p),
                _ => {}
            }
        }
        let (Some(ip), Some(port)) = (ip, port) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let local = self.0;
        Ok(async move {
            let socket =
                if local.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
            socket.bind(SocketAddr::new(local, 0))?;
            let stream = socket.connect(SocketAddr::new(ip, port)).await?;
            stream.set_nodelay(true)?;
            Ok(libp2p::tcp::tokio::TcpStream(stream))
        }
        .boxed())
    }

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Poll::Pending
    }
}

/// What happened to a client's connection.
#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Connected,
    Gone,
}

/// A minimal Lode peer with a fresh key, dialing from `local`: it speaks
/// the sync protocol and answers a status request with the asker's own
/// status (a peer at the same tip), so the node keeps it.
struct Client {
    id: PeerId,
    events: mpsc::UnboundedReceiver<Ev>,
    send: mpsc::UnboundedSender<Request>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    fn dial(local: &str, target: &str) -> Client {
        let spec = ChainSpec::regtest();
        let names = Names::new(&spec).unwrap();
        let codec = SyncCodec::new(spec.max_block_size, block_reply_budget(&spec));
        let local: IpAddr = local.parse().unwrap();
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_other_transport(|key| {
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    BoundTcp(local)
                        .upgrade(Version::V1)
                        .authenticate(noise::Config::new(key)?)
                        .multiplex(yamux::Config::default()),
                )
            })
            .unwrap()
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    codec,
                    [(names.sync, ProtocolSupport::Full)],
                    request_response::Config::default(),
                )
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        let id = *swarm.local_peer_id();
        let target: Multiaddr = target.parse().unwrap();
        let node = super::service::peer_of(&target).unwrap();
        let (ev_tx, events) = mpsc::unbounded_channel();
        let (send, mut to_send) = mpsc::unbounded_channel::<Request>();
        swarm.dial(target).unwrap();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    ev = swarm.select_next_some() => match ev {
                        SwarmEvent::ConnectionEstablished { .. } => {
                            let _ = ev_tx.send(Ev::Connected);
                        }
                        SwarmEvent::ConnectionClosed { num_established: 0, .. }
                        | SwarmEvent::OutgoingConnectionError { .. } => {
                            let _ = ev_tx.send(Ev::Gone);
                        }
                        SwarmEvent::Behaviour(request_response::Event::Message {
                            message: request_response::Message::Request { request: Request::Status(s), channel, .. },
                            ..
                        }) => {
                            let _ = swarm.behaviour_mut().send_response(channel, Response::Status(s));
                        }
                        _ => {}
                    },
                    Some(req) = to_send.recv() => {
                        swarm.behaviour_mut().send_request(&node, req);
                    }
                }
            }
        });
        Client { id, events, send, task }
    }

    /// The next thing that happened to the connection.
    async fn next(&mut self) -> Ev {
        tokio::time::timeout(DEADLINE, self.events.recv())
            .await
            .expect("a connection outcome in time")
            .expect("the client runs")
    }
}

struct Node {
    handle: P2pHandle,
    chain: Arc<MockChain>,
    dir: TempDir,
}

fn config(dir: &std::path::Path) -> P2pConfig {
    P2pConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        mdns: false,
        data_dir: dir.to_path_buf(),
        status_interval: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        dial_interval: Duration::from_secs(1),
        ..P2pConfig::default()
    }
}

async fn node_with(tweak: impl FnOnce(&mut P2pConfig), bootnodes: &[String]) -> Node {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let chain = MockChain::new(ChainSpec::regtest());
    let mut cfg = config(dir.path());
    cfg.bootnodes = bootnodes.iter().map(|b| b.parse().unwrap()).collect();
    tweak(&mut cfg);
    let handle = start(cfg, chain.clone()).await.expect("p2p starts");
    Node { handle, chain, dir }
}

impl Node {
    async fn addr(&self) -> String {
        let addrs = self.handle.listen_addresses().await;
        addrs.into_iter().find(|a| a.contains("127.0.0.1")).expect("a loopback listen address")
    }

    /// The connected peer's address as `getpeerinfo` shows it.
    async fn address_of(&self, peer: &PeerId) -> Option<String> {
        let id = peer.to_string();
        self.handle.peers().await.into_iter().find(|p| p.peer_id == id).map(|p| p.address)
    }

    async fn has(&self, peer: &PeerId) -> bool {
        self.address_of(peer).await.is_some()
    }
}

/// Polls `cond` until it yields `Some`, failing the test at the deadline.
async fn wait_for<T, F, Fut>(what: &str, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Dials from `local` and waits until the node lists the client.
async fn connect(node: &Node, local: &str) -> Client {
    let mut c = Client::dial(local, &node.addr().await);
    assert_eq!(c.next().await, Ev::Connected, "a client from {local} is let in");
    wait_for("the node lists the client", || async { node.has(&c.id).await.then_some(()) }).await;
    let shown = node.address_of(&c.id).await.unwrap_or_default();
    assert!(shown.starts_with(&format!("/ip4/{local}/tcp/")), "the client leaves from {local}: {shown}");
    c
}

/// Dials from `local` and expects the node to refuse it before the
/// handshake completes (address rules act on the bare TCP connection).
async fn refused(node: &Node, local: &str, why: &str) {
    let mut c = Client::dial(local, &node.addr().await);
    assert_eq!(c.next().await, Ev::Gone, "{why}: a client from {local} is let in");
    assert!(!node.has(&c.id).await, "{why}: the node lists a client from {local}");
}

/// Dials from `local` and expects the node to let the connection complete
/// and then drop it.
async fn turned_away(node: &Node, local: &str, why: &str) {
    let mut c = Client::dial(local, &node.addr().await);
    assert_eq!(c.next().await, Ev::Connected);
    assert_eq!(c.next().await, Ev::Gone, "{why}: a client from {local} stays");
    wait_for("the node forgets the client", || async { (!node.has(&c.id).await).then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_peer_with_a_fresh_key_from_the_same_address_is_refused() {
    let a = node_with(|_| {}, &[]).await;
    let mut x = connect(&a, "127.0.0.2").await;
    let bystander = connect(&a, "127.0.0.3").await;
    a.handle.ban(&x.id.to_string(), 3600).await.unwrap();
    let banned = a.handle.banned().await;
    assert_eq!(banned.len(), 1);
    assert_eq!(banned[0].addresses, vec!["127.0.0.2".to_string()], "the ban covers the address it used");
    assert_eq!(x.next().await, Ev::Gone);

    refused(&a, "127.0.0.2", "a fresh key from a banned address").await;
    assert!(a.has(&bystander.id).await, "another address is not affected");
    let _other = connect(&a, "127.0.0.3").await;

    // Unbanning the peer lifts its address too.
    a.handle.unban(&x.id.to_string()).await.unwrap();
    let _back = connect(&a, "127.0.0.2").await;
    a.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaviour_bans_the_address_and_its_other_identities() {
    let a = node_with(|_| {}, &[]).await;
    let mut twin = connect(&a, "127.0.0.4").await;
    let evil = connect(&a, "127.0.0.4").await;
    // A request the codec cannot decode: banned at once.
    evil.send.send(Request::Malformed("junk".into())).unwrap();
    let id = evil.id.to_string();
    let ban =
        wait_for("the sender banned", || async { a.handle.banned().await.into_iter().find(|b| b.peer_id == id) }).await;
    assert_eq!(ban.addresses, vec!["127.0.0.4".to_string()]);
    // Its other identity on the same address goes with it.
    assert_eq!(twin.next().await, Ev::Gone);
    refused(&a, "127.0.0.4", "a fresh key from a misbehaving address").await;
    a.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usual_loopback_address_is_exempt_from_address_bans() {
    let a = node_with(|_| {}, &[]).await;
    let x = connect(&a, "127.0.0.1").await;
    a.handle.ban(&x.id.to_string(), 3600).await.unwrap();
    let banned = a.handle.banned().await;
    assert!(banned[0].addresses.is_empty(), "127.0.0.1 is not banned: {banned:?}");
    wait_for("the banned id is gone", || async { (!a.has(&x.id).await).then_some(()) }).await;
    let _fresh = connect(&a, "127.0.0.1").await;
    a.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_connections_per_address_are_capped() {
    let a = node_with(|c| c.max_inbound_per_ip = 2, &[]).await;
    let _c1 = connect(&a, "127.0.0.5").await;
    let _c2 = connect(&a, "127.0.0.5").await;
    refused(&a, "127.0.0.5", "a third connection from one address").await;
    let _c3 = connect(&a, "127.0.0.6").await;
    // The exempt address is not capped (a local testnet).
    let mut local = Vec::new();
    for _ in 0..3 {
        local.push(connect(&a, "127.0.0.1").await);
    }
    // A slot freed is a slot again.
    drop(_c1);
    wait_for("the first client gone", || async { (a.handle.peers().await.len() == 5).then_some(()) }).await;
    let _c4 = connect(&a, "127.0.0.5").await;
    a.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_bans_survive_a_restart() {
    let a = node_with(|_| {}, &[]).await;
    let x = connect(&a, "127.0.0.7").await;
    a.handle.ban(&x.id.to_string(), 3600).await.unwrap();
    a.handle.shutdown().await;
    drop(x);
    let handle = start(config(a.dir.path()), a.chain.clone()).await.unwrap();
    let a = Node { handle, chain: a.chain, dir: a.dir };
    let banned = a.handle.banned().await;
    assert_eq!(banned.len(), 1);
    assert_eq!(banned[0].addresses, vec!["127.0.0.7".to_string()]);
    refused(&a, "127.0.0.7", "a fresh key from an address banned before the restart").await;
    a.handle.shutdown().await;
}

/// Bitcoin Core's protections shield 20 inbound peers plus half the rest:
/// 21 is the fewest with one left to evict.
const EVICTABLE_SLOTS: usize = 21;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_evicts_the_youngest_of_the_largest_group_when_inbound_is_full() {
    let a = node_with(
        |c| {
            c.max_inbound = EVICTABLE_SLOTS;
            c.max_inbound_per_ip = 10;
        },
        &[],
    )
    .await;
    let mut clients = Vec::new();
    for i in 0..15 {
        clients.push(connect(&a, &format!("127.0.1.{}", i + 1)).await);
    }
    // Six from one address: the largest group, and the youngest peers.
    for _ in 0..EVICTABLE_SLOTS - 15 {
        clients.push(connect(&a, "127.0.0.20").await);
    }
    assert_eq!(a.handle.connection_counts(), (EVICTABLE_SLOTS, 0));
    let newcomer = connect(&a, "127.0.0.50").await;
    let youngest = clients.last_mut().unwrap();
    assert_eq!(youngest.next().await, Ev::Gone, "the youngest of the crowded address is evicted");
    wait_for("back to the inbound limit", || async {
        (a.handle.connection_counts() == (EVICTABLE_SLOTS, 0)).then_some(())
    })
    .await;
    assert!(a.has(&newcomer.id).await, "the newcomer stays");
    for c in &clients[..clients.len() - 1] {
        assert!(a.has(&c.id).await, "only one peer was evicted");
    }
    a.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_is_refused_when_every_inbound_peer_is_protected() {
    let a = node_with(|c| c.max_inbound = 3, &[]).await;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(connect(&a, &format!("127.0.2.{}", i + 1)).await);
    }
    turned_away(&a, "127.0.2.9", "a newcomer to full slots of protected peers").await;
    for c in &clients {
        assert!(a.has(&c.id).await);
    }
    a.handle.shutdown().await;
}

/// Reads the saved store: (peer id, tried) for every entry.
fn stored_peers(dir: &std::path::Path) -> Vec<(String, bool)> {
    let text = std::fs::read(dir.join(super::PEER_STORE_FILE)).expect("peers.json");
    let v: serde_json::Value = serde_json::from_slice(&text).expect("json");
    v["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .map(|p| (p["peer_id"].as_str().unwrap().to_string(), p["tried"].as_bool().unwrap_or(false)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_addresses_we_connected_to_are_tried() {
    let a = node_with(|_| {}, &[]).await;
    let b = node_with(|_| {}, &[a.addr().await]).await;
    let (a_id, b_id) = (a.handle.local_peer_id(), b.handle.local_peer_id());
    // a learns b's listen address from identify: announced, not verified.
    wait_for("both see each other", || async {
        let ab = a.handle.peers().await.iter().any(|p| p.peer_id == b_id);
        let ba = b.handle.peers().await.iter().any(|p| p.peer_id == a_id);
        (ab && ba).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.handle.shutdown().await;
    b.handle.shutdown().await;
    assert_eq!(stored_peers(a.dir.path()), vec![(b_id, false)], "an inbound peer's addresses stay new");
    assert_eq!(stored_peers(b.dir.path()), vec![(a_id, true)], "an address we dialed is tried");
}

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

#[test]
fn a_flood_of_announced_addresses_never_displaces_tried_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.json");
    // Ten tried peers, last seen long ago (the first to go from one
    // shared table).
    let tried: Vec<PeerId> = (0..10).map(|_| PeerId::random()).collect();
    let peers: Vec<serde_json::Value> = tried
        .iter()
        .enumerate()
        .map(|(i, p)| serde_json::json!({"peer_id": p.to_string(), "addrs": [format!("/ip4/20.{i}.0.1/tcp/1")], "last_seen": 1000, "tried": true}))
        .collect();
    std::fs::write(&path, serde_json::to_vec(&serde_json::json!({"peers": peers, "bans": []})).unwrap()).unwrap();
    let mut s = PeerStore::load(&path);
    for i in 0..5000u32 {
        let [_, _, b, c] = i.to_be_bytes();
        let source = super::addresses::AddrGroup::of(IpAddr::from([30, b, c, 1]));
        s.add_addrs(PeerId::random(), &[addr(&format!("/ip4/40.{b}.{c}.1/tcp/1"))], Some(source));
    }
    for p in &tried {
        assert!(s.is_tried(p), "a tried peer survived the flood");
    }
    let cands = s.candidates(Instant::now(), |_| false);
    assert!(tried.iter().all(|p| cands.iter().any(|(q, _)| q == p)));
    assert!(cands.len() <= 10 + super::peers::MAX_NEW);
}

#[test]
fn one_source_group_fills_only_part_of_the_new_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = PeerStore::load(&dir.path().join("peers.json"));
    let liar = super::addresses::AddrGroup::of("50.1.2.3".parse().unwrap());
    for i in 0..200u32 {
        let [_, _, b, c] = i.to_be_bytes();
        s.add_addrs(PeerId::random(), &[addr(&format!("/ip4/60.{b}.{c}.1/tcp/1"))], Some(liar));
    }
    let honest = PeerId::random();
    let other = super::addresses::AddrGroup::of("70.1.2.3".parse().unwrap());
    s.add_addrs(honest, &[addr("/ip4/80.1.1.1/tcp/1")], Some(other));
    let cands = s.candidates(Instant::now(), |_| false);
    assert_eq!(cands.len(), MAX_NEW_PER_SOURCE + 1);
    assert!(cands.iter().any(|(p, _)| *p == honest));
}

#[test]
fn bans_are_bounded_dropping_the_one_that_ends_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = PeerStore::load(&dir.path().join("peers.json"));
    let now = unix_now();
    let first = PeerId::random();
    assert!(s.ban(first, now + 10, vec!["10.0.0.1".parse().unwrap()]).is_empty());
    for i in 0..MAX_BANS {
        let dropped = s.ban(PeerId::random(), now + 100 + i as u64, Vec::new());
        if i + 1 < MAX_BANS {
            assert!(dropped.is_empty());
        } else {
            assert_eq!(dropped, vec![first], "the ban ending first makes room");
        }
    }
    assert_eq!(s.bans().len(), MAX_BANS);
    assert!(!s.is_banned(&first));
    assert!(s.banned_ips().is_empty(), "its address went with it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_a_ban_does_not_wait_for_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.json");
    let mut s = PeerStore::load(&path);
    let writer = s.writer_lock();
    let held = writer.lock().unwrap();
    let peer = PeerId::random();
    s.ban(peer, unix_now() + 100, vec!["10.0.0.9".parse().unwrap()]);
    // The disk (the writer) is busy: saving must return at once all the
    // same, without having written. Run on another thread so a save that
    // waits fails the test instead of hanging it.
    let runtime = tokio::runtime::Handle::current();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let saver = std::thread::spawn(move || {
        let _entered = runtime.enter();
        s.save().unwrap();
        let _ = done_tx.send(());
        s
    });
    let returned = done_rx.recv_timeout(Duration::from_secs(5)).is_ok();
    let written_meanwhile = path.exists();
    drop(held);
    let _s = saver.join().unwrap();
    assert!(returned, "save waited for the disk");
    assert!(!written_meanwhile, "written on the calling thread");
    let deadline = Instant::now() + DEADLINE;
    while !path.exists() {
        assert!(Instant::now() < deadline, "the background write never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let loaded = PeerStore::load(&path);
    assert!(loaded.is_banned(&peer));
    assert_eq!(loaded.banned_ips().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_bans_is_written_once_not_once_per_ban() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.json");
    let mut s = PeerStore::load(&path);
    let peers: Vec<PeerId> = (0..200).map(|_| PeerId::random()).collect();
    for p in &peers {
        s.ban(*p, unix_now() + 100, Vec::new());
        s.save().unwrap();
    }
    s.flush().unwrap();
    assert!(s.writes() <= 2, "{} writes for one burst", s.writes());
    let loaded = PeerStore::load(&path);
    assert!(peers.iter().all(|p| loaded.is_banned(p)), "the last write has every ban");
}
