//! Header sync against the anti-DoS work threshold, with real processes: a
//! heavier branch that forks deeper than the threshold reaches still wins,
//! its first light batches checked and held, not stored, until the rest
//! arrives.

use lode_tests::{burn_address, wait_for, NodeOptions, TestNode};
use serde_json::json;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(120);

fn mine(n: &TestNode, blocks: u64) {
    let addr = burn_address(n);
    let mut left = blocks;
    while left > 0 {
        let step = left.min(1000);
        n.rpc("generatetoaddress", json!([step, addr]));
        left -= step;
    }
}

#[test]
fn a_heavier_branch_forking_below_the_threshold_still_wins_through_held_headers() {
    // Two chains from genesis, mined apart: ours 2,600 blocks, theirs 2,700.
    // Their first batch of 2,000 headers ends 600 blocks below our tip,
    // far more than the 144 the threshold allows, so it is held; the
    // second batch carries the branch past our tip and all of it is stored.
    let ours = TestNode::start(NodeOptions::default());
    let theirs = TestNode::start(NodeOptions::default());
    mine(&ours, 2_600);
    mine(&theirs, 2_700);
    let their_tip = theirs.tip();
    assert_ne!(ours.tip(), their_tip);
    ours.rpc("addpeer", json!([theirs.p2p_addr()]));
    wait_for("our node to take the heavier branch", DEADLINE, || (ours.tip() == their_tip).then_some(()));
    assert_eq!(ours.height(), 2_700);
    let tips = ours.rpc("getchaintips", json!([]));
    let tips = tips.as_array().expect("tips");
    assert_eq!(tips[0]["status"], "active");
    assert_eq!(tips[0]["hash"], json!(their_tip));
    let old = tips.iter().find(|t| t["height"] == 2_600).expect("our old branch is a tip");
    assert_eq!(old["status"], "valid-fork");
    assert_eq!(old["branchlen"], 2_600);
}
