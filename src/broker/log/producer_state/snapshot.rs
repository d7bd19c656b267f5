//! Producer state snapshots: `<offset, 20 digits>.snapshot` beside the segments, holding every
//! producer's state as of that log offset (exclusive), as Kafka's `ProducerStateManager` writes
//! them at segment roll and clean shutdown. On start the latest readable snapshot is loaded and
//! the log after it replayed.
//!
//! Format (big-endian), after Kafka's `ProducerSnapshot` (version, CRC32C, entries) but keeping
//! all five remembered batches of a producer where Kafka keeps only its last, so that a retry of
//! any of them is still recognised after a restart:
//!
//! ```text
//! version i16 (1) | crc u32: CRC32C of everything after it | producer count i32 |
//! per producer: producer id i64, epoch i16, last timestamp i64, batch count i8 (1..=5),
//!               per batch: last sequence i32, last offset i64, offset delta i32
//! ```
//!
//! A file is written to `<name>.tmp`, fsync'd, renamed and its directory fsync'd. Reading trusts
//! nothing: the file is read up to [`SNAPSHOT_BYTES_MAX`], counts size no allocation, and a file
//! that is short, long, fails its CRC or says something impossible (offsets at or past the
//! snapshot's own offset, more than five batches) is [`SnapshotError::Corrupt`]: the caller
//! deletes it and rebuilds from the log.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::entry::{BATCHES_TO_RETAIN, BatchMetadata, ProducerEntry};
use crate::broker::directory;

/// File name suffix.
pub const SUFFIX: &str = ".snapshot";
const VERSION: i16 = 1;
/// The largest snapshot file read (a larger one is treated as corrupt): 99 bytes per producer
/// at most, so about 2.7 million producers.
pub const SNAPSHOT_BYTES_MAX: u64 = 256 * 1024 * 1024;
const HEADER_BYTES: usize = 2 + 4 + 4;

/// Why a snapshot could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read producer snapshot {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("producer snapshot {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// `<offset, 20 digits>.snapshot`.
pub fn file_name(offset: i64) -> String {
    format!("{offset:020}{SUFFIX}")
}

pub fn path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(file_name(offset))
}

/// The offsets of the snapshot files (regular files) in `dir`; leftover `.tmp` files of an
/// interrupted write are removed.
pub fn list(dir: &Path) -> std::io::Result<BTreeSet<i64>> {
    let mut offsets = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(SUFFIX)
            && stem.len() == 20
            && let Ok(offset) = stem.parse::<i64>()
        {
            offsets.insert(offset);
        } else if name.ends_with(".snapshot.tmp") {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(offsets)
}

/// The snapshot's bytes.
pub fn encode<'a>(producers: impl ExactSizeIterator<Item = (i64, &'a ProducerEntry)>) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + producers.len() * 40);
    body.extend_from_slice(&(producers.len() as i32).to_be_bytes());
    for (producer_id, entry) in producers {
        body.extend_from_slice(&producer_id.to_be_bytes());
        body.extend_from_slice(&entry.epoch.to_be_bytes());
        body.extend_from_slice(&entry.last_timestamp_ms.to_be_bytes());
        body.push(entry.batches().len() as u8);
        for batch in entry.batches() {
            body.extend_from_slice(&batch.last_sequence.to_be_bytes());
            body.extend_from_slice(&batch.last_offset.to_be_bytes());
            body.extend_from_slice(&batch.offset_delta.to_be_bytes());
        }
    }
    let mut bytes = Vec::with_capacity(6 + body.len());
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    bytes.extend_from_slice(&body);
    bytes
}

/// Parses a snapshot taken at `offset`; the reason it is unusable otherwise.
pub fn decode(bytes: &[u8], offset: i64) -> Result<Vec<(i64, ProducerEntry)>, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!("{} bytes, shorter than a header", bytes.len()));
    }
    let mut reader = Reader(bytes);
    let version = reader.i16()?;
    if version != VERSION {
        return Err(format!("unknown version {version}"));
    }
    let stored = reader.i32()? as u32;
    let computed = crc32c::crc32c(reader.0);
    if stored != computed {
        return Err(format!(
            "CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    let count = reader.i32()?;
    if count < 0 {
        return Err(format!("negative producer count {count}"));
    }
    // The count is believed only as entries are read: it sizes nothing.
    let mut entries = Vec::new();
    for _ in 0..count {
        entries.push(read_entry(&mut reader, offset)?);
    }
    if !reader.0.is_empty() {
        return Err(format!("{} bytes after the last producer", reader.0.len()));
    }
    Ok(entries)
}

fn read_entry(reader: &mut Reader<'_>, offset: i64) -> Result<(i64, ProducerEntry), String> {
    let producer_id = reader.i64()?;
    let epoch = reader.i16()?;
    let last_timestamp_ms = reader.i64()?;
    let batch_count = reader.u8()?;
    if producer_id < 0 || epoch < 0 {
        return Err(format!("producer {producer_id} with epoch {epoch}"));
    }
    if batch_count == 0 || usize::from(batch_count) > BATCHES_TO_RETAIN {
        return Err(format!("producer {producer_id} with {batch_count} batches"));
    }
    let mut batches: Vec<BatchMetadata> = Vec::with_capacity(usize::from(batch_count));
    for _ in 0..batch_count {
        let batch = BatchMetadata {
            last_sequence: reader.i32()?,
            last_offset: reader.i64()?,
            offset_delta: reader.i32()?,
        };
        let after_previous = batches
            .last()
            .is_none_or(|previous| batch.first_offset() > previous.last_offset);
        if batch.last_sequence < 0
            || batch.offset_delta < 0
            || batch.first_offset() < 0
            || batch.last_offset >= offset
            || !after_previous
        {
            return Err(format!(
                "producer {producer_id}: impossible batch {batch:?} in a snapshot at {offset}"
            ));
        }
        batches.push(batch);
    }
    Ok((
        producer_id,
        ProducerEntry::new(epoch, batches, last_timestamp_ms),
    ))
}

/// Big-endian reads that fail at the end of the bytes.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let Some((head, rest)) = self.0.split_first_chunk::<N>() else {
            return Err("truncated".to_string());
        };
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }

    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take()?))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}

/// Writes the snapshot at `offset` durably: a temporary file, fsync, rename, fsync of `dir`.
pub fn write(
    dir: &Path,
    offset: i64,
    producers: &HashMap<i64, ProducerEntry>,
) -> std::io::Result<()> {
    let mut sorted: Vec<(i64, &ProducerEntry)> =
        producers.iter().map(|(id, entry)| (*id, entry)).collect();
    sorted.sort_unstable_by_key(|(id, _)| *id);
    let bytes = encode(sorted.into_iter());
    let final_path = path(dir, offset);
    let temporary = dir.join(format!("{}.tmp", file_name(offset)));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_data()?;
    std::fs::rename(&temporary, &final_path)?;
    directory::sync_dir(dir)
}

/// Reads the snapshot at `offset` in `dir`.
pub fn read(dir: &Path, offset: i64) -> Result<Vec<(i64, ProducerEntry)>, SnapshotError> {
    let path = path(dir, offset);
    let io = |source| SnapshotError::Io {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::open(&path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(SNAPSHOT_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > SNAPSHOT_BYTES_MAX {
        return Err(SnapshotError::Corrupt {
            path,
            reason: format!("larger than {SNAPSHOT_BYTES_MAX} bytes"),
        });
    }
    decode(&bytes, offset).map_err(|reason| SnapshotError::Corrupt { path, reason })
}

/// Deletes the snapshot at `offset` (a missing one is fine).
pub fn delete(dir: &Path, offset: i64) -> std::io::Result<()> {
    match std::fs::remove_file(path(dir, offset)) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn producers() -> HashMap<i64, ProducerEntry> {
        let batches = |first: i64| {
            (0..3).map(move |i| BatchMetadata {
                last_sequence: (i * 10 + 9) as i32,
                last_offset: first + i * 10 + 9,
                offset_delta: 9,
            })
        };
        [
            (5, ProducerEntry::new(0, batches(0), 1_000)),
            (9, ProducerEntry::new(3, batches(30), 2_000)),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = producers();
        write(dir.path(), 60, &written).expect("write");
        write(dir.path(), 100, &HashMap::new()).expect("write empty");
        std::fs::write(dir.path().join("00000000000000000070.snapshot.tmp"), b"x").expect("tmp");
        assert_eq!(list(dir.path()).expect("list"), BTreeSet::from([60, 100]));
        assert!(
            !dir.path()
                .join("00000000000000000070.snapshot.tmp")
                .exists()
        );
        let read: HashMap<i64, ProducerEntry> =
            read(dir.path(), 60).expect("read").into_iter().collect();
        assert_eq!(read, written);
        assert!(super::read(dir.path(), 100).expect("empty").is_empty());
        delete(dir.path(), 60).expect("delete");
        delete(dir.path(), 60).expect("delete again");
        assert_eq!(list(dir.path()).expect("list"), BTreeSet::from([100]));
    }

    #[test]
    fn damaged_or_impossible_snapshots_are_corrupt() {
        let sorted = |map: &HashMap<i64, ProducerEntry>| {
            let mut entries: Vec<(i64, ProducerEntry)> =
                map.iter().map(|(id, e)| (*id, e.clone())).collect();
            entries.sort_by_key(|(id, _)| *id);
            entries
        };
        let good = producers();
        let bytes = encode(sorted(&good).iter().map(|(id, e)| (*id, e)));
        assert_eq!(decode(&bytes, 60).expect("good"), sorted(&good));
        assert!(
            decode(&bytes, 59).is_err(),
            "an offset past the snapshot's own"
        );
        assert!(decode(&bytes[..bytes.len() - 1], 60).is_err(), "short");
        assert!(
            decode(&[bytes.as_slice(), &[0]].concat(), 60).is_err(),
            "long"
        );
        assert!(decode(&[], 60).is_err());
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(decode(&flipped, 60).expect_err("corrupt").contains("CRC"));
        // A huge count with a valid CRC: refused when the entries run out, allocating nothing.
        let mut body = i32::MAX.to_be_bytes().to_vec();
        body.extend_from_slice(&[0; 30]);
        let mut lying = VERSION.to_be_bytes().to_vec();
        lying.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        lying.extend_from_slice(&body);
        assert!(decode(&lying, 60).is_err());
        // Six batches for one producer (a valid CRC) is more than Kafka remembers.
        let mut six = 1i32.to_be_bytes().to_vec();
        six.extend_from_slice(&1i64.to_be_bytes());
        six.extend_from_slice(&0i16.to_be_bytes());
        six.extend_from_slice(&0i64.to_be_bytes());
        six.push(6);
        for i in 0..6i64 {
            six.extend_from_slice(&(i as i32).to_be_bytes());
            six.extend_from_slice(&i.to_be_bytes());
            six.extend_from_slice(&0i32.to_be_bytes());
        }
        let mut file = VERSION.to_be_bytes().to_vec();
        file.extend_from_slice(&crc32c::crc32c(&six).to_be_bytes());
        file.extend_from_slice(&six);
        assert!(
            decode(&file, 60)
                .expect_err("corrupt")
                .contains("6 batches")
        );
    }
}
