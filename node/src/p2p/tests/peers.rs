//! Peers: bans (automatic and manual, both directions), the peer store
//! across restarts, chain separation and the UTXO commitment check.

use super::super::mock::MockChain;
use super::super::{start, P2pError};
use super::helpers::*;
use crate::chain_api::ChainEvent;
use crate::testkit::ChainBuilder;
use lode_core::ChainSpec;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

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
    assert!(banned[0].until > super::super::peers::unix_now() + 3000);
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
async fn a_different_utxo_commitment_at_the_same_tip_is_flagged_and_only_a_peer_we_dialed_raises_the_alarm() {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(5, 0);
    let a = node(regtest(), &[]).await;
    let b = node(regtest(), &[]).await;
    submit_all(&a.chain, &blocks);
    submit_all(&b.chain, &blocks);
    b.chain.corrupt_commitment.store(true, Ordering::Relaxed);
    // b dials a: to b, a is a peer it chose; to a, b is anyone.
    b.handle.add_peer(&a.addr().await).await.unwrap();
    wait_for("mismatch flagged on both sides", || async {
        let (at_a, at_b) = (a.handle.peers().await, b.handle.peers().await);
        let flagged = |peers: &[crate::p2p::PeerInfo]| peers.iter().any(|p| p.commitment_mismatch && p.height == 5);
        (b.handle.commitment_mismatches() >= 1 && flagged(&at_a) && flagged(&at_b)).then_some(())
    })
    .await;
    // Counted once per peer and tip, not once per status exchange; and an
    // inbound peer's claim raises no alarm (anyone can dial in and lie).
    holds_for("one count at b, none at a", Duration::from_millis(2500), || async {
        b.handle.commitment_mismatches() == 1 && a.handle.commitment_mismatches() == 0
    })
    .await;
    // Now a dials b as well: b is a peer a chose, whoever connected first
    // (else an attacker that dials in first keeps our dial from counting).
    a.handle.add_peer(&b.addr().await).await.unwrap();
    wait_for("a counts b once it dialed b too", || async {
        let peers = a.handle.peers().await;
        let outbound = peers.iter().any(|p| p.direction == "outbound");
        (outbound && a.handle.commitment_mismatches() == 1).then_some(())
    })
    .await;
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_addpeer_calls_for_a_peer_connected_inbound_share_one_dial() {
    let a = node(regtest(), &[]).await;
    let b = node(regtest(), &[]).await;
    b.handle.add_peer(&a.addr().await).await.unwrap();
    wait_for("a sees b, inbound", || async {
        a.handle.peers().await.iter().any(|p| p.direction == "inbound").then_some(())
    })
    .await;
    // Each call dialing on its own would open two connections beside b's;
    // the per-peer limit (2) refuses one and that call reported a failure.
    let b_addr = b.addr().await;
    let (first, second) = tokio::join!(a.handle.add_peer(&b_addr), a.handle.add_peer(&b_addr));
    assert!(first.is_ok() && second.is_ok(), "both calls succeed: {first:?}, {second:?}");
    wait_for("a counts b as a peer it dialed", || async {
        a.handle.peers().await.iter().any(|p| p.direction == "outbound").then_some(())
    })
    .await;
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}
