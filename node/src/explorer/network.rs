//! The network dashboard: connected and banned peers (from the p2p
//! handle `getpeerinfo` and `listbanned` use) and the chain tips
//! (`getchaintips`).

use super::format;
use super::layout::{block_link, Nav, PageError};
use super::query;
use super::Explorer;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use maud::html;
use std::sync::Arc;

/// The network routes.
pub fn routes() -> Router<Arc<Explorer>> {
    Router::new().route("/peers", get(peers)).route("/tips", get(tips))
}

async fn peers(State(ex): State<Arc<Explorer>>) -> Result<Response, PageError> {
    let Some(p2p) = ex.p2p.clone() else {
        let body = html! {
            h1 { "Peers" }
            p { "Networking is disabled on this node (--no-p2p): it has no peers." }
        };
        return Ok(ex.render("Peers", Nav::Peers, body));
    };
    // The p2p service answers over a channel: no chain lock is involved.
    let list = p2p.peers().await;
    let banned = p2p.banned().await;
    let (inbound, outbound) = p2p.connection_counts();
    let now = crate::chain::unix_now();
    let body = html! {
        h1 { "Peers" }
        p { "Our peer id " code { (p2p.local_peer_id()) } " · " (inbound) " inbound, " (outbound) " outbound." }
        div #peers data-live {
            table.list {
                thead { tr { th { "Peer" } th { "Address" } th { "Direction" } th.num { "Height" } th { "Tip" } th.num { "Score" } } }
                tbody {
                    @for p in &list {
                        tr {
                            td title=(p.peer_id) { code { (format::short(&p.peer_id)) } }
                            td { (p.address) }
                            td { (p.direction) }
                            td.num { (p.height) }
                            td {
                                @match lode_core::Hash256::from_hex(&p.best_hash) {
                                    Ok(h) => (block_link(&h, false)),
                                    Err(_) => "–",
                                }
                            }
                            td class=(if p.score < 0 { "num neg" } else { "num" }) { (p.score) }
                        }
                    }
                    @if list.is_empty() { tr { td colspan="6" { "No peers connected." } } }
                }
            }
            h2 { "Banned (" (banned.len()) ")" }
            table.list {
                thead { tr { th { "Peer" } th { "Until" } } }
                tbody {
                    @for b in &banned {
                        tr {
                            td { code { (b.peer_id) } }
                            td { (format::time(b.until)) " (in " (format::ago(now, b.until).trim_end_matches(" ago")) ")" }
                        }
                    }
                    @if banned.is_empty() { tr { td colspan="2" { "Nobody is banned." } } }
                }
            }
        }
    };
    Ok(ex.render("Peers", Nav::Peers, body))
}

async fn tips(State(ex): State<Arc<Explorer>>) -> Result<Response, PageError> {
    let list = ex.read(|n| Ok(query::chain_tips(n))).await.map_err(|e| ex.page_error(e, ""))?;
    let body = html! {
        h1 { "Chain tips" }
        p { "The active tip and every known branch that no other block builds on, as " code { "getchaintips" } " reports them." }
        div #tips data-live {
            table.list {
                thead { tr { th.num { "Height" } th { "Hash" } th.num { "Branch length" } th { "Status" } } }
                tbody {
                    @for t in &list {
                        tr {
                            td.num { (t.height.0) }
                            td { (block_link(&t.hash, true)) }
                            td.num { (t.branch_len) }
                            td { span class=(format!("badge {}", t.status.name())) { (t.status.name()) } }
                        }
                    }
                }
            }
        }
    };
    Ok(ex.render("Chain tips", Nav::Tips, body))
}
