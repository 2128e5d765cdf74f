//! Policy and result types of the pool: admission and size rules, why a
//! transaction was refused, a held entry, and what admission did.

use super::FeeRate;
use lode_core::tx::OutPoint;
use lode_core::validation::TxError;
use lode_core::{Address, Amount, Hash256, Transaction, TxOut};

/// Admission and size rules (not consensus).
#[derive(Clone, Debug)]
pub struct MempoolPolicy {
    /// Minimum fee rate, base units per byte.
    pub min_fee_rate: u64,
    /// Total bytes of transactions held before the cheapest are evicted.
    pub max_bytes: usize,
    /// Most unconfirmed ancestors a transaction may have, itself included.
    pub max_chain: usize,
    /// Most unconfirmed descendants a transaction may have, itself included.
    pub max_descendants: usize,
    /// Seconds after which an unmined transaction is dropped.
    pub expiry_secs: u64,
    /// Largest transaction relayed.
    pub max_tx_size: usize,
    /// Fee rate (base units per byte) a newcomer must pay above what it
    /// evicts from a full pool or replaces.
    pub incremental_relay_fee: u64,
    /// Most transactions one replacement may evict (conflicts and their
    /// descendants together).
    pub max_replacement_evictions: usize,
}

impl Default for MempoolPolicy {
    fn default() -> Self {
        MempoolPolicy {
            min_fee_rate: 1,
            max_bytes: 64 << 20,
            max_chain: 25,
            max_descendants: 25,
            expiry_secs: 14 * 24 * 3600,
            max_tx_size: 100_000,
            incremental_relay_fee: 1,
            max_replacement_evictions: 100,
        }
    }
}

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Breaks a consensus rule.
    #[error("invalid transaction: {0}")]
    Invalid(#[from] TxError),
    /// Coinbases only come in blocks.
    #[error("a coinbase cannot enter the mempool")]
    Coinbase,
    /// Valid at a later height perhaps (a coinbase output mature at the
    /// sender's height, not yet at ours): refused, but not the sender's fault.
    #[error("not yet valid here: {0}")]
    Premature(TxError),
    /// Already in the mempool or the chain.
    #[error("transaction {0} is already known")]
    AlreadyKnown(Hash256),
    /// Spends an outpoint a mempool transaction already spends, and does
    /// not pay enough to replace it (full replace-by-fee, as Bitcoin Core 28).
    #[error("replacement of {with} (it spends {}:{}) refused: {why}; it must pay at least {required} (pays {fee})", .outpoint.txid, .outpoint.vout)]
    ReplacementTooCheap {
        /// A contested outpoint.
        outpoint: OutPoint,
        /// A transaction already spending it.
        with: Hash256,
        /// Which rule the fee breaks.
        why: String,
        /// Fee the newcomer pays.
        fee: u64,
        /// Smallest fee that would replace everything it conflicts with.
        required: u64,
    },
    /// Replacing would evict more transactions than the policy allows.
    #[error(
        "replacement would evict {count} transactions (conflicts and their descendants), above the limit of {limit}"
    )]
    TooManyReplacements {
        /// Transactions it would evict.
        count: usize,
        /// Limit.
        limit: usize,
    },
    /// A replacement spending an output of a transaction it replaces (it
    /// would remove its own parent).
    #[error("replacement spends output {}:{} of transaction {} it would replace", .outpoint.txid, .outpoint.vout, .outpoint.txid)]
    SpendsReplaced {
        /// The outpoint.
        outpoint: OutPoint,
    },
    /// A replacement with an unconfirmed input none of the replaced
    /// transactions had (Bitcoin Core's rule 2: its mining score could fall
    /// below theirs through a poor new parent).
    #[error("replacement adds unconfirmed input {}:{} that none of the replaced transactions spends from", .outpoint.txid, .outpoint.vout)]
    ReplacementAddsUnconfirmed {
        /// The outpoint.
        outpoint: OutPoint,
    },
    /// An input is neither unspent in the chain nor created by the mempool.
    #[error("input {index} ({}:{}) is missing or already spent", .outpoint.txid, .outpoint.vout)]
    MissingInputs {
        /// Input index.
        index: usize,
        /// The outpoint.
        outpoint: OutPoint,
    },
    /// Pays too little.
    #[error("fee {fee} for {size} bytes is below the minimum relay fee of {required}")]
    FeeTooLow {
        /// Fee paid.
        fee: u64,
        /// Size.
        size: usize,
        /// Fee required.
        required: u64,
    },
    /// Too many unconfirmed ancestors.
    #[error("{length} unconfirmed transactions in its ancestry (itself included) exceed the limit of {limit}")]
    ChainTooLong {
        /// Ancestors with this transaction (at least; counting stops past the limit).
        length: usize,
        /// Limit.
        limit: usize,
    },
    /// An unconfirmed ancestor already has the most descendants allowed.
    #[error("unconfirmed ancestor {ancestor} would have {count} descendants, above the limit of {limit}")]
    TooManyDescendants {
        /// The ancestor.
        ancestor: Hash256,
        /// Its package size with this transaction.
        count: usize,
        /// Limit.
        limit: usize,
    },
    /// Full, and this transaction pays less than what it would evict.
    #[error("mempool full: fee rate too low to evict anything")]
    MempoolFull,
    /// Larger than the relay limit.
    #[error("transaction of {size} bytes exceeds the relay limit of {max}")]
    TooLarge {
        /// Size.
        size: usize,
        /// Limit.
        max: usize,
    },
}

impl MempoolError {
    /// Whether the sender broke a consensus rule (and deserves a penalty).
    pub fn is_consensus_invalid(&self) -> bool {
        matches!(self, MempoolError::Invalid(_) | MempoolError::Coinbase)
    }
}

/// A held transaction.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its id.
    pub txid: Hash256,
    /// The transaction.
    pub tx: Transaction,
    /// Fee paid.
    pub fee: Amount,
    /// Encoded size.
    pub size: usize,
    /// Arrival time (Unix seconds).
    pub time: u64,
    /// The outputs its inputs spend, in input order (known at admission,
    /// so address queries never look them up in blocks).
    pub spent: Vec<TxOut>,
}

impl Entry {
    /// Every address it pays or spends from, each once.
    pub fn addresses(&self) -> Vec<Address> {
        let mut out: Vec<Address> = self.tx.outputs.iter().chain(&self.spent).map(|o| o.address).collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

impl Entry {
    /// Fee per byte, scaled by 1000 to keep integer precision.
    pub fn fee_rate_milli(&self) -> u64 {
        self.fee.units().saturating_mul(1000) / self.size.max(1) as u64
    }

    /// Fee over size, compared exactly.
    pub fn fee_rate(&self) -> FeeRate {
        FeeRate::new(self.fee.units(), self.size)
    }
}

/// What admission did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedTx {
    /// The admitted transaction's id.
    pub txid: Hash256,
    /// Its fee.
    pub fee: Amount,
    /// Its encoded size.
    pub size: usize,
    /// Transactions evicted to make room (cheapest packages).
    pub evicted: Vec<Hash256>,
    /// Transactions it replaced (conflicts and their descendants).
    pub replaced: Vec<Hash256>,
    /// Its unconfirmed ancestors in the pool when admitted.
    pub ancestors: usize,
}
