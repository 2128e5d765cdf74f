//! A hostile miner (`lode-hostile-miner`: real proof of work, one libp2p
//! identity per process) publishes on gossip blocks the acceptance and
//! relay policy (docs/protocol.md) must keep off the network, against two
//! real nodes in a line: hostile → A → B, B never connected to it.
//!
//! - low-work side-branch blocks: valid, but forking well below the tip;
//!   stored by nobody, relayed by nobody, and no fault of the sender's;
//! - blocks that fail only against the UTXO set (an overpaying coinbase, a
//!   spend of an output that never existed): refused and marked invalid on
//!   A, never seen by B, the sender banned;
//! - blocks stamped around the future limit: just inside it is accepted and
//!   relayed, beyond it is deferred (not stored) without a penalty.
//!
//! Each wait for "nothing happened" is closed by a barrier: a later message
//! on the same path (the hostile miner's next block, or A's next block to
//! B) that must arrive, so the earlier one was processed before it.

use lode_core::codec::{Decode, Encode};
use lode_core::validation::median_time_past;
use lode_core::{Block, ChainSpec};
use lode_tests::{bin, burn_address, wait_for, NodeOptions, TestNode};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Deadline for anything that should happen on loopback.
const SOON: Duration = Duration::from_secs(20);

/// A running `lode-hostile-miner`, killed if the test fails first.
struct HostileMiner {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Its peer id.
    id: String,
    /// Whether it said it lost its connection to the node.
    disconnected: bool,
    /// Whether it said it was connected.
    connected: bool,
}

impl Drop for HostileMiner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HostileMiner {
    /// Starts one dialling `target`, and waits until `target` lists it as
    /// a peer.
    fn start(target: &TestNode) -> HostileMiner {
        let mut child = Command::new(bin("lode-hostile-miner"))
            .arg(target.p2p_addr())
            .arg("regtest")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lode-hostile-miner");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let id = lines.recv_timeout(SOON).expect("lode-hostile-miner prints its peer id");
        assert!(id.starts_with("12D3"), "peer id {id:?}");
        let mut m = HostileMiner { child, stdin, lines, id, disconnected: false, connected: false };
        let id = m.id.clone();
        wait_for("the hostile miner and the node to see their connection", SOON, || {
            m.drain();
            assert!(!m.disconnected, "the node cut the hostile miner off before it sent anything");
            (m.connected && peer_listed(target, &id)).then_some(())
        });
        m
    }

    fn note(&mut self, line: &str) {
        match line {
            "connected" => self.connected = true,
            "disconnected" => self.disconnected = true,
            _ => {}
        }
    }

    /// Reads what it printed so far.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.note(&line);
        }
    }

    /// The next line that is not a connection event.
    fn next_line(&mut self, what: &str) -> String {
        let deadline = Instant::now() + SOON;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == "connected" || line == "disconnected" => {
                    self.note(&line);
                    assert!(!self.disconnected, "the node cut the hostile miner off while it waited for {what}");
                }
                Ok(line) => return line,
                Err(RecvTimeoutError::Timeout) => panic!("timed out after {SOON:?} waiting for {what}"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("lode-hostile-miner exited ({:?}) before {what}", self.child.try_wait())
                }
            }
        }
    }

    /// Mines a block of `kind` (see the binary's docs) on `at` and
    /// publishes it; returns it once it is handed to gossip.
    fn mine(&mut self, kind: &str, at: &Next, time: u64) -> Block {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "mine {kind} {} {} {time} {}", at.parent, at.height, at.bits).expect("write a command");
        let line = self.next_line("the mined block");
        let parts: Vec<&str> = line.split(' ').collect();
        let [word, hash, hex] = parts[..] else { panic!("lode-hostile-miner: {line}") };
        assert_eq!(word, "block", "lode-hostile-miner: {line}");
        let block =
            Block::decode_all(&hex::decode(hex).expect("block hex"), 4_000_000).expect("the mined block decodes");
        assert_eq!(block.hash().to_hex(), hash);
        let line = self.next_line("the block published");
        assert_eq!(line, format!("published {hash}"), "lode-hostile-miner could not publish");
        block
    }

    /// Asks it to exit and checks it did so cleanly.
    fn quit(mut self) -> ExitStatus {
        drop(self.stdin.take());
        let status = wait_for("lode-hostile-miner to exit", SOON, || self.child.try_wait().ok().flatten());
        assert!(status.success(), "lode-hostile-miner exited with {status}");
        status
    }
}

/// Where the next block on some parent goes: its parent, height, bits and
/// the earliest time it may carry.
struct Next {
    parent: String,
    height: u64,
    bits: String,
    /// Median time past of the parent's last 11 blocks, plus one.
    min_time: u64,
}

/// The next block on `node`'s active block at `height`.
fn next_on(node: &TestNode, height: u64) -> Next {
    let parent = node.rpc("getblockhash", json!([height])).as_str().expect("hash").to_string();
    let header = node.rpc("getblockheader", json!([parent]));
    let times: Vec<u64> = (height.saturating_sub(10)..=height)
        .map(|h| {
            let hash = node.rpc("getblockhash", json!([h]));
            node.rpc("getblockheader", json!([hash]))["time"].as_u64().expect("time")
        })
        .collect();
    Next {
        parent,
        height: height + 1,
        bits: header["bits"].as_str().expect("bits").to_string(),
        min_time: median_time_past(&times) + 1,
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn peer_listed(node: &TestNode, id: &str) -> bool {
    node.rpc("getpeerinfo", json!([])).as_array().expect("peers").iter().any(|p| p["peer_id"] == json!(id))
}

fn banned(node: &TestNode, id: &str) -> bool {
    node.rpc("listbanned", json!([])).as_array().expect("bans").iter().any(|p| p["peer_id"] == json!(id))
}

/// Asserts `node` holds neither the body nor the header of `hash`: the
/// errors must name the block (not a transport failure).
fn assert_not_stored(node: &TestNode, name: &str, hash: &str, what: &str) {
    for method in ["getblock", "getblockheader"] {
        match node.call(method, json!([hash])) {
            Ok(v) => panic!("{name} stored {what} {hash}: {method} answered {v}"),
            Err(e) => assert!(e.message.contains(hash), "{name}: {method} {hash} failed for another reason: {e:?}"),
        }
    }
}

/// A on its own, B bootstrapped from A, both on `blocks` blocks that A mined.
fn line_of_two(blocks: u64) -> (TestNode, TestNode) {
    let a = TestNode::start(NodeOptions::default());
    let b = TestNode::start(NodeOptions { bootnodes: vec![a.p2p_addr()], ..Default::default() });
    wait_for("b to connect to a", SOON, || peer_listed(&a, &b.peer_id()).then_some(()));
    a.rpc("generatetoaddress", json!([blocks, burn_address(&a)]));
    let tip = a.tip();
    wait_for("b to have a's blocks", SOON, || (b.tip() == tip).then_some(()));
    (a, b)
}

/// Mines one block on A and waits for B to have it: whatever A was going
/// to forward to B before it, B has been offered by now.
fn barrier_through_a(a: &TestNode, b: &TestNode) -> String {
    a.rpc("generatetoaddress", json!([1, burn_address(a)]));
    let tip = a.tip();
    wait_for("a's next block to reach b", SOON, || (b.tip() == tip).then_some(()));
    tip
}

/// Low-work side-branch blocks: each valid (coinbase, merkle root, proof
/// of work, time, bits) and built on an ancestor well below the tip, so
/// its branch has less work than the tip. Neither A (which got them) nor
/// B (two hops away) stores one, and the sender stays connected and
/// unbanned; the same blocks handed to A over RPC are stored, so their
/// low work alone kept them out.
///
/// Would catch: a node storing unrequested low-work blocks (Core's
/// `AcceptBlock` rule: `getblock`/`getblockheader` on A answer), relaying
/// them (B would have offered them and, storing them too, answer), or
/// penalising their sender (it would be banned or cut off).
#[test]
fn low_work_side_branch_blocks_are_neither_stored_nor_relayed_nor_punished() {
    let started = Instant::now();
    let (mut a, mut b) = line_of_two(8);
    let mut hostile = HostileMiner::start(&a);
    assert!(!peer_listed(&b, &hostile.id), "b must reach the hostile miner only through a");

    // Side branches off heights 0, 2 and 4 of an 8-block chain.
    let mut low = Vec::new();
    for fork in [0u64, 2, 4] {
        let at = next_on(&a, fork);
        low.push(hostile.mine("valid", &at, at.min_time.max(now())));
    }
    // Barrier: a valid block on the tip from the same sender, after them on
    // the same connection. It has more work than the tip: accepted, relayed.
    let tip_before = a.tip();
    let at = next_on(&a, a.height());
    let good = hostile.mine("valid", &at, at.min_time.max(now())).hash().to_hex();
    wait_for("the hostile miner's tip block to reach b through a", SOON, || (b.tip() == good).then_some(()));
    assert_eq!(a.tip(), good);
    assert_eq!(a.rpc("getblockheader", json!([good]))["prev_hash"], json!(tip_before));

    for block in &low {
        let hash = block.hash().to_hex();
        assert_not_stored(&a, "a (the receiver)", &hash, "a low-work block");
        assert_not_stored(&b, "b (two hops away)", &hash, "a low-work block");
    }
    hostile.drain();
    assert!(!hostile.disconnected, "the sender of low-work blocks was cut off");
    assert!(peer_listed(&a, &hostile.id), "the sender of low-work blocks is still a peer of a");
    assert!(!banned(&a, &hostile.id), "the sender of low-work blocks was banned");

    // Control: the blocks are valid. Requested (submitblock), each is
    // stored on a side branch; B, never offered it, still lacks it.
    for block in &low {
        let hash = block.hash().to_hex();
        let answer = a.rpc("submitblock", json!([hex::encode(block.encode())]));
        assert_eq!(answer, json!("inconclusive"), "{hash} is a valid side-branch block");
        let stored = a.rpc("getblock", json!([hash]));
        assert_eq!(stored["in_best_chain"], false);
        assert_not_stored(&b, "b", &hash, "a side-branch block a holds");
    }
    assert_eq!(a.tip(), good, "side branches did not move the tip");
    assert!(peer_listed(&a, &hostile.id));
    hostile.quit();
    a.stop();
    b.stop();
    eprintln!("low-work side branches: {:.1}s", started.elapsed().as_secs_f64());
}

/// Gives `c` (a node with no peers) every block of `a`'s active chain it
/// lacks, by `submitblock`.
fn copy_chain(a: &TestNode, c: &TestNode) {
    for h in c.height() + 1..=a.height() {
        let hash = a.rpc("getblockhash", json!([h]));
        let hex = a.rpc("getblock", json!([hash, false]));
        assert_eq!(c.rpc("submitblock", json!([hex])), Value::Null, "block {h} connects on c");
    }
    assert_eq!(c.tip(), a.tip());
}

/// What A and B say about a block that fails connection; `c` (no peers)
/// confirms, given the block over RPC, that it fails for `rule`.
fn check_refused_block(a: &TestNode, b: &TestNode, c: &TestNode, block: &Block, tip: &str, rule: &str) {
    let hash = block.hash().to_hex();
    assert_eq!(a.tip(), tip, "{hash} did not move a's tip");
    // A judged it on its body: the header is there, on no chain, invalid.
    let header = a.rpc("getblockheader", json!([hash]));
    assert_eq!(header["in_best_chain"], false, "{header}");
    let tips = a.rpc("getchaintips", json!([]));
    let listed = tips.as_array().expect("tips").iter().find(|t| t["hash"] == json!(hash));
    assert_eq!(listed.map(|t| t["status"].clone()), Some(json!("invalid")), "a's getchaintips: {tips}");
    if let Ok(body) = a.call("getblock", json!([hash])) {
        assert_eq!(body["in_best_chain"], false, "a keeps the body, off the chain: {body}");
    }
    // Control: on A's chain, it fails for exactly this rule.
    copy_chain(a, c);
    match c.call("submitblock", json!([hex::encode(block.encode())])) {
        Ok(v) => panic!("c accepted {hash}: {v}"),
        Err(e) => assert!(e.message.contains(rule), "{hash} refused for {:?}, expected {rule:?}", e.message),
    }
    // B was never offered it: A's next block reached B, this one did not.
    let next = barrier_through_a(a, b);
    assert_not_stored(b, "b (two hops away)", &hash, "a block that fails connection");
    assert_eq!(b.rpc("getblockheader", json!([next]))["prev_hash"], json!(tip), "a's next block is on the old tip");
}

/// Blocks on the honest tip that pass every header and context-free body
/// rule but fail against the UTXO set: one whose coinbase pays one unit
/// more than the subsidy, one spending an output that never existed, each
/// from its own hostile identity. A refuses each (its tip stays, it lists
/// the block as an invalid chain tip), B never gets it (not even stored),
/// and A bans the sender and cuts it off. Control: a third node with no
/// peers, given A's chain and then the block over RPC, refuses it naming
/// exactly the rule it breaks.
///
/// Would catch: a node connecting such a block (a's tip would move,
/// getchaintips would not say invalid), relaying it before connecting it
/// (B would hold the body), or not penalising its sender (no ban, no
/// disconnect).
#[test]
fn blocks_failing_connection_are_refused_not_relayed_and_their_sender_banned() {
    let started = Instant::now();
    let (mut a, mut b) = line_of_two(3);
    let mut c = TestNode::start(NodeOptions::default());
    for (kind, rule) in [("overpay", "coinbase pays"), ("missing-input", "missing or already spent")] {
        let mut hostile = HostileMiner::start(&a);
        assert!(!peer_listed(&b, &hostile.id), "b must reach the hostile miner only through a");
        let tip = a.tip();
        let at = next_on(&a, a.height());
        let block = hostile.mine(kind, &at, at.min_time.max(now()));
        let hash = block.hash().to_hex();
        wait_for(&format!("a to cut off the sender of the {kind} block"), SOON, || {
            assert_ne!(a.tip(), hash, "a connected the {kind} block");
            hostile.drain();
            hostile.disconnected.then_some(())
        });
        wait_for(&format!("a to list the {kind} sender as banned"), SOON, || banned(&a, &hostile.id).then_some(()));
        assert!(!peer_listed(&a, &hostile.id), "the {kind} sender is no longer a peer");
        check_refused_block(&a, &b, &c, &block, &tip, rule);
        hostile.quit();
    }
    // The honest pair carries on.
    let tip = barrier_through_a(&a, &b);
    assert_eq!(b.tip(), tip);
    assert_eq!(c.rpc("getnetworkinfo", json!([]))["connections"], 0, "c had no peers");
    a.stop();
    b.stop();
    c.stop();
    eprintln!("blocks failing connection: {:.1}s", started.elapsed().as_secs_f64());
}

/// Blocks stamped around the future limit (`max_future_block_secs`,
/// 7200 s on regtest), from one hostile identity: one a minute inside the
/// limit is accepted and relayed to B; one ten minutes beyond it, on top,
/// is deferred (stored nowhere) and costs its sender nothing; a sibling
/// of it stamped inside the limit, sent after it, is accepted and
/// relayed; the honest nodes keep mining on top.
///
/// Would catch: a node refusing blocks inside the limit (or checking it
/// against something else than its clock), storing or relaying blocks
/// beyond it, or treating them as invalid (the sender would be banned and
/// the sibling never arrive).
#[test]
fn blocks_at_the_future_limit_inside_relayed_beyond_deferred_without_penalty() {
    let started = Instant::now();
    let limit = ChainSpec::regtest().max_future_block_secs;
    assert_eq!(limit, 7200, "regtest's future limit");
    let (mut a, mut b) = line_of_two(3);
    let mut hostile = HostileMiner::start(&a);
    assert!(!peer_listed(&b, &hostile.id), "b must reach the hostile miner only through a");

    let at = next_on(&a, a.height());
    let inside_time = now() + limit - 60;
    let inside = hostile.mine("valid", &at, inside_time).hash().to_hex();
    wait_for("the block a minute inside the limit to reach b", SOON, || (b.tip() == inside).then_some(()));
    assert_eq!(a.tip(), inside);

    let at = next_on(&a, a.height());
    assert_eq!(at.parent, inside);
    let beyond_time = now() + limit + 600;
    let beyond = hostile.mine("valid", &at, beyond_time).hash().to_hex();
    // Barrier: a sibling inside the limit, after it on the same connection.
    let sibling = hostile.mine("valid", &at, inside_time + 1).hash().to_hex();
    wait_for("the sibling inside the limit to reach b", SOON, || {
        hostile.drain();
        assert!(!hostile.disconnected, "the node cut off the sender of a block beyond the future limit");
        assert!(a.call("getblockheader", json!([beyond])).is_err(), "a stored the block beyond the future limit");
        (b.tip() == sibling).then_some(())
    });
    assert_eq!(a.tip(), sibling);
    assert_not_stored(&a, "a (the receiver)", &beyond, "a block beyond the future limit");
    assert_not_stored(&b, "b (two hops away)", &beyond, "a block beyond the future limit");
    assert!(!banned(&a, &hostile.id), "the sender of a future block was banned");
    assert!(peer_listed(&a, &hostile.id), "the sender of a future block is still a peer");
    let tips = a.rpc("getchaintips", json!([]));
    assert!(
        !tips.as_array().expect("tips").iter().any(|t| t["status"] == json!("invalid")),
        "nothing was marked invalid: {tips}"
    );

    // Honest mining carries on above the future-stamped blocks.
    let tip = barrier_through_a(&a, &b);
    assert_eq!(a.rpc("getblockheader", json!([tip]))["prev_hash"], json!(sibling));
    let header: Value = a.rpc("getblockheader", json!([inside]));
    assert_eq!(header["time"], json!(inside_time));
    hostile.quit();
    a.stop();
    b.stop();
    eprintln!("future limit: {:.1}s", started.elapsed().as_secs_f64());
}
