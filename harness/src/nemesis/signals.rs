//! The signal fault family: what a signal does to a node's process — kill (SIGKILL), pause
//! (SIGSTOP), resume (SIGCONT), stop (SIGTERM, then SIGKILL after [`STOP_GRACE`]), start (a
//! node that is down), restart — and the heal of all of it (resume every frozen node, start
//! every node that is down). Blocking: a stop waits for the process to end.

use std::time::Duration;

use crate::cluster::{Cluster, ClusterError};
use crate::workload::Fault;

/// How long a SIGTERM'd node may take to stop before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// Does `fault` to `node`. Network and disk faults are not this family's: they do nothing here.
pub fn inject(cluster: &mut Cluster, fault: Fault, name: &str) -> Result<(), ClusterError> {
    match fault {
        Fault::Partition | Fault::Heal => Ok(()),
        Fault::Kill => cluster.kill(name),
        Fault::Pause => cluster.pause(name),
        Fault::Resume => cluster.resume(name),
        Fault::Stop => cluster.stop(name, STOP_GRACE).map(|_| ()),
        Fault::Start => cluster.start(name).map(|_| ()),
        Fault::Restart => cluster
            .stop(name, STOP_GRACE)
            .and_then(|_| cluster.start(name))
            .map(|_| ()),
        Fault::LoseUnfsynced
        | Fault::PowerLoss
        | Fault::DiskFull
        | Fault::DiskError
        | Fault::SlowDisk
        | Fault::HealDisk => Ok(()),
    }
}

/// Undoes every signal fault; returns what it did, `(node, "resume" | "start")`.
pub fn heal(cluster: &mut Cluster) -> Result<Vec<(String, &'static str)>, ClusterError> {
    cluster.heal_all()
}
