//! The pipeline reads what the one-block-at-a-time path reads, and a run
//! of blocks ends where offering them one by one ends.

use super::*;
use crate::chain::{BlockAccepted, ChainConfig};
use crate::store::StoreView;
use crate::testkit::ChainBuilder;
use lode_core::crypto::SigCache;
use lode_core::tx::{TxIn, TxOut, Unlock};
use lode_core::validation::BlockError;
use lode_core::{Amount, ChainSpec, Height, Transaction};

fn open(dir: &std::path::Path) -> Chain {
    Chain::open(dir, ChainSpec::regtest(), Arc::new(SigCache::new(1000)), ChainConfig::default()).expect("open")
}

fn ctx(spec: &ChainSpec, height: Height) -> ConnectContext {
    ConnectContext {
        genesis: spec.genesis_hash(),
        coinbase_maturity: spec.coinbase_maturity,
        subsidy: block_subsidy(spec, height),
    }
}

/// A signed spend of output `vout` of `parent` paying everything but 1,000
/// back to the builder's key, split in two.
fn spend(builder: &ChainBuilder, parent: &Transaction, vout: u32) -> Transaction {
    spend_coin(builder, OutPoint { txid: parent.txid(), vout }, parent.outputs[vout as usize].value)
}

fn spend_coin(builder: &ChainBuilder, prevout: OutPoint, value: Amount) -> Transaction {
    let rest = value.units() - 1_000;
    let mut tx = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prevout,
            unlock: Unlock::Signature { pubkey: builder.key().public_key(), sig: Default::default() },
        }],
        outputs: vec![
            TxOut { value: Amount::from_units(rest / 2), address: builder.address() },
            TxOut { value: Amount::from_units(rest - rest / 2), address: builder.address() },
        ],
        lock_time: 0,
    };
    tx.sign_inputs(&ChainSpec::regtest().genesis_hash(), &[builder.key()], &[value]);
    tx
}

/// A block on the builder's tip with these transactions (coinbase claims
/// the subsidy only).
fn block_with(builder: &mut ChainBuilder, txs: Vec<Transaction>) -> Block {
    let spec = ChainSpec::regtest();
    let height = Height(builder.height().0 + 1);
    let coinbase = Transaction::coinbase(
        height,
        b"pipeline".to_vec(),
        vec![TxOut { value: block_subsidy(&spec, height), address: builder.address() }],
    );
    let mut all = vec![coinbase];
    all.extend(txs);
    builder.seal(all)
}

#[test]
fn batched_reads_through_the_in_flight_overlay_equal_per_input_reads_after_the_write() {
    let spec = ChainSpec::regtest();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let mut builder = ChainBuilder::new(spec.clone());
    for b in builder.blocks(spec.coinbase_maturity as usize + 3, 4) {
        chain.accept_block(b).expect("import");
    }
    // N: ordinary spends of older coins.
    let n = builder.next_block(4);
    let n_height = Height(builder.height().0);
    // N+1: spends two outputs N created (one of them twice removed: a
    // transaction spending another of the same block), plus one that N's
    // sibling output left alone.
    let a = spend(&builder, &n.transactions[1], 0);
    let b = spend(&builder, &a, 1);
    let c = spend(&builder, &n.transactions[2], 1);
    let next = block_with(&mut builder, vec![a, b, c]);
    let next_height = Height(n_height.0 + 1);

    // Pipeline: N checked, not written; N+1 read through N's overlay.
    let store = chain.shared_store();
    let n_coins = read_inputs(&store, &Overlay::new(), &n).expect("read N");
    let n_pending = connect_block_deferred(&n, n_height, &ctx(&spec, n_height), &n_coins).expect("N connects");
    let overlay = overlay_of(&n_pending.outcome);
    let piped = read_inputs(&store, &overlay, &next).expect("read N+1");
    let piped =
        connect_block_deferred(&next, next_height, &ctx(&spec, next_height), &piped).expect("N+1 through overlay");
    // Without the overlay N+1's inputs are not there yet.
    let bare = read_inputs(&store, &Overlay::new(), &next).expect("read");
    assert!(connect_block_deferred(&next, next_height, &ctx(&spec, next_height), &bare).is_err());

    // A coin N spent stays on disk while N is in flight, but the overlay
    // hides it from N+1.
    let (spent_by_n, coin) = n_pending.outcome.spent[0];
    let double = block_with(&mut builder.fork(3), vec![spend_coin(&builder, spent_by_n, coin.output.value)]);
    assert!(read_inputs(&store, &Overlay::new(), &double).expect("read").contains_key(&spent_by_n));
    assert!(!read_inputs(&store, &overlay, &double).expect("read").contains_key(&spent_by_n));

    // Per input, after N is written.
    chain.accept_block(n).expect("N");
    let view = StoreView::new(chain.store());
    let direct = connect_block_deferred(&next, next_height, &ctx(&spec, next_height), &view).expect("N+1 direct");
    assert_eq!(piped.outcome.spent, direct.outcome.spent);
    assert_eq!(piped.outcome.created, direct.outcome.created);
    assert_eq!(piped.outcome.fees, direct.outcome.fees);
    assert_eq!(piped.outcome.spent.len(), 2, "a and c spend N's outputs; b spends a's, created in the block");

    chain.accept_block(next).expect("N+1");
}

#[test]
fn a_run_of_blocks_ends_where_one_by_one_ends_and_survives_a_reopen() {
    let spec = ChainSpec::regtest();
    let mut builder = ChainBuilder::new(spec.clone());
    let blocks = builder.blocks(spec.coinbase_maturity as usize + 30, 6);
    let one = tempfile::tempdir().expect("tempdir");
    let run = tempfile::tempdir().expect("tempdir");
    let mut a = open(one.path());
    for b in &blocks {
        assert_eq!(a.accept_block(b.clone()).expect("one").0, BlockAccepted::Connected);
    }
    let mut c = open(run.path());
    let (results, update) = c.accept_blocks(blocks.clone());
    assert!(results.iter().all(|r| matches!(r, Ok(BlockAccepted::Connected))), "{results:?}");
    assert_eq!(update.connected_count(), blocks.len());
    assert_eq!(c.state(), a.state());
    assert_eq!(c.store().all_coins().expect("coins"), a.store().all_coins().expect("coins"));
    drop(c);
    let c = open(run.path());
    assert_eq!(c.state().tip, builder.tip());
    assert!(c.verify_integrity().expect("integrity").ok);
}

#[test]
fn a_bad_signature_in_a_run_keeps_the_prefix_and_condemns_the_rest() {
    let spec = ChainSpec::regtest();
    let mut builder = ChainBuilder::new(spec.clone());
    let mut blocks = builder.blocks(spec.coinbase_maturity as usize + 8, 5);
    let bad_at = blocks.len();
    let mut forged = spend(&builder, &blocks[bad_at - 2].transactions[1], 0);
    if let Unlock::Signature { sig, .. } = &mut forged.inputs[0].unlock {
        sig.0[5] ^= 1;
    }
    let bad = block_with(&mut builder, vec![forged]);
    blocks.push(bad.clone());
    // Children of the bad block, checked while it is verified.
    blocks.extend(builder.blocks(3, 5));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = open(dir.path());
    let (results, update) = chain.accept_blocks(blocks.clone());
    assert!(results[..bad_at].iter().all(|r| matches!(r, Ok(BlockAccepted::Connected))), "{results:?}");
    assert!(
        matches!(&results[bad_at], Err(ChainError::Invalid { source: BlockError::Transaction { .. }, .. })),
        "{:?}",
        results[bad_at]
    );
    assert!(results[bad_at + 1..].iter().all(|r| matches!(r, Err(ChainError::InvalidAncestor(_)))), "{results:?}");
    assert_eq!(update.connected_count(), bad_at);
    assert_eq!(chain.state().tip, blocks[bad_at - 1].hash());

    // The same prefix one by one gives the same state, also after a reopen.
    let other = tempfile::tempdir().expect("tempdir");
    let mut one = open(other.path());
    for b in &blocks[..bad_at] {
        one.accept_block(b.clone()).expect("prefix");
    }
    assert_eq!(one.state(), chain.state());
    drop(chain);
    let chain = open(dir.path());
    assert_eq!(chain.state(), one.state());
    assert_eq!(chain.entry(&bad.hash()).map(|e| e.status), Some(BlockStatus::Invalid));
    assert!(chain.verify_integrity().expect("integrity").ok);
}

/// A measuring aid, not a goal (goals live in lode-bench): import rate of
/// the same generated blocks one call per block and in runs of 16 (as sync
/// hands them over), beside the signature bound. Run with
/// `cargo test --release -p lode-node import_rates -- --ignored --nocapture`.
#[test]
#[ignore]
fn import_rates() {
    let spec = ChainSpec::regtest();
    let n: usize = std::env::var("LODE_IMPORT_BLOCKS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mut builder = ChainBuilder::new(spec.clone());
    let blocks = builder.blocks(n, 200);
    let txs: usize = blocks.iter().map(|b| b.transactions.len() - 1).sum();
    let key = SecretKeyForRate::new();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    for round in 0..3 {
        let bound = key.rate() * cores as f64;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = open(dir.path());
        let started = Instant::now();
        for b in &blocks {
            chain.accept_block(b.clone()).expect("import");
        }
        let one = txs as f64 / started.elapsed().as_secs_f64();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = open(dir.path());
        let started = Instant::now();
        for run in blocks.chunks(16) {
            let (results, _) = chain.accept_blocks(run.to_vec());
            assert!(results.iter().all(|r| r.is_ok()));
        }
        let runs = txs as f64 / started.elapsed().as_secs_f64();
        println!(
            "round {round}: bound {bound:.0} tx/s; one call a block {one:.0} tx/s ({:.3}); runs of 16 {runs:.0} tx/s ({:.3})",
            one / bound,
            runs / bound
        );
    }
}

/// One core's k256 verifications per second.
struct SecretKeyForRate {
    checks: Vec<lode_core::crypto::SigCheck>,
}

impl SecretKeyForRate {
    fn new() -> Self {
        let checks = (0..64u64)
            .map(|i| {
                let key = lode_core::crypto::SecretKey::generate();
                let msg = lode_core::hash::sha256d(&i.to_le_bytes());
                lode_core::crypto::SigCheck { pubkey: key.public_key(), msg, sig: key.sign(&msg) }
            })
            .collect();
        SecretKeyForRate { checks }
    }

    fn rate(&self) -> f64 {
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed().as_millis() < 1000 {
            for c in &self.checks {
                assert!(c.verify());
                n += 1;
            }
        }
        n as f64 / started.elapsed().as_secs_f64()
    }
}
