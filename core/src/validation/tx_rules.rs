//! Context-free transaction rules.

use super::TxError;
use crate::amount::MAX_MONEY;
use crate::tx::{Transaction, Unlock, MAX_COINBASE_EXTRA};
use std::collections::HashSet;

/// Checks everything provable from the transaction alone. `max_size` is the
/// chain's block size limit.
pub fn check_transaction(tx: &Transaction, max_size: usize) -> Result<(), TxError> {
    if tx.version != 1 {
        return Err(TxError::UnsupportedVersion(tx.version));
    }
    if tx.lock_time != 0 {
        return Err(TxError::NonZeroLockTime(tx.lock_time));
    }
    if tx.inputs.is_empty() {
        return Err(TxError::NoInputs);
    }
    // A coinbase may pay out less than it may claim, down to nothing: with no
    // outputs it is how a block is built once the subsidy has run out and
    // there are no fees (zero-value outputs stay forbidden, so no worthless
    // coin ever enters the UTXO set). Any other transaction must pay someone.
    if tx.outputs.is_empty() && !tx.is_coinbase() {
        return Err(TxError::NoOutputs);
    }
    let size = tx.encoded_size();
    if size > max_size {
        return Err(TxError::Oversized { size, max: max_size });
    }
    for (i, out) in tx.outputs.iter().enumerate() {
        if out.value.units() == 0 {
            return Err(TxError::ZeroValueOutput(i));
        }
        if out.value > MAX_MONEY {
            return Err(TxError::OutputAboveMaxMoney(i));
        }
    }
    if tx.output_total().is_none() {
        return Err(TxError::OutputTotalAboveMaxMoney);
    }
    if tx.is_coinbase() {
        match &tx.inputs[0].unlock {
            Unlock::Coinbase { extra, .. } if extra.len() > MAX_COINBASE_EXTRA => {
                return Err(TxError::CoinbaseExtraTooLong { len: extra.len(), max: MAX_COINBASE_EXTRA })
            }
            Unlock::Coinbase { .. } => {}
            Unlock::Signature { .. } => return Err(TxError::SignatureOnCoinbase),
        }
        return Ok(());
    }
    let mut seen = HashSet::with_capacity(tx.inputs.len());
    for (i, input) in tx.inputs.iter().enumerate() {
        if input.prevout.is_null() {
            return Err(TxError::NullPrevout(i));
        }
        if matches!(input.unlock, Unlock::Coinbase { .. }) {
            return Err(TxError::CoinbaseUnlockInSpend(i));
        }
        if !seen.insert(input.prevout) {
            return Err(TxError::DuplicateInput(input.prevout));
        }
    }
    Ok(())
}
