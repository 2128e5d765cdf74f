//! Shared test helpers: real nodes over mock chains, waits with deadlines,
//! forged blocks and transactions, and what hostile-peer tests ask of a node.

use super::super::codec::{Response, Status};
use super::super::mock::MockChain;
use super::super::{start, P2pConfig, P2pHandle};
use super::hostile::{RawPeer, Serve};
use crate::chain_api::NetworkChain;
use crate::testkit::ChainBuilder;
use lode_core::block::Block;
use lode_core::crypto::{SecretKey, Signature};
use lode_core::pow::Work;
use lode_core::tx::{OutPoint, TxIn, TxOut, Unlock};
use lode_core::validation::check_header;
use lode_core::{Amount, ChainSpec, Hash256, Height, Transaction};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

pub(super) const DEADLINE: Duration = Duration::from_secs(30);

pub(super) struct Node {
    pub(super) handle: P2pHandle,
    pub(super) chain: Arc<MockChain>,
    pub(super) dir: TempDir,
}

impl Node {
    pub(super) async fn addr(&self) -> String {
        let addrs = self.handle.listen_addresses().await;
        addrs.into_iter().find(|a| a.contains("127.0.0.1")).expect("a loopback listen address")
    }

    pub(super) async fn peer_ids(&self) -> Vec<String> {
        self.handle.peers().await.into_iter().map(|p| p.peer_id).collect()
    }
}

pub(super) fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub(super) fn config(dir: &std::path::Path, bootnodes: &[String]) -> P2pConfig {
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

pub(super) async fn node_with(chain: Arc<MockChain>, tweak: impl FnOnce(&mut P2pConfig), bootnodes: &[String]) -> Node {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), bootnodes);
    tweak(&mut cfg);
    let handle = start(cfg, chain.clone()).await.expect("p2p starts");
    Node { handle, chain, dir }
}

pub(super) async fn node(chain: Arc<MockChain>, bootnodes: &[String]) -> Node {
    node_with(chain, |_| {}, bootnodes).await
}

pub(super) fn regtest() -> Arc<MockChain> {
    MockChain::new(ChainSpec::regtest())
}

/// Polls `cond` until it yields `Some`, failing the test at the deadline.
pub(super) async fn wait_for<T, F, Fut>(what: &str, mut cond: F) -> T
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

/// Waits until `from` has seen `to` subscribe to its gossip topics: a
/// message published before that skips `to`. Subscriptions arrive in one
/// message per connection, so one topic seen means all of them.
pub(super) async fn wait_subscribed(from: &Node, to: &Node) {
    let id = to.handle.local_peer_id();
    wait_for("a gossip subscription", || async { (from.handle.gossip_topics_of(&id).await > 0).then_some(()) }).await;
}

/// Submits a fresh transaction at `a` every 200 ms until one reaches `b`.
/// Gossip reaches only peers whose subscription `a` has seen, and one
/// published before that is lost: a single probe made tests flaky.
pub(super) async fn wait_gossip_path(a: &Node, b: &Node) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    for n in 0u8.. {
        let probe = some_tx(n);
        assert_eq!(a.chain.submit_tx(probe.clone()), crate::chain_api::TxOutcome::Accepted);
        tokio::time::sleep(Duration::from_millis(200)).await;
        if b.chain.has_tx(&probe.txid()) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for gossip from a to reach b");
    }
}

/// Asserts `cond` holds throughout `period` (for "never happens" checks).
pub(super) async fn holds_for<F, Fut>(what: &str, period: Duration, mut cond: F)
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

pub(super) async fn connected(a: &Node, b: &Node) -> bool {
    a.peer_ids().await.contains(&b.handle.local_peer_id())
}

pub(super) fn submit_all(chain: &MockChain, blocks: &[Block]) {
    for b in blocks {
        assert!(matches!(
            chain.submit_block(b.clone(), crate::chain_api::BlockSource::Requested),
            crate::chain_api::BlockOutcome::Accepted { .. }
        ));
    }
}

/// A block with valid proof of work and a wrong merkle root.
pub(super) fn forged_block(builder: &ChainBuilder, salt: u64) -> Block {
    let mut b = builder.clone();
    let mut block = b.next_block(0);
    block.header.merkle_root = Hash256([salt as u8; 32]);
    block.header.time += salt;
    while check_header(&block.header, &ChainSpec::regtest()).is_err() {
        block.header.nonce += 1;
    }
    block
}

pub(super) fn some_tx(n: u8) -> Transaction {
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

pub(super) async fn banned(n: &Node, peer: &libp2p::PeerId) -> bool {
    n.handle.banned().await.iter().any(|b| b.peer_id == peer.to_string())
}

/// The status of a peer on `chain`'s tip.
pub(super) fn status_of(chain: &MockChain) -> Status {
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
pub(super) fn lying_status() -> Status {
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

pub(super) async fn score_of(n: &Node, peer: &libp2p::PeerId) -> Option<i32> {
    n.handle.peers().await.into_iter().find(|p| p.peer_id == peer.to_string()).map(|p| p.score)
}

/// A well-formed transaction of at least `size` bytes spending outputs
/// nobody has (distinct per `tag`).
pub(super) fn fat_tx(tag: u32, size: usize) -> Transaction {
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
pub(super) fn fat_blocks(builder: &mut ChainBuilder, n: usize, size: usize) -> Vec<Block> {
    (0..n)
        .map(|k| {
            let height = Height(builder.height().0 + 1);
            let out = TxOut { value: Amount::from_units(1), address: builder.address() };
            let coinbase = Transaction::coinbase(height, (k as u32).to_le_bytes().to_vec(), vec![out]);
            builder.seal(vec![coinbase, fat_tx(k as u32, size)])
        })
        .collect()
}

pub(super) fn count(reply: &Option<Result<Response, String>>) -> String {
    match reply {
        Some(Ok(Response::Blocks(b))) => b.len().to_string(),
        other => format!("{other:?}"),
    }
}

/// Publishes `payload` (made distinct each time: gossip is content
/// addressed) from a fresh hostile peer until the node bans it.
pub(super) async fn publish_until_banned(a: &Node, what: &str, blocks: bool, payload: Vec<u8>) {
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
