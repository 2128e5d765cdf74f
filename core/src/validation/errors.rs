//! Validation errors: one variant per consensus rule.

use crate::amount::{Amount, Height};
use crate::hash::Hash256;
use crate::pow::{CompactError, CompactTarget};
use crate::tx::OutPoint;

/// A transaction breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// No inputs.
    #[error("transaction has no inputs")]
    NoInputs,
    /// No outputs (only a coinbase may have none).
    #[error("transaction has no outputs")]
    NoOutputs,
    /// Unknown format version.
    #[error("unsupported transaction version {0}")]
    UnsupportedVersion(u32),
    /// The reserved lock-time field is not zero.
    #[error("lock_time must be zero, found {0}")]
    NonZeroLockTime(u32),
    /// Encoded size above the block size limit.
    #[error("transaction is {size} bytes, above the limit of {max}")]
    Oversized {
        /// Encoded size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The same outpoint spent twice inside one transaction (CVE-2018-17144).
    #[error("transaction spends {0:?} twice")]
    DuplicateInput(OutPoint),
    /// An output of zero value.
    #[error("output {0} has zero value")]
    ZeroValueOutput(usize),
    /// An output above MAX_MONEY.
    #[error("output {0} exceeds MAX_MONEY")]
    OutputAboveMaxMoney(usize),
    /// The outputs together exceed MAX_MONEY.
    #[error("outputs sum above MAX_MONEY")]
    OutputTotalAboveMaxMoney,
    /// A non-coinbase input names the null outpoint.
    #[error("input {0} of a non-coinbase transaction spends the null outpoint")]
    NullPrevout(usize),
    /// A spending input carries coinbase data.
    #[error("input {0} spends an output but carries coinbase data")]
    CoinbaseUnlockInSpend(usize),
    /// The coinbase input carries a signature instead of coinbase data.
    #[error("coinbase input carries a signature instead of coinbase data")]
    SignatureOnCoinbase,
    /// The coinbase's free data is too long.
    #[error("coinbase extra data is {len} bytes, above the limit of {max}")]
    CoinbaseExtraTooLong {
        /// Length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The spent output does not exist or is already spent.
    #[error("input {index} spends {outpoint:?}, which is missing or already spent")]
    MissingOrSpentInput {
        /// Input index.
        index: usize,
        /// The outpoint.
        outpoint: OutPoint,
    },
    /// Spends a coinbase output before it matured.
    #[error("input {index} spends a coinbase from height {coin_height} before maturity ({confirmations} of {required} confirmations)")]
    ImmatureCoinbaseSpend {
        /// Input index.
        index: usize,
        /// Height of the coinbase.
        coin_height: Height,
        /// Confirmations it would have.
        confirmations: u32,
        /// Confirmations required.
        required: u32,
    },
    /// The input's key does not hash to the spent output's address.
    #[error("input {0}'s public key does not match the address of the output it spends")]
    PubkeyMismatch(usize),
    /// Input values overflow.
    #[error("input values sum above MAX_MONEY")]
    InputTotalAboveMaxMoney,
    /// Outputs exceed inputs.
    #[error("outputs ({outputs}) exceed inputs ({inputs})")]
    InsufficientInputs {
        /// Sum of inputs.
        inputs: Amount,
        /// Sum of outputs.
        outputs: Amount,
    },
    /// A signature does not verify.
    #[error("signature of input {0} does not verify")]
    BadSignature(usize),
}

/// A block or header breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The header's bits are malformed.
    #[error("invalid bits: {0}")]
    InvalidBits(#[from] CompactError),
    /// The header's target is easier than the chain spec allows.
    #[error("target {0} is easier than the proof-of-work limit")]
    TargetAboveLimit(CompactTarget),
    /// The hash does not meet the header's own target.
    #[error("block hash {0} does not meet its target")]
    HighHash(Hash256),
    /// The header version is not the one consensus allows.
    #[error("header version {found} but only version {expected} is valid")]
    BadHeaderVersion {
        /// The valid version.
        expected: u32,
        /// Version in the header.
        found: u32,
    },
    /// The bits differ from what the difficulty algorithm demands.
    #[error("header bits {found} but the expected difficulty is {expected}")]
    BadDifficultyBits {
        /// Bits the algorithm computed.
        expected: CompactTarget,
        /// Bits in the header.
        found: CompactTarget,
    },
    /// Timestamp not above the median of the last 11 blocks.
    #[error("timestamp {time} is not above the median time past {median}")]
    TimeTooOld {
        /// Header time.
        time: u64,
        /// Median of the previous 11.
        median: u64,
    },
    /// Timestamp more than the allowed drift ahead of local time. Not a
    /// mark of invalidity: the block may become valid later.
    #[error("timestamp {time} is more than the allowed drift ahead of local time (latest allowed {max_allowed})")]
    TimeTooFarInFuture {
        /// Header time.
        time: u64,
        /// Latest acceptable time now.
        max_allowed: u64,
    },
    /// A block without transactions.
    #[error("block has no transactions")]
    NoTransactions,
    /// The first transaction is not a coinbase.
    #[error("first transaction is not a coinbase")]
    FirstNotCoinbase,
    /// A coinbase after the first position.
    #[error("transaction {0} is a second coinbase")]
    ExtraCoinbase(usize),
    /// Merkle root mismatch.
    #[error("header merkle root {header} but the transactions hash to {computed}")]
    BadMerkleRoot {
        /// Root in the header.
        header: Hash256,
        /// Root of the transactions.
        computed: Hash256,
    },
    /// Two identical merkle siblings (CVE-2012-2459).
    #[error("merkle tree has duplicate siblings (CVE-2012-2459 mutation)")]
    MerkleMutation,
    /// Encoded size above the limit.
    #[error("block is {size} bytes, above the limit of {max}")]
    Oversized {
        /// Encoded size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// Two transactions of the block spend the same outpoint.
    #[error("two transactions of the block spend {0:?}")]
    DuplicateSpendInBlock(crate::tx::OutPoint),
    /// The coinbase commits to the wrong height.
    #[error("coinbase commits to height {found} but the block is at height {expected}")]
    BadCoinbaseHeight {
        /// The block's height.
        expected: Height,
        /// Height in the coinbase.
        found: Height,
    },
    /// The coinbase pays more than subsidy plus fees.
    #[error("coinbase pays {paid} but subsidy plus fees is {allowed}")]
    CoinbaseOverpays {
        /// Coinbase outputs.
        paid: Amount,
        /// Subsidy plus fees.
        allowed: Amount,
    },
    /// Fees plus subsidy overflow.
    #[error("block fees plus subsidy exceed MAX_MONEY")]
    FeeOverflow,
    /// A transaction breaks a rule.
    #[error("transaction {index} ({txid}): {source}")]
    Transaction {
        /// Position in the block.
        index: usize,
        /// Its id.
        txid: Hash256,
        /// The rule.
        source: TxError,
    },
}

impl BlockError {
    /// Whether the block may become valid later (only a future timestamp):
    /// such a block is deferred, never marked invalid.
    pub fn is_temporary(&self) -> bool {
        matches!(self, BlockError::TimeTooFarInFuture { .. })
    }
}
