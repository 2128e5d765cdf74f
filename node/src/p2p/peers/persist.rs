//! Persistence of the peer store: the JSON file format, loading, and
//! debounced background saves (one write at a time, newest wins).

use super::bans::Ban;
use super::store::{dialable, Known};
use super::{unix_now, PeerStore, MAX_ADDRS_PER_PEER, SAVE_DEBOUNCE};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Largest peer store read: the tables hold at most 2,000 peers of 4
/// addresses and 10,000 bans, a few MiB of JSON.
pub(super) const MAX_PEER_FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Serialize, Deserialize, Default)]
struct StoreFile {
    peers: Vec<StoredPeer>,
    bans: Vec<StoredBan>,
}

#[derive(Serialize, Deserialize)]
struct StoredPeer {
    peer_id: String,
    addrs: Vec<String>,
    last_seen: u64,
    /// Absent in stores written before the tables existed: such entries
    /// load as "new" (unverified), the safe side.
    #[serde(default)]
    tried: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredBan {
    peer_id: String,
    until: u64,
    #[serde(default)]
    addrs: Vec<String>,
}

/// The store's contents copied for a background write: cheap to take on
/// the network task (ids and addresses are cloned, not formatted).
struct Snapshot {
    peers: Vec<(PeerId, Vec<Multiaddr>, u64, bool)>,
    bans: Vec<(PeerId, Ban)>,
}

impl Snapshot {
    fn encode(self) -> std::io::Result<Vec<u8>> {
        let file = StoreFile {
            peers: self
                .peers
                .into_iter()
                .map(|(id, addrs, last_seen, tried)| StoredPeer {
                    peer_id: id.to_string(),
                    addrs: addrs.iter().map(|a| a.to_string()).collect(),
                    last_seen,
                    tried,
                })
                .collect(),
            bans: self
                .bans
                .into_iter()
                .map(|(id, b)| StoredBan {
                    peer_id: id.to_string(),
                    until: b.until,
                    addrs: b.addrs.iter().map(|a| a.to_string()).collect(),
                })
                .collect(),
        };
        serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)
    }
}

/// Writes of the store file, one at a time and newest wins.
#[derive(Debug, Default)]
pub(super) struct Writer {
    /// Sequence number of the last snapshot taken.
    pub(super) seq: u64,
    /// Held while writing; holds the sequence number last written, so an
    /// older snapshot that lost the race never overwrites a newer one.
    pub(super) lock: Arc<Mutex<u64>>,
    /// A background write is queued or running.
    pub(super) busy: Arc<AtomicBool>,
    /// The last background write failed: the next save tries again.
    pub(super) failed: Arc<AtomicBool>,
    /// Files written so far.
    pub(super) writes: Arc<AtomicU64>,
    pub(super) last: Option<Instant>,
}

fn write_snapshot(
    path: &Path,
    lock: &Mutex<u64>,
    writes: &AtomicU64,
    seq: u64,
    snapshot: Snapshot,
) -> std::io::Result<()> {
    let mut written = lock.lock().unwrap_or_else(|e| e.into_inner());
    if *written >= seq {
        return Ok(());
    }
    let bytes = snapshot.encode()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::files::write_atomic(path, &bytes, crate::files::Access::Default)?;
    *written = seq;
    writes.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

impl PeerStore {
    /// Loads `path`; a missing or unreadable file starts an empty store.
    pub fn load(path: &Path) -> PeerStore {
        let mut store = PeerStore {
            path: path.to_path_buf(),
            tried: HashMap::new(),
            new: HashMap::new(),
            backoff: HashMap::new(),
            bans: HashMap::new(),
            dirty: false,
            writer: Writer::default(),
        };
        let file: StoreFile = match crate::files::read_capped(path, MAX_PEER_FILE_BYTES) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(path = %path.display(), %e, "peer store is unreadable, starting empty");
                    return store;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return store,
            Err(e) => {
                tracing::warn!(path = %path.display(), %e, "cannot read the peer store, starting empty");
                return store;
            }
        };
        for p in file.peers {
            let Ok(id) = PeerId::from_str(&p.peer_id) else {
                continue;
            };
            let addrs: Vec<Multiaddr> = p
                .addrs
                .iter()
                .filter_map(|a| Multiaddr::from_str(a).ok())
                .filter_map(|a| dialable(&a))
                .take(MAX_ADDRS_PER_PEER)
                .collect();
            if !addrs.is_empty() {
                let table = if p.tried { &mut store.tried } else { &mut store.new };
                table.insert(id, Known { addrs, last_seen: p.last_seen, source: None });
            }
        }
        let now = unix_now();
        for b in file.bans {
            if let Ok(id) = PeerId::from_str(&b.peer_id) {
                if b.until > now {
                    let addrs = b.addrs.iter().filter_map(|a| IpAddr::from_str(a).ok()).collect();
                    store.bans.insert(id, Ban { until: b.until, addrs });
                }
            }
        }
        store.evict();
        store.bound_bans();
        store
    }

    fn snapshot(&mut self) -> (u64, Snapshot) {
        let mut peers = Vec::with_capacity(self.tried.len() + self.new.len());
        for (tried, table) in [(true, &self.tried), (false, &self.new)] {
            peers.extend(table.iter().map(|(id, k)| (*id, k.addrs.clone(), k.last_seen, tried)));
        }
        let bans = self.bans.iter().map(|(id, b)| (*id, b.clone())).collect();
        self.writer.seq += 1;
        (self.writer.seq, Snapshot { peers, bans })
    }

    /// Saves the store if it changed, on a blocking thread (at most one
    /// write in flight and one per [`SAVE_DEBOUNCE`]; a change that has to
    /// wait is saved by a later call, the network task calls this every few
    /// seconds). Without a tokio runtime it writes at once.
    pub fn save(&mut self) -> std::io::Result<()> {
        if self.writer.failed.swap(false, Ordering::Relaxed) {
            self.dirty = true;
        }
        if !self.dirty || self.writer.busy.load(Ordering::Acquire) {
            return Ok(());
        }
        let now = Instant::now();
        if self.writer.last.is_some_and(|t| now.saturating_duration_since(t) < SAVE_DEBOUNCE) {
            return Ok(());
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.flush();
        };
        let (seq, snapshot) = self.snapshot();
        let (path, lock, busy, failed, writes) = (
            self.path.clone(),
            self.writer.lock.clone(),
            self.writer.busy.clone(),
            self.writer.failed.clone(),
            self.writer.writes.clone(),
        );
        busy.store(true, Ordering::Release);
        runtime.spawn_blocking(move || {
            if let Err(e) = write_snapshot(&path, &lock, &writes, seq, snapshot) {
                tracing::warn!(path = %path.display(), %e, "cannot save the peer store");
                failed.store(true, Ordering::Relaxed);
            }
            busy.store(false, Ordering::Release);
        });
        self.dirty = false;
        self.writer.last = Some(now);
        Ok(())
    }

    /// Writes the store now, on this thread, after any write in flight
    /// (for shutdown: nothing is left for a background thread).
    pub fn flush(&mut self) -> std::io::Result<()> {
        let pending = self.writer.busy.load(Ordering::Acquire) || self.writer.failed.swap(false, Ordering::Relaxed);
        if !self.dirty && !pending {
            return Ok(());
        }
        let (seq, snapshot) = self.snapshot();
        write_snapshot(&self.path, &self.writer.lock, &self.writer.writes, seq, snapshot)?;
        self.dirty = false;
        self.writer.last = Some(Instant::now());
        Ok(())
    }

    /// Files written so far.
    #[cfg(test)]
    pub fn writes(&self) -> u64 {
        self.writer.writes.load(Ordering::Relaxed)
    }

    /// The lock every write takes (tests hold it to stall the writer).
    #[cfg(test)]
    pub fn writer_lock(&self) -> Arc<Mutex<u64>> {
        self.writer.lock.clone()
    }
}
