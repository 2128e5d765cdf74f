//! The sync and compact-relay protocols' wire messages, reachable from
//! outside the crate for the fuzz targets (lode-fuzz), with the limits their
//! decoders apply.

pub use super::codec::{max_tx_size, Request as SyncRequest, Response as SyncResponse, Status as SyncStatus};
pub use super::compact::{CmpctRequest, CmpctResponse, CompactBlock};
pub use super::services::Services as ServicesReply;
