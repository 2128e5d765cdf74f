//! Address queries over the node's address index (the store's coins and
//! history of an address, and the mempool's `touching`): balance, totals,
//! history and unspent outputs. No scan of the chain or the UTXO set.

use super::query::{tx, TxStatus, TxView, TXS_PER_PAGE};
use super::ExplorerError;
use crate::node::Node;
use lode_core::tx::OutPoint;
use lode_core::{Address, Hash256, Height};
use std::collections::{HashMap, HashSet};

/// Longest confirmed history whose funded and spent totals are computed
/// (one block read per block of its history); above it they are unknown.
pub const TOTALS_SCAN_LIMIT: usize = 1000;
/// Most unspent outputs one request lists (as Esplora's history limit).
pub const MAX_UTXOS: usize = 5000;
/// Most mempool transactions an address's transaction list shows (as Esplora).
pub const MAX_MEMPOOL_TXS: usize = 50;

/// Funded and spent outputs of an address, confirmed or in the mempool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Transactions touching it.
    pub tx_count: u64,
    /// Outputs paying it (`None`: history too long to total).
    pub funded_txo_count: Option<u64>,
    /// Their value.
    pub funded_txo_sum: Option<u64>,
    /// Outputs of it since spent.
    pub spent_txo_count: Option<u64>,
    /// Their value.
    pub spent_txo_sum: Option<u64>,
}

/// An address's balance and totals.
#[derive(Clone, Debug)]
pub struct AddressSummary {
    /// The address as text.
    pub address: String,
    /// Confirmed history.
    pub chain: Totals,
    /// Mempool effect.
    pub mempool: Totals,
    /// Confirmed unspent outputs.
    pub utxo_count: u64,
    /// Their value: the confirmed balance, immature coinbases included.
    pub balance: u64,
    /// Part of `balance` in coinbase outputs not yet mature.
    pub immature: u64,
}

impl AddressSummary {
    /// Net effect of its mempool transactions on the balance.
    pub fn unconfirmed(&self) -> i128 {
        i128::from(self.mempool.funded_txo_sum.unwrap_or(0)) - i128::from(self.mempool.spent_txo_sum.unwrap_or(0))
    }
}

/// An unspent output of an address.
#[derive(Clone, Copy, Debug)]
pub struct Utxo {
    /// The outpoint.
    pub outpoint: OutPoint,
    /// Value in base units.
    pub value: u64,
    /// Confirmed (with height) or in the mempool.
    pub status: TxStatus,
    /// Created by a coinbase.
    pub coinbase: bool,
}

/// Balance and totals of `address`.
pub fn summary(node: &Node, address: &Address) -> Result<AddressSummary, ExplorerError> {
    let maturity = node.spec().coinbase_maturity;
    // The address index is read off the chain lock (a dusted address would
    // otherwise stall block processing for every page view).
    let store = node.chain().shared_store();
    let (coins, history) = (store.address_coins(address)?, store.address_history(address)?);
    let next = node.chain().state().height.0 + 1;
    // Saturating: each stored coin is within the money supply, but an
    // edited index can hold more of them than the supply allows.
    let balance = coins.iter().fold(0u64, |sum, (_, c)| sum.saturating_add(c.output.value.units()));
    let immature = coins
        .iter()
        .filter(|(_, c)| c.coinbase && next.saturating_sub(c.height.0) < maturity)
        .fold(0u64, |sum, (_, c)| sum.saturating_add(c.output.value.units()));
    let mut chain_totals = Totals { tx_count: history.len() as u64, ..Totals::default() };
    if history.len() <= TOTALS_SCAN_LIMIT {
        if let Some((count, sum)) = funded(node, address, &history) {
            // Whatever it was paid and no longer holds, it spent.
            chain_totals.funded_txo_count = Some(count);
            chain_totals.funded_txo_sum = Some(sum);
            chain_totals.spent_txo_count = Some(count.saturating_sub(coins.len() as u64));
            chain_totals.spent_txo_sum = Some(sum.saturating_sub(balance));
        }
    }
    let mut pool_totals = Totals { funded_txo_count: Some(0), funded_txo_sum: Some(0), ..Totals::default() };
    pool_totals.spent_txo_count = Some(0);
    pool_totals.spent_txo_sum = Some(0);
    {
        let pool = node.mempool();
        for e in pool.touching(address) {
            pool_totals.tx_count += 1;
            for o in e.tx.outputs.iter().filter(|o| o.address == *address) {
                add(&mut pool_totals.funded_txo_count, &mut pool_totals.funded_txo_sum, o.value.units());
            }
            for o in e.spent.iter().filter(|o| o.address == *address) {
                add(&mut pool_totals.spent_txo_count, &mut pool_totals.spent_txo_sum, o.value.units());
            }
        }
    }
    Ok(AddressSummary {
        address: super::query::address_text(node, address),
        chain: chain_totals,
        mempool: pool_totals,
        utxo_count: coins.len() as u64,
        balance,
        immature,
    })
}

fn add(count: &mut Option<u64>, sum: &mut Option<u64>, value: u64) {
    *count = count.map(|c| c + 1);
    *sum = sum.map(|s| s.saturating_add(value));
}

/// Outputs paying `address` in its confirmed history (count, value): one
/// block read per block, each after a brief lock to find its hash; `None`
/// when a block vanished in a reorganisation meanwhile.
fn funded(node: &Node, address: &Address, history: &[(Height, Hash256)]) -> Option<(u64, u64)> {
    let mut by_height: HashMap<Height, HashSet<Hash256>> = HashMap::new();
    for (h, txid) in history {
        by_height.entry(*h).or_default().insert(*txid);
    }
    let (mut count, mut sum) = (0u64, 0u64);
    for (height, txids) in by_height {
        let (hash, store) = {
            let chain = node.chain();
            (chain.hash_at(height)?, chain.shared_store())
        };
        let block = store.block(&hash).ok()??;
        for tx in block.transactions.iter().filter(|t| txids.contains(&t.txid())) {
            for o in tx.outputs.iter().filter(|o| o.address == *address) {
                count += 1;
                sum = sum.saturating_add(o.value.units());
            }
        }
    }
    Some((count, sum))
}

/// The address's mempool transactions (at most [`MAX_MEMPOOL_TXS`], newest first).
pub fn mempool_txs(node: &Node, address: &Address) -> Result<Vec<TxView>, ExplorerError> {
    let mut ids: Vec<(u64, Hash256)> = node.mempool().touching(address).iter().map(|e| (e.time, e.txid)).collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(ids.into_iter().take(MAX_MEMPOOL_TXS).filter_map(|(_, txid)| tx(node, &txid).ok()).collect())
}

/// Confirmed transactions of the address, newest first: a page of
/// [`TXS_PER_PAGE`] after the one with id `after` (Esplora's paging), or
/// from `skip` entries in; also returns the history's length.
pub fn chain_txs(
    node: &Node,
    address: &Address,
    after: Option<Hash256>,
    skip: usize,
) -> Result<(Vec<TxView>, usize), ExplorerError> {
    let store = node.chain().shared_store();
    let history = store.address_history(address)?;
    let total = history.len();
    let newest_first = history.into_iter().rev().map(|(_, txid)| txid);
    let page: Vec<Hash256> = match after {
        Some(last) => newest_first.skip_while(|t| *t != last).skip(1).take(TXS_PER_PAGE).collect(),
        None => newest_first.skip(skip).take(TXS_PER_PAGE).collect(),
    };
    Ok((page.iter().filter_map(|txid| tx(node, txid).ok()).collect(), total))
}

/// Unspent outputs of the address: confirmed ones the mempool does not
/// spend, then mempool outputs nobody spends (400 above [`MAX_UTXOS`]).
pub fn utxos(node: &Node, address: &Address) -> Result<Vec<Utxo>, ExplorerError> {
    let store = node.chain().shared_store();
    let coins = store.address_coins(address)?;
    // The chain before the mempool, as everywhere; both for at most
    // MAX_UTXOS lookups in memory.
    let chain = node.chain();
    let tip = chain.state().height.0;
    let pool = node.mempool();
    let pooled = pool.outputs_to(address);
    if coins.len() + pooled.len() > MAX_UTXOS {
        return Err(ExplorerError::BadRequest(format!(
            "too many unspent outputs to list ({}; at most {MAX_UTXOS})",
            coins.len() + pooled.len()
        )));
    }
    let mut out: Vec<Utxo> = coins
        .iter()
        .filter(|(op, _)| pool.spends(op).is_none())
        .map(|(op, c)| {
            let block = chain.hash_at(c.height).unwrap_or_default();
            let time = chain.entry(&block).map_or(0, |e| e.header.time);
            Utxo {
                outpoint: *op,
                value: c.output.value.units(),
                status: TxStatus::Confirmed {
                    height: c.height.0,
                    block,
                    time,
                    confirmations: (tip + 1).saturating_sub(c.height.0),
                },
                coinbase: c.coinbase,
            }
        })
        .collect();
    // Newest first, as the history is shown.
    out.sort_by(|a, b| utxo_height(b).cmp(&utxo_height(a)).then(a.outpoint.cmp(&b.outpoint)));
    let mut mempool: Vec<Utxo> = pooled
        .into_iter()
        .map(|(op, o)| Utxo { outpoint: op, value: o.value.units(), status: TxStatus::Mempool, coinbase: false })
        .collect();
    mempool.sort_by_key(|u| u.outpoint);
    mempool.extend(out);
    Ok(mempool)
}

fn utxo_height(u: &Utxo) -> u32 {
    match u.status {
        TxStatus::Confirmed { height, .. } => height,
        TxStatus::Mempool => u32::MAX,
    }
}

#[cfg(test)]
#[path = "addr_tests.rs"]
mod tests;
