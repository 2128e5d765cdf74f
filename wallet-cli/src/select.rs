//! Coin selection: largest first until amount plus fee is covered; change
//! above the dust threshold goes back to the wallet, below it to the fee.

/// A spendable coin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spendable {
    /// Funding txid (hex).
    pub txid: String,
    /// Output index.
    pub vout: u32,
    /// Value in base units.
    pub amount: u64,
    /// Index of the wallet key that owns it.
    pub key_index: u32,
}

/// The chosen coins, fee and change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Coins to spend.
    pub coins: Vec<Spendable>,
    /// Fee paid.
    pub fee: u64,
    /// Change returned (0 when none).
    pub change: u64,
}

/// Change below this is added to the fee instead.
pub const DUST: u64 = 1_000;

/// Encoded size of a transaction with `inputs` spends and `outputs` outputs.
pub fn tx_size(inputs: usize, outputs: usize) -> u64 {
    (4 + 4 + inputs * (36 + 1 + 32 + 64) + 4 + outputs * 28 + 4) as u64
}

/// Picks coins for `amount` at `fee_rate` per byte, or says how much is missing.
pub fn select(mut coins: Vec<Spendable>, amount: u64, fee_rate: u64) -> Result<Selection, String> {
    coins.sort_by(|a, b| b.amount.cmp(&a.amount).then(a.txid.cmp(&b.txid)));
    let available: u64 = coins.iter().map(|c| c.amount).sum();
    let mut chosen = Vec::new();
    let mut total = 0u64;
    for c in coins {
        total += c.amount;
        chosen.push(c);
        let with_change = fee_rate * tx_size(chosen.len(), 2);
        if total >= amount + with_change {
            let change = total - amount - with_change;
            if change >= DUST {
                return Ok(Selection { coins: chosen, fee: with_change, change });
            }
            // No change output: the remainder (≥ the smaller fee) is the fee.
            return Ok(Selection { coins: chosen, fee: total - amount, change: 0 });
        }
        let without = fee_rate * tx_size(chosen.len(), 1);
        if total >= amount + without && total - amount - without < DUST {
            return Ok(Selection { coins: chosen, fee: total - amount, change: 0 });
        }
    }
    Err(format!("insufficient balance: {} spendable, {} needed plus fee", available, amount))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coin(n: u64, amount: u64) -> Spendable {
        Spendable { txid: format!("{n:064x}"), vout: 0, amount, key_index: 0 }
    }

    #[test]
    fn largest_first_with_exact_change() {
        let s = select(vec![coin(1, 100_000), coin(2, 5_000_000), coin(3, 1_000_000)], 2_000_000, 2).unwrap();
        assert_eq!(s.coins.len(), 1);
        assert_eq!(s.coins[0].amount, 5_000_000);
        assert_eq!(s.fee, 2 * tx_size(1, 2));
        assert_eq!(s.coins[0].amount, 2_000_000 + s.fee + s.change);
    }

    #[test]
    fn dust_change_goes_to_the_fee_and_shortfall_is_reported() {
        let fee1 = tx_size(1, 1);
        let s = select(vec![coin(1, 1_000_000 + fee1 + 10)], 1_000_000, 1).unwrap();
        assert_eq!((s.change, s.fee), (0, fee1 + 10));
        let e = select(vec![coin(1, 1000)], 5000, 1).unwrap_err();
        assert!(e.contains("insufficient balance"), "{e}");
    }
}
