//! Several real swarms on 127.0.0.1 in one runtime, each over a mock chain:
//! connection through a bootnode, gossip, headers-first sync from several
//! peers, orphan ancestry fetch, bans (automatic and manual, both
//! directions), the peer store across restarts, chain separation and the
//! UTXO commitment check; and hostile peers of issue 13 (a claimed chain
//! that is never served, stalling block and header sources, duplicate and
//! side-branch block requests, request and transaction floods, oversized
//! gossip) played by a bare libp2p peer (`hostile`). Every wait is a
//! condition with a deadline.

use super::mock::MockChain;
use super::{start, P2pConfig, P2pError, P2pHandle};
use crate::chain_api::{ChainEvent, NetworkChain};
use crate::testkit::ChainBuilder;
use lode_core::block::Block;
use lode_core::crypto::{SecretKey, Signature};
use lode_core::tx::{OutPoint, TxIn, Unlock};
use lode_core::validation::check_header;
use lode_core::{ChainSpec, Hash256, Transaction};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

const DEADLINE: Duration = Duration::from_secs(30);

struct Node {
    handle: P2pHandle,
    chain: Arc<MockChain>,
    dir: TempDir,
}

impl Node {
    async fn addr(&self) -> String {
        let addrs = self.handle.listen_addresses().await;
        addrs.into_iter().find(|a| a.contains("127.0.0.1")).expect("a loopback listen address")
    }

    async fn peer_ids(&self) -> Vec<String> {
        self.handle.peers().await.into_iter().map(|p| p.peer_id).collect()
    }
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn config(dir: &std::path::Path, bootnodes: &[String]) -> P2pConfig {
    P2pConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootnodes: bootnodes.iter().map(|b| b.parse().unwrap()).collect(),
        mdns: false,
        data_dir: dir.to_path_buf(),
        status_interval: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        dial_interval: Duration::from_secs(1),
        ..P2pConfig::default()
    }
}

async fn node_with(chain: Arc<MockChain>, tweak: impl FnOnce(&mut P2pConfig), bootnodes: &[String]) -> Node {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), bootnodes);
    tweak(&mut cfg);
    let handle = start(cfg, chain.clone()).await.expect("p2p starts");
    Node { handle, chain, dir }
}

async fn node(chain: Arc<MockChain>, bootnodes: &[String]) -> Node {
    node_with(chain, |_| {}, bootnodes).await
}

fn regtest() -> Arc<MockChain> {
    MockChain::new(ChainSpec::regtest())
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

/// Asserts `cond` holds throughout `period` (for "never happens" checks).
async fn holds_for<F, Fut>(what: &str, period: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + period;
    while tokio::time::Instant::now() < end {
        assert!(cond().await, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn connected(a: &Node, b: &Node) -> bool {
    a.peer_ids().await.contains(&b.handle.local_peer_id())
}

fn submit_all(chain: &MockChain, blocks: &[Block]) {
    for b in blocks {
        assert!(matches!(
            chain.submit_block(b.clone(), crate::chain_api::BlockSource::Requested),
            crate::chain_api::BlockOutcome::Accepted { .. }
        ));
    }
}

/// A block with valid proof of work and a wrong merkle root.
fn forged_block(builder: &ChainBuilder, salt: u64) -> Block {
    let mut b = builder.clone();
    let mut block = b.next_block(0);
    block.header.merkle_root = Hash256([salt as u8; 32]);
    block.header.time += salt;
    while check_header(&block.header, &ChainSpec::regtest()).is_err() {
        block.header.nonce += 1;
    }
    block
}

fn some_tx(n: u8) -> Transaction {
    Transaction {
        version: 1,
        inputs: vec![TxIn {
            prevout: OutPoint { txid: Hash256([n; 32]), vout: 0 },
            unlock: Unlock::Signature { pubkey: SecretKey::generate().public_key(), sig: Signature::default() },
        }],
        outputs: vec![],
        lock_time: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_meet_through_a_bootnode_and_gossip_blocks_and_transactions() {
    // Status is exchanged on connect only (the chains are empty then): every
    // block and transaction below can arrive by gossip alone.
    let slow = |cfg: &mut P2pConfig| cfg.status_interval = Duration::from_secs(600);
    let a = node_with(regtest(), slow, &[]).await;
    let boot = a.addr().await;
    let b = node_with(regtest(), slow, std::slice::from_ref(&boot)).await;
    let c = node_with(regtest(), slow, &[boot]).await;
    wait_for("both nodes connected to the bootnode", || async {
        (connected(&a, &b).await && connected(&a, &c).await).then_some(())
    })
    .await;
    assert_eq!(a.handle.connection_counts().0, 2, "two inbound peers at the bootnode");
    let info = b.handle.peers().await;
    let to_a = info.iter().find(|p| p.peer_id == a.handle.local_peer_id()).expect("b lists a");
    assert_eq!(to_a.direction, "outbound");
    assert!(to_a.address.starts_with("/ip4/127.0.0.1/tcp/"));
    // b and c only knew the bootnode: the DHT introduces them.
    wait_for("b and c meet through kademlia", || async { connected(&b, &c).await.then_some(()) }).await;

    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(3, 0);
    // Gossip can only reach peers whose subscriptions we have seen: mine
    // until the first block lands, then every later one must arrive.
    submit_all(&a.chain, &blocks[..1]);
    wait_for("block 1 everywhere", || async { (b.chain.height() == 1 && c.chain.height() == 1).then_some(()) }).await;
    submit_all(&b.chain, &blocks[1..]);
    wait_for("blocks from b everywhere", || async { (a.chain.height() == 3 && c.chain.height() == 3).then_some(()) })
        .await;

    let tx = some_tx(1);
    assert_eq!(c.chain.submit_tx(tx.clone()), crate::chain_api::TxOutcome::Accepted);
    wait_for("transaction everywhere", || async {
        (a.chain.has_tx(&tx.txid()) && b.chain.has_tx(&tx.txid())).then_some(())
    })
    .await;
    assert!(!a.handle.initial_sync());
    for n in [&a, &b, &c] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_node_syncs_headers_first_from_two_peers() {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(2100, 0);
    let a = node(regtest(), &[]).await;
    let c = node(regtest(), &[]).await;
    submit_all(&a.chain, &blocks);
    submit_all(&c.chain, &blocks);
    let boots = vec![a.addr().await, c.addr().await];
    let b = node_with(regtest(), |cfg| cfg.blocks_per_request = 4, &boots).await;
    wait_for("2100 blocks synced (two rounds of headers)", || async { (b.chain.height() == 2100).then_some(()) }).await;
    assert_eq!(b.chain.tip().hash, builder.tip());
    let (from_a, from_c) = (a.chain.served.load(Ordering::Relaxed), c.chain.served.load(Ordering::Relaxed));
    assert!(from_a > 0 && from_c > 0, "bodies came from both peers ({from_a} and {from_c})");
    wait_for("initial sync over", || async { (!b.handle.initial_sync()).then_some(()) }).await;
    for n in [&a, &b, &c] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_is_reported_while_far_behind() {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(300, 0);
    let a = node(regtest(), &[]).await;
    submit_all(&a.chain, &blocks);
    let slow = regtest();
    // About a second and a half of validation: long enough to observe.
    slow.submit_delay_ms.store(5, Ordering::Relaxed);
    let b = node(slow, &[a.addr().await]).await;
    wait_for("initial sync reported", || async { b.handle.initial_sync().then_some(()) }).await;
    assert!(b.chain.height() < 300);
    wait_for("synced", || async { (b.chain.height() == 300).then_some(()) }).await;
    wait_for("initial sync over", || async { (!b.handle.initial_sync()).then_some(()) }).await;
    assert!(!a.handle.initial_sync(), "the node ahead never was behind");
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_block_makes_the_node_fetch_its_ancestors() {
    // Slow status exchange: only the orphan can tell b that a moved on.
    let slow = |cfg: &mut P2pConfig| cfg.status_interval = Duration::from_secs(600);
    let a = node_with(regtest(), slow, &[]).await;
    let b = node_with(regtest(), slow, &[a.addr().await]).await;
    wait_for("connected", || async { connected(&b, &a).await.then_some(()) }).await;
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(6, 0);
    a.chain.quiet.store(true, Ordering::Relaxed);
    submit_all(&a.chain, &blocks[..5]);
    a.chain.quiet.store(false, Ordering::Relaxed);
    submit_all(&a.chain, &blocks[5..]);
    // The announcement may precede b's view of a's subscription: repeat it.
    wait_for("b to reach a's tip", || async {
        if b.chain.height() == 6 {
            return Some(());
        }
        a.chain.announce(ChainEvent::Block(Arc::new(blocks[5].clone())));
        tokio::time::sleep(Duration::from_millis(200)).await;
        None
    })
    .await;
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_relaying_an_invalid_block_is_banned_and_stays_out() {
    let a = node(regtest(), &[]).await;
    let a_addr = a.addr().await;
    let evil = node(regtest(), std::slice::from_ref(&a_addr)).await;
    let evil_id = evil.handle.local_peer_id();
    wait_for("connected", || async { connected(&a, &evil).await.then_some(()) }).await;
    let builder = ChainBuilder::new(ChainSpec::regtest());
    let mut salt = 1;
    wait_for("the evil peer banned", || {
        salt += 1;
        evil.chain.announce(ChainEvent::Block(Arc::new(forged_block(&builder, salt))));
        let a = &a;
        let evil_id = evil_id.clone();
        async move { a.handle.banned().await.iter().any(|b| b.peer_id == evil_id).then_some(()) }
    })
    .await;
    assert_eq!(a.chain.height(), 0);
    wait_for("disconnected", || async { (!connected(&a, &evil).await).then_some(()) }).await;
    // Refused both ways.
    let _ = evil.handle.add_peer(&a_addr).await;
    holds_for("the banned peer cannot reconnect", Duration::from_secs(2), || async { !connected(&a, &evil).await })
        .await;
    let evil_addr = evil.addr().await;
    assert!(matches!(a.handle.add_peer(&evil_addr).await, Err(P2pError::Banned(_))));
    for n in [&a, &evil] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_blocks_without_proof_of_work_never_reach_the_chain() {
    let a = node(regtest(), &[]).await;
    let evil = node(regtest(), &[a.addr().await]).await;
    let evil_id = evil.handle.local_peer_id();
    wait_for("connected", || async { connected(&a, &evil).await.then_some(()) }).await;
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let honest = builder.next_block(0);
    let mut salt = 0u64;
    wait_for("the evil peer banned", || {
        salt += 1;
        // Everything right but the proof of work.
        let mut b = honest.clone();
        b.header.time += salt;
        while check_header(&b.header, &ChainSpec::regtest()).is_ok() {
            b.header.nonce += 1;
        }
        evil.chain.announce(ChainEvent::Block(Arc::new(b)));
        let (a, evil_id) = (&a, evil_id.clone());
        async move { a.handle.banned().await.iter().any(|x| x.peer_id == evil_id).then_some(()) }
    })
    .await;
    // Checked on arrival: not one reached the validation queue.
    assert_eq!(a.chain.submitted.load(Ordering::Relaxed), 0);
    for n in [&a, &evil] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_gossip_gets_the_sender_banned() {
    let a = node(regtest(), &[]).await;
    let evil = node(regtest(), &[a.addr().await]).await;
    let evil_id = evil.handle.local_peer_id();
    wait_for("connected", || async { connected(&a, &evil).await.then_some(()) }).await;
    let mut n = 0u8;
    wait_for("the evil peer banned", || {
        n = n.wrapping_add(1);
        let (a, evil, evil_id) = (&a, &evil, evil_id.clone());
        async move {
            evil.handle.publish_raw(true, vec![0xde, 0xad, n]).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            a.handle.banned().await.iter().any(|b| b.peer_id == evil_id).then_some(())
        }
    })
    .await;
    for n in [&a, &evil] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_ban_splits_and_unban_heals() {
    let a = node(regtest(), &[]).await;
    let a_addr = a.addr().await;
    let b = node(regtest(), std::slice::from_ref(&a_addr)).await;
    let b_id = b.handle.local_peer_id();
    wait_for("connected", || async { connected(&a, &b).await.then_some(()) }).await;

    a.handle.ban(&b_id, 3600).await.unwrap();
    let banned = a.handle.banned().await;
    assert_eq!(banned.len(), 1);
    assert_eq!(banned[0].peer_id, b_id);
    assert!(banned[0].until > super::peers::unix_now() + 3000);
    wait_for("split", || async { (!connected(&a, &b).await && !connected(&b, &a).await).then_some(()) }).await;
    // b keeps redialing a (its bootnode): a refuses every time.
    holds_for("no reconnection while banned", Duration::from_secs(3), || async { !connected(&a, &b).await }).await;

    a.handle.unban(&b_id).await.unwrap();
    assert!(a.handle.banned().await.is_empty());
    assert!(matches!(a.handle.unban(&b_id).await, Err(P2pError::NotBanned(_))));
    wait_for("healed", || async { connected(&a, &b).await.then_some(()) }).await;

    a.handle.disconnect(&b_id).await.unwrap();
    assert!(matches!(a.handle.ban("not a peer id", 5).await, Err(P2pError::InvalidPeerId(_))));
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_finds_its_peers_without_bootnodes() {
    let a = node(regtest(), &[]).await;
    let b = node(regtest(), &[a.addr().await]).await;
    wait_for("connected", || async { connected(&b, &a).await.then_some(()) }).await;
    let b_id = b.handle.local_peer_id();
    b.handle.shutdown().await;
    assert!(b.handle.peers().await.is_empty(), "a stopped service answers with nothing");
    assert!(matches!(b.handle.add_peer("/ip4/127.0.0.1/tcp/1").await, Err(P2pError::Stopped)));
    wait_for("a notices", || async { (!connected(&a, &b).await).then_some(()) }).await;

    // Same data directory, no bootnode: the peer store knows a.
    let handle = start(config(b.dir.path(), &[]), b.chain.clone()).await.unwrap();
    assert_eq!(handle.local_peer_id(), b_id, "the identity key persists");
    let b2 = Node { handle, chain: b.chain.clone(), dir: b.dir };
    wait_for("reconnected from the peer store", || async { connected(&b2, &a).await.then_some(()) }).await;
    for n in [&a, &b2] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_chain_is_disconnected() {
    let a = node(regtest(), &[]).await;
    let other = node(MockChain::new(ChainSpec::devnet()), &[]).await;
    // The connection itself succeeds; identify then shows the other chain.
    other.handle.add_peer(&a.addr().await).await.unwrap();
    wait_for("dropped on both sides", || async {
        (other.handle.peers().await.is_empty() && a.handle.peers().await.is_empty()).then_some(())
    })
    .await;
    holds_for("not redialed", Duration::from_secs(2), || async { !connected(&other, &a).await }).await;
    for n in [&a, &other] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_utxo_commitment_at_the_same_tip_is_flagged() {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(5, 0);
    let a = node(regtest(), &[]).await;
    let b = node(regtest(), &[]).await;
    submit_all(&a.chain, &blocks);
    submit_all(&b.chain, &blocks);
    b.chain.corrupt_commitment.store(true, Ordering::Relaxed);
    b.handle.add_peer(&a.addr().await).await.unwrap();
    wait_for("mismatch flagged", || async {
        let peers = a.handle.peers().await;
        (a.handle.commitment_mismatches() >= 1 && peers.iter().any(|p| p.commitment_mismatch && p.height == 5))
            .then_some(())
    })
    .await;
    // Counted once per peer and tip, not once per status exchange.
    holds_for("one count", Duration::from_millis(2500), || async { a.handle.commitment_mismatches() == 1 }).await;
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

use super::raw_peer as raw;

async fn banned(n: &Node, peer: &libp2p::PeerId) -> bool {
    n.handle.banned().await.iter().any(|b| b.peer_id == peer.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_get_the_sender_banned() {
    let a = node(regtest(), &[]).await;
    let addr = a.addr().await;
    let proto = super::behaviour::Names::new(&ChainSpec::regtest()).unwrap().sync;
    // A frame whose body has an unknown message tag.
    let garbage = raw::send(&addr, proto.clone(), vec![4, 0, 0, 0, 9, 9, 9, 9], 1, 1).await;
    // A length prefix far above the request limit.
    let oversized = raw::send(&addr, proto, u32::MAX.to_le_bytes().to_vec(), 1, 1).await;
    wait_for("both banned", || async { (banned(&a, &garbage).await && banned(&a, &oversized).await).then_some(()) })
        .await;
    a.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_flooding_gets_the_sender_banned() {
    let a = node_with(regtest(), |cfg| cfg.request_rate = 50, &[]).await;
    let addr = a.addr().await;
    let names = super::behaviour::Names::new(&ChainSpec::regtest()).unwrap();
    let status = super::codec::Request::GetHeaders { locator: vec![ChainSpec::regtest().genesis_hash()] }.encode();
    let mut frame = (status.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&status);
    let flooder = raw::send(&addr, names.sync, frame, 2000, 16).await;
    wait_for("flooder banned", || async { banned(&a, &flooder).await.then_some(()) }).await;
    a.handle.shutdown().await;
}

/// A hostile peer built from bare libp2p parts: gossipsub with no size
/// limits of ours, and our sync protocol answered as a test scripts it.
mod hostile {
    use super::super::codec::{Request, Response, Status, SyncCodec};
    use futures::StreamExt;
    use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
    use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
    use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
    use libp2p::{noise, tcp, yamux, Multiaddr, PeerId};
    use lode_core::block::BlockHeader;
    use lode_core::ChainSpec;
    use std::time::Duration;
    use tokio::sync::mpsc;

    #[derive(NetworkBehaviour)]
    struct Evil {
        gossipsub: gossipsub::Behaviour,
        sync: request_response::Behaviour<SyncCodec>,
    }

    /// How the hostile peer answers header and block requests.
    #[derive(Clone)]
    pub enum Serve {
        /// An empty list.
        Nothing,
        /// These headers, whatever was asked.
        Headers(Vec<BlockHeader>),
        /// Never: the request is held until it times out.
        Hold,
    }

    enum Cmd {
        Request(Request),
        Publish { blocks: bool, data: Vec<u8> },
    }

    /// A connected hostile peer.
    pub struct RawPeer {
        pub id: PeerId,
        cmds: mpsc::UnboundedSender<Cmd>,
        replies: mpsc::UnboundedReceiver<Result<Response, String>>,
    }

    impl RawPeer {
        /// Dials `target`, answering status requests with `status`,
        /// header requests per `headers` and block requests per `blocks`.
        pub async fn connect(target: &str, status: Status, headers: Serve, blocks: Serve) -> RawPeer {
            let spec = ChainSpec::regtest();
            let names = super::super::behaviour::Names::new(&spec).unwrap();
            let config = gossipsub::ConfigBuilder::default()
                .validation_mode(ValidationMode::Anonymous)
                // Content ids, as nodes use: anonymous messages otherwise
                // all share one id and only the first is ever sent.
                .message_id_fn(|m: &gossipsub::Message| {
                    gossipsub::MessageId::from(super::super::workers::gossip_id(&m.data).to_vec())
                })
                .max_transmit_size(8 << 20)
                .heartbeat_initial_delay(Duration::from_millis(100))
                .heartbeat_interval(Duration::from_millis(200))
                .build()
                .unwrap();
            let budget = super::super::behaviour::block_reply_budget(&spec);
            let mut swarm = libp2p::SwarmBuilder::with_new_identity()
                .with_tokio()
                .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
                .unwrap()
                .with_behaviour(|_| Evil {
                    gossipsub: gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config).unwrap(),
                    sync: request_response::Behaviour::with_codec(
                        SyncCodec::new(spec.max_block_size, budget),
                        [(names.sync.clone(), ProtocolSupport::Full)],
                        request_response::Config::default()
                            .with_request_timeout(Duration::from_secs(20))
                            .with_max_concurrent_streams(256),
                    ),
                })
                .unwrap()
                .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
                .build();
            for t in [&names.blocks, &names.txs] {
                swarm.behaviour_mut().gossipsub.subscribe(t).unwrap();
            }
            let id = *swarm.local_peer_id();
            let addr: Multiaddr = target.parse().unwrap();
            let peer = super::super::service::peer_of(&addr).unwrap();
            swarm.dial(addr).unwrap();
            let (cmds, mut cmd_rx) = mpsc::unbounded_channel();
            let (reply_tx, replies) = mpsc::unbounded_channel();
            let (blocks_topic, txs_topic): (IdentTopic, IdentTopic) = (names.blocks.clone(), names.txs.clone());
            tokio::spawn(async move {
                let mut held: Vec<ResponseChannel<Response>> = Vec::new();
                let answer = |serve: &Serve, headers: bool| match serve {
                    Serve::Hold => None,
                    Serve::Nothing if headers => Some(Response::Headers(Vec::new())),
                    Serve::Nothing => Some(Response::Blocks(Vec::new())),
                    Serve::Headers(h) => Some(Response::Headers(h.clone())),
                };
                loop {
                    tokio::select! {
                        cmd = cmd_rx.recv() => match cmd {
                            Some(Cmd::Request(r)) => {
                                swarm.behaviour_mut().sync.send_request(&peer, r);
                            }
                            Some(Cmd::Publish { blocks, data }) => {
                                let topic = if blocks { blocks_topic.clone() } else { txs_topic.clone() };
                                let _ = swarm.behaviour_mut().gossipsub.publish(topic, data);
                            }
                            None => return,
                        },
                        ev = swarm.select_next_some() => match ev {
                            SwarmEvent::Behaviour(EvilEvent::Sync(request_response::Event::Message { message, .. })) => match message {
                                request_response::Message::Request { request, channel, .. } => {
                                    let reply = match request {
                                        Request::Status(_) => Some(Response::Status(status.clone())),
                                        Request::GetHeaders { .. } => answer(&headers, true),
                                        Request::GetBlocks { .. } => answer(&blocks, false),
                                        Request::Malformed(_) => None,
                                    };
                                    match reply {
                                        Some(r) => {
                                            let _ = swarm.behaviour_mut().sync.send_response(channel, r);
                                        }
                                        None => held.push(channel),
                                    }
                                }
                                request_response::Message::Response { response, .. } => {
                                    let _ = reply_tx.send(Ok(response));
                                }
                            },
                            SwarmEvent::Behaviour(EvilEvent::Sync(request_response::Event::OutboundFailure { error, .. })) => {
                                let _ = reply_tx.send(Err(error.to_string()));
                            }
                            _ => {}
                        },
                    }
                }
            });
            RawPeer { id, cmds, replies }
        }

        /// Sends a sync request (the reply comes through [`Self::reply`]).
        pub fn request(&self, r: Request) {
            let _ = self.cmds.send(Cmd::Request(r));
        }

        /// The next reply (or failure), within `secs` seconds.
        pub async fn reply(&mut self, secs: u64) -> Option<Result<Response, String>> {
            tokio::time::timeout(Duration::from_secs(secs), self.replies.recv()).await.ok().flatten()
        }

        /// Publishes raw bytes on the block or transaction topic.
        pub fn publish(&self, blocks: bool, data: Vec<u8>) {
            let _ = self.cmds.send(Cmd::Publish { blocks, data });
        }
    }
}

use super::codec::{Request, Response, Status};
use hostile::{RawPeer, Serve};
use lode_core::pow::Work;
use lode_core::tx::TxOut;
use lode_core::{Amount, Height};

/// The status of a peer on `chain`'s tip.
fn status_of(chain: &MockChain) -> Status {
    let tip = chain.tip();
    Status {
        genesis: ChainSpec::regtest().genesis_hash(),
        best_hash: tip.hash,
        height: tip.height.0,
        chainwork: tip.chainwork,
        utxo_commitment: chain.utxo_commitment(),
    }
}

/// A status claiming a chain far longer and heavier than anyone's.
fn lying_status() -> Status {
    let mut work = [0u8; 32];
    work[8] = 1;
    Status {
        genesis: ChainSpec::regtest().genesis_hash(),
        best_hash: Hash256([0x77; 32]),
        height: 1_000_000,
        chainwork: Work::from_be_bytes(work),
        utxo_commitment: Hash256::ZERO,
    }
}

async fn score_of(n: &Node, peer: &libp2p::PeerId) -> Option<i32> {
    n.handle.peers().await.into_iter().find(|p| p.peer_id == peer.to_string()).map(|p| p.score)
}

/// A well-formed transaction of at least `size` bytes spending outputs
/// nobody has (distinct per `tag`).
fn fat_tx(tag: u32, size: usize) -> Transaction {
    let pubkey = SecretKey::generate().public_key();
    let mut tx = Transaction { version: 1, inputs: Vec::new(), outputs: Vec::new(), lock_time: 0 };
    let mut i = 0u32;
    while tx.encoded_size() < size {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&tag.to_le_bytes());
        id[4..8].copy_from_slice(&i.to_le_bytes());
        tx.inputs.push(TxIn {
            prevout: OutPoint { txid: Hash256(id), vout: 0 },
            unlock: Unlock::Signature { pubkey, sig: Signature::default() },
        });
        i += 1;
    }
    tx
}

/// `n` blocks on `builder`'s tip, each carrying a transaction of `size` bytes.
fn fat_blocks(builder: &mut ChainBuilder, n: usize, size: usize) -> Vec<Block> {
    (0..n)
        .map(|k| {
            let height = Height(builder.height().0 + 1);
            let out = TxOut { value: Amount::from_units(1), address: builder.address() };
            let coinbase = Transaction::coinbase(height, (k as u32).to_le_bytes().to_vec(), vec![out]);
            builder.seal(vec![coinbase, fat_tx(k as u32, size)])
        })
        .collect()
}

/// Issue 13, finding 1: a peer claiming a huge chain and serving one
/// known header must not put the node in initial sync, and the node's
/// own transactions must reach its peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_claiming_a_huge_chain_does_not_silence_the_node() {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(5, 0);
    let a = node(regtest(), &[]).await;
    submit_all(&a.chain, &blocks);
    let b = node(regtest(), &[a.addr().await]).await;
    submit_all(&b.chain, &blocks);
    wait_for("connected", || async { connected(&b, &a).await.then_some(()) }).await;
    let liar =
        RawPeer::connect(&b.addr().await, lying_status(), Serve::Headers(vec![blocks[0].header]), Serve::Hold).await;
    wait_for("the liar connected", || async { score_of(&b, &liar.id).await.map(|_| ()) }).await;
    holds_for("not in initial sync", Duration::from_secs(3), || async { !b.handle.initial_sync() }).await;
    let mut n = 10u8;
    wait_for("b's own transaction reaches a", || {
        n = n.wrapping_add(1);
        let tx = some_tx(n);
        assert_eq!(b.chain.submit_tx(tx.clone()), crate::chain_api::TxOutcome::Accepted);
        let a = &a;
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            a.chain.has_tx(&tx.txid()).then_some(())
        }
    })
    .await;
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

/// Issue 13, finding 1: in a genuine initial sync (headers far ahead, old
/// tip) the node still announces what it mined and its own transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_blocks_and_transactions_are_announced_during_initial_sync() {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let headers: Vec<_> = builder.blocks(100, 0).iter().map(|b| b.header).collect();
    let b_chain = regtest();
    assert!(matches!(b_chain.accept_headers(&headers), crate::chain_api::HeadersOutcome::Accepted { new: 100 }));
    let a = node(regtest(), &[]).await;
    let b = node(b_chain, &[a.addr().await]).await;
    wait_for("connected", || async { connected(&b, &a).await.then_some(()) }).await;
    wait_for("b in initial sync", || async { b.handle.initial_sync().then_some(()) }).await;
    let mut n = 40u8;
    wait_for("b's own transaction reaches a", || {
        n = n.wrapping_add(1);
        let tx = some_tx(n);
        assert_eq!(b.chain.submit_tx(tx.clone()), crate::chain_api::TxOutcome::Accepted);
        let a = &a;
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            a.chain.has_tx(&tx.txid()).then_some(())
        }
    })
    .await;
    // A block "mined" by b on another branch than the headers it holds.
    let mine = ChainBuilder::new(ChainSpec::regtest()).next_block(0);
    submit_all(&b.chain, std::slice::from_ref(&mine));
    wait_for("b's own block reaches a", || async { (a.chain.tip().hash == mine.hash()).then_some(()) }).await;
    assert!(b.handle.initial_sync(), "b was in initial sync throughout");
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

/// Issue 13, finding 2: header sync leaves a peer that claims the most
/// work but never answers, instead of asking it again and again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_sync_moves_on_from_a_peer_that_claims_work_and_serves_nothing() {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(300, 0);
    let a = node(regtest(), &[]).await;
    submit_all(&a.chain, &blocks);
    let b = node_with(regtest(), |cfg| cfg.request_timeout = Duration::from_secs(20), &[]).await;
    let liar = RawPeer::connect(&b.addr().await, lying_status(), Serve::Hold, Serve::Hold).await;
    wait_for("the liar connected", || async { score_of(&b, &liar.id).await.map(|_| ()) }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.handle.add_peer(&a.addr().await).await.unwrap();
    wait_for("300 blocks synced despite the liar", || async { (b.chain.height() == 300).then_some(()) }).await;
    assert!(!banned(&b, &liar.id).await, "silence alone is not banned");
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

/// Issue 13, finding 2: a peer that takes block requests and never answers
/// stalls the download for seconds (the stall timeout), not the 20 s
/// request timeout; it is not penalised for being slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_block_source_is_worked_around_quickly() {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(200, 0);
    let a = node(regtest(), &[]).await;
    submit_all(&a.chain, &blocks);
    let b = node_with(
        regtest(),
        |cfg| {
            cfg.request_timeout = Duration::from_secs(20);
            cfg.blocks_per_request = 4;
        },
        &[],
    )
    .await;
    let staller = RawPeer::connect(&b.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Hold).await;
    wait_for("the staller connected", || async { score_of(&b, &staller.id).await.map(|_| ()) }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = tokio::time::Instant::now();
    b.handle.add_peer(&a.addr().await).await.unwrap();
    wait_for("200 blocks synced", || async { (b.chain.height() == 200).then_some(()) }).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(12), "sync waited on the staller: {took:?}");
    assert_eq!(score_of(&b, &staller.id).await, Some(0), "slowness costs no score");
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

/// Issue 13, finding 4: `GetBlocks` serves each block once (and charges a
/// little for duplicates), nothing off the active chain that we did not
/// announce, at most the reply budget, and reads the batch under one lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_blocks_is_deduplicated_capped_and_active_chain_only() {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let mut side = builder.fork(9);
    let mut blocks = builder.blocks(2, 0);
    blocks.extend(fat_blocks(&mut builder, 100, 60_000));
    let a = node(regtest(), &[]).await;
    submit_all(&a.chain, &blocks);
    let side_block = side.next_block(0);
    a.chain.quiet.store(true, Ordering::Relaxed);
    submit_all(&a.chain, std::slice::from_ref(&side_block));
    a.chain.quiet.store(false, Ordering::Relaxed);
    let mut raw = RawPeer::connect(&a.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Nothing).await;
    wait_for("connected", || async { score_of(&a, &raw.id).await.map(|_| ()) }).await;
    let reads = a.chain.block_reads.load(Ordering::Relaxed);
    // Every property is checked and the failures reported together.
    let mut failures = Vec::new();

    raw.request(Request::GetBlocks { hashes: vec![blocks[0].hash(); 128] });
    match raw.reply(10).await {
        Some(Ok(Response::Blocks(b))) if b.len() == 1 => {}
        other => failures.push(format!("a block asked for 128 times: {} blocks", count(&other))),
    }
    let score = score_of(&a, &raw.id).await;
    if score != Some(-super::peers::penalty::FLOOD) {
        failures.push(format!("duplicates should cost a little: score {score:?}"));
    }

    raw.request(Request::GetBlocks { hashes: vec![side_block.hash()] });
    match raw.reply(10).await {
        Some(Ok(Response::Blocks(b))) if b.is_empty() => {}
        other => failures.push(format!("a side branch never announced was served: {} blocks", count(&other))),
    }

    let fat: Vec<Hash256> = blocks[2..].iter().map(Block::hash).collect();
    raw.request(Request::GetBlocks { hashes: fat.clone() });
    match raw.reply(20).await {
        Some(Ok(Response::Blocks(b))) => {
            let bytes: usize = b.iter().map(Block::encoded_size).sum();
            let got: Vec<Hash256> = b.iter().map(Block::hash).collect();
            if b.is_empty() || bytes > super::codec::BLOCK_REPLY_BUDGET || got != fat[..b.len()] {
                failures.push(format!("{} of {} blocks, {bytes} bytes, in one reply", b.len(), fat.len()));
            }
        }
        other => failures.push(format!("unexpected reply {other:?}")),
    }
    let per_block = a.chain.block_reads.load(Ordering::Relaxed) - reads;
    if per_block != 0 {
        failures.push(format!("{per_block} reads under the chain lock one block at a time"));
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(!banned(&a, &raw.id).await);
    a.handle.shutdown().await;
}

fn count(reply: &Option<Result<Response, String>>) -> String {
    match reply {
        Some(Ok(Response::Blocks(b))) => b.len().to_string(),
        other => format!("{other:?}"),
    }
}

/// Issue 13, finding 3: one peer cannot keep more than a few requests in
/// progress (each holding a reply in memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_progress_per_peer_are_bounded() {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(3, 0);
    let a = node(regtest(), &[]).await;
    submit_all(&a.chain, &blocks);
    a.chain.serve_delay_ms.store(500, Ordering::Relaxed);
    let mut raw = RawPeer::connect(&a.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Nothing).await;
    wait_for("connected", || async { score_of(&a, &raw.id).await.map(|_| ()) }).await;
    for _ in 0..20 {
        raw.request(Request::GetBlocks { hashes: vec![blocks[0].hash()] });
    }
    let (mut served, mut refused) = (0, 0);
    for _ in 0..20 {
        match raw.reply(15).await {
            Some(Ok(_)) => served += 1,
            Some(Err(_)) => refused += 1,
            None => break,
        }
    }
    assert!(served <= super::service::MAX_SERVING_PER_PEER, "{served} served at once, {refused} refused");
    assert!(refused >= 20 - super::service::MAX_SERVING_PER_PEER, "{served} served, {refused} refused");
    a.handle.shutdown().await;
}

/// Issue 13, finding 3: a flood of large transactions from one peer is
/// bounded in bytes, not only in count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_flood_is_bounded_in_bytes() {
    let a = node(regtest(), &[]).await;
    a.chain.tx_delay_ms.store(100, Ordering::Relaxed);
    let raw = RawPeer::connect(&a.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Nothing).await;
    wait_for("connected", || async { score_of(&a, &raw.id).await.map(|_| ()) }).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = 80;
    for k in 0..sent {
        raw.publish(false, lode_core::codec::Encode::encode(&fat_tx(1000 + k, 90_000)));
    }
    // Time to drain whatever was queued (100 ms each).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let taken = a.chain.tx_submits.load(Ordering::Relaxed);
    let share = super::service::MAX_TX_BACKLOG_PEER_BYTES / 90_000;
    assert!(taken > 0, "some transactions were taken");
    assert!(taken <= 2 * share, "{taken} of {sent} 90 kB transactions queued; one peer's share is {share}");
    a.handle.shutdown().await;
}

/// Publishes `payload` (made distinct each time: gossip is content
/// addressed) from a fresh hostile peer until the node bans it.
async fn publish_until_banned(a: &Node, what: &str, blocks: bool, payload: Vec<u8>) {
    let raw = RawPeer::connect(&a.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Nothing).await;
    wait_for("connected", || async { score_of(a, &raw.id).await.map(|_| ()) }).await;
    let mut salt = 0u8;
    wait_for(what, || {
        salt = salt.wrapping_add(1);
        let mut data = payload.clone();
        // (The last byte of a transaction is in its lock time, so a
        // well-formed one stays well-formed.)
        if let Some(last) = data.last_mut() {
            *last = salt;
        }
        raw.publish(blocks, data);
        let id = raw.id;
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            banned(a, &id).await.then_some(())
        }
    })
    .await;
}

/// Issue 13, finding 10: gossip that gossipsub refuses for its size
/// before the node sees it costs its sender like undecodable gossip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_gossip_gets_the_sender_banned() {
    let a = node(regtest(), &[]).await;
    let max_block = ChainSpec::regtest().max_block_size;
    let what = "ban for a block message 100 kB above the block size";
    publish_until_banned(&a, what, true, vec![0xab; max_block + 100_000]).await;
    let what = "ban for a transaction message above the topic limit";
    publish_until_banned(&a, what, false, vec![0xcd; super::codec::gossip_limits(max_block).tx + 50_000]).await;
    a.handle.shutdown().await;
}

/// Issue 13, finding 3: gossiped transactions are decoded with the relay
/// policy's size limit, not the block size; a larger one is malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossiped_transaction_above_the_relay_policy_is_malformed() {
    let a = node(regtest(), &[]).await;
    let tx = lode_core::codec::Encode::encode(&fat_tx(7, super::codec::max_tx_size() + 1));
    let max_block = ChainSpec::regtest().max_block_size;
    assert!(tx.len() < super::codec::gossip_limits(max_block).tx, "inside gossipsub's limit");
    publish_until_banned(&a, "ban for a well-formed transaction above the relay policy", false, tx).await;
    a.handle.shutdown().await;
}
