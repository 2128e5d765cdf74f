//! Several real swarms on 127.0.0.1 in one runtime, each over a mock chain:
//! connection through a bootnode, gossip, headers-first sync from several
//! peers, orphan ancestry fetch, bans (automatic and manual, both
//! directions), the peer store across restarts, chain separation and the
//! UTXO commitment check. Every wait is a condition with a deadline.

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
    let a = node(regtest(), &[]).await;
    let boot = a.addr().await;
    let b = node(regtest(), std::slice::from_ref(&boot)).await;
    let c = node(regtest(), &[boot]).await;
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
