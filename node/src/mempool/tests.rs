use super::*;
use lode_core::crypto::SigCache;
use lode_core::crypto::{SecretKey, Signature};
use lode_core::tx::{TxIn, Unlock};
use lode_core::validation::connect_block;
use lode_core::validation::{ConnectContext, TxError};
use lode_core::ChainSpec;
use lode_core::{Amount, Block};
use std::collections::HashSet;

/// A key, an in-memory UTXO set of ten 10-coin outputs, and a signature cache.
struct Fx {
    spec: ChainSpec,
    key: SecretKey,
    utxo: HashMap<OutPoint, Coin>,
    coins: Vec<OutPoint>,
    cache: SigCache,
}

const NOW: u64 = 1000;

impl Fx {
    fn new() -> Fx {
        let key = SecretKey::generate();
        let addr = Address::from_pubkey(&key.public_key());
        let mut utxo = HashMap::new();
        let mut coins = Vec::new();
        for i in 0..10u8 {
            let op = OutPoint { txid: Hash256([i + 1; 32]), vout: 0 };
            let output = TxOut { value: coin10(), address: addr };
            utxo.insert(op, Coin { output, height: Height(1), coinbase: false });
            coins.push(op);
        }
        Fx { spec: ChainSpec::regtest(), key, utxo, coins, cache: SigCache::new(1000) }
    }

    fn ctx(&self) -> ConnectContext {
        ConnectContext {
            genesis: self.spec.genesis_hash(),
            coinbase_maturity: self.spec.coinbase_maturity,
            subsidy: Amount::ZERO,
        }
    }

    fn addr(&self) -> Address {
        Address::from_pubkey(&self.key.public_key())
    }

    /// Spends `inputs` (outpoint, value) into `outputs` equal outputs, paying `fee`.
    fn tx(&self, inputs: &[(OutPoint, Amount)], outputs: u64, fee: u64) -> Transaction {
        let total: u64 = inputs.iter().map(|i| i.1.units()).sum::<u64>() - fee;
        let mut tx = Transaction {
            version: 1,
            inputs: inputs
                .iter()
                .map(|(op, _)| TxIn {
                    prevout: *op,
                    unlock: Unlock::Signature { pubkey: self.key.public_key(), sig: Signature::default() },
                })
                .collect(),
            outputs: (0..outputs)
                .map(|i| {
                    let share = total / outputs + if i == 0 { total % outputs } else { 0 };
                    TxOut { value: Amount::from_units(share), address: self.addr() }
                })
                .collect(),
            lock_time: 0,
        };
        let keys: Vec<&SecretKey> = inputs.iter().map(|_| &self.key).collect();
        let values: Vec<Amount> = inputs.iter().map(|i| i.1).collect();
        tx.sign_inputs(&self.spec.genesis_hash(), &keys, &values);
        tx
    }

    /// Spends `op` (worth `value`) into one output, paying `fee`.
    fn spend(&self, op: OutPoint, value: Amount, fee: u64) -> Transaction {
        self.tx(&[(op, value)], 1, fee)
    }

    /// Spends output `vout` of the mempool transaction `parent`.
    fn child(&self, parent: &Transaction, vout: u32, fee: u64) -> Transaction {
        let op = OutPoint { txid: parent.txid(), vout };
        self.spend(op, parent.outputs[vout as usize].value, fee)
    }

    fn accept(&self, pool: &mut Mempool, tx: Transaction) -> Result<AcceptedTx, MempoolError> {
        let r = pool.accept(tx, &self.utxo, Height(50), &self.ctx(), &self.cache, NOW);
        pool.assert_consistent();
        r
    }

    /// A block (header irrelevant here) mining `txs`.
    fn block(&self, txs: Vec<Transaction>) -> Block {
        let mut transactions = vec![self.spec.genesis_block().transactions[0].clone()];
        transactions.extend(txs);
        Block { header: self.spec.genesis_block().header, transactions }
    }
}

fn coin10() -> Amount {
    Amount::from_coins(10)
}

/// `remove_for_block` with the block's ids computed here, as connecting
/// it computes them.
fn remove_mined(pool: &mut Mempool, block: &Block) -> Vec<Hash256> {
    pool.remove_for_block(block, &txids(&block.transactions))
}

fn txids(txs: &[Transaction]) -> Vec<Hash256> {
    txs.iter().map(Transaction::txid).collect()
}

#[test]
fn accepts_valid_and_fills_the_signature_cache() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    let tx = fx.spend(fx.coins[0], coin10(), 1000);
    let accepted = fx.accept(&mut pool, tx.clone()).unwrap();
    assert_eq!(
        accepted,
        AcceptedTx {
            txid: tx.txid(),
            fee: Amount::from_units(1000),
            size: tx.encoded_size(),
            evicted: vec![],
            replaced: vec![],
            ancestors: 0
        }
    );
    assert_eq!((pool.len(), pool.bytes()), (1, tx.encoded_size()));
    assert!(pool.contains(&tx.txid()) && pool.get(&tx.txid()) == Some(tx.clone()));
    let entry = pool.entry(&tx.txid()).unwrap();
    assert_eq!((entry.fee.units(), entry.time), (1000, NOW));
    assert_eq!(pool.spends(&fx.coins[0]), Some(tx.txid()));
    assert_eq!(pool.spent_outpoints().collect::<Vec<_>>(), vec![&fx.coins[0]]);
    assert_eq!(pool.outputs_to(&fx.addr()), vec![(OutPoint { txid: tx.txid(), vout: 0 }, tx.outputs[0])]);
    assert_eq!(fx.cache.len(), 1);
    assert_eq!(fx.accept(&mut pool, tx.clone()), Err(MempoolError::AlreadyKnown(tx.txid())));

    // The block mining it connects without verifying the signature again.
    let block = fx.block(vec![tx.clone()]);
    let ctx = ConnectContext { subsidy: lode_core::subsidy::block_subsidy(&fx.spec, Height(50)), ..fx.ctx() };
    let mut cb = block.clone();
    if let Unlock::Coinbase { height, .. } = &mut cb.transactions[0].inputs[0].unlock {
        *height = Height(50);
    }
    let out = connect_block(&cb, Height(50), &ctx, &fx.utxo, Some(&fx.cache)).unwrap();
    assert_eq!((out.sigs_verified, out.sigs_cached), (0, 1));
}

#[test]
fn a_replacement_paying_too_little_is_refused_naming_what_it_must_pay() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    let a = fx.spend(fx.coins[0], coin10(), 1000);
    let size = a.encoded_size() as u64;
    fx.accept(&mut pool, a.clone()).unwrap();
    // A higher rate is not enough: the fee must also cover the original's
    // fee plus the incremental relay fee (1/byte) for its own bytes.
    let stingy = fx.spend(fx.coins[0], coin10(), 1001);
    let err = fx.accept(&mut pool, stingy).unwrap_err();
    let required = 1000 + size;
    match &err {
        MempoolError::ReplacementTooCheap { with, required: r, fee, outpoint, .. } => {
            assert_eq!((*with, *r, *fee, *outpoint), (a.txid(), required, 1001, fx.coins[0]));
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&format!("must pay at least {required}")) && text.contains(&a.txid().to_hex()), "{text}");
    assert!(!err.is_consensus_invalid());
    let just_short = fx.spend(fx.coins[0], coin10(), required - 1);
    assert!(matches!(fx.accept(&mut pool, just_short), Err(MempoolError::ReplacementTooCheap { .. })));
    assert_eq!(pool.txids(), vec![a.txid()], "the original stays");
    // Exactly enough replaces it.
    let b = fx.spend(fx.coins[0], coin10(), required);
    let r = fx.accept(&mut pool, b.clone()).unwrap();
    assert_eq!((r.replaced, r.evicted), (vec![a.txid()], vec![]));
    assert_eq!(pool.txids(), vec![b.txid()]);
    assert_eq!(pool.spends(&fx.coins[0]), Some(b.txid()));
}

#[test]
fn a_replacement_needs_a_higher_rate_than_each_direct_conflict() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    // A small, rich original; the replacement is twice its size.
    let a = fx.spend(fx.coins[0], coin10(), 20_000);
    fx.accept(&mut pool, a.clone()).unwrap();
    let big = fx.tx(&[(fx.coins[0], coin10()), (fx.coins[1], coin10())], 1, 20_000 + 1000);
    let size = big.encoded_size() as u64;
    let err = fx.accept(&mut pool, big).unwrap_err();
    let by_rate = 20_000 * size / a.encoded_size() as u64 + 1;
    match &err {
        MempoolError::ReplacementTooCheap { required, why, .. } => {
            assert_eq!(*required, by_rate, "{err}");
            assert!(why.contains("fee rate"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    let ok = fx.tx(&[(fx.coins[0], coin10()), (fx.coins[1], coin10())], 1, by_rate);
    assert_eq!(fx.accept(&mut pool, ok).unwrap().replaced, vec![a.txid()]);
}

#[test]
fn replaced_transactions_leave_with_their_descendants() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    let a = fx.spend(fx.coins[0], coin10(), 1000);
    let child = fx.child(&a, 0, 1000);
    let grandchild = fx.child(&child, 0, 1000);
    let other = fx.spend(fx.coins[1], coin10(), 1000);
    for tx in [&a, &child, &grandchild, &other] {
        fx.accept(&mut pool, tx.clone()).unwrap();
    }
    assert_eq!(pool.package_counts(&a.txid()), Some((1, 3)));
    assert_eq!(pool.package_counts(&grandchild.txid()), Some((3, 1)));
    let size = a.encoded_size() as u64;
    // It must pay for all three it evicts.
    let short = fx.spend(fx.coins[0], coin10(), 2000 + size);
    assert!(
        matches!(fx.accept(&mut pool, short), Err(MempoolError::ReplacementTooCheap { required, .. }) if required == 3000 + size)
    );
    let b = fx.spend(fx.coins[0], coin10(), 3000 + size);
    let mut replaced = fx.accept(&mut pool, b.clone()).unwrap().replaced;
    replaced.sort();
    let mut expected = vec![a.txid(), child.txid(), grandchild.txid()];
    expected.sort();
    assert_eq!(replaced, expected);
    let mut held = pool.txids();
    held.sort();
    let mut expected = vec![b.txid(), other.txid()];
    expected.sort();
    assert_eq!(held, expected);
}

#[test]
fn replacements_are_bounded_may_not_spend_what_they_replace_nor_add_unconfirmed_parents() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy { max_replacement_evictions: 2, ..Default::default() });
    let a = fx.tx(&[(fx.coins[0], coin10())], 2, 1000);
    fx.accept(&mut pool, a.clone()).unwrap();
    let rich = 1_000_000;
    // Spending the original's output while replacing it.
    let own_child =
        fx.tx(&[(fx.coins[0], coin10()), (OutPoint { txid: a.txid(), vout: 0 }, a.outputs[0].value)], 1, rich);
    let err = fx.accept(&mut pool, own_child).unwrap_err();
    assert_eq!(err, MempoolError::SpendsReplaced { outpoint: OutPoint { txid: a.txid(), vout: 0 } });
    // A new unconfirmed parent.
    let p = fx.spend(fx.coins[1], coin10(), 1000);
    fx.accept(&mut pool, p.clone()).unwrap();
    let with_parent =
        fx.tx(&[(fx.coins[0], coin10()), (OutPoint { txid: p.txid(), vout: 0 }, p.outputs[0].value)], 1, rich);
    assert!(matches!(fx.accept(&mut pool, with_parent), Err(MempoolError::ReplacementAddsUnconfirmed { .. })));
    // Three to evict with a limit of two.
    fx.accept(&mut pool, fx.child(&a, 0, 1000)).unwrap();
    fx.accept(&mut pool, fx.child(&a, 1, 1000)).unwrap();
    let err = fx.accept(&mut pool, fx.spend(fx.coins[0], coin10(), rich)).unwrap_err();
    assert_eq!(err, MempoolError::TooManyReplacements { count: 3, limit: 2 });
    assert_eq!(pool.len(), 4, "nothing was evicted for refused replacements");
}

#[test]
fn bad_signature_is_invalid_and_not_cached() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    let mut bad = fx.spend(fx.coins[0], coin10(), 1000);
    if let Unlock::Signature { sig, .. } = &mut bad.inputs[0].unlock {
        sig.0[3] ^= 1;
    }
    let err = fx.accept(&mut pool, bad).unwrap_err();
    assert_eq!(err, MempoolError::Invalid(TxError::BadSignature(0)));
    assert!(err.is_consensus_invalid(), "{err}");
    assert!(pool.is_empty() && fx.cache.is_empty());
}

#[test]
fn policy_refusals_are_not_consensus_invalid() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    let cheap = fx.spend(fx.coins[1], coin10(), 10);
    let size = cheap.encoded_size();
    let err = fx.accept(&mut pool, cheap).unwrap_err();
    assert_eq!(err, MempoolError::FeeTooLow { fee: 10, size, required: size as u64 });
    assert!(!err.is_consensus_invalid() && err.to_string().contains("below the minimum relay fee"));
    // Exactly the minimum is enough.
    fx.accept(&mut pool, fx.spend(fx.coins[1], coin10(), size as u64)).unwrap();

    let unknown = OutPoint { txid: Hash256([99; 32]), vout: 0 };
    let err = fx.accept(&mut pool, fx.spend(unknown, coin10(), 1000)).unwrap_err();
    assert_eq!(err, MempoolError::MissingInputs { index: 0, outpoint: unknown });
    assert!(!err.is_consensus_invalid());

    let coinbase = fx.spec.genesis_block().transactions[0].clone();
    let err = fx.accept(&mut pool, coinbase).unwrap_err();
    assert!(err.is_consensus_invalid(), "{err}");
    assert_eq!(pool.len(), 1);
}

#[test]
fn unconfirmed_chains_up_to_the_limit() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy { max_chain: 3, ..Default::default() });
    let mut parent = fx.spend(fx.coins[0], coin10(), 1000);
    fx.accept(&mut pool, parent.clone()).unwrap();
    for i in 1..4 {
        let tx = fx.child(&parent, 0, 1000);
        let r = fx.accept(&mut pool, tx.clone());
        if i < 3 {
            r.unwrap();
        } else {
            assert_eq!(r, Err(MempoolError::ChainTooLong { length: 4, limit: 3 }));
            assert!(r.unwrap_err().to_string().contains("exceed the limit of 3"));
        }
        parent = tx;
    }
    assert_eq!(pool.len(), 3);
    let (txs, fees) = pool.select_for_block(1 << 20);
    assert_eq!((txs.len(), fees.units()), (3, 3000));
    for w in txs.windows(2) {
        assert_eq!(w[1].inputs[0].prevout.txid, w[0].txid(), "parents before children");
    }
}

#[test]
fn fan_out_is_limited_by_descendants() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy { max_descendants: 3, ..Default::default() });
    let parent = fx.tx(&[(fx.coins[0], coin10())], 4, 1000);
    fx.accept(&mut pool, parent.clone()).unwrap();
    fx.accept(&mut pool, fx.child(&parent, 0, 1000)).unwrap();
    fx.accept(&mut pool, fx.child(&parent, 1, 1000)).unwrap();
    let err = fx.accept(&mut pool, fx.child(&parent, 2, 1000)).unwrap_err();
    assert_eq!(err, MempoolError::TooManyDescendants { ancestor: parent.txid(), count: 4, limit: 3 });
    assert_eq!(pool.descendant_package(&parent.txid()).map(|p| p.fee), Some(3000));
}

#[test]
fn full_pool_evicts_the_cheapest_package() {
    let fx = Fx::new();
    let size = fx.spend(fx.coins[0], coin10(), 1000).encoded_size();
    let mut pool = Mempool::new(MempoolPolicy { max_bytes: size * 3, ..Default::default() });
    let cheap = fx.spend(fx.coins[0], coin10(), 500);
    let child = fx.child(&cheap, 0, 2000);
    fx.accept(&mut pool, cheap.clone()).unwrap();
    fx.accept(&mut pool, child.clone()).unwrap();
    fx.accept(&mut pool, fx.spend(fx.coins[1], coin10(), 5000)).unwrap();
    assert_eq!(pool.bytes(), size * 3);
    // A better transaction evicts the cheap parent together with its child
    // (package rate 1250/size < 6000/size), though the child alone pays more.
    let better = fx.accept(&mut pool, fx.spend(fx.coins[2], coin10(), 6000)).unwrap();
    let mut evicted = better.evicted.clone();
    evicted.sort();
    let mut expected = vec![cheap.txid(), child.txid()];
    expected.sort();
    assert_eq!(evicted, expected);
    assert!(!pool.contains(&cheap.txid()) && !pool.contains(&child.txid()));
    assert_eq!(pool.len(), 2);
    fx.accept(&mut pool, fx.spend(fx.coins[3], coin10(), 4000)).unwrap();
    // Full again: a worse one is refused, and nothing was evicted for it.
    let worse = fx.spend(fx.coins[4], coin10(), 300);
    assert_eq!(fx.accept(&mut pool, worse), Err(MempoolError::MempoolFull));
    assert_eq!(pool.len(), 3);
}

#[test]
fn eviction_never_takes_the_newcomers_own_parent() {
    let fx = Fx::new();
    let size = fx.spend(fx.coins[0], coin10(), 1000).encoded_size();
    let mut pool = Mempool::new(MempoolPolicy { max_bytes: size * 2, ..Default::default() });
    let poor = fx.spend(fx.coins[0], coin10(), 300);
    let medium = fx.spend(fx.coins[1], coin10(), 2000);
    fx.accept(&mut pool, poor.clone()).unwrap();
    fx.accept(&mut pool, medium.clone()).unwrap();
    // A rich child of the poor parent: the medium one goes, the parent stays.
    let rich = fx.child(&poor, 0, 9000);
    let r = fx.accept(&mut pool, rich.clone()).unwrap();
    assert_eq!(r.evicted, vec![medium.txid()]);
    assert!(pool.contains(&poor.txid()) && pool.contains(&rich.txid()));
}

#[test]
fn blocks_remove_mined_conflicting_and_their_descendants() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    let a = fx.spend(fx.coins[0], coin10(), 1000);
    let a_child = fx.child(&a, 0, 1000);
    let a_grandchild = fx.child(&a_child, 0, 1000);
    let b = fx.spend(fx.coins[1], coin10(), 1000);
    let b_child = fx.child(&b, 0, 1000);
    for tx in [&a, &a_child, &a_grandchild, &b, &b_child] {
        fx.accept(&mut pool, tx.clone()).unwrap();
    }
    // A block mines b and a different spend of a's coin.
    let rival = fx.spend(fx.coins[0], coin10(), 3000);
    let mut removed = remove_mined(&mut pool, &fx.block(vec![b.clone(), rival]));
    pool.assert_consistent();
    removed.sort();
    let mut expected = vec![a.txid(), a_child.txid(), a_grandchild.txid()];
    expected.sort();
    assert_eq!(removed, expected, "the conflict and its descendants");
    // b is mined; its child stays and is now a chain-rooted transaction.
    assert_eq!(pool.txids(), vec![b_child.txid()]);
    assert_eq!(pool.select_for_block(1 << 20).0, vec![b_child]);
}

#[test]
fn reorg_readmits_and_drops_what_no_longer_connects() {
    let mut fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    // Confirmed in a block that is about to be disconnected: x and y.
    let x = fx.spend(fx.coins[0], coin10(), 1000);
    let y = fx.spend(fx.coins[1], coin10(), 1000);
    for tx in [&x, &y] {
        fx.utxo.remove(&tx.inputs[0].prevout);
        let coin = Coin { output: tx.outputs[0], height: Height(49), coinbase: false };
        fx.utxo.insert(OutPoint { txid: tx.txid(), vout: 0 }, coin);
    }
    // Mempool children of both, spending their confirmed outputs.
    let x_child = fx.child(&x, 0, 1000);
    let y_child = fx.child(&y, 0, 1000);
    fx.accept(&mut pool, x_child.clone()).unwrap();
    fx.accept(&mut pool, y_child.clone()).unwrap();
    // The block is disconnected; the new branch spends y's coin differently.
    fx.utxo.retain(|op, _| *op != OutPoint { txid: x.txid(), vout: 0 } && op.txid != y.txid());
    for tx in [&x, &y] {
        let coin = Coin { output: TxOut { value: coin10(), address: fx.addr() }, height: Height(1), coinbase: false };
        fx.utxo.insert(tx.inputs[0].prevout, coin);
    }
    let rival = fx.spend(fx.coins[1], coin10(), 5000);
    fx.utxo.remove(&fx.coins[1]);
    fx.utxo.insert(
        OutPoint { txid: rival.txid(), vout: 0 },
        Coin { output: rival.outputs[0], height: Height(49), coinbase: false },
    );
    let coinbase = fx.spec.genesis_block().transactions[0].clone();
    let n = pool.readmit(vec![coinbase, x.clone(), y.clone()], &fx.utxo, Height(50), &fx.ctx(), &fx.cache, NOW);
    pool.assert_consistent();
    assert_eq!(n, 1, "x comes back; y is double-spent by the new branch; the coinbase is skipped");
    let mut held = pool.txids();
    held.sort();
    let mut expected = vec![x.txid(), x_child.txid()];
    expected.sort();
    assert_eq!(held, expected, "y's orphaned child is dropped");
    // x now carries its child in its package; selection keeps the order.
    assert_eq!(pool.descendant_package(&x.txid()).map(|p| p.fee), Some(2000));
    assert_eq!(txids(&pool.select_for_block(1 << 20).0), vec![x.txid(), x_child.txid()]);
}

#[test]
fn a_disconnected_blocks_transaction_below_the_fee_floor_comes_back() {
    let fx = Fx::new();
    // This node's floor is 10 units/byte; a miner took x at a lower rate.
    let mut pool = Mempool::new(MempoolPolicy { min_fee_rate: 10, ..Default::default() });
    let x = fx.spend(fx.coins[0], coin10(), 200);
    assert!(matches!(fx.accept(&mut pool, x.clone()), Err(MempoolError::FeeTooLow { .. })));
    // The block holding x is disconnected: its input is unspent again.
    let n = pool.readmit(vec![x.clone()], &fx.utxo, Height(50), &fx.ctx(), &fx.cache, NOW);
    pool.assert_consistent();
    assert_eq!((n, pool.txids()), (1, vec![x.txid()]), "a mined transaction was lost at a reorg");
    // New transactions still pay the floor.
    let y = fx.spend(fx.coins[1], coin10(), 200);
    assert!(matches!(fx.accept(&mut pool, y), Err(MempoolError::FeeTooLow { .. })));
}

#[test]
fn old_transactions_expire_with_their_descendants() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy { expiry_secs: 100, ..Default::default() });
    let old = fx.spend(fx.coins[0], coin10(), 1000);
    fx.accept(&mut pool, old.clone()).unwrap();
    let young = fx.child(&old, 0, 1000);
    pool.accept(young, &fx.utxo, Height(50), &fx.ctx(), &fx.cache, NOW + 60).unwrap();
    let other = fx.spend(fx.coins[1], coin10(), 1000);
    pool.accept(other.clone(), &fx.utxo, Height(50), &fx.ctx(), &fx.cache, NOW + 60).unwrap();
    assert_eq!(pool.expire(NOW + 100), 0);
    assert_eq!(pool.expire(NOW + 101), 2, "the old one and its child");
    pool.assert_consistent();
    assert_eq!(pool.txids(), vec![other.txid()]);
}

#[test]
fn selection_prefers_packages_and_respects_the_budget() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    let poor = fx.spend(fx.coins[0], coin10(), 400);
    let rich_child = fx.child(&poor, 0, 10_000);
    let medium = fx.spend(fx.coins[1], coin10(), 3000);
    let low = fx.spend(fx.coins[2], coin10(), 1000);
    for tx in [&poor, &rich_child, &medium, &low] {
        fx.accept(&mut pool, tx.clone()).unwrap();
    }
    let size = poor.encoded_size();
    let (all, fees) = pool.select_for_block(1 << 20);
    // Package (poor + rich child) pays 5200 per tx: ahead of medium.
    assert_eq!(txids(&all), vec![poor.txid(), rich_child.txid(), medium.txid(), low.txid()]);
    assert_eq!(fees.units(), 14_400);
    // Room for three: the package and medium.
    let (three, fees) = pool.select_for_block(size * 3);
    assert_eq!(txids(&three), vec![poor.txid(), rich_child.txid(), medium.txid()]);
    assert_eq!(fees.units(), 13_400);
    // Room for one: the package does not fit, medium does, then low does not.
    let (one, _) = pool.select_for_block(size);
    assert_eq!(txids(&one), vec![medium.txid()]);
    assert!(pool.select_for_block(size - 1).0.is_empty());
}

#[test]
fn bookkeeping_stays_exact_under_random_operations() {
    use rand::{Rng, SeedableRng};
    let mut fx = Fx::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let size = fx.spend(fx.coins[0], coin10(), 1000).encoded_size();
    let mut pool = Mempool::new(MempoolPolicy { max_bytes: size * 12, max_chain: 5, ..Default::default() });
    // Spendable (outpoint, value): the chain's coins, then mempool outputs.
    let mut spendable: Vec<(OutPoint, Amount)> = fx.coins.iter().map(|c| (*c, coin10())).collect();
    let (mut evictions, mut refusals) = (0, HashMap::new());
    for step in 0..150 {
        if spendable.is_empty() {
            break;
        }
        let n_in = rng.gen_range(1..=2.min(spendable.len()));
        let inputs: Vec<(OutPoint, Amount)> =
            (0..n_in).map(|_| spendable.swap_remove(rng.gen_range(0..spendable.len()))).collect();
        let tx = fx.tx(&inputs, rng.gen_range(1..=3), rng.gen_range(300..5000));
        match fx.accept(&mut pool, tx.clone()) {
            Ok(a) => {
                evictions += a.evicted.len();
                spendable.extend(
                    tx.outputs.iter().enumerate().map(|(v, o)| (OutPoint { txid: tx.txid(), vout: v as u32 }, o.value)),
                )
            }
            Err(e) => {
                *refusals.entry(std::mem::discriminant(&e)).or_insert(0) += 1;
                spendable.extend(inputs)
            }
        }
        // Keep only what is still spendable (evictions remove outputs).
        spendable.retain(|(op, _)| fx.utxo.contains_key(op) || pool.contains(&op.txid));
        spendable.retain(|(op, _)| pool.spends(op).is_none());
        if step % 30 == 29 {
            let (txs, _) = pool.select_for_block(size * 4);
            let mut seen = HashSet::new();
            for tx in &txs {
                for i in &tx.inputs {
                    assert!(!pool.contains(&i.prevout.txid) || seen.contains(&i.prevout.txid), "parent first");
                }
                seen.insert(tx.txid());
            }
        }
        if step % 40 == 39 {
            // Mine a few: their outputs move to the chain, children stay.
            let (mined, _) = pool.select_for_block(size * 3);
            assert!(remove_mined(&mut pool, &fx.block(mined.clone())).is_empty());
            for tx in &mined {
                assert!(!pool.contains(&tx.txid()));
                for i in &tx.inputs {
                    fx.utxo.remove(&i.prevout);
                }
                for (v, o) in tx.outputs.iter().enumerate() {
                    let coin = Coin { output: *o, height: Height(49), coinbase: false };
                    fx.utxo.insert(OutPoint { txid: tx.txid(), vout: v as u32 }, coin);
                }
            }
        }
        pool.assert_consistent();
    }
    assert!(pool.len() > 3, "the run exercised a populated pool");
    assert!(evictions > 0 && refusals.len() >= 2, "evictions {evictions}, refusals {refusals:?}");
}

#[test]
fn the_address_index_answers_from_what_entries_recorded_at_admission() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    let other = Address([42; 20]);
    let mut pay = fx.spend(fx.coins[0], coin10(), 1000);
    pay.outputs[0].address = other;
    pay.sign_inputs(&fx.spec.genesis_hash(), &[&fx.key], &[coin10()]);
    fx.accept(&mut pool, pay.clone()).unwrap();
    let keep = fx.spend(fx.coins[1], coin10(), 1000);
    fx.accept(&mut pool, keep.clone()).unwrap();

    let entry = pool.entry(&pay.txid()).unwrap();
    assert_eq!(entry.spent, vec![fx.utxo[&fx.coins[0]].output], "the spent output, kept for queries");
    let ids = |a: &Address| -> HashSet<Hash256> { pool.touching(a).iter().map(|e| e.txid).collect() };
    assert_eq!(ids(&other), HashSet::from([pay.txid()]), "the payee");
    assert_eq!(ids(&fx.addr()), HashSet::from([pay.txid(), keep.txid()]), "the payer, through spent outputs");
    assert!(ids(&Address([7; 20])).is_empty());
    // Mined transactions leave the index with the pool.
    remove_mined(&mut pool, &fx.block(vec![pay.clone()]));
    pool.assert_consistent();
    assert!(pool.touching(&other).is_empty());
    assert_eq!(pool.touching(&fx.addr()).len(), 1);
}

#[test]
fn a_full_pool_costs_the_newcomer_the_incremental_fee_and_judges_fees_before_signatures() {
    let fx = Fx::new();
    let size = fx.spend(fx.coins[0], coin10(), 1000).encoded_size() as u64;
    let mut pool = Mempool::new(MempoolPolicy { max_bytes: size as usize * 2, ..Default::default() });
    fx.accept(&mut pool, fx.spend(fx.coins[0], coin10(), 2000)).unwrap();
    fx.accept(&mut pool, fx.spend(fx.coins[1], coin10(), 3000)).unwrap();
    // One unit more than the cheapest is not enough: the incremental relay
    // fee (1 per byte) must be paid on top of the victim's rate.
    let stingy = fx.spend(fx.coins[2], coin10(), 2001);
    assert_eq!(fx.accept(&mut pool, stingy), Err(MempoolError::MempoolFull));
    let enough = fx.spend(fx.coins[3], coin10(), 2000 + size + 1);
    assert_eq!(fx.accept(&mut pool, enough).unwrap().evicted.len(), 1);
    // A transaction too cheap to enter is refused for its fee before its
    // (broken) signature costs a verification.
    // (The cheapest held now pays 2000 + size + 1: this pays more than that
    // but less than that plus the incremental fee.)
    let mut forged = fx.spend(fx.coins[4], coin10(), 2000 + size + 10);
    if let lode_core::tx::Unlock::Signature { sig, .. } = &mut forged.inputs[0].unlock {
        *sig = Signature::default();
    }
    assert_eq!(fx.accept(&mut pool, forged), Err(MempoolError::MempoolFull));
}

#[test]
fn making_room_looks_at_the_cheapest_few_not_the_whole_pool() {
    let mut fx = Fx::new();
    // 600 one-input transactions at distinct fee rates fill the pool.
    let small = fx.spend(fx.coins[0], coin10(), 1000).encoded_size();
    let mut coins = Vec::new();
    for i in 0..600u32 {
        let op = OutPoint { txid: Hash256([7; 32]), vout: i };
        fx.utxo.insert(
            op,
            Coin { output: TxOut { value: coin10(), address: fx.addr() }, height: Height(1), coinbase: false },
        );
        coins.push(op);
    }
    let mut pool = Mempool::new(MempoolPolicy { max_bytes: small * 600, ..Default::default() });
    let mut ids = Vec::new();
    for (i, op) in coins.iter().enumerate() {
        let tx = fx.spend(*op, coin10(), 1000 + i as u64);
        ids.push(tx.txid());
        pool.accept(tx, &fx.utxo, Height(50), &fx.ctx(), &fx.cache, NOW).unwrap();
    }
    // A large, rich newcomer: twenty outputs need the room of several.
    let big = fx.tx(&[(fx.coins[1], coin10())], 20, 1_000_000);
    let room = big.encoded_size().div_ceil(small);
    graph::EVICTION_VISITS.with(|v| v.set(0));
    let accepted = pool.accept(big, &fx.utxo, Height(50), &fx.ctx(), &fx.cache, NOW).unwrap();
    pool.assert_consistent();
    assert_eq!(accepted.evicted.len(), room, "just enough evicted");
    let visits = graph::EVICTION_VISITS.with(|v| v.get());
    // The plan walks the score index from the cheapest: one visit per
    // victim (a rescan of the pool per victim would be ~600 per victim).
    assert!(visits <= room + 1, "{visits} index entries visited to evict {room}");
    let cheapest: HashSet<Hash256> = ids[..room].iter().copied().collect();
    assert_eq!(accepted.evicted.iter().copied().collect::<HashSet<_>>(), cheapest, "the cheapest went");
}

// A public explorer page asks for the unconfirmed outputs of any address:
// finding them scanned every transaction in the pool.
#[test]
fn unconfirmed_outputs_to_an_address_are_found_through_its_index_not_a_pool_scan() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    for &coin in &fx.coins[1..9] {
        fx.accept(&mut pool, fx.spend(coin, coin10(), 1000)).unwrap();
    }
    let other = Address([9; 20]);
    let mut pay = fx.spend(fx.coins[0], coin10(), 1000);
    pay.outputs[0].address = other;
    pay.sign_inputs(&fx.spec.genesis_hash(), &[&fx.key], &[coin10()]);
    fx.accept(&mut pool, pay.clone()).unwrap();
    OUTPUT_SCANS.with(|n| n.set(0));
    assert_eq!(pool.outputs_to(&other), vec![(OutPoint { txid: pay.txid(), vout: 0 }, pay.outputs[0])]);
    assert_eq!(OUTPUT_SCANS.with(|n| n.get()), 1, "transactions looked at");
    assert_eq!(pool.outputs_to(&fx.addr()).len(), 8, "the other eight pay the fixture's own address");
}
