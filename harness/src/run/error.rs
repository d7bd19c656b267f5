//! Why a run could not be carried out (exit code 2), whichever phase failed.

use std::path::PathBuf;

use crate::cluster::ClusterError;

/// Why a run could not be carried out (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] super::store::StoreError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Workload(#[from] crate::workload::WorkloadError),
    #[error(transparent)]
    History(#[from] history::HistoryError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("the workload has disk faults, which need a fault filesystem on every node: {0}")]
    Disks(#[from] crate::nemesis::disk::DiskFaultError),
    #[error("the cluster did not come up: {0}")]
    Setup(String),
    #[error("the client workers could not start: {0}")]
    Clients(String),
    #[error("a task of the run failed: {0}")]
    Task(String),
    #[error("{0}")]
    Network(String),
}
