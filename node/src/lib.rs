//! Lode full node: RocksDB storage, chain state with most-work fork choice,
//! mempool, miner, libp2p networking and sync, JSON-RPC, metrics.

pub mod chain_api;
pub mod mempool;
pub mod miner;
pub mod p2p;
pub mod chain;
pub mod store;
#[doc(hidden)]
pub mod testkit;
pub mod metrics;
pub mod node;
pub mod rpc;
