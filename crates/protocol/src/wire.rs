//! The MQTT data representations (MQTT 5 §1.5): reading them from a complete packet and writing
//! them to an output buffer.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::DecodeError;

/// Decoding result inside the crate.
pub(crate) type Result<T> = std::result::Result<T, DecodeError>;

/// The largest value a Variable Byte Integer can hold (MQTT 5 §1.5.5).
pub const MAX_VARINT: u32 = 268_435_455;

/// The longest UTF-8 string or binary field a two-byte length prefix allows.
const MAX_FIELD_LEN: usize = u16::MAX as usize;

/// A cursor over one packet whose bytes have all arrived. Slices of binary fields and payloads
/// share the packet's `Bytes`, so nothing is copied.
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf[pos..end]` (clamped to the buffer).
    pub(crate) fn new(buf: &'a Bytes, pos: usize, end: usize) -> Reader<'a> {
        let end = end.min(buf.len());
        Reader {
            buf,
            pos: pos.min(end),
            end,
        }
    }

    /// Bytes not yet read.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// Whether every byte has been read.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.end
    }

    /// Fails unless every byte has been read: trailing bytes after the declared fields make the
    /// packet malformed (MQTT 5 §4.13: the remaining length must match the contents).
    pub(crate) fn expect_end(&self, err: &'static str) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::MalformedPacket(err))
        }
    }

    /// The next `n` bytes as a slice.
    #[inline]
    pub(crate) fn take(&mut self, n: usize, err: &'static str) -> Result<&'a [u8]> {
        let buf: &'a [u8] = self.buf;
        let stop = self
            .pos
            .checked_add(n)
            .filter(|&stop| stop <= self.end)
            .ok_or(DecodeError::MalformedPacket(err))?;
        let slice = buf
            .get(self.pos..stop)
            .ok_or(DecodeError::MalformedPacket(err))?;
        self.pos = stop;
        Ok(slice)
    }

    /// One byte.
    #[inline]
    pub(crate) fn u8(&mut self, err: &'static str) -> Result<u8> {
        let byte = *self
            .buf
            .get(self.pos)
            .filter(|_| self.pos < self.end)
            .ok_or(DecodeError::MalformedPacket(err))?;
        self.pos += 1;
        Ok(byte)
    }

    /// A Two Byte Integer (big-endian).
    #[inline]
    pub(crate) fn u16(&mut self, err: &'static str) -> Result<u16> {
        let b = self.take(2, err)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A Four Byte Integer (big-endian).
    #[inline]
    pub(crate) fn u32(&mut self, err: &'static str) -> Result<u32> {
        let b = self.take(4, err)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A Variable Byte Integer: at most four bytes [MQTT-1.5.5-1].
    pub(crate) fn varint(&mut self, err: &'static str) -> Result<u32> {
        let mut value = 0u32;
        for i in 0..4 {
            let byte = self.u8(err)?;
            value |= u32::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::MalformedPacket(
            "variable byte integer longer than four bytes",
        ))
    }

    /// The next `n` bytes as a zero-copy `Bytes`.
    #[inline]
    pub(crate) fn bytes(&mut self, n: usize, err: &'static str) -> Result<Bytes> {
        let start = self.pos;
        self.take(n, err)?;
        Ok(self.buf.slice(start..self.pos))
    }

    /// Binary Data: a two-byte length and that many bytes (zero-copy).
    pub(crate) fn binary(&mut self) -> Result<Bytes> {
        let len = self.u16("truncated binary data length")?;
        self.bytes(
            usize::from(len),
            "binary data longer than the remaining packet",
        )
    }

    /// A UTF-8 Encoded String, borrowed: well-formed UTF-8 (so no surrogates) [MQTT-1.5.4-1] and
    /// no U+0000 [MQTT-1.5.4-2].
    #[inline]
    pub(crate) fn str(&mut self) -> Result<&'a str> {
        let len = self.u16("truncated UTF-8 string length")?;
        let raw = self.take(
            usize::from(len),
            "UTF-8 string longer than the remaining packet",
        )?;
        let s = std::str::from_utf8(raw)
            .map_err(|_| DecodeError::MalformedPacket("string is not valid UTF-8"))?;
        if raw.contains(&0) {
            return Err(DecodeError::MalformedPacket(
                "string contains the null character U+0000",
            ));
        }
        Ok(s)
    }

    /// A UTF-8 Encoded String, owned.
    #[inline]
    pub(crate) fn string(&mut self) -> Result<String> {
        self.str().map(str::to_owned)
    }

    /// How far the reader has got, from the start of the buffer.
    #[inline]
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// A reader over the next `len` bytes, which this reader skips.
    pub(crate) fn sub(&mut self, len: usize, err: &'static str) -> Result<Reader<'a>> {
        let start = self.pos;
        self.take(len, err)?;
        Ok(Reader {
            buf: self.buf,
            pos: start,
            end: self.pos,
        })
    }
}

/// The number of bytes `value` takes as a Variable Byte Integer.
#[inline]
pub(crate) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        2_097_152..=268_435_455 => 4,
        // Not representable; the writer still emits every 7-bit group rather than panic.
        _ => {
            let mut n = 5;
            let mut v = value >> 35;
            while v > 0 {
                n += 1;
                v >>= 7;
            }
            n
        }
    }
}

/// Appends a Variable Byte Integer.
#[inline]
pub(crate) fn put_varint(out: &mut BytesMut, mut value: usize) {
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

/// The part of `s` a two-byte length can carry. Packets built by the broker come from decoded
/// (hence short enough) fields; for anything longer, truncating at a character boundary keeps the
/// output a valid packet instead of panicking.
#[inline]
pub(crate) fn wire_str(s: &str) -> &str {
    if s.len() <= MAX_FIELD_LEN {
        s
    } else {
        let end = s.floor_char_boundary(MAX_FIELD_LEN);
        s.get(..end).unwrap_or_default()
    }
}

/// The part of `b` a two-byte length can carry (see [`wire_str`]).
#[inline]
pub(crate) fn wire_bin(b: &[u8]) -> &[u8] {
    &b[..b.len().min(MAX_FIELD_LEN)]
}

/// The encoded size of a UTF-8 string field.
#[inline]
pub(crate) fn str_len(s: &str) -> usize {
    2 + wire_str(s).len()
}

/// The encoded size of a binary field.
#[inline]
pub(crate) fn bin_len(b: &[u8]) -> usize {
    2 + wire_bin(b).len()
}

/// Appends a UTF-8 string field.
#[inline]
pub(crate) fn put_str(out: &mut BytesMut, s: &str) {
    put_bin(out, wire_str(s).as_bytes());
}

/// Appends a binary field.
#[inline]
pub(crate) fn put_bin(out: &mut BytesMut, b: &[u8]) {
    let b = wire_bin(b);
    // wire_bin bounds the length to u16::MAX.
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_varint(bytes: &[u8]) -> Result<u32> {
        let buf = Bytes::copy_from_slice(bytes);
        Reader::new(&buf, 0, buf.len()).varint("truncated")
    }

    #[test]
    fn varint_boundaries_match_the_spec_table() {
        // MQTT 5 §1.5.5 table 1-1.
        for (value, len) in [
            (0usize, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (2_097_151, 3),
            (2_097_152, 4),
            (268_435_455, 4),
        ] {
            let mut out = BytesMut::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), len, "{value}");
            assert_eq!(varint_len(value), len, "{value}");
            assert_eq!(read_varint(&out), Ok(value as u32));
        }
        let mut out = BytesMut::new();
        put_varint(&mut out, 268_435_456);
        assert_eq!(out.len(), varint_len(268_435_456));
    }

    #[test]
    fn varint_rejects_a_fifth_byte_and_truncation() {
        assert_eq!(
            read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            Err(DecodeError::MalformedPacket(
                "variable byte integer longer than four bytes"
            ))
        );
        assert_eq!(
            read_varint(&[0x80]),
            Err(DecodeError::MalformedPacket("truncated"))
        );
    }

    #[test]
    fn strings_reject_bad_utf8_and_nul() {
        let read = |bytes: &[u8]| {
            let buf = Bytes::copy_from_slice(bytes);
            Reader::new(&buf, 0, buf.len()).string()
        };
        assert_eq!(read(&[0, 2, b'h', b'i']), Ok("hi".to_owned()));
        // An encoded surrogate (U+D800) is not UTF-8 [MQTT-1.5.4-1].
        assert!(read(&[0, 3, 0xED, 0xA0, 0x80]).is_err());
        assert!(read(&[0, 1, 0]).is_err());
        assert!(read(&[0, 3, b'a']).is_err());
    }

    #[test]
    fn over_long_strings_are_truncated_on_a_char_boundary() {
        let s = "é".repeat(40_000);
        let w = wire_str(&s);
        assert!(w.len() <= 65_535 && s.is_char_boundary(w.len()));
        assert_eq!(str_len(&s), 2 + w.len());
    }
}
