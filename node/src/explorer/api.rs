//! The JSON API under `/api`, in Esplora's shape (see docs/explorer.md for
//! the routes and where Lode's objects differ: no scripts, so outputs name
//! an address; sizes are bytes, and weight equals size).

use super::addr::{self, Utxo};
use super::pool;
use super::query::{self, BlockInfo, Spent, TxStatus, TxView, BLOCKS_PER_PAGE, TXS_PER_PAGE};
use super::{Explorer, ExplorerError};
use crate::node::Node;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;

type Shared = State<Arc<Explorer>>;

/// An API failure: its status with `{"error": message}`.
pub struct ApiError(ExplorerError);

impl From<ExplorerError> for ApiError {
    fn from(e: ExplorerError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        with_cors((self.0.status(), axum::Json(json!({"error": self.0.to_string()}))).into_response())
    }
}

type ApiResult = Result<Response, ApiError>;

/// Public data for any page: browsers may read it from other origins (the
/// testnet view is a local file polling every node).
fn with_cors(mut r: Response) -> Response {
    r.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    r
}

fn ok_json(v: Value) -> ApiResult {
    Ok(with_cors(axum::Json(v).into_response()))
}

/// Plain text, as Esplora answers `/blocks/tip/height` and friends.
fn ok_text(s: String) -> ApiResult {
    Ok(with_cors(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], s).into_response()))
}

/// The `/api` routes.
pub fn routes() -> Router<Arc<Explorer>> {
    Router::new()
        .route("/api/blocks/tip/height", get(tip_height))
        .route("/api/blocks/tip/hash", get(tip_hash))
        .route("/api/blocks", get(blocks_tip))
        .route("/api/blocks/{start}", get(blocks_from))
        .route("/api/block/{hash}", get(block))
        .route("/api/block/{hash}/status", get(block_status))
        .route("/api/block/{hash}/txs", get(block_txs_first))
        .route("/api/block/{hash}/txs/{start}", get(block_txs))
        .route("/api/block-height/{height}", get(block_height))
        .route("/api/tx/{txid}", get(tx))
        .route("/api/tx/{txid}/status", get(tx_status))
        .route("/api/tx/{txid}/outspends", get(tx_outspends))
        .route("/api/address/{address}", get(address))
        .route("/api/address/{address}/txs", get(address_txs))
        .route("/api/address/{address}/txs/mempool", get(address_txs_mempool))
        .route("/api/address/{address}/txs/chain", get(address_txs_chain_first))
        .route("/api/address/{address}/txs/chain/{last_seen}", get(address_txs_chain))
        .route("/api/address/{address}/utxo", get(address_utxo))
        .route("/api/mempool", get(mempool))
        .route("/api/mempool/recent", get(mempool_recent))
        .route("/api/mempool/txids", get(mempool_txids))
        .route("/api/fee-estimates", get(fee_estimates))
        .route("/api/node/status", get(node_status))
        .route("/api/{*rest}", get(unknown))
}

async fn unknown() -> ApiError {
    ApiError(ExplorerError::NotFound("no such API route".into()))
}

async fn tip_height(State(ex): Shared) -> ApiResult {
    let (height, _) = ex.read(|n| Ok(query::tip(n))).await?;
    ok_text(height.to_string())
}

async fn tip_hash(State(ex): Shared) -> ApiResult {
    let (_, hash) = ex.read(|n| Ok(query::tip(n))).await?;
    ok_text(hash.to_hex())
}

async fn blocks_tip(State(ex): Shared) -> ApiResult {
    let list = ex.read(|n| query::recent_blocks(n, None, BLOCKS_PER_PAGE)).await?;
    ok_json(Value::Array(list.iter().map(block_json).collect()))
}

async fn blocks_from(State(ex): Shared, Path(start): Path<String>) -> ApiResult {
    let start = query::parse_height(&start)?;
    let list = ex.read(move |n| query::recent_blocks(n, Some(start), BLOCKS_PER_PAGE)).await?;
    ok_json(Value::Array(list.iter().map(block_json).collect()))
}

/// A block as Esplora shows it, plus Lode's chain facts.
pub fn block_json(b: &BlockInfo) -> Value {
    json!({
        "id": b.hash,
        "height": b.height,
        "version": b.version,
        "timestamp": b.time,
        "mediantime": b.median_time,
        "tx_count": b.body.map(|(n, _)| n),
        "size": b.body.map(|(_, s)| s),
        "weight": b.body.map(|(_, s)| s),
        "merkle_root": b.merkle_root,
        "previousblockhash": b.prev_hash,
        "nonce": b.nonce,
        "bits": b.bits,
        "difficulty": b.difficulty,
        "chainwork": b.chainwork,
        "in_best_chain": b.in_best_chain,
        "confirmations": b.confirmations,
    })
}

async fn block(State(ex): Shared, Path(hash): Path<String>) -> ApiResult {
    let hash = query::parse_hash(&hash, "block hash")?;
    let (info, _) = ex.read(move |n| query::block(n, &hash)).await?;
    ok_json(block_json(&info))
}

async fn block_status(State(ex): Shared, Path(hash): Path<String>) -> ApiResult {
    let hash = query::parse_hash(&hash, "block hash")?;
    let (info, _) = ex.read(move |n| query::block(n, &hash)).await?;
    ok_json(json!({"in_best_chain": info.in_best_chain, "height": info.height, "next_best": info.next_hash}))
}

async fn block_txs_first(ex: Shared, hash: Path<String>) -> ApiResult {
    block_txs_page(ex, hash.0, 0).await
}

async fn block_txs(ex: Shared, Path((hash, start)): Path<(String, String)>) -> ApiResult {
    let start: usize = start.parse().map_err(|_| ExplorerError::BadRequest("invalid start index".into()))?;
    if !start.is_multiple_of(TXS_PER_PAGE) {
        return Err(ExplorerError::BadRequest(format!("start index must be a multiple of {TXS_PER_PAGE}")).into());
    }
    block_txs_page(ex, hash, start).await
}

async fn block_txs_page(State(ex): Shared, hash: String, start: usize) -> ApiResult {
    let hash = query::parse_hash(&hash, "block hash")?;
    let (_, views) = ex.read(move |n| query::block_txs(n, &hash, start, TXS_PER_PAGE)).await?;
    ok_json(Value::Array(views.iter().map(|v| tx_json(&ex.node, v)).collect()))
}

async fn block_height(State(ex): Shared, Path(height): Path<String>) -> ApiResult {
    let height = query::parse_height(&height)?;
    let hash = ex.read(move |n| query::hash_at(n, height)).await?;
    ok_text(hash.to_hex())
}

/// Esplora's `status` object.
pub fn status_json(s: &TxStatus) -> Value {
    match s {
        TxStatus::Confirmed { height, block, time, .. } => {
            json!({"confirmed": true, "block_height": height, "block_hash": block, "block_time": time})
        }
        TxStatus::Mempool => json!({"confirmed": false}),
    }
}

/// A transaction as Esplora shows it: `vin` with `prevout`, `vout` with
/// `scriptpubkey_address` and `value`, `status`.
pub fn tx_json(node: &Node, v: &TxView) -> Value {
    let addr = |o: &lode_core::TxOut| json!({"scriptpubkey_address": query::address_text(node, &o.address), "value": o.value.units()});
    let vin: Vec<Value> =
        v.tx.inputs
            .iter()
            .zip(&v.prevouts)
            .map(|(i, p)| {
                let mut input = json!({
                    "txid": i.prevout.txid,
                    "vout": i.prevout.vout,
                    "is_coinbase": v.is_coinbase(),
                    "prevout": p.as_ref().map(addr),
                });
                if let lode_core::tx::Unlock::Signature { pubkey, .. } = &i.unlock {
                    input["pubkey"] = json!(hex::encode(pubkey.0));
                }
                input
            })
            .collect();
    json!({
        "txid": v.txid,
        "version": v.tx.version,
        "locktime": v.tx.lock_time,
        "size": v.size,
        "weight": v.size,
        "fee": v.fee,
        "vin": vin,
        "vout": v.tx.outputs.iter().map(addr).collect::<Vec<_>>(),
        "status": status_json(&v.status),
    })
}

async fn tx(State(ex): Shared, Path(txid): Path<String>) -> ApiResult {
    let txid = query::parse_hash(&txid, "transaction id")?;
    let view = ex.read(move |n| query::tx(n, &txid)).await?;
    ok_json(tx_json(&ex.node, &view))
}

async fn tx_status(State(ex): Shared, Path(txid): Path<String>) -> ApiResult {
    let txid = query::parse_hash(&txid, "transaction id")?;
    let status = ex.read(move |n| query::tx_status(n, &txid)).await?;
    ok_json(status_json(&status))
}

async fn tx_outspends(State(ex): Shared, Path(txid): Path<String>) -> ApiResult {
    let txid = query::parse_hash(&txid, "transaction id")?;
    let view = ex.read(move |n| query::tx(n, &txid)).await?;
    let list: Vec<Value> = view
        .spent
        .iter()
        .map(|s| match s {
            Spent::No => json!({"spent": false}),
            Spent::InMempool(by) => json!({"spent": true, "txid": by, "status": {"confirmed": false}}),
            Spent::InChain => json!({"spent": true}),
        })
        .collect();
    ok_json(Value::Array(list))
}

fn totals_json(t: &addr::Totals) -> Value {
    json!({
        "tx_count": t.tx_count,
        "funded_txo_count": t.funded_txo_count,
        "funded_txo_sum": t.funded_txo_sum,
        "spent_txo_count": t.spent_txo_count,
        "spent_txo_sum": t.spent_txo_sum,
    })
}

async fn address(State(ex): Shared, Path(text): Path<String>) -> ApiResult {
    let a = query::parse_address(&ex.node, &text)?;
    let s = ex.read(move |n| addr::summary(n, &a)).await?;
    ok_json(json!({
        "address": s.address,
        "chain_stats": totals_json(&s.chain),
        "mempool_stats": totals_json(&s.mempool),
        "balance": s.balance,
        "immature": s.immature,
        "utxo_count": s.utxo_count,
    }))
}

async fn address_txs(State(ex): Shared, Path(text): Path<String>) -> ApiResult {
    let a = query::parse_address(&ex.node, &text)?;
    let views = ex
        .read(move |n| {
            let mut v = addr::mempool_txs(n, &a)?;
            v.extend(addr::chain_txs(n, &a, None, 0)?.0);
            Ok(v)
        })
        .await?;
    ok_json(Value::Array(views.iter().map(|v| tx_json(&ex.node, v)).collect()))
}

async fn address_txs_mempool(State(ex): Shared, Path(text): Path<String>) -> ApiResult {
    let a = query::parse_address(&ex.node, &text)?;
    let views = ex.read(move |n| addr::mempool_txs(n, &a)).await?;
    ok_json(Value::Array(views.iter().map(|v| tx_json(&ex.node, v)).collect()))
}

async fn address_txs_chain_first(ex: Shared, Path(text): Path<String>) -> ApiResult {
    address_chain_page(ex, text, None).await
}

async fn address_txs_chain(ex: Shared, Path((text, last)): Path<(String, String)>) -> ApiResult {
    let last = query::parse_hash(&last, "transaction id")?;
    address_chain_page(ex, text, Some(last)).await
}

async fn address_chain_page(State(ex): Shared, text: String, after: Option<lode_core::Hash256>) -> ApiResult {
    let a = query::parse_address(&ex.node, &text)?;
    let (views, _) = ex.read(move |n| addr::chain_txs(n, &a, after, 0)).await?;
    ok_json(Value::Array(views.iter().map(|v| tx_json(&ex.node, v)).collect()))
}

fn utxo_json(u: &Utxo) -> Value {
    json!({
        "txid": u.outpoint.txid,
        "vout": u.outpoint.vout,
        "value": u.value,
        "coinbase": u.coinbase,
        "status": status_json(&u.status),
    })
}

async fn address_utxo(State(ex): Shared, Path(text): Path<String>) -> ApiResult {
    let a = query::parse_address(&ex.node, &text)?;
    let list = ex.read(move |n| addr::utxos(n, &a)).await?;
    ok_json(Value::Array(list.iter().map(utxo_json).collect()))
}

async fn mempool(State(ex): Shared) -> ApiResult {
    let s = ex.read(|n| Ok(pool::stats(n))).await?;
    // Esplora's histogram: [fee rate, bytes] from the highest rate down,
    // empty buckets left out.
    let histogram: Vec<Value> =
        s.histogram.iter().rev().filter(|b| b.count > 0).map(|b| json!([b.from, b.bytes])).collect();
    ok_json(json!({
        "count": s.count,
        "vsize": s.bytes,
        "total_fee": s.total_fee,
        "min_fee_rate": s.min_fee_rate,
        "fee_histogram": histogram,
    }))
}

async fn mempool_recent(State(ex): Shared) -> ApiResult {
    let list = ex.read(|n| Ok(pool::recent(n, pool::RECENT))).await?;
    ok_json(Value::Array(
        list.iter().map(|t| json!({"txid": t.txid, "fee": t.fee, "vsize": t.size, "value": t.value})).collect(),
    ))
}

async fn mempool_txids(State(ex): Shared) -> ApiResult {
    let ids = ex.read(|n| pool::txids(n, pool::MAX_TXIDS)).await?;
    ok_json(json!(ids))
}

async fn fee_estimates(State(ex): Shared) -> ApiResult {
    let (list, source) = ex.read(|n| Ok(pool::fee_estimates(n))).await?;
    let map: serde_json::Map<String, Value> = list.into_iter().map(|(t, r)| (t.to_string(), json!(r))).collect();
    let mut r = ok_json(Value::Object(map))?;
    // Esplora's body is only the map: say where the figures come from in
    // a header, so clients that parse the map keep working.
    let note = match source {
        pool::EstimateSource::Estimator => "estimator",
        pool::EstimateSource::MempoolMinimum => "mempool-minimum",
    };
    r.headers_mut().insert("x-fee-estimate-source", HeaderValue::from_static(note));
    Ok(r)
}

async fn node_status(State(ex): Shared) -> ApiResult {
    let peers = ex.p2p.as_ref().map(|p| {
        let (i, o) = p.connection_counts();
        i + o
    });
    let initial_sync = ex.p2p.as_ref().is_some_and(|p| p.initial_sync());
    let v = ex
        .read(move |n| {
            let series = query::chain_series(n, 1);
            let chain = n.chain();
            let tip = chain.tip_entry();
            let limit = n.spec().pow_limit;
            Ok(json!({
                "chain": n.spec().name,
                "height": chain.state().height.0,
                "tip": chain.state().tip,
                "tip_time": tip.header.time,
                "difficulty": lode_core::pow::difficulty(tip.header.bits, limit),
                "headers": chain.best_header().height.0,
                "network_hashrate": series.last().map_or(0.0, |p| p.hashrate),
                "mining_hashrate": n.metrics.hashrate.get(),
                "peers": peers,
                "initial_sync": initial_sync,
                "mempool_count": n.mempool().len(),
            }))
        })
        .await?;
    ok_json(v)
}
