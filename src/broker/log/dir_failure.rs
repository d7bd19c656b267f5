//! A failed log directory: the subset of Kafka's KIP-112 (`LogDirFailureChannel`) that a broker
//! with one log directory needs. The first I/O error in `log.dirs` — an append, an fsync, a
//! read, a truncation, a checkpoint, opening a log — takes the directory offline: every replica
//! in it stops serving at once (produce, fetch and the replica fetchers' appends answer
//! KAFKA_STORAGE_ERROR without touching the disk again, since a write that failed half-way
//! leaves files that no longer match what the log holds in memory). It was the broker's only
//! log directory, so the broker then shuts down (`server.rs`): it leaves the cluster at once
//! (closing its coordinator session, so the controller moves its leaderships now rather than
//! after a session timeout) and exits with an error naming the directory and the cause, as
//! Kafka's "Shutdown broker because all log dirs in ... have failed" does. A broker restarted
//! on a disk that still fails stops again at start-up with the same kind of message: no silent
//! crash loop, and nothing acknowledged that was not written.

use std::path::{Path, PathBuf};

use tokio::sync::watch;

/// The log directory's health, shared by every replica in it.
#[derive(Debug)]
pub struct LogDirFailures {
    dir: PathBuf,
    /// The first failure's description, once the directory is offline.
    failure: watch::Sender<Option<String>>,
}

impl LogDirFailures {
    pub fn new(dir: &Path) -> Self {
        LogDirFailures {
            dir: dir.to_path_buf(),
            failure: watch::channel(None).0,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory is offline.
    pub fn is_offline(&self) -> bool {
        self.failure.borrow().is_some()
    }

    /// The first failure, once there is one.
    pub fn failure(&self) -> Option<String> {
        self.failure.borrow().clone()
    }

    /// Takes the directory offline because `what` failed with `error` (only the first failure
    /// changes anything; every one is logged).
    pub fn fail(&self, what: &str, error: &std::io::Error) {
        let description = format!("{what}: {error}");
        tracing::error!("Error while {what} in dir {}: {error}", self.dir.display());
        let first = self.failure.send_if_modified(|failure| {
            if failure.is_some() {
                return false;
            }
            *failure = Some(description);
            true
        });
        if first {
            tracing::warn!(
                "Stopping serving replicas in dir {}: the log directory is offline",
                self.dir.display()
            );
        }
    }

    /// Resolves once the directory is offline, with the first failure.
    pub async fn failed(&self) -> String {
        let mut receiver = self.failure.subscribe();
        match receiver.wait_for(Option::is_some).await {
            Ok(failure) => failure.clone().unwrap_or_default(),
            // The sender lives as long as `self`.
            Err(_) => std::future::pending().await,
        }
    }

    /// The error a replica in an offline directory answers with (KAFKA_STORAGE_ERROR).
    pub fn offline_error(&self) -> std::io::Error {
        std::io::Error::other(format!("log directory {} is offline", self.dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_failure_takes_the_directory_offline() {
        let failures = LogDirFailures::new(Path::new("/data/kafka-logs"));
        assert!(!failures.is_offline());
        let waiting = failures.failed();
        failures.fail(
            "appending to t-0",
            &std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        failures.fail(
            "fsyncing t-1",
            &std::io::Error::from_raw_os_error(libc::EIO),
        );
        assert!(failures.is_offline());
        let first = waiting.await;
        assert!(first.starts_with("appending to t-0"), "{first}");
        assert_eq!(failures.failure(), Some(first));
        assert!(
            failures
                .offline_error()
                .to_string()
                .contains("/data/kafka-logs is offline")
        );
    }
}
