//! Frames: every Kafka request and response is a big-endian `i32` size, then that many bytes.
//!
//! Reading is two steps, as in mini-redis: [`announced_size`] looks at the prefix alone (is a
//! frame here, and is its size within [`FrameBounds`]? — refusing a bad size before a byte of
//! the body is buffered), then [`split_frame`] takes a whole frame off the front of a buffer.
//! "Not all here yet" is `Ok(None)`, a normal answer: read more bytes.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of the size prefix.
pub const SIZE_PREFIX_BYTES: usize = 4;
/// The smallest request: API key, API version and correlation id.
pub const MIN_REQUEST_BYTES: usize = 8;
/// The smallest response: a correlation id.
pub const MIN_RESPONSE_BYTES: usize = 4;

/// The sizes a frame may announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameBounds {
    pub min_bytes: usize,
    pub max_bytes: usize,
}

impl FrameBounds {
    /// Request frames up to `max_bytes` (a broker's `socket.request.max.bytes`).
    pub fn request(max_bytes: usize) -> Self {
        FrameBounds {
            min_bytes: MIN_REQUEST_BYTES,
            max_bytes,
        }
    }

    /// Response frames up to `max_bytes`.
    pub fn response(max_bytes: usize) -> Self {
        FrameBounds {
            min_bytes: MIN_RESPONSE_BYTES,
            max_bytes,
        }
    }

    /// The size a prefix announces, if within the bounds.
    pub fn check(&self, prefix: [u8; SIZE_PREFIX_BYTES]) -> Result<usize, FrameError> {
        let size = i64::from(i32::from_be_bytes(prefix));
        if size < self.min_bytes as i64 {
            return Err(FrameError::TooShort {
                size,
                min: self.min_bytes,
            });
        }
        if size as u64 > self.max_bytes as u64 {
            return Err(FrameError::TooLarge {
                size,
                max: self.max_bytes,
            });
        }
        Ok(size as usize)
    }
}

/// A size prefix out of bounds: the stream cannot be trusted past it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes is shorter than a header ({min} bytes)")]
    TooShort { size: i64, min: usize },
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: i64, max: usize },
}

/// The size announced by the frame at the front of `buffer`, once its prefix is there.
pub fn announced_size(buffer: &[u8], bounds: FrameBounds) -> Result<Option<usize>, FrameError> {
    match buffer.first_chunk::<SIZE_PREFIX_BYTES>() {
        Some(prefix) => bounds.check(*prefix).map(Some),
        None => Ok(None),
    }
}

/// Takes the whole frame at the front of `buffer` (without its prefix), if it is all there.
pub fn split_frame(
    buffer: &mut BytesMut,
    bounds: FrameBounds,
) -> Result<Option<Bytes>, FrameError> {
    match announced_size(buffer, bounds)? {
        Some(size) if buffer.len() >= SIZE_PREFIX_BYTES + size => {
            let mut frame = buffer.split_to(SIZE_PREFIX_BYTES + size);
            let _prefix = frame.split_to(SIZE_PREFIX_BYTES);
            Ok(Some(frame.freeze()))
        }
        _ => Ok(None),
    }
}

/// How many more bytes the frame at the front of `buffer` needs (its prefix's, when not even
/// that is there).
pub fn missing_bytes(buffer: &[u8], bounds: FrameBounds) -> Result<usize, FrameError> {
    Ok(match announced_size(buffer, bounds)? {
        Some(size) => (SIZE_PREFIX_BYTES + size).saturating_sub(buffer.len()),
        None => SIZE_PREFIX_BYTES - buffer.len(),
    })
}

/// Appends the prefix of a `size`-byte frame.
pub fn put_size(buffer: &mut BytesMut, size: usize) -> Result<(), FrameError> {
    let prefix = i32::try_from(size).map_err(|_| FrameError::TooLarge {
        size: i64::try_from(size).unwrap_or(i64::MAX),
        max: i32::MAX as usize,
    })?;
    buffer.put_i32(prefix);
    Ok(())
}

/// `body` with its size prefix: for tests and fuzzers that build a body by hand.
pub fn framed(body: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut frame = BytesMut::with_capacity(SIZE_PREFIX_BYTES + body.len());
    put_size(&mut frame, body.len())?;
    frame.extend_from_slice(body);
    Ok(frame.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: FrameBounds = FrameBounds {
        min_bytes: MIN_REQUEST_BYTES,
        max_bytes: 100,
    };

    #[test]
    fn a_frame_is_split_only_once_whole() {
        let frame = framed(b"0123456789").expect("small");
        let mut buffer = BytesMut::from(&frame[..3]);
        assert_eq!(split_frame(&mut buffer, BOUNDS), Ok(None));
        assert_eq!(missing_bytes(&buffer, BOUNDS), Ok(1));
        buffer.extend_from_slice(&frame[3..8]);
        assert_eq!(split_frame(&mut buffer, BOUNDS), Ok(None));
        assert_eq!(missing_bytes(&buffer, BOUNDS), Ok(6));
        buffer.extend_from_slice(&frame[8..]);
        buffer.extend_from_slice(b"next");
        assert_eq!(
            split_frame(&mut buffer, BOUNDS),
            Ok(Some(Bytes::from_static(b"0123456789")))
        );
        assert_eq!(&buffer[..], b"next");
    }

    #[test]
    fn sizes_out_of_bounds_are_refused_from_the_prefix_alone() {
        assert_eq!(
            announced_size(&101i32.to_be_bytes(), BOUNDS),
            Err(FrameError::TooLarge {
                size: 101,
                max: 100
            })
        );
        assert_eq!(
            announced_size(&(-1i32).to_be_bytes(), BOUNDS),
            Err(FrameError::TooShort { size: -1, min: 8 })
        );
        assert_eq!(
            announced_size(&7i32.to_be_bytes(), BOUNDS),
            Err(FrameError::TooShort { size: 7, min: 8 })
        );
        assert_eq!(announced_size(&100i32.to_be_bytes(), BOUNDS), Ok(Some(100)));
        assert_eq!(announced_size(&[0, 0], BOUNDS), Ok(None));
    }
}
