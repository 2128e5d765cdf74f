use super::*;
use crate::mempool::{Mempool, MempoolPolicy};
use lode_core::crypto::{SecretKey, SigCache, Signature};
use lode_core::tx::{OutPoint, TxIn, Unlock};
use lode_core::validation::{check_block, check_header, connect_block, Coin, ConnectContext};
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;

fn template(spec: &ChainSpec, bits: CompactTarget, txs: Vec<Transaction>, fees: Amount) -> Block {
    let addr = Address([5; 20]);
    build_block_template(spec, spec.genesis_hash(), Height(1), bits, spec.genesis.time + 1, addr, txs, fees)
}

#[test]
fn template_pays_subsidy_plus_fees_and_connects() {
    let spec = ChainSpec::regtest();
    let key = SecretKey::generate();
    let owner = Address::from_pubkey(&key.public_key());
    let ctx = ConnectContext {
        genesis: spec.genesis_hash(),
        coinbase_maturity: spec.coinbase_maturity,
        subsidy: block_subsidy(&spec, Height(1)),
    };
    // Two mempool transactions (a parent and its child) from a chain coin.
    let coin = OutPoint { txid: Hash256([9; 32]), vout: 0 };
    let value = Amount::from_coins(3);
    let utxo: HashMap<OutPoint, Coin> =
        HashMap::from([(coin, Coin { output: TxOut { value, address: owner }, height: Height(0), coinbase: false })]);
    let spend = |op: OutPoint, value: Amount, fee: u64| {
        let mut tx = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prevout: op,
                unlock: Unlock::Signature { pubkey: key.public_key(), sig: Signature::default() },
            }],
            outputs: vec![TxOut { value: Amount::from_units(value.units() - fee), address: owner }],
            lock_time: 0,
        };
        tx.sign_inputs(&spec.genesis_hash(), &[&key], &[value]);
        tx
    };
    let parent = spend(coin, value, 700);
    let child = spend(OutPoint { txid: parent.txid(), vout: 0 }, parent.outputs[0].value, 5000);
    let mut pool = Mempool::new(MempoolPolicy::default());
    let cache = SigCache::new(100);
    for tx in [&child, &parent] {
        // The child first is refused (missing parent); then both go in.
        let _ = pool.accept(tx.clone(), &utxo, Height(1), &ctx, &cache, 0);
    }
    pool.accept(child.clone(), &utxo, Height(1), &ctx, &cache, 0).unwrap();
    let (txs, fees) = pool.select_for_block(spec.max_block_size - 1000);
    assert_eq!(fees.units(), 5700);

    let mut block = template(&spec, spec.pow_limit, txs, fees);
    assert!(mine_block(&mut block, &AtomicBool::new(false)));
    check_header(&block.header, &spec).unwrap();
    check_block(&block, &spec).unwrap();
    assert_eq!(block.transactions[1..], [parent, child]);
    let out = connect_block(&block, Height(1), &ctx, &utxo, Some(&cache)).unwrap();
    assert_eq!(out.fees.units(), 5700);
    assert_eq!(out.sigs_cached, 2, "signatures checked on mempool entry are not verified again");
    let reward = block.transactions[0].outputs[0];
    assert_eq!(reward.value.units(), spec.initial_subsidy.units() + 5700);
    assert_eq!(reward.address, Address([5; 20]));
    // Two templates differ (random extra nonce) even for the same payee.
    let other = template(&spec, spec.pow_limit, vec![], Amount::ZERO);
    let again = template(&spec, spec.pow_limit, vec![], Amount::ZERO);
    assert_ne!(other.header.merkle_root, again.header.merkle_root);
}

#[test]
fn pow_target_fast_path_agrees_with_the_full_compare() {
    for bits in [0x207fffff, 0x1f00ffff, 0x1d00ffff, 0x03000001, 0x2100ffff] {
        let t = PowTarget::new(CompactTarget(bits)).unwrap();
        let full = CompactTarget(bits).to_target().unwrap();
        let be = full.to_be_bytes();
        let mut probes = vec![Hash256(be), Hash256([0; 32]), Hash256([0xff; 32])];
        for i in 0..32 {
            let mut up = be;
            up[i] = up[i].wrapping_add(1);
            let mut down = be;
            down[i] = down[i].wrapping_sub(1);
            probes.extend([Hash256(up), Hash256(down)]);
        }
        for h in probes {
            assert_eq!(t.is_met_by(&h), full.is_met_by(&h), "bits {bits:#x} hash {h}");
        }
    }
    assert!(PowTarget::new(CompactTarget(0)).is_err());
}

#[test]
fn nonce_hasher_agrees_with_the_header_hash() {
    let spec = ChainSpec::regtest();
    let mut header = template(&spec, spec.pow_limit, vec![], Amount::ZERO).header;
    let mut hasher = NonceHasher::new(&header);
    for nonce in [0u64, 1, 2, 0xdead_beef, u64::MAX - 1, u64::MAX] {
        header.nonce = nonce;
        assert_eq!(hasher.hash(nonce), header.hash());
    }
    // Scanning finds exactly what a naive loop finds, whatever the range's
    // start and parity: target 0x1f7fffff is met by one hash in ~512.
    let target = PowTarget::new(CompactTarget(0x1f7fffff)).unwrap();
    let naive = |h: &mut BlockHeader, r: std::ops::Range<u64>| {
        r.into_iter().find(|&n| {
            h.nonce = n;
            target.is_met_by(&h.hash())
        })
    };
    let first = naive(&mut header, 0..100_000).unwrap();
    for (start, len) in [(0, first + 1), (0, first), (1, first), (first, 1), (first, 2), (first + 1, 3000)] {
        let r = start..start + len;
        assert_eq!(scan(&mut hasher, &target, r.clone()), naive(&mut header, r.clone()), "range {r:?}");
    }
    assert_eq!(scan(&mut hasher, &target, 5..5), None);
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 6..5;
    assert_eq!(scan(&mut hasher, &target, backwards), None);
}

#[test]
fn mine_block_gives_up_when_stopped_or_bits_are_unusable() {
    let spec = ChainSpec::testnet();
    // An impossible target for a test: only the stop flag ends the search.
    let mut block = template(&spec, CompactTarget(0x03000001), vec![], Amount::ZERO);
    assert!(!mine_block(&mut block, &AtomicBool::new(true)));
    let mut bad = template(&spec, CompactTarget(0), vec![], Amount::ZERO);
    assert!(!mine_block(&mut bad, &AtomicBool::new(false)));
}

#[test]
fn search_rolls_time_when_the_range_is_exhausted() {
    let spec = ChainSpec::regtest();
    let mut block = template(&spec, CompactTarget(0x03000001), vec![], Amount::ZERO);
    let target = PowTarget::new(block.header.bits).unwrap();
    let meter = Meter::new();
    let start = block.header.time;
    let mut rounds = 0;
    // A 10-nonce range, searched 2.5 times before giving up.
    let r = search(&mut block.header, &target, 0..10, false, &meter, || {
        rounds += 1;
        rounds < 3
    });
    assert_eq!(r, None);
    assert_eq!(meter.total(), 30);
    assert_eq!(block.header.time, start + 2);
}

struct Backend {
    spec: ChainSpec,
    bits: CompactTarget,
    version: AtomicU64,
    templates: AtomicUsize,
    found: Mutex<Vec<Block>>,
}

impl Backend {
    fn new(bits: CompactTarget) -> Arc<Backend> {
        Arc::new(Backend {
            spec: ChainSpec::regtest(),
            bits,
            version: AtomicU64::new(1),
            templates: AtomicUsize::new(0),
            found: Mutex::new(Vec::new()),
        })
    }

    fn found(&self) -> usize {
        self.found.lock().unwrap().len()
    }
}

impl MiningBackend for Backend {
    fn template(&self) -> Option<Block> {
        self.templates.fetch_add(1, Ordering::SeqCst);
        Some(template(&self.spec, self.bits, vec![], Amount::ZERO))
    }
    fn work_version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }
    fn submit_mined(&self, block: Block) {
        self.found.lock().unwrap().push(block);
    }
}

/// Polls `cond` until it holds, failing after a generous deadline.
fn wait(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn threads_find_regtest_blocks_and_stop_promptly() {
    let backend = Backend::new(ChainSpec::regtest().pow_limit);
    let miner = Miner::start(backend.clone(), 2);
    assert_eq!(miner.threads(), 2);
    wait("three blocks", || backend.found() >= 3);
    assert!(miner.is_running());
    let rate = miner.hashrate_handle();
    wait("a hash rate", || rate.get() > 0.0);
    let started = Instant::now();
    miner.stop();
    assert!(started.elapsed() < Duration::from_secs(2), "stop took {:?}", started.elapsed());
    let spec = ChainSpec::regtest();
    for b in backend.found.lock().unwrap().iter() {
        check_header(&b.header, &spec).unwrap();
        check_block(b, &spec).unwrap();
    }
    // Stopped means every thread has exited: each held a clone of the
    // backend, so only the test's own reference is left. (A stop that only
    // raised the flag, or a thread stuck in its nonce loop, keeps more.)
    assert_eq!(Arc::strong_count(&backend), 1, "mining threads still hold the backend");
    let hashes = rate.total();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(rate.total(), hashes, "no hashing after stop");
}

#[test]
fn threads_restart_at_once_on_new_work() {
    // Unsolvable: only a new work version makes the threads fetch templates.
    let backend = Backend::new(CompactTarget(0x03000001));
    let miner = Miner::start(backend.clone(), 2);
    wait("both threads on a template", || backend.templates.load(Ordering::SeqCst) >= 2);
    let rate = miner.hashrate_handle();
    wait("hashing", || rate.total() > 0);
    let before = backend.templates.load(Ordering::SeqCst);
    assert_eq!(before, 2, "no refetch without new work");
    let bumped = Instant::now();
    backend.version.fetch_add(1, Ordering::SeqCst);
    wait("fresh templates", || backend.templates.load(Ordering::SeqCst) >= before + 2);
    assert!(bumped.elapsed() < Duration::from_secs(2), "restart took {:?}", bumped.elapsed());
    assert_eq!(backend.found(), 0);
    drop(miner);
}

/// A backend with nothing to mine (still syncing).
struct Syncing(AtomicUsize);

impl MiningBackend for Syncing {
    fn template(&self) -> Option<Block> {
        self.0.fetch_add(1, Ordering::SeqCst);
        None
    }
    fn work_version(&self) -> u64 {
        1
    }
    fn submit_mined(&self, _: Block) {
        unreachable!("nothing to mine")
    }
}

#[test]
fn idle_threads_poll_gently_and_stop_at_once() {
    let backend = Arc::new(Syncing(AtomicUsize::new(0)));
    let miner = Miner::start(backend.clone(), 1);
    wait("a second poll", || backend.0.load(Ordering::SeqCst) >= 2);
    let started = Instant::now();
    miner.stop();
    assert!(started.elapsed() < Duration::from_millis(500), "stop took {:?}", started.elapsed());
    assert!(backend.0.load(Ordering::SeqCst) < 50, "polled every {IDLE_POLL:?}, not in a spin");
}
