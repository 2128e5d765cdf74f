//! The chain model: the real node (chain, store on a temporary RocksDB,
//! mempool, block templates) driven by a fuzzer-chosen sequence of steps —
//! mine on branch k, submit a transaction, mine the node's own template,
//! reopen the store, feed a damaged block — and after every step compared
//! with a small model written here: its own block tree, validity (the
//! serial UTXO rules of the validation target plus the header rules),
//! most-work fork choice with first-received tie-break, and UTXO set per
//! block. Tip, UTXO set and UTXO commitment must match the model; the
//! mempool must only hold transactions valid on the tip, without conflicts.

use crate::validation::{seal, serial_connect};
use arbitrary::{Arbitrary, Unstructured};
use lode_core::block::Block;
use lode_core::codec::{Decode, Encode};
use lode_core::crypto::{SecretKey, Signature};
use lode_core::subsidy::block_subsidy;
use lode_core::tx::{OutPoint, TxIn, TxOut, Unlock};
use lode_core::validation::{check_block, check_header, median_time_past, Coin};
use lode_core::{Address, Amount, ChainSpec, Hash256, Height, Transaction};
use lode_node::chain::{BlockSource, ChainConfig};
use lode_node::mempool::MempoolPolicy;
use lode_node::node::Node;
use lode_node::store::UtxoCommitment;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

/// Most steps one input runs (each may mine a block).
const MAX_STEPS: usize = 48;

#[derive(Arbitrary, Debug)]
enum Step {
    /// A block on branch `branch % branches`, spending the listed coins of
    /// that branch (by index into its sorted mature coins).
    Mine { branch: u8, spends: Vec<(u8, u16)> },
    /// Start a new branch from an ancestor `depth` blocks below branch k.
    Fork { branch: u8, depth: u8 },
    /// A transaction to the mempool spending tip coins (fee in base units).
    SubmitTx { coins: Vec<u8>, fee: u16, wrong_key: bool },
    /// Mine the node's own block template on its tip.
    MineTemplate,
    /// Close the node and open it again on the same folder.
    Reopen,
    /// A known block with one byte changed, offered to the node.
    Damaged { block: u8, at: u16, xor: u8 },
    /// Bytes offered as a block.
    Garbage(Vec<u8>),
}

/// regtest with a coinbase maturity of 2, so that short step sequences
/// spend coinbases.
fn spec() -> &'static ChainSpec {
    static SPEC: OnceLock<ChainSpec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let mut s = ChainSpec::regtest();
        s.coinbase_maturity = 2;
        let json = serde_json::to_string(&s).expect("serialises");
        ChainSpec::from_json(&json).expect("regtest with maturity 2 loads")
    })
}

fn key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| SecretKey::from_bytes(&[7; 32]).expect("a valid key"))
}

fn address() -> Address {
    Address::from_pubkey(&key().public_key())
}

/// One block the model knows.
struct MBlock {
    block: Block,
    height: u32,
    /// UTXO set after it, when it and all its ancestors are valid.
    utxo: Option<HashMap<OutPoint, Coin>>,
    /// Order in which the node received its body.
    seq: u64,
}

struct Model {
    blocks: HashMap<Hash256, MBlock>,
    /// Tips the fuzzer builds on (valid blocks only).
    branches: Vec<Hash256>,
    next_seq: u64,
    genesis: Hash256,
}

impl Model {
    fn new() -> Model {
        let spec = spec();
        let g = spec.genesis_block();
        let mut blocks = HashMap::new();
        // Genesis creates no coins (its coinbase pays nothing).
        blocks.insert(g.hash(), MBlock { block: g, height: 0, utxo: Some(HashMap::new()), seq: 0 });
        Model { blocks, branches: vec![spec.genesis_hash()], next_seq: 1, genesis: spec.genesis_hash() }
    }

    fn ancestors_times(&self, mut hash: Hash256) -> Vec<u64> {
        let mut times = Vec::new();
        while let Some(b) = self.blocks.get(&hash) {
            times.push(b.block.header.time);
            if b.height == 0 || times.len() >= lode_core::validation::MEDIAN_TIME_SPAN {
                break;
            }
            hash = b.block.header.prev_hash;
        }
        times.reverse();
        times
    }

    /// The model's verdict: the UTXO set after `block`, or None if invalid
    /// (or its parent is unknown or invalid).
    fn evaluate(&self, block: &Block) -> Option<(u32, HashMap<OutPoint, Coin>)> {
        let spec = spec();
        let parent = self.blocks.get(&block.header.prev_hash)?;
        let utxo = parent.utxo.as_ref()?;
        let height = parent.height + 1;
        check_header(&block.header, spec).ok()?;
        if block.header.bits != spec.pow_limit {
            return None;
        }
        if block.header.time <= median_time_past(&self.ancestors_times(block.header.prev_hash)) {
            return None;
        }
        if block.header.time > lode_node::chain::unix_now() + spec.max_future_block_secs {
            return None;
        }
        check_block(block, spec).ok()?;
        let out = serial_connect(block, Height(height), spec, utxo).ok()?;
        let mut next = utxo.clone();
        for op in out.spent.keys() {
            next.remove(op);
        }
        next.extend(out.created);
        Some((height, next))
    }

    /// Records a block offered to the node.
    fn offer(&mut self, block: &Block) {
        let hash = block.hash();
        if self.blocks.contains_key(&hash) {
            return;
        }
        let (height, utxo) = match self.evaluate(block) {
            Some((h, u)) => (h, Some(u)),
            None => match self.blocks.get(&block.header.prev_hash) {
                Some(p) => (p.height + 1, None),
                None => return, // an orphan: never connectable here
            },
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.blocks.insert(hash, MBlock { block: block.clone(), height, utxo, seq });
    }

    /// Most height (equal work per block), then earliest received.
    fn tip(&self) -> Hash256 {
        self.blocks
            .iter()
            .filter(|(_, b)| b.utxo.is_some())
            .max_by(|(_, a), (_, b)| a.height.cmp(&b.height).then(b.seq.cmp(&a.seq)))
            .map(|(h, _)| *h)
            .unwrap_or(self.genesis)
    }

    fn utxo_at(&self, hash: &Hash256) -> &HashMap<OutPoint, Coin> {
        self.blocks[hash].utxo.as_ref().expect("branches are valid blocks")
    }

    fn mature_coins(&self, hash: &Hash256) -> Vec<(OutPoint, Coin)> {
        let height = self.blocks[hash].height + 1;
        let mut coins: Vec<(OutPoint, Coin)> = self
            .utxo_at(hash)
            .iter()
            .filter(|(_, c)| !c.coinbase || height.saturating_sub(c.height.0) >= spec().coinbase_maturity)
            .map(|(o, c)| (*o, *c))
            .collect();
        coins.sort_by_key(|(o, _)| *o);
        coins
    }
}

fn spend(coins: &[(OutPoint, Coin)], fee: u64, wrong_key: bool) -> Transaction {
    let genesis = spec().genesis_hash();
    let total: u64 = coins.iter().map(|(_, c)| c.output.value.units()).sum();
    let rest = total.saturating_sub(fee).max(1);
    let mut tx = Transaction {
        version: 1,
        inputs: coins
            .iter()
            .map(|(op, _)| TxIn {
                prevout: *op,
                unlock: Unlock::Signature { pubkey: key().public_key(), sig: Signature::default() },
            })
            .collect(),
        outputs: vec![
            TxOut { value: Amount::from_units(rest.div_ceil(2)), address: address() },
            TxOut { value: Amount::from_units(rest / 2), address: address() },
        ]
        .into_iter()
        .filter(|o| o.value.units() > 0)
        .collect(),
        lock_time: 0,
    };
    let values: Vec<Amount> = coins.iter().map(|(_, c)| c.output.value).collect();
    let other = SecretKey::from_bytes(&[9; 32]).expect("a valid key");
    let keys: Vec<&SecretKey> = coins.iter().map(|_| if wrong_key { &other } else { key() }).collect();
    tx.sign_inputs(&genesis, &keys, &values);
    tx
}

struct Harness {
    dir: tempfile::TempDir,
    node: Option<Arc<Node>>,
    model: Model,
}

impl Harness {
    fn open(dir: &std::path::Path) -> Arc<Node> {
        let config = ChainConfig { cache_bytes: 1 << 20, ..ChainConfig::default() };
        Node::open(dir, spec().clone(), config, MempoolPolicy::default()).expect("the node opens its store")
    }

    fn node(&self) -> &Arc<Node> {
        self.node.as_ref().expect("open between steps")
    }

    fn submit(&mut self, block: Block) {
        self.model.offer(&block);
        let _ = self.node().process_block(block, BlockSource::Requested);
    }

    fn mine(&mut self, branch: usize, spends: &[(u8, u16)]) {
        let parent = self.model.branches[branch];
        let p = &self.model.blocks[&parent];
        let height = Height(p.height + 1);
        let time = p.block.header.time + 1;
        let mut coins = self.model.mature_coins(&parent);
        let mut txs = Vec::new();
        let mut fees = 0u64;
        for &(pick, fee) in spends.iter().take(4) {
            if coins.is_empty() {
                break;
            }
            let coin = coins.remove(usize::from(pick) % coins.len());
            let fee = u64::from(fee).min(coin.1.output.value.units().saturating_sub(2));
            fees += fee;
            txs.push(spend(&[coin], fee, false));
        }
        let reward = block_subsidy(spec(), height).units() + fees;
        let outputs =
            if reward == 0 { vec![] } else { vec![TxOut { value: Amount::from_units(reward), address: address() }] };
        let mut all = vec![Transaction::coinbase(height, branch.to_le_bytes().to_vec(), outputs)];
        all.extend(txs);
        let block = seal(spec(), parent, time, all);
        let hash = block.hash();
        self.submit(block);
        if self.model.blocks.get(&hash).is_some_and(|b| b.utxo.is_some()) {
            self.model.branches[branch] = hash;
        }
    }

    fn step(&mut self, step: &Step) {
        let n = self.model.branches.len();
        match step {
            Step::Mine { branch, spends } => self.mine(usize::from(*branch) % n, spends),
            Step::Fork { branch, depth } => {
                if n >= 4 {
                    return;
                }
                let mut hash = self.model.branches[usize::from(*branch) % n];
                for _ in 0..*depth {
                    match self.model.blocks.get(&hash) {
                        Some(b) if b.height > 0 => hash = b.block.header.prev_hash,
                        _ => break,
                    }
                }
                self.model.branches.push(hash);
            }
            Step::SubmitTx { coins, fee, wrong_key } => {
                let tip = self.model.tip();
                let mature = self.model.mature_coins(&tip);
                if mature.is_empty() {
                    return;
                }
                let mut picked: Vec<(OutPoint, Coin)> =
                    coins.iter().take(3).map(|&i| mature[usize::from(i) % mature.len()]).collect();
                picked.sort_by_key(|(o, _)| *o);
                picked.dedup_by_key(|(o, _)| *o);
                let tx = spend(&picked, u64::from(*fee), *wrong_key);
                let _ = self.node().submit_transaction(tx);
            }
            Step::MineTemplate => {
                let mut block = self.node().block_template(address());
                let parent = block.header.prev_hash;
                let txs = std::mem::take(&mut block.transactions);
                block = seal(spec(), parent, block.header.time, txs);
                assert!(
                    self.model.evaluate(&block).is_some(),
                    "the node's block template is invalid by the model ({} transactions)",
                    block.transactions.len()
                );
                let hash = block.hash();
                self.submit(block);
                if let Some(i) = self.model.branches.iter().position(|b| *b == parent) {
                    self.model.branches[i] = hash;
                } else if self.model.branches.len() < 4 {
                    self.model.branches.push(hash);
                }
            }
            Step::Reopen => {
                let node = self.node.take().expect("open");
                let _ = node.chain().flush();
                drop(node);
                self.node = Some(Self::open(self.dir.path()));
            }
            Step::Damaged { block, at, xor } => {
                let mut known: Vec<&Hash256> = self.model.blocks.keys().collect();
                known.sort();
                let hash = *known[usize::from(*block) % known.len()];
                let mut bytes = self.model.blocks[&hash].block.encode();
                let i = usize::from(*at) % bytes.len();
                bytes[i] ^= (*xor).max(1);
                if let Ok(b) = Block::decode_all(&bytes, spec().max_block_size) {
                    self.submit(b);
                }
            }
            Step::Garbage(bytes) => {
                if let Ok(b) = Block::decode_all(bytes, spec().max_block_size) {
                    self.submit(b);
                }
            }
        }
    }

    fn compare(&self, after: &Step) {
        let node = self.node();
        let chain = node.chain();
        let tip = self.model.tip();
        assert_eq!(chain.state().tip, tip, "tip differs from the model after {after:?}");
        let expected = self.model.utxo_at(&tip);
        let coins: BTreeMap<OutPoint, Coin> = chain.store().all_coins().expect("the store reads").into_iter().collect();
        let want: BTreeMap<OutPoint, Coin> = expected.iter().map(|(o, c)| (*o, *c)).collect();
        assert_eq!(coins, want, "UTXO set differs from the model after {after:?}");
        let mut commitment = UtxoCommitment::default();
        for (op, coin) in &want {
            commitment.add(op, coin);
        }
        assert_eq!(chain.commitment(), commitment.to_hash(), "UTXO commitment differs after {after:?}");
        drop(chain);
        // The mempool holds only transactions valid on the tip, with no
        // two spending one coin.
        let pool = node.mempool();
        let txs: Vec<Transaction> = pool.transactions().cloned().collect();
        drop(pool);
        let ids: HashSet<Hash256> = txs.iter().map(Transaction::txid).collect();
        let mut spent = HashSet::new();
        for tx in &txs {
            for input in &tx.inputs {
                assert!(spent.insert(input.prevout), "two mempool transactions spend {:?}", input.prevout);
                assert!(
                    expected.contains_key(&input.prevout) || ids.contains(&input.prevout.txid),
                    "a mempool transaction spends {:?}, which is not on the tip after {after:?}",
                    input.prevout
                );
            }
        }
    }
}

/// The fuzz entry point.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut steps = Vec::new();
    while steps.len() < MAX_STEPS && !u.is_empty() {
        match Step::arbitrary(&mut u) {
            Ok(s) => steps.push(s),
            Err(_) => break,
        }
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let node = Harness::open(dir.path());
    let mut h = Harness { node: Some(node), dir, model: Model::new() };
    h.compare(&Step::Reopen);
    for step in &steps {
        h.step(step);
        h.compare(step);
    }
}
