//! Wire forms of compact block relay: the compact block itself (gossiped on
//! `<prefix>/cmpctblock/1`) and the `<prefix>/cmpct/1` request-response
//! messages (`getblocktxn` / `blocktxn`, and the originator's vouch).
//!
//! Everything is decoded from untrusted bytes with counts checked against
//! the bytes present and against the most transactions a block of the
//! spec's size can hold, before anything is allocated.

use super::siphash::siphash24;
use super::CompactError;
use crate::p2p::codec::{read_frame, write_frame};
use futures::{AsyncRead, AsyncWrite};
use libp2p::StreamProtocol;
use lode_core::block::{Block, BlockHeader, HEADER_SIZE};
use lode_core::codec::{put_len, put_u32, put_u64, Decode, DecodeError, Encode, Reader};
use lode_core::tx::MIN_TX_SIZE;
use lode_core::{Hash256, Transaction};
use std::io;

/// Bytes of a short transaction id (BIP152's 6: a collision among a
/// mempool of n transactions and a block of m has odds of about
/// n·m / 2^48, one in ten million blocks for 5,000 × 5,000).
pub const SHORT_ID_BYTES: usize = 6;
const SHORT_ID_MASK: u64 = (1 << (8 * SHORT_ID_BYTES)) - 1;

/// Most transactions a block of `max_block_size` bytes can hold: the bound
/// on every count in these messages.
pub fn max_block_txs(max_block_size: usize) -> usize {
    max_block_size / MIN_TX_SIZE
}

/// The per-block key of short ids: the first two little-endian words of
/// SHA-256(header ‖ nonce). It exists only once the header's proof of work
/// does, so nobody can grind colliding transactions in advance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortIdKey {
    k0: u64,
    k1: u64,
}

impl ShortIdKey {
    /// The key of `header` with the sender's `nonce`.
    pub fn new(header: &BlockHeader, nonce: u64) -> ShortIdKey {
        let mut data = Vec::with_capacity(HEADER_SIZE + 8);
        data.extend_from_slice(&header.to_bytes());
        put_u64(&mut data, nonce);
        let digest = lode_core::hash::sha256(&data);
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&digest[i..i + 8]);
            u64::from_le_bytes(w)
        };
        ShortIdKey { k0: word(0), k1: word(8) }
    }

    /// The short id of `txid`: SipHash-2-4 of its 32 bytes, low 48 bits.
    pub fn short_id(&self, txid: &Hash256) -> u64 {
        siphash24(self.k0, self.k1, &txid.0) & SHORT_ID_MASK
    }
}

/// A transaction sent whole inside a compact block, at its block index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefilledTx {
    /// Position in the block.
    pub index: u32,
    /// The transaction.
    pub tx: Transaction,
}

/// A block as header, short ids and the few transactions sent whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactBlock {
    /// The block header.
    pub header: BlockHeader,
    /// Salt of the short-id key, chosen by whoever encoded the block.
    pub nonce: u64,
    /// Short ids of the transactions not prefilled, in block order.
    pub short_ids: Vec<u64>,
    /// Transactions sent whole (at least the coinbase), by increasing index.
    pub prefilled: Vec<PrefilledTx>,
}

impl CompactBlock {
    /// The compact form of `block`, with only the coinbase prefilled (no
    /// peer can have it: it is new with the block).
    pub fn from_block(block: &Block, nonce: u64) -> CompactBlock {
        let key = ShortIdKey::new(&block.header, nonce);
        let mut prefilled = Vec::new();
        let mut short_ids = Vec::with_capacity(block.transactions.len().saturating_sub(1));
        for (i, tx) in block.transactions.iter().enumerate() {
            if i == 0 {
                prefilled.push(PrefilledTx { index: 0, tx: tx.clone() });
            } else {
                short_ids.push(key.short_id(&tx.txid()));
            }
        }
        CompactBlock { header: block.header, nonce, short_ids, prefilled }
    }

    /// The key of this block's short ids.
    pub fn key(&self) -> ShortIdKey {
        ShortIdKey::new(&self.header, self.nonce)
    }

    /// Transactions in the block.
    pub fn tx_count(&self) -> usize {
        self.short_ids.len() + self.prefilled.len()
    }

    /// The wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        let prefilled: usize = self.prefilled.iter().map(|p| 4 + p.tx.encoded_size()).sum();
        let mut out = Vec::with_capacity(HEADER_SIZE + 16 + self.short_ids.len() * SHORT_ID_BYTES + prefilled);
        self.header.encode_to(&mut out);
        put_u64(&mut out, self.nonce);
        put_len(&mut out, self.short_ids.len());
        for id in &self.short_ids {
            out.extend_from_slice(&id.to_le_bytes()[..SHORT_ID_BYTES]);
        }
        put_len(&mut out, self.prefilled.len());
        for p in &self.prefilled {
            put_u32(&mut out, p.index);
            p.tx.encode_to(&mut out);
        }
        out
    }

    /// Decodes a compact block of a chain whose blocks are at most
    /// `max_block_size` bytes; every byte must be used. Prefilled indexes
    /// must increase and lie inside the block.
    pub fn decode(bytes: &[u8], max_block_size: usize) -> Result<CompactBlock, CompactError> {
        if bytes.len() > max_block_size.saturating_add(HEADER_SIZE + 64) {
            return Err(CompactError::Decode(DecodeError::TooLarge { size: bytes.len(), limit: max_block_size }));
        }
        let mut r = Reader::new(bytes);
        let header = BlockHeader::decode_from(&mut r)?;
        let nonce = r.u64()?;
        let n = r.count("short id", SHORT_ID_BYTES)?;
        let max = max_block_txs(max_block_size);
        if n > max {
            return Err(CompactError::TooManyTransactions { count: n, max });
        }
        let mut short_ids = Vec::with_capacity(n);
        for _ in 0..n {
            let mut w = [0u8; 8];
            w[..SHORT_ID_BYTES].copy_from_slice(r.take(SHORT_ID_BYTES)?);
            short_ids.push(u64::from_le_bytes(w));
        }
        let p = r.count("prefilled transaction", 4 + MIN_TX_SIZE)?;
        let total = n.saturating_add(p);
        if total > max {
            return Err(CompactError::TooManyTransactions { count: total, max });
        }
        if total == 0 {
            return Err(CompactError::Empty);
        }
        let mut prefilled: Vec<PrefilledTx> = Vec::with_capacity(p);
        for _ in 0..p {
            let index = r.u32()?;
            if index as usize >= total {
                return Err(CompactError::PrefilledIndex { index, count: total });
            }
            if prefilled.last().is_some_and(|last| last.index >= index) {
                return Err(CompactError::PrefilledOrder(index));
            }
            prefilled.push(PrefilledTx { index, tx: Transaction::decode_from(&mut r)? });
        }
        r.finish()?;
        Ok(CompactBlock { header, nonce, short_ids, prefilled })
    }
}

const TAG_GET_BLOCK_TXN: u8 = 0;
const TAG_VOUCH: u8 = 1;
const TAG_BLOCK_TXN: u8 = 0;
const TAG_ACK: u8 = 1;

/// A request on `<prefix>/cmpct/1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmpctRequest {
    /// `getblocktxn`: the transactions at these (increasing) indexes of a
    /// block the requester is rebuilding from a compact block.
    GetBlockTxn {
        /// The block.
        hash: Hash256,
        /// Wanted positions, strictly increasing.
        indexes: Vec<u32>,
    },
    /// "I connected these blocks myself before announcing them": the
    /// sender answers for them, so it is penalised if one is invalid (a
    /// forwarder in high-bandwidth mode never sends this).
    Vouch {
        /// The blocks, 1 to [`super::MAX_VOUCH_HASHES`].
        hashes: Vec<Hash256>,
    },
    /// Not sent by peers: what the codec hands up for bytes that do not
    /// decode, so the service can charge the sender.
    Malformed(String),
}

/// A response on `<prefix>/cmpct/1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmpctResponse {
    /// `blocktxn`: the requested transactions, in the order asked (an
    /// empty list when the responder no longer has the block).
    BlockTxn {
        /// The block.
        hash: Hash256,
        /// The transactions.
        txs: Vec<Transaction>,
    },
    /// A vouch was received.
    Ack,
}

impl CmpctRequest {
    /// The encoded body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            CmpctRequest::GetBlockTxn { hash, indexes } => {
                out.push(TAG_GET_BLOCK_TXN);
                out.extend_from_slice(&hash.0);
                put_len(&mut out, indexes.len());
                for i in indexes {
                    put_u32(&mut out, *i);
                }
            }
            CmpctRequest::Vouch { hashes } => {
                out.push(TAG_VOUCH);
                put_len(&mut out, hashes.len());
                for h in hashes {
                    out.extend_from_slice(&h.0);
                }
            }
            CmpctRequest::Malformed(_) => out.push(u8::MAX),
        }
        out
    }

    /// Decodes a body; indexes must increase and number at most what a
    /// block of `max_block_size` holds.
    pub fn decode(bytes: &[u8], max_block_size: usize) -> Result<CmpctRequest, CompactError> {
        let mut r = Reader::new(bytes);
        let req = match r.u8()? {
            TAG_GET_BLOCK_TXN => {
                let hash = Hash256(r.array()?);
                let n = r.count("index", 4)?;
                let max = max_block_txs(max_block_size);
                if n > max {
                    return Err(CompactError::TooManyTransactions { count: n, max });
                }
                let mut indexes: Vec<u32> = Vec::with_capacity(n);
                for _ in 0..n {
                    let i = r.u32()?;
                    if indexes.last().is_some_and(|last| *last >= i) {
                        return Err(CompactError::IndexOrder(i));
                    }
                    indexes.push(i);
                }
                CmpctRequest::GetBlockTxn { hash, indexes }
            }
            TAG_VOUCH => {
                let n = r.count("vouched block", 32)?;
                if n == 0 || n > super::MAX_VOUCH_HASHES {
                    return Err(CompactError::Decode(DecodeError::Invalid("vouch block count")));
                }
                let mut hashes = Vec::with_capacity(n);
                for _ in 0..n {
                    hashes.push(Hash256(r.array()?));
                }
                CmpctRequest::Vouch { hashes }
            }
            _ => return Err(CompactError::Decode(DecodeError::Invalid("compact request tag"))),
        };
        r.finish()?;
        Ok(req)
    }
}

impl CmpctResponse {
    /// The encoded body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            CmpctResponse::BlockTxn { hash, txs } => {
                out.push(TAG_BLOCK_TXN);
                out.extend_from_slice(&hash.0);
                put_len(&mut out, txs.len());
                for tx in txs {
                    tx.encode_to(&mut out);
                }
            }
            CmpctResponse::Ack => out.push(TAG_ACK),
        }
        out
    }

    /// Decodes a body.
    pub fn decode(bytes: &[u8]) -> Result<CmpctResponse, CompactError> {
        let mut r = Reader::new(bytes);
        let resp = match r.u8()? {
            TAG_BLOCK_TXN => {
                let hash = Hash256(r.array()?);
                let n = r.count("transaction", MIN_TX_SIZE)?;
                let mut txs = Vec::with_capacity(n);
                for _ in 0..n {
                    txs.push(Transaction::decode_from(&mut r)?);
                }
                CmpctResponse::BlockTxn { hash, txs }
            }
            TAG_ACK => CmpctResponse::Ack,
            _ => return Err(CompactError::Decode(DecodeError::Invalid("compact response tag"))),
        };
        r.finish()?;
        Ok(resp)
    }
}

/// The `<prefix>/cmpct/1` codec: length-prefixed frames as on the sync
/// protocol, held to limits derived from the block size.
#[derive(Clone, Debug)]
pub struct CmpctCodec {
    max_block_size: usize,
    request_limit: usize,
    response_limit: usize,
}

impl CmpctCodec {
    /// Limits for a chain of `max_block_size` blocks: a request lists at
    /// most every index of a block, a reply carries at most a block.
    pub fn new(max_block_size: usize) -> CmpctCodec {
        CmpctCodec {
            max_block_size,
            request_limit: 1 + 32 + 4 + 4 * max_block_txs(max_block_size),
            response_limit: 1 + 32 + 4 + max_block_size,
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl libp2p::request_response::Codec for CmpctCodec {
    type Protocol = StreamProtocol;
    type Request = CmpctRequest;
    type Response = CmpctResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<CmpctRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_frame(io, self.request_limit).await {
            Ok(frame) => Ok(CmpctRequest::decode(&frame, self.max_block_size)
                .unwrap_or_else(|e| CmpctRequest::Malformed(e.to_string()))),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(CmpctRequest::Malformed(e.to_string())),
            Err(e) => Err(e),
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<CmpctResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = read_frame(io, self.response_limit).await?;
        CmpctResponse::decode(&frame).map_err(invalid)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: CmpctRequest) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req.encode()).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: CmpctResponse) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res.encode()).await
    }
}
