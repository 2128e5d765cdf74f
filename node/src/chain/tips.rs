//! The tips of every known branch, as Bitcoin Core's `getchaintips` shows
//! them: how far each got in validation and how far it forks from ours.

use super::Chain;
use crate::store::BlockStatus;
use lode_core::{Hash256, Height};

/// How far a branch's tip has been validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TipStatus {
    /// The active chain's tip.
    Active,
    /// Fully validated once, not on the active chain.
    ValidFork,
    /// Every body stored, not all of them connected yet.
    ValidHeaders,
    /// Some bodies of the branch are missing.
    HeadersOnly,
    /// The tip or an ancestor breaks a rule.
    Invalid,
}

impl TipStatus {
    /// The name `getchaintips` uses.
    pub fn name(self) -> &'static str {
        match self {
            TipStatus::Active => "active",
            TipStatus::ValidFork => "valid-fork",
            TipStatus::ValidHeaders => "valid-headers",
            TipStatus::HeadersOnly => "headers-only",
            TipStatus::Invalid => "invalid",
        }
    }
}

/// One branch tip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainTip {
    /// Tip hash.
    pub hash: Hash256,
    /// Tip height.
    pub height: Height,
    /// Blocks from the tip down to the active chain (0 for the active tip).
    pub branch_len: u32,
    /// Validation state.
    pub status: TipStatus,
}

impl Chain {
    /// Every header without children, and the active tip, highest first.
    pub fn chain_tips(&self) -> Vec<ChainTip> {
        let tip = self.state.tip;
        let mut out: Vec<ChainTip> = self
            .index
            .leaves()
            .filter(|h| *h != tip)
            .filter_map(|hash| {
                let e = self.index.get(&hash)?;
                let status = match e.status {
                    BlockStatus::Invalid => TipStatus::Invalid,
                    _ if !e.chain_data => TipStatus::HeadersOnly,
                    BlockStatus::Valid => TipStatus::ValidFork,
                    _ => TipStatus::ValidHeaders,
                };
                let fork = self.fork_height(&hash);
                Some(ChainTip { hash, height: e.height, branch_len: e.height.0.saturating_sub(fork.0), status })
            })
            .collect();
        out.push(ChainTip { hash: tip, height: self.state.height, branch_len: 0, status: TipStatus::Active });
        out.sort_by(|a, b| b.height.cmp(&a.height).then(a.hash.cmp(&b.hash)));
        out
    }

    /// Height of the last active block in `hash`'s ancestry.
    fn fork_height(&self, hash: &Hash256) -> Height {
        let mut cur = *hash;
        while let Some(e) = self.index.get(&cur) {
            if self.is_active(&cur) || e.height.0 == 0 {
                return e.height;
            }
            cur = e.header.prev_hash;
        }
        Height::GENESIS
    }
}
