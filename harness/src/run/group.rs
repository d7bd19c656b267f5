//! The consumer group's part of a run, for a workload with `[clients.group]`: its members start
//! with the producers; after the heal and the producers' drain they catch up (read and commit
//! up to every partition's high watermark, within `catch_up_timeout_ms`) and then close
//! cleanly, so that `unconsumed` judges a group that had the chance to read everything.

use std::sync::Arc;
use std::time::Duration;

use super::error::RunError;
use crate::clients::group_consumer::GroupMemberSettings;
use crate::clients::group_members::GroupMembers;
use crate::recorder::Recorder;
use crate::workload::{GroupSpec, WorkloadSpec};

/// Starts the group's members: processes `producers + 1 ..= producers + consumers`; members
/// started later (after a kill) number on from `producers + consumers + 2` (the final read is
/// `producers + consumers + 1`).
pub fn start_members(
    spec: &WorkloadSpec,
    group: &GroupSpec,
    bootstrap: &str,
    recorder: &Recorder,
) -> Result<Arc<GroupMembers>, RunError> {
    let producers = u64::from(spec.clients.producers);
    let consumers = u64::from(spec.clients.consumers);
    let settings = GroupMemberSettings {
        bootstrap_servers: bootstrap.to_string(),
        topic: spec.topic.name.clone(),
        group: group.id.clone(),
        session_timeout_ms: group.session_timeout_ms,
        heartbeat_interval_ms: group.heartbeat_interval_ms,
        max_poll_interval_ms: group.max_poll_interval_ms,
    };
    GroupMembers::start(
        settings,
        recorder.clone(),
        producers + 1,
        spec.clients.consumers,
        producers + consumers + 2,
    )
    .map_err(|error| RunError::Task(error.to_string()))
}

/// Lets the members catch up, then closes them. Partitions still behind at the deadline are
/// logged; the checker's `unconsumed` says which acknowledged values they never read.
pub async fn catch_up_and_stop(
    members: Arc<GroupMembers>,
    group: &GroupSpec,
    partitions: u32,
) -> Result<(), RunError> {
    let timeout = Duration::from_millis(group.catch_up_timeout_ms);
    let id = group.id.clone();
    tokio::task::spawn_blocking(move || {
        let behind = members.catch_up(partitions, timeout);
        for (partition, committed, high_watermark) in behind {
            tracing::warn!(
                "group {id}: partition {partition} committed {committed}, high watermark \
                 {high_watermark} after {} ms of catching up",
                timeout.as_millis()
            );
        }
        members.stop_all();
    })
    .await
    .map_err(|error| RunError::Task(error.to_string()))
}
