//! Peers found on another chain or network: not redialed for a while,
//! and remembered in bounded memory.

use super::service::WRONG_CHAIN_BACKOFF;
use libp2p::PeerId;
use std::collections::HashMap;
use std::time::Instant;

/// Peers on another chain remembered at once: anyone can connect with a
/// fresh identity and a wrong protocol version, and the only pruning ran
/// when outbound slots were free (never, on a well-connected node).
const MAX_WRONG_CHAIN: usize = 1024;

/// Remembers `peer` as on another chain (not redialed for
/// [`WRONG_CHAIN_BACKOFF`]), forgetting the expired and, at
/// [`MAX_WRONG_CHAIN`], the oldest entry.
pub(super) fn remember(map: &mut HashMap<PeerId, Instant>, peer: PeerId, now: Instant) {
    map.retain(|_, t| now.saturating_duration_since(*t) < WRONG_CHAIN_BACKOFF);
    if map.len() >= MAX_WRONG_CHAIN && !map.contains_key(&peer) {
        if let Some(oldest) = map.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p) {
            map.remove(&oldest);
        }
    }
    map.insert(peer, now);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn peers_remembered_as_on_another_chain_are_bounded_and_expire() {
        let mut map = HashMap::new();
        let start = Instant::now();
        let first = PeerId::random();
        remember(&mut map, first, start);
        for i in 0..2 * MAX_WRONG_CHAIN {
            remember(&mut map, PeerId::random(), start + Duration::from_millis(1 + i as u64));
        }
        assert_eq!(map.len(), MAX_WRONG_CHAIN);
        assert!(!map.contains_key(&first), "the oldest went first");
        let later = start + WRONG_CHAIN_BACKOFF + Duration::from_secs(60);
        remember(&mut map, PeerId::random(), later);
        assert_eq!(map.len(), 1, "the expired are forgotten");
    }
}
