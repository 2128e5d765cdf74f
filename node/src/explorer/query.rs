//! The explorer's read side: blocks, transactions and the chain as the
//! pages and the API show them. Functions here run on a blocking thread
//! and take the chain lock only for header-index look-ups (then the
//! mempool lock, never the other way round, as the node does); block
//! bodies, undo records and coins are read from the store with no lock
//! held, so a busy explorer never stalls block processing with disk reads.
//! A reorganisation between two reads shows up as a missing item, never
//! as a failure.

use super::ExplorerError;
use crate::chain::{Chain, ChainTip};
use crate::node::Node;
use crate::store::Store;
use lode_core::pow::difficulty;
use lode_core::tx::{OutPoint, Unlock};
use lode_core::{Address, Block, Hash256, Height, Transaction, TxOut};
use std::collections::HashMap;

/// Blocks per page of block lists (as Esplora's `/blocks`).
pub const BLOCKS_PER_PAGE: u32 = 10;
/// Transactions per page of a block's or an address's transactions (as Esplora).
pub const TXS_PER_PAGE: usize = 25;
/// Blocks the home page's difficulty and hash-rate charts cover.
pub const CHART_BLOCKS: u32 = 120;
/// Blocks averaged for one hash-rate estimate.
const HASHRATE_WINDOW: u32 = 12;
/// Blocks whose median time stamps a block (consensus's median-time-past).
const MEDIAN_SPAN: usize = 11;

/// A block header with its place in the chain and, if stored, its body's size.
#[derive(Clone, Debug)]
pub struct BlockInfo {
    /// Block hash.
    pub hash: Hash256,
    /// Height.
    pub height: u32,
    /// Header version.
    pub version: u32,
    /// Header time (unix seconds).
    pub time: u64,
    /// Median time of the last 11 blocks ending with this one.
    pub median_time: u64,
    /// Compact target.
    pub bits: u32,
    /// Difficulty relative to the chain's easiest target.
    pub difficulty: f64,
    /// Nonce.
    pub nonce: u64,
    /// Merkle root.
    pub merkle_root: Hash256,
    /// Parent (none for genesis).
    pub prev_hash: Option<Hash256>,
    /// Child on the active chain.
    pub next_hash: Option<Hash256>,
    /// Cumulative work, hex.
    pub chainwork: String,
    /// Transactions and encoded bytes, when the body is stored.
    pub body: Option<(usize, usize)>,
    /// Whether the block is on the active chain.
    pub in_best_chain: bool,
    /// Active-chain blocks from this one to the tip, itself included (0 off the chain).
    pub confirmations: u32,
}

/// Where a transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// In a block of the active chain.
    Confirmed {
        /// Block height.
        height: u32,
        /// Block hash.
        block: Hash256,
        /// Block time.
        time: u64,
        /// Blocks from it to the tip, itself included.
        confirmations: u32,
    },
    /// In the mempool.
    Mempool,
}

/// Whether an output has been spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spent {
    /// Unspent (in the UTXO set, or a mempool output nobody spends).
    No,
    /// Spent by a mempool transaction.
    InMempool(Hash256),
    /// Spent in a block (the node keeps no spender index, so not by whom).
    InChain,
}

/// A transaction with everything its page shows.
#[derive(Clone, Debug)]
pub struct TxView {
    /// Its id.
    pub txid: Hash256,
    /// The transaction.
    pub tx: Transaction,
    /// Encoded size in bytes.
    pub size: usize,
    /// Where it is.
    pub status: TxStatus,
    /// The output each input spends, in input order (`None` for the
    /// coinbase's input or an output the node cannot find).
    pub prevouts: Vec<Option<TxOut>>,
    /// Whether each output is spent.
    pub spent: Vec<Spent>,
    /// Inputs minus outputs (0 for a coinbase), when every prevout is known.
    pub fee: Option<u64>,
}

impl TxView {
    /// Whether it is a coinbase.
    pub fn is_coinbase(&self) -> bool {
        self.tx.is_coinbase()
    }

    /// Sum of its outputs.
    pub fn output_total(&self) -> u64 {
        saturating_total(self.tx.outputs.iter())
    }

    /// What it does to `address`'s balance: outputs paying it minus the
    /// prevouts it spends from it.
    pub fn net_for(&self, address: &Address) -> i128 {
        let received = saturating_total(self.tx.outputs.iter().filter(|o| o.address == *address));
        let sent = saturating_total(self.prevouts.iter().flatten().filter(|o| o.address == *address));
        i128::from(received) - i128::from(sent)
    }

    /// The height the coinbase commits to, for a coinbase.
    pub fn coinbase_height(&self) -> Option<u32> {
        match self.tx.inputs.first().map(|i| &i.unlock) {
            Some(Unlock::Coinbase { height, .. }) if self.is_coinbase() => Some(height.0),
            _ => None,
        }
    }
}

/// One point of the home page's charts.
#[derive(Clone, Copy, Debug)]
pub struct ChainPoint {
    /// Height.
    pub height: u32,
    /// Header time.
    pub time: u64,
    /// Difficulty.
    pub difficulty: f64,
    /// Estimated network hash rate (hashes per second) over the blocks before it.
    pub hashrate: f64,
}

/// Parses a 64-hex-digit id (400 when malformed).
pub fn parse_hash(s: &str, what: &str) -> Result<Hash256, ExplorerError> {
    Hash256::from_hex(s).map_err(|_| ExplorerError::BadRequest(format!("invalid {what}: expected 64 hex digits")))
}

/// Parses a block height (400 when malformed).
pub fn parse_height(s: &str) -> Result<u32, ExplorerError> {
    s.parse::<u32>().map_err(|_| ExplorerError::BadRequest("invalid block height".into()))
}

/// Parses an address of this chain (400 when malformed or of another network).
pub fn parse_address(node: &Node, s: &str) -> Result<Address, ExplorerError> {
    Address::decode(s, &node.spec().address_prefix)
        .map_err(|e| ExplorerError::BadRequest(format!("invalid address: {e}")))
}

/// An address as text on this chain.
pub fn address_text(node: &Node, a: &Address) -> String {
    a.encode(&node.spec().address_prefix).unwrap_or_default()
}

/// The active tip's height and hash.
pub fn tip(node: &Node) -> (u32, Hash256) {
    let chain = node.chain();
    (chain.state().height.0, chain.state().tip)
}

fn median_time(chain: &Chain, hash: &Hash256) -> u64 {
    let mut times = Vec::with_capacity(MEDIAN_SPAN);
    let mut cur = *hash;
    while let Some(e) = chain.entry(&cur) {
        times.push(e.header.time);
        if times.len() == MEDIAN_SPAN || e.height.0 == 0 {
            break;
        }
        cur = e.header.prev_hash;
    }
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or(0)
}

/// A block's header facts from the index (no body read).
fn header_info(chain: &Chain, hash: &Hash256, limit: lode_core::pow::CompactTarget) -> Option<BlockInfo> {
    let e = chain.entry(hash)?;
    let tip = chain.state().height.0;
    let active = chain.is_active(hash);
    let h = &e.header;
    Some(BlockInfo {
        hash: *hash,
        height: e.height.0,
        version: h.version,
        time: h.time,
        median_time: median_time(chain, hash),
        bits: h.bits.0,
        difficulty: difficulty(h.bits, limit),
        nonce: h.nonce,
        merkle_root: h.merkle_root,
        prev_hash: (e.height.0 > 0).then_some(h.prev_hash),
        next_hash: if active { chain.hash_at(Height(e.height.0 + 1)) } else { None },
        chainwork: e.work.to_hex(),
        body: None,
        in_best_chain: active,
        confirmations: if active { tip + 1 - e.height.0 } else { 0 },
    })
}

/// A block's facts and its body (404 when the header is unknown; the body
/// is `None` when only the header is stored).
pub fn block(node: &Node, hash: &Hash256) -> Result<(BlockInfo, Option<Block>), ExplorerError> {
    let (mut info, store) = {
        let chain = node.chain();
        let info = header_info(&chain, hash, node.spec().pow_limit)
            .ok_or_else(|| ExplorerError::NotFound(format!("block {hash} not found")))?;
        (info, chain.shared_store())
    };
    let body = store.block(hash)?;
    info.body = body.as_ref().map(|b| (b.transactions.len(), b.encoded_size()));
    Ok((info, body))
}

/// The active chain's block hash at `height` (404 above the tip).
pub fn hash_at(node: &Node, height: u32) -> Result<Hash256, ExplorerError> {
    node.chain().hash_at(Height(height)).ok_or_else(|| ExplorerError::NotFound(format!("no block at height {height}")))
}

/// Up to `count` active-chain blocks from `start` (default: the tip) down,
/// newest first; one lock per block read.
pub fn recent_blocks(node: &Node, start: Option<u32>, count: u32) -> Result<Vec<BlockInfo>, ExplorerError> {
    let top = {
        let tip = node.chain().state().height.0;
        start.map_or(tip, |s| s.min(tip))
    };
    let mut out = Vec::new();
    for height in (top.saturating_sub(count.saturating_sub(1))..=top).rev() {
        let Some(hash) = node.chain().hash_at(Height(height)) else { continue };
        if let Ok((info, _)) = block(node, &hash) {
            out.push(info);
        }
    }
    Ok(out)
}

/// The outputs `tx`'s inputs spend: from `known` (the block's undo data
/// and its own outputs), else through the transaction index, reading at
/// most [`MAX_PREVOUT_BLOCKS`] other blocks per request (`lookups`).
fn confirmed_prevouts(
    store: &Store,
    tx: &Transaction,
    known: &HashMap<OutPoint, TxOut>,
    lookups: &mut PrevoutLookups,
) -> Vec<Option<TxOut>> {
    if tx.is_coinbase() {
        return vec![None; tx.inputs.len()];
    }
    tx.inputs.iter().map(|i| known.get(&i.prevout).copied().or_else(|| lookups.output(store, &i.prevout))).collect()
}

/// Other blocks one request may read to find spent outputs: a side-branch
/// block has no undo data, and each of its inputs read a whole block.
pub(crate) const MAX_PREVOUT_BLOCKS: usize = 16;

/// The blocks one request read for spent outputs (each read once).
#[derive(Default)]
struct PrevoutLookups {
    blocks: HashMap<Hash256, Option<Block>>,
}

impl PrevoutLookups {
    /// A confirmed output through the transaction index; `None` once the
    /// request has read its share of blocks.
    fn output(&mut self, store: &Store, op: &OutPoint) -> Option<TxOut> {
        let loc = store.tx_location(&op.txid).ok()??;
        if !self.blocks.contains_key(&loc.block) {
            if self.blocks.len() >= MAX_PREVOUT_BLOCKS {
                return None;
            }
            self.blocks.insert(loc.block, store.block(&loc.block).ok().flatten());
        }
        let block = self.blocks.get(&loc.block)?.as_ref()?;
        block.transactions.get(loc.index as usize)?.outputs.get(op.vout as usize).copied()
    }
}

/// What block `hash`'s transactions may spend without another read: its
/// undo data and the block's own outputs (an output created and spent in
/// the same block is not undo data; a stored side-branch block, never
/// validated, may even spend a later transaction's). Looking for the
/// creating transaction per input hashed the whole block again for every
/// input.
fn known_outputs(store: &Store, hash: &Hash256, block: &Block) -> Result<HashMap<OutPoint, TxOut>, ExplorerError> {
    let mut known = store.undo_outputs(hash)?;
    crate::store::add_own_outputs(&mut known, block);
    Ok(known)
}

/// Spent status of each output of a confirmed (`confirmed`) or mempool
/// transaction: the UTXO set says unspent, the mempool says who spends.
fn spent_status(node: &Node, store: &Store, txid: &Hash256, outputs: usize, confirmed: bool) -> Vec<Spent> {
    let ops: Vec<OutPoint> = (0..outputs as u32).map(|vout| OutPoint { txid: *txid, vout }).collect();
    let in_utxo: Vec<bool> = ops.iter().map(|op| confirmed && store.coin(op).ok().flatten().is_some()).collect();
    let pool = node.mempool();
    ops.iter()
        .zip(in_utxo)
        .map(|(op, unspent)| match pool.spends(op) {
            Some(by) => Spent::InMempool(by),
            None if unspent || !confirmed => Spent::No,
            None => Spent::InChain,
        })
        .collect()
}

fn fee_of(tx: &Transaction, prevouts: &[Option<TxOut>]) -> Option<u64> {
    if tx.is_coinbase() {
        return Some(0);
    }
    let mut inputs = 0u64;
    for p in prevouts {
        inputs = inputs.checked_add(p.as_ref()?.value.units())?;
    }
    Some(inputs.saturating_sub(saturating_total(tx.outputs.iter())))
}

/// Sum of output values, saturating: stored blocks were valid when
/// connected, but the data directory may have been edited since, and a
/// page view must not overflow (a panic aborts the node).
pub(crate) fn saturating_total<'a>(outputs: impl Iterator<Item = &'a TxOut>) -> u64 {
    outputs.fold(0u64, |sum, o| sum.saturating_add(o.value.units()))
}

/// The error for a known block without a body: pruned (410) or never
/// stored (404).
fn missing_body(node: &Node, hash: &Hash256) -> ExplorerError {
    let chain = node.chain();
    match chain.prune_height() {
        Some(prune) if chain.is_pruned(hash) => ExplorerError::Pruned(format!(
            "block {hash} was pruned: this node stores block bodies from height {} up",
            prune.0
        )),
        _ => ExplorerError::NotFound(format!("block {hash}: header known, body not stored")),
    }
}

/// Views of the transactions of a stored block, `start..start + count`.
pub fn block_txs(
    node: &Node,
    hash: &Hash256,
    start: usize,
    count: usize,
) -> Result<(BlockInfo, Vec<TxView>), ExplorerError> {
    let (info, body) = block(node, hash)?;
    let body = body.ok_or_else(|| missing_body(node, hash))?;
    let views = {
        let store = node.chain().shared_store();
        let known = known_outputs(&store, hash, &body)?;
        let mut lookups = PrevoutLookups::default();
        let status = match info.in_best_chain {
            true => TxStatus::Confirmed {
                height: info.height,
                block: *hash,
                time: info.time,
                confirmations: info.confirmations,
            },
            // A side-branch block's transactions are not confirmed: show
            // where they would be, with no confirmations.
            false => TxStatus::Confirmed { height: info.height, block: *hash, time: info.time, confirmations: 0 },
        };
        body.transactions
            .iter()
            .skip(start)
            .take(count)
            .map(|tx| {
                let txid = tx.txid();
                let prevouts = confirmed_prevouts(&store, tx, &known, &mut lookups);
                let spent = spent_status(node, &store, &txid, tx.outputs.len(), info.in_best_chain);
                TxView {
                    txid,
                    size: tx.encoded_size(),
                    fee: fee_of(tx, &prevouts),
                    tx: tx.clone(),
                    status,
                    prevouts,
                    spent,
                }
            })
            .collect()
    };
    Ok((info, views))
}

/// A confirmed or mempool transaction (404 when neither).
pub fn tx(node: &Node, txid: &Hash256) -> Result<TxView, ExplorerError> {
    let store = node.chain().shared_store();
    if let Some(view) = pooled_tx(node, &store, txid) {
        return Ok(view);
    }
    let Some(loc) = store.tx_location(txid)? else {
        // Read without the chain lock, a reorganisation may have moved it
        // from a block back to the pool between the two look-ups.
        return pooled_tx(node, &store, txid)
            .ok_or_else(|| ExplorerError::NotFound(format!("transaction {txid} not found")));
    };
    let Some(block) = store.block(&loc.block)? else {
        let chain = node.chain();
        return Err(match chain.prune_height() {
            Some(prune) if chain.is_pruned(&loc.block) => ExplorerError::Pruned(format!(
                "transaction {txid} is in block {} at height {}, which was pruned: this node stores block bodies \
                 from height {} up",
                loc.block, loc.height.0, prune.0
            )),
            _ => ExplorerError::NotFound(format!("transaction {txid}: its block is not stored")),
        });
    };
    let tx = block
        .transactions
        .get(loc.index as usize)
        .cloned()
        .ok_or_else(|| ExplorerError::Internal(format!("transaction index points past block {}", loc.block)))?;
    let known = known_outputs(&store, &loc.block, &block)?;
    let prevouts = confirmed_prevouts(&store, &tx, &known, &mut PrevoutLookups::default());
    let spent = spent_status(node, &store, txid, tx.outputs.len(), true);
    let status = confirmed_status(&node.chain(), loc.height.0, loc.block);
    Ok(TxView { txid: *txid, size: tx.encoded_size(), status, fee: fee_of(&tx, &prevouts), prevouts, spent, tx })
}

/// The view of a mempool transaction, `None` when the pool lacks it.
fn pooled_tx(node: &Node, store: &Store, txid: &Hash256) -> Option<TxView> {
    let e = node.mempool().entry(txid).cloned()?;
    let prevouts = e.spent.iter().copied().map(Some).collect();
    let spent = spent_status(node, store, txid, e.tx.outputs.len(), false);
    Some(TxView {
        txid: *txid,
        size: e.size,
        status: TxStatus::Mempool,
        prevouts,
        spent,
        fee: Some(e.fee.units()),
        tx: e.tx,
    })
}

fn confirmed_status(chain: &Chain, height: u32, block: Hash256) -> TxStatus {
    let time = chain.entry(&block).map_or(0, |e| e.header.time);
    let confirmations = (chain.state().height.0 + 1).saturating_sub(height);
    TxStatus::Confirmed { height, block, time, confirmations }
}

/// Where a transaction is, without reading its block (404 when unknown).
pub fn tx_status(node: &Node, txid: &Hash256) -> Result<TxStatus, ExplorerError> {
    let chain = node.chain();
    if let Some(loc) = chain.store().tx_location(txid)? {
        return Ok(confirmed_status(&chain, loc.height.0, loc.block));
    }
    if node.mempool().contains(txid) {
        return Ok(TxStatus::Mempool);
    }
    Err(ExplorerError::NotFound(format!("transaction {txid} not found")))
}

/// Difficulty and estimated hash rate of the last `count` active blocks,
/// oldest first (header index only: no block is read).
pub fn chain_series(node: &Node, count: u32) -> Vec<ChainPoint> {
    let limit = node.spec().pow_limit;
    let chain = node.chain();
    let tip = chain.state().height.0;
    let first = tip.saturating_sub(count.saturating_sub(1) + HASHRATE_WINDOW);
    // (height, time, expected hashes of the block) from `first` to the tip.
    let headers: Vec<(u32, u64, f64, f64)> = (first..=tip)
        .filter_map(|h| {
            let e = chain.entry(&chain.hash_at(Height(h))?)?;
            let work = e.header.bits.to_target().map(|t| t.work().as_f64()).unwrap_or(0.0);
            Some((h, e.header.time, work, difficulty(e.header.bits, limit)))
        })
        .collect();
    let mut out = Vec::new();
    for (i, &(height, time, _, diff)) in headers.iter().enumerate() {
        if height + count <= tip {
            continue;
        }
        let mut from = i.saturating_sub(HASHRATE_WINDOW as usize);
        // Genesis's time is fixed in the chain spec, long before mining
        // started: measuring from it would show a rate near zero.
        if headers[from].0 == 0 && i > from + 1 {
            from += 1;
        }
        let hashrate = if from == i {
            0.0
        } else {
            let work: f64 = headers[from + 1..=i].iter().map(|h| h.2).sum();
            // Equal timestamps (regtest mines in bursts) would divide by zero.
            let secs = time.saturating_sub(headers[from].1).max(1) as f64;
            work / secs
        };
        out.push(ChainPoint { height, time, difficulty: diff, hashrate });
    }
    out
}

/// Every branch tip, as `getchaintips` lists them.
pub fn chain_tips(node: &Node) -> Vec<ChainTip> {
    node.chain().chain_tips()
}

/// What a search box entry names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchTarget {
    /// A block (by height or hash).
    Block(Hash256),
    /// A transaction.
    Tx(Hash256),
    /// An address of this chain.
    Address(String),
}

/// Resolves a search: a height, a block hash, a txid or an address.
pub fn search(node: &Node, query: &str) -> Result<SearchTarget, ExplorerError> {
    let q = query.trim();
    if q.is_empty() {
        return Err(ExplorerError::BadRequest("type a height, block hash, transaction id or address".into()));
    }
    if q.bytes().all(|b| b.is_ascii_digit()) {
        let height = parse_height(q)?;
        return hash_at(node, height).map(SearchTarget::Block);
    }
    if let Ok(hash) = Hash256::from_hex(q) {
        let chain = node.chain();
        if chain.entry(&hash).is_some() {
            return Ok(SearchTarget::Block(hash));
        }
        if node.mempool().contains(&hash) || chain.store().tx_location(&hash)?.is_some() {
            return Ok(SearchTarget::Tx(hash));
        }
        return Err(ExplorerError::NotFound(format!("no block or transaction {hash}")));
    }
    match Address::decode(q, &node.spec().address_prefix) {
        Ok(a) => Ok(SearchTarget::Address(address_text(node, &a))),
        Err(_) => Err(ExplorerError::BadRequest(format!(
            "not a height, block hash, transaction id or {} address: {q}",
            node.spec().name
        ))),
    }
}
