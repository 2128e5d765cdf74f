//! Reading the UTXO set for validation, and the atomic batch every chain
//! update is written as.

use super::{
    encode, keys, Store, CF_ADDR_INDEX, CF_BLOCKS, CF_HEADERS, CF_HEIGHT, CF_META, CF_TX_INDEX, CF_UNDO, CF_UTXO,
    META_PRUNE, META_STATE,
};
use super::{ChainStateRecord, HeaderRecord, TxLocation};
use lode_core::block::Block;
use lode_core::codec::Encode;
use lode_core::tx::OutPoint;
use lode_core::validation::{Coin, UtxoView};
use lode_core::{Address, Hash256, Height};
use rocksdb::WriteBatch;

/// The UTXO set as lode-core's validation reads it. A database error reads
/// as a missing coin (the block then fails as invalid); the caller checks
/// [`StoreView::failed`] to tell the two apart before marking anything.
pub struct StoreView<'a> {
    store: &'a Store,
    failed: std::cell::Cell<bool>,
}

impl<'a> StoreView<'a> {
    /// A view over the store's UTXO set.
    pub fn new(store: &'a Store) -> Self {
        StoreView { store, failed: std::cell::Cell::new(false) }
    }

    /// Whether a read failed (so a "missing input" may be a disk problem).
    pub fn failed(&self) -> bool {
        self.failed.get()
    }
}

impl UtxoView for StoreView<'_> {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        match self.store.coin(outpoint) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(%e, "utxo read failed");
                self.failed.set(true);
                None
            }
        }
    }
}

/// Changes to write in one atomic batch.
pub struct StoreBatch<'a> {
    store: &'a Store,
    batch: WriteBatch,
}

impl<'a> StoreBatch<'a> {
    pub(super) fn new(store: &'a Store) -> Self {
        StoreBatch { store, batch: WriteBatch::default() }
    }

    pub(super) fn into_inner(self) -> WriteBatch {
        self.batch
    }

    /// Number of changes in the batch.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Stores or updates a header record.
    pub fn put_header(&mut self, hash: &Hash256, record: &HeaderRecord) {
        self.batch.put_cf(self.store.cf(CF_HEADERS), hash.0, encode(record));
    }

    /// Stores a block body.
    pub fn put_block(&mut self, hash: &Hash256, block: &Block) {
        self.batch.put_cf(self.store.cf(CF_BLOCKS), hash.0, block.encode());
    }

    /// Deletes a block body and its undo data (pruning; the header, the
    /// height index and the transaction indexes stay).
    pub fn prune_block(&mut self, hash: &Hash256) {
        self.batch.delete_cf(self.store.cf(CF_BLOCKS), hash.0);
        self.batch.delete_cf(self.store.cf(CF_UNDO), hash.0);
    }

    /// Records the lowest height whose body is still stored.
    pub fn put_prune_height(&mut self, height: Height) {
        self.batch.put_cf(self.store.cf(CF_META), META_PRUNE, encode(&height.0));
    }

    /// Adds a coin (and its address-index entry).
    pub fn add_coin(&mut self, outpoint: &OutPoint, coin: &Coin) {
        let value = encode(coin);
        self.batch.put_cf(self.store.cf(CF_UTXO), keys::outpoint(outpoint), &value);
        self.batch.put_cf(self.store.cf(CF_ADDR_INDEX), keys::addr_coin(&coin.output.address, outpoint), &value);
    }

    /// Removes a coin (and its address-index entry).
    pub fn remove_coin(&mut self, outpoint: &OutPoint, coin: &Coin) {
        self.batch.delete_cf(self.store.cf(CF_UTXO), keys::outpoint(outpoint));
        self.batch.delete_cf(self.store.cf(CF_ADDR_INDEX), keys::addr_coin(&coin.output.address, outpoint));
    }

    /// Records that a confirmed transaction touches `address`.
    pub fn add_history(&mut self, address: &Address, height: Height, txid: &Hash256) {
        self.batch.put_cf(self.store.cf(CF_ADDR_INDEX), keys::addr_hist(address, height, txid), []);
    }

    /// Forgets a history entry (block disconnected).
    pub fn remove_history(&mut self, address: &Address, height: Height, txid: &Hash256) {
        self.batch.delete_cf(self.store.cf(CF_ADDR_INDEX), keys::addr_hist(address, height, txid));
    }

    /// Indexes a confirmed transaction.
    pub fn put_tx(&mut self, txid: &Hash256, loc: &TxLocation) {
        self.batch.put_cf(self.store.cf(CF_TX_INDEX), txid.0, encode(loc));
    }

    /// Un-indexes a transaction.
    pub fn delete_tx(&mut self, txid: &Hash256) {
        self.batch.delete_cf(self.store.cf(CF_TX_INDEX), txid.0);
    }

    /// Stores undo data.
    pub fn put_undo(&mut self, hash: &Hash256, spent: &[(OutPoint, Coin)]) {
        self.batch.put_cf(self.store.cf(CF_UNDO), hash.0, encode(&spent));
    }

    /// Drops undo data.
    pub fn delete_undo(&mut self, hash: &Hash256) {
        self.batch.delete_cf(self.store.cf(CF_UNDO), hash.0);
    }

    /// Sets the active chain's block at `height`.
    pub fn put_height(&mut self, height: Height, hash: &Hash256) {
        self.batch.put_cf(self.store.cf(CF_HEIGHT), height.0.to_be_bytes(), encode(hash));
    }

    /// Clears the active chain's block at `height`.
    pub fn delete_height(&mut self, height: Height) {
        self.batch.delete_cf(self.store.cf(CF_HEIGHT), height.0.to_be_bytes());
    }

    /// Writes the tip and UTXO summary.
    pub fn put_chain_state(&mut self, state: &ChainStateRecord) {
        self.batch.put_cf(self.store.cf(CF_META), META_STATE, encode(state));
    }
}
