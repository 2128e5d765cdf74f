//! How the active chain moved in one call, in bounded memory: a reorg of
//! any depth keeps at most [`MAX_UPDATE_CONNECTED`] connected blocks and
//! [`MAX_READMIT_BYTES`] of disconnected transactions, and says when it
//! dropped some so the mempool is checked against the new tip instead.

use lode_core::validation::BlockError;
use lode_core::{Block, Hash256, Height, Transaction};
use std::collections::VecDeque;
use std::sync::Arc;

/// Bytes of disconnected transactions kept for re-admission after a reorg
/// (Bitcoin Core keeps 20 MB). Past it the blocks nearest the old tip are
/// dropped first: their transactions depend on the deeper ones.
pub const MAX_READMIT_BYTES: usize = 20 << 20;

/// Connected blocks kept for the mempool and announcements; a longer move
/// keeps the newest and sets [`TipUpdate::truncated`].
pub const MAX_UPDATE_CONNECTED: usize = 64;

/// A block a move connected, with what followers of the chain need.
#[derive(Debug)]
pub struct ConnectedBlock {
    block: Arc<Block>,
    height: Height,
    /// Its transactions' ids in block order (the coinbase's first), as
    /// connecting it computed them: each follower hashing every
    /// transaction again cost more than the rest of its work.
    txids: Vec<Hash256>,
}

impl ConnectedBlock {
    /// `block` connected at `height`; `txids` are its transactions' ids in
    /// block order.
    pub(super) fn new(block: Arc<Block>, height: Height, txids: Vec<Hash256>) -> ConnectedBlock {
        debug_assert_eq!(txids.len(), block.transactions.len(), "one id per transaction");
        ConnectedBlock { block, height, txids }
    }

    /// `block` at `height`, its ids computed here (tests).
    #[cfg(test)]
    pub(super) fn hashing(block: Arc<Block>, height: Height) -> ConnectedBlock {
        let txids = block.transactions.iter().map(Transaction::txid).collect();
        ConnectedBlock { block, height, txids }
    }

    /// The block.
    pub fn block(&self) -> &Arc<Block> {
        &self.block
    }

    /// Its height.
    pub fn height(&self) -> Height {
        self.height
    }

    /// Its transactions' ids in block order (the coinbase's first).
    pub fn txids(&self) -> &[Hash256] {
        &self.txids
    }
}

/// How the active chain moved.
#[derive(Debug, Default)]
pub struct TipUpdate {
    /// Connected blocks still on the active chain.
    connected: VecDeque<ConnectedBlock>,
    connected_count: usize,
    /// Disconnected blocks kept, tip first, with their encoded sizes and
    /// heights.
    disconnected: VecDeque<(Arc<Block>, usize, Height)>,
    /// The lowest height disconnected, kept whatever the list dropped: a
    /// merged update's disconnects take everything at or above it off the
    /// chain.
    lowest_disconnected: Option<Height>,
    disconnected_bytes: usize,
    disconnected_count: usize,
    /// Blocks found invalid while connecting, with the rule each broke.
    pub invalid: Vec<(Hash256, BlockError)>,
    truncated: bool,
}

impl TipUpdate {
    /// Whether the tip moved.
    pub fn changed(&self) -> bool {
        self.connected_count > 0 || self.disconnected_count > 0
    }

    /// Whether blocks were disconnected (a reorg, not a plain extension).
    pub fn reorganised(&self) -> bool {
        self.disconnected_count > 0
    }

    /// Whether some connected blocks or disconnected transactions were not
    /// kept: whoever follows the chain must recheck against the new tip.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Connected blocks kept that are still on the active chain, oldest
    /// first: they end at the tip. A block connected and disconnected
    /// again in the same move (a reorg that failed on a later block and
    /// went back) is not among them.
    pub fn connected(&self) -> impl Iterator<Item = &ConnectedBlock> {
        self.connected.iter()
    }

    /// How many blocks were connected in all (including any disconnected
    /// again in the same move).
    pub fn connected_count(&self) -> usize {
        self.connected_count
    }

    /// How many blocks were disconnected in all.
    pub fn disconnected_count(&self) -> usize {
        self.disconnected_count
    }

    /// The disconnected blocks kept, tip first.
    #[cfg(test)]
    pub(super) fn disconnected_blocks(&self) -> impl Iterator<Item = &Arc<Block>> {
        self.disconnected.iter().map(|(b, _, _)| b)
    }

    /// Non-coinbase transactions of the disconnected blocks kept, oldest
    /// block first, to re-admit.
    pub fn disconnected_txs(&self) -> Vec<Transaction> {
        self.disconnected.iter().rev().flat_map(|(b, _, _)| b.transactions.iter().skip(1).cloned()).collect()
    }

    /// Records a connected block.
    pub(super) fn push_connected(&mut self, block: ConnectedBlock) {
        self.connected_count += 1;
        self.connected.push_back(block);
        if self.connected.len() > MAX_UPDATE_CONNECTED {
            self.connected.pop_front();
            self.truncated = true;
        }
    }

    /// Records the block at `height` disconnected (called tip first).
    /// Blocks connected earlier in this move at that height or above leave
    /// the connected list: whoever follows the chain never saw them
    /// confirmed (their transactions are re-offered with the other
    /// disconnected ones).
    pub(super) fn push_disconnected(&mut self, block: Arc<Block>, height: Height) {
        self.forget_connected_from(height);
        self.lowest_disconnected = Some(self.lowest_disconnected.map_or(height, |low| low.min(height)));
        self.disconnected_count += 1;
        let size = block.encoded_size();
        self.disconnected_bytes += size;
        self.disconnected.push_back((block, size, height));
        while self.disconnected_bytes > MAX_READMIT_BYTES {
            let Some((_, s, _)) = self.disconnected.pop_front() else { break };
            self.disconnected_bytes -= s;
            self.truncated = true;
        }
    }

    /// Drops the connected blocks at `height` and above: the chain no
    /// longer holds them. Heights in the list rise to the tip, so they are
    /// the newest.
    fn forget_connected_from(&mut self, height: Height) {
        while self.connected.back().is_some_and(|c| c.height >= height) {
            self.connected.pop_back();
        }
    }

    /// Appends what happened after `self`.
    pub(super) fn merge(&mut self, other: TipUpdate) {
        let dropped_disconnected = other.disconnected_count - other.disconnected.len();
        let dropped_connected = other.connected_count - other.connected.len();
        // By the lowest height, not block by block: `other` may have
        // dropped the disconnected blocks nearest the old tip, which are
        // the ones `self` connected last.
        if let Some(low) = other.lowest_disconnected {
            self.forget_connected_from(low);
        }
        for (b, _, height) in other.disconnected {
            self.push_disconnected(b, height);
        }
        if let Some(low) = other.lowest_disconnected {
            self.lowest_disconnected = Some(self.lowest_disconnected.map_or(low, |l| l.min(low)));
        }
        self.disconnected_count += dropped_disconnected;
        for c in other.connected {
            self.push_connected(c);
        }
        self.connected_count += dropped_connected;
        self.invalid.extend(other.invalid);
        self.truncated |= other.truncated;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_core::block::BlockHeader;
    use lode_core::pow::CompactTarget;
    use lode_core::tx::TxOut;
    use lode_core::{Address, Amount, Height};

    fn block(n: u64, payload: usize) -> Arc<Block> {
        let outputs = (0..payload).map(|_| TxOut { value: Amount::from_units(n), address: Address([7; 20]) }).collect();
        let coinbase = Transaction::coinbase(Height(n as u32 + 1), vec![], outputs);
        let header = BlockHeader {
            version: 1,
            prev_hash: Hash256::ZERO,
            merkle_root: Hash256::ZERO,
            time: 0,
            bits: CompactTarget(0x207fffff),
            nonce: n,
        };
        Arc::new(Block { header, transactions: vec![coinbase.clone(), coinbase] })
    }

    #[test]
    fn a_long_move_keeps_the_newest_connected_blocks_and_says_so() {
        let mut u = TipUpdate::default();
        for n in 0..(MAX_UPDATE_CONNECTED as u64 + 10) {
            u.push_connected(ConnectedBlock::hashing(block(n, 1), Height(n as u32 + 1)));
        }
        assert_eq!(u.connected_count(), MAX_UPDATE_CONNECTED + 10);
        assert_eq!(u.connected().count(), MAX_UPDATE_CONNECTED);
        assert_eq!(u.connected().next().map(|c| (c.height(), c.block().header.nonce)), Some((Height(11), 10)));
        assert!(u.truncated());
        assert!(u.changed() && !u.reorganised());
    }

    #[test]
    fn a_deep_reorg_keeps_readmission_bytes_bounded_deepest_blocks_last_dropped() {
        let mut u = TipUpdate::default();
        let one = block(0, 20_000).encoded_size();
        let n = MAX_READMIT_BYTES / one + 5;
        for i in 0..n as u64 {
            u.push_disconnected(block(i, 20_000), Height(1_000 - i as u32));
        }
        assert_eq!(u.disconnected_count(), n);
        assert!(u.disconnected_bytes <= MAX_READMIT_BYTES);
        assert!(u.truncated());
        // Kept: the deepest (disconnected last), returned oldest first.
        let txs = u.disconnected_txs();
        assert_eq!(txs.first().map(|t| t.outputs[0].value.units()), Some(n as u64 - 1));
        let mut small = TipUpdate::default();
        small.push_disconnected(block(1, 1), Height(5));
        assert!(!small.truncated() && small.reorganised());
    }
}
