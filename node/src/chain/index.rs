//! The in-memory header tree: every known header with its height, work,
//! status, and whether its whole ancestry has bodies (a candidate tip).

use crate::store::{BlockStatus, HeaderRecord};
use lode_core::block::BlockHeader;
use lode_core::difficulty::HeaderSample;
use lode_core::pow::Work;
use lode_core::{Hash256, Height};
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

/// One header in the tree.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The header.
    pub header: BlockHeader,
    /// Height.
    pub height: Height,
    /// Cumulative work.
    pub work: Work,
    /// Validation status.
    pub status: BlockStatus,
    /// Arrival order (ties in work go to the lower).
    pub seq: u64,
    /// This block and all its ancestors have bodies stored.
    pub chain_data: bool,
}

impl Entry {
    /// The stored form.
    pub fn record(&self) -> HeaderRecord {
        HeaderRecord {
            header: self.header,
            height: self.height,
            chainwork: self.work.to_be_bytes(),
            status: self.status,
            seq: self.seq,
        }
    }

    /// Whether the body is stored.
    pub fn has_data(&self) -> bool {
        matches!(self.status, BlockStatus::HaveData | BlockStatus::Valid)
    }
}

/// Ordering key of candidate tips: most work, then first seen.
pub type CandidateKey = (Work, Reverse<u64>, Hash256);

/// The header tree.
#[derive(Default)]
pub struct HeaderIndex {
    entries: HashMap<Hash256, Entry>,
    children: HashMap<Hash256, Vec<Hash256>>,
    /// Blocks whose whole ancestry has bodies and that are not invalid.
    candidates: BTreeSet<CandidateKey>,
}

impl HeaderIndex {
    /// Looks up a header.
    pub fn get(&self, hash: &Hash256) -> Option<&Entry> {
        self.entries.get(hash)
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Inserts a header (its parent, if any, must already be present).
    pub fn insert(&mut self, hash: Hash256, entry: Entry) {
        if entry.height.0 > 0 {
            self.children.entry(entry.header.prev_hash).or_default().push(hash);
        }
        self.entries.insert(hash, entry);
    }

    /// Headers no other header builds on.
    pub fn leaves(&self) -> impl Iterator<Item = Hash256> + '_ {
        self.entries.keys().filter(|h| self.children.get(*h).is_none_or(|c| c.is_empty())).copied()
    }

    /// Sets the arrival order of a block that is not yet a candidate (the
    /// caller persists the record).
    pub fn set_seq(&mut self, hash: &Hash256, seq: u64) {
        if let Some(e) = self.entries.get_mut(hash) {
            if !self.candidates.contains(&(e.work, Reverse(e.seq), *hash)) {
                e.seq = seq;
            }
        }
    }

    /// Sets a status (the caller persists the record).
    pub fn set_status(&mut self, hash: &Hash256, status: BlockStatus) {
        if let Some(e) = self.entries.get_mut(hash) {
            e.status = status;
            if status == BlockStatus::Invalid {
                self.candidates.remove(&(e.work, Reverse(e.seq), *hash));
            }
        }
    }

    /// Marks a body as stored and propagates "whole ancestry has data" to
    /// descendants that were waiting for it.
    pub fn mark_data(&mut self, hash: &Hash256) {
        let Some(e) = self.entries.get_mut(hash) else { return };
        if e.status == BlockStatus::HeaderOnly {
            e.status = BlockStatus::HaveData;
        }
        let (height, prev) = (e.height, e.header.prev_hash);
        let parent_ok = height.0 == 0 || self.entries.get(&prev).is_some_and(|p| p.chain_data);
        if !parent_ok {
            return;
        }
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            let Some(e) = self.entries.get_mut(&h) else { continue };
            if !e.has_data() || e.chain_data {
                continue;
            }
            e.chain_data = true;
            self.candidates.insert((e.work, Reverse(e.seq), h));
            if let Some(kids) = self.children.get(&h) {
                stack.extend(kids.iter().copied());
            }
        }
    }

    /// Makes a block with complete ancestry a candidate tip again (after it
    /// was disconnected in a reorg).
    pub fn add_candidate(&mut self, hash: &Hash256) {
        if let Some(e) = self.entries.get(hash) {
            if e.chain_data && e.status != BlockStatus::Invalid {
                self.candidates.insert((e.work, Reverse(e.seq), *hash));
            }
        }
    }

    /// Stops offering a block as a candidate tip (a branch the chain cannot
    /// move to); it stays valid and may become a candidate again.
    pub fn remove_candidate(&mut self, hash: &Hash256) {
        if let Some(e) = self.entries.get(hash) {
            self.candidates.remove(&(e.work, Reverse(e.seq), *hash));
        }
    }

    /// Marks `hash` and every descendant invalid; returns them all.
    pub fn mark_invalid_subtree(&mut self, hash: &Hash256) -> Vec<Hash256> {
        let mut out = Vec::new();
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            self.set_status(&h, BlockStatus::Invalid);
            out.push(h);
            if let Some(kids) = self.children.get(&h) {
                stack.extend(kids.iter().copied());
            }
        }
        out
    }

    /// The best candidate tip.
    pub fn best_candidate(&self) -> Option<Hash256> {
        self.candidates.iter().next_back().map(|(_, _, h)| *h)
    }

    /// Drops candidates with less work than `work` (they can no longer win:
    /// the active tip is valid and at least that heavy).
    pub fn prune_candidates(&mut self, work: Work) {
        self.candidates = self.candidates.split_off(&(work, Reverse(u64::MAX), Hash256::ZERO));
    }

    /// The heaviest header that is not invalid (ties: first seen).
    pub fn best_header(&self) -> Option<Hash256> {
        self.entries
            .iter()
            .filter(|(_, e)| e.status != BlockStatus::Invalid)
            .max_by(|(_, a), (_, b)| a.work.cmp(&b.work).then(b.seq.cmp(&a.seq)))
            .map(|(h, _)| *h)
    }

    /// Up to `n` ancestors' time and bits ending with `hash`, oldest first.
    pub fn samples(&self, hash: &Hash256, n: usize) -> Vec<HeaderSample> {
        let mut out = Vec::with_capacity(n);
        let mut cur = self.entries.get(hash);
        while let Some(e) = cur {
            if out.len() == n {
                break;
            }
            out.push(HeaderSample { time: e.header.time, bits: e.header.bits });
            if e.height.0 == 0 {
                break;
            }
            cur = self.entries.get(&e.header.prev_hash);
        }
        out.reverse();
        out
    }

    /// The ancestor of `hash` at `height`.
    pub fn ancestor(&self, hash: &Hash256, height: Height) -> Option<Hash256> {
        let mut h = *hash;
        loop {
            let e = self.entries.get(&h)?;
            if e.height == height {
                return Some(h);
            }
            if e.height < height || e.height.0 == 0 {
                return None;
            }
            h = e.header.prev_hash;
        }
    }
}
