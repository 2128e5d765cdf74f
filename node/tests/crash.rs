//! Crash safety: a child process imports a generated chain and is killed
//! with SIGKILL at random moments, at least 20 times. After every kill the
//! database must open, and its UTXO set must equal the one rebuilt by
//! replaying its own best chain. (Own `main`: the same binary is both the
//! parent test and the child importer.)

use lode_core::codec::{Decode, Encode};
use lode_core::crypto::SigCache;
use lode_core::subsidy::block_subsidy;
use lode_core::validation::{connect_block, ConnectContext};
use lode_core::{Block, ChainSpec, Height};
use lode_node::chain::{Chain, ChainConfig};
use lode_node::testkit::ChainBuilder;
use rand::Rng;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "LODE_CRASH_CHILD_DIR";
const KILLS: usize = 24;

fn open(dir: &Path) -> Chain {
    match Chain::open(dir, ChainSpec::regtest(), Arc::new(SigCache::new(100_000)), ChainConfig::default()) {
        Ok(c) => c,
        Err(e) => panic!("database did not reopen after a kill: {e}"),
    }
}

fn read_blocks(path: &Path) -> Vec<Block> {
    let bytes = std::fs::read(path).expect("blocks file");
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        pos += 4;
        out.push(Block::decode_all(&bytes[pos..pos + len], len).expect("block"));
        pos += len;
    }
    out
}

fn child(dir: &Path) {
    let blocks = read_blocks(&dir.join("blocks.bin"));
    let mut chain = open(&dir.join("db"));
    for b in blocks {
        if let Err(e) = chain.accept_block(b) {
            eprintln!("child: {e}");
            std::process::exit(2);
        }
    }
    std::process::exit(0);
}

fn check_consistent(chain: &Chain) {
    let spec = chain.spec().clone();
    let mut utxo = HashMap::new();
    for h in 1..=chain.state().height.0 {
        let hash = chain.hash_at(Height(h)).expect("active hash");
        let block = chain.store().block(&hash).expect("read").expect("body");
        let ctx = ConnectContext {
            genesis: spec.genesis_hash(),
            coinbase_maturity: spec.coinbase_maturity,
            subsidy: block_subsidy(&spec, Height(h)),
        };
        let out = connect_block(&block, Height(h), &ctx, &utxo, None).expect("replay");
        for (op, _) in out.spent {
            utxo.remove(&op);
        }
        utxo.extend(out.created);
    }
    let stored: HashMap<_, _> = chain.store().all_coins().expect("coins").into_iter().collect();
    assert_eq!(stored.len(), utxo.len(), "UTXO count differs from replay at height {}", chain.state().height);
    assert!(stored == utxo, "UTXO set differs from replay at height {}", chain.state().height);
    let report = chain.verify_integrity().expect("integrity");
    assert!(report.ok, "{report:?}");
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let blocks = builder.blocks(400, 40);
    let mut file = Vec::new();
    for b in &blocks {
        let enc = b.encode();
        file.extend_from_slice(&(enc.len() as u32).to_le_bytes());
        file.extend_from_slice(&enc);
    }
    std::fs::write(tmp.path().join("blocks.bin"), file).expect("write blocks");
    let exe = std::env::current_exe().expect("current exe");
    let mut rng = rand::thread_rng();
    let mut kills = 0;
    let mut heights = Vec::new();
    while kills < KILLS {
        let mut child =
            Command::new(&exe).env(CHILD_ENV, tmp.path()).stdout(Stdio::null()).spawn().expect("spawn child");
        let wait = Duration::from_millis(rng.gen_range(20..400));
        let deadline = Instant::now() + wait;
        let mut finished = false;
        while Instant::now() < deadline {
            if child.try_wait().expect("try_wait").is_some() {
                finished = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if !finished {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait();
        let chain = open(&tmp.path().join("db"));
        check_consistent(&chain);
        heights.push(chain.state().height.0);
        if finished {
            // Imported everything before we could kill it: start over.
            assert_eq!(chain.state().tip, builder.tip());
            drop(chain);
            std::fs::remove_dir_all(tmp.path().join("db")).expect("reset db");
        }
    }
    // Let the last run finish and check the final tip.
    let status = Command::new(&exe).env(CHILD_ENV, tmp.path()).status().expect("final child");
    assert!(status.success());
    let chain = open(&tmp.path().join("db"));
    assert_eq!(chain.state().tip, builder.tip());
    check_consistent(&chain);
    println!(
        "crash test: {kills} kills at heights {heights:?}, consistent after each ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    println!("1 passed, 0 failed");
}
