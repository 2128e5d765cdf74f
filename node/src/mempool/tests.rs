use super::*;
use lode_core::crypto::{SecretKey, Signature};
use lode_core::tx::{TxIn, TxOut, Unlock};
use lode_core::{Address, ChainSpec};

struct Fx {
    spec: ChainSpec,
    key: SecretKey,
    utxo: HashMap<OutPoint, Coin>,
    coins: Vec<OutPoint>,
    cache: SigCache,
}

impl Fx {
    fn new() -> Fx {
        let key = SecretKey::generate();
        let addr = Address::from_pubkey(&key.public_key());
        let mut utxo = HashMap::new();
        let mut coins = Vec::new();
        for i in 0..10u8 {
            let op = OutPoint { txid: Hash256([i + 1; 32]), vout: 0 };
            utxo.insert(
                op,
                Coin {
                    output: TxOut { value: Amount::from_coins(10), address: addr },
                    height: Height(1),
                    coinbase: false,
                },
            );
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

    /// Spends `op` (worth `value`) paying `fee`.
    fn spend(&self, op: OutPoint, value: Amount, fee: u64) -> Transaction {
        let mut tx = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prevout: op,
                unlock: Unlock::Signature { pubkey: self.key.public_key(), sig: Signature::default() },
            }],
            outputs: vec![TxOut { value: Amount::from_units(value.units() - fee), address: self.addr() }],
            lock_time: 0,
        };
        tx.sign_inputs(&self.spec.genesis_hash(), &[&self.key], &[value]);
        tx
    }

    fn accept(&self, pool: &mut Mempool, tx: Transaction) -> Result<Hash256, MempoolError> {
        pool.accept(tx, &self.utxo, Height(50), &self.ctx(), &self.cache, 1000)
    }
}

fn coin10() -> Amount {
    Amount::from_coins(10)
}

#[test]
fn accepts_valid_and_fills_the_signature_cache() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    let tx = fx.spend(fx.coins[0], coin10(), 1000);
    fx.accept(&mut pool, tx.clone()).unwrap();
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.bytes(), tx.encoded_size());
    assert_eq!(fx.cache.len(), 1);
    assert_eq!(fx.accept(&mut pool, tx.clone()), Err(MempoolError::AlreadyKnown(tx.txid())));
}

#[test]
fn rejects_a_conflict_naming_the_other_transaction() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    let a = fx.spend(fx.coins[0], coin10(), 1000);
    let b = fx.spend(fx.coins[0], coin10(), 2000);
    fx.accept(&mut pool, a.clone()).unwrap();
    let err = fx.accept(&mut pool, b).unwrap_err();
    assert_eq!(err, MempoolError::Conflict { outpoint: fx.coins[0], with: a.txid() });
    assert!(err.to_string().contains(&a.txid().to_hex()));
    assert!(!err.is_consensus_invalid());
}

#[test]
fn rejects_bad_signature_as_invalid_and_low_fee_as_policy() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    let mut bad = fx.spend(fx.coins[0], coin10(), 1000);
    if let Unlock::Signature { sig, .. } = &mut bad.inputs[0].unlock {
        sig.0[3] ^= 1;
    }
    let err = fx.accept(&mut pool, bad).unwrap_err();
    assert!(err.is_consensus_invalid(), "{err}");
    let cheap = fx.spend(fx.coins[1], coin10(), 10);
    assert!(matches!(fx.accept(&mut pool, cheap), Err(MempoolError::FeeTooLow { .. })));
    assert!(pool.is_empty());
}

#[test]
fn unconfirmed_chains_up_to_the_limit() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy { max_chain: 3, ..Default::default() });
    let mut value = coin10();
    let mut op = fx.coins[0];
    for i in 0..4 {
        let tx = fx.spend(op, value, 1000);
        let r = fx.accept(&mut pool, tx.clone());
        if i < 3 {
            r.unwrap();
        } else {
            assert!(matches!(r, Err(MempoolError::ChainTooLong { length: 4, limit: 3 })), "{r:?}");
        }
        op = OutPoint { txid: tx.txid(), vout: 0 };
        value = tx.outputs[0].value;
    }
    // Selection puts parents before children.
    let (txs, fees) = pool.select_for_block(1 << 20);
    assert_eq!(txs.len(), 3);
    assert_eq!(fees.units(), 3000);
    for w in txs.windows(2) {
        assert_eq!(w[1].inputs[0].prevout.txid, w[0].txid());
    }
}

#[test]
fn full_pool_evicts_the_cheapest_package() {
    let fx = Fx::new();
    let size = fx.spend(fx.coins[0], coin10(), 1000).encoded_size();
    let mut pool = Mempool::new(MempoolPolicy { max_bytes: size * 3, ..Default::default() });
    let cheap = fx.spend(fx.coins[0], coin10(), 500);
    let child = fx.spend(OutPoint { txid: cheap.txid(), vout: 0 }, cheap.outputs[0].value, 2000);
    fx.accept(&mut pool, cheap.clone()).unwrap();
    fx.accept(&mut pool, child.clone()).unwrap();
    fx.accept(&mut pool, fx.spend(fx.coins[1], coin10(), 5000)).unwrap();
    // A better transaction evicts the cheap parent together with its child.
    fx.accept(&mut pool, fx.spend(fx.coins[2], coin10(), 6000)).unwrap();
    assert!(!pool.contains(&cheap.txid()) && !pool.contains(&child.txid()));
    assert_eq!(pool.len(), 2);
    fx.accept(&mut pool, fx.spend(fx.coins[3], coin10(), 4000)).unwrap();
    // Full again: a worse one is refused.
    assert_eq!(fx.accept(&mut pool, fx.spend(fx.coins[4], coin10(), 300)), Err(MempoolError::MempoolFull));
}

#[test]
fn blocks_remove_mined_and_conflicting_transactions_and_reorgs_readmit() {
    let mut fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy::default());
    let a = fx.spend(fx.coins[0], coin10(), 1000);
    let a_child = fx.spend(OutPoint { txid: a.txid(), vout: 0 }, a.outputs[0].value, 1000);
    let b = fx.spend(fx.coins[1], coin10(), 1000);
    fx.accept(&mut pool, a.clone()).unwrap();
    fx.accept(&mut pool, a_child.clone()).unwrap();
    fx.accept(&mut pool, b.clone()).unwrap();
    // A block mines b and a different spend of a's coin.
    let rival = fx.spend(fx.coins[0], coin10(), 3000);
    let block = Block {
        header: fx.spec.genesis_block().header,
        transactions: vec![fx.spec.genesis_block().transactions[0].clone(), b.clone(), rival],
    };
    pool.remove_for_block(&block);
    assert!(pool.is_empty(), "mined b removed; a and its child conflict");
    // The block is disconnected: b comes back.
    fx.utxo.insert(fx.coins[1], fx.utxo[&fx.coins[1]]);
    let n = pool.readmit(vec![b.clone()], &fx.utxo, Height(50), &fx.ctx(), &fx.cache, 1000);
    assert_eq!(n, 1);
    assert!(pool.contains(&b.txid()));
}

#[test]
fn old_transactions_expire() {
    let fx = Fx::new();
    let mut pool = Mempool::new(MempoolPolicy { expiry_secs: 100, ..Default::default() });
    fx.accept(&mut pool, fx.spend(fx.coins[0], coin10(), 1000)).unwrap();
    assert_eq!(pool.expire(1050), 0);
    assert_eq!(pool.expire(1101), 1);
    assert!(pool.is_empty());
}
