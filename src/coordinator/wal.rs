//! The write-ahead log: every transaction is appended as one record (length, CRC-32C, payload)
//! and fsync'd before its reply leaves. Appends are buffered and written by [`Wal::sync`], so all
//! the transactions of one batch share a single fsync (group commit). Log files are named
//! `log.<first zxid in hex>` as ZooKeeper's are; on recovery a record cut short or failing its
//! checksum at the end of the newest file is a torn tail from a crash, and is cut off.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bytes before each payload: its length and its CRC-32C, both big-endian u32.
pub const RECORD_HEADER_BYTES: usize = 8;
/// No transaction is this large (frames are capped far below); a bigger length is damage.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

const LOG_PREFIX: &str = "log.";

/// Encodes one record.
pub fn encode_record(payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
    record.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    record.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    record.extend_from_slice(payload);
    record
}

/// The records found in a log file's bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Scan<'a> {
    pub payloads: Vec<&'a [u8]>,
    /// Bytes up to the end of the last whole, valid record.
    pub valid_bytes: usize,
    /// Why the scan stopped before the end, if it did.
    pub torn: Option<String>,
}

/// Reads records until the end or the first damaged one. Pure.
pub fn scan_records(bytes: &[u8]) -> Scan<'_> {
    let mut payloads = Vec::new();
    let mut offset = 0;
    let torn = loop {
        let rest = &bytes[offset..];
        if rest.is_empty() {
            break None;
        }
        if rest.len() < RECORD_HEADER_BYTES {
            break Some(format!(
                "{} bytes of a record header at offset {offset}",
                rest.len()
            ));
        }
        let length = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if length == 0 || length > MAX_RECORD_BYTES {
            break Some(format!("record length {length} at offset {offset}"));
        }
        let Some(payload) = rest.get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + length) else {
            break Some(format!(
                "record of {length} bytes at offset {offset} has only {}",
                rest.len() - RECORD_HEADER_BYTES
            ));
        };
        if crc32c::crc32c(payload) != crc {
            break Some(format!(
                "checksum mismatch in the record at offset {offset}"
            ));
        }
        payloads.push(payload);
        offset += RECORD_HEADER_BYTES + length;
    };
    Scan {
        payloads,
        valid_bytes: offset,
        torn,
    }
}

/// The log files in `dir`, oldest first, with the zxid each starts at.
pub fn log_files(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        if let Some(hex) = name.strip_prefix(LOG_PREFIX)
            && let Ok(zxid) = i64::from_str_radix(hex, 16)
        {
            files.push((zxid, path));
        }
    }
    files.sort();
    Ok(files)
}

/// The path of the log file whose first transaction is `start_zxid`.
pub fn log_path(dir: &Path, start_zxid: i64) -> PathBuf {
    dir.join(format!("{LOG_PREFIX}{start_zxid:016x}"))
}

/// fsyncs a directory, so that files created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The open log file we append to.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    pending: Vec<u8>,
    pending_records: usize,
}

impl Wal {
    /// Opens (creating if needed) the log file at `path` for appending.
    pub fn open(dir: &Path, path: PathBuf) -> std::io::Result<Wal> {
        let existed = path.exists();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if !existed {
            file.sync_all()?;
            sync_dir(dir)?;
        }
        Ok(Wal {
            dir: dir.to_path_buf(),
            path,
            file,
            pending: Vec::new(),
            pending_records: 0,
        })
    }

    /// The file being appended to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Buffers one record; it is durable only after [`Wal::sync`].
    pub fn append(&mut self, payload: &[u8]) {
        self.pending.extend_from_slice(&encode_record(payload));
        self.pending_records += 1;
    }

    /// Records appended but not yet synced.
    pub fn pending_records(&self) -> usize {
        self.pending_records
    }

    /// Writes every buffered record and fsyncs them with one `fdatasync`.
    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.pending)?;
        self.file.sync_data()?;
        self.pending.clear();
        self.pending_records = 0;
        Ok(())
    }

    /// Starts a new file at `next_zxid` (after a snapshot up to `next_zxid - 1`) and removes the
    /// older files, which the snapshot now covers. Call only after [`Wal::sync`].
    pub fn rotate(&mut self, next_zxid: i64) -> std::io::Result<()> {
        self.sync()?;
        let fresh = Wal::open(&self.dir, log_path(&self.dir, next_zxid))?;
        let old_files = log_files(&self.dir)?;
        *self = fresh;
        for (start_zxid, path) in old_files {
            if start_zxid < next_zxid {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_records() -> Vec<u8> {
        let mut bytes = encode_record(b"first");
        bytes.extend(encode_record(b"second"));
        bytes
    }

    #[test]
    fn whole_records_scan_cleanly() {
        let bytes = two_records();
        let scan = scan_records(&bytes);
        assert_eq!(scan.payloads, vec![&b"first"[..], &b"second"[..]]);
        assert_eq!(scan.valid_bytes, bytes.len());
        assert_eq!(scan.torn, None);
    }

    #[test]
    fn every_cut_inside_the_last_record_is_a_torn_tail() {
        let bytes = two_records();
        let first_len = RECORD_HEADER_BYTES + 5;
        for cut in first_len + 1..bytes.len() {
            let scan = scan_records(&bytes[..cut]);
            assert_eq!(scan.payloads, vec![&b"first"[..]], "cut at {cut}");
            assert_eq!(scan.valid_bytes, first_len);
            assert!(scan.torn.is_some());
        }
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut bytes = two_records();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let scan = scan_records(&bytes);
        assert_eq!(scan.payloads.len(), 1);
        assert!(scan.torn.expect("torn").contains("checksum"));
    }

    #[test]
    fn zero_fill_is_not_a_record() {
        let mut bytes = encode_record(b"first");
        bytes.extend([0u8; 16]);
        let scan = scan_records(&bytes);
        assert_eq!(scan.payloads.len(), 1);
        assert!(scan.torn.is_some());
    }

    #[test]
    fn appends_are_durable_after_sync_and_rotation_removes_old_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wal = Wal::open(dir.path(), log_path(dir.path(), 1)).expect("open");
        wal.append(b"one");
        wal.append(b"two");
        assert_eq!(wal.pending_records(), 2);
        wal.sync().expect("sync");
        let bytes = std::fs::read(wal.path()).expect("read");
        assert_eq!(scan_records(&bytes).payloads.len(), 2);
        wal.rotate(3).expect("rotate");
        let files = log_files(dir.path()).expect("list");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, 3);
    }
}
