//! The data directory at start-up: load the newest snapshot, replay the log files after it,
//! cut a torn tail off the newest log file, and open it for appending.

use std::path::{Path, PathBuf};

use super::database::{Database, ReplayError};
use super::snapshot::{self, SnapshotError};
use super::txn::{Txn, TxnDecodeError};
use super::wal::{self, Wal};

/// The data directory cannot be recovered.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("log file {path} is damaged before its end ({reason}); refusing to start")]
    DamagedLog { path: PathBuf, reason: String },
    #[error("log file {path}: a record with a valid checksum does not decode: {source}")]
    BadRecord {
        path: PathBuf,
        source: TxnDecodeError,
    },
    #[error("log file {path}: {source}")]
    Replay { path: PathBuf, source: ReplayError },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io { path, source }
}

/// What recovery found, for the start-up log line.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecoveryReport {
    pub snapshot_zxid: Option<i64>,
    pub transactions_replayed: usize,
    pub torn_bytes_cut: u64,
}

/// Recovers the state in `dir` (created if missing) and opens the log for appending.
pub fn recover(dir: &Path) -> Result<(Database, Wal, RecoveryReport), StorageError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut report = RecoveryReport::default();
    let mut database = match snapshot::load_latest(dir)? {
        Some(database) => {
            report.snapshot_zxid = Some(database.zxid);
            database
        }
        None => Database::default(),
    };
    let files = wal::log_files(dir).map_err(io(dir))?;
    let last_index = files.len().checked_sub(1);
    for (index, (_, path)) in files.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let scan = wal::scan_records(&bytes);
        #[cfg(feature = "planted-bugs")] // planted bug: recovery-cuts-last-transaction
        let scan = planted_cut_last_record(scan, &bytes, Some(index) == last_index);
        for payload in &scan.payloads {
            let txn = Txn::decode(payload).map_err(|source| StorageError::BadRecord {
                path: path.clone(),
                source,
            })?;
            if txn.zxid > database.zxid {
                report.transactions_replayed += 1;
            }
            database
                .replay(&txn)
                .map_err(|source| StorageError::Replay {
                    path: path.clone(),
                    source,
                })?;
        }
        if let Some(reason) = scan.torn {
            if Some(index) != last_index {
                return Err(StorageError::DamagedLog {
                    path: path.clone(),
                    reason,
                });
            }
            let cut = bytes.len() - scan.valid_bytes;
            tracing::warn!(
                "cutting a torn tail of {cut} bytes off {} ({reason})",
                path.display()
            );
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io(path))?;
            file.set_len(scan.valid_bytes as u64).map_err(io(path))?;
            file.sync_all().map_err(io(path))?;
            report.torn_bytes_cut = cut as u64;
        }
    }
    let log_path = match files.last() {
        Some((_, path)) => path.clone(),
        None => wal::log_path(dir, database.zxid + 1),
    };
    let wal = Wal::open(dir, log_path.clone()).map_err(io(&log_path))?;
    Ok((database, wal, report))
}

/// The planted bug `recovery-cuts-last-transaction`: in the newest log file, the last whole
/// record is taken for a torn tail and cut off with it.
#[cfg(feature = "planted-bugs")]
fn planted_cut_last_record<'a>(
    mut scan: wal::Scan<'a>,
    bytes: &[u8],
    newest: bool,
) -> wal::Scan<'a> {
    if newest
        && crate::planted::is_active(crate::planted::PlantedBug::RecoveryCutsLastTransaction)
        && let Some(last) = scan.payloads.pop()
    {
        let start = last.as_ptr() as usize - bytes.as_ptr() as usize - wal::RECORD_HEADER_BYTES;
        scan.valid_bytes = start;
        scan.torn = Some(format!(
            "planted bug: the whole last record at offset {start}"
        ));
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::tree::{NodeCreate, TreeOp};
    use crate::coordinator::txn::Mutation;

    fn create(database: &mut Database, wal: &mut Wal, path: &str) {
        let mutation = Mutation::Tree(TreeOp::Create(NodeCreate {
            path: path.into(),
            data: vec![],
            ephemeral_owner: 0,
            sequential: false,
        }));
        let (_, txn) = database
            .execute(1, mutation, &mut Vec::new())
            .expect("applies");
        wal.append(&txn.encode());
    }

    #[test]
    fn recovery_replays_synced_records_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut database, mut wal, _) = recover(dir.path()).expect("fresh");
        create(&mut database, &mut wal, "/a");
        create(&mut database, &mut wal, "/b");
        wal.sync().expect("sync");
        let log = wal.path().to_path_buf();
        drop(wal);
        let length = std::fs::metadata(&log).expect("meta").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .expect("open")
            .set_len(length - 3)
            .expect("truncate");
        let (recovered, mut wal, report) = recover(dir.path()).expect("recovers");
        assert_eq!(recovered.zxid, 1);
        assert!(recovered.tree.get("/a").is_some());
        assert!(recovered.tree.get("/b").is_none());
        assert!(report.torn_bytes_cut > 0);
        let mut recovered = recovered;
        create(&mut recovered, &mut wal, "/c");
        wal.sync().expect("sync");
        drop(wal);
        let (again, _, report) = recover(dir.path()).expect("recovers again");
        assert_eq!(again.zxid, 2);
        assert!(again.tree.get("/c").is_some());
        assert_eq!(report.torn_bytes_cut, 0);
    }

    #[test]
    fn snapshot_then_rotated_log_recovers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut database, mut wal, _) = recover(dir.path()).expect("fresh");
        create(&mut database, &mut wal, "/a");
        wal.sync().expect("sync");
        snapshot::write(dir.path(), &database).expect("snapshot");
        wal.rotate(database.zxid + 1).expect("rotate");
        create(&mut database, &mut wal, "/b");
        wal.sync().expect("sync");
        drop(wal);
        let (recovered, _, report) = recover(dir.path()).expect("recovers");
        assert_eq!(report.snapshot_zxid, Some(1));
        assert_eq!(report.transactions_replayed, 1);
        assert!(recovered.tree.get("/a").is_some() && recovered.tree.get("/b").is_some());
    }
}
