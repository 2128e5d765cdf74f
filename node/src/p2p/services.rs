//! The service advertisement protocol (`<prefix>/services/1`): which block
//! bodies a peer keeps, so sync asks pruned peers only for what they have.
//!
//! It is its own protocol rather than a field of the sync status so that
//! peers which do not speak it (older nodes, other implementations, whose
//! status decoders refuse trailing bytes) simply fail to negotiate it and
//! are treated as able to serve every body, as they were before pruning.
//!
//! Request frame: one byte, [`QUERY`]. Response frame: five bytes, a flags
//! byte (bit 0: archive; the other bits must be zero) and the lowest height
//! whose body the peer stores, u32 little-endian. Anything else is refused.

use super::codec::{read_frame, write_frame};
use futures::{AsyncRead, AsyncWrite};
use libp2p::StreamProtocol;
use std::io;

/// The only request: "which bodies do you serve?".
pub const QUERY: u8 = 1;
/// Bit of the flags byte saying the peer keeps every body.
const ARCHIVE_FLAG: u8 = 1;
/// Encoded size of a response.
const RESPONSE_SIZE: usize = 5;

/// What a peer says it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Services {
    /// It keeps every block body (it does not prune).
    pub archive: bool,
    /// The lowest height whose body it stores.
    pub lowest_height: u32,
}

/// A decoded request: the query, or what was wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServicesRequest {
    /// "Which bodies do you serve?"
    Query,
    /// Not a valid request (the peer is penalised, the stream refused).
    Malformed(String),
}

impl Services {
    /// The five-byte response frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RESPONSE_SIZE);
        out.push(if self.archive { ARCHIVE_FLAG } else { 0 });
        out.extend_from_slice(&self.lowest_height.to_le_bytes());
        out
    }

    /// Decodes a response frame; one encoding per value.
    pub fn decode(frame: &[u8]) -> Result<Services, String> {
        let [flags, a, b, c, d] = frame else {
            return Err(format!("services reply of {} bytes, expected {RESPONSE_SIZE}", frame.len()));
        };
        if flags & !ARCHIVE_FLAG != 0 {
            return Err(format!("unknown service flags {flags:#04x}"));
        }
        let archive = flags & ARCHIVE_FLAG != 0;
        let lowest_height = u32::from_le_bytes([*a, *b, *c, *d]);
        if archive && lowest_height != 0 {
            // An archive node has every body: a horizon would contradict it.
            return Err(format!("an archive node advertising lowest height {lowest_height}"));
        }
        Ok(Services { archive, lowest_height })
    }
}

impl ServicesRequest {
    fn decode(frame: &[u8]) -> ServicesRequest {
        match frame {
            [QUERY] => ServicesRequest::Query,
            _ => ServicesRequest::Malformed(format!("services request of {} bytes", frame.len())),
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// The services request-response codec (frames of a few bytes).
#[derive(Clone, Copy, Debug, Default)]
pub struct ServicesCodec;

impl libp2p::request_response::Codec for ServicesCodec {
    type Protocol = StreamProtocol;
    type Request = ServicesRequest;
    type Response = Services;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<ServicesRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_frame(io, 1).await {
            Ok(frame) => Ok(ServicesRequest::decode(&frame)),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(ServicesRequest::Malformed(e.to_string())),
            Err(e) => Err(e),
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Services>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = read_frame(io, RESPONSE_SIZE).await?;
        Services::decode(&frame).map_err(invalid)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: ServicesRequest) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            ServicesRequest::Query => write_frame(io, &[QUERY]).await,
            ServicesRequest::Malformed(why) => Err(invalid(format!("not sending a malformed request: {why}"))),
        }
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: Services) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res.encode()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_round_trip_and_have_one_encoding() {
        for s in [
            Services { archive: true, lowest_height: 0 },
            Services { archive: false, lowest_height: 0 },
            Services { archive: false, lowest_height: 1_713 },
            Services { archive: false, lowest_height: u32::MAX },
        ] {
            let bytes = s.encode();
            assert_eq!(bytes.len(), RESPONSE_SIZE);
            assert_eq!(Services::decode(&bytes), Ok(s));
        }
        // The documented layout: flags, then the height little-endian.
        assert_eq!(Services { archive: false, lowest_height: 0x0102_0304 }.encode(), vec![0, 4, 3, 2, 1]);
        assert_eq!(Services { archive: true, lowest_height: 0 }.encode(), vec![1, 0, 0, 0, 0]);
    }

    #[test]
    fn malformed_responses_and_requests_are_refused() {
        assert!(Services::decode(&[]).is_err());
        assert!(Services::decode(&[0, 0, 0, 0]).is_err(), "short");
        assert!(Services::decode(&[0, 0, 0, 0, 0, 0]).is_err(), "trailing byte");
        assert!(Services::decode(&[2, 0, 0, 0, 0]).is_err(), "unknown flag");
        assert!(Services::decode(&[1, 5, 0, 0, 0]).is_err(), "archive with a horizon");
        assert_eq!(ServicesRequest::decode(&[QUERY]), ServicesRequest::Query);
        assert!(matches!(ServicesRequest::decode(&[]), ServicesRequest::Malformed(_)));
        assert!(matches!(ServicesRequest::decode(&[2]), ServicesRequest::Malformed(_)));
    }
}
