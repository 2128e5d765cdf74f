//! The benchmark sections.

use crate::figures::{cores, peak_rss_mib, Report};
use lode_core::block::{BlockHeader, HeaderHasher};
use lode_core::crypto::{signature_hash, verify, SecretKey, SigCache, Signature};
use lode_core::pow::CompactTarget;
use lode_core::subsidy::block_subsidy;
use lode_core::validation::{check_block, connect_block, ConnectContext};
use lode_core::{Amount, ChainSpec, Hash256};
use lode_node::chain::{Chain, ChainConfig};
use lode_node::testkit::ChainBuilder;
use sha2::digest::generic_array::GenericArray;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `f` repeatedly for about `d`; returns calls per second.
fn rate(d: Duration, mut f: impl FnMut() -> u64) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < d {
        n += f();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn secs(report: &Report, full: u64) -> Duration {
    Duration::from_millis(if report.quick { full / 4 } else { full })
}

/// Nonce loop vs the raw SHA-256 compression ceiling (two per nonce).
pub fn mining(report: &mut Report) {
    eprintln!("mining");
    let block = [0x5au8; 64];
    let mut state = [0u32; 8];
    let compress = rate(secs(report, 2000), || {
        for _ in 0..10_000 {
            sha2::compress256(&mut state, &[*GenericArray::from_slice(&block)]);
        }
        black_box(&state);
        10_000
    });
    let header = BlockHeader {
        version: 1,
        prev_hash: Hash256([1; 32]),
        merkle_root: Hash256([2; 32]),
        time: 1,
        bits: CompactTarget(0x1d00ffff),
        nonce: 0,
    };
    let mut hasher = HeaderHasher::new(&header);
    let mut nonce = 0u64;
    let hashes = rate(secs(report, 2000), || {
        for _ in 0..10_000 {
            black_box(hasher.hash(nonce));
            nonce += 1;
        }
        10_000
    });
    report.add("mining hashes/s per thread", hashes, "H/s", "SHA-256 compressions/s ÷ 2", compress / 2.0);
}

struct SigSet {
    keys: Vec<SecretKey>,
    msgs: Vec<Hash256>,
    sigs: Vec<Signature>,
}

fn sig_set(n: usize) -> SigSet {
    let keys: Vec<SecretKey> = (0..n).map(|_| SecretKey::generate()).collect();
    let msgs: Vec<Hash256> = (0..n).map(|i| lode_core::hash::sha256d(&(i as u64).to_le_bytes())).collect();
    let sigs = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    SigSet { keys, msgs, sigs }
}

/// Single-core verifications per second with k256.
fn k256_rate(report: &Report, set: &SigSet) -> f64 {
    let pubs: Vec<_> = set.keys.iter().map(SecretKey::public_key).collect();
    let mut i = 0;
    rate(secs(report, 2000), || {
        let j = i % pubs.len();
        assert!(verify(&pubs[j], &set.msgs[j], &set.sigs[j]));
        i += 1;
        1
    })
}

/// k256 against libsecp256k1 on the same signatures.
pub fn signatures(report: &mut Report) {
    eprintln!("signatures");
    let set = sig_set(256);
    let k256 = k256_rate(report, &set);
    let secp = secp256k1::SECP256K1;
    let prepared: Vec<_> = set
        .keys
        .iter()
        .zip(&set.msgs)
        .zip(&set.sigs)
        .map(|((k, m), s)| {
            let pk = secp256k1::XOnlyPublicKey::from_slice(&k.public_key().0).expect("valid key");
            let sig = secp256k1::schnorr::Signature::from_slice(&s.0).expect("valid signature");
            (pk, secp256k1::Message::from_digest(m.0), sig)
        })
        .collect();
    let mut i = 0;
    let libsecp = rate(secs(report, 2000), || {
        let (pk, m, s) = &prepared[i % prepared.len()];
        assert!(secp.verify_schnorr(s, m, pk).is_ok());
        i += 1;
        1
    });
    report.add("k256 Schnorr verifications/s (1 core)", k256, "verif/s", "libsecp256k1 verifications/s", libsecp);
}

/// Single-core k256 verifications per second.
pub fn single_verify_rate(report: &Report) -> f64 {
    k256_rate(report, &sig_set(64))
}

fn signature_bound(report: &Report) -> f64 {
    single_verify_rate(report) * cores() as f64
}

/// Block validation throughput against the parallel signature bound.
pub fn validation(report: &mut Report) {
    eprintln!("block validation");
    let spec = ChainSpec::regtest();
    let bound = signature_bound(report);
    for n in [1000usize, 5000] {
        let (block, utxo, height) = lode_node::testkit::spend_block(&spec, n);
        let ctx = ConnectContext {
            genesis: spec.genesis_hash(),
            coinbase_maturity: spec.coinbase_maturity,
            subsidy: block_subsidy(&spec, height),
        };
        let rounds = if report.quick { 2 } else { 5 };
        let start = Instant::now();
        for _ in 0..rounds {
            check_block(&block, &spec).expect("valid block");
            connect_block(&block, height, &ctx, &utxo, None).expect("connects");
        }
        let tps = (n * rounds) as f64 / start.elapsed().as_secs_f64();
        report.add(&format!("block validation, {n} tx blocks"), tps, "tx/s", "cores × 1-core verify rate", bound);
        let cache = SigCache::new(n * 2);
        for tx in &block.transactions[1..] {
            let values = vec![Amount::from_coins(1)];
            cache.insert_all(&tx.sig_checks(&spec.genesis_hash(), &values));
        }
        let start = Instant::now();
        for _ in 0..rounds {
            check_block(&block, &spec).expect("valid block");
            connect_block(&block, height, &ctx, &utxo, Some(&cache)).expect("connects");
        }
        let cached = (n * rounds) as f64 / start.elapsed().as_secs_f64();
        report.add(
            &format!("block validation, {n} tx, signatures cached"),
            cached,
            "tx/s",
            "same block, uncached",
            tps,
        );
    }
    // Sanity: the sighash routine is part of what is measured above.
    black_box(signature_hash(&Hash256::ZERO, &Hash256::ZERO, 0, &Hash256::ZERO));
}

/// Importing a generated chain into RocksDB, and a reorg.
pub fn import(report: &mut Report) {
    eprintln!("import");
    let spec = ChainSpec::regtest();
    let (blocks_n, txs) = if report.quick { (200, 50) } else { (2000, 200) };
    let mut builder = ChainBuilder::new(spec.clone());
    let gen = Instant::now();
    let blocks = builder.blocks(blocks_n, txs);
    let tx_total: usize = blocks.iter().map(|b| b.transactions.len() - 1).sum();
    eprintln!("  generated {blocks_n} blocks, {tx_total} transactions in {:.1}s", gen.elapsed().as_secs_f64());
    let bound = signature_bound(report);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain =
        Chain::open(dir.path(), spec.clone(), Arc::new(SigCache::new(1000)), ChainConfig::default()).expect("open");
    let start = Instant::now();
    for b in &blocks {
        chain.accept_block(b.clone()).expect("import");
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(chain.state().tip, builder.tip());
    report.add(
        &format!("import {blocks_n} blocks: transactions/s"),
        tx_total as f64 / elapsed,
        "tx/s",
        "cores × 1-core verify rate",
        bound,
    );
    // The same bound in blocks: what signature checking alone would allow.
    let per_block = tx_total as f64 / blocks_n as f64;
    report.add(
        &format!("import {blocks_n} blocks: blocks/s"),
        blocks_n as f64 / elapsed,
        "blocks/s",
        "signature bound ÷ transactions per block",
        bound / per_block.max(1.0),
    );
    // This process holds the whole generated chain: memory is read against it.
    let chain_mib = blocks.iter().map(|b| b.encoded_size()).sum::<usize>() as f64 / (1024.0 * 1024.0);
    report.add("peak resident memory after import", peak_rss_mib(), "MiB", "generated chain held in memory", chain_mib);

    // Reorg: a heavier branch replacing the last `depth` blocks.
    let depth = if report.quick { 20 } else { 100 };
    let mut base = ChainBuilder::new(spec.clone());
    let common = base.blocks(20, 5);
    let mut side = base.fork(7);
    let main_branch = base.blocks(depth, 20);
    let side_branch = side.blocks(depth + 1, 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = Chain::open(dir.path(), spec, Arc::new(SigCache::new(1000)), ChainConfig::default()).expect("open");
    for b in common.iter().chain(&main_branch) {
        chain.accept_block(b.clone()).expect("import");
    }
    for b in &side_branch[..depth] {
        chain.accept_block(b.clone()).expect("side");
    }
    let start = Instant::now();
    let (_, update) = chain.accept_block(side_branch[depth].clone()).expect("reorg");
    let reorg = start.elapsed().as_secs_f64();
    assert_eq!(update.disconnected_count(), depth);
    let side_txs: usize = side_branch.iter().map(|b| b.transactions.len() - 1).sum();
    report.add(
        &format!("reorg of {depth} blocks (disconnect + connect)"),
        reorg * 1000.0,
        "ms",
        "connect-only time of the same blocks at import rate (ms)",
        side_txs as f64 / (tx_total as f64 / elapsed) * 1000.0,
    );
}

/// Time to reopen a data directory holding many blocks (no rescan).
pub fn restart(report: &mut Report) {
    eprintln!("restart");
    let spec = ChainSpec::regtest();
    let n = if report.quick { 1000 } else { 10_000 };
    let mut builder = ChainBuilder::new(spec.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut chain =
            Chain::open(dir.path(), spec.clone(), Arc::new(SigCache::new(10)), ChainConfig::default()).expect("open");
        for _ in 0..n {
            chain.accept_block(builder.next_block(1)).expect("import");
        }
        chain.flush().expect("flush");
    }
    let start = Instant::now();
    let chain = Chain::open(dir.path(), spec, Arc::new(SigCache::new(10)), ChainConfig::default()).expect("reopen");
    let open = start.elapsed().as_secs_f64();
    assert_eq!(chain.state().height.0 as usize, n);
    report.add(
        &format!("reopen a chain of {n} blocks"),
        open * 1000.0,
        "ms",
        "goal: RPC answering within (ms)",
        2000.0,
    );
}
