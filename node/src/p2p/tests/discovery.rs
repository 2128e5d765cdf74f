//! Peer discovery on and off: two nodes that only know a hub find each
//! other through Kademlia, and do not with `discovery: false` (a test
//! network, such as lode-bench's propagation mesh, keeps its dialled graph).

use super::helpers::{connected, holds_for, node_with, regtest, wait_for, Node};
use std::time::Duration;

async fn spokes(discovery: bool) -> (Node, Node, Node) {
    let off = move |c: &mut super::super::P2pConfig| c.discovery = discovery;
    let hub = node_with(regtest(), off, &[]).await;
    let a = node_with(regtest(), off, &[hub.addr().await]).await;
    let b = node_with(regtest(), off, &[hub.addr().await]).await;
    for n in [&a, &b] {
        wait_for("connected to the hub", || async { connected(n, &hub).await.then_some(()) }).await;
    }
    (hub, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_discovery_the_hubs_peers_find_each_other() {
    let (hub, a, b) = spokes(true).await;
    wait_for("a and b connected through Kademlia", || async { connected(&a, &b).await.then_some(()) }).await;
    for n in [&hub, &a, &b] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_discovery_only_dialled_links_exist() {
    let (hub, a, b) = spokes(false).await;
    // Kademlia's own bootstrap runs half a second after a new routing
    // entry and the service tops up every second: several of both.
    holds_for("a and b stay apart", Duration::from_secs(5), || async {
        !connected(&a, &b).await && !connected(&b, &a).await
    })
    .await;
    assert_eq!(hub.peer_ids().await.len(), 2, "the hub keeps both spokes");
    for n in [&hub, &a, &b] {
        n.handle.shutdown().await;
    }
}

// Lode keeps no DHT records of its own, but Kademlia's default store took
// any record a peer sent (1,024 of up to 16 KiB each, kept 48 h) and
// republished them every hour to the closest peers: free storage and
// bandwidth amplification for whoever asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_a_peer_puts_into_the_dht_is_not_kept() {
    use super::helpers::{score_of, status_of};
    use super::hostile::{RawPeer, Serve};
    use libp2p::kad;
    let a = node_with(regtest(), |c| c.discovery = true, &[]).await;
    let mut writer = RawPeer::connect(&a.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Nothing).await;
    wait_for("the writer connected", || async { score_of(&a, &writer.id).await.map(|_| ()) }).await;
    let key = kad::RecordKey::new(&b"lode-test-record".to_vec());
    let put = writer.kad_put(kad::Record::new(key.clone(), vec![7; 1000])).await;
    assert!(matches!(put, Some(kad::QueryResult::PutRecord(Ok(_)))), "the node answered the put: {put:?}");
    // Another peer, whose own store is empty, asks the node for it.
    let mut reader = RawPeer::connect(&a.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Nothing).await;
    wait_for("the reader connected", || async { score_of(&a, &reader.id).await.map(|_| ()) }).await;
    match reader.kad_get(key).await {
        Some(kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(_)))) => {
            panic!("the node kept the record and served it")
        }
        Some(kad::QueryResult::GetRecord(_)) => {}
        other => panic!("another result: {other:?}"),
    }
    a.handle.shutdown().await;
}

// Nodes started together each asked the bootnode for peers before it knew
// the others, and looked again only 30 s later: the gossip test that needs
// two spokes to meet timed out under CI load. Short of outbound peers, a
// node now looks again after 1 s, then 2, 4, … up to 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_short_of_peers_asks_the_dht_again_within_seconds() {
    let hub = node_with(regtest(), |_| {}, &[]).await;
    let a = node_with(regtest(), |_| {}, &[hub.addr().await]).await;
    wait_for("connected to the hub", || async { connected(&a, &hub).await.then_some(()) }).await;
    let lookups = || async { a.handle.queues().await.map_or(0, |q| q.discovery_lookups) };
    wait_for("the first lookup", || async { (lookups().await >= 1).then_some(()) }).await;
    let first = lookups().await;
    // One peer of the eight wanted: two more lookups come well inside the
    // 30 s that used to pass before the next (the wait's own deadline).
    wait_for("two more lookups", || async { (lookups().await >= first + 2).then_some(()) }).await;
    for n in [&hub, &a] {
        n.handle.shutdown().await;
    }
}
