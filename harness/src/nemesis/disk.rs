//! The disk fault family: every node's data directory on a fault filesystem of its own (the
//! `faultfs` crate), mounted before the nodes start when a workload has disk faults, and what
//! each disk fault does to it:
//! - `lose-unfsynced`: the disk's power is cut (calls fail, an fsync under way answers EIO
//!   without taking effect), the node SIGKILLed, then every change it never made durable with
//!   an fsync is dropped from its disk (with `tear`, a sector-aligned prefix of its last write is kept, as
//!   a crash mid-write leaves it); the node stays down until started;
//! - `power-loss`: the same for several nodes at one instant — all are killed before any loses
//!   its data, so none of them acts in between;
//! - `disk-full` (ENOSPC), `disk-error` (EIO on reads, writes or both) and `slow-disk` (every
//!   fsync takes effect and answers `fsync_delay` late): windows that `heal-disk` closes, as
//!   does the heal at the end of the fault phase.
//!
//! It knows nothing of the system under test: the mount covers whatever directory a command
//! template's `{data_dir}` names, so a Java Kafka runs on it as well as ours. The backing files
//! stay in the run directory (`<node>/data-disk/` beside `<node>/data/`) after the mount is gone.
//!
//! Every mount's tag is `kchaos-<pid>-<run>-<node>` (its source in /proc/mounts is
//! `kchaos-faultfs:<tag>`): [`MountSweeper`] ([`remove_stale_disks`]) removes the mounts of
//! runs whose process is gone (a killed orchestrator's), which every run does first, as does
//! `kchaos cleanup`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use faultfs::{ErrorOn, FaultFs, FaultFsError, FaultMount, LossReport, Tear};
use serde_json::{Value, json};

use crate::cleanup::{Leftover, SweepError, Sweeper};
use crate::cluster::{Cluster, ClusterError};
use crate::workload::{DiskErrors, DiskFaultSettings, Fault};

/// The first word of every mount tag of a run.
pub const TAG_PREFIX: &str = "kchaos-";

/// Runs of this process so far: keeps the tags of runs in one process (tests) apart.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// Why a disk fault could not be set up or done.
#[derive(Debug, thiserror::Error)]
pub enum DiskFaultError {
    #[error(transparent)]
    FaultFs(#[from] FaultFsError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("cannot create the backing directory {path}: {source}")]
    Backing {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0} has no fault filesystem (the harness mounts one over every node's data directory only when the workload has disk faults)"
    )]
    NoDisk(String),
}

/// A disk fault as the nemesis does it: the step's settings, and the draw (from the run's
/// seed) that sizes a tear.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskFaultPlan {
    pub settings: DiskFaultSettings,
    pub tear_draw: u64,
}

/// Checks that this process can mount fault filesystems (/dev/fuse, and root or
/// `fusermount3`); the error says what is missing.
pub fn check_available() -> Result<(), FaultFsError> {
    faultfs::check_fuse_available().map_err(FaultFsError::from)
}

/// The fault filesystems of kchaos runs whose process is gone. Mounts of live runs (this
/// one's, other processes') are not among them.
pub fn find_stale_disks() -> Result<Vec<FaultMount>, FaultFsError> {
    Ok(faultfs::find_stale_mounts(TAG_PREFIX)?
        .into_iter()
        .filter(|mount| owner_pid(&mount.tag).is_some_and(|pid| !process_alive(pid)))
        .collect())
}

/// Removes the fault filesystems of kchaos runs whose process is gone, and returns them.
/// Mounts of live runs (this one's, other processes') are left alone.
pub fn remove_stale_disks() -> Result<Vec<FaultMount>, FaultFsError> {
    let stale = find_stale_disks()?;
    let mut removed = Vec::with_capacity(stale.len());
    for mount in stale {
        // Each mount on its own tag: a prefix of one tag can match another's.
        removed.extend(
            faultfs::remove_stale_mounts(&mount.tag)?
                .into_iter()
                .filter(|found| found.tag == mount.tag),
        );
    }
    Ok(removed)
}

/// The fault filesystems of killed runs, for `kchaos cleanup` and the start of every run
/// ([`crate::cleanup`]): mounts tagged `kchaos-<pid>-...` whose process is gone.
pub struct MountSweeper;

impl MountSweeper {
    fn leftovers(mounts: Vec<FaultMount>) -> Vec<Leftover> {
        mounts
            .into_iter()
            .map(|mount| Leftover {
                what: format!("fault filesystem {}", mount.tag),
                run_id: run_id_of(&mount.mount_point),
                resources: vec![format!("mount {}", mount.mount_point.display())],
            })
            .collect()
    }
}

impl Sweeper for MountSweeper {
    fn name(&self) -> &'static str {
        "mounts"
    }

    fn find(&self) -> Result<Vec<Leftover>, SweepError> {
        find_stale_disks()
            .map(Self::leftovers)
            .map_err(|error| SweepError::Failed(error.to_string()))
    }

    fn remove(&self) -> Result<Vec<Leftover>, SweepError> {
        remove_stale_disks()
            .map(Self::leftovers)
            .map_err(|error| SweepError::Failed(error.to_string()))
    }
}

/// `<workload>/<timestamp>` of a mount at `<store>/<workload>/<timestamp>/<node>/data`.
fn run_id_of(mount_point: &Path) -> Option<String> {
    let run_dir = mount_point.parent()?.parent()?;
    let timestamp = run_dir.file_name()?.to_str()?;
    let workload = run_dir.parent()?.file_name()?.to_str()?;
    Some(format!("{workload}/{timestamp}"))
}

/// The pid in `kchaos-<pid>-<run>-<node>`.
fn owner_pid(tag: &str) -> Option<i32> {
    tag.strip_prefix(TAG_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

fn process_alive(pid: i32) -> bool {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(errno) => errno != nix::errno::Errno::ESRCH,
    }
}

/// The fault filesystems of one run, by node name. Dropping it unmounts them: stop the nodes
/// first.
#[derive(Debug)]
pub struct Disks {
    disks: BTreeMap<String, FaultFs>,
}

impl Disks {
    /// Mounts a fault filesystem over every node's data directory, backed by `<node>/disk`
    /// beside it. Call before the nodes start: what the data directories hold now is durable.
    pub fn mount(cluster: &Cluster) -> Result<Self, DiskFaultError> {
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let mut disks = BTreeMap::new();
        for name in cluster.node_names() {
            let data_dir = cluster.data_dir(&name)?;
            let backing = data_dir
                .parent()
                .unwrap_or(Path::new("."))
                .join(format!("{}-disk", file_name(&data_dir)));
            std::fs::create_dir_all(&backing).map_err(|source| DiskFaultError::Backing {
                path: backing.clone(),
                source,
            })?;
            let tag = format!("{TAG_PREFIX}{}-{run}-{name}", std::process::id());
            let disk = FaultFs::mount(&backing, &data_dir, &tag)?;
            disks.insert(name, disk);
        }
        Ok(Disks { disks })
    }

    fn disk(&self, node: &str) -> Result<&FaultFs, DiskFaultError> {
        self.disks
            .get(node)
            .ok_or_else(|| DiskFaultError::NoDisk(node.to_string()))
    }

    /// Does a disk fault other than `power-loss` to one node; returns what it did, for the
    /// history.
    pub fn inject(
        &self,
        cluster: &mut Cluster,
        fault: Fault,
        node: &str,
        plan: &DiskFaultPlan,
    ) -> Result<Value, DiskFaultError> {
        let disk = self.disk(node)?;
        match fault {
            Fault::LoseUnfsynced | Fault::PowerLoss => {
                // The power goes first: an fsync the node is in then fails rather than
                // completing while the node dies.
                disk.power_off();
                cluster.kill(node)?;
                lose(disk, plan)
            }
            Fault::DiskFull => {
                disk.inject(faultfs::Fault::DiskFull);
                Ok(json!({}))
            }
            Fault::DiskError => {
                let on = match plan.settings.errors {
                    DiskErrors::Reads => ErrorOn::Reads,
                    DiskErrors::Writes => ErrorOn::Writes,
                    DiskErrors::ReadsAndWrites => ErrorOn::ReadsAndWrites,
                };
                disk.inject(faultfs::Fault::DiskError { on });
                Ok(json!({}))
            }
            Fault::SlowDisk => {
                let Some(fsync_delay) = plan.settings.fsync_delay else {
                    return Ok(json!({"skipped": "no fsync_delay"}));
                };
                disk.inject(faultfs::Fault::SlowDisk { fsync_delay });
                Ok(json!({}))
            }
            Fault::HealDisk => {
                disk.clear_faults();
                Ok(json!({}))
            }
            Fault::Kill
            | Fault::Pause
            | Fault::Resume
            | Fault::Stop
            | Fault::Start
            | Fault::Restart
            | Fault::Partition
            | Fault::Heal => Ok(json!({})),
        }
    }

    /// `power-loss`: cuts the power of every disk of `nodes`, kills every node, then drops what
    /// each never made durable. One result per node, in order.
    pub fn power_loss(
        &self,
        cluster: &mut Cluster,
        nodes: &[String],
        plan: &DiskFaultPlan,
    ) -> Vec<Result<Value, DiskFaultError>> {
        for node in nodes {
            if let Ok(disk) = self.disk(node) {
                disk.power_off();
            }
        }
        let killed: Vec<Result<(), DiskFaultError>> = nodes
            .iter()
            .map(|node| {
                self.disk(node)?;
                cluster.kill(node).map_err(DiskFaultError::from)
            })
            .collect();
        nodes
            .iter()
            .zip(killed)
            .map(|(node, killed)| {
                killed?;
                lose(self.disk(node)?, plan)
            })
            .collect()
    }

    /// Closes every open disk-full, disk-error and slow-disk window; returns the nodes that had
    /// one.
    pub fn heal(&self) -> Vec<String> {
        self.disks
            .iter()
            .filter(|(_, disk)| !disk.active_faults().is_clear())
            .map(|(node, disk)| {
                disk.clear_faults();
                node.clone()
            })
            .collect()
    }

    /// Unmounts every disk (the backing files stay); the nodes must be stopped.
    pub fn unmount(self) -> Result<(), FaultFsError> {
        let mut first_error = None;
        for (_, disk) in self.disks {
            if let Err(error) = disk.unmount() {
                tracing::warn!("{error}");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".to_string())
}

/// Drops what the (killed) node never made durable, tearing its last write if asked.
fn lose(disk: &FaultFs, plan: &DiskFaultPlan) -> Result<Value, DiskFaultError> {
    let tear = if plan.settings.tear {
        disk.last_unsynced_write().map(|write| Tear {
            keep_sectors: plan.tear_draw % (write.sectors + 1),
        })
    } else {
        None
    };
    let report = disk.lose_unsynced(tear)?;
    Ok(json!({ "lost": loss_json(&report) }))
}

/// What a loss dropped, as the history records it.
fn loss_json(report: &LossReport) -> Value {
    json!({
        "files_rolled_back": report.files_rolled_back,
        "entries_removed": report.entries_removed,
        "entries_restored": report.entries_restored,
        "torn_write": report.torn_write.as_ref().map(|torn| json!({
            "path": torn.path.display().to_string(),
            "offset": torn.offset,
            "length": torn.length,
            "kept_bytes": torn.kept_bytes,
        })),
    })
}

/// What the invocation of a disk fault records beside the node: its settings.
pub fn invocation_details(fault: Fault, plan: &DiskFaultPlan) -> Value {
    match fault {
        Fault::LoseUnfsynced | Fault::PowerLoss if plan.settings.tear => json!({"tear": true}),
        Fault::DiskError => json!({"errors": plan.settings.errors.name()}),
        Fault::SlowDisk => json!({
            "fsync_delay_ms": plan.settings.fsync_delay.map(|delay| delay.as_millis() as u64),
        }),
        _ => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_pid_is_read_from_the_tag() {
        assert_eq!(owner_pid("kchaos-4242-0-broker-1"), Some(4242));
        assert_eq!(owner_pid("kchaos-x-0-broker-1"), None);
        assert_eq!(owner_pid("test-4242-0"), None);
        assert!(process_alive(std::process::id() as i32));
    }

    #[test]
    fn a_leftover_names_its_run() {
        let leftovers = MountSweeper::leftovers(vec![FaultMount {
            tag: "kchaos-7-0-broker-1".into(),
            mount_point: "/store/disk-full-leader/20260101T000000Z/broker-1/data".into(),
        }]);
        assert_eq!(
            leftovers[0].to_string(),
            "fault filesystem kchaos-7-0-broker-1 (run disk-full-leader/20260101T000000Z): mount \
             /store/disk-full-leader/20260101T000000Z/broker-1/data"
        );
    }
}
