//! Peer messages into the running p2p service (issue 14 item 4): the real
//! service over a mock chain, on loopback, fed a fuzzer-chosen sequence of
//! messages from several fake peers — any bytes on the gossip topics,
//! blocks with valid proof of work on competing branches (some with a
//! wrong merkle root), transactions, any sync request, compact blocks
//! (any bytes, or the compact form of a branch's next block) and compact
//! relay requests, peers replaced by
//! fresh identities (evicting others: the service has fewer inbound slots
//! than there are fake peers). Never a panic; after every message every
//! queue of the service is within its bound, and once the peers are
//! silent every backlog drains to zero. One service lives across inputs,
//! as a node lives across messages.

use arbitrary::{Arbitrary, Unstructured};
use lode_node::p2p::fuzzing::{Action, Harness};
use std::sync::{Mutex, OnceLock};

/// Most actions one input runs.
const MAX_ACTIONS: usize = 32;

#[derive(Arbitrary, Debug)]
enum Step {
    Publish { peer: u8, blocks: bool, data: Vec<u8> },
    Block { peer: u8, branch: u8, bad_merkle: bool },
    Fork { branch: u8 },
    Tx { peer: u8, tag: u32, inputs: u8 },
    Request { peer: u8, bytes: Vec<u8> },
    Replace { peer: u8 },
    Pause { ms: u8 },
    PublishCompact { peer: u8, data: Vec<u8> },
    CompactBlock { peer: u8, branch: u8, nonce: u64 },
    CompactRequest { peer: u8, bytes: Vec<u8> },
}

impl From<Step> for Action {
    fn from(s: Step) -> Action {
        match s {
            Step::Publish { peer, blocks, data } => Action::Publish { peer, blocks, data },
            Step::Block { peer, branch, bad_merkle } => Action::Block { peer, branch, bad_merkle },
            Step::Fork { branch } => Action::Fork { branch },
            // At most 64 inputs: the size limits are the decoders' target.
            Step::Tx { peer, tag, inputs } => Action::Tx { peer, tag, inputs: inputs % 64 },
            Step::Request { peer, bytes } => Action::Request { peer, bytes },
            Step::Replace { peer } => Action::Replace { peer },
            Step::Pause { ms } => Action::Pause { ms: ms % 50 },
            Step::PublishCompact { peer, data } => Action::PublishCompact { peer, data },
            Step::CompactBlock { peer, branch, nonce } => Action::CompactBlock { peer, branch, nonce },
            Step::CompactRequest { peer, bytes } => Action::CompactRequest { peer, bytes },
        }
    }
}

struct Running {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    harness: Mutex<Harness>,
}

fn running() -> &'static Running {
    static R: OnceLock<Running> = OnceLock::new();
    R.get_or_init(|| {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
        let dir = tempfile::tempdir().expect("a temporary folder");
        let harness = runtime.block_on(Harness::start(dir.path()));
        Running { _dir: dir, runtime, harness: Mutex::new(harness) }
    })
}

/// The actions an input encodes.
pub fn actions(data: &[u8]) -> Vec<Action> {
    let mut u = Unstructured::new(data);
    let mut out = Vec::new();
    while out.len() < MAX_ACTIONS && !u.is_empty() {
        match Step::arbitrary(&mut u) {
            Ok(s) => out.push(s.into()),
            Err(_) => break,
        }
    }
    out
}

/// The fuzz entry point.
pub fn run(data: &[u8]) {
    let actions = actions(data);
    if actions.is_empty() {
        return;
    }
    let r = running();
    // A panic in an earlier input poisons the lock; the fuzzer stops
    // there anyway, and the replay test runs each input on its own.
    let mut h = r.harness.lock().unwrap_or_else(|e| e.into_inner());
    r.runtime.block_on(h.run(&actions));
}
