//! Multi-node scenarios with real processes on 127.0.0.1: propagation, no
//! single point of failure, partition and heal, crash and restart, double
//! spend across a partition, late joiner. Regtest: blocks are mined on demand
//! with `generatetoaddress`, so every step is a condition, not a timing.

use lode_core::subsidy::total_supply_at;
use lode_core::{ChainSpec, Height};
use lode_tests::{burn_address, wait_for, NodeOptions, TestKey, TestNode};
use serde_json::json;
use std::time::{Duration, Instant};

const CONVERGE: Duration = Duration::from_secs(90);

fn start_net(n: usize) -> Vec<TestNode> {
    let first = TestNode::start(NodeOptions::default());
    let boot = first.p2p_addr();
    let mut nodes = vec![first];
    for _ in 1..n {
        nodes.push(TestNode::start(NodeOptions { bootnodes: vec![boot.clone()], ..Default::default() }));
    }
    wait_for("every node to have a peer", CONVERGE, || {
        nodes.iter().all(|n| n.rpc("getnetworkinfo", json!([]))["connections"].as_u64().unwrap_or(0) > 0).then_some(())
    });
    nodes
}

fn converged(nodes: &[&TestNode]) -> Option<String> {
    let tips: Vec<String> = nodes.iter().map(|n| n.tip()).collect();
    tips.iter().all(|t| *t == tips[0]).then(|| tips[0].clone())
}

fn wait_converged(what: &str, nodes: &[&TestNode]) -> String {
    wait_for(what, CONVERGE, || converged(nodes))
}

fn commitment(n: &TestNode) -> serde_json::Value {
    n.rpc("gettxoutsetinfo", json!([]))["commitment"].clone()
}

fn mine(n: &TestNode, blocks: u64) {
    let addr = burn_address(n);
    n.rpc("generatetoaddress", json!([blocks, addr]));
}

fn connections(n: &TestNode) -> u64 {
    n.rpc("getnetworkinfo", json!([]))["connections"].as_u64().expect("connections")
}

/// Stops every node that runs and checks each exits cleanly.
fn stop_all(nodes: &mut [TestNode]) {
    for n in nodes.iter_mut() {
        if n.is_running() {
            let status = n.stop();
            assert!(status.success(), "{status}");
        }
    }
}

/// The block of `node`'s active chain that holds `txid`, checked from
/// both ends: the transaction index names a block with a confirmation,
/// that block lists the transaction and is the active chain's block at
/// its height. `None` when the node has no confirmation of it.
fn mined_in(node: &TestNode, txid: &str) -> Option<String> {
    let tx = node.call("getrawtransaction", json!([txid, true])).ok()?;
    if tx["confirmations"].as_u64().unwrap_or(0) < 1 {
        return None;
    }
    let hash = tx["block_hash"].as_str().expect("block_hash of a confirmed transaction").to_string();
    let block = node.rpc("getblock", json!([hash, true]));
    assert_eq!(block["in_best_chain"], true, "{txid} confirmed in {hash}, off the active chain");
    assert!(
        block["tx"].as_array().expect("tx").iter().any(|t| t["txid"] == json!(txid)),
        "block {hash} does not list {txid}"
    );
    assert_eq!(node.rpc("getblockhash", json!([block["height"]])), json!(hash));
    Some(hash)
}

#[test]
fn five_nodes_two_miners_converge_on_tip_and_commitment() {
    let started = Instant::now();
    let mut nodes = start_net(5);
    for round in 0..5 {
        mine(&nodes[1], 2);
        mine(&nodes[3], 1 + round % 2);
    }
    let all: Vec<&TestNode> = nodes.iter().collect();
    // The two miners raced: branches of equal work can stand (ties go to the
    // block seen first). Once miner 1 has the best height, one more block
    // from it is strictly heaviest and every node must take it.
    wait_for("miner 1 at the best height", CONVERGE, || {
        let best = nodes.iter().map(TestNode::height).max()?;
        (nodes[1].height() == best).then_some(())
    });
    mine(&nodes[1], 1);
    let tip = wait_converged("five nodes on one tip", &all);
    let c = commitment(&nodes[0]);
    for n in &nodes {
        assert_eq!(commitment(n), c, "same tip {tip}, same UTXO commitment");
    }
    assert!(nodes[0].height() >= 10);
    stop_all(&mut nodes);
    eprintln!("propagation: {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn killing_the_bootnode_and_a_miner_does_not_stop_the_network() {
    let started = Instant::now();
    let mut nodes = start_net(5);
    mine(&nodes[1], 3);
    let all: Vec<&TestNode> = nodes.iter().collect();
    wait_converged("initial convergence", &all);
    nodes[0].kill();
    nodes[1].kill();
    mine(&nodes[2], 2);
    // Build on what the other survivor mined, so the result does not hang
    // on a tie between equal-work branches.
    let tip = nodes[2].tip();
    wait_for("survivors relay without the bootnode", CONVERGE, || (nodes[4].tip() == tip).then_some(()));
    mine(&nodes[4], 2);
    let rest: Vec<&TestNode> = nodes[2..].iter().collect();
    let tip = wait_converged("survivors converge", &rest);
    assert_eq!(nodes[2].height(), 7);
    // The dead come back and catch up from the survivors.
    nodes[0].start_again();
    nodes[1].start_again();
    for n in &nodes[..2] {
        // Restarted nodes know their peers from the peer store; nudge with
        // addpeer as well so the test does not depend on redial timing.
        n.rpc("addpeer", json!([nodes[3].p2p_addr()]));
    }
    let all: Vec<&TestNode> = nodes.iter().collect();
    wait_for("restarted nodes catch up", CONVERGE, || (converged(&all)? == tip).then_some(()));
    stop_all(&mut nodes);
    eprintln!("no single point of failure: {:.1}s", started.elapsed().as_secs_f64());
}

fn split(nodes: &[TestNode], left: &[usize], right: &[usize]) {
    for &a in left {
        for &b in right {
            let id = nodes[b].peer_id();
            nodes[a].rpc("banpeer", json!([id, 3600]));
            let id = nodes[a].peer_id();
            nodes[b].rpc("banpeer", json!([id, 3600]));
        }
    }
}

/// Waits until no node of `left` has a connection to a node of `right`.
fn wait_split(nodes: &[TestNode], left: &[usize], right: &[usize]) {
    let right_ids: Vec<String> = right.iter().map(|&b| nodes[b].peer_id()).collect();
    wait_for("the split", CONVERGE, || {
        left.iter()
            .all(|&a| {
                let peers = nodes[a].rpc("getpeerinfo", json!([]));
                peers.as_array().expect("peers").iter().all(|p| !right_ids.iter().any(|id| p["peer_id"] == json!(id)))
            })
            .then_some(())
    });
}

fn heal(nodes: &[TestNode], left: &[usize], right: &[usize]) {
    for &a in left {
        for &b in right {
            nodes[a].rpc("unbanpeer", json!([nodes[b].peer_id()]));
            nodes[b].rpc("unbanpeer", json!([nodes[a].peer_id()]));
        }
    }
    for &a in left {
        nodes[a].rpc("addpeer", json!([nodes[right[0]].p2p_addr()]));
    }
}

#[test]
fn partition_and_heal_ends_on_the_heavier_side_without_losing_coins() {
    let started = Instant::now();
    let mut nodes = start_net(5);
    let alice = TestKey::new();
    nodes[0].rpc("generatetoaddress", json!([2, alice.text]));
    mine(&nodes[0], u64::from(ChainSpec::regtest().coinbase_maturity));
    let all: Vec<&TestNode> = nodes.iter().collect();
    wait_converged("before the split", &all);
    let (left, right) = ([0usize, 1], [2usize, 3, 4]);
    split(&nodes, &left, &right);
    wait_split(&nodes, &left, &right);
    // A payment confirmed only on the lighter side.
    let bob = TestKey::new();
    let (paid, hex) = alice.pay(&alice.coins(&nodes[0])[0], &bob.address, 100_000_000, 10_000);
    nodes[0].rpc("sendrawtransaction", json!([hex]));
    mine(&nodes[0], 2);
    mine(&nodes[2], 4);
    let l: Vec<&TestNode> = left.iter().map(|&i| &nodes[i]).collect();
    let r: Vec<&TestNode> = right.iter().map(|&i| &nodes[i]).collect();
    wait_converged("left side", &l);
    let heavy = wait_converged("right side", &r);
    assert_ne!(nodes[0].tip(), heavy, "the sides diverged");
    // Before the heal the payment is mined on the lighter side's chain, on
    // both of its nodes, and unknown to the heavier side.
    let lost_block = mined_in(&nodes[0], &paid).expect("the payment is mined on the left");
    assert_eq!(mined_in(&nodes[1], &paid), Some(lost_block.clone()), "same block on both left nodes");
    for &i in &right {
        assert_eq!(mined_in(&nodes[i], &paid), None, "node {i} (right) has the left's payment");
    }
    heal(&nodes, &left, &right);
    wait_for("all on the heavier side", CONVERGE, || (converged(&all)? == heavy).then_some(()));
    assert_eq!(nodes[0].rpc("getblockheader", json!([lost_block]))["in_best_chain"], false, "its block lost");
    // The lighter side's payment is back in the mempool, then mined.
    let in_pool = nodes[0].rpc("getrawmempool", json!([]));
    assert!(in_pool.as_array().unwrap().contains(&json!(paid)), "payment re-admitted: {in_pool}");
    mine(&nodes[0], 1);
    wait_for("the payment confirmed everywhere", CONVERGE, || {
        nodes
            .iter()
            .all(|n| {
                n.call("getrawtransaction", json!([paid, true]))
                    .ok()
                    .and_then(|v| v["confirmations"].as_u64())
                    .unwrap_or(0)
                    >= 1
            })
            .then_some(())
    });
    let spec = ChainSpec::regtest();
    for n in &nodes {
        let info = n.rpc("gettxoutsetinfo", json!([]));
        let h = info["height"].as_u64().unwrap() as u32;
        assert_eq!(
            info["total_amount"].as_u64().unwrap(),
            total_supply_at(&spec, Height(h)).units(),
            "no coins created or lost"
        );
    }
    stop_all(&mut nodes);
    eprintln!("partition and heal: {:.1}s", started.elapsed().as_secs_f64());
}

/// Blocks node 0 mines ahead of node 1 in each crash round (kept small:
/// regtest's subsidy runs out after about 4,900 blocks).
const CRASH_BATCH: u64 = 900;

#[test]
fn crashed_node_restarts_consistent_and_catches_up() {
    let started = Instant::now();
    let spec = ChainSpec::regtest();
    let mut nodes = start_net(2);
    let id1 = nodes[1].peer_id();
    // Each round: node 1 is cut off (banned by node 0) while node 0 mines
    // ahead, reconnected, and SIGKILLed partway through its sync (the
    // first block, a third, two thirds of the way); it restarts still cut
    // off, so what it has is what survived the kill.
    let mut mid_sync_kills = Vec::new();
    for (round, fraction) in [0.0, 0.33, 0.66, 0.5].into_iter().enumerate() {
        if mid_sync_kills.len() == 3 {
            break;
        }
        nodes[0].rpc("banpeer", json!([id1, 3600]));
        wait_for("node 1 cut off", CONVERGE, || (connections(&nodes[1]) == 0).then_some(()));
        let start = nodes[1].height();
        mine(&nodes[0], CRASH_BATCH);
        let target = nodes[0].height();
        assert!(target > start + 2, "round {round}: node 0 at {target}, node 1 at {start}");
        nodes[0].rpc("unbanpeer", json!([id1]));
        nodes[1].rpc("addpeer", json!([nodes[0].p2p_addr()]));
        let threshold = start + 1 + ((target - start - 2) as f64 * fraction) as u64;
        // No sleep between polls: a sync of this size takes a fraction of a second.
        let deadline = Instant::now() + CONVERGE;
        let seen = loop {
            let h = nodes[1].height();
            if h >= threshold {
                break h;
            }
            assert!(Instant::now() < deadline, "round {round}: node 1 stuck at {h} of {target}");
        };
        if seen < target {
            nodes[1].kill();
        }
        nodes[0].rpc("banpeer", json!([id1, 3600]));
        if seen >= target {
            eprintln!("round {round}: node 1 finished syncing before the kill; no crash this round");
            continue;
        }
        nodes[1].start_again();
        let after = nodes[1].height();
        assert_eq!(nodes[1].rpc("verifychain", json!([]))["ok"], true, "consistent after kill {round}");
        assert!(after >= seen, "round {round}: blocks connected before the kill were lost ({seen} then {after})");
        let info = nodes[1].rpc("gettxoutsetinfo", json!([]));
        assert_eq!(info["height"], after, "round {round}: the UTXO set is at the chain's height");
        assert_eq!(info["total_amount"], total_supply_at(&spec, Height(after as u32)).units(), "round {round}");
        if after < target {
            // start < seen <= height at the kill <= after < target.
            mid_sync_kills.push((start, seen, after, target));
        } else {
            eprintln!("round {round}: the sync finished between the last poll and the kill");
        }
    }
    eprintln!("kills (start, seen, after restart, target): {mid_sync_kills:?}");
    assert!(mid_sync_kills.len() >= 3, "three SIGKILLs landed mid-sync: {mid_sync_kills:?}");
    // Reconnected, node 1 catches up and agrees on the UTXO set with node 0
    // and with a node that joins now and never crashed.
    nodes[0].rpc("unbanpeer", json!([id1]));
    nodes[1].rpc("addpeer", json!([nodes[0].p2p_addr()]));
    nodes.push(TestNode::start(NodeOptions { bootnodes: vec![nodes[0].p2p_addr()], ..Default::default() }));
    let all: Vec<&TestNode> = nodes.iter().collect();
    let tip = wait_converged("restarted node catches up", &all);
    let reference = nodes[2].rpc("gettxoutsetinfo", json!([]));
    assert_eq!(reference["best_hash"], json!(tip));
    for n in &nodes[..2] {
        assert_eq!(n.rpc("gettxoutsetinfo", json!([])), reference, "same tip, same UTXO set and commitment");
    }
    stop_all(&mut nodes);
    eprintln!("crash and restart: {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn late_joiner_syncs_thousands_of_blocks_from_one_peer() {
    let started = Instant::now();
    let a = TestNode::start(NodeOptions::default());
    let b = TestNode::start(NodeOptions { bootnodes: vec![a.p2p_addr()], ..Default::default() });
    mine(&a, 2000);
    let c = TestNode::start(NodeOptions { bootnodes: vec![b.p2p_addr()], ..Default::default() });
    let tip = a.tip();
    wait_for("b has the chain", Duration::from_secs(300), || (b.tip() == tip).then_some(()));
    let sync_start = Instant::now();
    wait_for("late joiner syncs 2000 blocks", Duration::from_secs(300), || (c.tip() == tip).then_some(()));
    assert_eq!(commitment(&a), commitment(&c));
    let mut nodes = [a, b, c];
    stop_all(&mut nodes);
    eprintln!(
        "late joiner: 2000 blocks in {:.1}s (total {:.1}s)",
        sync_start.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Alice pays bob on the lighter side of a partition and carol, with the
/// same coin, on the heavier side; on the lighter side a child spends
/// bob's payment. After the heal exactly carol's payment stands, the child
/// left every mempool, and the lighter side's miner keeps extending the
/// chain everyone follows.
#[test]
fn double_spend_across_a_partition_leaves_exactly_one_payment() {
    let started = Instant::now();
    let mut nodes = start_net(4);
    let alice = TestKey::new();
    nodes[0].rpc("generatetoaddress", json!([1, alice.text]));
    mine(&nodes[0], u64::from(ChainSpec::regtest().coinbase_maturity));
    let all: Vec<&TestNode> = nodes.iter().collect();
    wait_converged("before the split", &all);
    let (left, right) = ([0usize, 1], [2usize, 3]);
    split(&nodes, &left, &right);
    wait_split(&nodes, &left, &right);
    let coin = alice.coins(&nodes[0])[0].clone();
    let (bob, carol) = (TestKey::new(), TestKey::new());
    let (to_bob, hex_bob) = alice.pay(&coin, &bob.address, 500_000_000, 10_000);
    let (to_carol, hex_carol) = alice.pay(&coin, &carol.address, 700_000_000, 10_000);
    nodes[0].rpc("sendrawtransaction", json!([hex_bob]));
    nodes[2].rpc("sendrawtransaction", json!([hex_carol]));
    mine(&nodes[0], 1);
    mine(&nodes[2], 3);
    let l: Vec<&TestNode> = left.iter().map(|&i| &nodes[i]).collect();
    let r: Vec<&TestNode> = right.iter().map(|&i| &nodes[i]).collect();
    wait_converged("left side", &l);
    wait_converged("right side", &r);
    // On the losing side, a child spends bob's payment (mined there) and
    // waits in both left mempools.
    let bob_coin = bob.coins(&nodes[0]).first().cloned().expect("bob's payment is spendable on the left");
    assert_eq!(bob_coin["txid"], json!(to_bob), "bob's only coin is alice's payment");
    let dave = TestKey::new();
    let (child, hex_child) = bob.pay(&bob_coin, &dave.address, 200_000_000, 10_000);
    nodes[0].rpc("sendrawtransaction", json!([hex_child]));
    wait_for("the child in both left mempools", CONVERGE, || {
        left.iter()
            .all(|&i| nodes[i].rpc("getrawmempool", json!([])).as_array().is_some_and(|p| p.contains(&json!(child))))
            .then_some(())
    });
    // Before the heal each side has mined its own payment, and only its own.
    let bob_block = mined_in(&nodes[0], &to_bob).expect("bob's payment is mined on the left");
    let carol_block = mined_in(&nodes[2], &to_carol).expect("carol's payment is mined on the right");
    for (side, own, own_block, other) in
        [(&left, &to_bob, &bob_block, &to_carol), (&right, &to_carol, &carol_block, &to_bob)]
    {
        for &i in side.iter() {
            assert_eq!(mined_in(&nodes[i], own).as_ref(), Some(own_block), "node {i}: its side's payment");
            assert_eq!(mined_in(&nodes[i], other), None, "node {i}: the other side's payment");
        }
    }
    heal(&nodes, &left, &right);
    let tip = wait_converged("healed", &all);
    let confirmed = |txid: &str| {
        nodes[0]
            .call("getrawtransaction", json!([txid, true]))
            .ok()
            .and_then(|v| v["confirmations"].as_u64())
            .unwrap_or(0)
            >= 1
    };
    assert!(confirmed(&to_carol), "the heavier side's payment survives");
    assert!(!confirmed(&to_bob), "the conflicting payment does not");
    for n in &nodes {
        assert_eq!(n.tip(), tip);
        assert!(!n.rpc("getrawmempool", json!([])).as_array().unwrap().contains(&json!(to_bob)));
        assert_eq!(n.rpc("getbalance", json!([carol.text]))["confirmed"], 700_000_000);
        assert_eq!(n.rpc("getbalance", json!([bob.text]))["confirmed"], 0);
        // The right side may never have fetched the lighter branch at all.
        let bob_header = n.call("getblockheader", json!([bob_block]));
        assert!(bob_header.map_or(true, |h| h["in_best_chain"] == false), "bob's block lost");
        assert_eq!(mined_in(n, &to_carol), Some(carol_block.clone()), "carol's payment stays in its block");
    }
    // The child of the losing payment lost its input: it left every
    // mempool (the left ones held it) and is confirmed nowhere.
    for (i, n) in nodes.iter().enumerate() {
        let pool = n.rpc("getrawmempool", json!([]));
        assert!(
            !pool.as_array().expect("mempool").contains(&json!(child)),
            "node {i} keeps the orphaned child: {pool}"
        );
        assert_eq!(mined_in(n, &child), None, "node {i} confirms the orphaned child");
        assert_eq!(n.rpc("getbalance", json!([dave.text]))["confirmed"], 0);
    }
    // The losing side's miner keeps extending the chain everyone follows:
    // no template of it carries the child (a block with it would be refused).
    let before = nodes[0].height();
    let mined = nodes[0].rpc("generatetoaddress", json!([3, burn_address(&nodes[0])]));
    assert_eq!(mined.as_array().map(Vec::len), Some(3), "three blocks mined on the losing side: {mined}");
    let new_tip = mined[2].as_str().expect("hash").to_string();
    wait_for("the losing side's blocks to be everyone's tip", CONVERGE, || (converged(&all)? == new_tip).then_some(()));
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n.height(), before + 3, "node {i}");
        assert_eq!(mined_in(n, &child), None, "node {i} confirms the orphaned child");
        assert_eq!(mined_in(n, &to_carol), Some(carol_block.clone()), "node {i}: carol's payment stays");
        assert!(!n.rpc("getrawmempool", json!([])).as_array().expect("mempool").contains(&json!(child)));
    }
    stop_all(&mut nodes);
    eprintln!("double spend across a partition: {:.1}s", started.elapsed().as_secs_f64());
}
