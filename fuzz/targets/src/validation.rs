//! Structure-aware block validation. A real regtest chain is mined once
//! (deterministic keys); the fuzzer then builds a candidate next block
//! from choices (which coins each transaction spends, including coins the
//! block itself creates, values, fees, right or wrong keys, damaged
//! signatures, coinbase height and claim, transaction order, merkle root).
//! `check_block` and `connect_block` never panic, and for every block that
//! passes `check_block`, `connect_block` (parallel signatures, with or
//! without a warm signature cache) agrees with a serial model written
//! here: same verdict, same coins spent and created, same fees.

use arbitrary::{Result as ArbResult, Unstructured};
use lode_core::amount::MAX_MONEY;
use lode_core::block::{merkle_root, Block, BlockHeader, BLOCK_VERSION};
use lode_core::crypto::{signature_hash, spent_values_hash, verify, SecretKey, SigCache, Signature};
use lode_core::subsidy::block_subsidy;
use lode_core::tx::{OutPoint, TxIn, TxOut, Unlock};
use lode_core::validation::{check_block, connect_block, connect_block_deferred, Coin, ConnectContext};
use lode_core::{Address, Amount, ChainSpec, Hash256, Height, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

/// Blocks mined before the candidate: enough that the oldest coinbases are
/// mature and the newest are not.
const CHAIN_LEN: u32 = 16;

/// The mined chain's state: what a candidate block is checked against.
pub struct Base {
    /// regtest.
    pub spec: ChainSpec,
    /// The two keys every coin belongs to.
    pub keys: Vec<SecretKey>,
    /// The UTXO set after the chain.
    pub utxo: HashMap<OutPoint, Coin>,
    /// Tip hash.
    pub tip: Hash256,
    /// Tip time.
    pub time: u64,
}

fn key(i: u8) -> SecretKey {
    SecretKey::from_bytes(&[i + 1; 32]).expect("a small constant is a valid key")
}

/// Mines a block with these transactions on `prev` (regtest's limit is
/// met by about every other hash).
pub fn seal(spec: &ChainSpec, prev: Hash256, time: u64, transactions: Vec<Transaction>) -> Block {
    let ids: Vec<Hash256> = transactions.iter().map(Transaction::txid).collect();
    let mut header = BlockHeader {
        version: BLOCK_VERSION,
        prev_hash: prev,
        merkle_root: merkle_root(&ids).0,
        time,
        bits: spec.pow_limit,
        nonce: 0,
    };
    while lode_core::validation::check_header(&header, spec).is_err() {
        header.nonce += 1;
    }
    Block { header, transactions }
}

/// The chain every input is built on, mined on first use.
pub fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let spec = ChainSpec::regtest();
        let keys = vec![key(0), key(1)];
        let addrs: Vec<Address> = keys.iter().map(|k| Address::from_pubkey(&k.public_key())).collect();
        let mut utxo = HashMap::new();
        let mut tip = spec.genesis_hash();
        let mut time = spec.genesis.time;
        for h in 1..=CHAIN_LEN {
            let height = Height(h);
            let half = Amount::from_units(block_subsidy(&spec, height).units() / 2);
            let cb = Transaction::coinbase(
                height,
                b"fuzz".to_vec(),
                vec![TxOut { value: half, address: addrs[0] }, TxOut { value: half, address: addrs[1] }],
            );
            time += 1;
            let block = seal(&spec, tip, time, vec![cb]);
            check_block(&block, &spec).expect("the base chain is valid");
            let ctx = ConnectContext {
                genesis: spec.genesis_hash(),
                coinbase_maturity: spec.coinbase_maturity,
                subsidy: block_subsidy(&spec, height),
            };
            let out = connect_block(&block, height, &ctx, &utxo, None).expect("the base chain connects");
            for (op, _) in out.spent {
                utxo.remove(&op);
            }
            utxo.extend(out.created);
            tip = block.hash();
        }
        Base { spec, keys, utxo, tip, time }
    })
}

/// Height of the candidate block.
pub fn candidate_height() -> Height {
    Height(CHAIN_LEN + 1)
}

fn context(spec: &ChainSpec, height: Height) -> ConnectContext {
    ConnectContext {
        genesis: spec.genesis_hash(),
        coinbase_maturity: spec.coinbase_maturity,
        subsidy: block_subsidy(spec, height),
    }
}

/// Builds a candidate block from the fuzzer's choices. With no choices
/// left (all-zero or empty input) it is a valid coinbase-only block.
pub fn build(u: &mut Unstructured<'_>) -> ArbResult<Block> {
    let b = base();
    let spec = &b.spec;
    let height = candidate_height();
    let genesis = spec.genesis_hash();
    let addrs: Vec<Address> = b.keys.iter().map(|k| Address::from_pubkey(&k.public_key())).collect();
    let mut pool: Vec<(OutPoint, Coin)> = b.utxo.iter().map(|(o, c)| (*o, *c)).collect();
    pool.sort_by_key(|(o, _)| *o);
    let mut txs: Vec<Transaction> = Vec::new();
    let mut claimed_fees: u64 = 0;
    let n_tx = u.int_in_range(0..=6u8)?;
    for _ in 0..n_tx {
        let n_in = u.int_in_range(1..=3u8)?;
        let mut inputs = Vec::new();
        let mut values = Vec::new();
        let mut owners = Vec::new();
        for _ in 0..n_in {
            let pick: u8 = u.arbitrary()?;
            let (op, value, owner) = if pick < 240 && !pool.is_empty() {
                let (op, coin) = pool[usize::from(pick) % pool.len()];
                let owner = addrs.iter().position(|a| *a == coin.output.address).unwrap_or(0);
                (op, coin.output.value, owner)
            } else {
                let op = OutPoint { txid: Hash256(u.arbitrary()?), vout: u.arbitrary()? };
                (op, Amount::from_units(u.arbitrary()?), usize::from(pick) % 2)
            };
            inputs.push(TxIn {
                prevout: op,
                unlock: Unlock::Signature { pubkey: b.keys[owner].public_key(), sig: Signature::default() },
            });
            values.push(value);
            owners.push(owner);
        }
        let total_in: u64 = values.iter().map(|v| v.units()).fold(0, u64::saturating_add);
        let fee: u64 = if u.ratio(1, 8)? { u.arbitrary()? } else { u.int_in_range(0..=10_000)? };
        let n_out = u.int_in_range(1..=3u8)?;
        let spend = total_in.saturating_sub(fee);
        let mut outputs = Vec::new();
        for i in 0..n_out {
            let share = spend / u64::from(n_out) + if i == 0 { spend % u64::from(n_out) } else { 0 };
            let value = if u.ratio(1, 16)? { u.arbitrary()? } else { share };
            let to = usize::from(u.arbitrary::<u8>()? % 2);
            outputs.push(TxOut { value: Amount::from_units(value), address: addrs[to] });
        }
        let mut tx = Transaction { version: 1, inputs, outputs, lock_time: 0 };
        // Sign with the owner's key, or now and then the other one.
        let signers: Vec<&SecretKey> =
            owners.iter().map(|&o| if u.ratio(1, 16).unwrap_or(false) { &b.keys[1 - o] } else { &b.keys[o] }).collect();
        // The values signed are the ones claimed (wrong for made-up inputs).
        tx.sign_inputs(&genesis, &signers, &values);
        // Signing put the signer's key in: a wrong signer is also a
        // key that does not match the coin's address.
        if u.ratio(1, 16)? {
            let i = usize::from(u.arbitrary::<u8>()?) % tx.inputs.len();
            if let Unlock::Signature { sig, .. } = &mut tx.inputs[i].unlock {
                let byte = usize::from(u.arbitrary::<u8>()?) % 64;
                sig.0[byte] ^= 1 | u.arbitrary::<u8>()?;
            }
        }
        let txid = tx.txid();
        for (vout, o) in tx.outputs.iter().enumerate() {
            let coin = Coin { output: *o, height, coinbase: false };
            pool.push((OutPoint { txid, vout: vout as u32 }, coin));
        }
        claimed_fees = claimed_fees.saturating_add(fee);
        txs.push(tx);
        if u.ratio(1, 32)? {
            let again = txs[txs.len() - 1].clone();
            txs.push(again);
        }
    }
    if txs.len() > 1 && u.ratio(1, 8)? {
        let i = usize::from(u.arbitrary::<u8>()?) % txs.len();
        let j = usize::from(u.arbitrary::<u8>()?) % txs.len();
        txs.swap(i, j);
    }
    let cb_height = if u.ratio(1, 16)? { Height(u.arbitrary()?) } else { height };
    let subsidy = block_subsidy(spec, height).units();
    let delta: i16 = if u.ratio(1, 8)? { u.arbitrary()? } else { 0 };
    let claim = subsidy.saturating_add(claimed_fees).saturating_add_signed(i64::from(delta));
    let cb_outputs =
        if claim == 0 { vec![] } else { vec![TxOut { value: Amount::from_units(claim), address: addrs[0] }] };
    let coinbase = Transaction::coinbase(cb_height, b"candidate".to_vec(), cb_outputs);
    txs.insert(0, coinbase);
    let ids: Vec<Hash256> = txs.iter().map(Transaction::txid).collect();
    let merkle = if u.ratio(1, 32)? { Hash256(u.arbitrary()?) } else { merkle_root(&ids).0 };
    let header = BlockHeader {
        version: BLOCK_VERSION,
        prev_hash: b.tip,
        merkle_root: merkle,
        time: b.time + 1,
        bits: spec.pow_limit,
        nonce: 0,
    };
    Ok(Block { header, transactions: txs })
}

/// What the serial model says connecting a block does.
#[derive(Debug, PartialEq, Eq)]
pub struct ModelOutcome {
    /// Coins of the UTXO set the block spends.
    pub spent: BTreeMap<OutPoint, Coin>,
    /// Coins the block leaves behind.
    pub created: BTreeMap<OutPoint, Coin>,
    /// Fees, in base units.
    pub fees: u64,
}

/// The UTXO rules, one transaction and one signature at a time.
pub fn serial_connect(
    block: &Block,
    height: Height,
    spec: &ChainSpec,
    utxo: &HashMap<OutPoint, Coin>,
) -> Result<ModelOutcome, String> {
    let max = u128::from(MAX_MONEY.units());
    let coinbase = block.transactions.first().ok_or("no transactions")?;
    match coinbase.inputs.first().map(|i| &i.unlock) {
        Some(Unlock::Coinbase { height: h, .. }) if *h == height => {}
        _ => return Err("first input is not a coinbase for this height".into()),
    }
    let mut spent = BTreeMap::new();
    let mut created: BTreeMap<OutPoint, Coin> = BTreeMap::new();
    let mut used: HashSet<OutPoint> = HashSet::new();
    let mut fees: u128 = 0;
    for (index, tx) in block.transactions.iter().enumerate() {
        let txid = tx.txid();
        if index > 0 {
            let mut coins = Vec::new();
            for input in &tx.inputs {
                if !used.insert(input.prevout) {
                    return Err(format!("tx {index} spends {:?} twice", input.prevout));
                }
                let coin = created
                    .get(&input.prevout)
                    .or_else(|| utxo.get(&input.prevout))
                    .copied()
                    .ok_or(format!("tx {index} spends a missing coin"))?;
                if coin.coinbase && height.0.saturating_sub(coin.height.0) < spec.coinbase_maturity {
                    return Err(format!("tx {index} spends an immature coinbase"));
                }
                match input.unlock {
                    Unlock::Signature { pubkey, .. } if Address::from_pubkey(&pubkey) == coin.output.address => {}
                    _ => return Err(format!("tx {index}: key does not match the coin")),
                }
                coins.push(coin);
            }
            let values: Vec<Amount> = coins.iter().map(|c| c.output.value).collect();
            let total_in: u128 = values.iter().map(|v| u128::from(v.units())).sum();
            let total_out: u128 = tx.outputs.iter().map(|o| u128::from(o.value.units())).sum();
            if total_in > max || total_out > max || total_in < total_out {
                return Err(format!("tx {index}: values out of range"));
            }
            let blank = tx.blank_hash();
            let values_hash = spent_values_hash(&values);
            for (i, input) in tx.inputs.iter().enumerate() {
                let Unlock::Signature { pubkey, sig } = &input.unlock else { unreachable!("checked above") };
                let msg = signature_hash(&spec.genesis_hash(), &blank, i as u32, &values_hash);
                if !verify(pubkey, &msg, sig) {
                    return Err(format!("tx {index} input {i}: bad signature"));
                }
            }
            fees += total_in - total_out;
            if fees > max {
                return Err("fees above MAX_MONEY".into());
            }
            for (input, coin) in tx.inputs.iter().zip(coins) {
                if created.remove(&input.prevout).is_none() {
                    spent.insert(input.prevout, coin);
                }
            }
        }
        for (vout, o) in tx.outputs.iter().enumerate() {
            created.insert(OutPoint { txid, vout: vout as u32 }, Coin { output: *o, height, coinbase: index == 0 });
        }
    }
    let allowed = u128::from(block_subsidy(spec, height).units()) + fees;
    let paid: u128 = coinbase.outputs.iter().map(|o| u128::from(o.value.units())).sum();
    if allowed > max || paid > max || paid > allowed {
        return Err("coinbase claims too much".into());
    }
    Ok(ModelOutcome { spent, created, fees: fees as u64 })
}

/// The fuzz entry point.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(block) = build(&mut u) else { return };
    check(&block);
}

/// Checks one candidate block against the model.
pub fn check(block: &Block) {
    let b = base();
    let spec = &b.spec;
    let height = candidate_height();
    let ctx = context(spec, height);
    let context_free = check_block(block, spec);
    let parallel = connect_block(block, height, &ctx, &b.utxo, None);
    if context_free.is_err() {
        return; // the chain never connects such a block
    }
    let model = serial_connect(block, height, spec, &b.utxo);
    match (&parallel, &model) {
        (Ok(out), Ok(m)) => {
            let spent: BTreeMap<OutPoint, Coin> = out.spent.iter().copied().collect();
            let created: BTreeMap<OutPoint, Coin> = out.created.iter().copied().collect();
            assert_eq!(spent.len(), out.spent.len(), "a coin is in the undo data twice");
            assert_eq!(spent, m.spent, "spent coins differ");
            assert_eq!(created, m.created, "created coins differ");
            assert_eq!(out.fees.units(), m.fees, "fees differ");
        }
        (Err(_), Err(_)) => {}
        (p, m) => panic!("connect_block {p:?} but the serial model {m:?}"),
    }
    // Deferred verification and a warm cache reach the same verdict.
    let deferred = connect_block_deferred(block, height, &ctx, &b.utxo).and_then(|p| p.verify(None).map(|_| ()));
    assert_eq!(deferred.is_ok(), parallel.is_ok(), "deferred verification disagrees");
    let cache = SigCache::new(1024);
    for tx in block.transactions.iter().skip(1) {
        let values: Vec<Amount> =
            tx.inputs.iter().map(|i| b.utxo.get(&i.prevout).map(|c| c.output.value).unwrap_or_default()).collect();
        let checks = tx.sig_checks(&spec.genesis_hash(), &values);
        let good: Vec<_> = checks.into_iter().filter(|c| c.verify()).collect();
        cache.insert_all(&good);
    }
    let cached = connect_block(block, height, &ctx, &b.utxo, Some(&cache));
    assert_eq!(cached.is_ok(), parallel.is_ok(), "the signature cache changed the verdict");
}
