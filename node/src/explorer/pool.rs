//! The mempool as the explorer shows it: counts, a fee-rate histogram,
//! the latest arrivals and fee estimates.

use super::ExplorerError;
use crate::node::Node;
use lode_core::Hash256;

/// Lower bounds of the fee-rate histogram's buckets, base units per byte.
pub const FEE_BUCKETS: [f64; 16] =
    [0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0, 500.0, 1000.0];
/// Confirmation targets of `/api/fee-estimates` (Esplora's).
pub const FEE_TARGETS: [u32; 28] =
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 144, 504, 1008];
/// Latest mempool arrivals shown.
pub const RECENT: usize = 10;

/// One bucket of the fee-rate histogram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FeeBucket {
    /// Lowest fee rate in the bucket (base units per byte).
    pub from: f64,
    /// Transactions in it.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The mempool's size, fees and fee-rate histogram.
#[derive(Clone, Debug)]
pub struct MempoolStats {
    /// Transactions.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Their fees.
    pub total_fee: u64,
    /// Lowest fee rate admitted (policy), base units per byte.
    pub min_fee_rate: u64,
    /// Every bucket of [`FEE_BUCKETS`], lowest first.
    pub histogram: Vec<FeeBucket>,
}

/// A mempool arrival.
#[derive(Clone, Copy, Debug)]
pub struct RecentTx {
    /// Its id.
    pub txid: Hash256,
    /// Fee.
    pub fee: u64,
    /// Encoded bytes.
    pub size: u64,
    /// Sum of its outputs.
    pub value: u64,
    /// Arrival (unix seconds).
    pub time: u64,
}

/// Counts, fees and the fee-rate histogram (one pass under the mempool lock).
pub fn stats(node: &Node) -> MempoolStats {
    let pool = node.mempool();
    let mut histogram: Vec<FeeBucket> =
        FEE_BUCKETS.iter().map(|&from| FeeBucket { from, count: 0, bytes: 0 }).collect();
    let mut total_fee = 0u64;
    for e in pool.iter() {
        total_fee = total_fee.saturating_add(e.fee.units());
        let rate = e.fee.units() as f64 / e.size.max(1) as f64;
        let i = FEE_BUCKETS.iter().rposition(|&b| rate >= b).unwrap_or(0);
        histogram[i].count += 1;
        histogram[i].bytes += e.size as u64;
    }
    MempoolStats {
        count: pool.len() as u64,
        bytes: pool.bytes() as u64,
        total_fee,
        min_fee_rate: pool.policy().min_fee_rate,
        histogram,
    }
}

/// The latest `n` arrivals, newest first (ties by txid).
pub fn recent(node: &Node, n: usize) -> Vec<RecentTx> {
    let pool = node.mempool();
    // The `n` newest in a heap of `n`, not the whole pool collected and
    // sorted (tens of MB per view of the home page with a full pool).
    let mut newest: std::collections::BinaryHeap<(std::cmp::Reverse<u64>, Hash256)> =
        std::collections::BinaryHeap::with_capacity(n + 1);
    for e in pool.iter() {
        newest.push((std::cmp::Reverse(e.time), e.txid));
        if newest.len() > n {
            newest.pop();
        }
    }
    newest
        .into_sorted_vec()
        .into_iter()
        .filter_map(|(_, txid)| pool.entry(&txid))
        .map(|e| RecentTx {
            txid: e.txid,
            fee: e.fee.units(),
            size: e.size as u64,
            value: e.tx.outputs.iter().map(|o| o.value.units()).sum(),
            time: e.time,
        })
        .collect()
}

/// Most txids `/api/mempool/txids` lists: a full pool holds hundreds of
/// thousands, a reply of tens of MB built for anyone who asks.
pub const MAX_TXIDS: usize = 10_000;

/// Every mempool txid, refused above `cap`.
pub fn txids(node: &Node, cap: usize) -> Result<Vec<Hash256>, ExplorerError> {
    let pool = node.mempool();
    if pool.len() > cap {
        return Err(ExplorerError::BadRequest(format!(
            "too many mempool transactions to list ({}; at most {cap}): see /api/mempool/recent",
            pool.len()
        )));
    }
    Ok(pool.txids())
}

/// Where fee estimates come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EstimateSource {
    /// The node's fee estimator (`estimatesmartfee`) had data for at least
    /// one target.
    Estimator,
    /// The estimator has no data yet: every target gets the mempool's
    /// minimum relay fee rate, enough to enter the pool, not a prediction.
    MempoolMinimum,
}

/// A fee rate (base units per byte) for each of [`FEE_TARGETS`], from
/// `estimatesmartfee` (targets above its horizon get its longest one's).
pub fn fee_estimates(node: &Node) -> (Vec<(u32, f64)>, EstimateSource) {
    let mut source = EstimateSource::MempoolMinimum;
    let list = FEE_TARGETS
        .iter()
        .zip(node.estimate_fees(&FEE_TARGETS))
        .map(|(&t, e)| {
            if e.errors.is_empty() {
                source = EstimateSource::Estimator;
            }
            (t, e.feerate as f64)
        })
        .collect();
    (list, source)
}
