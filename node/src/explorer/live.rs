//! `GET /api/events`: Server-Sent Events from the node's broadcast
//! channel, so pages show new blocks and mempool arrivals without a
//! reload. Events: `block` `{"hash", "height"}` and `tx` `{"txid"}`;
//! `lagged` when this client fell behind and should refresh everything.

use super::api::ApiError;
use super::{Explorer, ExplorerError};
use crate::chain_api::{ChainEvent, NetworkChain};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit};

/// A comment line this often keeps proxies and the write timeout from
/// closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The stream's state: the subscription, the node's shutdown signal and
/// the slot this client holds.
struct Feed {
    events: broadcast::Receiver<ChainEvent>,
    shutdown: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
}

/// The SSE form of a chain event (`None`: not shown, a block being
/// connected is shown once it is).
fn to_event(e: &ChainEvent) -> Option<Event> {
    Some(match e {
        ChainEvent::Block(b) => {
            // The coinbase commits to the height: no chain lock needed.
            let height = b.transactions.first().and_then(|cb| match cb.inputs.first().map(|i| &i.unlock) {
                Some(lode_core::tx::Unlock::Coinbase { height, .. }) => Some(height.0),
                _ => None,
            });
            Event::default().event("block").data(json!({"hash": b.hash(), "height": height}).to_string())
        }
        ChainEvent::Tx(t) => Event::default().event("tx").data(json!({"txid": t.txid()}).to_string()),
        ChainEvent::Prevalidated(_) => return None,
    })
}

fn stream(feed: Feed) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(feed, |mut f| async move {
        if *f.shutdown.borrow() {
            return None;
        }
        loop {
            let next = tokio::select! {
                r = f.events.recv() => r,
                _ = f.shutdown.changed() => return None,
            };
            let event = match next {
                Ok(e) => to_event(&e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    Some(Event::default().event("lagged").data(n.to_string()))
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if let Some(event) = event {
                return Some((Ok(event), f));
            }
        }
    })
}

/// `GET /api/events` (503 when [`super::MAX_STREAMS`] clients already listen).
pub async fn events(State(ex): State<Arc<Explorer>>) -> Response {
    let Ok(slot) = ex.streams.clone().try_acquire_owned() else {
        return ApiError::from(ExplorerError::Busy("too many live event streams; try again later".into()))
            .into_response();
    };
    let feed = Feed { events: ex.node.subscribe(), shutdown: ex.shutdown.clone(), _slot: slot };
    let mut r = Sse::new(stream(feed)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response();
    r.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-cache"));
    r.headers_mut().insert(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, axum::http::HeaderValue::from_static("*"));
    r
}
