use super::*;
use lode_core::validation::{check_block, check_header, connect_block, ConnectContext};
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;

#[test]
fn template_pays_subsidy_plus_fees_and_mines_a_valid_block() {
    let spec = ChainSpec::regtest();
    let addr = Address([5; 20]);
    let mut block = build_block_template(
        &spec,
        spec.genesis_hash(),
        Height(1),
        spec.pow_limit,
        spec.genesis.time + 1,
        addr,
        vec![],
        Amount::ZERO,
    );
    assert!(mine_block(&mut block, &AtomicBool::new(false)));
    check_header(&block.header, &spec).unwrap();
    check_block(&block, &spec).unwrap();
    let ctx = ConnectContext {
        genesis: spec.genesis_hash(),
        coinbase_maturity: spec.coinbase_maturity,
        subsidy: block_subsidy(&spec, Height(1)),
    };
    let out = connect_block(&block, Height(1), &ctx, &HashMap::new(), None).unwrap();
    assert_eq!(out.created[0].1.output.value, spec.initial_subsidy);
    // Two templates differ (random extra nonce) even for the same payee.
    let other = build_block_template(
        &spec,
        spec.genesis_hash(),
        Height(1),
        spec.pow_limit,
        spec.genesis.time + 1,
        addr,
        vec![],
        Amount::ZERO,
    );
    assert_ne!(other.header.merkle_root, block.header.merkle_root);
}

#[test]
fn mine_block_gives_up_when_stopped() {
    let spec = ChainSpec::testnet();
    // An impossible target for a test: only the stop flag ends the search.
    let mut block = build_block_template(
        &spec,
        spec.genesis_hash(),
        Height(1),
        CompactTarget(0x03000001),
        spec.genesis.time + 1,
        Address([1; 20]),
        vec![],
        Amount::ZERO,
    );
    assert!(!mine_block(&mut block, &AtomicBool::new(true)));
}

struct Backend {
    spec: ChainSpec,
    version: AtomicU64,
    templates: AtomicUsize,
    found: Mutex<Vec<Block>>,
}

impl MiningBackend for Backend {
    fn template(&self) -> Option<Block> {
        self.templates.fetch_add(1, Ordering::SeqCst);
        Some(build_block_template(
            &self.spec,
            self.spec.genesis_hash(),
            Height(1),
            self.spec.pow_limit,
            self.spec.genesis.time + 1,
            Address([2; 20]),
            vec![],
            Amount::ZERO,
        ))
    }
    fn work_version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }
    fn submit_mined(&self, block: Block) {
        self.found.lock().unwrap().push(block);
    }
}

fn wait(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn threads_find_blocks_restart_on_new_work_and_stop() {
    let backend = Arc::new(Backend {
        spec: ChainSpec::regtest(),
        version: AtomicU64::new(1),
        templates: AtomicUsize::new(0),
        found: Mutex::new(Vec::new()),
    });
    let miner = Miner::start(backend.clone(), 2);
    wait("a block", || !backend.found.lock().unwrap().is_empty());
    let spec = ChainSpec::regtest();
    for b in backend.found.lock().unwrap().iter() {
        check_header(&b.header, &spec).unwrap();
    }
    let before = backend.templates.load(Ordering::SeqCst);
    backend.version.fetch_add(1, Ordering::SeqCst);
    wait("a fresh template", || backend.templates.load(Ordering::SeqCst) > before);
    assert!(miner.is_running());
    miner.stop();
    let after = backend.templates.load(Ordering::SeqCst);
    std::thread::yield_now();
    assert_eq!(backend.templates.load(Ordering::SeqCst), after, "no work after stop");
}
