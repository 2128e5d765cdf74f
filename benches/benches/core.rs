//! Criterion micro-benchmarks of lode-core's hot paths, each beside its
//! reference: the header hasher beside raw SHA-256 compression, k256 beside
//! libsecp256k1 (parsing outside the loop for both, then inside for both),
//! block validation beside the signature bound. The miner's own loop is in
//! `benches/miner.rs`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lode_core::block::{BlockHeader, HeaderHasher};
use lode_core::crypto::{verify, SecretKey, SigCache};
use lode_core::pow::CompactTarget;
use lode_core::subsidy::block_subsidy;
use lode_core::validation::{check_block, connect_block, ConnectContext};
use lode_core::{Amount, ChainSpec, Hash256};
use sha2::digest::generic_array::GenericArray;
use std::hint::black_box;
use std::time::Duration;

fn header() -> BlockHeader {
    BlockHeader {
        version: 1,
        prev_hash: Hash256([1; 32]),
        merkle_root: Hash256([2; 32]),
        time: 1_764_028_800,
        bits: CompactTarget(0x1d00ffff),
        nonce: 0,
    }
}

fn hashing(c: &mut Criterion) {
    let mut g = c.benchmark_group("hashing");
    g.throughput(Throughput::Elements(1));
    let h = header();
    g.bench_function("header hash (sha256d of 88 bytes)", |b| b.iter(|| black_box(&h).hash()));
    let block = [0x5au8; 64];
    g.bench_function("reference: one SHA-256 compression", |b| {
        let mut state = [0u32; 8];
        b.iter(|| sha2::compress256(&mut state, &[*GenericArray::from_slice(black_box(&block))]))
    });
    // lode-core's header hasher; the miner's own nonce loop (the one
    // `--mine` runs) is measured in the `miner` bench and in lode-bench.
    g.bench_function("HeaderHasher (midstate, 2 compressions)", |b| {
        let mut hasher = HeaderHasher::new(&h);
        let mut nonce = 0u64;
        b.iter(|| {
            nonce += 1;
            hasher.hash(nonce)
        })
    });
    g.finish();
}

fn signatures(c: &mut Criterion) {
    let mut g = c.benchmark_group("signatures");
    g.throughput(Throughput::Elements(1));
    let sk = SecretKey::generate();
    let msg = Hash256([7; 32]);
    let sig = sk.sign(&msg);
    let pk = sk.public_key();
    g.bench_function("k256 BIP-340 sign", |b| b.iter(|| sk.sign(black_box(&msg))));
    // Compared like with like: key and signature parsed outside the loop
    // for both libraries, then inside for both (the node's `verify` takes
    // bytes).
    let vk = k256::schnorr::VerifyingKey::from_bytes(&pk.0).expect("key");
    let ksig = k256::schnorr::Signature::try_from(&sig.0[..]).expect("sig");
    g.bench_function("k256 BIP-340 verify, parsed outside", |b| {
        b.iter(|| assert!(vk.verify_raw(black_box(&msg.0), &ksig).is_ok()))
    });
    let secp = secp256k1::SECP256K1;
    let xonly = secp256k1::XOnlyPublicKey::from_slice(&pk.0).expect("key");
    let s = secp256k1::schnorr::Signature::from_slice(&sig.0).expect("sig");
    let m = secp256k1::Message::from_digest(msg.0);
    g.bench_function("reference: libsecp256k1 BIP-340 verify, parsed outside", |b| {
        b.iter(|| assert!(secp.verify_schnorr(&s, black_box(&m), &xonly).is_ok()))
    });
    g.bench_function("lode_core verify (k256), parsing key and signature", |b| {
        b.iter(|| assert!(verify(&pk, black_box(&msg), &sig)))
    });
    g.bench_function("reference: libsecp256k1 BIP-340 verify, parsing key and signature", |b| {
        b.iter(|| {
            let xonly = secp256k1::XOnlyPublicKey::from_slice(black_box(&pk.0)).expect("key");
            let s = secp256k1::schnorr::Signature::from_slice(black_box(&sig.0)).expect("sig");
            assert!(secp.verify_schnorr(&s, black_box(&m), &xonly).is_ok())
        })
    });
    g.finish();
}

fn validation(c: &mut Criterion) {
    let spec = ChainSpec::regtest();
    let (block, utxo, height) = lode_node::testkit::spend_block(&spec, 1000);
    let ctx = ConnectContext {
        genesis: spec.genesis_hash(),
        coinbase_maturity: spec.coinbase_maturity,
        subsidy: block_subsidy(&spec, height),
    };
    let mut g = c.benchmark_group("block validation (1000 one-input tx)");
    g.throughput(Throughput::Elements(1000));
    g.sample_size(10);
    g.bench_function("check_block + connect_block", |b| {
        b.iter(|| {
            check_block(&block, &spec).expect("valid");
            connect_block(&block, height, &ctx, &utxo, None).expect("connects")
        })
    });
    g.bench_function("connect_block, signatures cached", |b| {
        b.iter_batched(
            || {
                let cache = SigCache::new(4000);
                for tx in &block.transactions[1..] {
                    cache.insert_all(&tx.sig_checks(&spec.genesis_hash(), &[Amount::from_coins(1)]));
                }
                cache
            },
            |cache| connect_block(&block, height, &ctx, &utxo, Some(&cache)).expect("connects"),
            BatchSize::LargeInput,
        )
    });
    g.finish();
    eprintln!(
        "signature bound = cores ({}) × single verify rate; compare the k256 verify time above",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = hashing, signatures, validation
}
criterion_main!(benches);
