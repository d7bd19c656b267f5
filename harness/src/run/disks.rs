//! The nodes' fault filesystems, for a run whose workload has disk faults: before anything
//! else FUSE is checked (/dev/fuse, and root or `fusermount3`), so that such a run without it
//! fails at once saying what is missing; every run sweeps what killed runs left mounted
//! ([`MountSweeper`]); once the cluster is prepared (its data directories exist, no node has
//! started) a fault filesystem is mounted over every node's data directory ([`Disks::mount`]),
//! and once the nodes are stopped the mounts go. A run without disk faults mounts nothing.

use std::sync::Arc;

use super::error::RunError;
use crate::cleanup::Sweeper;
use crate::cluster::Cluster;
use crate::nemesis::disk::{self, DiskFaultError, Disks, MountSweeper};
use crate::workload::WorkloadSpec;

/// Fails (exit 2) when `spec` has disk faults and this machine or user cannot mount fault
/// filesystems, saying what is missing.
pub fn check(spec: &WorkloadSpec) -> Result<(), RunError> {
    if !spec.nemesis.has_disk_faults() {
        return Ok(());
    }
    disk::check_available().map_err(|error| RunError::Disks(DiskFaultError::from(error)))
}

/// Removes the fault filesystems killed runs left mounted (the mounts of live runs stay).
pub fn sweep() {
    match MountSweeper.remove() {
        Ok(removed) => {
            for leftover in removed {
                tracing::info!("removed what a killed run left: {leftover}");
            }
        }
        Err(error) => tracing::warn!("sweeping stale fault filesystems: {error}"),
    }
}

/// Mounts a fault filesystem over every node's data directory, when `spec` has disk faults.
pub fn mount(spec: &WorkloadSpec, cluster: &Cluster) -> Result<Option<Arc<Disks>>, RunError> {
    if !spec.nemesis.has_disk_faults() {
        return Ok(None);
    }
    Ok(Some(Arc::new(Disks::mount(cluster)?)))
}

/// Unmounts the run's fault filesystems (the nodes are stopped). One still in use by a task
/// that has not let go of it is unmounted when the last handle goes.
pub fn unmount(disks: Option<Arc<Disks>>) {
    if let Some(disks) = disks
        && let Ok(disks) = Arc::try_unwrap(disks)
        && let Err(error) = disks.unmount()
    {
        tracing::warn!("unmounting the fault filesystems: {error}");
    }
}
