//! What can go wrong writing or reading a history.

use std::path::PathBuf;

/// What can go wrong writing or reading a history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("history {path} line {line}: {reason}")]
    Malformed {
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        reason: String,
    },
    #[error("history {path} is closed")]
    Closed { path: PathBuf },
    #[error("history {path}: an earlier write failed: {reason}")]
    Poisoned { path: PathBuf, reason: String },
}
