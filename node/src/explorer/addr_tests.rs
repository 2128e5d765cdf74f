//! Address pages read the address index without holding the chain lock.

use super::*;
use crate::testkit::{regtest_node, watch_address_reads, ChainBuilder};
use lode_core::ChainSpec;

// A public page of a dusted address must not stall block processing: each
// view read the whole index under the chain lock.
#[test]
fn address_pages_read_the_index_without_holding_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let (node, _) = regtest_node(dir.path(), &mut builder, 3);
    let address = builder.address();
    let seen = watch_address_reads(&node);
    let s = summary(&node, &address).expect("summary");
    assert_eq!((s.utxo_count, s.chain.tx_count), (3, 3));
    assert_eq!(utxos(&node, &address).expect("utxos").len(), 3);
    assert_eq!(chain_txs(&node, &address, None, 0).expect("page").1, 3);
    crate::store::ON_ADDRESS_READ.with(|h| h.borrow_mut().take());
    assert_eq!(seen.get(), (4, 0), "(index reads, of them under the chain lock)");
}
