//! The home page: the tip, difficulty and hash-rate charts, the mempool
//! with its fee-rate histogram, the latest blocks and transactions.

use super::charts;
use super::format;
use super::layout::{amount, block_link, facts, tx_link, Nav, PageError};
use super::pages::{block_rows, lode_now};
use super::pool::{self, MempoolStats, RecentTx};
use super::query::{self, BlockInfo, ChainPoint, TxView, BLOCKS_PER_PAGE, CHART_BLOCKS};
use super::Explorer;
use axum::extract::State;
use axum::response::Response;
use lode_core::Hash256;
use maud::{html, Markup};
use std::sync::Arc;

/// Transactions in the "latest transactions" list.
const LATEST_TXS: usize = 10;
/// Blocks searched for confirmed transactions to fill that list.
const LATEST_TX_BLOCKS: usize = 5;

struct Home {
    tip: (u32, Hash256),
    series: Vec<ChainPoint>,
    blocks: Vec<BlockInfo>,
    mempool: MempoolStats,
    recent: Vec<RecentTx>,
    confirmed: Vec<TxView>,
}

/// `GET /`.
pub async fn home(State(ex): State<Arc<Explorer>>) -> Result<Response, PageError> {
    let peers = ex.p2p.as_ref().map(|p| {
        let (i, o) = p.connection_counts();
        i + o
    });
    let data = ex
        .read(|n| {
            let blocks = query::recent_blocks(n, None, BLOCKS_PER_PAGE)?;
            let recent = pool::recent(n, LATEST_TXS);
            // Fill the list with the newest confirmed transactions
            // (coinbases last, so payments show first).
            let mut confirmed = Vec::new();
            for b in blocks.iter().take(LATEST_TX_BLOCKS) {
                if recent.len() + confirmed.len() >= LATEST_TXS {
                    break;
                }
                if let Ok((_, mut txs)) = query::block_txs(n, &b.hash, 0, LATEST_TXS) {
                    let n = txs.len();
                    txs.rotate_left(1.min(n));
                    confirmed.extend(txs);
                }
            }
            confirmed.truncate(LATEST_TXS.saturating_sub(recent.len()));
            Ok(Home {
                tip: query::tip(n),
                series: query::chain_series(n, CHART_BLOCKS),
                blocks,
                mempool: pool::stats(n),
                recent,
                confirmed,
            })
        })
        .await
        .map_err(|e| ex.page_error(e, ""))?;
    let now = lode_now();
    let last = data.series.last().copied();
    let summary = facts(&[
        ("Height", html! { a href=(format!("/block/{}", data.tip.1)) { (data.tip.0) } }),
        ("Tip", block_link(&data.tip.1, true)),
        ("Difficulty", html! { (last.map_or("–".into(), |p| format::difficulty(p.difficulty))) }),
        ("Hash rate (estimated)", html! { (last.map_or("–".into(), |p| format::hashrate(p.hashrate))) }),
        (
            "Mempool",
            html! { (data.mempool.count) " transactions, " (format::bytes(data.mempool.bytes)) ", fees " (amount(data.mempool.total_fee)) },
        ),
        ("Minimum fee rate", html! { (data.mempool.min_fee_rate) " per byte" }),
        ("Peers", html! { @if let Some(p) = peers { a href="/peers" { (p) } } @else { "networking off" } }),
    ]);
    let diff: Vec<(f64, f64)> = data.series.iter().map(|p| (f64::from(p.height), p.difficulty)).collect();
    let rate: Vec<(f64, f64)> = data.series.iter().skip(1).map(|p| (f64::from(p.height), p.hashrate)).collect();
    let histogram: Vec<(String, f64)> = data
        .mempool
        .histogram
        .iter()
        .map(|b| (if b.from < 1.0 { "<1".to_string() } else { format!("{}+", b.from) }, b.bytes as f64))
        .collect();
    let body = html! {
        h1 { "Lode " (ex.node.spec().name) }
        div #summary data-live { (summary) }
        div #charts.charts data-live {
            figure {
                figcaption { "Difficulty, last " (diff.len()) " blocks" }
                (charts::line("Difficulty by height", &diff, format::difficulty))
            }
            figure {
                figcaption { "Hash rate (estimated from work and block times)" }
                (charts::line("Estimated hash rate by height", &rate, format::hashrate))
            }
            figure {
                figcaption { "Mempool bytes by fee rate (base units per byte)" }
                (charts::bars("Mempool fee-rate histogram", &histogram, |v| format::bytes(v as u64)))
            }
        }
        div.columns {
            section {
                h2 { "Latest blocks" }
                div #latest-blocks data-live { (block_rows(&data.blocks, now)) }
                p { a href="/blocks" { "All blocks →" } }
            }
            section {
                h2 { "Latest transactions" }
                div #latest-txs data-live { (latest_txs(&data.recent, &data.confirmed, now)) }
            }
        }
    };
    Ok(ex.render("Home", Nav::Home, body))
}

fn latest_txs(recent: &[RecentTx], confirmed: &[TxView], now: u64) -> Markup {
    html! {
        table.list {
            thead { tr { th { "Transaction" } th { "Status" } th.num { "Value" } } }
            tbody {
                @for t in recent {
                    tr {
                        td { (tx_link(&t.txid, false)) }
                        td title=(format::time(t.time)) { span.badge.pending { "mempool" } " " (format::ago(t.time, now)) }
                        td.num { (amount(t.value)) }
                    }
                }
                @for t in confirmed {
                    tr {
                        td { (tx_link(&t.txid, false)) @if t.is_coinbase() { " " span.badge { "coinbase" } } }
                        td {
                            @if let query::TxStatus::Confirmed { height, block, .. } = t.status {
                                "block " a href=(format!("/block/{block}")) { (height) }
                            }
                        }
                        td.num { (amount(t.output_total())) }
                    }
                }
                @if recent.is_empty() && confirmed.is_empty() {
                    tr { td colspan="3" { "No transactions yet." } }
                }
            }
        }
    }
}
