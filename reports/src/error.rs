//! The one error type of the crate: every variant names the file that was missing, unreadable
//! or malformed, so `kchaos report` can say exactly what to look at.

use std::path::PathBuf;

/// Why a report, index or JUnit file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path} is missing")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} line {line} is malformed: {reason}")]
    MalformedLine {
        path: PathBuf,
        /// 1-based.
        line: u64,
        reason: String,
    },
    #[error("{path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
