//! Lode consensus core: types, canonical encoding, proof of work, difficulty,
//! subsidy, signatures and every block and transaction validation rule.
//! Pure: no I/O, no async, no database.

pub mod address;
pub mod amount;
pub mod block;
pub mod codec;
pub mod crypto;
pub mod difficulty;
pub mod hash;
pub mod pow;
pub mod spec;
pub mod subsidy;
pub mod tx;
pub mod validation;

pub use address::Address;
pub use amount::{Amount, Height, COIN, MAX_MONEY};
pub use block::{Block, BlockHeader};
pub use hash::Hash256;
pub use spec::ChainSpec;
pub use tx::{OutPoint, Transaction, TxIn, TxOut, Unlock};
