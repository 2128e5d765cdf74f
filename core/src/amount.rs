//! Amounts in base units and block heights.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Base units in one coin.
pub const COIN: u64 = 100_000_000;
/// No amount, output or sum of outputs may exceed this (21 million coins).
pub const MAX_MONEY: Amount = Amount(21_000_000 * COIN);

/// A non-negative amount of base units. Arithmetic is checked: consensus code
/// never wraps.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Amount(u64);

impl Amount {
    /// Zero base units.
    pub const ZERO: Amount = Amount(0);

    /// Wraps base units without a range check (see [`Amount::is_valid`]).
    pub const fn from_units(units: u64) -> Self {
        Amount(units)
    }

    /// Whole coins.
    pub const fn from_coins(coins: u64) -> Self {
        Amount(coins * COIN)
    }

    /// Base units.
    pub const fn units(self) -> u64 {
        self.0
    }

    /// Whether the amount is within `0..=MAX_MONEY`.
    pub fn is_valid(self) -> bool {
        self <= MAX_MONEY
    }

    /// Sum, `None` on u64 overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// Difference, `None` when it would be negative.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// Sums amounts, `None` if any partial sum leaves `0..=MAX_MONEY`.
    pub fn checked_sum<I: IntoIterator<Item = Amount>>(iter: I) -> Option<Amount> {
        let mut total = Amount::ZERO;
        for a in iter {
            total = total.checked_add(a).filter(|t| t.is_valid())?;
        }
        Some(total)
    }

    /// Parses a decimal coin string such as `"1.5"` (at most 8 decimals).
    pub fn parse_coins(s: &str) -> Result<Amount, AmountParseError> {
        let s = s.trim();
        let err = |why: &'static str| AmountParseError { input: s.chars().take(40).collect(), why };
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.starts_with('-') {
            return Err(err("negative"));
        }
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(err("no digits"));
        }
        if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
            return Err(err("not a decimal number"));
        }
        if frac.len() > 8 {
            return Err(err("more than 8 decimal places"));
        }
        let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| err("too large"))? };
        let frac_units: u64 =
            if frac.is_empty() { 0 } else { format!("{frac:0<8}").parse().map_err(|_| err("not a decimal number"))? };
        let units = whole.checked_mul(COIN).and_then(|w| w.checked_add(frac_units)).ok_or_else(|| err("too large"))?;
        let amount = Amount(units);
        if !amount.is_valid() {
            return Err(err("above the maximum money supply"));
        }
        Ok(amount)
    }
}

/// A string that is not a valid decimal coin amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid amount {input:?}: {why}")]
pub struct AmountParseError {
    /// The rejected text (truncated).
    pub input: String,
    /// Why it was rejected.
    pub why: &'static str,
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:08}", self.0 / COIN, self.0 % COIN)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

/// A block height: genesis is 0.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Height(pub u32);

impl Height {
    /// The height of the genesis block.
    pub const GENESIS: Height = Height(0);

    /// The next height, `None` at `u32::MAX`.
    pub fn next(self) -> Option<Height> {
        self.0.checked_add(1).map(Height)
    }

    /// The height as a `u64`.
    pub fn as_u64(self) -> u64 {
        u64::from(self.0)
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Height({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_coins() {
        assert_eq!(Amount::parse_coins("1.5").unwrap().units(), 150_000_000);
        assert_eq!(Amount::parse_coins("0.00000001").unwrap().units(), 1);
        assert_eq!(Amount::parse_coins("21000000").unwrap(), MAX_MONEY);
        assert_eq!(Amount::parse_coins(".5").unwrap().units(), 50_000_000);
        for bad in ["", "-1", "1.000000001", "abc", "21000000.00000001", "1e5", "."] {
            assert!(Amount::parse_coins(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn checked_sum_stops_at_max_money() {
        assert!(Amount::checked_sum([MAX_MONEY, Amount::from_units(1)]).is_none());
        assert!(Amount::checked_sum([Amount::from_units(u64::MAX), Amount::from_units(1)]).is_none());
        assert_eq!(Amount::checked_sum([Amount::from_coins(1), Amount::from_coins(2)]), Some(Amount::from_coins(3)));
    }

    #[test]
    fn display_is_decimal() {
        assert_eq!(Amount::from_units(150_000_001).to_string(), "1.50000001");
    }
}
