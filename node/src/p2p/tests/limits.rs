//! Limits: malformed and flooding requests, `GetBlocks` deduplication and
//! caps, requests in progress per peer, and transaction floods.

use super::super::codec::{Request, Response};
use super::super::raw_peer as raw;
use super::helpers::*;
use super::hostile::{RawPeer, Serve};
use crate::testkit::ChainBuilder;
use lode_core::block::Block;
use lode_core::{ChainSpec, Hash256};
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_get_the_sender_banned() {
    let a = node(regtest(), &[]).await;
    let addr = a.addr().await;
    let proto = super::super::behaviour::Names::new(&ChainSpec::regtest()).unwrap().sync;
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
    let names = super::super::behaviour::Names::new(&ChainSpec::regtest()).unwrap();
    let status =
        super::super::codec::Request::GetHeaders { locator: vec![ChainSpec::regtest().genesis_hash()] }.encode();
    let mut frame = (status.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&status);
    let flooder = raw::send(&addr, names.sync, frame, 2000, 16).await;
    wait_for("flooder banned", || async { banned(&a, &flooder).await.then_some(()) }).await;
    a.handle.shutdown().await;
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
    if score != Some(-super::super::peers::penalty::FLOOD) {
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
            if b.is_empty() || bytes > super::super::codec::BLOCK_REPLY_BUDGET || got != fat[..b.len()] {
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
    assert!(served <= super::super::service::MAX_SERVING_PER_PEER, "{served} served at once, {refused} refused");
    assert!(refused >= 20 - super::super::service::MAX_SERVING_PER_PEER, "{served} served, {refused} refused");
    a.handle.shutdown().await;
}

/// A peer syncing from us as our own downloader does (its most block
/// requests and a header request open at once) is served in full and not
/// charged as a flood: with 8 requests allowed, the ninth cost it 5
/// points each time, and a long sync from one fast server got an honest
/// peer banned; and its requests beyond its share of the serving budget
/// wait instead of being refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_download_pipeline_and_a_header_request_are_served_without_penalty() {
    use super::super::service::MAX_REQUESTS_PER_PEER;
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(MAX_REQUESTS_PER_PEER, 0);
    let a = node(regtest(), &[]).await;
    submit_all(&a.chain, &blocks);
    a.chain.serve_delay_ms.store(500, Ordering::Relaxed);
    let mut raw = RawPeer::connect(&a.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Nothing).await;
    wait_for("connected", || async { score_of(&a, &raw.id).await.map(|_| ()) }).await;
    for b in &blocks {
        raw.request(Request::GetBlocks { hashes: vec![b.hash()] });
    }
    raw.request(Request::GetHeaders { locator: vec![ChainSpec::regtest().genesis_hash()] });
    for i in 0..=MAX_REQUESTS_PER_PEER {
        let reply = raw.reply(30).await;
        assert!(matches!(reply, Some(Ok(_))), "request {i}: {reply:?}");
    }
    assert_eq!(score_of(&a, &raw.id).await, Some(0), "an honest pipeline was charged");
    a.handle.shutdown().await;
}

/// Eight block requests of one peer reserved the whole serving budget
/// (4 MiB each until read), so every other peer's request was refused
/// meanwhile; now a peer's requests beyond its share wait for its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peers_block_requests_leave_room_for_another_peers() {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(8, 0);
    let a = node(regtest(), &[]).await;
    submit_all(&a.chain, &blocks);
    a.chain.serve_delay_ms.store(1000, Ordering::Relaxed);
    let mut greedy = RawPeer::connect(&a.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Nothing).await;
    let mut other = RawPeer::connect(&a.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Nothing).await;
    for raw in [&greedy, &other] {
        wait_for("connected", || async { score_of(&a, &raw.id).await.map(|_| ()) }).await;
    }
    for b in &blocks {
        greedy.request(Request::GetBlocks { hashes: vec![b.hash()] });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    other.request(Request::GetBlocks { hashes: vec![blocks[0].hash()] });
    let reply = other.reply(15).await;
    assert!(matches!(reply, Some(Ok(Response::Blocks(_)))), "the other peer's request: {reply:?}");
    for i in 0..blocks.len() {
        let reply = greedy.reply(30).await;
        assert!(
            matches!(reply, Some(Ok(Response::Blocks(_)))),
            "the first peer's request {i} waits, not refused: {reply:?}"
        );
    }
    for raw in [&greedy, &other] {
        assert_eq!(score_of(&a, &raw.id).await, Some(0));
    }
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
    let share = super::super::service::MAX_TX_BACKLOG_PEER_BYTES / 90_000;
    assert!(taken > 0, "some transactions were taken");
    assert!(taken <= 2 * share, "{taken} of {sent} 90 kB transactions queued; one peer's share is {share}");
    a.handle.shutdown().await;
}

/// Small transactions fill the backlog's count long before one peer's
/// bytes: 10,000 of them are under 2 MB. One peer gets an eighth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_holds_at_most_its_share_of_the_transaction_backlog_count() {
    let a = node(regtest(), &[]).await;
    // A slow mempool: the backlog fills faster than it drains.
    a.chain.tx_delay_ms.store(2_000, Ordering::Relaxed);
    let raw = RawPeer::connect(&a.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Nothing).await;
    wait_for("connected", || async { score_of(&a, &raw.id).await.map(|_| ()) }).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let share = super::super::service::MAX_TX_BACKLOG_PEER;
    for k in 0..(share as u32 + 300) {
        raw.publish(false, lode_core::codec::Encode::encode(&fat_tx(20_000 + k, 150)));
    }
    wait_for("the backlog filled to one peer's share", || async {
        a.handle.queues().await.filter(|q| q.tx_backlog >= share).map(|_| ())
    })
    .await;
    holds_for("one peer's backlog stays within its share", Duration::from_secs(2), || async {
        a.handle.queues().await.is_some_and(|q| q.tx_backlog <= share && q.tx_backlog_peer_count_max <= share)
    })
    .await;
    a.handle.shutdown().await;
}
