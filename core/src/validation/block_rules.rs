//! Context-free block rules: everything provable from the block alone.

use super::{check_transaction, BlockError};
use crate::block::Block;
use crate::spec::ChainSpec;
use std::collections::HashSet;

/// Checks size, coinbase position, merkle root (and its mutation), every
/// transaction's context-free rules, and that no outpoint is spent twice.
/// Proof of work is [`super::check_header`]'s job and runs before this.
pub fn check_block(block: &Block, spec: &ChainSpec) -> Result<(), BlockError> {
    let size = block.encoded_size();
    if size > spec.max_block_size {
        return Err(BlockError::Oversized { size, max: spec.max_block_size });
    }
    let Some(first) = block.transactions.first() else {
        return Err(BlockError::NoTransactions);
    };
    if !first.is_coinbase() {
        return Err(BlockError::FirstNotCoinbase);
    }
    let txids: Vec<_> = block.transactions.iter().map(|tx| tx.txid()).collect();
    let (root, mutated) = crate::block::merkle_root(&txids);
    if mutated {
        return Err(BlockError::MerkleMutation);
    }
    if root != block.header.merkle_root {
        return Err(BlockError::BadMerkleRoot { header: block.header.merkle_root, computed: root });
    }
    let mut spent = HashSet::new();
    for (index, (tx, txid)) in block.transactions.iter().zip(&txids).enumerate() {
        if index > 0 && tx.is_coinbase() {
            return Err(BlockError::ExtraCoinbase(index));
        }
        check_transaction(tx, spec.max_block_size).map_err(|source| BlockError::Transaction {
            index,
            txid: *txid,
            source,
        })?;
        if index > 0 {
            for input in &tx.inputs {
                if !spent.insert(input.prevout) {
                    return Err(BlockError::DuplicateSpendInBlock(input.prevout));
                }
            }
        }
    }
    Ok(())
}
