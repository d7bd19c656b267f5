//! Snapshots: the whole durable state (zxid, sessions, every znode) in one checksummed file,
//! `snapshot.<zxid in hex>`, written to a temporary file, fsync'd and renamed into place. They
//! bound how much log a restart replays.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::database::{Database, SessionRecord};
use super::jute::{Reader, Writer};
use super::protocol::Stat;
use super::txn::PASSWORD_BYTES;
use super::wal::sync_dir;

const MAGIC: &[u8; 8] = b"KCSNAP01";
const PREFIX: &str = "snapshot.";

/// A snapshot that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// Encodes the state.
pub fn encode(database: &Database) -> Vec<u8> {
    let mut body = Writer::new();
    body.i64(database.zxid);
    body.i32(database.sessions.len() as i32);
    for (session_id, record) in &database.sessions {
        body.i64(*session_id)
            .i32(record.timeout_ms)
            .buffer(&record.password);
    }
    let nodes = database.tree.nodes_in_order();
    body.i32(nodes.len() as i32);
    for (path, node) in nodes {
        body.string(path).buffer(&node.data);
        node.stored_stat().encode(&mut body);
    }
    let body = body.into_bytes();
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    bytes.extend(body);
    bytes
}

/// Decodes a state written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Database, String> {
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err("not a kchaos snapshot (bad magic)".into());
    }
    let crc = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let body = &bytes[12..];
    if crc32c::crc32c(body) != crc {
        return Err("checksum mismatch".into());
    }
    let mut reader = Reader::new(body);
    let mut database = Database {
        zxid: reader.i64().map_err(|e| e.to_string())?,
        ..Database::default()
    };
    let session_count = reader.count(28).map_err(|e| e.to_string())?;
    for _ in 0..session_count {
        let session_id = reader.i64().map_err(|e| e.to_string())?;
        let timeout_ms = reader.i32().map_err(|e| e.to_string())?;
        let password: [u8; PASSWORD_BYTES] = reader
            .buffer()
            .map_err(|e| e.to_string())?
            .try_into()
            .map_err(|_| "session password is not 16 bytes".to_string())?;
        database.sessions.insert(
            session_id,
            SessionRecord {
                timeout_ms,
                password,
            },
        );
    }
    let node_count = reader.count(76).map_err(|e| e.to_string())?;
    for _ in 0..node_count {
        let path = reader.string().map_err(|e| e.to_string())?.to_string();
        let data = reader.buffer().map_err(|e| e.to_string())?.to_vec();
        let stat = Stat::decode(&mut reader).map_err(|e| e.to_string())?;
        database.tree.restore_node(&path, data, stat)?;
    }
    Ok(database)
}

/// The snapshot files in `dir`, newest first.
pub fn snapshot_files(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        if let Some(hex) = name.strip_prefix(PREFIX)
            && let Ok(zxid) = i64::from_str_radix(hex, 16)
        {
            files.push((zxid, path));
        }
    }
    files.sort();
    files.reverse();
    Ok(files)
}

/// Writes a snapshot of `database` durably and removes older snapshots.
pub fn write(dir: &Path, database: &Database) -> Result<PathBuf, SnapshotError> {
    let path = dir.join(format!("{PREFIX}{:016x}", database.zxid));
    let temporary = dir.join(format!("{PREFIX}{:016x}.tmp", database.zxid));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SnapshotError::Io { path, source }
    };
    let mut file = std::fs::File::create(&temporary).map_err(io(&temporary))?;
    file.write_all(&encode(database)).map_err(io(&temporary))?;
    file.sync_all().map_err(io(&temporary))?;
    std::fs::rename(&temporary, &path).map_err(io(&path))?;
    sync_dir(dir).map_err(io(dir))?;
    for (zxid, older) in snapshot_files(dir).map_err(io(dir))? {
        if zxid < database.zxid {
            std::fs::remove_file(&older).map_err(io(&older))?;
        }
    }
    Ok(path)
}

/// The newest snapshot that reads back whole, if any. A damaged one is reported and skipped.
pub fn load_latest(dir: &Path) -> Result<Option<Database>, SnapshotError> {
    let files = snapshot_files(dir).map_err(|source| SnapshotError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for (_, path) in files {
        let bytes = std::fs::read(&path).map_err(|source| SnapshotError::Io {
            path: path.clone(),
            source,
        })?;
        match decode(&bytes) {
            Ok(database) => return Ok(Some(database)),
            Err(reason) => tracing::error!("skipping snapshot {}: {reason}", path.display()),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::tree::{NodeCreate, TreeOp};
    use crate::coordinator::txn::Mutation;

    fn sample() -> Database {
        let mut database = Database::default();
        let mutations = [
            Mutation::CreateSession {
                session_id: 3,
                timeout_ms: 500,
                password: [2; PASSWORD_BYTES],
            },
            Mutation::Tree(TreeOp::Create(NodeCreate {
                path: "/a".into(),
                data: b"x".to_vec(),
                ephemeral_owner: 0,
                sequential: false,
            })),
            Mutation::Tree(TreeOp::Create(NodeCreate {
                path: "/a/e".into(),
                data: vec![],
                ephemeral_owner: 3,
                sequential: false,
            })),
        ];
        for mutation in mutations {
            database
                .execute(1, mutation, &mut Vec::new())
                .expect("applies");
        }
        database
    }

    #[test]
    fn snapshot_round_trips_and_keeps_ephemeral_owners() {
        let database = sample();
        let restored = decode(&encode(&database)).expect("decodes");
        assert_eq!(restored.zxid, 3);
        assert_eq!(restored.sessions, database.sessions);
        assert_eq!(restored.tree.get("/a"), database.tree.get("/a"));
        assert_eq!(restored.tree.ephemerals_of(3), vec!["/a/e".to_string()]);
    }

    #[test]
    fn damaged_snapshot_is_refused() {
        let mut bytes = encode(&sample());
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn write_then_load_latest() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), &Database::default()).expect("first");
        write(dir.path(), &sample()).expect("second");
        assert_eq!(snapshot_files(dir.path()).expect("list").len(), 1);
        let loaded = load_latest(dir.path()).expect("load").expect("some");
        assert_eq!(loaded.zxid, 3);
    }
}
