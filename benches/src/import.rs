//! Import of the standard workload into RocksDB, in process, and a reorg
//! against connecting the same blocks.

use crate::figures::{cores, interleave, Report, Rounds};
use lode_core::crypto::SigCache;
use lode_core::subsidy::block_subsidy;
use lode_core::validation::{connect_block_deferred, Coin, ConnectContext, PendingConnect};
use lode_core::{Block, ChainSpec, Hash256, Height, OutPoint};
use lode_node::chain::{Chain, ChainConfig};
use lode_node::testkit::ChainBuilder;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The standard import workload: blocks and their tip.
pub struct Workload {
    /// The blocks, genesis excluded.
    pub blocks: Vec<Block>,
    /// The last block's hash.
    pub tip: Hash256,
    /// Non-coinbase transactions in all blocks.
    pub txs: usize,
}

/// Blocks and transactions per block of the standard workload.
pub fn standard_size(report: &Report) -> (usize, usize) {
    if report.quick {
        (200, 50)
    } else {
        (2000, 200)
    }
}

/// The standard workload (2,000 blocks of up to 200 one-input spends),
/// generated once per run and shared by import and sync.
pub fn standard(report: &Report) -> &'static Workload {
    static W: OnceLock<Workload> = OnceLock::new();
    W.get_or_init(|| {
        let (n, txs) = standard_size(report);
        let mut builder = ChainBuilder::new(ChainSpec::regtest());
        let gen = Instant::now();
        let blocks = builder.blocks(n, txs);
        let total = blocks.iter().map(|b| b.transactions.len() - 1).sum();
        eprintln!("  generated {n} blocks, {total} transactions in {:.1}s", gen.elapsed().as_secs_f64());
        Workload { blocks, tip: builder.tip(), txs: total }
    })
}

/// Opens a chain in `dir` the way the node does (sig cache of `cache`).
pub fn open_chain(dir: &Path, cache: usize) -> Chain {
    Chain::open(dir, ChainSpec::regtest(), Arc::new(SigCache::new(cache)), ChainConfig::default()).expect("open chain")
}

/// Blocks handed to the chain at once, as sync hands over a run of
/// downloaded blocks (`NetworkChain::submit_blocks`): consecutive blocks
/// of a run connect through the import pipeline.
pub const IMPORT_RUN: usize = 16;

/// Imports `blocks` into a new chain in `dir` in runs of [`IMPORT_RUN`]
/// and flushes it; returns the seconds taken (open excluded, flush
/// included: a pipeline that defers its writes must not look faster for it).
pub fn import_into(dir: &Path, blocks: &[Block]) -> f64 {
    let mut chain = open_chain(dir, 1000);
    let start = Instant::now();
    for run in blocks.chunks(IMPORT_RUN) {
        let (results, _) = chain.accept_blocks(run.to_vec());
        for r in results {
            r.expect("import");
        }
    }
    chain.flush().expect("flush");
    start.elapsed().as_secs_f64()
}

/// Blocks of the standard workload whose signatures the import bound
/// verifies (their checks stay in memory for every round).
const BOUND_BLOCKS: usize = 250;

/// The workload's first blocks as block connection prepares them: each
/// block's signature checks, ready to verify, and its transaction count.
fn prepared_blocks(w: &Workload) -> &'static [(PendingConnect, usize)] {
    static P: OnceLock<Vec<(PendingConnect, usize)>> = OnceLock::new();
    P.get_or_init(|| {
        let spec = ChainSpec::regtest();
        let mut utxo: HashMap<OutPoint, Coin> = HashMap::new();
        let mut out = Vec::new();
        for (i, block) in w.blocks.iter().enumerate() {
            let height = Height(i as u32 + 1);
            let ctx = ConnectContext {
                genesis: spec.genesis_hash(),
                coinbase_maturity: spec.coinbase_maturity,
                subsidy: block_subsidy(&spec, height),
            };
            let pending = connect_block_deferred(block, height, &ctx, &utxo).expect("workload block connects");
            for (op, _) in &pending.outcome.spent {
                utxo.remove(op);
            }
            utxo.extend(pending.outcome.created.iter().copied());
            if block.transactions.len() > 1 {
                out.push((pending, block.transactions.len() - 1));
            }
            if out.len() == BOUND_BLOCKS.min(w.blocks.len()) {
                break;
            }
        }
        out
    })
}

/// The import bound: cores × the rate at which one core verifies the
/// workload's signatures exactly as block connection does (each block's
/// checks as one batch, `PendingConnect::verify`, no cache), in tx/s.
/// Single `verify` is no bound for import: blocks verify in batches.
pub fn import_bound(report: &Report) -> f64 {
    let blocks = prepared_blocks(standard(report));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("1-thread pool");
    let start = Instant::now();
    let txs: usize = pool.install(|| {
        blocks
            .iter()
            .map(|(p, txs)| {
                p.verify(None).expect("valid signatures");
                txs
            })
            .sum()
    });
    cores() as f64 * txs as f64 / start.elapsed().as_secs_f64()
}

/// Import of the standard workload against the signature bound.
pub fn import(report: &mut Report) {
    eprintln!("import");
    let w = standard(report);
    let n = w.blocks.len();
    let mut seconds = Vec::new();
    let rounds = interleave(
        report.rounds(),
        || import_bound(report),
        || {
            let dir = tempfile::tempdir().expect("tempdir");
            let t = import_into(dir.path(), &w.blocks);
            seconds.push(t);
            let chain = open_chain(dir.path(), 10);
            assert_eq!(chain.state().tip, w.tip, "the whole workload connected");
            w.txs as f64 / t
        },
    );
    report.add_rounds(
        "import.tx_per_s",
        &format!("import {n} blocks × ~{} tx into RocksDB, runs of {IMPORT_RUN}", w.txs / n.max(1)),
        "tx/s",
        "cores × 1-core batch verify rate (each block's signatures as one batch, as block connection verifies them)",
        &rounds,
    );
    let blocks_per_s: Vec<f64> = seconds.iter().map(|t| n as f64 / t).collect();
    report.detail(
        "import.tx_per_s",
        json!({"blocks": n, "transactions": w.txs, "seconds": seconds, "blocks_per_s": blocks_per_s}),
    );
}

/// A reorg of `depth` blocks against connecting the same blocks.
pub fn reorg(report: &mut Report) {
    eprintln!("reorg");
    let spec = ChainSpec::regtest();
    let (depth, txs) = if report.quick { (20, 20) } else { (100, 50) };
    let mut base = ChainBuilder::new(spec);
    let common = base.blocks(20, 5);
    let mut side = base.fork(7);
    let main_branch = base.blocks(depth, txs);
    let side_branch = side.blocks(depth + 1, txs);
    let side_tip = side.tip();
    // Reference: the side branch's blocks handed over as one run on the
    // common part, where they extend the tip (stored, then connected
    // through the pipeline, as the reorg connects them).
    let connect = || {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = open_chain(dir.path(), 1000);
        for b in &common {
            chain.accept_block(b.clone()).expect("import");
        }
        let start = Instant::now();
        let (results, _) = chain.accept_blocks(side_branch.clone());
        let t = start.elapsed().as_secs_f64();
        for r in results {
            r.expect("connect");
        }
        assert_eq!(chain.state().tip, side_tip);
        t * 1000.0
    };
    // Figure: the same blocks stored as a side branch, the last one making
    // it heavier: disconnect `depth` blocks, connect `depth + 1`.
    let reorg = || {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = open_chain(dir.path(), 1000);
        for b in common.iter().chain(&main_branch) {
            chain.accept_block(b.clone()).expect("import");
        }
        for b in &side_branch[..depth] {
            chain.accept_block(b.clone()).expect("side");
        }
        let start = Instant::now();
        let (_, update) = chain.accept_block(side_branch[depth].clone()).expect("reorg");
        let t = start.elapsed().as_secs_f64();
        assert_eq!(update.disconnected_count(), depth);
        assert_eq!(chain.state().tip, side_tip);
        t * 1000.0
    };
    let rounds: Rounds = interleave(report.rounds(), connect, reorg);
    report.add_rounds(
        "reorg.vs_connect",
        &format!("reorg of {depth} blocks (disconnect {depth}, connect {})", depth + 1),
        "ms",
        &format!("connecting the same {} blocks on the tip (ms)", depth + 1),
        &rounds,
    );
    report.detail("reorg.vs_connect", json!({"depth": depth, "tx_per_block": txs}));
}
