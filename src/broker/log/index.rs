//! The sparse offset index of one segment (`<base>.index`): entries of (offset relative to the
//! segment's base offset u32, byte position in the segment u32), big-endian as in Kafka, one
//! every `log.index.interval.bytes` of log. Kept in memory and appended to its file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const ENTRY_SIZE: usize = 8;

/// One index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// A segment's offset index, in memory and on disk.
#[derive(Debug)]
pub struct OffsetIndex {
    path: PathBuf,
    file: File,
    entries: Vec<IndexEntry>,
}

impl OffsetIndex {
    /// Opens (or creates) the index at `path`, keeping only entries that increase and point
    /// below `segment_size`; a torn or stale tail is cut from the file too.
    pub fn open(path: &Path, segment_size: u64) -> std::io::Result<Self> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(error),
        };
        let mut entries: Vec<IndexEntry> = Vec::with_capacity(bytes.len() / ENTRY_SIZE);
        for chunk in bytes.chunks_exact(ENTRY_SIZE) {
            let entry = IndexEntry {
                relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
            };
            let increasing = entries.last().is_none_or(|last| {
                entry.relative_offset > last.relative_offset && entry.position > last.position
            });
            if !increasing || u64::from(entry.position) >= segment_size {
                break;
            }
            entries.push(entry);
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        file.set_len((entries.len() * ENTRY_SIZE) as u64)?;
        let mut index = OffsetIndex {
            path: path.to_path_buf(),
            file,
            entries,
        };
        index.seek_to_end()?;
        Ok(index)
    }

    fn seek_to_end(&mut self) -> std::io::Result<()> {
        use std::io::Seek;
        self.file.seek(std::io::SeekFrom::End(0))?;
        Ok(())
    }

    /// Adds an entry (offsets and positions must increase).
    pub fn append(&mut self, relative_offset: u32, position: u32) -> std::io::Result<()> {
        debug_assert!(self.entries.last().is_none_or(|last| {
            relative_offset > last.relative_offset && position > last.position
        }));
        let mut bytes = [0u8; ENTRY_SIZE];
        bytes[..4].copy_from_slice(&relative_offset.to_be_bytes());
        bytes[4..].copy_from_slice(&position.to_be_bytes());
        self.file.write_all(&bytes)?;
        self.entries.push(IndexEntry {
            relative_offset,
            position,
        });
        Ok(())
    }

    /// The last entry whose offset is <= `relative_offset`: where to start scanning for it.
    pub fn lookup(&self, relative_offset: u32) -> Option<IndexEntry> {
        let after = self
            .entries
            .partition_point(|entry| entry.relative_offset <= relative_offset);
        after.checked_sub(1).map(|at| self.entries[at])
    }

    /// The last entry whose position is <= `position`: a batch boundary to scan forward from.
    pub fn lookup_position(&self, position: u64) -> Option<IndexEntry> {
        let after = self
            .entries
            .partition_point(|entry| u64::from(entry.position) <= position);
        after.checked_sub(1).map(|at| self.entries[at])
    }

    /// Drops every entry at or beyond `position` (the log was truncated there).
    pub fn truncate_to_position(&mut self, position: u64) -> std::io::Result<()> {
        let keep = self
            .entries
            .partition_point(|entry| u64::from(entry.position) < position);
        self.entries.truncate(keep);
        self.file.set_len((keep * ENTRY_SIZE) as u64)?;
        self.seek_to_end()
    }

    /// Drops all entries.
    pub fn clear(&mut self) -> std::io::Result<()> {
        self.truncate_to_position(0)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the index to disk.
    pub fn flush(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// A second handle on the index file, to fsync it without its owner.
    pub fn file_handle(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_floor_entry_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000000.index");
        let mut index = OffsetIndex::open(&path, 0).expect("open");
        index.append(10, 4096).expect("append");
        index.append(20, 8192).expect("append");
        assert_eq!(index.lookup(5), None);
        assert_eq!(index.lookup(15).map(|e| e.position), Some(4096));
        assert_eq!(index.lookup(25).map(|e| e.position), Some(8192));
        drop(index);
        let index = OffsetIndex::open(&path, 10_000).expect("reopen");
        assert_eq!(index.len(), 2);
        // Entries pointing past the (shorter) segment are dropped.
        let index = {
            drop(index);
            OffsetIndex::open(&path, 5000).expect("reopen shorter")
        };
        assert_eq!(index.len(), 1);
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 8);
    }

    #[test]
    fn truncate_drops_entries_at_and_after_a_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = OffsetIndex::open(&dir.path().join("x.index"), 0).expect("open");
        for i in 1..=5u32 {
            index.append(i * 10, i * 100).expect("append");
        }
        index.truncate_to_position(300).expect("truncate");
        assert_eq!(index.len(), 2);
        index.append(30, 300).expect("append after truncate");
        assert_eq!(index.lookup(35).map(|e| e.position), Some(300));
    }
}
