//! Header rules: proof of work alone, then against the chain it extends.

use super::BlockError;
use crate::block::{BlockHeader, BLOCK_VERSION};
use crate::pow::CompactTarget;
use crate::spec::ChainSpec;

/// Number of ancestors whose median bounds a new timestamp from below.
pub const MEDIAN_TIME_SPAN: usize = 11;

/// What is checkable with nothing but the spec: the bits decode, are within
/// the limit, the hash meets them, and the version is [`BLOCK_VERSION`]. The
/// cheapest rules, run first.
pub fn check_header(header: &BlockHeader, spec: &ChainSpec) -> Result<(), BlockError> {
    let target = header.bits.to_target()?;
    let limit = spec.pow_limit.to_target()?;
    if target.0 > limit.0 {
        return Err(BlockError::TargetAboveLimit(header.bits));
    }
    let hash = header.hash();
    if !target.is_met_by(&hash) {
        return Err(BlockError::HighHash(hash));
    }
    // After the proof of work, so a verdict naming a specific hash as
    // invalid costs its sender real work.
    if header.version != BLOCK_VERSION {
        return Err(BlockError::BadHeaderVersion { expected: BLOCK_VERSION, found: header.version });
    }
    Ok(())
}

/// What a header is checked against: facts about its parent chain and now.
#[derive(Clone, Copy, Debug)]
pub struct HeaderContext {
    /// Bits the difficulty algorithm demands for this height.
    pub expected_bits: CompactTarget,
    /// Median timestamp of up to the last 11 ancestors.
    pub median_time_past: u64,
    /// Local clock, seconds since the epoch.
    pub now: u64,
}

/// Rules that depend on the parent chain and the local clock.
pub fn check_header_context(header: &BlockHeader, ctx: &HeaderContext, spec: &ChainSpec) -> Result<(), BlockError> {
    if header.bits != ctx.expected_bits {
        return Err(BlockError::BadDifficultyBits { expected: ctx.expected_bits, found: header.bits });
    }
    if header.time <= ctx.median_time_past {
        return Err(BlockError::TimeTooOld { time: header.time, median: ctx.median_time_past });
    }
    let max_allowed = ctx.now.saturating_add(spec.max_future_block_secs);
    if header.time > max_allowed {
        return Err(BlockError::TimeTooFarInFuture { time: header.time, max_allowed });
    }
    Ok(())
}

/// Median of the given timestamps (the last [`MEDIAN_TIME_SPAN`] ancestors;
/// fewer near genesis).
pub fn median_time_past(times: &[u64]) -> u64 {
    if times.is_empty() {
        return 0;
    }
    let start = times.len().saturating_sub(MEDIAN_TIME_SPAN);
    let mut v = times[start..].to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}
