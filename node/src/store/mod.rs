//! RocksDB storage: one database per data directory, one column family per
//! kind of record, every chain update one atomic `WriteBatch`. All disk
//! formats live here (keys in `keys`, values bincode with a byte limit, block
//! bodies in the consensus encoding).

mod commitment;
mod keys;
mod options;
mod view;

pub use commitment::UtxoCommitment;
pub use options::MIN_CACHE_BYTES;
pub use view::{StoreBatch, StoreView};

use lode_core::block::{Block, BlockHeader};
use lode_core::codec::Decode;
use lode_core::tx::{OutPoint, TxOut};
use lode_core::validation::Coin;
use lode_core::{Address, Amount, Hash256, Height};
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, WriteBatch, WriteOptions, DB};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Bumped whenever a stored format changes; an older database is refused.
pub const SCHEMA_VERSION: u32 = 1;

const CF_HEADERS: &str = "headers";
const CF_BLOCKS: &str = "blocks";
const CF_HEIGHT: &str = "height";
const CF_UTXO: &str = "utxo";
const CF_UNDO: &str = "undo";
const CF_TX_INDEX: &str = "tx_index";
const CF_ADDR_INDEX: &str = "addr_index";
const CF_META: &str = "meta";
const ALL_CFS: [&str; 8] = [CF_HEADERS, CF_BLOCKS, CF_HEIGHT, CF_UTXO, CF_UNDO, CF_TX_INDEX, CF_ADDR_INDEX, CF_META];

const META_SCHEMA: &[u8] = b"schema";
const META_GENESIS: &[u8] = b"genesis";
const META_STATE: &[u8] = b"state";
/// Present only in a pruned database: the lowest active height whose body
/// and undo data are still stored (everything below was deleted).
const META_PRUNE: &[u8] = b"prune_height";

/// Largest stored value we will decode (a block body is bounded separately).
const MAX_RECORD: usize = 64 * 1024 * 1024;

/// How far a header has been validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockStatus {
    /// Header checked (proof of work, bits, time); body not stored.
    HeaderOnly,
    /// Body stored and passed the context-free checks.
    HaveData,
    /// Connected to the UTXO set at least once: fully valid.
    Valid,
    /// Breaks a rule (or descends from a block that does).
    Invalid,
}

/// A header with its place in the header tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderRecord {
    /// The header.
    pub header: BlockHeader,
    /// Its height.
    pub height: Height,
    /// Cumulative work (big-endian).
    pub chainwork: [u8; 32],
    /// Validation status.
    pub status: BlockStatus,
    /// Arrival order: ties in work go to the block seen first.
    pub seq: u64,
}

/// Where a confirmed transaction lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxLocation {
    /// Block hash.
    pub block: Hash256,
    /// Block height.
    pub height: Height,
    /// Position in the block.
    pub index: u32,
}

/// The active chain's tip and UTXO-set summary, written with every update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStateRecord {
    /// Tip hash.
    pub tip: Hash256,
    /// Tip height.
    pub height: Height,
    /// UTXO commitment.
    pub commitment: [u8; 32],
    /// Number of unspent outputs.
    pub utxo_count: u64,
    /// Sum of unspent values.
    pub total_amount: u64,
}

impl ChainStateRecord {
    /// Counts a coin leaving the UTXO set. Saturating, not checked: a
    /// summary that went wrong (only an edited data directory can do it)
    /// must not panic the node; `verifychain` reports the mismatch.
    pub fn spend(&mut self, value: Amount) {
        if (self.utxo_count == 0 || self.total_amount < value.units()) && first_summary_warning() {
            tracing::warn!(
                utxo_count = self.utxo_count,
                total_amount = self.total_amount,
                "the stored UTXO-set summary is short of the coins being spent; run verifychain"
            );
        }
        self.utxo_count = self.utxo_count.saturating_sub(1);
        self.total_amount = self.total_amount.saturating_sub(value.units());
    }

    /// Counts a coin entering the UTXO set (saturating, as [`Self::spend`]).
    pub fn create(&mut self, value: Amount) {
        if (self.utxo_count == u64::MAX || self.total_amount.checked_add(value.units()).is_none())
            && first_summary_warning()
        {
            tracing::warn!(utxo_count = self.utxo_count, "the stored UTXO-set summary overflows; run verifychain");
        }
        self.utxo_count = self.utxo_count.saturating_add(1);
        self.total_amount = self.total_amount.saturating_add(value.units());
    }
}

/// Whether this is the first warning about a wrong UTXO-set summary in
/// this process: once it is wrong, every later block would warn again.
fn first_summary_warning() -> bool {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB reported an error.
    #[error("database error: {0}")]
    Db(#[from] rocksdb::Error),
    /// A record failed to decode or verify.
    #[error("corrupt {what} record (key {key}): {reason}")]
    Corrupt {
        /// Kind of record.
        what: &'static str,
        /// Hex of the key.
        key: String,
        /// Why it is unusable.
        reason: String,
    },
    /// Made by another schema version.
    #[error("database schema version {found} is not supported (this node uses {expected}); use a new data directory or the matching node version")]
    SchemaMismatch {
        /// Stored version.
        found: u32,
        /// Our version.
        expected: u32,
    },
    /// Made for another chain.
    #[error("database belongs to the chain with genesis {found}, not {expected}; use a different --data-dir")]
    GenesisMismatch {
        /// Stored genesis.
        found: Hash256,
        /// Ours.
        expected: Hash256,
    },
}

/// The database.
pub struct Store {
    db: DB,
    max_block_size: usize,
    budget: options::Budget,
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Encoding plain structs to a Vec cannot fail.
    bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(what: &'static str, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let config = bincode::config::standard().with_limit::<MAX_RECORD>();
    match bincode::serde::decode_from_slice(bytes, config) {
        Ok((v, used)) if used == bytes.len() => Ok(v),
        Ok(_) => Err(StoreError::Corrupt { what, key: hex::encode(key), reason: "trailing bytes".into() }),
        Err(e) => Err(StoreError::Corrupt { what, key: hex::encode(key), reason: e.to_string() }),
    }
}

/// A coin read back from disk. A value outside `0..=MAX_MONEY` is refused:
/// the data directory may have been edited, and such a value would overflow
/// the UTXO-set sums (a panic) instead of being reported.
fn decode_coin(what: &'static str, key: &[u8], bytes: &[u8]) -> Result<Coin, StoreError> {
    let coin: Coin = decode(what, key, bytes)?;
    check_amount(what, key, coin.output.value.units())?;
    Ok(coin)
}

fn check_amount(what: &'static str, key: &[u8], units: u64) -> Result<(), StoreError> {
    if Amount::from_units(units).is_valid() {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        what,
        key: hex::encode(key),
        reason: format!("amount {units} is above the money supply"),
    })
}

impl Store {
    /// Opens (or creates) the database at `path` for the chain with
    /// `genesis`, refusing one made by another schema or for another chain.
    /// `cache_bytes` bounds the block cache and the memtables together
    /// (at least [`MIN_CACHE_BYTES`]); see `options` for every setting.
    pub fn open(path: &Path, genesis: Hash256, max_block_size: usize, cache_bytes: usize) -> Result<Store, StoreError> {
        let budget = options::Budget::new(cache_bytes);
        let opts = options::db_options(&budget);
        let cfs = ALL_CFS.iter().map(|name| ColumnFamilyDescriptor::new(*name, options::cf_options(name, &budget)));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let store = Store { db, max_block_size, budget };
        store.check_identity(genesis)?;
        Ok(store)
    }

    fn check_identity(&self, genesis: Hash256) -> Result<(), StoreError> {
        let meta = self.cf(CF_META);
        match self.db.get_cf(meta, META_SCHEMA)? {
            Some(bytes) => {
                let found: u32 = decode("schema", META_SCHEMA, &bytes)?;
                if found != SCHEMA_VERSION {
                    return Err(StoreError::SchemaMismatch { found, expected: SCHEMA_VERSION });
                }
                let stored = self.db.get_cf(meta, META_GENESIS)?.ok_or_else(|| StoreError::Corrupt {
                    what: "meta",
                    key: hex::encode(META_GENESIS),
                    reason: "missing genesis".into(),
                })?;
                let found: Hash256 = decode("genesis", META_GENESIS, &stored)?;
                if found != genesis {
                    return Err(StoreError::GenesisMismatch { found, expected: genesis });
                }
            }
            None => {
                let mut batch = WriteBatch::default();
                batch.put_cf(meta, META_SCHEMA, encode(&SCHEMA_VERSION));
                batch.put_cf(meta, META_GENESIS, encode(&genesis));
                self.db.write(batch)?;
            }
        }
        Ok(())
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // Every name in ALL_CFS is created at open; a missing one cannot happen.
        self.db.cf_handle(name).unwrap_or_else(|| unreachable!("column family {name} opened at start"))
    }

    /// A new batch of changes to write atomically.
    pub fn batch(&self) -> StoreBatch<'_> {
        StoreBatch::new(self)
    }

    /// Writes a batch atomically. The write-ahead log makes it durable
    /// against a killed process; `sync` also survives a power cut.
    pub fn write(&self, batch: StoreBatch<'_>, sync: bool) -> Result<(), StoreError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch.into_inner(), &opts)?;
        Ok(())
    }

    /// Flushes memtables to disk (clean shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        for name in ALL_CFS {
            self.db.flush_cf(self.cf(name))?;
        }
        Ok(())
    }

    /// The stored chain state, `None` for a fresh database.
    pub fn chain_state(&self) -> Result<Option<ChainStateRecord>, StoreError> {
        match self.db.get_cf(self.cf(CF_META), META_STATE)? {
            Some(b) => {
                let state: ChainStateRecord = decode("chain state", META_STATE, &b)?;
                check_amount("chain state", META_STATE, state.total_amount)?;
                Ok(Some(state))
            }
            None => Ok(None),
        }
    }

    /// The prune height of a pruned database (lowest height whose body is
    /// stored); `None` when no body was ever pruned here (an archive).
    pub fn prune_height(&self) -> Result<Option<Height>, StoreError> {
        match self.db.get_cf(self.cf(CF_META), META_PRUNE)? {
            Some(b) => Ok(Some(Height(decode("prune height", META_PRUNE, &b)?))),
            None => Ok(None),
        }
    }

    /// Compacts the body and undo column families so deleted (pruned)
    /// records leave the disk now rather than at RocksDB's next compaction.
    pub fn compact_bodies(&self) {
        for name in [CF_BLOCKS, CF_UNDO] {
            self.db.compact_range_cf(self.cf(name), None::<&[u8]>, None::<&[u8]>);
        }
    }

    /// Every stored header (loaded once at start into the in-memory index).
    pub fn all_headers(&self) -> Result<Vec<(Hash256, HeaderRecord)>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_HEADERS), IteratorMode::Start) {
            let (k, v) = item?;
            let hash = keys::hash_from(&k).ok_or_else(|| StoreError::Corrupt {
                what: "header",
                key: hex::encode(&k),
                reason: "key is not a hash".into(),
            })?;
            out.push((hash, decode("header", &k, &v)?));
        }
        Ok(out)
    }

    /// A header record.
    pub fn header(&self, hash: &Hash256) -> Result<Option<HeaderRecord>, StoreError> {
        match self.db.get_cf(self.cf(CF_HEADERS), hash.0)? {
            Some(b) => Ok(Some(decode("header", &hash.0, &b)?)),
            None => Ok(None),
        }
    }

    /// A block body, checked against its hash.
    pub fn block(&self, hash: &Hash256) -> Result<Option<Block>, StoreError> {
        #[cfg(test)]
        {
            BODY_READS.with(|n| n.set(n.get() + 1));
            run_hook(&ON_BODY_READ);
        }
        let Some(bytes) = self.db.get_pinned_cf(self.cf(CF_BLOCKS), hash.0)? else {
            return Ok(None);
        };
        let corrupt = |reason: String| StoreError::Corrupt { what: "block", key: hash.to_hex(), reason };
        let block = Block::decode_all(&bytes, self.max_block_size + 1024).map_err(|e| corrupt(e.to_string()))?;
        if block.hash() != *hash {
            return Err(corrupt(format!("body hashes to {}", block.hash())));
        }
        Ok(Some(block))
    }

    /// Raw block bytes (for serving peers without re-encoding).
    pub fn block_bytes(&self, hash: &Hash256) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_BLOCKS), hash.0)?)
    }

    /// Whether a body is stored.
    pub fn has_block(&self, hash: &Hash256) -> Result<bool, StoreError> {
        Ok(self.db.get_pinned_cf(self.cf(CF_BLOCKS), hash.0)?.is_some())
    }

    /// Hash of the active chain's block at `height`.
    pub fn hash_at(&self, height: Height) -> Result<Option<Hash256>, StoreError> {
        let key = height.0.to_be_bytes();
        match self.db.get_cf(self.cf(CF_HEIGHT), key)? {
            Some(b) => Ok(Some(decode("height", &key, &b)?)),
            None => Ok(None),
        }
    }

    /// A coin of the UTXO set.
    pub fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        let key = keys::outpoint(outpoint);
        match self.db.get_pinned_cf(self.cf(CF_UTXO), key)? {
            Some(b) => Ok(Some(decode_coin("utxo", &key, &b)?)),
            None => Ok(None),
        }
    }

    /// The coins at `outpoints` in one batched read (RocksDB `MultiGet`:
    /// one pass over the memtables and each file for all keys, instead of
    /// one per key). Answers in the order asked.
    pub fn coins(&self, outpoints: &[OutPoint]) -> Result<Vec<Option<Coin>>, StoreError> {
        let keys: Vec<[u8; 36]> = outpoints.iter().map(keys::outpoint).collect();
        let sorted = keys.windows(2).all(|w| w[0] <= w[1]);
        let cf = self.cf(CF_UTXO);
        let mut out = Vec::with_capacity(keys.len());
        for (key, value) in keys.iter().zip(self.db.batched_multi_get_cf(cf, &keys, sorted)) {
            out.push(match value? {
                Some(b) => Some(decode_coin("utxo", key, &b)?),
                None => None,
            });
        }
        Ok(out)
    }

    /// Bytes the block cache holds now, memtables charged to it included
    /// (bounded by `--db-cache-mb`).
    pub fn cache_usage(&self) -> usize {
        self.budget.cache.get_usage()
    }

    /// Undo data of a connected block.
    pub fn undo(&self, hash: &Hash256) -> Result<Option<Vec<(OutPoint, Coin)>>, StoreError> {
        #[cfg(test)]
        {
            BODY_READS.with(|n| n.set(n.get() + 1));
            run_hook(&ON_BODY_READ);
        }
        match self.db.get_cf(self.cf(CF_UNDO), hash.0)? {
            Some(b) => {
                let spent: Vec<(OutPoint, Coin)> = decode("undo", &hash.0, &b)?;
                for (_, coin) in &spent {
                    check_amount("undo", &hash.0, coin.output.value.units())?;
                }
                Ok(Some(spent))
            }
            None => Ok(None),
        }
    }

    /// The outputs block `hash` spent from earlier blocks (its undo data,
    /// one read), by outpoint; empty when it is not connected.
    pub fn undo_outputs(&self, hash: &Hash256) -> Result<HashMap<OutPoint, TxOut>, StoreError> {
        Ok(self.undo(hash)?.unwrap_or_default().into_iter().map(|(op, c)| (op, c.output)).collect())
    }

    /// Where a confirmed transaction is.
    pub fn tx_location(&self, txid: &Hash256) -> Result<Option<TxLocation>, StoreError> {
        match self.db.get_cf(self.cf(CF_TX_INDEX), txid.0)? {
            Some(b) => Ok(Some(decode("tx index", &txid.0, &b)?)),
            None => Ok(None),
        }
    }

    /// Unspent outputs locked to `address`.
    pub fn address_coins(&self, address: &Address) -> Result<Vec<(OutPoint, Coin)>, StoreError> {
        #[cfg(test)]
        on_address_read();
        let prefix = keys::addr_coin_prefix(address);
        let mut out = Vec::new();
        for item in self.db.prefix_iterator_cf(self.cf(CF_ADDR_INDEX), &prefix) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let op = keys::outpoint_from(&k[prefix.len()..]).ok_or_else(|| StoreError::Corrupt {
                what: "address index",
                key: hex::encode(&k),
                reason: "bad outpoint".into(),
            })?;
            out.push((op, decode_coin("address index", &k, &v)?));
        }
        Ok(out)
    }

    /// Confirmed transactions touching `address`, oldest first.
    pub fn address_history(&self, address: &Address) -> Result<Vec<(Height, Hash256)>, StoreError> {
        #[cfg(test)]
        on_address_read();
        let prefix = keys::addr_hist_prefix(address);
        let mut out = Vec::new();
        for item in self.db.prefix_iterator_cf(self.cf(CF_ADDR_INDEX), &prefix) {
            let (k, _) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let entry = keys::hist_from(&k[prefix.len()..]).ok_or_else(|| StoreError::Corrupt {
                what: "address history",
                key: hex::encode(&k),
                reason: "bad key".into(),
            })?;
            out.push(entry);
        }
        Ok(out)
    }

    /// Every coin of the UTXO set (integrity checks and tests).
    pub fn all_coins(&self) -> Result<Vec<(OutPoint, Coin)>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_UTXO), IteratorMode::Start) {
            let (k, v) = item?;
            let op = keys::outpoint_from(&k).ok_or_else(|| StoreError::Corrupt {
                what: "utxo",
                key: hex::encode(&k),
                reason: "bad outpoint key".into(),
            })?;
            out.push((op, decode_coin("utxo", &k, &v)?));
        }
        Ok(out)
    }

    /// Overwrites a block body's raw bytes (tests of the integrity check).
    #[doc(hidden)]
    pub fn corrupt_block_for_test(&self, hash: &Hash256, bytes: &[u8]) -> Result<(), StoreError> {
        self.db.put_cf(self.cf(CF_BLOCKS), hash.0, bytes)?;
        Ok(())
    }
}

/// Adds the outputs of `block`'s own transactions to `map`: what a later
/// transaction of the block may spend and its undo data leaves out (each
/// txid computed once).
pub fn add_own_outputs(map: &mut HashMap<OutPoint, TxOut>, block: &Block) {
    for tx in &block.transactions {
        let txid = tx.txid();
        for (vout, o) in tx.outputs.iter().enumerate() {
            map.insert(OutPoint { txid, vout: vout as u32 }, *o);
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Block bodies and undo records read by this thread (tests count
    /// what one call costs).
    pub(crate) static BODY_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Called as an address index read starts on this thread (tests check
    /// which locks the caller holds then).
    pub(crate) static ON_ADDRESS_READ: std::cell::RefCell<Option<Box<dyn Fn()>>> =
        const { std::cell::RefCell::new(None) };
    /// Called as a block body or undo record read starts on this thread
    /// (same use).
    pub(crate) static ON_BODY_READ: std::cell::RefCell<Option<Box<dyn Fn()>>> =
        const { std::cell::RefCell::new(None) };
}

/// A read hook of this thread (see [`ON_ADDRESS_READ`]).
#[cfg(test)]
pub(crate) type ReadHook = std::thread::LocalKey<std::cell::RefCell<Option<Box<dyn Fn()>>>>;

#[cfg(test)]
fn run_hook(hook: &'static ReadHook) {
    hook.with(|h| {
        if let Some(f) = h.borrow().as_ref() {
            f()
        }
    });
}

#[cfg(test)]
fn on_address_read() {
    run_hook(&ON_ADDRESS_READ);
}
