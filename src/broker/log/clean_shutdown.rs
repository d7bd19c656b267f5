//! Kafka's `.kafka_cleanshutdown` marker: written into the log directory, durably, at the end
//! of a clean shutdown (after every log was flushed), and taken away at start-up. A broker that
//! finds none was killed, crashed or lost power: its logs may lack what they never fsync'd, so
//! with KIP-966's eligible leader replicas on it announces an unclean shutdown before it
//! registers (`broker::elr`).

use std::io;
use std::path::Path;

use crate::broker::directory::sync_dir;

/// The marker's name in the log directory (Kafka's).
pub const FILE_NAME: &str = ".kafka_cleanshutdown";

/// Whether the previous run shut down cleanly. The marker is removed (durably), so that a
/// crash from now on reads as unclean at the next start.
pub fn take(log_dir: &Path) -> io::Result<bool> {
    let path = log_dir.join(FILE_NAME);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            sync_dir(log_dir)?;
            Ok(true)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Leaves the marker: the logs are flushed and the broker stops cleanly.
pub fn mark(log_dir: &Path) -> io::Result<()> {
    let path = log_dir.join(FILE_NAME);
    let file = std::fs::File::create(&path)?;
    file.sync_all()?;
    sync_dir(log_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_taken_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!take(dir.path()).expect("take"), "a fresh directory");
        mark(dir.path()).expect("mark");
        assert!(take(dir.path()).expect("take"));
        assert!(!take(dir.path()).expect("take"), "taken away");
    }
}
