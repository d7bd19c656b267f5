//! One log segment: `<base offset, 20 digits>.log` holding v2 record batches exactly as stored
//! (offsets already assigned), and its sparse [`OffsetIndex`]. Knows how to append, find the
//! byte position of an offset, read bytes, truncate, and recover (scan, cut a torn tail).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::batch::{self, BATCH_HEADER_SIZE, BatchHeader};
use super::index::OffsetIndex;
use super::tail_cache::{TAIL_CACHE_BYTES, TailCache};

/// Segment file names: the base offset as 20 zero-padded digits.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// What a recovery scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryOutcome {
    /// Valid batches kept.
    pub batches: u64,
    /// Bytes cut from the end (a torn or corrupt tail).
    pub truncated_bytes: u64,
}

/// One segment file and its index.
#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    file: File,
    index: OffsetIndex,
    size: u64,
    /// The offset after the last batch (== base offset when empty).
    next_offset: i64,
    /// The largest partition leader epoch seen in this segment's batches, if any.
    last_epoch: Option<i32>,
    index_interval_bytes: u64,
    bytes_since_index_entry: u64,
    /// The latest appended bytes, while this is the active segment.
    tail: TailCache,
}

impl Segment {
    /// Creates an empty segment in `dir` starting at `base_offset`.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
    ) -> std::io::Result<Self> {
        let log_path = dir.join(format!("{}.log", file_stem(base_offset)));
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&log_path)?;
        file.set_len(0)?;
        let index = OffsetIndex::open(&dir.join(format!("{}.index", file_stem(base_offset))), 0)?;
        Ok(Segment {
            base_offset,
            log_path,
            file,
            index,
            size: 0,
            next_offset: base_offset,
            last_epoch: None,
            index_interval_bytes,
            bytes_since_index_entry: 0,
            tail: TailCache::new(TAIL_CACHE_BYTES),
        })
    }

    /// Opens an existing segment. With `recover`, every batch is read and checked (CRC
    /// included) and anything after the last valid batch is cut; the index is rebuilt. Without
    /// it, the index file is trusted and only the last batch is located.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        recover: bool,
    ) -> std::io::Result<(Self, RecoveryOutcome)> {
        let log_path = dir.join(format!("{}.log", file_stem(base_offset)));
        let file = OpenOptions::new().read(true).append(true).open(&log_path)?;
        let size = file.metadata()?.len();
        let index_path = dir.join(format!("{}.index", file_stem(base_offset)));
        let index = OffsetIndex::open(&index_path, size)?;
        let mut segment = Segment {
            base_offset,
            log_path,
            file,
            index,
            size,
            next_offset: base_offset,
            last_epoch: None,
            index_interval_bytes,
            bytes_since_index_entry: 0,
            tail: TailCache::new(TAIL_CACHE_BYTES),
        };
        let outcome = if recover || segment.index.is_empty() && size > 0 {
            segment.recover()?
        } else {
            segment.locate_end()?;
            RecoveryOutcome {
                batches: 0,
                truncated_bytes: 0,
            }
        };
        Ok((segment, outcome))
    }

    /// Scans every batch from the start, rebuilding the index; cuts the file after the last
    /// batch that is whole and passes its CRC.
    fn recover(&mut self) -> std::io::Result<RecoveryOutcome> {
        self.tail.clear();
        self.index.clear()?;
        self.bytes_since_index_entry = 0;
        self.last_epoch = None;
        let mut position = 0u64;
        let mut batches = 0u64;
        let mut next_offset = self.base_offset;
        let mut buffer = Vec::new();
        while let Some(header) = self.read_header_at(position)? {
            if position + header.size as u64 > self.size || header.base_offset < next_offset {
                break;
            }
            buffer.resize(header.size, 0);
            self.file.read_exact_at(&mut buffer, position)?;
            if batch::validate(&buffer).is_err() {
                break;
            }
            self.note_batch(&header, position)?;
            next_offset = header.next_offset();
            position += header.size as u64;
            batches += 1;
        }
        let truncated_bytes = self.size - position;
        if truncated_bytes > 0 {
            self.file.set_len(position)?;
            self.size = position;
        }
        self.next_offset = next_offset;
        Ok(RecoveryOutcome {
            batches,
            truncated_bytes,
        })
    }

    /// Finds the end of a segment trusted to be whole: scans headers from the last index entry.
    fn locate_end(&mut self) -> std::io::Result<()> {
        let start = self
            .index
            .lookup(u32::MAX)
            .map_or(0, |entry| entry.position);
        let mut position = u64::from(start);
        while let Some(header) = self.read_header_at(position)? {
            if position + header.size as u64 > self.size {
                break;
            }
            self.next_offset = header.next_offset();
            self.last_epoch = Some(header.partition_leader_epoch);
            position += header.size as u64;
        }
        if position != self.size {
            // Not whole after all: fall back to a full recovery.
            self.recover()?;
        }
        Ok(())
    }

    /// The header of the batch at `position`, or `None` at the end or on garbage.
    fn read_header_at(&self, position: u64) -> std::io::Result<Option<BatchHeader>> {
        if position + BATCH_HEADER_SIZE as u64 > self.size {
            return Ok(None);
        }
        let mut header = [0u8; BATCH_HEADER_SIZE];
        self.file.read_exact_at(&mut header, position)?;
        Ok(batch::read_header(&header).ok())
    }

    /// Records a batch at `position` in the index (every `index_interval_bytes`).
    fn note_batch(&mut self, header: &BatchHeader, position: u64) -> std::io::Result<()> {
        if self.bytes_since_index_entry >= self.index_interval_bytes || position == 0 {
            let relative = (header.base_offset - self.base_offset) as u32;
            if position > 0 {
                self.index.append(relative, position as u32)?;
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.size as u64;
        self.last_epoch = Some(header.partition_leader_epoch);
        Ok(())
    }

    /// Appends `bytes` (whole batches with assigned offsets, described by `headers`).
    pub fn append(&mut self, bytes: Bytes, headers: &[BatchHeader]) -> std::io::Result<()> {
        if let Err(error) = self.file.write_all(&bytes) {
            // Part of it may be in the file: the cache no longer mirrors the tail.
            self.tail.clear();
            return Err(error);
        }
        self.tail.push(self.size, bytes.clone());
        let mut position = self.size;
        for header in headers {
            self.note_batch(header, position)?;
            position += header.size as u64;
            self.next_offset = header.next_offset();
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// The byte position of the batch holding `offset` (or of the first batch after it), or
    /// `None` if `offset` is at or past this segment's end.
    pub fn position_of(&self, offset: i64) -> std::io::Result<Option<u64>> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let relative = offset
            .saturating_sub(self.base_offset)
            .clamp(0, u32::MAX as i64) as u32;
        let mut position = self
            .index
            .lookup(relative)
            .map_or(0, |entry| u64::from(entry.position));
        while let Some(header) = self.read_header_at(position)? {
            if header.last_offset() >= offset {
                return Ok(Some(position));
            }
            position += header.size as u64;
        }
        Ok(None)
    }

    /// The end of the last whole batch that starts at or after `start` and ends at or before
    /// `limit` (both batch-aligned scans; `start` must be a batch boundary). Returns `start`
    /// if not even the first batch fits. Scans at most one index interval of headers.
    pub fn last_batch_end_within(&self, start: u64, limit: u64) -> std::io::Result<u64> {
        let limit = limit.min(self.size);
        let mut position = self
            .index
            .lookup_position(limit)
            .map_or(start, |entry| u64::from(entry.position).max(start));
        while let Some(header) = self.read_header_at(position)? {
            let end = position + header.size as u64;
            if end > limit {
                break;
            }
            position = end;
        }
        Ok(position)
    }

    /// The position and header of the first batch satisfying `wanted`, scanning headers from
    /// the start (a linear scan: for rare lookups such as ListOffsets by timestamp).
    pub fn find_batch(
        &self,
        mut wanted: impl FnMut(&BatchHeader) -> bool,
    ) -> std::io::Result<Option<(u64, BatchHeader)>> {
        let mut position = 0;
        while let Some(header) = self.read_header_at(position)? {
            if wanted(&header) {
                return Ok(Some((position, header)));
            }
            position += header.size as u64;
        }
        Ok(None)
    }

    /// Visits the header of every whole batch from `position` (a batch boundary) to the end:
    /// the producer state replaying the log.
    pub fn visit_headers_from(
        &self,
        mut position: u64,
        mut visit: impl FnMut(&BatchHeader),
    ) -> std::io::Result<()> {
        while let Some(header) = self.read_header_at(position)? {
            if position + header.size as u64 > self.size {
                break;
            }
            visit(&header);
            position += header.size as u64;
        }
        Ok(())
    }

    /// The size of the batch at `position` (a batch boundary).
    pub fn batch_size_at(&self, position: u64) -> std::io::Result<Option<usize>> {
        Ok(self.read_header_at(position)?.map(|header| header.size))
    }

    /// Reads `length` bytes at `position` (bounded by the segment's size). Callers hold the
    /// partition's lock: the read uses the file cursor (so the buffer need not be zeroed
    /// first); appends are unaffected by the cursor (the file is opened in append mode).
    pub fn read(&self, position: u64, length: usize) -> std::io::Result<Bytes> {
        use std::io::{Read, Seek, SeekFrom};
        let end = (position + length as u64).min(self.size);
        let length = end.saturating_sub(position) as usize;
        if let Some(cached) = self.tail.read(position, length) {
            return Ok(cached);
        }
        let mut file = &self.file;
        file.seek(SeekFrom::Start(position))?;
        let mut buffer = Vec::with_capacity(length);
        file.take(length as u64).read_to_end(&mut buffer)?;
        if buffer.len() != length {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: {length} bytes at {position} expected, {} read",
                    self.log_path.display(),
                    buffer.len()
                ),
            ));
        }
        Ok(Bytes::from(buffer))
    }

    /// Removes every batch at or after `offset` (which must be a batch boundary or past the end).
    pub fn truncate_to(&mut self, offset: i64) -> std::io::Result<()> {
        let Some(position) = self.position_of(offset)? else {
            return Ok(());
        };
        self.tail.clear();
        self.file.set_len(position)?;
        self.size = position;
        self.index.truncate_to_position(position)?;
        // Re-derive next offset, last epoch and the index cadence from what is left.
        self.recover()?;
        Ok(())
    }

    /// Drops the in-memory tail (the segment is no longer the active one).
    pub fn release_tail_cache(&mut self) {
        self.tail.clear();
    }

    /// fsyncs the log and index files.
    pub fn flush(&self) -> std::io::Result<()> {
        self.file.sync_data()?;
        self.index.flush()
    }

    /// Second handles on the log and index files, to fsync them without the segment (outside
    /// the lock that guards it).
    pub fn file_handles(&self) -> std::io::Result<[File; 2]> {
        Ok([self.file.try_clone()?, self.index.file_handle()?])
    }

    /// Deletes the segment's files.
    pub fn delete(self) -> std::io::Result<()> {
        let index_path = self.index.path().to_path_buf();
        std::fs::remove_file(&self.log_path)?;
        match std::fs::remove_file(index_path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn last_epoch(&self) -> Option<i32> {
        self.last_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::log::batch::tests::encoded_batch;

    /// Appends `batches` batches of `per_batch` records, offsets assigned from `next`.
    fn fill(segment: &mut Segment, batches: usize, per_batch: usize) {
        for _ in 0..batches {
            let mut bytes = encoded_batch(per_batch);
            batch::patch(&mut bytes, segment.next_offset(), 0);
            let header = batch::validate(&bytes).expect("valid");
            segment.append(bytes.freeze(), &[header]).expect("append");
        }
    }

    #[test]
    fn finds_offsets_through_the_index_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut segment = Segment::create(dir.path(), 100, 256).expect("create");
        fill(&mut segment, 50, 4);
        assert_eq!(segment.next_offset(), 300);
        assert!(segment.index.len() > 3, "sparse index has entries");
        let position = segment.position_of(150).expect("io").expect("found");
        let header_bytes = segment.read(position, BATCH_HEADER_SIZE).expect("read");
        let header = batch::read_header(&header_bytes).expect("header");
        assert!(header.base_offset <= 150 && header.last_offset() >= 150);
        assert_eq!(segment.position_of(300).expect("io"), None);
        let size = segment.size();
        drop(segment);
        let (segment, outcome) = Segment::open(dir.path(), 100, 256, false).expect("reopen");
        assert_eq!(outcome.truncated_bytes, 0);
        assert_eq!(segment.next_offset(), 300);
        assert_eq!(segment.size(), size);
    }

    #[test]
    fn cached_tail_reads_match_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut segment = Segment::create(dir.path(), 0, 256).expect("create");
        fill(&mut segment, 30, 3);
        let (reopened, _) = Segment::open(dir.path(), 0, 256, false).expect("open uncached");
        let size = segment.size();
        for (position, length) in [(0, 10), (0, size as usize), (77, 300), (size - 5, 5)] {
            let cached = segment.read(position, length).expect("cached read");
            let from_file = reopened.read(position, length).expect("file read");
            assert_eq!(cached, from_file, "at {position}+{length}");
        }
    }

    #[test]
    fn recovery_cuts_a_torn_tail_and_keeps_earlier_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut segment = Segment::create(dir.path(), 0, 4096).expect("create");
        fill(&mut segment, 10, 3);
        let size = segment.size();
        drop(segment);
        let path = dir.path().join("00000000000000000000.log");
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(size - 5).expect("tear the last batch");
        drop(file);
        let (segment, outcome) = Segment::open(dir.path(), 0, 4096, true).expect("recover");
        assert_eq!(outcome.batches, 9);
        assert!(outcome.truncated_bytes > 0);
        assert_eq!(segment.next_offset(), 27);
        assert_eq!(
            std::fs::metadata(&path).expect("meta").len(),
            segment.size()
        );
    }

    #[test]
    fn recovery_stops_at_a_corrupt_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut segment = Segment::create(dir.path(), 0, 4096).expect("create");
        fill(&mut segment, 4, 2);
        let last_position = segment.position_of(6).expect("io").expect("found");
        drop(segment);
        let path = dir.path().join("00000000000000000000.log");
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.write_all_at(&[0xff], last_position + 70)
            .expect("corrupt");
        drop(file);
        let (segment, _) = Segment::open(dir.path(), 0, 4096, true).expect("recover");
        assert_eq!(segment.next_offset(), 6);
    }

    #[test]
    fn truncate_to_an_offset_removes_later_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut segment = Segment::create(dir.path(), 0, 128).expect("create");
        fill(&mut segment, 20, 5);
        segment.truncate_to(50).expect("truncate");
        assert_eq!(segment.next_offset(), 50);
        fill(&mut segment, 1, 5);
        assert_eq!(segment.next_offset(), 55);
    }
}
