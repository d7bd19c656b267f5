//! The consumer group's part of a run, for a workload with `[clients.group]`: its members (worker
//! processes, started with the producers) run in slots, and the nemesis hits them through
//! [`MemberFaults`]; after the heal and
//! the producers' drain they catch up (read and commit up to every partition's high watermark,
//! as the cluster reports them, within `catch_up_timeout_ms`) and then close cleanly, so that
//! `unconsumed` judges a group that had the chance to read everything.

use std::sync::Arc;
use std::time::Duration;

use super::error::RunError;
use crate::clients::group_member::GroupMemberSettings;
use crate::clients::group_members::{GroupMembers, is_member};
use crate::clients::session::{Launcher, Session};
use crate::cluster::group_coordinator::{PartitionLag, group_lag};
use crate::nemesis::ClientFaults;
use crate::recorder::Recorder;
use crate::workload::{Fault, GroupSpec, WorkloadSpec};

/// How long one look at the group's commits may take.
const LAG_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the catch-up looks.
const CATCH_UP_INTERVAL: Duration = Duration::from_millis(250);

/// The nemesis's faults done to the group's members.
pub struct MemberFaults(pub Arc<GroupMembers>);

impl ClientFaults for MemberFaults {
    fn owns(&self, node: &str) -> bool {
        is_member(node)
    }

    fn inject(&self, fault: Fault, node: &str) -> Result<u64, String> {
        let members = &self.0;
        match fault {
            Fault::Kill => members.kill(node),
            Fault::Pause => members.pause(node),
            Fault::Resume => members.resume(node),
            Fault::Stop => members.stop(node),
            Fault::Start => members.start(node),
            Fault::Restart => members.restart(node),
            other => {
                return Err(format!(
                    "`{}` is not a fault of a group member (kill, pause, resume, stop, start, restart)",
                    other.name()
                ));
            }
        }
        .map_err(|error| error.to_string())
    }

    fn heal(&self) -> Result<Vec<(String, &'static str)>, String> {
        self.0.heal().map_err(|error| error.to_string())
    }

    fn running(&self) -> Vec<String> {
        self.0.running()
    }
}

/// The members' settings (their worker's config comes from it).
pub fn member_settings(
    spec: &WorkloadSpec,
    group: &GroupSpec,
    bootstrap: &str,
) -> GroupMemberSettings {
    GroupMemberSettings {
        bootstrap_servers: bootstrap.to_string(),
        topic: spec.topic.name.clone(),
        group: group.id.clone(),
        session_timeout_ms: group.session_timeout_ms,
        heartbeat_interval_ms: group.heartbeat_interval_ms,
        max_poll_interval_ms: group.max_poll_interval_ms,
    }
}

/// Runs the group's members in slots `consumer-1..`, one per worker of `first`; replacements
/// take fresh process numbers from `launcher`.
pub fn start_members(
    spec: &WorkloadSpec,
    group: &GroupSpec,
    bootstrap: &str,
    first: Vec<Arc<dyn Session>>,
    launcher: Arc<dyn Launcher>,
    recorder: &Recorder,
) -> Arc<GroupMembers> {
    GroupMembers::launch(
        first,
        member_settings(spec, group, bootstrap),
        launcher,
        recorder.clone(),
    )
}

/// Lets the members catch up, then closes them. Partitions still behind at the deadline are
/// logged; the checker's `unconsumed` says which acknowledged values they never read.
pub async fn catch_up_and_stop(
    members: Arc<GroupMembers>,
    group: &GroupSpec,
    spec: &WorkloadSpec,
    addresses: &[String],
) -> Result<(), RunError> {
    let timeout = Duration::from_millis(group.catch_up_timeout_ms);
    let deadline = tokio::time::Instant::now() + timeout;
    let partitions = spec.topic.partitions;
    loop {
        let lag = group_lag(
            addresses,
            &group.id,
            &spec.topic.name,
            partitions,
            LAG_TIMEOUT,
        )
        .await;
        let behind: Vec<PartitionLag> = match &lag {
            Ok(lag) => lag.iter().filter(|p| !p.caught_up()).copied().collect(),
            Err(_) => Vec::new(),
        };
        if lag.is_ok() && behind.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            match lag {
                Ok(_) => {
                    for partition in behind {
                        tracing::warn!(
                            "group {}: partition {} committed {}, high watermark {} after {} ms \
                             of catching up",
                            group.id,
                            partition.partition,
                            partition.committed,
                            partition.high_watermark,
                            timeout.as_millis()
                        );
                    }
                }
                Err(error) => tracing::warn!("catching up: {error}"),
            }
            break;
        }
        tokio::time::sleep(CATCH_UP_INTERVAL).await;
    }
    members.stop_all().await;
    Ok(())
}
