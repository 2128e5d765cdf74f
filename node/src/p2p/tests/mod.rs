//! Several real swarms on 127.0.0.1 in one runtime, each over a mock chain:
//! connection through a bootnode, gossip, headers-first sync from several
//! peers, orphan ancestry fetch, bans (automatic and manual, both
//! directions), the peer store across restarts, chain separation and the
//! UTXO commitment check; and hostile peers of issue 13 (a claimed chain
//! that is never served, stalling block and header sources, duplicate and
//! side-branch block requests, request and transaction floods, oversized
//! gossip) played by a bare libp2p peer (`hostile`). Every wait is a
//! condition with a deadline.
//!
//! Split by theme: `gossip`, `sync`, `peers` (bans, restarts, chain
//! separation), `limits` (request and flood bounds); `helpers` holds the
//! shared test network and `hostile` the bare libp2p peer.

mod compact;
mod discovery;
mod gossip;
mod helpers;
#[allow(clippy::duplicate_mod)]
mod hostile;
mod limits;
mod peers;
mod sync;
