//! Sync: headers-first from several peers, initial-sync reporting, orphan
//! ancestry fetch, and header or block sources that lie or stall.

use super::super::P2pConfig;
use super::helpers::*;
use super::hostile::{RawPeer, Serve};
use crate::chain_api::{ChainEvent, NetworkChain};
use crate::testkit::ChainBuilder;
use lode_core::ChainSpec;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

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
/// `a` holding 200 blocks; `b`, with this request timeout, connected
/// first to a peer that claims `a`'s chain and holds every block request.
/// Returns before `b` hears of `a` (the caller adds it).
async fn behind_a_staller(request_timeout: Duration) -> (Node, Node, RawPeer) {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(200, 0);
    let a = node(regtest(), &[]).await;
    submit_all(&a.chain, &blocks);
    let b = node_with(
        regtest(),
        |cfg| {
            cfg.request_timeout = request_timeout;
            cfg.blocks_per_request = 4;
        },
        &[],
    )
    .await;
    let staller = RawPeer::connect(&b.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Hold).await;
    wait_for("the staller connected", || async { score_of(&b, &staller.id).await.map(|_| ()) }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    (a, b, staller)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_block_source_is_worked_around_quickly() {
    let (a, b, staller) = behind_a_staller(Duration::from_secs(20)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_peers_serve_only_above_their_horizon_and_missing_history_is_reported_until_an_archive_joins() {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(400, 0);
    let horizon = 300;
    let pruned = || {
        let c = regtest();
        c.lowest_served.store(horizon, Ordering::Relaxed);
        submit_all(&c, &blocks);
        c
    };
    let p1 = node(pruned(), &[]).await;
    let p2 = node(pruned(), &[]).await;
    let n = node(regtest(), &[p1.addr().await, p2.addr().await]).await;
    // Both peers have pruned block 1: sync cannot start, and says so.
    wait_for("history reported unavailable", || async { n.handle.history_unavailable().then_some(()) }).await;
    assert_eq!(n.chain.height(), 0);
    let peers = n.handle.peers().await;
    assert_eq!(peers.len(), 2);
    for p in &peers {
        assert_eq!((p.archive, p.lowest_height), (Some(false), Some(horizon)), "{p:?}");
    }
    assert_eq!(n.handle.archive_peers(), 0);

    let archive = regtest();
    submit_all(&archive, &blocks);
    let a = node(archive, &[]).await;
    let a_addr = a.addr().await;
    n.handle.add_peer(&a_addr).await.expect("dial the archive node");
    wait_for("synced from the archive node", || async { (n.chain.height() == 400).then_some(()) }).await;
    wait_for("history available again", || async { (!n.handle.history_unavailable()).then_some(()) }).await;
    assert_eq!(n.handle.archive_peers(), 1);
    let a_id = a.handle.local_peer_id();
    for p in n.handle.peers().await {
        if p.peer_id == a_id {
            assert_eq!((p.archive, p.lowest_height), (Some(true), Some(0)));
            assert!(p.blocks_received >= u64::from(horizon) - 1, "the bodies below the horizon came from it: {p:?}");
        } else {
            assert_eq!(p.blocks_missing, 0, "a pruned peer was asked for a body below its horizon: {p:?}");
        }
    }
    for node in [&n, &p1, &p2, &a] {
        node.handle.shutdown().await;
    }
}

/// A peer that answers every header request with a full reply of headers
/// we already hold and one new one (real headers, copied from an honest
/// peer) kept the header slot: "a full reply that taught us something"
/// was one new header a round trip, for as long as it stayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_sync_is_not_held_by_a_peer_padding_full_replies_with_known_headers() {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(2_500, 0);
    let b = node(regtest(), &[]).await;
    let headers: Vec<_> = blocks.iter().map(|blk| blk.header).collect();
    let padder = RawPeer::connect(
        &b.addr().await,
        lying_status(),
        Serve::Slide { headers, delay: Duration::from_millis(500) },
        Serve::Hold,
    )
    .await;
    wait_for("the padder's first reply taken", || async { (b.chain.best_header().height.0 >= 2_000).then_some(()) })
        .await;
    let a = node(regtest(), &[]).await;
    submit_all(&a.chain, &blocks);
    b.handle.add_peer(&a.addr().await).await.unwrap();
    wait_for("every header, from the honest peer", || async {
        (b.chain.best_header().height.0 == 2_500).then_some(())
    })
    .await;
    assert!(!banned(&b, &padder.id).await, "known headers are not misbehaviour");
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

/// A peer that claims our best chain and holds every block request kept
/// its connection: each time its request timed out it was asked again for
/// the front of the window, stalling the download once per timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stalls_block_download_and_never_answers_is_disconnected_not_banned() {
    let (a, b, staller) = behind_a_staller(Duration::from_secs(4)).await;
    b.handle.add_peer(&a.addr().await).await.unwrap();
    let staller_id = staller.id.to_string();
    wait_for("the staller disconnected", || async { (!b.peer_ids().await.contains(&staller_id)).then_some(()) }).await;
    wait_for("the staller's side closed too", || async { staller.closed().then_some(()) }).await;
    assert!(!banned(&b, &staller.id).await, "slowness is not banned");
    wait_for("200 blocks synced", || async { (b.chain.height() == 200).then_some(()) }).await;
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

/// A peer that keeps showing us blocks whose parents we lack, and answers
/// each header request with nothing just before it would time out, held
/// header sync: each block it showed made it the next peer asked, and an
/// empty answer cost it nothing. Now that answer is a strike, and a peer
/// resting after strikes is not asked for its orphans' ancestors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_showing_blocks_it_cannot_connect_does_not_hold_header_sync() {
    use super::super::compact::CompactBlock;
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(30, 0);
    let a = node(regtest(), &[]).await;
    submit_all(&a.chain, &blocks);
    let b = node(regtest(), &[]).await;
    // Blocks of a chain b has never heard of, each an orphan to b (one
    // block is taken on once, so each showing is a new one: at the
    // minimum difficulty they cost next to nothing).
    let orphans = ChainBuilder::new(ChainSpec::regtest()).blocks(80, 0);
    let empty_late = Serve::Slide { headers: Vec::new(), delay: Duration::from_millis(4500) };
    // It claims no work, so an empty answer broke no claim.
    let mut claims_nothing = status_of(&b.chain);
    claims_nothing.chainwork = lode_core::pow::Work::ZERO;
    let liar = RawPeer::connect(&b.addr().await, claims_nothing, empty_late, Serve::Hold).await;
    wait_for("the liar connected", || async { score_of(&b, &liar.id).await.map(|_| ()) }).await;
    let mut next = 1;
    let mut show_orphan = || {
        next = (next + 1).min(orphans.len() - 1);
        liar.publish_compact(CompactBlock::from_block(&orphans[next], 1).encode());
    };
    for _ in 0..3 {
        show_orphan();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    b.handle.add_peer(&a.addr().await).await.unwrap();
    let b_ref = &b;
    wait_for("a's 30 blocks at b while the liar shows orphans", || {
        show_orphan();
        async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            (b_ref.chain.height() == 30).then_some(())
        }
    })
    .await;
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}
