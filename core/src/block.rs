//! Block headers, blocks, merkle roots, and the midstate header hasher the
//! miner's nonce loop runs on.

use crate::codec::{put_len, Decode, DecodeError, Encode, Reader};
use crate::hash::{sha256d, sha256d_parts, Hash256};
use crate::pow::CompactTarget;
use crate::tx::{Transaction, MIN_TX_SIZE};
use serde::{Deserialize, Serialize};
use sha2::digest::generic_array::GenericArray;

/// Encoded header size: version 4, prev 32, merkle 32, time 8, bits 4, nonce 8.
pub const HEADER_SIZE: usize = 88;

/// The only header version a block may carry. A new version would be a
/// consensus change with its own activation, so an unknown one is refused
/// rather than waved through (and the field is no free nonce space).
pub const BLOCK_VERSION: u32 = 1;

/// A block header. Its 88-byte encoding ends with the nonce, so the first
/// 64 bytes hash to a SHA-256 midstate a miner computes once per template.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BlockHeader {
    /// Format version ([`BLOCK_VERSION`]).
    pub version: u32,
    /// Hash of the parent block's header.
    pub prev_hash: Hash256,
    /// Merkle root of the block's transaction ids.
    pub merkle_root: Hash256,
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// The target this block claims to meet.
    pub bits: CompactTarget,
    /// Miner's nonce.
    pub nonce: u64,
}

impl BlockHeader {
    /// The fixed-width encoding.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..4].copy_from_slice(&self.version.to_le_bytes());
        b[4..36].copy_from_slice(&self.prev_hash.0);
        b[36..68].copy_from_slice(&self.merkle_root.0);
        b[68..76].copy_from_slice(&self.time.to_le_bytes());
        b[76..80].copy_from_slice(&self.bits.0.to_le_bytes());
        b[80..88].copy_from_slice(&self.nonce.to_le_bytes());
        b
    }

    /// Decodes the fixed-width encoding.
    pub fn from_bytes(b: &[u8; HEADER_SIZE]) -> BlockHeader {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let h = |i: usize| {
            let mut a = [0u8; 32];
            a.copy_from_slice(&b[i..i + 32]);
            Hash256(a)
        };
        BlockHeader {
            version: u32_at(0),
            prev_hash: h(4),
            merkle_root: h(36),
            time: u64_at(68),
            bits: CompactTarget(u32_at(76)),
            nonce: u64_at(80),
        }
    }

    /// Block hash: double SHA-256 of the header encoding.
    pub fn hash(&self) -> Hash256 {
        sha256d(&self.to_bytes())
    }
}

impl Encode for BlockHeader {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }
}

impl Decode for BlockHeader {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(BlockHeader::from_bytes(&r.array()?))
    }
}

/// A block: a header and its transactions, the coinbase first.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// Transactions; the first is the coinbase.
    pub transactions: Vec<Transaction>,
}

impl Encode for Block {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.header.encode_to(out);
        put_len(out, self.transactions.len());
        for tx in &self.transactions {
            tx.encode_to(out);
        }
    }
}

impl Decode for Block {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let header = BlockHeader::decode_from(r)?;
        let n = r.count("transaction", MIN_TX_SIZE)?;
        let mut transactions = Vec::with_capacity(n);
        for _ in 0..n {
            transactions.push(Transaction::decode_from(r)?);
        }
        Ok(Block { header, transactions })
    }
}

impl Block {
    /// The block hash.
    pub fn hash(&self) -> Hash256 {
        self.header.hash()
    }

    /// Encoded size in bytes.
    pub fn encoded_size(&self) -> usize {
        HEADER_SIZE + 4 + self.transactions.iter().map(Transaction::encoded_size).sum::<usize>()
    }

    /// The merkle root of the transactions and whether the tree is mutated.
    pub fn compute_merkle_root(&self) -> (Hash256, bool) {
        let ids: Vec<Hash256> = self.transactions.iter().map(Transaction::txid).collect();
        merkle_root(&ids)
    }
}

/// Merkle root over `leaves` (Bitcoin's shape: an odd last node is paired
/// with itself). The flag reports the CVE-2012-2459 mutation: two identical
/// siblings anywhere, which lets a different transaction list share the
/// root, so such a block must be rejected rather than marked invalid by root.
pub fn merkle_root(leaves: &[Hash256]) -> (Hash256, bool) {
    if leaves.is_empty() {
        return (Hash256::ZERO, false);
    }
    let mut level: Vec<Hash256> = leaves.to_vec();
    let mut mutated = false;
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            let (a, b) = match pair {
                [a, b] => {
                    if a == b {
                        mutated = true;
                    }
                    (a, b)
                }
                [a] => (a, a),
                _ => unreachable!("chunks(2) yields one or two items"),
            };
            next.push(sha256d_parts(&[&a.0, &b.0]));
        }
        level = next;
    }
    (level[0], mutated)
}

/// SHA-256 initial state.
const SHA256_IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// Hashes one header template for many nonces at two SHA-256 compressions
/// each: the first 64 bytes are compressed once into a midstate.
#[derive(Clone)]
pub struct HeaderHasher {
    midstate: [u32; 8],
    /// The header's last 24 bytes with SHA-256 padding (nonce at 16..24).
    tail: [Block64; 1],
    /// The second SHA-256's only block, padding written once.
    second: [Block64; 1],
}

/// One SHA-256 input block, in the form `compress256` takes without copying.
type Block64 = GenericArray<u8, sha2::digest::consts::U64>;

impl HeaderHasher {
    /// Prepares the midstate for `header` (its nonce is ignored).
    pub fn new(header: &BlockHeader) -> HeaderHasher {
        let bytes = header.to_bytes();
        let mut midstate = SHA256_IV;
        sha2::compress256(&mut midstate, &[*GenericArray::from_slice(&bytes[..64])]);
        let mut tail = Block64::default();
        tail[..24].copy_from_slice(&bytes[64..]);
        tail[24] = 0x80;
        tail[56..].copy_from_slice(&((HEADER_SIZE as u64) * 8).to_be_bytes());
        let mut second = Block64::default();
        second[32] = 0x80;
        second[56..].copy_from_slice(&256u64.to_be_bytes());
        HeaderHasher { midstate, tail: [tail], second: [second] }
    }

    /// The block hash with `nonce` in place.
    #[inline]
    pub fn hash(&mut self, nonce: u64) -> Hash256 {
        self.tail[0][16..24].copy_from_slice(&nonce.to_le_bytes());
        let mut state = self.midstate;
        sha2::compress256(&mut state, &self.tail);
        for (chunk, word) in self.second[0][..32].chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        let mut out = SHA256_IV;
        sha2::compress256(&mut out, &self.second);
        let mut h = [0u8; 32];
        for (chunk, word) in h.chunks_exact_mut(4).zip(out) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        Hash256(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> BlockHeader {
        BlockHeader {
            version: 1,
            prev_hash: Hash256([1; 32]),
            merkle_root: Hash256([2; 32]),
            time: 1_700_000_000,
            bits: CompactTarget(0x207fffff),
            nonce: 42,
        }
    }

    #[test]
    fn midstate_hash_equals_plain_hash() {
        let mut h = header();
        let mut hasher = HeaderHasher::new(&h);
        for nonce in [0u64, 1, 42, u64::MAX, 0xdead_beef_1234] {
            h.nonce = nonce;
            assert_eq!(hasher.hash(nonce), h.hash());
        }
    }

    #[test]
    fn header_layout_puts_nonce_last() {
        let h = header();
        let b = h.to_bytes();
        assert_eq!(&b[0..4], &[1, 0, 0, 0]);
        assert_eq!(&b[4..36], &[1u8; 32]);
        assert_eq!(&b[36..68], &[2u8; 32]);
        assert_eq!(&b[68..76], &1_700_000_000u64.to_le_bytes());
        assert_eq!(&b[76..80], &[0xff, 0xff, 0x7f, 0x20]);
        assert_eq!(&b[80..88], &42u64.to_le_bytes());
        assert_eq!(BlockHeader::from_bytes(&b), h);
    }

    #[test]
    fn merkle_detects_duplicate_siblings() {
        let a = Hash256([1; 32]);
        let b = Hash256([2; 32]);
        let c = Hash256([3; 32]);
        let (root3, m3) = merkle_root(&[a, b, c]);
        let (root4, m4) = merkle_root(&[a, b, c, c]);
        assert_eq!(root3, root4, "the CVE-2012-2459 collision exists");
        assert!(!m3);
        assert!(m4);
        assert_eq!(merkle_root(&[a]).0, a);
    }
}
