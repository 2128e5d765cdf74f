//! Lode full node: RocksDB storage, chain state with most-work fork choice,
//! mempool, miner, libp2p networking and sync, JSON-RPC, metrics.

pub mod chain;
pub mod chain_api;
pub mod explorer;
pub mod fault;
pub mod fees;
pub mod files;
pub mod listen;
pub mod memory;
pub mod mempool;
pub mod metrics;
pub mod miner;
pub mod node;
pub mod p2p;
pub mod rpc;
pub mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod testkit;
