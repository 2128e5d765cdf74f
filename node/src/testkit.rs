//! Builders of valid regtest chains for tests and benchmarks: signed
//! transactions, correct coinbases, mined headers. Tracks its own UTXO set
//! so it never needs a node.

use lode_core::block::{merkle_root, Block, BlockHeader};
use lode_core::crypto::{SecretKey, Signature};
use lode_core::difficulty::{next_bits, window_len, HeaderSample};
use lode_core::subsidy::block_subsidy;
use lode_core::tx::{OutPoint, Transaction, TxIn, TxOut, Unlock};
use lode_core::validation::check_header;
use lode_core::validation::Coin;
use lode_core::{Address, Amount, ChainSpec, Hash256, Height};
use std::collections::HashMap;
use std::collections::VecDeque;

/// Fee each generated transaction pays.
pub const TX_FEE: Amount = Amount::from_units(1_000);

/// Builds a chain block by block.
#[derive(Clone)]
pub struct ChainBuilder {
    spec: ChainSpec,
    key: SecretKey,
    address: Address,
    /// (outpoint, value, spendable from height).
    coins: VecDeque<(OutPoint, Amount, u32)>,
    tip: Hash256,
    height: Height,
    samples: Vec<HeaderSample>,
    /// Distinguishes branches built from the same parent.
    tag: u32,
}

impl ChainBuilder {
    /// Starts at genesis with a fresh key.
    pub fn new(spec: ChainSpec) -> ChainBuilder {
        let key = SecretKey::generate();
        let address = Address::from_pubkey(&key.public_key());
        let g = spec.genesis_block().header;
        ChainBuilder {
            tip: spec.genesis_hash(),
            height: Height::GENESIS,
            samples: vec![HeaderSample { time: g.time, bits: g.bits }],
            spec,
            key,
            address,
            coins: VecDeque::new(),
            tag: 0,
        }
    }

    /// A copy that builds a different branch from the same tip.
    pub fn fork(&self, tag: u32) -> ChainBuilder {
        ChainBuilder { tag, ..self.clone() }
    }

    /// Current tip hash.
    pub fn tip(&self) -> Hash256 {
        self.tip
    }

    /// Current height.
    pub fn height(&self) -> Height {
        self.height
    }

    /// The key all generated coins belong to.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    /// Its address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Next block with up to `max_txs` one-input, two-output spends.
    pub fn next_block(&mut self, max_txs: usize) -> Block {
        let height = Height(self.height.0 + 1);
        let genesis = self.spec.genesis_hash();
        let mut txs = Vec::new();
        let mut new_coins = Vec::new();
        while txs.len() < max_txs {
            let Some(&(op, value, from)) = self.coins.front() else { break };
            if from > height.0 || value.units() < 2 * TX_FEE.units() + 2 {
                if from > height.0 {
                    break;
                }
                self.coins.pop_front();
                continue;
            }
            self.coins.pop_front();
            let rest = value.units() - TX_FEE.units();
            let mut tx = Transaction {
                version: 1,
                inputs: vec![TxIn {
                    prevout: op,
                    unlock: Unlock::Signature { pubkey: self.key.public_key(), sig: Signature::default() },
                }],
                outputs: vec![
                    TxOut { value: Amount::from_units(rest / 2), address: self.address },
                    TxOut { value: Amount::from_units(rest - rest / 2), address: self.address },
                ],
                lock_time: 0,
            };
            tx.sign_inputs(&genesis, &[&self.key], &[value]);
            let txid = tx.txid();
            for (vout, o) in tx.outputs.iter().enumerate() {
                new_coins.push((OutPoint { txid, vout: vout as u32 }, o.value, height.0 + 1));
            }
            txs.push(tx);
        }
        let fees = Amount::from_units(TX_FEE.units() * txs.len() as u64);
        let reward = block_subsidy(&self.spec, height).checked_add(fees).unwrap_or(Amount::ZERO);
        let mut extra = self.tag.to_le_bytes().to_vec();
        extra.extend_from_slice(b"testkit");
        let outputs =
            if reward == Amount::ZERO { Vec::new() } else { vec![TxOut { value: reward, address: self.address }] };
        let coinbase = Transaction::coinbase(height, extra, outputs);
        let cb_id = coinbase.txid();
        let mut transactions = vec![coinbase];
        transactions.extend(txs);
        let block = self.seal(transactions);
        self.coins.extend(new_coins);
        if reward > Amount::ZERO {
            self.coins.push_back((OutPoint { txid: cb_id, vout: 0 }, reward, height.0 + self.spec.coinbase_maturity));
        }
        // Keep the queue ordered by when coins become spendable.
        self.coins.make_contiguous().sort_by_key(|c| c.2);
        block
    }

    /// Mines a block with exactly these transactions on the tip and advances.
    pub fn seal(&mut self, transactions: Vec<Transaction>) -> Block {
        let ids: Vec<Hash256> = transactions.iter().map(Transaction::txid).collect();
        let start = self.samples.len().saturating_sub(window_len(&self.spec));
        let bits = next_bits(&self.spec, &self.samples[start..]);
        let time = self.samples.last().map(|s| s.time + 1).unwrap_or(0);
        let mut header =
            BlockHeader { version: 1, prev_hash: self.tip, merkle_root: merkle_root(&ids).0, time, bits, nonce: 0 };
        while check_header(&header, &self.spec).is_err() {
            header.nonce += 1;
        }
        self.tip = header.hash();
        self.height = Height(self.height.0 + 1);
        self.samples.push(HeaderSample { time, bits });
        if self.samples.len() > 64 {
            self.samples.remove(0);
        }
        Block { header, transactions }
    }

    /// `n` blocks of up to `txs` transactions each.
    pub fn blocks(&mut self, n: usize, txs: usize) -> Vec<Block> {
        (0..n).map(|_| self.next_block(txs)).collect()
    }
}

/// A block of `n` one-input spends of coins in the returned UTXO map.
pub fn spend_block(spec: &ChainSpec, n: usize) -> (Block, HashMap<OutPoint, Coin>, Height) {
    let key = SecretKey::generate();
    let addr = Address::from_pubkey(&key.public_key());
    let height = Height(1000);
    let mut utxo = HashMap::new();
    let mut txs = Vec::with_capacity(n + 1);
    let value = Amount::from_coins(1);
    for i in 0..n {
        let op = OutPoint { txid: lode_core::hash::sha256d(&(i as u64).to_le_bytes()), vout: 0 };
        utxo.insert(op, Coin { output: TxOut { value, address: addr }, height: Height(1), coinbase: false });
        let mut tx = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prevout: op,
                unlock: Unlock::Signature { pubkey: key.public_key(), sig: Signature::default() },
            }],
            outputs: vec![TxOut { value: Amount::from_units(value.units() - 1000), address: addr }],
            lock_time: 0,
        };
        tx.sign_inputs(&spec.genesis_hash(), &[&key], &[value]);
        txs.push(tx);
    }
    let fees = Amount::from_units(1000 * n as u64);
    let cb = Transaction::coinbase(
        height,
        vec![],
        vec![TxOut { value: block_subsidy(spec, height).checked_add(fees).unwrap_or_default(), address: addr }],
    );
    txs.insert(0, cb);
    let ids: Vec<Hash256> = txs.iter().map(Transaction::txid).collect();
    let header = BlockHeader {
        version: 1,
        prev_hash: Hash256::ZERO,
        merkle_root: merkle_root(&ids).0,
        time: 1,
        bits: spec.pow_limit,
        nonce: 0,
    };
    (Block { header, transactions: txs }, utxo, height)
}

/// Counts address index reads on this thread and those made while the
/// chain lock was held.
#[cfg(test)]
pub(crate) fn watch_address_reads(
    node: &std::sync::Arc<crate::node::Node>,
) -> std::rc::Rc<std::cell::Cell<(usize, usize)>> {
    watch_reads(node, &crate::store::ON_ADDRESS_READ)
}

/// Counts block body reads on this thread and those made while the chain
/// lock was held.
#[cfg(test)]
pub(crate) fn watch_body_reads(
    node: &std::sync::Arc<crate::node::Node>,
) -> std::rc::Rc<std::cell::Cell<(usize, usize)>> {
    watch_reads(node, &crate::store::ON_BODY_READ)
}

#[cfg(test)]
fn watch_reads(
    node: &std::sync::Arc<crate::node::Node>,
    hook: &'static crate::store::ReadHook,
) -> std::rc::Rc<std::cell::Cell<(usize, usize)>> {
    let seen = std::rc::Rc::new(std::cell::Cell::new((0, 0)));
    let (node, out) = (node.clone(), seen.clone());
    hook.with(|h| {
        *h.borrow_mut() = Some(Box::new(move || {
            let (reads, held) = out.get();
            out.set((reads + 1, held + usize::from(node.chain_is_held())));
        }))
    });
    seen
}

/// A regtest node in `dir` (default chain config and mempool policy) that
/// has imported `n` blocks of `builder`'s chain, and those blocks.
#[cfg(test)]
pub(crate) fn regtest_node(
    dir: &std::path::Path,
    builder: &mut ChainBuilder,
    n: usize,
) -> (std::sync::Arc<crate::node::Node>, Vec<Block>) {
    use crate::chain::{BlockSource, ChainConfig};
    let node = crate::node::Node::open(dir, ChainSpec::regtest(), ChainConfig::default(), Default::default())
        .expect("open node");
    let blocks = builder.blocks(n, 0);
    for b in &blocks {
        node.process_block(b.clone(), BlockSource::Requested).expect("import");
    }
    (node, blocks)
}

/// A regtest node with 12 blocks of `builder`'s chain and a 13th whose
/// transactions spend (up to two), and that block.
#[cfg(test)]
pub(crate) fn node_with_a_spending_block(
    dir: &std::path::Path,
    builder: &mut ChainBuilder,
) -> (std::sync::Arc<crate::node::Node>, Block) {
    use crate::chain::BlockSource;
    let (node, _) = regtest_node(dir, builder, 12);
    let block = builder.next_block(2);
    node.process_block(block.clone(), BlockSource::Requested).expect("block with spends connects");
    (node, block)
}

/// A regtest node with 12 blocks of `builder`'s chain and a 13th holding
/// a chain of `n` payments, each spending the one before (so every input
/// after the first spends an output of the same block), and that block.
#[cfg(test)]
pub(crate) fn node_with_a_block_of_chained_payments(
    dir: &std::path::Path,
    builder: &mut ChainBuilder,
    n: usize,
) -> (std::sync::Arc<crate::node::Node>, Block) {
    use crate::chain::BlockSource;
    let (node, blocks) = regtest_node(dir, builder, 12);
    let (key, me) = (builder.key().clone(), builder.address());
    let cb = &blocks[0].transactions[0];
    let (mut prevout, mut value) = (OutPoint { txid: cb.txid(), vout: 0 }, cb.outputs[0].value);
    let out = TxOut { value: Amount::from_units(1), address: me };
    let mut txs = vec![Transaction::coinbase(Height(13), vec![], vec![out])];
    for _ in 0..n {
        let mut tx = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prevout,
                unlock: Unlock::Signature { pubkey: key.public_key(), sig: Default::default() },
            }],
            outputs: vec![TxOut { value: Amount::from_units(value.units() - 1_000), address: me }],
            lock_time: 0,
        };
        tx.sign_inputs(&ChainSpec::regtest().genesis_hash(), &[&key], &[value]);
        (prevout, value) = (OutPoint { txid: tx.txid(), vout: 0 }, tx.outputs[0].value);
        txs.push(tx);
    }
    let block = builder.seal(txs);
    node.process_block(block.clone(), BlockSource::Requested).expect("the block connects");
    assert_eq!(node.chain().state().tip, block.hash());
    (node, block)
}

/// Asserts that `reads` (from [`watch_body_reads`]) counted at least
/// `min` body and undo reads, none of them under the chain lock.
#[cfg(test)]
pub(crate) fn assert_read_off_the_chain_lock(reads: &std::cell::Cell<(usize, usize)>, min: usize) {
    let (reads, held) = reads.get();
    assert!(reads >= min, "{reads} body and undo reads");
    assert_eq!(held, 0, "of {reads} body and undo reads, {held} under the chain lock");
}

/// A regtest node whose last block's body was edited in the store (header
/// and hash unchanged) so that its second transaction pays two outputs
/// summing past `u64::MAX`; returns the node, the block and that
/// transaction's id.
#[cfg(test)]
pub(crate) fn node_with_an_edited_body_of_huge_outputs(
    dir: &std::path::Path,
) -> (std::sync::Arc<crate::node::Node>, Hash256, Hash256) {
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let (node, block) = node_with_a_spending_block(dir, &mut builder);
    let hash = block.hash();
    let mut edited = block.clone();
    let huge = TxOut { value: Amount::from_units(u64::MAX / 2 + 1), address: builder.address() };
    edited.transactions[1].outputs = vec![huge, huge];
    let store = node.chain().shared_store();
    store.corrupt_block_for_test(&hash, &lode_core::codec::Encode::encode(&edited)).expect("write the edited body");
    let stored = store.block(&hash).expect("the edited body reads").expect("stored");
    assert_eq!(stored.transactions[1].outputs, edited.transactions[1].outputs, "the store returns the edit");
    (node, hash, block.transactions[1].txid())
}
