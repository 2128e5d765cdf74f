//! One test per consensus rule: each builds a valid block or transaction,
//! breaks exactly that rule, and expects exactly that error.

use lode_core::block::{merkle_root, Block, BlockHeader, BLOCK_VERSION};
use lode_core::crypto::{SecretKey, SigCache, Signature};
use lode_core::difficulty::{next_bits, window_len, HeaderSample};
use lode_core::pow::CompactTarget;
use lode_core::subsidy::{block_subsidy, total_supply_at};
use lode_core::tx::{OutPoint, Transaction, TxIn, TxOut, Unlock};
use lode_core::validation::*;
use lode_core::{Address, Amount, ChainSpec, Hash256, Height, MAX_MONEY};
use std::collections::{HashMap, VecDeque};

struct Fixture {
    spec: ChainSpec,
    key: SecretKey,
    utxo: HashMap<OutPoint, Coin>,
    /// Mature coinbase coins to spend, one per outpoint.
    coins: Vec<OutPoint>,
    height: Height,
}

impl Fixture {
    fn new() -> Fixture {
        let spec = ChainSpec::regtest();
        let key = SecretKey::generate();
        let addr = Address::from_pubkey(&key.public_key());
        let mut utxo = HashMap::new();
        let mut coins = Vec::new();
        for i in 0..8u8 {
            let op = OutPoint { txid: Hash256([i + 1; 32]), vout: 0 };
            let coin = Coin {
                output: TxOut { value: Amount::from_coins(50), address: addr },
                height: Height(1),
                coinbase: true,
            };
            utxo.insert(op, coin);
            coins.push(op);
        }
        Fixture { spec, key, utxo, coins, height: Height(100) }
    }

    fn ctx(&self) -> ConnectContext {
        ConnectContext {
            genesis: self.spec.genesis_hash(),
            coinbase_maturity: self.spec.coinbase_maturity,
            subsidy: block_subsidy(&self.spec, self.height),
        }
    }

    fn addr(&self) -> Address {
        Address::from_pubkey(&self.key.public_key())
    }

    /// A signed spend of `inputs` paying `value` back to ourselves.
    fn spend(&self, inputs: &[OutPoint], value: Amount) -> Transaction {
        let mut tx = Transaction {
            version: 1,
            inputs: inputs
                .iter()
                .map(|op| TxIn {
                    prevout: *op,
                    unlock: Unlock::Signature { pubkey: self.key.public_key(), sig: Signature::default() },
                })
                .collect(),
            outputs: vec![TxOut { value, address: self.addr() }],
            lock_time: 0,
        };
        let values: Vec<Amount> = inputs.iter().map(|op| self.utxo[op].output.value).collect();
        let keys: Vec<&SecretKey> = inputs.iter().map(|_| &self.key).collect();
        tx.sign_inputs(&self.spec.genesis_hash(), &keys, &values);
        tx
    }

    /// A block at `self.height` with a coinbase claiming `claim` and `txs`.
    fn block(&self, claim: Amount, txs: Vec<Transaction>) -> Block {
        let coinbase =
            Transaction::coinbase(self.height, b"test".to_vec(), vec![TxOut { value: claim, address: self.addr() }]);
        let mut transactions = vec![coinbase];
        transactions.extend(txs);
        finish(&self.spec, transactions)
    }

    fn connect(&self, block: &Block) -> Result<ConnectOutcome, BlockError> {
        check_block(block, &self.spec)?;
        connect_block(block, self.height, &self.ctx(), &self.utxo, None)
    }
}

/// Sets the merkle root and mines a header meeting the regtest target.
fn finish(spec: &ChainSpec, transactions: Vec<Transaction>) -> Block {
    let ids: Vec<Hash256> = transactions.iter().map(Transaction::txid).collect();
    let mut block = Block {
        header: BlockHeader {
            version: 1,
            prev_hash: spec.genesis_hash(),
            merkle_root: merkle_root(&ids).0,
            time: spec.genesis.time + 60,
            bits: spec.pow_limit,
            nonce: 0,
        },
        transactions,
    };
    mine(&mut block.header, spec);
    block
}

/// Searches nonces until the hash meets the header's own target (only the
/// proof of work: tests mine headers that break other rules too).
fn mine(header: &mut BlockHeader, spec: &ChainSpec) {
    let target = header.bits.to_target().unwrap_or_else(|_| spec.pow_limit.to_target().unwrap());
    while !target.is_met_by(&header.hash()) {
        header.nonce += 1;
    }
}

fn tx_err(r: Result<ConnectOutcome, BlockError>) -> TxError {
    match r {
        Err(BlockError::Transaction { source, .. }) => source,
        other => panic!("expected a transaction error, got {other:?}"),
    }
}

fn fee_paying(f: &Fixture, op: OutPoint) -> Transaction {
    f.spend(&[op], Amount::from_coins(49))
}

#[test]
fn a_valid_block_connects_with_fees_and_undo() {
    let f = Fixture::new();
    let tx = fee_paying(&f, f.coins[0]);
    let claim = block_subsidy(&f.spec, f.height).checked_add(Amount::from_coins(1)).unwrap();
    let block = f.block(claim, vec![tx.clone()]);
    let out = f.connect(&block).unwrap();
    assert_eq!(out.fees, Amount::from_coins(1));
    assert_eq!(out.spent.len(), 1);
    assert_eq!(out.spent[0].0, f.coins[0]);
    assert_eq!(out.created.len(), 2);
    assert_eq!(out.sigs_verified, 1);
}

#[test]
fn rule_coinbase_pays_at_most_subsidy_plus_fees() {
    let f = Fixture::new();
    let claim = block_subsidy(&f.spec, f.height).checked_add(Amount::from_coins(1)).unwrap();
    let block = f.block(claim.checked_add(Amount::from_units(1)).unwrap(), vec![fee_paying(&f, f.coins[0])]);
    assert!(matches!(f.connect(&block), Err(BlockError::CoinbaseOverpays { .. })));
}

#[test]
fn rule_coinbase_commits_to_height() {
    let mut f = Fixture::new();
    let block = f.block(Amount::from_coins(1), vec![]);
    f.height = Height(101);
    assert_eq!(
        f.connect(&block).unwrap_err(),
        BlockError::BadCoinbaseHeight { expected: Height(101), found: Height(100) }
    );
}

#[test]
fn rule_block_has_transactions() {
    let f = Fixture::new();
    let block = finish(&f.spec, vec![]);
    assert_eq!(check_block(&block, &f.spec), Err(BlockError::NoTransactions));
}

#[test]
fn rule_first_transaction_is_coinbase() {
    let f = Fixture::new();
    let block = finish(&f.spec, vec![fee_paying(&f, f.coins[0])]);
    assert_eq!(check_block(&block, &f.spec), Err(BlockError::FirstNotCoinbase));
}

#[test]
fn rule_only_first_transaction_is_coinbase() {
    let f = Fixture::new();
    let cb2 = Transaction::coinbase(
        f.height,
        b"second".to_vec(),
        vec![TxOut { value: Amount::from_coins(1), address: f.addr() }],
    );
    let block = f.block(Amount::from_coins(1), vec![cb2]);
    assert_eq!(check_block(&block, &f.spec), Err(BlockError::ExtraCoinbase(1)));
}

#[test]
fn rule_merkle_root_matches() {
    let f = Fixture::new();
    let mut block = f.block(Amount::from_coins(1), vec![fee_paying(&f, f.coins[0])]);
    block.header.merkle_root = Hash256([9; 32]);
    assert!(matches!(check_block(&block, &f.spec), Err(BlockError::BadMerkleRoot { .. })));
}

#[test]
fn rule_merkle_duplicate_leaf_mutation_is_rejected() {
    let f = Fixture::new();
    let a = fee_paying(&f, f.coins[0]);
    let b = fee_paying(&f, f.coins[1]);
    let valid = f.block(Amount::from_coins(1), vec![a, b.clone()]);
    // [cb, a, b] and [cb, a, b, b] share a merkle root (CVE-2012-2459).
    let mut mutated = valid.clone();
    mutated.transactions.push(b);
    assert_eq!(mutated.compute_merkle_root().0, valid.header.merkle_root);
    assert_eq!(check_block(&mutated, &f.spec), Err(BlockError::MerkleMutation));
    assert!(check_block(&valid, &f.spec).is_ok());
}

#[test]
fn rule_block_size_limit() {
    let mut f = Fixture::new();
    f.spec.max_block_size = 1000;
    let txs: Vec<Transaction> = (0..8).map(|i| fee_paying(&f, f.coins[i])).collect();
    let block = f.block(Amount::from_coins(1), txs);
    assert!(matches!(check_block(&block, &f.spec), Err(BlockError::Oversized { .. })));
}

#[test]
fn rule_no_outpoint_spent_twice_in_a_transaction() {
    let f = Fixture::new();
    let tx = f.spend(&[f.coins[0], f.coins[0]], Amount::from_coins(99));
    let block = f.block(Amount::from_coins(1), vec![tx]);
    match check_block(&block, &f.spec) {
        Err(BlockError::Transaction { source: TxError::DuplicateInput(op), .. }) => assert_eq!(op, f.coins[0]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rule_no_outpoint_spent_twice_in_a_block() {
    let f = Fixture::new();
    let a = f.spend(&[f.coins[0]], Amount::from_coins(49));
    let b = f.spend(&[f.coins[0]], Amount::from_coins(48));
    let block = f.block(Amount::from_coins(1), vec![a, b]);
    assert_eq!(check_block(&block, &f.spec), Err(BlockError::DuplicateSpendInBlock(f.coins[0])));
}

#[test]
fn rule_inputs_exist_and_are_unspent() {
    let f = Fixture::new();
    let mut tx = fee_paying(&f, f.coins[0]);
    tx.inputs[0].prevout = OutPoint { txid: Hash256([0xee; 32]), vout: 3 };
    let block = f.block(Amount::from_coins(1), vec![tx]);
    assert!(matches!(tx_err(f.connect(&block)), TxError::MissingOrSpentInput { index: 0, .. }));
}

#[test]
fn spending_an_output_created_earlier_in_the_same_block_is_allowed() {
    let f = Fixture::new();
    let parent = f.spend(&[f.coins[0]], Amount::from_coins(50));
    let op = OutPoint { txid: parent.txid(), vout: 0 };
    let mut view_f = Fixture { utxo: f.utxo.clone(), ..Fixture::new() };
    view_f.key = f.key.clone();
    view_f.utxo.insert(op, Coin { output: parent.outputs[0], height: f.height, coinbase: false });
    let child = view_f.spend(&[op], Amount::from_coins(49));
    let block =
        f.block(block_subsidy(&f.spec, f.height).checked_add(Amount::from_coins(1)).unwrap(), vec![parent, child]);
    let out = f.connect(&block).unwrap();
    assert_eq!(out.spent.len(), 1, "the in-block output is not undo data");
    assert!(!out.created.iter().any(|(o, _)| *o == op), "spent in the block, so not created");
}

#[test]
fn rule_coinbase_outputs_mature() {
    let mut f = Fixture::new();
    f.height = Height(1 + f.spec.coinbase_maturity - 1);
    let block = f.block(Amount::from_coins(1), vec![fee_paying(&f, f.coins[0])]);
    assert!(matches!(tx_err(f.connect(&block)), TxError::ImmatureCoinbaseSpend { .. }));
    f.height = Height(1 + f.spec.coinbase_maturity);
    let block = f.block(Amount::from_coins(1), vec![fee_paying(&f, f.coins[0])]);
    assert!(f.connect(&block).is_ok());
}

#[test]
fn rule_output_values_within_max_money() {
    let f = Fixture::new();
    let mut tx = fee_paying(&f, f.coins[0]);
    tx.outputs[0].value = Amount::from_units(MAX_MONEY.units() + 1);
    assert_eq!(check_transaction(&tx, f.spec.max_block_size), Err(TxError::OutputAboveMaxMoney(0)));
    tx.outputs = vec![TxOut { value: MAX_MONEY, address: f.addr() }; 2];
    assert_eq!(check_transaction(&tx, f.spec.max_block_size), Err(TxError::OutputTotalAboveMaxMoney));
    tx.outputs = vec![TxOut { value: Amount::ZERO, address: f.addr() }];
    assert_eq!(check_transaction(&tx, f.spec.max_block_size), Err(TxError::ZeroValueOutput(0)));
}

#[test]
fn rule_input_sum_within_max_money() {
    let mut f = Fixture::new();
    for op in &f.coins[..2] {
        f.utxo.get_mut(op).unwrap().output.value = MAX_MONEY;
    }
    let tx = f.spend(&f.coins[..2], Amount::from_coins(1));
    let block = f.block(Amount::from_coins(1), vec![tx]);
    assert_eq!(tx_err(f.connect(&block)), TxError::InputTotalAboveMaxMoney);
}

#[test]
fn rule_fees_plus_subsidy_within_max_money() {
    let mut f = Fixture::new();
    f.utxo.get_mut(&f.coins[0]).unwrap().output.value = MAX_MONEY;
    let tx = f.spend(&f.coins[..1], Amount::from_units(1));
    let block = f.block(Amount::from_coins(1), vec![tx]);
    assert_eq!(f.connect(&block).unwrap_err(), BlockError::FeeOverflow);
}

#[test]
fn rule_inputs_cover_outputs() {
    let f = Fixture::new();
    let tx = f.spend(&[f.coins[0]], Amount::from_coins(51));
    let block = f.block(Amount::from_coins(1), vec![tx]);
    assert!(matches!(tx_err(f.connect(&block)), TxError::InsufficientInputs { .. }));
}

#[test]
fn rule_signatures_verify() {
    let f = Fixture::new();
    let mut txs: Vec<Transaction> = (0..6).map(|i| fee_paying(&f, f.coins[i])).collect();
    if let Unlock::Signature { sig, .. } = &mut txs[3].inputs[0].unlock {
        sig.0[5] ^= 0x40;
    }
    let block = f.block(Amount::from_coins(1), txs);
    match f.connect(&block) {
        Err(BlockError::Transaction { index: 4, source: TxError::BadSignature(0), .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn rule_key_matches_spent_address() {
    let f = Fixture::new();
    let other = SecretKey::generate();
    let mut tx = fee_paying(&f, f.coins[0]);
    let values = vec![f.utxo[&f.coins[0]].output.value];
    tx.sign_inputs(&f.spec.genesis_hash(), &[&other], &values);
    let block = f.block(Amount::from_coins(1), vec![tx]);
    assert_eq!(tx_err(f.connect(&block)), TxError::PubkeyMismatch(0));
}

#[test]
fn signature_hash_commits_to_the_network() {
    let f = Fixture::new();
    let tx = fee_paying(&f, f.coins[0]);
    let mut ctx = f.ctx();
    ctx.genesis = ChainSpec::devnet().genesis_hash();
    let (_, checks) = check_tx_inputs(&tx, f.height, &ctx, &f.utxo).unwrap();
    assert!(!checks[0].verify(), "a signature from one network must not verify on another");
}

#[test]
fn signature_hash_commits_to_the_spent_value() {
    let mut f = Fixture::new();
    let tx = fee_paying(&f, f.coins[0]);
    f.utxo.get_mut(&f.coins[0]).unwrap().output.value = Amount::from_coins(60);
    let (_, checks) = check_tx_inputs(&tx, f.height, &f.ctx(), &f.utxo).unwrap();
    assert!(!checks[0].verify());
}

#[test]
fn cached_signatures_are_not_verified_again() {
    let f = Fixture::new();
    let txs: Vec<Transaction> = (0..4).map(|i| fee_paying(&f, f.coins[i])).collect();
    let cache = SigCache::new(100);
    for tx in &txs[..3] {
        let (_, checks) = check_tx_inputs(tx, f.height, &f.ctx(), &f.utxo).unwrap();
        cache.insert_all(&checks);
    }
    let block = f.block(Amount::from_coins(1), txs);
    let out = connect_block(&block, f.height, &f.ctx(), &f.utxo, Some(&cache)).unwrap();
    assert_eq!((out.sigs_verified, out.sigs_cached), (1, 3));
}

#[test]
fn rule_transaction_shape() {
    let f = Fixture::new();
    let max = f.spec.max_block_size;
    let good = fee_paying(&f, f.coins[0]);
    let mut t = good.clone();
    t.inputs.clear();
    assert_eq!(check_transaction(&t, max), Err(TxError::NoInputs));
    let mut t = good.clone();
    t.outputs.clear();
    assert_eq!(check_transaction(&t, max), Err(TxError::NoOutputs));
    let mut t = good.clone();
    t.version = 2;
    assert_eq!(check_transaction(&t, max), Err(TxError::UnsupportedVersion(2)));
    let mut t = good.clone();
    t.lock_time = 5;
    assert_eq!(check_transaction(&t, max), Err(TxError::NonZeroLockTime(5)));
    assert!(matches!(check_transaction(&good, 50), Err(TxError::Oversized { .. })));
    let mut t = good.clone();
    t.inputs.push(TxIn { prevout: OutPoint::NULL, unlock: good.inputs[0].unlock.clone() });
    assert_eq!(check_transaction(&t, max), Err(TxError::NullPrevout(1)));
    let mut t = good.clone();
    t.inputs[0].unlock = Unlock::Coinbase { height: Height(1), extra: vec![] };
    assert_eq!(check_transaction(&t, max), Err(TxError::CoinbaseUnlockInSpend(0)));
    let mut cb = Transaction::coinbase(Height(1), vec![0; 101], good.outputs.clone());
    assert!(matches!(check_transaction(&cb, max), Err(TxError::CoinbaseExtraTooLong { len: 101, .. })));
    cb.inputs[0].unlock = good.inputs[0].unlock.clone();
    assert_eq!(check_transaction(&cb, max), Err(TxError::SignatureOnCoinbase));
    assert!(check_transaction(&good, max).is_ok());
}

#[test]
fn rule_proof_of_work_meets_target() {
    let f = Fixture::new();
    let mut block = f.block(Amount::from_coins(1), vec![]);
    while check_header(&block.header, &f.spec).is_ok() {
        block.header.nonce += 1;
    }
    assert!(matches!(check_header(&block.header, &f.spec), Err(BlockError::HighHash(_))));
}

#[test]
fn rule_target_within_limit_and_bits_well_formed() {
    let spec = ChainSpec::testnet();
    let mut h = spec.genesis_block().header;
    h.bits = CompactTarget(0x207fffff);
    assert_eq!(check_header(&h, &spec), Err(BlockError::TargetAboveLimit(h.bits)));
    h.bits = CompactTarget(0x04923456);
    assert!(matches!(check_header(&h, &spec), Err(BlockError::InvalidBits(_))));
}

#[test]
fn rule_bits_equal_expected_difficulty() {
    let spec = ChainSpec::regtest();
    let h = spec.genesis_block().header;
    let ctx = HeaderContext { expected_bits: CompactTarget(0x1f00ffff), median_time_past: 0, now: h.time };
    assert_eq!(
        check_header_context(&h, &ctx, &spec),
        Err(BlockError::BadDifficultyBits { expected: CompactTarget(0x1f00ffff), found: h.bits })
    );
}

#[test]
fn rule_timestamp_above_median_time_past() {
    let spec = ChainSpec::regtest();
    let h = spec.genesis_block().header;
    let times: Vec<u64> = (0..11).map(|i| h.time - 5 + i).collect();
    let mtp = median_time_past(&times);
    assert_eq!(mtp, h.time);
    let ctx = HeaderContext { expected_bits: h.bits, median_time_past: mtp, now: h.time };
    assert_eq!(check_header_context(&h, &ctx, &spec), Err(BlockError::TimeTooOld { time: h.time, median: mtp }));
    let ctx = HeaderContext { median_time_past: mtp - 1, ..ctx };
    assert!(check_header_context(&h, &ctx, &spec).is_ok());
}

#[test]
fn rule_timestamp_at_most_the_future_limit_ahead_is_deferred_not_invalid() {
    let spec = ChainSpec::testnet();
    let h = spec.genesis_block().header;
    let now = h.time - spec.max_future_block_secs - 1;
    let ctx = HeaderContext { expected_bits: h.bits, median_time_past: 0, now };
    let err = check_header_context(&h, &ctx, &spec).unwrap_err();
    assert!(matches!(err, BlockError::TimeTooFarInFuture { .. }));
    assert!(err.is_temporary());
    let ctx = HeaderContext { now: now + 1, ..ctx };
    assert!(check_header_context(&h, &ctx, &spec).is_ok());
}

#[test]
fn rule_header_version_is_one() {
    let f = Fixture::new();
    let block = f.block(Amount::from_coins(1), vec![]);
    assert!(check_header(&block.header, &f.spec).is_ok());
    for version in [0, 2, u32::MAX] {
        let mut header = block.header;
        header.version = version;
        mine(&mut header, &f.spec);
        assert_eq!(check_header(&header, &f.spec), Err(BlockError::BadHeaderVersion { expected: 1, found: version }));
    }
}

#[test]
fn connect_block_alone_refuses_an_outpoint_spent_twice_in_a_transaction() {
    let f = Fixture::new();
    // 50 + 50 counted from one 50-coin output: inflation if connect trusted
    // check_block to have run.
    let tx = f.spend(&[f.coins[0], f.coins[0]], Amount::from_coins(99));
    let block = f.block(Amount::from_coins(1), vec![tx]);
    let err = connect_block(&block, f.height, &f.ctx(), &f.utxo, None).unwrap_err();
    assert!(
        matches!(err, BlockError::Transaction { index: 1, source: TxError::DuplicateInput(op), .. } if op == f.coins[0]),
        "{err:?}"
    );
    assert!(connect_block_deferred(&block, f.height, &f.ctx(), &f.utxo).is_err());
}

#[test]
fn connect_block_alone_refuses_an_outpoint_spent_by_two_transactions() {
    let f = Fixture::new();
    let a = f.spend(&[f.coins[0]], Amount::from_coins(49));
    let b = f.spend(&[f.coins[1], f.coins[0]], Amount::from_coins(98));
    let block = f.block(Amount::from_coins(1), vec![a, b]);
    assert_eq!(
        connect_block(&block, f.height, &f.ctx(), &f.utxo, None).unwrap_err(),
        BlockError::DuplicateSpendInBlock(f.coins[0])
    );
    // An output created and spent inside the block cannot be spent again either.
    let parent = f.spend(&[f.coins[2]], Amount::from_coins(50));
    let op = OutPoint { txid: parent.txid(), vout: 0 };
    let mut with_parent = Fixture { utxo: f.utxo.clone(), ..Fixture::new() };
    with_parent.key = f.key.clone();
    with_parent.utxo.insert(op, Coin { output: parent.outputs[0], height: f.height, coinbase: false });
    let child = with_parent.spend(&[op], Amount::from_coins(49));
    let again = with_parent.spend(&[op], Amount::from_coins(48));
    let block = f.block(Amount::from_coins(1), vec![parent, child, again]);
    assert_eq!(
        connect_block(&block, f.height, &f.ctx(), &f.utxo, None).unwrap_err(),
        BlockError::DuplicateSpendInBlock(op)
    );
}

#[test]
fn signature_hash_commits_to_every_spent_value() {
    let f = Fixture::new();
    let inputs = &f.coins[..3];
    let tx = f.spend(inputs, Amount::from_coins(149));
    let values: Vec<Amount> = inputs.iter().map(|op| f.utxo[op].output.value).collect();
    let genesis = f.spec.genesis_hash();
    let msg0 = tx.signature_hash(&genesis, 0, &values);
    assert!(tx.sig_checks(&genesis, &values).iter().all(|c| c.verify()));
    for other in 0..values.len() {
        let mut lied = values.clone();
        lied[other] = Amount::from_coins(1);
        assert_ne!(tx.signature_hash(&genesis, 0, &lied), msg0, "input 0's message ignores input {other}'s value");
        // A signer told the wrong value for any input signs something the
        // network will not accept, so it cannot be tricked into a fee.
        assert!(!tx.sig_checks(&genesis, &lied)[0].verify(), "input {other}");
    }
    // The list must be complete: a missing value changes every message.
    assert_ne!(tx.signature_hash(&genesis, 0, &values[..2]), msg0);
}

/// A coinbase as a block template should build it: subsidy plus fees to
/// `address`, and no output at all when that is zero.
fn template_coinbase(height: Height, reward: Amount, address: Address) -> Transaction {
    let outputs = if reward == Amount::ZERO { Vec::new() } else { vec![TxOut { value: reward, address }] };
    Transaction::coinbase(height, b"template".to_vec(), outputs)
}

#[test]
fn rule_coinbase_may_have_no_outputs_once_there_is_nothing_to_claim() {
    let mut f = Fixture::new();
    let empty_era = f.spec.halving_interval * 33;
    assert_eq!(block_subsidy(&f.spec, Height(empty_era - 1)).units(), 1, "regtest's last paying era");
    f.height = Height(empty_era);
    assert_eq!(f.ctx().subsidy, Amount::ZERO);
    // A coinbase with nothing to claim and no fees: no outputs, valid.
    let block = finish(&f.spec, vec![template_coinbase(f.height, Amount::ZERO, f.addr())]);
    assert_eq!(block.transactions[0].outputs.len(), 0);
    let out = f.connect(&block).unwrap();
    assert!(out.created.is_empty() && out.spent.is_empty());
    // The next block builds on it and claims exactly its fees.
    f.height = Height(empty_era + 1);
    let tx = fee_paying(&f, f.coins[0]);
    let mut next = finish(&f.spec, vec![template_coinbase(f.height, Amount::from_coins(1), f.addr()), tx]);
    next.header.prev_hash = block.hash();
    mine(&mut next.header, &f.spec);
    let out = f.connect(&next).unwrap();
    assert_eq!(out.fees, Amount::from_coins(1));
    // A zero-value output stays invalid, in a coinbase too: no worthless
    // coin enters the UTXO set.
    let zero = Transaction::coinbase(f.height, vec![], vec![TxOut { value: Amount::ZERO, address: f.addr() }]);
    assert_eq!(check_transaction(&zero, f.spec.max_block_size), Err(TxError::ZeroValueOutput(0)));
    // With nothing to claim, claiming even one unit overpays.
    f.height = Height(empty_era);
    let over = f.block(Amount::from_units(1), vec![]);
    assert_eq!(
        f.connect(&over).unwrap_err(),
        BlockError::CoinbaseOverpays { paid: Amount::from_units(1), allowed: Amount::ZERO }
    );
}

/// Mines regtest far past its last halving the way `generatetoaddress` does
/// (timestamps one past the median when blocks come faster than the clock,
/// a template coinbase, a fee-paying spend every 97 blocks), checking every
/// block with the real rules and applying it to a UTXO map.
#[test]
fn mining_far_past_the_last_halving_keeps_working() {
    let spec = ChainSpec::regtest();
    let key = SecretKey::from_bytes(&[7u8; 32]).unwrap();
    let addr = Address::from_pubkey(&key.public_key());
    let genesis = spec.genesis_block();
    let last_height = spec.halving_interval * 64 + 500;
    // Every block is mined in the same second of wall-clock time.
    let now = spec.genesis.time + 1;
    let mut utxo: HashMap<OutPoint, Coin> = HashMap::new();
    let mut samples = vec![HeaderSample { time: genesis.header.time, bits: genesis.header.bits }];
    let mut tip = genesis.hash();
    // Oldest first, so every coin taken is long mature.
    let mut spendable: VecDeque<OutPoint> = VecDeque::new();
    let mut fees_paid = Amount::ZERO;
    let mut last_paying = Height(0);
    for h in 1..=last_height {
        let height = Height(h);
        let subsidy = block_subsidy(&spec, height);
        if subsidy > Amount::ZERO {
            last_paying = height;
        }
        let ctx = ConnectContext { genesis: spec.genesis_hash(), coinbase_maturity: spec.coinbase_maturity, subsidy };
        let mut txs = Vec::new();
        let mut fees = Amount::ZERO;
        if h % 97 == 0 {
            if let Some(op) = spendable.pop_front() {
                let value = utxo[&op].output.value;
                // Late coins are worth a unit or two: those pay no fee.
                let fee = Amount::from_units(if value.units() > 1_000 { 1_000 } else { 0 });
                let outputs = vec![TxOut { value: value.checked_sub(fee).unwrap(), address: addr }];
                let mut tx = Transaction {
                    version: 1,
                    inputs: vec![TxIn {
                        prevout: op,
                        unlock: Unlock::Signature { pubkey: key.public_key(), sig: Signature::default() },
                    }],
                    outputs,
                    lock_time: 0,
                };
                tx.sign_inputs(&spec.genesis_hash(), &[&key], &[value]);
                fees = fee;
                txs.push(tx);
            }
        }
        let reward = subsidy.checked_add(fees).unwrap();
        let mut transactions = vec![template_coinbase(height, reward, addr)];
        transactions.extend(txs);
        let times: Vec<u64> = samples.iter().rev().take(MEDIAN_TIME_SPAN).map(|s| s.time).collect();
        let mtp = median_time_past(&times);
        let bits = next_bits(&spec, &samples[samples.len().saturating_sub(window_len(&spec))..]);
        let ids: Vec<Hash256> = transactions.iter().map(Transaction::txid).collect();
        let mut header = BlockHeader {
            version: BLOCK_VERSION,
            prev_hash: tip,
            merkle_root: merkle_root(&ids).0,
            time: now.max(mtp + 1),
            bits,
            nonce: 0,
        };
        mine(&mut header, &spec);
        let block = Block { header, transactions };
        let hctx = HeaderContext { expected_bits: bits, median_time_past: mtp, now };
        check_header_context(&block.header, &hctx, &spec).unwrap_or_else(|e| panic!("height {h}: {e}"));
        check_block(&block, &spec).unwrap_or_else(|e| panic!("height {h}: {e}"));
        let out = connect_block(&block, height, &ctx, &utxo, None).unwrap_or_else(|e| panic!("height {h}: {e}"));
        assert_eq!(out.fees, fees);
        fees_paid = fees_paid.checked_add(fees).unwrap();
        for (op, _) in &out.spent {
            utxo.remove(op);
        }
        for (op, coin) in out.created {
            utxo.insert(op, coin);
            spendable.push_back(op);
        }
        samples.push(HeaderSample { time: block.header.time, bits: block.header.bits });
        tip = block.hash();
    }
    assert_eq!(last_paying, Height(spec.halving_interval * 33 - 1), "regtest's subsidy ends at height 4,949");
    assert!(fees_paid > Amount::ZERO);
    // Fees only move coins: what exists is exactly what the subsidy created.
    let total = Amount::checked_sum(utxo.values().map(|c| c.output.value)).unwrap();
    assert_eq!(total, total_supply_at(&spec, Height(last_height)));
    assert!(total <= MAX_MONEY);
    // Thousands of blocks in one second stay inside regtest's future limit.
    assert!(samples.last().unwrap().time <= now + spec.max_future_block_secs);
}
