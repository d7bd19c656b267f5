//! Jute, ZooKeeper's wire encoding: big-endian integers, length-prefixed buffers and strings
//! (length -1 for null), vectors as a count then the items, and the 4-byte length prefix that
//! frames every packet. Pure: bytes in, values out. A partial frame is "need more bytes", not an
//! error.

use thiserror::Error;

/// A record could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record ends early: wanted {wanted} more bytes at offset {offset}")]
    Truncated { offset: usize, wanted: usize },
    #[error("negative or oversized length {length} at offset {offset}")]
    BadLength { offset: usize, length: i32 },
    #[error("string at offset {offset} is not UTF-8")]
    NotUtf8 { offset: usize },
    #[error("boolean at offset {offset} is {value}, neither 0 nor 1")]
    BadBool { offset: usize, value: u8 },
}

/// The frame on the wire cannot be accepted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame length {length} is negative")]
    Negative { length: i32 },
    #[error("frame length {length} exceeds the maximum of {max_bytes} bytes (jute.maxbuffer)")]
    TooLarge { length: i32, max_bytes: usize },
}

/// Looks for one whole frame at the start of `buffer`: `Ok(Some(len))` means the payload is
/// `buffer[4..4 + len]`, `Ok(None)` means more bytes are needed.
pub fn frame_length(buffer: &[u8], max_bytes: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buffer.get(..4) else {
        return Ok(None);
    };
    let length = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if length < 0 {
        return Err(FrameError::Negative { length });
    }
    let payload_bytes = length as usize;
    if payload_bytes > max_bytes {
        return Err(FrameError::TooLarge { length, max_bytes });
    }
    if buffer.len() < 4 + payload_bytes {
        return Ok(None);
    }
    Ok(Some(payload_bytes))
}

/// Reads jute primitives from a byte slice, front to back.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, offset: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.offset.checked_add(count);
        match end.and_then(|end| self.bytes.get(self.offset..end)) {
            Some(slice) => {
                self.offset += count;
                Ok(slice)
            }
            None => Err(DecodeError::Truncated {
                offset: self.offset,
                wanted: count - self.remaining().min(count),
            }),
        }
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        let bytes = self.take(4)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(i64::from_be_bytes(array))
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        let offset = self.offset;
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::BadBool { offset, value }),
        }
    }

    /// A length-prefixed buffer; a null buffer (length -1) reads as empty.
    pub fn buffer(&mut self) -> Result<&'a [u8], DecodeError> {
        let offset = self.offset;
        let length = self.i32()?;
        if length == -1 {
            return Ok(&[]);
        }
        if length < 0 || length as usize > self.remaining() {
            return Err(DecodeError::BadLength { offset, length });
        }
        self.take(length as usize)
    }

    /// A length-prefixed UTF-8 string; null reads as empty.
    pub fn string(&mut self) -> Result<&'a str, DecodeError> {
        let offset = self.offset;
        let bytes = self.buffer()?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8 { offset })
    }

    /// A vector count; null (-1) reads as zero. Checked against the bytes left, assuming each
    /// item takes at least `min_item_bytes`, so a lying count cannot make us allocate.
    pub fn count(&mut self, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let offset = self.offset;
        let count = self.i32()?;
        if count == -1 {
            return Ok(0);
        }
        if count < 0 || (count as usize).saturating_mul(min_item_bytes.max(1)) > self.remaining() {
            return Err(DecodeError::BadLength {
                offset,
                length: count,
            });
        }
        Ok(count as usize)
    }

    /// A vector of strings.
    pub fn strings(&mut self) -> Result<Vec<String>, DecodeError> {
        let count = self.count(4)?;
        (0..count)
            .map(|_| self.string().map(str::to_string))
            .collect()
    }
}

/// Appends jute primitives to a growing buffer.
#[derive(Debug, Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    /// A writer that reserves the 4-byte frame length, filled in by [`Writer::into_frame`].
    pub fn framed() -> Self {
        Writer { bytes: vec![0; 4] }
    }

    pub fn i32(&mut self, value: i32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn bool(&mut self, value: bool) -> &mut Self {
        self.bytes.push(u8::from(value));
        self
    }

    pub fn buffer(&mut self, value: &[u8]) -> &mut Self {
        self.i32(value.len() as i32);
        self.bytes.extend_from_slice(value);
        self
    }

    pub fn string(&mut self, value: &str) -> &mut Self {
        self.buffer(value.as_bytes())
    }

    pub fn strings<S: AsRef<str>>(&mut self, values: &[S]) -> &mut Self {
        self.i32(values.len() as i32);
        for value in values {
            self.string(value.as_ref());
        }
        self
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The bytes of a [`Writer::framed`] writer with the length prefix filled in.
    pub fn into_frame(mut self) -> Vec<u8> {
        let payload_bytes = (self.bytes.len() - 4) as i32;
        self.bytes[..4].copy_from_slice(&payload_bytes.to_be_bytes());
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip() {
        let mut writer = Writer::new();
        writer
            .i32(-7)
            .i64(1 << 40)
            .bool(true)
            .buffer(b"data")
            .string("/path")
            .strings(&["a", "b"]);
        let bytes = writer.into_bytes();
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.i32(), Ok(-7));
        assert_eq!(reader.i64(), Ok(1 << 40));
        assert_eq!(reader.bool(), Ok(true));
        assert_eq!(reader.buffer(), Ok(&b"data"[..]));
        assert_eq!(reader.string(), Ok("/path"));
        assert_eq!(reader.strings(), Ok(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(reader.remaining(), 0);
    }

    #[test]
    fn null_buffer_reads_as_empty() {
        let mut writer = Writer::new();
        writer.i32(-1);
        let bytes = writer.into_bytes();
        assert_eq!(Reader::new(&bytes).buffer(), Ok(&b""[..]));
    }

    #[test]
    fn short_input_is_truncated_not_a_panic() {
        let mut reader = Reader::new(&[0, 0, 0]);
        assert!(matches!(reader.i32(), Err(DecodeError::Truncated { .. })));
        let mut writer = Writer::new();
        writer.i32(100).i32(1);
        let bytes = writer.into_bytes();
        assert!(matches!(
            Reader::new(&bytes).buffer(),
            Err(DecodeError::BadLength { length: 100, .. })
        ));
    }

    #[test]
    fn lying_vector_count_is_rejected() {
        let mut writer = Writer::new();
        writer.i32(i32::MAX);
        let bytes = writer.into_bytes();
        assert!(Reader::new(&bytes).strings().is_err());
    }

    #[test]
    fn bad_bool_is_an_error() {
        assert_eq!(
            Reader::new(&[2]).bool(),
            Err(DecodeError::BadBool {
                offset: 0,
                value: 2
            })
        );
    }

    #[test]
    fn frames_need_all_their_bytes() {
        let mut writer = Writer::framed();
        writer.i32(5);
        let frame = writer.into_frame();
        assert_eq!(frame_length(&frame[..3], 100), Ok(None));
        assert_eq!(frame_length(&frame[..6], 100), Ok(None));
        assert_eq!(frame_length(&frame, 100), Ok(Some(4)));
        assert_eq!(
            frame_length(&frame, 3),
            Err(FrameError::TooLarge {
                length: 4,
                max_bytes: 3
            })
        );
        assert_eq!(
            frame_length(&(-1i32).to_be_bytes(), 3),
            Err(FrameError::Negative { length: -1 })
        );
    }
}
