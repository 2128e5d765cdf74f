//! Rules against the UTXO set: inputs exist, mature and belong to the
//! signer, values balance, the coinbase claims no more than it may, and
//! every signature verifies (in parallel, skipping cached ones).

use super::{BlockError, TxError};
use crate::address::Address;
use crate::amount::{Amount, Height};
use crate::block::Block;
use crate::crypto::{verify_batch, SigCache, SigCheck};
use crate::hash::Hash256;
use crate::tx::{OutPoint, Transaction, TxOut, Unlock};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// An unspent output and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coin {
    /// The output.
    pub output: TxOut,
    /// Height of the block that created it.
    pub height: Height,
    /// Whether a coinbase created it (subject to maturity).
    pub coinbase: bool,
}

/// Read access to a UTXO set.
pub trait UtxoView {
    /// The unspent coin at `outpoint`, if any.
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin>;
}

impl<S: std::hash::BuildHasher> UtxoView for HashMap<OutPoint, Coin, S> {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        self.get(outpoint).copied()
    }
}

/// Chain facts that contextual checks need.
#[derive(Clone, Copy, Debug)]
pub struct ConnectContext {
    /// Genesis hash, committed to by every signature hash.
    pub genesis: Hash256,
    /// Confirmations before a coinbase output may be spent.
    pub coinbase_maturity: u32,
    /// The subsidy of the block being connected.
    pub subsidy: Amount,
}

/// What connecting a block changes.
#[derive(Clone, Debug, Default)]
pub struct ConnectOutcome {
    /// Coins taken from the view, in spend order: the block's undo data.
    pub spent: Vec<(OutPoint, Coin)>,
    /// Coins the block creates that it does not itself spend.
    pub created: Vec<(OutPoint, Coin)>,
    /// Every transaction's id, in block order (the coinbase's first):
    /// computed once here for whoever follows the block (indexes, mempool,
    /// fee estimates) instead of once by each.
    pub txids: Vec<Hash256>,
    /// Sum of fees.
    pub fees: Amount,
    /// Signatures verified now.
    pub sigs_verified: usize,
    /// Signatures found in the cache.
    pub sigs_cached: usize,
}

/// Checks a non-coinbase transaction's inputs against `view` for inclusion
/// in a block at `height`. Returns its fee and the signature checks it
/// needs (not yet run).
pub fn check_tx_inputs(
    tx: &Transaction,
    height: Height,
    ctx: &ConnectContext,
    view: &impl UtxoView,
) -> Result<(Amount, Vec<SigCheck>), TxError> {
    check_tx_inputs_with_coins(tx, height, ctx, view).map(|(fee, checks, _)| (fee, checks))
}

/// [`check_tx_inputs`], also returning the spent coins in input order.
fn check_tx_inputs_with_coins(
    tx: &Transaction,
    height: Height,
    ctx: &ConnectContext,
    view: &impl UtxoView,
) -> Result<(Amount, Vec<SigCheck>, Vec<Coin>), TxError> {
    let mut coins = Vec::with_capacity(tx.inputs.len());
    // Repeated here, not only in check_transaction: a view answers the same
    // coin twice, so a caller that skipped the context-free rules would
    // otherwise count one coin's value twice (CVE-2018-17144).
    let mut seen = HashSet::with_capacity(tx.inputs.len());
    for (index, input) in tx.inputs.iter().enumerate() {
        if !seen.insert(input.prevout) {
            return Err(TxError::DuplicateInput(input.prevout));
        }
        let coin = view.coin(&input.prevout).ok_or(TxError::MissingOrSpentInput { index, outpoint: input.prevout })?;
        if coin.coinbase {
            let confirmations = height.0.saturating_sub(coin.height.0);
            if confirmations < ctx.coinbase_maturity {
                return Err(TxError::ImmatureCoinbaseSpend {
                    index,
                    coin_height: coin.height,
                    confirmations,
                    required: ctx.coinbase_maturity,
                });
            }
        }
        match &input.unlock {
            Unlock::Signature { pubkey, .. } if Address::from_pubkey(pubkey) == coin.output.address => {}
            _ => return Err(TxError::PubkeyMismatch(index)),
        }
        coins.push(coin);
    }
    let values: Vec<Amount> = coins.iter().map(|c| c.output.value).collect();
    let inputs = Amount::checked_sum(values.iter().copied()).ok_or(TxError::InputTotalAboveMaxMoney)?;
    let outputs = tx.output_total().ok_or(TxError::OutputTotalAboveMaxMoney)?;
    let fee = inputs.checked_sub(outputs).ok_or(TxError::InsufficientInputs { inputs, outputs })?;
    Ok((fee, tx.sig_checks(&ctx.genesis, &values), coins))
}

/// Fewer uncached signatures than this are verified one by one (a batch of
/// 4 already verifies twice as fast per signature as k256 alone).
pub const BATCH_MIN: usize = 2;

/// Signatures below which a batch is not split further across cores.
pub const BATCH_PER_CORE_MIN: usize = 32;

/// Runs signature checks, skipping those in `cache`: the rest as BIP-340
/// batches, one per core. Returns the position of the first failing check
/// (as checking each in order would), or how many were verified and how
/// many came from the cache. Nothing is added to `cache` here.
pub fn verify_sig_checks(checks: &[SigCheck], cache: Option<&SigCache>) -> Result<(usize, usize), usize> {
    let pending: Vec<usize> = match cache {
        Some(c) => (0..checks.len()).filter(|&i| !c.contains(&checks[i])).collect(),
        None => (0..checks.len()).collect(),
    };
    let failed = if pending.len() < BATCH_MIN {
        pending.iter().copied().find(|&i| !checks[i].verify())
    } else {
        let batch: Vec<SigCheck> = pending.iter().map(|&i| checks[i]).collect();
        let parts = rayon::current_num_threads().min(batch.len() / BATCH_PER_CORE_MIN).max(1);
        let size = batch.len().div_ceil(parts);
        // Each part names its own first failure; the lowest is the block's.
        batch
            .par_chunks(size)
            .enumerate()
            .filter_map(|(k, part)| verify_batch(part).err().map(|j| pending[k * size + j]))
            .min()
    };
    match failed {
        Some(i) => Err(i),
        None => Ok((pending.len(), checks.len() - pending.len())),
    }
}

/// A view that layers the block's own new outputs over the UTXO set and
/// hides what the block has already spent.
struct BlockView<'a, V: UtxoView> {
    base: &'a V,
    created: HashMap<OutPoint, Coin>,
    /// Every outpoint an earlier transaction of the block spent.
    spent: HashSet<OutPoint>,
}

impl<V: UtxoView> UtxoView for BlockView<'_, V> {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        if self.spent.contains(outpoint) {
            return None;
        }
        self.created.get(outpoint).copied().or_else(|| self.base.coin(outpoint))
    }
}

/// A block whose UTXO rules passed and whose signatures are still to be
/// checked: the caller may prepare its database writes while
/// [`PendingConnect::verify`] runs on the other cores.
pub struct PendingConnect {
    /// The UTXO changes (valid only once `verify` passes).
    pub outcome: ConnectOutcome,
    checks: Vec<SigCheck>,
    /// (transaction index, input index, txid) of each check.
    owners: Vec<(usize, usize, Hash256)>,
}

impl PendingConnect {
    /// Verifies the block's signatures (batched per core), skipping cached ones;
    /// returns how many were verified and how many came from the cache.
    pub fn verify(&self, sig_cache: Option<&SigCache>) -> Result<(usize, usize), BlockError> {
        match verify_sig_checks(&self.checks, sig_cache) {
            Ok(counts) => Ok(counts),
            Err(i) => {
                let (index, input, txid) = self.owners[i];
                Err(BlockError::Transaction { index, txid, source: TxError::BadSignature(input) })
            }
        }
    }
}

/// Validates `block` (normally already through [`super::check_block`]) at
/// `height` against `view` and returns the UTXO changes. Nothing is written:
/// the caller applies the outcome atomically. The spend rules that guard the
/// money supply (no outpoint spent twice, in a transaction or the block) are
/// enforced here too, so skipping `check_block` cannot inflate the supply.
pub fn connect_block(
    block: &Block,
    height: Height,
    ctx: &ConnectContext,
    view: &impl UtxoView,
    sig_cache: Option<&SigCache>,
) -> Result<ConnectOutcome, BlockError> {
    let mut pending = connect_block_deferred(block, height, ctx, view)?;
    let (verified, cached) = pending.verify(sig_cache)?;
    pending.outcome.sigs_verified = verified;
    pending.outcome.sigs_cached = cached;
    Ok(pending.outcome)
}

/// Everything [`connect_block`] checks except signatures, which the returned
/// [`PendingConnect`] verifies.
pub fn connect_block_deferred(
    block: &Block,
    height: Height,
    ctx: &ConnectContext,
    view: &impl UtxoView,
) -> Result<PendingConnect, BlockError> {
    let coinbase = block.transactions.first().ok_or(BlockError::NoTransactions)?;
    match coinbase.inputs.first().map(|i| &i.unlock) {
        Some(Unlock::Coinbase { height: found, .. }) if *found == height => {}
        Some(Unlock::Coinbase { height: found, .. }) => {
            return Err(BlockError::BadCoinbaseHeight { expected: height, found: *found })
        }
        _ => return Err(BlockError::FirstNotCoinbase),
    }

    let mut layered = BlockView { base: view, created: HashMap::new(), spent: HashSet::new() };
    let mut outcome = ConnectOutcome::default();
    let mut checks: Vec<SigCheck> = Vec::new();
    let mut owners: Vec<(usize, usize, Hash256)> = Vec::new();
    let mut fees = Amount::ZERO;
    outcome.txids.reserve_exact(block.transactions.len());

    for (index, tx) in block.transactions.iter().enumerate() {
        let txid = tx.txid();
        outcome.txids.push(txid);
        if index > 0 {
            // Named as the block-level rule (not as a missing input) so the
            // verdict matches check_block's.
            if let Some(input) = tx.inputs.iter().find(|i| layered.spent.contains(&i.prevout)) {
                return Err(BlockError::DuplicateSpendInBlock(input.prevout));
            }
            let (fee, tx_checks, coins) = check_tx_inputs_with_coins(tx, height, ctx, &layered)
                .map_err(|source| BlockError::Transaction { index, txid, source })?;
            fees = fees.checked_add(fee).filter(|f| f.is_valid()).ok_or(BlockError::FeeOverflow)?;
            // check_tx_inputs accepted only signature inputs, one check each.
            owners.extend((0..tx_checks.len()).map(|input| (index, input, txid)));
            for (input, coin) in tx.inputs.iter().zip(coins) {
                layered.spent.insert(input.prevout);
                // Coins created earlier in this block are not undo data.
                if layered.created.remove(&input.prevout).is_none() {
                    outcome.spent.push((input.prevout, coin));
                }
            }
            checks.extend(tx_checks);
        }
        for (vout, output) in tx.outputs.iter().enumerate() {
            let coin = Coin { output: *output, height, coinbase: index == 0 };
            layered.created.insert(OutPoint { txid, vout: vout as u32 }, coin);
        }
    }

    let allowed = ctx.subsidy.checked_add(fees).filter(|a| a.is_valid()).ok_or(BlockError::FeeOverflow)?;
    let paid = coinbase.output_total().ok_or(BlockError::Transaction {
        index: 0,
        txid: outcome.txids[0],
        source: TxError::OutputTotalAboveMaxMoney,
    })?;
    if paid > allowed {
        return Err(BlockError::CoinbaseOverpays { paid, allowed });
    }

    let mut created: Vec<(OutPoint, Coin)> = layered.created.into_iter().collect();
    // Sorted so the outcome does not depend on hash-map order.
    created.sort_by_key(|(op, _)| *op);
    outcome.created = created;
    outcome.fees = fees;
    Ok(PendingConnect { outcome, checks, owners })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    fn checks(n: usize) -> Vec<SigCheck> {
        let keys: Vec<SecretKey> = (0..5).map(|_| SecretKey::generate()).collect();
        (0..n)
            .map(|i| {
                let sk = &keys[i % keys.len()];
                let msg = crate::hash::sha256d(&(i as u64).to_le_bytes());
                SigCheck { pubkey: sk.public_key(), msg, sig: sk.sign(&msg) }
            })
            .collect()
    }

    #[test]
    fn batched_checks_name_the_first_failure_among_uncached() {
        let mut all = checks(300);
        assert_eq!(verify_sig_checks(&all, None), Ok((300, 0)));
        let cache = SigCache::new(1000);
        cache.insert_all(&all[..100]);
        assert_eq!(verify_sig_checks(&all, Some(&cache)), Ok((200, 100)));
        // Failures in the second core's part and in the first: the first
        // in block order is named, counted over the uncached checks only.
        all[290].msg.0[0] ^= 1;
        assert_eq!(verify_sig_checks(&all, Some(&cache)), Err(290));
        all[120].sig.0[40] ^= 1;
        assert_eq!(verify_sig_checks(&all, Some(&cache)), Err(120));
        assert_eq!(verify_sig_checks(&all, None), Err(120));
        // A changed check is not the cached one: it is verified, and fails.
        all[50].sig.0[40] ^= 1;
        assert_eq!(verify_sig_checks(&all, Some(&cache)), Err(50));
        assert_eq!(verify_sig_checks(&all[..3], None), Ok((3, 0)));
        assert_eq!(verify_sig_checks(&all[48..52], None), Err(2));
    }
}
