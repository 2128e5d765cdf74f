//! Compact block relay between real swarms over mock chains: blocks rebuilt
//! from the mempool, missing transactions fetched, the whole block after a
//! short-id collision or a wrong merkle root, and an invalid block relayed
//! in high-bandwidth mode that nobody connects and that costs only the
//! node that made it. Status exchange is slowed to ten minutes so every
//! block here can only arrive by relay.

use super::super::compact::{CmpctRequest, CmpctResponse, CompactBlock, RelayStats};
use super::super::P2pConfig;
use super::helpers::*;
use super::hostile::{RawPeer, Serve};
use crate::chain_api::NetworkChain;
use crate::testkit::ChainBuilder;
use lode_core::block::Block;
use lode_core::tx::TxOut;
use lode_core::{Amount, ChainSpec, Height, Transaction};
use std::sync::atomic::Ordering;
use std::time::Duration;

fn slow_status(cfg: &mut P2pConfig) {
    cfg.status_interval = Duration::from_secs(600);
}

/// A block on genesis with a coinbase and these transactions.
fn block_with(txs: &[Transaction]) -> Block {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let out = TxOut { value: Amount::from_units(1), address: builder.address() };
    let mut all = vec![Transaction::coinbase(Height(1), vec![7], vec![out])];
    all.extend_from_slice(txs);
    builder.seal(all)
}

/// `n` distinct transactions of about 200 bytes.
fn txs(n: u32) -> Vec<Transaction> {
    (0..n).map(|i| fat_tx(1_000 + i, 200)).collect()
}

async fn pair() -> (Node, Node) {
    let a = node_with(regtest(), slow_status, &[]).await;
    let b = node_with(regtest(), slow_status, &[a.addr().await]).await;
    wait_for("connected", || async { connected(&a, &b).await.then_some(()) }).await;
    (a, b)
}

/// Waits until `n`'s tip is `block`.
async fn wait_tip(n: &Node, block: &Block, what: &str) {
    let hash = block.hash();
    wait_for(what, || async { (n.chain.tip().hash == hash).then_some(()) }).await;
}

fn stats(n: &Node) -> RelayStats {
    n.handle.relay_stats()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_whose_transactions_are_pooled_is_rebuilt_from_the_mempool() {
    let (a, b) = pair().await;
    let pooled = txs(100);
    for t in &pooled {
        a.chain.pool_quietly(t.clone());
        b.chain.pool_quietly(t.clone());
    }
    let block = block_with(&pooled);
    // Gossip reaches only peers whose subscriptions we have seen.
    wait_for("b subscribed", || async { (a.handle.peers().await.len() == 1).then_some(()) }).await;
    wait_subscribed(&a, &b).await;
    submit_all(&a.chain, std::slice::from_ref(&block));
    wait_tip(&b, &block, "the block at b").await;
    let s = stats(&b);
    assert_eq!(s.reconstructed, 1, "{s:?}");
    assert_eq!(s.txs_from_pool, 100, "{s:?}");
    assert_eq!(s.txs_fetched, 0, "{s:?}");
    assert_eq!(s.full_block_bytes, 0, "no full block travelled: {s:?}");
    let full = block.encoded_size() as u64;
    assert!(s.compact_bytes * 20 < full, "compact {} bytes for a {full}-byte block", s.compact_bytes);
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_missing_from_the_mempool_are_fetched_from_the_sender() {
    let (a, b) = pair().await;
    let all = txs(40);
    for (i, t) in all.iter().enumerate() {
        a.chain.pool_quietly(t.clone());
        if i % 10 != 3 {
            b.chain.pool_quietly(t.clone());
        }
    }
    let block = block_with(&all);
    wait_subscribed(&a, &b).await;
    submit_all(&a.chain, std::slice::from_ref(&block));
    wait_tip(&b, &block, "the block at b").await;
    let s = stats(&b);
    assert_eq!((s.reconstructed, s.txs_from_pool, s.txs_fetched, s.fallbacks), (1, 36, 4, 0), "{s:?}");
    assert_eq!(s.full_block_bytes, 0, "{s:?}");
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

/// `a` hands `b` a compact form of `block` made by `forge`; `b` must still
/// end on the block, by asking `a` for all of it, without blaming `a`.
async fn falls_back(forge: impl FnOnce(&mut CompactBlock, &Block) -> Option<Transaction>) {
    let (a, b) = pair().await;
    let pooled = txs(10);
    for t in &pooled {
        b.chain.pool_quietly(t.clone());
    }
    let block = block_with(&pooled);
    a.chain.quiet.store(true, Ordering::Relaxed);
    submit_all(&a.chain, std::slice::from_ref(&block));
    let mut compact = CompactBlock::from_block(&block, 5);
    if let Some(stranger) = forge(&mut compact, &block) {
        b.chain.pool_quietly(stranger);
    }
    wait_subscribed(&a, &b).await;
    a.handle.publish_compact_raw(compact.encode(), block.clone()).await;
    wait_tip(&b, &block, "the block at b after the fallback").await;
    let s = stats(&b);
    assert_eq!((s.fallbacks, s.reconstructed, s.txs_fetched), (1, 1, 11), "{s:?}");
    let a_id: libp2p::PeerId = a.handle.local_peer_id().parse().unwrap();
    assert_eq!(score_of(&b, &a_id).await, Some(0), "a collision is nobody's fault");
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_equal_short_ids_fall_back_to_the_whole_block() {
    falls_back(|c, _| {
        c.short_ids[4] = c.short_ids[2];
        None
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_block_with_a_wrong_merkle_root_falls_back_to_the_whole_block() {
    // A pooled stranger shares slot 3's short id (as a collision between
    // different transactions would): the rebuilt block's root is wrong.
    falls_back(|c, _| {
        let stranger = fat_tx(9_999, 200);
        c.short_ids[2] = c.key().short_id(&stranger.txid());
        Some(stranger)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_block_is_relayed_fast_never_connected_and_bans_only_its_maker() {
    // maker -> a -> b: the maker's node takes its own invalid block (a
    // transaction without inputs) and announces it; a forwards it compact
    // before validating; b must not blame a.
    let maker = node_with(regtest(), slow_status, &[]).await;
    maker.chain.sloppy.store(true, Ordering::Relaxed);
    let a = node_with(regtest(), slow_status, &[maker.addr().await]).await;
    let b = node_with(regtest(), slow_status, &[a.addr().await]).await;
    let maker_id: libp2p::PeerId = maker.handle.local_peer_id().parse().unwrap();
    let a_id: libp2p::PeerId = a.handle.local_peer_id().parse().unwrap();
    // Keep b away from the maker (Kademlia would introduce them).
    b.handle.ban(&maker.handle.local_peer_id(), 0).await.unwrap();
    wait_for("a line maker - a - b", || async {
        (connected(&maker, &a).await && connected(&a, &b).await && !connected(&b, &maker).await).then_some(())
    })
    .await;
    // a validates slowly: b must hear of the block before a has judged it.
    a.chain.submit_delay_ms.store(3_000, Ordering::Relaxed);
    wait_subscribed(&maker, &a).await;
    wait_subscribed(&a, &b).await;
    let mut bad = txs(5);
    bad[2].inputs.clear();
    let block = block_with(&bad);
    submit_all(&maker.chain, std::slice::from_ref(&block));
    wait_for("b judges the block while a still validates it", || async {
        (b.chain.submitted.load(Ordering::Relaxed) == 1 && !banned(&a, &maker_id).await).then_some(())
    })
    .await;
    assert_eq!(stats(&a).fast_relayed, 1, "a forwarded before connecting");
    wait_for("a bans the maker that vouched for it", || async { banned(&a, &maker_id).await.then_some(()) }).await;
    holds_for("b keeps a, unpenalised", Duration::from_secs(2), || async {
        score_of(&b, &a_id).await == Some(0) && !banned(&b, &a_id).await
    })
    .await;
    assert_eq!(a.chain.height(), 0, "never connected at a");
    assert_eq!(b.chain.height(), 0, "never connected at b");
    for n in [&maker, &a, &b] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_compact_relay_gets_full_blocks_and_passes_them_on() {
    // compact a <-> legacy b <-> compact c: b takes and gives whole blocks.
    let legacy = |cfg: &mut P2pConfig| {
        slow_status(cfg);
        cfg.compact_blocks = false;
    };
    let a = node_with(regtest(), slow_status, &[]).await;
    let b = node_with(regtest(), legacy, &[a.addr().await]).await;
    let c = node_with(regtest(), slow_status, &[b.addr().await]).await;
    c.handle.ban(&a.handle.local_peer_id(), 0).await.unwrap();
    wait_for("a line a - b - c", || async {
        (connected(&a, &b).await && connected(&b, &c).await && !connected(&a, &c).await).then_some(())
    })
    .await;
    wait_subscribed(&a, &b).await;
    wait_subscribed(&b, &c).await;
    let block = block_with(&txs(3));
    submit_all(&a.chain, std::slice::from_ref(&block));
    wait_tip(&c, &block, "the block through the legacy node").await;
    assert_eq!(stats(&b).compact_blocks, 0);
    assert!(stats(&b).full_block_bytes > 0);
    for n in [&a, &b, &c] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_connected_blocks_sends_few_vouch_requests_and_costs_the_announcer_nothing() {
    // A miner's burst (or a node catching up) connects blocks far faster
    // than a round trip: its vouches are coalesced, not one request a
    // block, which a peer's request rate limit would read as a flood.
    let (a, b) = pair().await;
    wait_for("b subscribed", || async { (a.handle.peers().await.len() == 1).then_some(()) }).await;
    wait_subscribed(&a, &b).await;
    let blocks = ChainBuilder::new(ChainSpec::regtest()).blocks(1_500, 0);
    submit_all(&a.chain, &blocks);
    let last = blocks.last().expect("blocks");
    wait_tip(&b, last, "b follows the burst").await;
    let vouches = stats(&b).vouch_requests;
    assert!(vouches * 8 < blocks.len() as u64, "{vouches} vouch requests for {} blocks", blocks.len());
    let a_id: libp2p::PeerId = a.handle.local_peer_id().parse().expect("peer id");
    holds_for("b keeps a, unpenalised", Duration::from_secs(2), || async {
        score_of(&b, &a_id).await == Some(0) && !banned(&b, &a_id).await
    })
    .await;
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_announces_its_newest_block_not_each_block_it_fetched() {
    // a - b - c in a line; b is out of initial sync when a gains blocks
    // nobody hears of by relay, so b catches up by sync (status every
    // second here) and c learns of them from b.
    let fast_status = |cfg: &mut P2pConfig| cfg.status_interval = Duration::from_secs(1);
    let a = node_with(regtest(), fast_status, &[]).await;
    let b = node_with(regtest(), fast_status, &[a.addr().await]).await;
    let c = node_with(regtest(), slow_status, &[b.addr().await]).await;
    c.handle.ban(&a.handle.local_peer_id(), 0).await.unwrap();
    wait_for("a line a - b - c", || async {
        (connected(&a, &b).await && connected(&b, &c).await && !connected(&a, &c).await).then_some(())
    })
    .await;
    wait_for("b out of initial sync", || async { (!b.handle.initial_sync()).then_some(()) }).await;
    wait_subscribed(&a, &b).await;
    wait_subscribed(&b, &c).await;
    let blocks = ChainBuilder::new(ChainSpec::regtest()).blocks(300, 0);
    a.chain.quiet.store(true, Ordering::Relaxed);
    submit_all(&a.chain, &blocks);
    let started = std::time::Instant::now();
    let last = blocks.last().expect("blocks");
    wait_tip(&b, last, "b catches up by sync").await;
    wait_tip(&c, last, "c follows b").await;
    // Counted where the rule acts, at b (c's count, used before, also
    // depended on what c had fetched itself). At most one announcement per
    // one-second tick: a bound in the catch-up's own duration, so a slow
    // machine allows more. Without the rule b announces each of the 300
    // blocks (the mock's event channel holds 4,096 events); with the older
    // rule, once per download drain, it announced 112.
    wait_for("b announces its newest block", || async { (stats(&b).blocks_announced >= 1).then_some(()) }).await;
    let ticks = started.elapsed().as_secs() + 2;
    let announced = stats(&b).blocks_announced;
    assert!(
        announced <= ticks,
        "b announced {announced} of the {} blocks it caught up in under {ticks} ticks",
        blocks.len()
    );
    for n in [&a, &b, &c] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_made_here_is_relayed_compact_before_it_connects_and_vouched_for_once_it_does() {
    let (a, b) = pair().await;
    wait_gossip_path(&a, &b).await;
    let pooled = txs(50);
    for t in &pooled {
        a.chain.pool_quietly(t.clone());
        b.chain.pool_quietly(t.clone());
    }
    let block = block_with(&pooled);
    // What the node does for a block it made, before connecting it.
    a.chain.announce(crate::chain_api::ChainEvent::Prevalidated(std::sync::Arc::new(block.clone())));
    wait_tip(&b, &block, "b connects the block a is still connecting").await;
    assert_eq!(a.chain.height(), 0, "a has not connected it");
    assert_eq!(stats(&b).vouch_requests, 0, "no vouch before a connects it");
    submit_all(&a.chain, std::slice::from_ref(&block));
    wait_for("a vouches for it once connected", || async { (stats(&b).vouch_requests >= 1).then_some(()) }).await;
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

// A `getblocktxn` names any block; served from the store, each 41-byte
// request bought a chain-lock hold and a block read off the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn getblocktxn_for_a_block_not_kept_in_memory_is_answered_empty_without_reading_the_store() {
    let chain = regtest();
    let blocks = ChainBuilder::new(ChainSpec::regtest()).blocks(3, 0);
    submit_all(&chain, &blocks);
    let a = node_with(chain, slow_status, &[]).await;
    let mut raw = RawPeer::connect(&a.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Nothing).await;
    let reads_before = (a.chain.served.load(Ordering::SeqCst), a.chain.batch_reads.load(Ordering::SeqCst));
    let old = blocks[0].hash();
    raw.cmpct_request(CmpctRequest::GetBlockTxn { hash: old, indexes: vec![0] });
    let reply = raw.cmpct_reply(20).await;
    assert_eq!(reply, Some(Ok(CmpctResponse::BlockTxn { hash: old, txs: Vec::new() })), "answered, and empty");
    let reads_after = (a.chain.served.load(Ordering::SeqCst), a.chain.batch_reads.load(Ordering::SeqCst));
    assert_eq!(reads_after, reads_before, "no block was read for it");
    assert!(!banned(&a, &raw.id).await, "asking is not misbehaviour");
}

/// `a` on a chain of two blocks, a raw peer connected to it, and the
/// builder of `a`'s chain.
async fn node_and_raw_peer() -> (Node, RawPeer, ChainBuilder) {
    let chain = regtest();
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    submit_all(&chain, &builder.blocks(2, 0));
    let a = node_with(chain, slow_status, &[]).await;
    let raw = RawPeer::connect(&a.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Nothing).await;
    (a, raw, builder)
}

/// A block on `builder`'s tip whose one transaction no mempool holds, so
/// rebuilding it takes a `getblocktxn`.
fn block_needing_a_fetch(builder: &mut ChainBuilder, tag: u8) -> Block {
    let out = TxOut { value: Amount::from_units(1), address: builder.address() };
    let coinbase = Transaction::coinbase(Height(builder.height().0 + 1), vec![tag], vec![out]);
    builder.seal(vec![coinbase, fat_tx(50_000 + u32::from(tag), 200)])
}

/// Publishes compact forms of `block` (a new nonce each time, so each is
/// a new gossip message) until `a` has received one (gossip published
/// before `a`'s subscription is seen is lost) and is done with it.
async fn publish_until_heard(a: &Node, raw: &RawPeer, block: &Block) {
    let mut nonce = 0;
    wait_for("a compact block from the raw peer at the node", || {
        nonce += 1;
        raw.publish_compact(CompactBlock::from_block(block, nonce).encode());
        async { (stats(a).compact_blocks > 0).then_some(()) }
    })
    .await;
    // Until judged, each copy holds one of the raw peer's rebuild slots;
    // copies still in flight may arrive after the first is judged.
    for _ in 0..2 {
        wait_for("the probe judged", || async {
            a.handle.queues().await.filter(|q| q.compact_pending == 0).map(|_| ())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

// A stored header skips the anti-DoS work check, so without the rule a
// peer could have us rebuild (and fetch for) stale blocks for free, each
// holding a rebuild slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_block_that_would_not_be_the_new_tip_is_not_rebuilt() {
    let (a, mut raw, mut builder) = node_and_raw_peer().await;
    // A sibling of a's first block: valid, stored, less work than the tip.
    let stale = block_needing_a_fetch(&mut ChainBuilder::new(ChainSpec::regtest()), 1);
    publish_until_heard(&a, &raw, &stale).await;
    let mut asked = 0;
    holds_for("no getblocktxn for a stale block", Duration::from_millis(1500), || {
        asked += raw.blocktxn_asked();
        async move { asked == 0 }
    })
    .await;
    // The same path does fetch for a block that extends the tip.
    let next = block_needing_a_fetch(&mut builder, 2);
    raw.publish_compact(CompactBlock::from_block(&next, 1).encode());
    wait_for("a getblocktxn for the block extending the tip", || {
        let asked = raw.blocktxn_asked();
        async move { (asked == 1).then_some(()) }
    })
    .await;
    a.handle.shutdown().await;
}

// Rebuild slots are few (MAX_PENDING); one peer that never answers
// getblocktxn must not hold them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_holds_at_most_its_share_of_the_rebuild_slots() {
    let (a, mut raw, builder) = node_and_raw_peer().await;
    let stale = block_needing_a_fetch(&mut ChainBuilder::new(ChainSpec::regtest()), 1);
    publish_until_heard(&a, &raw, &stale).await;
    let share = super::super::compact::MAX_PENDING_PER_PEER;
    for tag in 0..=share as u8 {
        let sibling = block_needing_a_fetch(&mut builder.fork(u32::from(tag)), 10 + tag);
        raw.publish_compact(CompactBlock::from_block(&sibling, 1).encode());
    }
    let mut asked = 0;
    wait_for("getblocktxn for the rebuilds taken on", || {
        asked += raw.blocktxn_asked();
        let seen = asked;
        async move { (seen >= share).then_some(()) }
    })
    .await;
    holds_for("no more rebuilds for the same peer", Duration::from_millis(1000), || {
        asked += raw.blocktxn_asked();
        let seen = asked;
        async move { seen == share }
    })
    .await;
    a.handle.shutdown().await;
}

/// A raw peer sends `a` the compact form of a new block first (its short
/// ids, and `pad` more, match nothing) and never answers the getblocktxn;
/// then `b` sends its own copy, changed by `forge_b`. Returns the nodes,
/// the block and the raw peer (connected still) once `b`'s copies are out.
async fn rebuild_after_a_silent_first_sender(
    pad: usize,
    forge_b: impl Fn(&mut CompactBlock),
) -> (Node, Node, Block, RawPeer) {
    let (a, b) = pair().await;
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let base = builder.blocks(2, 0);
    // Quiet: neither announces them, so the only compact blocks are the test's.
    for n in [&a, &b] {
        n.chain.quiet.store(true, Ordering::Relaxed);
        submit_all(&n.chain, &base);
    }
    let mut raw = RawPeer::connect(&a.addr().await, status_of(&a.chain), Serve::Nothing, Serve::Nothing).await;
    // b's compact blocks reach a: a stale one (never rebuilt) as the probe.
    let stale = block_needing_a_fetch(&mut ChainBuilder::new(ChainSpec::regtest()), 1);
    let mut nonce = 0;
    let at_a = &a;
    wait_for("a compact block from b at a", || {
        nonce += 1;
        let data = CompactBlock::from_block(&stale, nonce).encode();
        let handle = b.handle.clone();
        let stale = stale.clone();
        async move {
            handle.publish_compact_raw(data, stale).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            (stats(at_a).compact_blocks > 0).then_some(())
        }
    })
    .await;
    // The next block, every transaction in a's mempool.
    let pooled = txs(20);
    for t in &pooled {
        a.chain.pool_quietly(t.clone());
    }
    let out = TxOut { value: Amount::from_units(1), address: builder.address() };
    let mut all = vec![Transaction::coinbase(Height(3), vec![9], vec![out])];
    all.extend_from_slice(&pooled);
    let block = builder.seal(all);
    // The raw peer sends it first, with short ids that match nothing, so
    // a asks it for every transaction; it never answers.
    let mut nonce = 0;
    wait_for("a getblocktxn to the raw peer", || {
        nonce += 1;
        let mut junk = CompactBlock::from_block(&block, nonce);
        for (i, id) in junk.short_ids.iter_mut().enumerate() {
            *id = 1 + i as u64;
        }
        junk.short_ids.extend((0..pad).map(|i| 1_000 + i as u64));
        raw.publish_compact(junk.encode());
        let asked = raw.blocktxn_asked();
        async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            (asked > 0).then_some(())
        }
    })
    .await;
    // b's copy, while the raw peer's rebuild is pending (its getblocktxn
    // times out 3 s after it was asked). Three copies within a second: a
    // lone gossip message was lost now and then under the full suite's
    // load; a's first copy from b is kept, the others ignored. (Should all
    // three arrive after the timeout, a takes b's copy afresh and the test
    // passes even without the rule: the flake falls on the lenient side.)
    for nonce in 7..10 {
        let mut copy = CompactBlock::from_block(&block, nonce);
        forge_b(&mut copy);
        b.handle.publish_compact_raw(copy.encode(), block.clone()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    (a, b, block, raw)
}

// Whoever sends a block's compact form first used to own its rebuild:
// a peer that relays the header first and never answers getblocktxn held
// the block back until sync (seconds, a status round and a fetch per hop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_whose_first_sender_never_answers_is_rebuilt_from_the_next_peers_copy() {
    let (a, b, block, _raw) = rebuild_after_a_silent_first_sender(0, |_| {}).await;
    wait_tip(&a, &block, "the block at a, rebuilt from b's copy").await;
    assert_eq!(stats(&a).reconstructed, 1, "rebuilt, not fetched whole by sync");
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}

// The rebuild kept the first sender's transaction count when it moved to
// the next copy: had that copy to fall back to the whole block, `a` asked
// `b` for indexes past its end and `b`, honest, banned `a`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_moved_to_another_copy_asks_for_that_copys_transactions() {
    // The first sender claims five transactions more; b's copy has two
    // equal short ids, so rebuilding it falls back to all of b's block.
    let (a, b, block, _raw) = rebuild_after_a_silent_first_sender(5, |c| c.short_ids[4] = c.short_ids[2]).await;
    wait_tip(&a, &block, "the block at a, fetched whole from b").await;
    let a_id: libp2p::PeerId = a.handle.local_peer_id().parse().unwrap();
    assert_eq!(score_of(&b, &a_id).await, Some(0), "b charged a for its getblocktxn");
    assert_eq!(stats(&a).fallbacks, 1, "{:?}", stats(&a));
    for n in [&a, &b] {
        n.handle.shutdown().await;
    }
}
