//! The page shell every HTML page shares (head, navigation, search box),
//! links to the embedded assets, security headers and the error page. maud
//! escapes every `(value)` it writes, so text from a request or the chain
//! can never become markup.

use super::format;
use super::ExplorerError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lode_core::Hash256;
use maud::{html, Markup, DOCTYPE};

/// Which navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The home page.
    Home,
    /// Block lists and block pages.
    Blocks,
    /// The peers page.
    Peers,
    /// The chain-tips page.
    Tips,
    /// Transaction, address and search pages.
    Other,
}

/// The shell around `body`; `query` refills the search box.
pub fn page(title: &str, chain: &str, nav: Nav, query: &str, body: Markup) -> Markup {
    let link = |n: Nav, href: &str, text: &str| {
        html! { a href=(href) aria-current=[(nav == n).then_some("page")] { (text) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Lode explorer (" (chain) ")" }
                link rel="stylesheet" href="/static/style.css";
                script src="/static/live.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Lode" span.chain { (chain) } }
                    nav {
                        (link(Nav::Home, "/", "Home"))
                        (link(Nav::Blocks, "/blocks", "Blocks"))
                        (link(Nav::Peers, "/peers", "Peers"))
                        (link(Nav::Tips, "/tips", "Chain tips"))
                    }
                    form.search action="/search" method="get" role="search" {
                        input type="search" name="q" value=(query) placeholder="Height, block hash, txid or address" aria-label="Search";
                        button type="submit" { "Search" }
                    }
                }
                main { (body) }
                footer {
                    span #live-status { "Reload the page for new data (live updates need JavaScript)." }
                    " · " a href="/api/blocks/tip/height" { "JSON API" }
                }
            }
        }
    }
}

/// An HTML response with the pages' security headers: scripts, styles
/// and everything else only from this server, no framing.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, axum::response::Html(markup.into_string())).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A page failure, rendered as an HTML page with its status.
pub struct PageError {
    /// What failed.
    pub error: ExplorerError,
    /// The chain's name, for the shell.
    pub chain: String,
    /// The search that led here, refilled in the box.
    pub query: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.error.status();
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Bad request",
            StatusCode::SERVICE_UNAVAILABLE => "Busy",
            _ => "Error",
        };
        let body = html! {
            h1 { (title) }
            p.error { (self.error.to_string()) }
            p { a href="/" { "Back to the latest blocks" } }
        };
        respond(status, page(title, &self.chain, Nav::Other, &self.query, body))
    }
}

/// A link to a block page showing the whole hash or its short form.
pub fn block_link(hash: &Hash256, full: bool) -> Markup {
    let text = hash.to_hex();
    html! { a.hash href=(format!("/block/{text}")) title=(text) { (if full { text.clone() } else { format::short(&text) }) } }
}

/// A link to a transaction page.
pub fn tx_link(txid: &Hash256, full: bool) -> Markup {
    let text = txid.to_hex();
    html! { a.hash href=(format!("/tx/{text}")) title=(text) { (if full { text.clone() } else { format::short(&text) }) } }
}

/// A link to an address page.
pub fn address_link(address: &str) -> Markup {
    html! { a.hash href=(format!("/address/{address}")) { (address) } }
}

/// An amount in coins with its unit.
pub fn amount(units: u64) -> Markup {
    html! { span.amount { (format::coins(units)) } " " span.unit { "LODE" } }
}

/// Key/value rows of a summary table.
pub fn facts(rows: &[(&str, Markup)]) -> Markup {
    html! {
        table.facts {
            tbody {
                @for (k, v) in rows {
                    tr { th scope="row" { (k) } td { (v) } }
                }
            }
        }
    }
}

/// "Newer"/"older" links of a paged list (`None` hides one).
pub fn pager(newer: Option<String>, older: Option<String>) -> Markup {
    html! {
        nav.pager {
            @if let Some(h) = newer { a href=(h) { "← Newer" } }
            @if let Some(h) = older { a href=(h) { "Older →" } }
        }
    }
}
