//! An incrementally maintained commitment to the UTXO set.
//!
//! AdHash: the sum, modulo 2^256, of the SHA-256 of every serialised entry.
//! Adding a coin adds its hash, spending subtracts it, so the value depends
//! only on the set, never on the path (reorgs, restarts) that produced it.
//! It is cheap and order-free; its known weakness is a generalised-birthday
//! attack on the sum, which MuHash (multiplication mod a 3072-bit prime)
//! closes at a higher cost. It detects divergence between honest nodes,
//! which is what it is used for here; it is not a consensus rule.

use crypto_bigint::{Encoding, U256};
use lode_core::hash::sha256;
use lode_core::tx::OutPoint;
use lode_core::validation::Coin;
use lode_core::Hash256;

/// The running commitment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtxoCommitment(U256);

impl Default for UtxoCommitment {
    fn default() -> Self {
        UtxoCommitment(U256::ZERO)
    }
}

impl UtxoCommitment {
    /// Restores a stored value.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        UtxoCommitment(U256::from_be_bytes(bytes))
    }

    /// The value to store and publish.
    pub fn to_hash(&self) -> Hash256 {
        Hash256(self.0.to_be_bytes())
    }

    /// Adds a coin to the set.
    pub fn add(&mut self, outpoint: &OutPoint, coin: &Coin) {
        self.0 = self.0.wrapping_add(&entry_hash(outpoint, coin));
    }

    /// Removes a coin from the set.
    pub fn remove(&mut self, outpoint: &OutPoint, coin: &Coin) {
        self.0 = self.0.wrapping_sub(&entry_hash(outpoint, coin));
    }
}

/// Serialised entry: outpoint, value, address, height, coinbase flag.
fn entry_hash(outpoint: &OutPoint, coin: &Coin) -> U256 {
    let mut buf = [0u8; 32 + 4 + 8 + 20 + 4 + 1];
    buf[..32].copy_from_slice(&outpoint.txid.0);
    buf[32..36].copy_from_slice(&outpoint.vout.to_le_bytes());
    buf[36..44].copy_from_slice(&coin.output.value.units().to_le_bytes());
    buf[44..64].copy_from_slice(&coin.output.address.0);
    buf[64..68].copy_from_slice(&coin.height.0.to_le_bytes());
    buf[68] = u8::from(coin.coinbase);
    U256::from_be_bytes(sha256(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_core::{Address, Amount, Height, TxOut};

    fn coin(v: u64) -> Coin {
        Coin {
            output: TxOut { value: Amount::from_units(v), address: Address([v as u8; 20]) },
            height: Height(1),
            coinbase: false,
        }
    }

    #[test]
    fn order_independent_and_removal_inverts_addition() {
        let a = (OutPoint { txid: Hash256([1; 32]), vout: 0 }, coin(5));
        let b = (OutPoint { txid: Hash256([2; 32]), vout: 1 }, coin(7));
        let mut x = UtxoCommitment::default();
        x.add(&a.0, &a.1);
        x.add(&b.0, &b.1);
        let mut y = UtxoCommitment::default();
        y.add(&b.0, &b.1);
        y.add(&a.0, &a.1);
        assert_eq!(x, y);
        x.remove(&a.0, &a.1);
        let mut z = UtxoCommitment::default();
        z.add(&b.0, &b.1);
        assert_eq!(x, z);
        assert_eq!(UtxoCommitment::from_bytes(x.to_hash().0), x);
    }
}
