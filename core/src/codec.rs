//! Canonical consensus encoding: little-endian fixed-width integers and
//! explicit `u32` length prefixes. Decoding untrusted bytes checks every
//! length against the bytes actually remaining before allocating, and
//! rejects trailing bytes.

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("unexpected end of input: needed {needed} more bytes at offset {offset}")]
    UnexpectedEnd {
        /// Offset where the read started.
        offset: usize,
        /// Bytes the read needed.
        needed: usize,
    },
    /// Bytes were left over after the value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// A length prefix promised more items than the remaining bytes can hold.
    #[error("{what} count {count} exceeds what {remaining} remaining bytes can hold")]
    CountTooLarge {
        /// What was being counted.
        what: &'static str,
        /// The declared count.
        count: u64,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// The input is bigger than the caller's limit.
    #[error("input of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Input size.
        size: usize,
        /// Allowed size.
        limit: usize,
    },
    /// A tag or field held a value that has no meaning.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Types with a canonical consensus encoding.
pub trait Encode {
    /// Appends the encoding to `out`.
    fn encode_to(&self, out: &mut Vec<u8>);

    /// The encoding as a fresh vector.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_to(&mut out);
        out
    }
}

/// Types that decode from their canonical consensus encoding.
pub trait Decode: Sized {
    /// Reads one value from `r`.
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes exactly one value from `bytes` (no trailing bytes), refusing
    /// inputs above `limit` bytes before looking at them.
    fn decode_all(bytes: &[u8], limit: usize) -> Result<Self, DecodeError> {
        if bytes.len() > limit {
            return Err(DecodeError::TooLarge { size: bytes.len(), limit });
        }
        let mut r = Reader::new(bytes);
        let v = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// A cursor over untrusted bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the first byte.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::UnexpectedEnd { offset: self.pos, needed: n });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A `u32` item count, checked against the remaining bytes given the
    /// smallest encoding an item can have, so a forged count cannot make the
    /// decoder allocate more than the input could describe.
    pub fn count(&mut self, what: &'static str, min_item_size: usize) -> Result<usize, DecodeError> {
        let count = self.u32()? as usize;
        let remaining = self.remaining();
        if count.saturating_mul(min_item_size.max(1)) > remaining {
            return Err(DecodeError::CountTooLarge { what, count: count as u64, remaining });
        }
        Ok(count)
    }
}

/// Writes a `u32` little-endian.
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Writes a `u64` little-endian.
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Writes a collection length as the `u32` prefix decoders expect.
pub fn put_len(out: &mut Vec<u8>, len: usize) {
    // Every collection we encode is bounded far below 4 GiB by the block
    // size limit; saturating keeps the encoder total without a panic path.
    put_u32(out, u32::try_from(len).unwrap_or(u32::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_is_bounded_by_remaining_bytes() {
        let mut bytes = u32::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 10]);
        let mut r = Reader::new(&bytes);
        assert!(matches!(r.count("things", 1), Err(DecodeError::CountTooLarge { .. })));
    }

    #[test]
    fn short_reads_fail() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert!(r.u32().is_err());
    }
}
