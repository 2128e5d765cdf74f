//! Coin selection.
//!
//! First a branch-and-bound search for a set of coins that pays the amount
//! and its fee with no change output, wasting less than a change output
//! would cost (creating it now and spending it later). Failing that,
//! largest coins first until amount, fee and a change output are covered.
//! Change worth less than it costs to create and spend goes to the fee.
//! Fees are `fee_rate × encoded size`, and sizes are exact: every input and
//! output of a Lode transaction has a fixed encoded size.

use crate::keys::Branch;
use lode_core::{Amount, OutPoint, COIN, MAX_MONEY};

/// Encoded size of a transaction with no inputs or outputs: version, two
/// counts, lock time.
pub const BASE_SIZE: u64 = 4 + 4 + 4 + 4;
/// Encoded size of a signed input: outpoint, tag, x-only key, signature.
pub const INPUT_SIZE: u64 = 36 + 1 + 32 + 64;
/// Encoded size of an output: value and address.
pub const OUTPUT_SIZE: u64 = 8 + 20;
/// The largest transaction the node relays (mempool policy).
pub const MAX_TX_SIZE: u64 = 100_000;
/// Branch-and-bound gives up after this many steps.
const BNB_TRIES: usize = 100_000;

/// A coin the wallet may spend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coin {
    /// Where it is.
    pub outpoint: OutPoint,
    /// Value in base units.
    pub amount: u64,
    /// Key that owns it.
    pub branch: Branch,
    /// Index of that key in its branch.
    pub index: u32,
    /// Whether it is in a block (false: change of the wallet's own pending
    /// transaction).
    pub confirmed: bool,
}

/// The chosen coins, fee and change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Coins to spend.
    pub coins: Vec<Coin>,
    /// Fee paid.
    pub fee: u64,
    /// Change returned (0: no change output).
    pub change: u64,
    /// Payment outputs (besides the change).
    pub payments: u64,
}

impl Selection {
    /// Encoded size of the transaction this selection builds.
    pub fn size(&self) -> u64 {
        tx_size(self.coins.len() as u64, self.payments + u64::from(self.change > 0))
    }
}

/// Why no selection was made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// Not enough value.
    #[error("insufficient balance: {available} spendable, {needed} needed including the fee")]
    Insufficient {
        /// Sum of the candidate coins.
        available: u64,
        /// Amount plus the fee of spending every candidate.
        needed: u64,
    },
    /// Enough value, but only in more coins than one transaction may hold.
    #[error("paying this takes {inputs} coins, a {size}-byte transaction above the {max}-byte relay limit; send less or consolidate first")]
    TooLarge {
        /// Inputs needed.
        inputs: u64,
        /// Size it would have.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The candidate coins are worth more than can exist.
    #[error(transparent)]
    TooMuchMoney(#[from] TooMuchMoney),
}

/// Amounts from the node that add up to more money than can exist. The
/// node is not trusted for amounts: summed without a bound they would
/// overflow the wallet's `u64` arithmetic (a panic) or, wrapped, look small.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the node's {0} add up to more than the {max} coins that can ever exist (MAX_MONEY): refusing an answer \
     that cannot be true (check the node you are talking to)",
    max = MAX_MONEY.units() / COIN
)]
pub struct TooMuchMoney(pub &'static str);

/// Sums amounts that came from the node (`what` names them in the error),
/// refusing a total above [`MAX_MONEY`]: every partial sum is checked, so
/// nothing overflows however many or large the terms are.
pub fn money_sum(what: &'static str, amounts: impl IntoIterator<Item = u64>) -> Result<u64, TooMuchMoney> {
    Amount::checked_sum(amounts.into_iter().map(Amount::from_units)).map(Amount::units).ok_or(TooMuchMoney(what))
}

/// Encoded size of a transaction with `inputs` signed inputs and `outputs` outputs.
pub fn tx_size(inputs: u64, outputs: u64) -> u64 {
    BASE_SIZE + inputs * INPUT_SIZE + outputs * OUTPUT_SIZE
}

/// Change below this is not worth an output at `fee_rate`: it would cost
/// about as much to create and later spend.
pub fn min_change(fee_rate: u64) -> u64 {
    fee_rate.saturating_mul(INPUT_SIZE + OUTPUT_SIZE)
}

/// Picks coins paying `amount` to one output at `fee_rate` base units per byte.
#[cfg(test)]
pub fn select(coins: &[Coin], amount: u64, fee_rate: u64) -> Result<Selection, SelectError> {
    select_many(coins, amount, fee_rate, 1)
}

/// Picks coins paying `amount` in all to `payments` outputs at `fee_rate`.
pub fn select_many(coins: &[Coin], amount: u64, fee_rate: u64, payments: u64) -> Result<Selection, SelectError> {
    // The amounts are the node's: bounded here, every sum below (of any
    // subset, plus fees that are at most the amounts' total) fits in u64.
    money_sum("coin amounts", coins.iter().map(|c| c.amount))?;
    let mut sorted: Vec<&Coin> = coins.iter().collect();
    sorted.sort_by(|a, b| b.amount.cmp(&a.amount).then(a.outpoint.cmp(&b.outpoint)));
    if let Some(chosen) = branch_and_bound(&sorted, amount, fee_rate, payments) {
        let total: u64 = chosen.iter().map(|c| c.amount).sum();
        return Ok(Selection { coins: chosen, fee: total - amount, change: 0, payments });
    }
    largest_first(&sorted, amount, fee_rate, payments)
}

fn largest_first(sorted: &[&Coin], amount: u64, fee_rate: u64, payments: u64) -> Result<Selection, SelectError> {
    let mut total = 0u64;
    for (i, c) in sorted.iter().enumerate() {
        total = total.saturating_add(c.amount);
        let n = i as u64 + 1;
        let fee_with_change = fee_rate.saturating_mul(tx_size(n, payments + 1));
        let fee_without = fee_rate.saturating_mul(tx_size(n, payments));
        let chosen = || sorted[..=i].iter().map(|c| (*c).clone()).collect::<Vec<_>>();
        let result = if total >= amount.saturating_add(fee_with_change).saturating_add(min_change(fee_rate)) {
            Selection { coins: chosen(), fee: fee_with_change, change: total - amount - fee_with_change, payments }
        } else if total >= amount.saturating_add(fee_without) {
            // The remainder is too small for a change output: it is fee.
            Selection { coins: chosen(), fee: total - amount, change: 0, payments }
        } else {
            continue;
        };
        if result.size() > MAX_TX_SIZE {
            return Err(SelectError::TooLarge { inputs: n, size: result.size(), max: MAX_TX_SIZE });
        }
        return Ok(result);
    }
    let available: u64 = sorted.iter().map(|c| c.amount).sum();
    let needed = amount.saturating_add(fee_rate.saturating_mul(tx_size(sorted.len().max(1) as u64, payments)));
    Err(SelectError::Insufficient { available, needed })
}

/// Depth-first search over coins (largest first) for a changeless set whose
/// value after input fees lies in `[target, target + cost of change]`,
/// keeping the one that wastes least.
fn branch_and_bound(sorted: &[&Coin], amount: u64, fee_rate: u64, payments: u64) -> Option<Vec<Coin>> {
    let input_fee = fee_rate.checked_mul(INPUT_SIZE)?;
    // Coins worth less than their own input fee never help.
    let useful: Vec<(&Coin, u64)> =
        sorted.iter().filter(|c| c.amount > input_fee).map(|c| (*c, c.amount - input_fee)).collect();
    let fixed = BASE_SIZE.checked_add(payments.checked_mul(OUTPUT_SIZE)?)?;
    let target = amount.checked_add(fee_rate.checked_mul(fixed)?)?;
    let upper = target.checked_add(min_change(fee_rate))?;
    let max_inputs = (MAX_TX_SIZE.checked_sub(fixed)? / INPUT_SIZE) as usize;
    // remaining[i]: sum of effective values from i on.
    let mut remaining = vec![0u64; useful.len() + 1];
    for i in (0..useful.len()).rev() {
        remaining[i] = remaining[i + 1].saturating_add(useful[i].1);
    }
    if remaining[0] < target {
        return None;
    }
    let mut best: Option<(u64, Vec<usize>)> = None;
    let mut picked: Vec<usize> = Vec::new();
    let mut sum = 0u64;
    let mut i = 0usize;
    let mut tries = 0usize;
    loop {
        tries += 1;
        // Decide whether to backtrack at this node.
        let backtrack = if sum > upper || sum.saturating_add(remaining[i]) < target || picked.len() > max_inputs {
            true
        } else if sum >= target {
            let waste = sum - target;
            if best.as_ref().is_none_or(|(w, p)| waste < *w || (waste == *w && picked.len() < p.len())) {
                best = Some((waste, picked.clone()));
            }
            true
        } else {
            i >= useful.len()
        };
        if tries > BNB_TRIES || (best.as_ref().is_some_and(|(w, _)| *w == 0)) {
            break;
        }
        if backtrack {
            // Undo the last inclusion and try without it.
            match picked.pop() {
                Some(last) => {
                    sum -= useful[last].1;
                    i = last + 1;
                }
                None => break,
            }
        } else {
            picked.push(i);
            sum += useful[i].1;
            i += 1;
        }
    }
    best.map(|(_, idx)| idx.into_iter().map(|k| useful[k].0.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_core::Hash256;

    fn coin(n: u8, amount: u64) -> Coin {
        Coin {
            outpoint: OutPoint { txid: Hash256([n; 32]), vout: 0 },
            amount,
            branch: Branch::Receive,
            index: 0,
            confirmed: true,
        }
    }

    fn check_balanced(s: &Selection, amount: u64, fee_rate: u64) {
        let total: u64 = s.coins.iter().map(|c| c.amount).sum();
        assert_eq!(total, amount + s.fee + s.change, "inputs = amount + fee + change");
        assert!(s.fee >= fee_rate * s.size(), "fee {} below {} × {}", s.fee, fee_rate, s.size());
        if s.change > 0 {
            assert_eq!(s.fee, fee_rate * s.size(), "with change the fee is exact");
            assert!(s.change >= min_change(fee_rate));
        } else {
            assert!(s.fee - fee_rate * s.size() < min_change(fee_rate), "changeless waste is bounded");
        }
    }

    #[test]
    fn sizes_match_the_consensus_encoding() {
        use lode_core::codec::Encode;
        use lode_core::crypto::SecretKey;
        use lode_core::{Address, Amount, Transaction, TxIn, TxOut, Unlock};
        let key = SecretKey::from_bytes(&[7; 32]).unwrap();
        for (n_in, n_out) in [(1u64, 1u64), (1, 2), (3, 2), (10, 1)] {
            let tx = Transaction {
                version: 1,
                inputs: (0..n_in)
                    .map(|i| TxIn {
                        prevout: OutPoint { txid: Hash256([i as u8; 32]), vout: 1 },
                        unlock: Unlock::Signature { pubkey: key.public_key(), sig: Default::default() },
                    })
                    .collect(),
                outputs: (0..n_out)
                    .map(|_| TxOut { value: Amount::from_units(5), address: Address([1; 20]) })
                    .collect(),
                lock_time: 0,
            };
            assert_eq!(tx.encode().len() as u64, tx_size(n_in, n_out));
            assert_eq!(tx.encoded_size() as u64, tx_size(n_in, n_out));
        }
    }

    #[test]
    fn largest_first_with_exact_change() {
        let coins = [coin(1, 100_000), coin(2, 5_000_000), coin(3, 1_000_000)];
        let s = select(&coins, 2_000_000, 2).unwrap();
        assert_eq!(s.coins, vec![coins[1].clone()]);
        assert_eq!(s.fee, 2 * tx_size(1, 2));
        assert_eq!(s.change, 5_000_000 - 2_000_000 - s.fee);
        check_balanced(&s, 2_000_000, 2);
        // Two coins needed.
        let s = select(&coins, 5_500_000, 1).unwrap();
        assert_eq!(s.coins.len(), 2);
        check_balanced(&s, 5_500_000, 1);
    }

    #[test]
    fn an_exact_match_needs_no_change() {
        let rate = 3;
        let amount = 700_000;
        // Coin 4 pays amount + its one-input, one-output fee exactly.
        let exact = amount + rate * tx_size(1, 1);
        let coins = [coin(1, 5_000_000), coin(2, 300_000), coin(3, 90_000), coin(4, exact)];
        let s = select(&coins, amount, rate).unwrap();
        assert_eq!((s.change, s.fee), (0, rate * tx_size(1, 1)));
        assert_eq!(s.coins, vec![coins[3].clone()]);
        // Two coins summing exactly.
        let a = 400_000;
        let b = amount + rate * tx_size(2, 1) - a;
        let coins = [coin(1, 5_000_000), coin(2, a), coin(3, b)];
        let s = select(&coins, amount, rate).unwrap();
        assert_eq!(s.change, 0);
        assert_eq!(s.coins.len(), 2);
        check_balanced(&s, amount, rate);
    }

    #[test]
    fn dust_change_goes_to_the_fee_and_shortfall_is_reported() {
        let fee1 = tx_size(1, 1);
        let s = select(&[coin(1, 1_000_000 + fee1 + 10)], 1_000_000, 1).unwrap();
        assert_eq!((s.change, s.fee), (0, fee1 + 10));
        check_balanced(&s, 1_000_000, 1);
        let e = select(&[coin(1, 1000)], 5000, 1).unwrap_err();
        assert_eq!(e, SelectError::Insufficient { available: 1000, needed: 5000 + tx_size(1, 1) });
        assert!(e.to_string().contains("insufficient balance"));
        // Exactly the amount but nothing for the fee.
        assert!(select(&[coin(1, 5000)], 5000, 1).is_err());
        assert!(matches!(select(&[], 1, 1), Err(SelectError::Insufficient { available: 0, .. })));
    }

    #[test]
    fn too_many_small_coins_is_refused_by_size() {
        let coins: Vec<Coin> = (0..1000u32)
            .map(|i| Coin { outpoint: OutPoint { txid: Hash256([1; 32]), vout: i }, ..coin(1, 10_000) })
            .collect();
        let e = select(&coins, 7_900_000, 1).unwrap_err();
        assert!(matches!(e, SelectError::TooLarge { .. }), "{e}");
        // Fewer coins' worth is fine.
        let s = select(&coins, 1_000_000, 1).unwrap();
        assert!(s.size() <= MAX_TX_SIZE);
        check_balanced(&s, 1_000_000, 1);
    }

    #[test]
    fn several_payments_count_their_outputs_in_the_fee() {
        let coins = [coin(1, 5_000_000), coin(2, 1_000_000)];
        let s = select_many(&coins, 3_000_000, 2, 3).unwrap();
        assert_eq!((s.payments, s.size()), (3, tx_size(1, 4)));
        assert_eq!(s.fee, 2 * tx_size(1, 4));
        assert_eq!(s.change, 5_000_000 - 3_000_000 - s.fee);
        // A changeless exact match for three outputs.
        let exact = 700_000 + 2 * tx_size(1, 3);
        let s = select_many(&[coin(1, 5_000_000), coin(3, exact)], 700_000, 2, 3).unwrap();
        assert_eq!((s.change, s.fee, s.size()), (0, 2 * tx_size(1, 3), tx_size(1, 3)));
    }

    // Coins from a lying node worth more than can exist: the sums
    // saturated, and a "selection" spent a coin of u64::MAX.
    #[test]
    fn coins_worth_more_than_max_money_are_refused() {
        let max = lode_core::MAX_MONEY.units();
        for coins in [vec![coin(1, u64::MAX), coin(2, u64::MAX)], vec![coin(1, max), coin(2, 1)]] {
            let e = select(&coins, 1_000, 1).unwrap_err();
            assert_eq!(e, SelectError::TooMuchMoney(TooMuchMoney("coin amounts")));
            assert!(e.to_string().contains("MAX_MONEY"), "{e}");
        }
        // All the money there is, in one coin or many, is fine.
        let s = select(&[coin(1, max)], 1_000, 1).unwrap();
        check_balanced(&s, 1_000, 1);
        let halves = [coin(1, max / 2), coin(2, max - max / 2)];
        check_balanced(&select(&halves, max - 10_000, 1).unwrap(), max - 10_000, 1);
        assert_eq!(money_sum("x", [max, 0]), Ok(max));
        assert_eq!(money_sum("x", [u64::MAX, u64::MAX]), Err(TooMuchMoney("x")));
    }

    #[test]
    fn random_sets_always_balance() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..300 {
            let coins: Vec<Coin> = (0..rng.gen_range(1..12u8)).map(|n| coin(n, rng.gen_range(1..2_000_000))).collect();
            let amount = rng.gen_range(1..3_000_000);
            let rate = rng.gen_range(1..20);
            match select(&coins, amount, rate) {
                Ok(s) => check_balanced(&s, amount, rate),
                Err(SelectError::Insufficient { available, needed }) => assert!(available < needed),
                Err(e) => panic!("{e}"),
            }
        }
    }
}
