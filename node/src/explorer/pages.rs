//! The block, block-list, transaction, address and search pages.

use super::addr::{self, AddressSummary, Utxo};
use super::format;
use super::layout::{self, address_link, amount, block_link, facts, pager, tx_link, Nav, PageError};
use super::query::{self, BlockInfo, Spent, TxStatus, TxView, BLOCKS_PER_PAGE, TXS_PER_PAGE};
use super::{Explorer, ExplorerError};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use std::collections::HashMap;
use std::sync::Arc;

type Shared = State<Arc<Explorer>>;
type Params = Query<HashMap<String, String>>;
type PageResult = Result<Response, PageError>;

/// Unspent outputs listed on an address page.
const PAGE_UTXOS: usize = 100;

/// The page routes.
pub fn routes() -> Router<Arc<Explorer>> {
    Router::new()
        .route("/blocks", get(blocks))
        .route("/block/{hash}", get(block))
        .route("/block-height/{height}", get(block_height))
        .route("/tx/{txid}", get(tx))
        .route("/address/{address}", get(address))
        .route("/search", get(search))
}

impl Explorer {
    /// Wraps a failure as an error page of this chain.
    pub(super) fn page_error(&self, error: ExplorerError, query: &str) -> PageError {
        PageError { error, chain: self.node.spec().name.clone(), query: query.to_string() }
    }

    /// A full page with the shell.
    pub(super) fn render(&self, title: &str, nav: Nav, body: Markup) -> Response {
        layout::respond(StatusCode::OK, layout::page(title, &self.node.spec().name, nav, "", body))
    }
}

/// Pages nothing routes to.
pub async fn not_found(State(ex): Shared) -> PageError {
    ex.page_error(ExplorerError::NotFound("no such page".into()), "")
}

/// A numeric query parameter (`None` when absent; 400 when malformed).
fn param<T: std::str::FromStr>(ex: &Explorer, params: &Params, name: &str) -> Result<Option<T>, PageError> {
    match params.get(name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ex.page_error(ExplorerError::BadRequest(format!("invalid {name} parameter")), "")),
    }
}

/// Where the next page of a `total`-item list starts after the page at
/// `start`, if anything is left. `start` comes from the visitor's URL and
/// may be anything up to `usize::MAX`: a plain sum overflowed and the
/// overflow check aborted the node.
fn older_page(start: usize, total: usize) -> Option<usize> {
    start.checked_add(TXS_PER_PAGE).filter(|next| *next < total)
}

/// Rows of a block table.
pub fn block_rows(list: &[BlockInfo], now: u64) -> Markup {
    html! {
        table.list {
            thead { tr { th { "Height" } th { "Hash" } th { "Time" } th.num { "Txs" } th.num { "Size" } } }
            tbody {
                @for b in list {
                    tr {
                        td { a href=(format!("/block/{}", b.hash)) { (b.height) } }
                        td { (block_link(&b.hash, false)) }
                        td title=(format::time(b.time)) { (format::ago(b.time, now)) }
                        td.num { (b.body.map_or("–".to_string(), |(n, _)| n.to_string())) }
                        td.num { (b.body.map_or("–".to_string(), |(_, s)| format::bytes(s as u64))) }
                    }
                }
            }
        }
    }
}

async fn blocks(State(ex): Shared, params: Params) -> PageResult {
    let start: Option<u32> = param(&ex, &params, "start")?;
    let list =
        ex.read(move |n| query::recent_blocks(n, start, BLOCKS_PER_PAGE)).await.map_err(|e| ex.page_error(e, ""))?;
    let (tip, _) = ex.read(|n| Ok(query::tip(n))).await.map_err(|e| ex.page_error(e, ""))?;
    let top = list.first().map_or(0, |b| b.height);
    let bottom = list.last().map_or(0, |b| b.height);
    let newer = (top < tip).then(|| format!("/blocks?start={}", (top + BLOCKS_PER_PAGE).min(tip)));
    let older = (bottom > 0).then(|| format!("/blocks?start={}", bottom - 1));
    let body = html! {
        h1 { "Blocks" }
        div #blocks data-live { (block_rows(&list, lode_now())) }
        (pager(newer, older))
    };
    Ok(ex.render("Blocks", Nav::Blocks, body))
}

/// The current unix time.
pub fn lode_now() -> u64 {
    crate::chain::unix_now()
}

async fn block_height(State(ex): Shared, Path(height): Path<String>) -> PageResult {
    let height = query::parse_height(&height).map_err(|e| ex.page_error(e, ""))?;
    let hash = ex.read(move |n| query::hash_at(n, height)).await.map_err(|e| ex.page_error(e, ""))?;
    Ok(Redirect::to(&format!("/block/{hash}")).into_response())
}

async fn block(State(ex): Shared, Path(hash): Path<String>, params: Params) -> PageResult {
    let hash = query::parse_hash(&hash, "block hash").map_err(|e| ex.page_error(e, ""))?;
    let start: usize = param(&ex, &params, "start")?.unwrap_or(0);
    let loaded = ex
        .read(move |n| match query::block_txs(n, &hash, start, TXS_PER_PAGE) {
            Ok((info, txs)) => Ok((info, Some(txs))),
            // A header without a body still has a page.
            Err(ExplorerError::NotFound(_) | ExplorerError::Pruned(_)) => {
                query::block(n, &hash).map(|(info, _)| (info, None))
            }
            Err(e) => Err(e),
        })
        .await
        .map_err(|e| ex.page_error(e, ""))?;
    let (info, txs) = loaded;
    let state = if info.in_best_chain {
        format!("in the active chain, {} confirmations", info.confirmations)
    } else {
        "not in the active chain (side branch)".to_string()
    };
    let rows = [
        ("Hash", html! { code { (info.hash) } }),
        ("Height", html! { (info.height) }),
        ("Status", html! { (state) }),
        ("Time", html! { (format::time(info.time)) " (median " (format::time(info.median_time)) ")" }),
        ("Previous", html! { @if let Some(p) = info.prev_hash { (block_link(&p, true)) } @else { "none (genesis)" } }),
        ("Next", html! { @if let Some(p) = info.next_hash { (block_link(&p, true)) } @else { "none yet" } }),
        ("Difficulty", html! { (format::difficulty(info.difficulty)) " (bits " (format!("{:08x}", info.bits)) ")" }),
        ("Nonce", html! { (info.nonce) }),
        ("Merkle root", html! { code { (info.merkle_root) } }),
        ("Chain work", html! { code { (info.chainwork) } }),
        ("Transactions", html! { (info.body.map_or("body not stored".to_string(), |(n, _)| n.to_string())) }),
        ("Size", html! { (info.body.map_or("–".to_string(), |(_, s)| format::bytes(s as u64))) }),
    ];
    let count = info.body.map_or(0, |(n, _)| n);
    let newer = (start > 0).then(|| format!("/block/{}?start={}", info.hash, start.saturating_sub(TXS_PER_PAGE)));
    let older = older_page(start, count).map(|next| format!("/block/{}?start={next}", info.hash));
    let body = html! {
        h1 { "Block " (info.height) }
        div #block-facts data-live { (facts(&rows)) }
        @if let Some(txs) = txs {
            h2 { "Transactions " (start.saturating_add(1)) "–" (start.saturating_add(txs.len())) " of " (count) }
            @for t in &txs { (tx_card(&ex, t)) }
            (pager(newer, older))
        }
    };
    Ok(ex.render(&format!("Block {}", info.height), Nav::Blocks, body))
}

/// A transaction's inputs and outputs side by side (block and address pages).
fn tx_card(ex: &Explorer, t: &TxView) -> Markup {
    let addr = |a: &lode_core::Address| query::address_text(&ex.node, a);
    html! {
        section.tx {
            header {
                (tx_link(&t.txid, true))
                @if let Some(fee) = t.fee { @if !t.is_coinbase() { span.fee { "fee " (amount(fee)) } } }
            }
            div.io {
                ul.inputs {
                    @if t.is_coinbase() {
                        li { "Coinbase (new coins)" @if let Some(h) = t.coinbase_height() { " · height " (h) } }
                    }
                    @for (i, p) in t.tx.inputs.iter().zip(&t.prevouts) {
                        @if !t.is_coinbase() {
                            li {
                                @if let Some(o) = p { (address_link(&addr(&o.address))) " " (amount(o.value.units())) }
                                @else { (tx_link(&i.prevout.txid, false)) ":" (i.prevout.vout) }
                            }
                        }
                    }
                }
                span.arrow { "→" }
                ul.outputs {
                    @for o in &t.tx.outputs {
                        li { (address_link(&addr(&o.address))) " " (amount(o.value.units())) }
                    }
                }
            }
        }
    }
}

fn status_text(s: &TxStatus) -> Markup {
    match s {
        TxStatus::Mempool => html! { span.badge.pending { "Unconfirmed" } " (in the mempool)" },
        TxStatus::Confirmed { height, block, time, confirmations } => html! {
            span.badge.ok { (confirmations) @if *confirmations == 1 { " confirmation" } @else { " confirmations" } }
            " in block " a href=(format!("/block/{block}")) { (height) } " · " (format::time(*time))
        },
    }
}

async fn tx(State(ex): Shared, Path(txid): Path<String>) -> PageResult {
    let txid = query::parse_hash(&txid, "transaction id").map_err(|e| ex.page_error(e, ""))?;
    let t = ex.read(move |n| query::tx(n, &txid)).await.map_err(|e| ex.page_error(e, ""))?;
    let addr = |a: &lode_core::Address| query::address_text(&ex.node, a);
    let rate = t.fee.map(|f| format!("{:.2} per byte", f as f64 / t.size.max(1) as f64));
    let rows = [
        ("Transaction id", html! { code { (t.txid) } }),
        ("Status", status_text(&t.status)),
        ("Size", html! { (t.size) " bytes" }),
        (
            "Fee",
            html! { @if let Some(f) = t.fee { (amount(f)) " (" (rate.clone().unwrap_or_default()) ")" } @else { "unknown" } },
        ),
        ("Total output", amount(t.output_total())),
        ("Lock time", html! { (t.tx.lock_time) }),
    ];
    let body = html! {
        h1 { @if t.is_coinbase() { "Coinbase transaction" } @else { "Transaction" } }
        div #tx-facts data-live { (facts(&rows)) }
        h2 { "Inputs (" (t.tx.inputs.len()) ")" }
        table.list {
            thead { tr { th { "#" } th { "Spends" } th { "Address" } th.num { "Amount" } } }
            tbody {
                @for (i, (input, prev)) in t.tx.inputs.iter().zip(&t.prevouts).enumerate() {
                    tr {
                        td { (i) }
                        @if t.is_coinbase() {
                            td colspan="3" { "Coinbase: new coins" @if let Some(h) = t.coinbase_height() { " for block " (h) } }
                        } @else {
                            td { (tx_link(&input.prevout.txid, false)) ":" (input.prevout.vout) }
                            td { @if let Some(o) = prev { (address_link(&addr(&o.address))) } @else { "unknown" } }
                            td.num { @if let Some(o) = prev { (amount(o.value.units())) } @else { "–" } }
                        }
                    }
                }
            }
        }
        h2 { "Outputs (" (t.tx.outputs.len()) ")" }
        div #tx-outputs data-live {
            table.list {
                thead { tr { th { "#" } th { "Address" } th.num { "Amount" } th { "Spent" } } }
                tbody {
                    @for (i, (o, s)) in t.tx.outputs.iter().zip(&t.spent).enumerate() {
                        tr {
                            td { (i) }
                            td { (address_link(&addr(&o.address))) }
                            td.num { (amount(o.value.units())) }
                            td {
                                @match s {
                                    Spent::No => span.badge.ok { "Unspent" },
                                    Spent::InChain => span.badge { "Spent" },
                                    Spent::InMempool(by) => { span.badge.pending { "Spent (unconfirmed)" } " by " (tx_link(by, false)) },
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(ex.render("Transaction", Nav::Other, body))
}

async fn address(State(ex): Shared, Path(text): Path<String>, params: Params) -> PageResult {
    let a = query::parse_address(&ex.node, &text).map_err(|e| ex.page_error(e, &text))?;
    let start: usize = param(&ex, &params, "start")?.unwrap_or(0);
    let loaded = ex
        .read(move |n| {
            let summary = addr::summary(n, &a)?;
            let pooled = if start == 0 { addr::mempool_txs(n, &a)? } else { Vec::new() };
            let (confirmed, total) = addr::chain_txs(n, &a, None, start)?;
            // A huge address lists what fits; its page says how many.
            let utxos = addr::utxos(n, &a).unwrap_or_default();
            Ok((summary, pooled, confirmed, total, utxos))
        })
        .await
        .map_err(|e| ex.page_error(e, &text))?;
    let (summary, pooled, confirmed, total, utxos) = loaded;
    let newer =
        (start > 0).then(|| format!("/address/{}?start={}", summary.address, start.saturating_sub(TXS_PER_PAGE)));
    let older = older_page(start, total).map(|next| format!("/address/{}?start={next}", summary.address));
    let body = html! {
        h1 { "Address" }
        p { code.big { (summary.address) } }
        div #address-summary data-live { (address_facts(&summary)) }
        h2 { "Transactions" }
        div #address-history data-live {
            (history(&ex, &summary.address, &pooled, &confirmed))
        }
        (pager(newer, older))
        h2 { "Unspent outputs (" (utxos.len()) ")" }
        div #address-utxos data-live { (utxo_table(&utxos)) }
    };
    Ok(ex.render("Address", Nav::Other, body))
}

fn address_facts(s: &AddressSummary) -> Markup {
    let opt = |v: Option<u64>| v.map_or_else(|| html! { "not computed (long history)" }, amount);
    let rows = [
        ("Balance", html! { (amount(s.balance)) @if s.immature > 0 { " (" (amount(s.immature)) " immature)" } }),
        ("Unconfirmed", html! { span.amount { (format::signed_coins(s.unconfirmed())) } " " span.unit { "LODE" } }),
        ("Transactions", html! { (s.chain.tx_count) " confirmed, " (s.mempool.tx_count) " unconfirmed" }),
        ("Total received", opt(s.chain.funded_txo_sum)),
        ("Total sent", opt(s.chain.spent_txo_sum)),
        ("Unspent outputs (confirmed)", html! { (s.utxo_count) }),
    ];
    facts(&rows)
}

fn history(ex: &Explorer, address: &str, pooled: &[TxView], confirmed: &[TxView]) -> Markup {
    let Ok(a) = query::parse_address(&ex.node, address) else { return html! {} };
    html! {
        table.list {
            thead { tr { th { "Transaction" } th { "Block" } th { "Time" } th.num { "Effect" } } }
            tbody {
                @for t in pooled.iter().chain(confirmed) {
                    @let net = t.net_for(&a);
                    tr {
                        td { (tx_link(&t.txid, false)) }
                        @match t.status {
                            TxStatus::Mempool => { td { span.badge.pending { "mempool" } } td { "–" } },
                            TxStatus::Confirmed { height, block, time, .. } => {
                                td { a href=(format!("/block/{block}")) { (height) } }
                                td { (format::time(time)) }
                            },
                        }
                        td class=(if net < 0 { "num neg" } else { "num pos" }) { (format::signed_coins(net)) }
                    }
                }
                @if pooled.is_empty() && confirmed.is_empty() {
                    tr { td colspan="4" { "No transactions." } }
                }
            }
        }
    }
}

fn utxo_table(utxos: &[Utxo]) -> Markup {
    html! {
        table.list {
            thead { tr { th { "Output" } th { "Block" } th.num { "Amount" } } }
            tbody {
                @for u in utxos.iter().take(PAGE_UTXOS) {
                    tr {
                        td { (tx_link(&u.outpoint.txid, false)) ":" (u.outpoint.vout) @if u.coinbase { " " span.badge { "coinbase" } } }
                        td {
                            @match u.status {
                                TxStatus::Mempool => span.badge.pending { "mempool" },
                                TxStatus::Confirmed { height, block, .. } => a href=(format!("/block/{block}")) { (height) },
                            }
                        }
                        td.num { (amount(u.value)) }
                    }
                }
                @if utxos.len() > PAGE_UTXOS {
                    tr { td colspan="3" { "… and " (utxos.len() - PAGE_UTXOS) " more (see the JSON API)." } }
                }
            }
        }
    }
}

async fn search(State(ex): Shared, params: Params) -> PageResult {
    let q = params.get("q").cloned().unwrap_or_default();
    let q2 = q.clone();
    let target = ex.read(move |n| query::search(n, &q2)).await.map_err(|e| ex.page_error(e, &q))?;
    let location = match target {
        query::SearchTarget::Block(h) => format!("/block/{h}"),
        query::SearchTarget::Tx(h) => format!("/tx/{h}"),
        query::SearchTarget::Address(a) => format!("/address/{a}"),
    };
    // Every target is hex or bech32: nothing to escape in the header.
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}
