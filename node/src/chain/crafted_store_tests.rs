//! A store edited by hand or by an attacker with access to the data
//! directory: `Chain::open` reports corruption, never hangs or aborts.

use super::*;
use crate::store::{BlockStatus, HeaderRecord, StoreError};
use crate::testkit::ChainBuilder;
use std::sync::mpsc;
use std::time::Duration;

/// A chain of three blocks in `dir`, then `edit` applied to its store.
fn crafted(dir: &Path, edit: impl FnOnce(&Chain, &mut ChainStateRecord) -> Option<(Hash256, HeaderRecord)>) {
    let mut chain =
        Chain::open(dir, ChainSpec::regtest(), Arc::new(SigCache::new(100)), ChainConfig::default()).expect("open");
    for b in ChainBuilder::new(ChainSpec::regtest()).blocks(3, 0) {
        chain.accept_block(b).expect("a valid block");
    }
    let mut state = *chain.state();
    let record = edit(&chain, &mut state);
    let mut batch = chain.store().batch();
    if let Some((hash, record)) = record {
        batch.put_header(&hash, &record);
    }
    batch.put_chain_state(&state);
    chain.store().write(batch, true).expect("write");
}

/// Opens `dir` on another thread: an open that never returns fails the
/// test at the deadline instead of hanging it.
fn open_within_deadline(dir: &Path) -> Result<Chain, ChainError> {
    let (done, result) = mpsc::channel();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let _ =
            done.send(Chain::open(&dir, ChainSpec::regtest(), Arc::new(SigCache::new(100)), ChainConfig::default()));
    });
    result.recv_timeout(Duration::from_secs(30)).expect("Chain::open returned within 30 s")
}

fn is_corrupt(result: Result<Chain, ChainError>) -> String {
    match result {
        Err(ChainError::Store(StoreError::Corrupt { reason, .. })) => reason,
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("the crafted store was opened"),
    }
}

#[test]
fn a_header_record_naming_itself_as_its_parent_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let looped = Hash256([0xab; 32]);
    crafted(dir.path(), |chain, state| {
        let tip = chain.tip_entry().clone();
        let mut header = tip.header;
        header.prev_hash = looped;
        state.tip = looped;
        state.height = Height(4);
        let record = HeaderRecord {
            header,
            height: Height(4),
            chainwork: tip.work.to_be_bytes(),
            status: BlockStatus::Valid,
            seq: 99,
        };
        Some((looped, record))
    });
    let reason = is_corrupt(open_within_deadline(dir.path()));
    assert!(reason.contains("parent"), "{reason}");
}

#[test]
fn a_chain_state_height_of_u32_max_is_refused_as_corrupt_without_reserving_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    crafted(dir.path(), |_, state| {
        state.height = Height(u32::MAX);
        None
    });
    let reason = is_corrupt(open_within_deadline(dir.path()));
    assert!(reason.contains("genesis"), "{reason}");
}
