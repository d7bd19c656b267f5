//! The most recently appended bytes of the active segment, kept in memory as the very `Bytes`
//! that were written, so that fetches at the tail of the log (consumers keeping up, followers)
//! are served without reading the file: a slice of one chunk is zero-copy. Bounded in bytes;
//! the oldest chunks go first.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Bytes kept per active segment.
pub const TAIL_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Contiguous chunks ending at the segment's end.
#[derive(Debug, Default)]
pub struct TailCache {
    /// (position in the segment, bytes), contiguous and in order.
    chunks: VecDeque<(u64, Bytes)>,
    bytes: usize,
    capacity: usize,
}

impl TailCache {
    pub fn new(capacity: usize) -> Self {
        TailCache {
            chunks: VecDeque::new(),
            bytes: 0,
            capacity,
        }
    }

    /// Records `data` written at `position`. A gap (or an overlap) drops what was cached.
    pub fn push(&mut self, position: u64, data: Bytes) {
        let end = self
            .chunks
            .back()
            .map(|(at, chunk)| at + chunk.len() as u64);
        if end.is_some_and(|end| end != position) {
            self.clear();
        }
        if data.is_empty() {
            return;
        }
        self.bytes += data.len();
        self.chunks.push_back((position, data));
        while self.bytes > self.capacity {
            match self.chunks.pop_front() {
                Some((_, chunk)) => self.bytes -= chunk.len(),
                None => break,
            }
        }
    }

    /// `length` bytes at `position` if all of them are cached: a slice when they lie in one
    /// chunk, else a copy.
    pub fn read(&self, position: u64, length: usize) -> Option<Bytes> {
        let (first_position, _) = self.chunks.front()?;
        if position < *first_position {
            return None;
        }
        let after = self.chunks.partition_point(|(at, _)| *at <= position);
        let start_chunk = after.checked_sub(1)?;
        let (at, chunk) = &self.chunks[start_chunk];
        let offset = (position - at) as usize;
        if offset + length <= chunk.len() {
            return Some(chunk.slice(offset..offset + length));
        }
        let mut gathered = BytesMut::with_capacity(length);
        let mut skip = offset;
        for (_, chunk) in self.chunks.range(start_chunk..) {
            let wanted = (length - gathered.len()).min(chunk.len() - skip);
            gathered.extend_from_slice(&chunk[skip..skip + wanted]);
            skip = 0;
            if gathered.len() == length {
                return Some(gathered.freeze());
            }
        }
        None
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_cached_ranges_and_nothing_else() {
        let mut cache = TailCache::new(10);
        cache.push(100, Bytes::from_static(b"abcd"));
        cache.push(104, Bytes::from_static(b"efgh"));
        assert_eq!(cache.read(101, 2).as_deref(), Some(&b"bc"[..]));
        assert_eq!(cache.read(102, 4).as_deref(), Some(&b"cdef"[..]));
        assert_eq!(cache.read(99, 2), None);
        assert_eq!(cache.read(106, 5), None, "past the end");
        // Over capacity: the oldest chunk goes.
        cache.push(108, Bytes::from_static(b"ijkl"));
        assert_eq!(cache.read(100, 1), None);
        assert_eq!(cache.read(104, 8).as_deref(), Some(&b"efghijkl"[..]));
        // A gap starts over.
        cache.push(200, Bytes::from_static(b"z"));
        assert_eq!(cache.read(104, 1), None);
        assert_eq!(cache.read(200, 1).as_deref(), Some(&b"z"[..]));
    }
}
