//! Header sync under attack (Bitcoin Core's headers presync): a header
//! chain is stored only once it carries enough work, so a peer cannot fill
//! our memory and disk with cheap branches far below the tip. A chain below
//! the threshold is checked in full (proof of work, bits, time) without
//! being stored; the network layer keeps the few it is still fetching in a
//! bounded buffer and offers them again with the next batch.

use super::{Chain, ChainError};
use crate::store::BlockStatus;
use lode_core::block::BlockHeader;
use lode_core::difficulty::{next_bits, window_len, HeaderSample};
use lode_core::pow::Work;
use lode_core::validation::{check_header, check_header_context, median_time_past, HeaderContext};

/// How many blocks' worth of work below the tip a header chain may end and
/// still be stored (Core: 144, a day of Bitcoin blocks): forks near the tip
/// are kept, a branch from deep history must prove its work first.
pub const NEAR_TIP_BLOCKS: u64 = 144;

/// What offering a header chain did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderChainOutcome {
    /// Stored; `new` of them were unknown.
    Stored {
        /// Headers that were new.
        new: usize,
    },
    /// Valid so far, but its work is below [`Chain::anti_dos_threshold`]:
    /// nothing was stored.
    LowWork,
}

impl Chain {
    /// The work a header chain must reach to be stored: the spec's
    /// `minimum_chain_work`, and no less than [`NEAR_TIP_BLOCKS`] blocks
    /// below the active tip.
    pub fn anti_dos_threshold(&self) -> Work {
        let tip = self.tip_entry();
        let per_block = tip.header.bits.to_target().map(|t| t.work()).unwrap_or(Work::ZERO);
        let margin = per_block.0.saturating_mul(&crypto_bigint::U256::from_u64(NEAR_TIP_BLOCKS));
        let near_tip = Work(tip.work.0.saturating_sub(&margin));
        near_tip.max(self.spec.minimum_chain_work)
    }

    /// Checks `headers` (each the parent of the next) and stores them when
    /// the chain they end reaches the anti-DoS threshold; a known invalid
    /// header or an unknown parent is an error.
    pub fn accept_header_chain(&mut self, headers: &[BlockHeader]) -> Result<HeaderChainOutcome, ChainError> {
        let mut first_new = headers.len();
        for (i, h) in headers.iter().enumerate() {
            let hash = h.hash();
            match self.index.get(&hash) {
                Some(e) if e.status == BlockStatus::Invalid => return Err(ChainError::KnownInvalid(hash)),
                Some(_) => {}
                None => {
                    first_new = i;
                    break;
                }
            }
        }
        let fresh = &headers[first_new..];
        if fresh.is_empty() {
            return Ok(HeaderChainOutcome::Stored { new: 0 });
        }
        let (checked, work) = self.check_header_chain(fresh)?;
        if checked == 0 {
            return Ok(HeaderChainOutcome::Stored { new: 0 });
        }
        if work < self.anti_dos_threshold() {
            return Ok(HeaderChainOutcome::LowWork);
        }
        let mut new = 0;
        for h in &fresh[..checked] {
            match self.accept_header(h) {
                Ok(true) => new += 1,
                Ok(false) => {}
                Err(ChainError::Deferred { .. }) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(HeaderChainOutcome::Stored { new })
    }

    /// Validates unknown headers (the first one's parent known) without
    /// storing them. Returns how many passed before one that is only too
    /// far in the future (the rest wait), and the work at the last of them.
    fn check_header_chain(&self, headers: &[BlockHeader]) -> Result<(usize, Work), ChainError> {
        let Some(first) = headers.first() else { return Ok((0, Work::ZERO)) };
        let parent = self.index.get(&first.prev_hash).ok_or(ChainError::UnknownParent(first.prev_hash))?;
        if parent.status == BlockStatus::Invalid {
            return Err(ChainError::InvalidAncestor(first.hash()));
        }
        let window = window_len(&self.spec).max(11);
        let mut samples: Vec<HeaderSample> = self.index.samples(&first.prev_hash, window);
        let mut work = parent.work;
        let now = super::unix_now();
        for (i, h) in headers.iter().enumerate() {
            let hash = h.hash();
            if i > 0 && h.prev_hash != headers[i - 1].hash() {
                return Err(ChainError::UnknownParent(h.prev_hash));
            }
            check_header(h, &self.spec).map_err(|source| ChainError::Invalid { hash, source })?;
            let bits_window = &samples[samples.len().saturating_sub(window_len(&self.spec))..];
            let times: Vec<u64> = samples[samples.len().saturating_sub(11)..].iter().map(|s| s.time).collect();
            let ctx = HeaderContext {
                expected_bits: next_bits(&self.spec, bits_window),
                median_time_past: median_time_past(&times),
                now,
            };
            match check_header_context(h, &ctx, &self.spec) {
                Ok(()) => {}
                Err(source) if source.is_temporary() => return Ok((i, work)),
                Err(source) => return Err(ChainError::Invalid { hash, source }),
            }
            let target = h.bits.to_target().map_err(|e| ChainError::Invalid { hash, source: e.into() })?;
            work = work.saturating_add(&target.work());
            samples.push(HeaderSample { time: h.time, bits: h.bits });
            if samples.len() > 2 * window {
                samples.drain(..window);
            }
        }
        Ok((headers.len(), work))
    }
}
