//! Gossip: blocks and transactions relayed between nodes, what is announced
//! during initial sync, and gossip that is invalid, undecodable or oversized.

use super::super::P2pConfig;
use super::helpers::*;
use crate::chain_api::{ChainEvent, NetworkChain};
use crate::testkit::ChainBuilder;
use lode_core::validation::check_header;
use lode_core::ChainSpec;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

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

/// Issue 13, finding 10: gossip that gossipsub refuses for its size
/// before the node sees it costs its sender like undecodable gossip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_gossip_gets_the_sender_banned() {
    let a = node(regtest(), &[]).await;
    let max_block = ChainSpec::regtest().max_block_size;
    let what = "ban for a block message 100 kB above the block size";
    publish_until_banned(&a, what, true, vec![0xab; max_block + 100_000]).await;
    let what = "ban for a transaction message above the topic limit";
    publish_until_banned(&a, what, false, vec![0xcd; super::super::codec::gossip_limits(max_block).tx + 50_000]).await;
    a.handle.shutdown().await;
}

/// Issue 13, finding 3: gossiped transactions are decoded with the relay
/// policy's size limit, not the block size; a larger one is malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossiped_transaction_above_the_relay_policy_is_malformed() {
    let a = node(regtest(), &[]).await;
    let tx = lode_core::codec::Encode::encode(&fat_tx(7, super::super::codec::max_tx_size() + 1));
    let max_block = ChainSpec::regtest().max_block_size;
    assert!(tx.len() < super::super::codec::gossip_limits(max_block).tx, "inside gossipsub's limit");
    publish_until_banned(&a, "ban for a well-formed transaction above the relay policy", false, tx).await;
    a.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_whose_events_the_network_task_missed_are_still_announced() {
    // An event channel of 8: a burst of 300 accepted transactions outruns
    // the network task, which misses most of their events.
    let a = node(crate::p2p::mock::MockChain::with_event_capacity(ChainSpec::regtest(), 8), &[]).await;
    let b = node(regtest(), &[a.addr().await]).await;
    wait_for("connected", || async { connected(&a, &b).await.then_some(()) }).await;
    wait_gossip_path(&a, &b).await;
    let txs: Vec<_> = (1..=300u32).map(|i| some_tx((i % 250) as u8)).collect();
    for tx in &txs {
        assert_eq!(a.chain.submit_tx(tx.clone()), crate::chain_api::TxOutcome::Accepted);
    }
    wait_for("every transaction reaches b", || async { txs.iter().all(|t| b.chain.has_tx(&t.txid())).then_some(()) })
        .await;
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

// A burst missed while the re-announcement's mempool read was under way
// was dropped, not read again: its transactions never left the node (the
// test above failed now and then under CI load this way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_missed_during_a_reannouncement_are_announced_by_the_next_one() {
    let chain = crate::p2p::mock::MockChain::with_event_capacity(ChainSpec::regtest(), 8);
    chain.scan_delay_ms.store(1500, Ordering::Relaxed);
    let a = node(chain, &[]).await;
    let b = node(regtest(), &[a.addr().await]).await;
    wait_for("connected", || async { connected(&a, &b).await.then_some(()) }).await;
    wait_gossip_path(&a, &b).await;
    let txs: Vec<_> = (0..80u8).map(|i| some_tx(i.wrapping_add(100))).collect();
    for tx in &txs[..40] {
        assert_eq!(a.chain.submit_tx(tx.clone()), crate::chain_api::TxOutcome::Accepted);
    }
    wait_for("the first re-announcement reading the pool", || async {
        (a.chain.scans.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    // Within the read's 1.5 s: missed again, while it is under way.
    for tx in &txs[40..] {
        assert_eq!(a.chain.submit_tx(tx.clone()), crate::chain_api::TxOutcome::Accepted);
    }
    wait_for("every transaction reaches b", || async { txs.iter().all(|t| b.chain.has_tx(&t.txid())).then_some(()) })
        .await;
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}
