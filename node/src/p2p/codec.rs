//! The sync protocol's messages and their bounded wire encoding.
//!
//! Every frame is a little-endian `u32` length followed by that many bytes;
//! the length is checked against a per-direction limit before anything is
//! allocated, and the body is decoded with `lode_core::codec`, which checks
//! every count against the bytes actually present. Blocks inside a reply
//! carry their own length so each one is held to the spec's block size.
//! Decoding failures surface as `io::ErrorKind::InvalidData`, which the
//! service treats as misbehaviour (a reset connection is not).

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use lode_core::block::{Block, BlockHeader, HEADER_SIZE};
use lode_core::codec::{put_len, put_u32, Decode, DecodeError, Encode, Reader};
use lode_core::pow::Work;
use lode_core::Hash256;
use std::io;

/// Most headers in one reply (and asked for in one request).
pub const MAX_HEADERS: usize = 2000;
/// Most hashes in a block locator.
pub const MAX_LOCATOR: usize = 128;
/// Most block hashes in one `GetBlocks` request.
pub const MAX_BLOCKS_PER_REQUEST: usize = 128;
/// Largest request frame: a full locator or block list fits with room.
pub const REQUEST_LIMIT: usize = 16 * 1024;

/// Bytes of blocks we put in one `GetBlocks` reply (at least one block):
/// a peer asking for 128 large blocks gets the first few MB and asks again
/// for the rest, so one request never pins more than this in our memory.
pub const BLOCK_REPLY_BUDGET: usize = 4 * 1024 * 1024;
/// Room for gossipsub's protobuf framing (field tags, lengths, the topic
/// name) around a payload.
const GOSSIP_FRAMING: usize = 1024;
/// How far above the largest topic limit a gossip frame may be and still
/// be read, so that gossipsub sees the oversized message, reports it and
/// its sender is scored. Larger frames are cut off by gossipsub's codec
/// before they are read, and no event tells us who sent them.
const GOSSIP_OVERSIZE_WINDOW: usize = 1024 * 1024;

/// Bytes of blocks we serve in one `GetBlocks` reply for a chain whose
/// blocks are at most `max_block_size`.
pub fn block_reply_budget(max_block_size: usize) -> usize {
    BLOCK_REPLY_BUDGET.max(max_block_size)
}

/// The largest transaction relayed: the mempool policy's limit (every
/// node runs the default policy; a larger one could not be relayed).
pub fn max_tx_size() -> usize {
    crate::mempool::MempoolPolicy::default().max_tx_size
}

/// Gossipsub size limits of one chain, in bytes of a protobuf message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GossipLimits {
    /// Largest frame gossipsub reads at all.
    pub frame: usize,
    /// Largest message on the block topic.
    pub block: usize,
    /// Largest message on the transaction topic.
    pub tx: usize,
}

/// Limits for a chain with `max_block_size` blocks. Each topic admits its
/// payload limit plus framing; the frame limit sits well above both so
/// that an oversized message is decoded by gossipsub and reported as
/// invalid (which peer scoring charges to its sender) rather than dropped
/// unseen with the stream.
pub fn gossip_limits(max_block_size: usize) -> GossipLimits {
    let block = max_block_size.saturating_add(GOSSIP_FRAMING);
    let tx = max_tx_size().min(max_block_size).saturating_add(GOSSIP_FRAMING);
    GossipLimits { frame: block.max(tx).saturating_add(GOSSIP_OVERSIZE_WINDOW), block, tx }
}

const TAG_STATUS: u8 = 0;
const TAG_GET_HEADERS: u8 = 1;
const TAG_GET_BLOCKS: u8 = 2;
const TAG_HEADERS: u8 = 1;
const TAG_BLOCKS: u8 = 2;

/// A node's view of its chain, exchanged on connect and periodically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Genesis hash: peers on another chain are dropped.
    pub genesis: Hash256,
    /// Active tip hash.
    pub best_hash: Hash256,
    /// Active tip height.
    pub height: u32,
    /// Cumulative work of the active tip.
    pub chainwork: Work,
    /// UTXO commitment at the active tip.
    pub utxo_commitment: Hash256,
}

/// A sync request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// "Here is my status, send yours."
    Status(Status),
    /// Headers of the responder's best chain after the first locator hash it knows.
    GetHeaders {
        /// Dense near the requester's tip, sparse further back.
        locator: Vec<Hash256>,
    },
    /// Block bodies by hash (the responder may return fewer).
    GetBlocks {
        /// Wanted blocks, in chain order.
        hashes: Vec<Hash256>,
    },
    /// Not a message peers send: what the codec hands up for bytes that do
    /// not decode or a frame above the limit. libp2p drops inbound read
    /// errors silently, so the service could not punish them otherwise.
    Malformed(String),
}

/// A sync response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The responder's status.
    Status(Status),
    /// At most [`MAX_HEADERS`] headers, each the parent of the next.
    Headers(Vec<BlockHeader>),
    /// The requested blocks the responder has, within its byte budget.
    Blocks(Vec<Block>),
}

fn put_hash(out: &mut Vec<u8>, h: &Hash256) {
    out.extend_from_slice(&h.0);
}

fn get_hash(r: &mut Reader<'_>) -> Result<Hash256, DecodeError> {
    Ok(Hash256(r.array()?))
}

fn put_hashes(out: &mut Vec<u8>, hashes: &[Hash256]) {
    put_len(out, hashes.len());
    for h in hashes {
        put_hash(out, h);
    }
}

fn get_hashes(r: &mut Reader<'_>, max: usize) -> Result<Vec<Hash256>, DecodeError> {
    let n = r.count("hash", 32)?;
    if n > max {
        return Err(DecodeError::Invalid("too many hashes"));
    }
    (0..n).map(|_| get_hash(r)).collect()
}

impl Status {
    fn encode_to(&self, out: &mut Vec<u8>) {
        put_hash(out, &self.genesis);
        put_hash(out, &self.best_hash);
        put_u32(out, self.height);
        out.extend_from_slice(&self.chainwork.to_be_bytes());
        put_hash(out, &self.utxo_commitment);
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Status, DecodeError> {
        Ok(Status {
            genesis: get_hash(r)?,
            best_hash: get_hash(r)?,
            height: r.u32()?,
            chainwork: Work::from_be_bytes(r.array()?),
            utxo_commitment: get_hash(r)?,
        })
    }
}

impl Request {
    /// The encoded body (without the length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Request::Status(s) => {
                out.push(TAG_STATUS);
                s.encode_to(&mut out);
            }
            Request::GetHeaders { locator } => {
                out.push(TAG_GET_HEADERS);
                put_hashes(&mut out, locator);
            }
            Request::GetBlocks { hashes } => {
                out.push(TAG_GET_BLOCKS);
                put_hashes(&mut out, hashes);
            }
            // An unknown tag: the receiver refuses it as it should.
            Request::Malformed(_) => out.push(u8::MAX),
        }
        out
    }

    /// Decodes a body; every byte must be used.
    pub fn decode(bytes: &[u8]) -> Result<Request, DecodeError> {
        let mut r = Reader::new(bytes);
        let req = match r.u8()? {
            TAG_STATUS => Request::Status(Status::decode_from(&mut r)?),
            TAG_GET_HEADERS => Request::GetHeaders { locator: get_hashes(&mut r, MAX_LOCATOR)? },
            TAG_GET_BLOCKS => Request::GetBlocks { hashes: get_hashes(&mut r, MAX_BLOCKS_PER_REQUEST)? },
            _ => return Err(DecodeError::Invalid("request tag")),
        };
        r.finish()?;
        Ok(req)
    }
}

impl Response {
    /// The encoded body (without the length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Response::Status(s) => {
                out.push(TAG_STATUS);
                s.encode_to(&mut out);
            }
            Response::Headers(headers) => {
                out.push(TAG_HEADERS);
                put_len(&mut out, headers.len());
                for h in headers {
                    h.encode_to(&mut out);
                }
            }
            Response::Blocks(blocks) => {
                out.push(TAG_BLOCKS);
                put_len(&mut out, blocks.len());
                for b in blocks {
                    let bytes = b.encode();
                    put_len(&mut out, bytes.len());
                    out.extend_from_slice(&bytes);
                }
            }
        }
        out
    }

    /// Decodes a body, holding each block to `max_block_size`.
    pub fn decode(bytes: &[u8], max_block_size: usize) -> Result<Response, DecodeError> {
        let mut r = Reader::new(bytes);
        let resp = match r.u8()? {
            TAG_STATUS => Response::Status(Status::decode_from(&mut r)?),
            TAG_HEADERS => {
                let n = r.count("header", HEADER_SIZE)?;
                if n > MAX_HEADERS {
                    return Err(DecodeError::Invalid("too many headers"));
                }
                let mut headers = Vec::with_capacity(n);
                for _ in 0..n {
                    headers.push(BlockHeader::decode_from(&mut r)?);
                }
                Response::Headers(headers)
            }
            TAG_BLOCKS => {
                let n = r.count("block", 4 + HEADER_SIZE)?;
                if n > MAX_BLOCKS_PER_REQUEST {
                    return Err(DecodeError::Invalid("too many blocks"));
                }
                let mut blocks = Vec::with_capacity(n);
                for _ in 0..n {
                    let len = r.u32()? as usize;
                    let body = r.take(len)?;
                    blocks.push(Block::decode_all(body, max_block_size)?);
                }
                Response::Blocks(blocks)
            }
            _ => return Err(DecodeError::Invalid("response tag")),
        };
        r.finish()?;
        Ok(resp)
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Reads one length-prefixed frame of at most `limit` bytes.
pub async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, limit: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(invalid(format!("frame of {len} bytes exceeds the limit of {limit}")));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Writes one length-prefixed frame.
pub async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| invalid("frame too large"))?;
    io.write_all(&len.to_le_bytes()).await?;
    io.write_all(body).await?;
    io.flush().await
}

/// The request-response codec with this chain's limits.
#[derive(Clone, Debug)]
pub struct SyncCodec {
    /// Largest response frame accepted.
    pub response_limit: usize,
    /// Largest block accepted inside a reply.
    pub max_block_size: usize,
}

impl SyncCodec {
    /// Limits derived from the spec's block size: a reply carries at most
    /// `block_reply_budget` bytes of blocks (at least one maximal block).
    pub fn new(max_block_size: usize, block_reply_budget: usize) -> SyncCodec {
        let headers = 1 + 4 + MAX_HEADERS * HEADER_SIZE;
        let blocks = 1 + 4 + block_reply_budget.max(max_block_size) + MAX_BLOCKS_PER_REQUEST * 4;
        SyncCodec { response_limit: headers.max(blocks), max_block_size }
    }
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_frame(io, REQUEST_LIMIT).await {
            Ok(frame) => Ok(Request::decode(&frame).unwrap_or_else(|e| Request::Malformed(e.to_string()))),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(Request::Malformed(e.to_string())),
            Err(e) => Err(e),
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = read_frame(io, self.response_limit).await?;
        Response::decode(&frame, self.max_block_size).map_err(invalid)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Request) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req.encode()).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: Response) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res.encode()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_core::ChainSpec;

    fn status() -> Status {
        Status {
            genesis: Hash256([1; 32]),
            best_hash: Hash256([2; 32]),
            height: 7,
            chainwork: Work::from_be_bytes([3; 32]),
            utxo_commitment: Hash256([4; 32]),
        }
    }

    #[test]
    fn messages_round_trip() {
        let spec = ChainSpec::regtest();
        let genesis = spec.genesis_block();
        for req in [
            Request::Status(status()),
            Request::GetHeaders { locator: vec![Hash256([9; 32]); 3] },
            Request::GetBlocks { hashes: vec![] },
        ] {
            assert_eq!(Request::decode(&req.encode()).unwrap(), req);
        }
        for resp in [
            Response::Status(status()),
            Response::Headers(vec![genesis.header; 5]),
            Response::Blocks(vec![genesis.clone(), genesis.clone()]),
        ] {
            assert_eq!(Response::decode(&resp.encode(), spec.max_block_size).unwrap(), resp);
        }
    }

    #[test]
    fn garbage_and_overlong_lists_are_refused() {
        assert!(Request::decode(&[]).is_err());
        assert!(Request::decode(&[42]).is_err());
        let mut too_many = vec![TAG_GET_BLOCKS];
        put_hashes(&mut too_many, &vec![Hash256::ZERO; MAX_BLOCKS_PER_REQUEST + 1]);
        assert!(Request::decode(&too_many).is_err());
        // A count promising more headers than the bytes hold fails before allocating.
        let mut forged = vec![TAG_HEADERS];
        put_u32(&mut forged, u32::MAX);
        assert!(Response::decode(&forged, 1000).is_err());
        // Trailing bytes are refused.
        let mut trailing = Request::Status(status()).encode();
        trailing.push(0);
        assert!(Request::decode(&trailing).is_err());
    }

    #[test]
    fn blocks_above_the_size_limit_are_refused() {
        let spec = ChainSpec::regtest();
        let resp = Response::Blocks(vec![spec.genesis_block()]);
        let bytes = resp.encode();
        assert!(Response::decode(&bytes, 10).is_err());
    }

    #[test]
    fn undecodable_requests_reach_the_service_as_malformed() {
        use libp2p::request_response::Codec;
        futures::executor::block_on(async {
            let mut codec = SyncCodec::new(1000, 1000);
            let proto = StreamProtocol::new("/t/1");
            let mut garbage = Vec::new();
            write_frame(&mut garbage, &[9, 9]).await.unwrap();
            let req = codec.read_request(&proto, &mut &garbage[..]).await.unwrap();
            assert!(matches!(req, Request::Malformed(_)));
            let oversized = u32::MAX.to_le_bytes();
            let req = codec.read_request(&proto, &mut &oversized[..]).await.unwrap();
            assert!(matches!(req, Request::Malformed(_)));
            // A stream cut short is a network problem, not misbehaviour.
            assert!(codec.read_request(&proto, &mut &[1u8][..]).await.is_err());
        });
    }

    #[test]
    fn frames_above_the_limit_are_refused_before_reading() {
        futures::executor::block_on(async {
            let mut buf = Vec::new();
            write_frame(&mut buf, &[0u8; 100]).await.unwrap();
            let err = read_frame(&mut &buf[..], 50).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert_eq!(read_frame(&mut &buf[..], 100).await.unwrap().len(), 100);
        });
    }
}
