//! Exact edges and known answers for the consensus arithmetic. Each test
//! pins a comparison or formula that the rule tests only exercise away from
//! its edge; they were written against the mutants `cargo mutants` left
//! alive (docs/testing.md, "Mutation testing"), so each fails when one
//! operator, bound or returned value in the named function changes.

use crypto_bigint::U256;
use lode_core::block::{merkle_root, Block, BlockHeader, BLOCK_VERSION};
use lode_core::crypto::{SecretKey, Signature};
use lode_core::difficulty::{next_bits, window_len, HeaderSample};
use lode_core::pow::{difficulty, CompactError, CompactTarget, Target, Work};
use lode_core::spec::DifficultyAlgorithm;
use lode_core::subsidy::{block_subsidy, total_supply_at};
use lode_core::tx::{OutPoint, Transaction, TxIn, TxOut, Unlock, MAX_COINBASE_EXTRA};
use lode_core::validation::{check_block, check_transaction, connect_block, BlockError, Coin, ConnectContext, TxError};
use lode_core::{Address, Amount, ChainSpec, Hash256, Height, MAX_MONEY};
use std::collections::HashMap;

// ---------------------------------------------------------------- pow.rs

#[test]
fn compact_bits_at_the_256_bit_edge_decode_or_overflow_exactly() {
    // The largest exponent, 34, still fits a one-byte mantissa: 0xff << 248.
    assert_eq!(CompactTarget(0x220000ff).to_target(), Ok(Target(U256::from_u8(0xff).shl_vartime(248))));
    assert_eq!(CompactTarget(0x22000001).to_target(), Ok(Target(U256::ONE.shl_vartime(248))));
    // Exponent 33 fits two bytes, exponent 32 three.
    assert_eq!(CompactTarget(0x21000100).to_target(), Ok(Target(U256::from_u16(0x100).shl_vartime(240))));
    assert_eq!(CompactTarget(0x2100ffff).to_target(), Ok(Target(U256::from_u16(0xffff).shl_vartime(240))));
    // One more byte of mantissa or exponent overflows, and is named so
    // (not read as a wrapped-around zero).
    for bits in [0x22000100, 0x2200ffff, 0x23000001, 0x21010000] {
        assert_eq!(CompactTarget(bits).to_target(), Err(CompactError::Overflow(bits)), "{bits:#x}");
    }
}

#[test]
fn compact_bits_below_three_bytes_round_trip() {
    // Exponent 1 and 2: the mantissa is shifted right, and a target whose
    // top byte has the sign bit set moves up one exponent.
    let cases: [(u64, u32); 4] = [(1, 0x01010000), (0x7f, 0x017f0000), (0x80, 0x02008000), (0x1234, 0x02123400)];
    for (value, bits) in cases {
        let target = Target(U256::from_u64(value));
        assert_eq!(target.to_compact(), CompactTarget(bits), "{value:#x}");
        assert_eq!(CompactTarget(bits).to_target(), Ok(target), "{bits:#x}");
    }
}

#[test]
fn target_and_work_bytes_and_order() {
    let mut one = [0u8; 32];
    one[31] = 1;
    assert_eq!(Target(U256::ONE).to_be_bytes(), one);
    let bytes: [u8; 32] = std::array::from_fn(|i| i as u8 * 7 + 1);
    let work = Work::from_be_bytes(bytes);
    assert_eq!(work.to_be_bytes(), bytes);
    assert_eq!(work, Work(U256::from_be_slice(&bytes)));
    let (two, three) = (Work(U256::from_u8(2)), Work(U256::from_u8(3)));
    assert_eq!(two.saturating_add(&three), Work(U256::from_u8(5)));
    assert_eq!(Work(U256::MAX).saturating_add(&two), Work(U256::MAX));
    assert!(two < three);
    assert!(three > two);
    assert_eq!(two.partial_cmp(&three), Some(std::cmp::Ordering::Less));
}

#[test]
fn work_as_f64_counts_every_limb() {
    assert_eq!(Work(U256::from_words([0, 1, 0, 0])).as_f64(), 18446744073709551616.0);
    assert_eq!(Work(U256::from_words([5, 0, 0, 0])).as_f64(), 5.0);
    assert_eq!(Work(U256::from_words([0, 0, 0, 1])).as_f64(), 2f64.powi(192));
}

#[test]
fn work_and_bits_text_forms() {
    let work = Work(U256::from_u64(0x1_0001_0001));
    assert_eq!(serde_json::to_string(&work).unwrap(), "\"100010001\"");
    assert_eq!(serde_json::from_str::<Work>("\"100010001\"").unwrap(), work);
    assert_eq!(serde_json::from_str::<Work>("\"0x100010001\"").unwrap(), work);
    let max = format!("\"{}\"", "f".repeat(64));
    assert_eq!(serde_json::from_str::<Work>(&max).unwrap(), Work(U256::MAX));
    for bad in ["\"\"", "\"0x\"", "\"g\"", &format!("\"{}\"", "1".repeat(65)), &format!("\"{}\"", "1".repeat(66))] {
        assert!(serde_json::from_str::<Work>(bad).is_err(), "{bad} accepted");
    }
    assert_eq!(format!("{work:?}"), "Work(0x100010001)");
    let bits = CompactTarget(0x1d00ffff);
    assert_eq!(bits.to_string(), "1d00ffff");
    assert_eq!(format!("{bits:?}"), "CompactTarget(1d00ffff)");
    assert_eq!(serde_json::to_string(&bits).unwrap(), "\"1d00ffff\"");
    assert_eq!(serde_json::from_str::<CompactTarget>("\"1d00ffff\"").unwrap(), bits);
    assert_eq!(format!("{:?}", Target(U256::ONE)), format!("Target({}01)", "00".repeat(31)));
}

#[test]
fn difficulty_is_work_relative_to_the_limit() {
    let limit = CompactTarget(0x1e00ffff);
    assert_eq!(difficulty(limit, limit), 1.0);
    // A target 256 times smaller proves 256 times the work (the integer
    // division leaves 256.00000006).
    let d = difficulty(CompactTarget(0x1d00ffff), limit);
    assert!((d - 256.0).abs() < 1e-6, "{d}");
    assert_eq!(difficulty(CompactTarget(0), limit), 0.0);
}

// --------------------------------------------------------- difficulty.rs

#[test]
fn window_len_is_the_window_plus_the_block_before_it() {
    assert_eq!(window_len(&ChainSpec::testnet()), 61);
    assert_eq!(window_len(&ChainSpec::devnet()), 46);
    assert_eq!(window_len(&ChainSpec::regtest()), 1);
}

/// A retargeting spec small enough to compute by hand: window 3, 10 s spacing.
fn small_lwma() -> ChainSpec {
    let mut spec = ChainSpec::testnet();
    spec.difficulty = DifficultyAlgorithm::Lwma { window: 3 };
    spec.target_spacing_secs = 10;
    spec
}

/// Bits of the small target `value` (< 2^16, so exact in compact form).
fn small_bits(value: u64) -> CompactTarget {
    Target(U256::from_u64(value)).to_compact()
}

fn samples(points: &[(u64, u64)]) -> Vec<HeaderSample> {
    points.iter().map(|&(time, target)| HeaderSample { time, bits: small_bits(target) }).collect()
}

#[test]
fn lwma_known_answer_with_a_backward_stamp_and_a_slow_block() {
    let spec = small_lwma();
    // Only the last window + 1 = 4 samples count; the first is ignored.
    // Solve times: 10, then 105 < 110 counts as 1 s (111), then 89 s capped
    // at 6 × 10. Weighted: 1·10 + 2·1 + 3·60 = 192; k = 3·4·10/2 = 60.
    // Next target: (3 · 4096) · 192 / (3 · 60) = 13107.2 → 13107.
    let chain = samples(&[(0, 9), (100, 4096), (110, 4096), (105, 4096), (200, 4096)]);
    assert_eq!(next_bits(&spec, &chain), small_bits(13107));
    assert_eq!(small_bits(13107), CompactTarget(0x02333300));
}

#[test]
fn lwma_computes_from_two_samples_and_floors_at_one() {
    let spec = small_lwma();
    // Genesis and one block 5 s later: n = 1, k = 10, 4096 · 5 / 10.
    assert_eq!(next_bits(&spec, &samples(&[(100, 9), (105, 4096)])), small_bits(2048));
    // Fewer than two samples: the genesis bits.
    assert_eq!(next_bits(&spec, &samples(&[(100, 4096)])), spec.genesis.bits);
    assert_eq!(next_bits(&spec, &[]), spec.genesis.bits);
    // Blocks far faster than the spacing at the smallest target: the result
    // rounds to zero and is raised to 1, never the unusable zero bits.
    let fast = samples(&[(100, 1), (101, 1), (102, 1), (103, 1)]);
    assert_eq!(next_bits(&spec, &fast), CompactTarget(0x01010000));
    // Slow blocks at the limit: clamped to the limit.
    let limit = spec.pow_limit;
    let slow: Vec<HeaderSample> = (0..4).map(|i| HeaderSample { time: 100 + i * 1000, bits: limit }).collect();
    assert_eq!(next_bits(&spec, &slow), limit);
}

// ------------------------------------------------------------ subsidy.rs

#[test]
fn nothing_is_issued_at_genesis_whatever_the_halving_interval() {
    for interval in [1, 2, 150] {
        let mut spec = ChainSpec::regtest();
        spec.halving_interval = interval;
        assert_eq!(total_supply_at(&spec, Height(0)), Amount::ZERO, "interval {interval}");
    }
}

// ------------------------------------------------------------- amount.rs

#[test]
fn amounts_with_a_sign_or_stray_characters_are_refused() {
    // u64's own parser accepts a leading '+': only the digit check stops it,
    // in the whole part and in the fraction alike.
    for bad in ["+1", "1.+5", "+.5", "1.5e"] {
        let err = Amount::parse_coins(bad).unwrap_err();
        assert_eq!(err.why, "not a decimal number", "{bad}");
    }
}

#[test]
fn amount_and_height_forms_and_steps() {
    assert_eq!(format!("{:?}", Amount::from_units(5)), "Amount(5)");
    assert_eq!(Height(7).to_string(), "7");
    assert_eq!(format!("{:?}", Height(7)), "Height(7)");
    assert_eq!(Height(7).next(), Some(Height(8)));
    assert_eq!(Height(u32::MAX).next(), None);
    assert_eq!(Height(u32::MAX).as_u64(), 4_294_967_295);
}

// -------------------------------------------------------- validation/

fn pay(value: Amount) -> Vec<TxOut> {
    vec![TxOut { value, address: Address([7; 20]) }]
}

#[test]
fn a_transaction_exactly_at_the_size_limit_and_full_coinbase_data_are_valid() {
    let cb = Transaction::coinbase(Height(1), vec![0; MAX_COINBASE_EXTRA], pay(MAX_MONEY));
    let size = cb.encoded_size();
    assert_eq!(check_transaction(&cb, size), Ok(()));
    assert_eq!(check_transaction(&cb, size - 1), Err(TxError::Oversized { size, max: size - 1 }));
    let long = Transaction::coinbase(Height(1), vec![0; MAX_COINBASE_EXTRA + 1], pay(MAX_MONEY));
    assert_eq!(
        check_transaction(&long, 1 << 20),
        Err(TxError::CoinbaseExtraTooLong { len: MAX_COINBASE_EXTRA + 1, max: MAX_COINBASE_EXTRA })
    );
}

#[test]
fn a_block_exactly_at_the_size_limit_is_valid() {
    let mut spec = ChainSpec::regtest();
    let cb = Transaction::coinbase(Height(1), b"edge".to_vec(), pay(Amount::from_coins(1)));
    let block = Block {
        header: BlockHeader {
            version: BLOCK_VERSION,
            prev_hash: spec.genesis_hash(),
            merkle_root: merkle_root(&[cb.txid()]).0,
            time: spec.genesis.time + 1,
            bits: spec.pow_limit,
            nonce: 0,
        },
        transactions: vec![cb],
    };
    let size = block.encoded_size();
    spec.max_block_size = size;
    assert_eq!(check_block(&block, &spec), Ok(()));
    spec.max_block_size = size - 1;
    assert_eq!(check_block(&block, &spec), Err(BlockError::Oversized { size, max: size - 1 }));
}

#[test]
fn connected_coins_remember_whether_a_coinbase_made_them() {
    let spec = ChainSpec::regtest();
    let key = SecretKey::from_bytes(&[3u8; 32]).unwrap();
    let addr = Address::from_pubkey(&key.public_key());
    let spent = OutPoint { txid: Hash256([1; 32]), vout: 0 };
    let value = Amount::from_coins(50);
    let utxo: HashMap<OutPoint, Coin> =
        [(spent, Coin { output: TxOut { value, address: addr }, height: Height(1), coinbase: true })].into();
    let mut tx = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prevout: spent,
            unlock: Unlock::Signature { pubkey: key.public_key(), sig: Signature::default() },
        }],
        outputs: pay(value),
        lock_time: 0,
    };
    tx.sign_inputs(&spec.genesis_hash(), &[&key], &[value]);
    let height = Height(100);
    let cb = Transaction::coinbase(height, vec![], pay(Amount::from_coins(1)));
    let (cb_id, tx_id) = (cb.txid(), tx.txid());
    let ids = [cb_id, tx_id];
    let block = Block {
        header: BlockHeader {
            version: BLOCK_VERSION,
            prev_hash: spec.genesis_hash(),
            merkle_root: merkle_root(&ids).0,
            time: spec.genesis.time + 1,
            bits: spec.pow_limit,
            nonce: 0,
        },
        transactions: vec![cb, tx],
    };
    let ctx = ConnectContext {
        genesis: spec.genesis_hash(),
        coinbase_maturity: spec.coinbase_maturity,
        subsidy: block_subsidy(&spec, height),
    };
    let out = connect_block(&block, height, &ctx, &utxo, None).unwrap();
    let created: HashMap<Hash256, Coin> = out.created.iter().map(|(op, c)| (op.txid, *c)).collect();
    assert!(created[&cb_id].coinbase, "the coinbase's output matures");
    assert!(!created[&tx_id].coinbase, "a spend's output is spendable at once");
    assert!(created.values().all(|c| c.height == height));
}

#[test]
fn only_a_future_timestamp_is_temporary() {
    assert!(BlockError::TimeTooFarInFuture { time: 2, max_allowed: 1 }.is_temporary());
    for permanent in
        [BlockError::TimeTooOld { time: 1, median: 1 }, BlockError::NoTransactions, BlockError::HighHash(Hash256::ZERO)]
    {
        assert!(!permanent.is_temporary(), "{permanent}");
    }
}
