//! RocksDB settings for this workload, each with the reason it is there.
//!
//! The workload: every block connect is one batch of a few thousand small
//! writes (UTXO puts and deletes, address-index and transaction-index
//! entries, one undo record, one body); every block connect reads one UTXO
//! per input, nearly all of them present (so lookups end in the memtable or
//! the newest files) and some of them created in the block itself (absent:
//! only a bloom filter keeps those from touching every level). Memory must
//! stay flat over a long import: one budget (`--db-cache-mb`) bounds the
//! block cache, the memtables charged to it, and the index and filter
//! blocks kept in it.

use rocksdb::{BlockBasedIndexType, BlockBasedOptions, Cache, DBCompressionType, Options, WriteBufferManager};

/// Smallest total budget accepted: below it the memtables would flush a
/// few blocks at a time and compaction would run continuously.
pub const MIN_CACHE_BYTES: usize = 16 << 20;

/// Shared memory objects: one block cache and one write-buffer manager for
/// every column family, so `--db-cache-mb` is one bound, not one per family.
pub(super) struct Budget {
    pub(super) cache: Cache,
    pub(super) write_buffers: WriteBufferManager,
    /// Bytes one memtable of a busy family may reach before it is flushed.
    pub(super) memtable_bytes: usize,
}

impl Budget {
    /// Splits `total` bytes: memtables are charged to the block cache (the
    /// write-buffer manager inserts dummy entries into it), so the cache's
    /// capacity is the whole bound and the write buffers may use up to half
    /// of it before RocksDB flushes the largest memtable.
    pub(super) fn new(total: usize) -> Budget {
        let total = total.max(MIN_CACHE_BYTES);
        let cache = Cache::new_lru_cache(total);
        // Not `allow_stall`: a write never waits for a flush on the import
        // path; the flush is triggered early instead (90 % of the limit).
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(total / 2, false, cache.clone());
        // Two memtables of the busiest family (one filling, one flushing)
        // fit in the write-buffer half with room for the others.
        let memtable_bytes = (total / 8).clamp(4 << 20, 64 << 20);
        Budget { cache, write_buffers, memtable_bytes }
    }
}

/// Options shared by the database and every column family.
pub(super) fn db_options(budget: &Budget) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_open_files(256);
    opts.set_keep_log_file_num(3);
    // Compaction off the critical path: flushes and compactions run on
    // their own threads (two cores: two jobs, one of them a flush), and
    // the writer never blocks on deleting obsolete files.
    opts.set_max_background_jobs(2);
    opts.set_avoid_unnecessary_blocking_io(true);
    // An import must not be slowed or stopped because level 0 briefly
    // holds more files than the defaults (20 / 36) while a compaction of
    // a burst catches up; the totals below keep that bounded.
    opts.set_level_zero_slowdown_writes_trigger(40);
    opts.set_level_zero_stop_writes_trigger(64);
    opts.set_write_buffer_manager(&budget.write_buffers);
    // Bytes written to the WAL before a sync-less process crash are in the
    // page cache and survive SIGKILL; `--sync-writes` adds fsync per batch.
    opts.set_manual_wal_flush(false);
    opts
}

fn table(budget: &Budget, bloom: bool) -> BlockBasedOptions {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&budget.cache);
    // Index and filter blocks live in the bounded cache instead of table
    // readers' own memory, which would grow with the number of files
    // (the RSS growth of a long import); level-0 ones stay pinned because
    // every read checks every level-0 file.
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_partition_filters(true);
    if bloom {
        // 10 bits a key: about 1 % false positives. A connect looks up
        // every input, including the ones created in the same block (not
        // in the database at all): the filter answers those without a
        // block read, level by level.
        table.set_bloom_filter(10.0, false);
        table.set_whole_key_filtering(true);
    }
    table
}

/// Options of one column family.
pub(super) fn cf_options(name: &str, budget: &Budget) -> Options {
    let mut opts = db_options(budget);
    match name {
        super::CF_UTXO => {
            opts.set_block_based_table_factory(&table(budget, true));
            // The hot family: a large memtable absorbs a block's puts and
            // the deletes of coins spent soon after they were created
            // (most of them, in a steady chain) before they reach disk.
            opts.set_write_buffer_size(budget.memtable_bytes);
            opts.set_max_write_buffer_number(3);
            // Memtable bloom: a missing key (created in the block being
            // connected) is answered without walking the skip list.
            opts.set_memtable_prefix_bloom_ratio(0.1);
            opts.set_memtable_whole_key_filtering(true);
            // Keys are random hashes: compression gains little and costs
            // CPU on the import path; LZ4 only for the colder levels.
            opts.set_compression_type(DBCompressionType::None);
            opts.set_bottommost_compression_type(DBCompressionType::Lz4);
        }
        super::CF_ADDR_INDEX => {
            // Only scanned by prefix ('u'/'h' ‖ address), never looked up
            // by whole key: a whole-key filter would be memory for nothing.
            opts.set_block_based_table_factory(&table(budget, false));
            opts.set_write_buffer_size(budget.memtable_bytes / 2);
            opts.set_compression_type(DBCompressionType::Lz4);
        }
        super::CF_BLOCKS => {
            opts.set_block_based_table_factory(&table(budget, true));
            // Bodies are written once and read rarely: keep them out of
            // the LSM tree's rewrites (blob files), so compaction moves
            // small keys, not megabytes of blocks.
            opts.set_enable_blob_files(true);
            opts.set_min_blob_size(4096);
            opts.set_blob_compression_type(DBCompressionType::Lz4);
            opts.set_write_buffer_size(budget.memtable_bytes / 2);
            opts.set_compression_type(DBCompressionType::Lz4);
        }
        _ => {
            opts.set_block_based_table_factory(&table(budget, true));
            opts.set_write_buffer_size((budget.memtable_bytes / 4).max(2 << 20));
            opts.set_compression_type(DBCompressionType::Lz4);
        }
    }
    opts
}
