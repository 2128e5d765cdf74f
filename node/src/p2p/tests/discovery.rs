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
