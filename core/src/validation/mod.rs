//! Block and transaction validation, cheapest checks first:
//! [`check_header`] (proof of work) → [`check_header_context`] (bits, time)
//! → [`check_block`] (everything provable from the block alone) →
//! [`connect_block`] (against the UTXO set, signatures last, in parallel).

mod block_rules;
mod connect;
mod errors;
mod header_rules;
mod tx_rules;

pub use block_rules::check_block;
pub use connect::{
    check_tx_inputs, connect_block, connect_block_deferred, verify_sig_checks, Coin, ConnectContext, ConnectOutcome,
    PendingConnect, UtxoView,
};
pub use errors::{BlockError, TxError};
pub use header_rules::{check_header, check_header_context, median_time_past, HeaderContext, MEDIAN_TIME_SPAN};
pub use tx_rules::check_transaction;
