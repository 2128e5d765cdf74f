//! Blocks whose parent is unknown, held until it arrives. Bounded by count
//! and bytes; the oldest go first.

use lode_core::{Block, Hash256};
use std::collections::{HashMap, VecDeque};

/// The orphan pool.
pub struct OrphanPool {
    blocks: HashMap<Hash256, (Block, usize)>,
    order: VecDeque<Hash256>,
    bytes: usize,
    max_count: usize,
    max_bytes: usize,
}

impl OrphanPool {
    /// A pool of at most `max_count` blocks and `max_bytes` bytes.
    pub fn new(max_count: usize, max_bytes: usize) -> Self {
        OrphanPool { blocks: HashMap::new(), order: VecDeque::new(), bytes: 0, max_count, max_bytes }
    }

    /// Holds a block, evicting the oldest to stay in bounds.
    pub fn add(&mut self, block: Block) {
        let hash = block.hash();
        if self.blocks.contains_key(&hash) {
            return;
        }
        let size = block.encoded_size();
        if size > self.max_bytes {
            return;
        }
        self.blocks.insert(hash, (block, size));
        self.order.push_back(hash);
        self.bytes += size;
        while self.blocks.len() > self.max_count || self.bytes > self.max_bytes {
            let Some(old) = self.order.pop_front() else { break };
            if let Some((_, s)) = self.blocks.remove(&old) {
                self.bytes -= s;
            }
        }
    }

    /// Removes and returns the orphans whose parent is `parent`.
    pub fn take_children(&mut self, parent: &Hash256) -> Vec<Block> {
        let hashes: Vec<Hash256> =
            self.blocks.iter().filter(|(_, (b, _))| b.header.prev_hash == *parent).map(|(h, _)| *h).collect();
        let mut out = Vec::with_capacity(hashes.len());
        for h in hashes {
            if let Some((b, s)) = self.blocks.remove(&h) {
                self.bytes -= s;
                self.order.retain(|x| *x != h);
                out.push(b);
            }
        }
        out
    }

    /// Whether a block is held.
    pub fn contains(&self, hash: &Hash256) -> bool {
        self.blocks.contains_key(hash)
    }

    /// Number of held blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The root of the orphan chain containing `hash`: the first missing ancestor.
    pub fn missing_root(&self, hash: &Hash256) -> Option<Hash256> {
        let mut cur = self.blocks.get(hash)?.0.header.prev_hash;
        while let Some((b, _)) = self.blocks.get(&cur) {
            cur = b.header.prev_hash;
        }
        Some(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_core::block::BlockHeader;
    use lode_core::pow::CompactTarget;

    fn block(prev: u8, nonce: u64) -> Block {
        Block {
            header: BlockHeader {
                version: 1,
                prev_hash: Hash256([prev; 32]),
                merkle_root: Hash256::ZERO,
                time: 0,
                bits: CompactTarget(0x207fffff),
                nonce,
            },
            transactions: vec![],
        }
    }

    #[test]
    fn bounded_by_count_and_bytes_oldest_first() {
        let mut pool = OrphanPool::new(3, 10_000);
        for n in 0..5 {
            pool.add(block(1, n));
        }
        assert_eq!(pool.len(), 3);
        assert!(!pool.contains(&block(1, 0).hash()));
        assert!(pool.contains(&block(1, 4).hash()));
        let size = block(1, 0).encoded_size();
        let mut small = OrphanPool::new(100, size * 2);
        for n in 0..5 {
            small.add(block(2, n));
        }
        assert_eq!(small.len(), 2);
        assert!(small.bytes() <= size * 2);
    }

    #[test]
    fn children_are_released_when_parent_arrives() {
        let mut pool = OrphanPool::new(10, 100_000);
        pool.add(block(7, 1));
        pool.add(block(7, 2));
        pool.add(block(8, 3));
        assert_eq!(pool.take_children(&Hash256([7; 32])).len(), 2);
        assert_eq!(pool.len(), 1);
    }
}
