//! One `__consumer_offsets` partition this broker leads, and the groups that map to it: the
//! coordinator's unit of failover (Kafka loads and unloads groups per partition).
//!
//! Life: created `Loading` when this broker becomes the partition's leader; the log is read
//! (to its end: as leader its log is the one that will be committed), then the shard waits
//! until the high watermark has reached what it read — so nothing it serves can be lost with a
//! later failover — and becomes `Active`. When leadership moves away it is `Unloaded`: parked
//! requests are answered NOT_COORDINATOR and the state is dropped.
//!
//! Writes (offset commits, the leader's assignment, empty groups, expired offsets) are appended
//! as leader while the shard's lock is held — so the log's order is the order of the decisions —
//! and acknowledged only once the high watermark has passed them (`acks=all`, honouring
//! `min.insync.replicas`), within `offsets.commit.timeout.ms`.
//!
//! One timer task per shard sleeps until the earliest group deadline (or a wakeup when a
//! request changed them), expires what is due, and sweeps expired offsets every
//! `offsets.retention.check.interval.ms`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::Notify;

use super::GROUP_METADATA_TOPIC;
use super::clock::Now;
use super::config::GroupCoordinatorConfig;
use super::host::GroupHost;
use super::loader::Replay;
use super::machine::{Group, GroupWrite};
use super::records::{self, OffsetValue, RecordKey};
use crate::broker::log::partition_log::{AppendError, AppendInfo};
use crate::broker::log::records::DecompressionBudget;
use crate::broker::partition::{Partition, PartitionError};

/// Bytes read per step while loading.
const LOAD_READ_BYTES: usize = 1024 * 1024;
/// Rounds of follow-up writes one decision may cause (a failed write can empty a group, which
/// is written in turn).
const MAX_WRITE_ROUNDS: usize = 8;
/// The timer task wakes at least this often (a safety net; deadlines and wakeups are the
/// normal path).
const MAX_TIMER_SLEEP: Duration = Duration::from_secs(10);

/// The groups of an active shard.
pub type Groups = BTreeMap<String, Group>;

enum ShardState {
    Loading,
    Active(Groups),
    Unloaded,
}

/// A record to append: key and value (`None`: a tombstone).
type Entry = (Bytes, Option<Bytes>);

/// One led `__consumer_offsets` partition.
pub struct Shard {
    pub partition: i32,
    pub leader_epoch: i32,
    replica: Arc<Partition>,
    config: GroupCoordinatorConfig,
    state: Mutex<ShardState>,
    /// Poked when a request changed a group's deadlines (the timer task recomputes).
    wakeup: Notify,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Shard({GROUP_METADATA_TOPIC}-{} epoch {})",
            self.partition, self.leader_epoch
        )
    }
}

/// Locked access to an active shard's groups.
pub struct ActiveGroups<'a> {
    guard: MutexGuard<'a, ShardState>,
}

impl ActiveGroups<'_> {
    pub fn groups(&mut self) -> &mut Groups {
        match &mut *self.guard {
            ShardState::Active(groups) => groups,
            // `Shard::lock_active` only hands out active shards and holds the lock.
            ShardState::Loading | ShardState::Unloaded => unreachable!("checked when locked"),
        }
    }
}

impl Shard {
    pub fn new(
        partition: i32,
        leader_epoch: i32,
        replica: Arc<Partition>,
        config: GroupCoordinatorConfig,
    ) -> Self {
        Shard {
            partition,
            leader_epoch,
            replica,
            config,
            state: Mutex::new(ShardState::Loading),
            wakeup: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ShardState> {
        crate::lock::lock(&self.state)
    }

    /// The groups, if the shard is active: COORDINATOR_LOAD_IN_PROGRESS while loading,
    /// NOT_COORDINATOR once unloaded.
    pub fn lock_active(&self) -> Result<ActiveGroups<'_>, ResponseError> {
        let guard = self.lock();
        match &*guard {
            ShardState::Active(_) => Ok(ActiveGroups { guard }),
            ShardState::Loading => Err(ResponseError::CoordinatorLoadInProgress),
            ShardState::Unloaded => Err(ResponseError::NotCoordinator),
        }
    }

    pub fn is_loading(&self) -> bool {
        matches!(*self.lock(), ShardState::Loading)
    }

    /// Tells the timer task that deadlines changed.
    pub fn poke(&self) {
        self.wakeup.notify_one();
    }

    // ------------------------------------------------------------------ writes

    /// Appends records as leader (under the shard's lock, by the caller), `acks=all`-style
    /// checks included.
    fn append(
        &self,
        host: &dyn GroupHost,
        entries: &[Entry],
    ) -> Result<AppendInfo, PartitionError> {
        let state = self.replica.leader_and_isr();
        if state.leader != host.broker_id() || state.leader_epoch != self.leader_epoch {
            return Err(PartitionError::NotLeader {
                broker_id: host.broker_id(),
                leader: state.leader,
            });
        }
        let bytes = records::encode_batch(entries, 0, Now::current().wall_ms).map_err(|error| {
            PartitionError::Append(AppendError::Io(std::io::Error::other(format!(
                "cannot encode a {GROUP_METADATA_TOPIC} batch: {error:#}"
            ))))
        })?;
        let min_insync_replicas = host.min_insync_replicas(GROUP_METADATA_TOPIC);
        // Our own batch, uncompressed: the budget only bounds what clients send.
        let mut budget = DecompressionBudget::for_request(host.message_max_bytes());
        self.replica
            .append_as_leader(&bytes, true, min_insync_replicas, &mut budget)
    }

    /// Waits until an appended write is replicated (the high watermark passed it).
    async fn replicated(
        &self,
        host: &dyn GroupHost,
        info: &AppendInfo,
    ) -> Result<(), PartitionError> {
        let min_insync_replicas = host.min_insync_replicas(GROUP_METADATA_TOPIC);
        let timeout = Duration::from_millis(self.config.offsets_commit_timeout_ms);
        self.replica
            .wait_for_commit(info, min_insync_replicas, timeout)
            .await
    }

    /// An offset commit: checks membership (creating a simple group for a commit without
    /// one), appends the offsets and, once replicated, makes them visible to OffsetFetch.
    pub async fn commit_offsets(
        self: &Arc<Self>,
        host: &Arc<dyn GroupHost>,
        group_id: &str,
        member: (&str, Option<&str>, i32),
        offsets: Vec<(String, i32, OffsetValue)>,
    ) -> Result<(), ResponseError> {
        let (member_id, group_instance_id, generation_id) = member;
        let now = Now::current();
        let info = {
            let mut active = self.lock_active()?;
            let groups = active.groups();
            if !groups.contains_key(group_id) {
                if generation_id >= 0 {
                    return Err(ResponseError::IllegalGeneration);
                }
                tracing::info!(
                    "[GroupCoordinator {}] Creating simple consumer group {group_id} via manual \
                     offset commit.",
                    host.broker_id()
                );
                groups.insert(group_id.to_string(), Group::new(group_id, self.config, now));
            }
            let Some(group) = groups.get_mut(group_id) else {
                return Err(ResponseError::CoordinatorNotAvailable);
            };
            group.validate_commit(member_id, group_instance_id, generation_id, now)?;
            let entries: Vec<Entry> = offsets
                .iter()
                .map(|(topic, partition, value)| {
                    (
                        records::encode_key(&RecordKey::Offset {
                            group: group_id.to_string(),
                            topic: topic.clone(),
                            partition: *partition,
                        }),
                        Some(records::encode_offset_value(value)),
                    )
                })
                .collect();
            self.poke();
            self.append(host.as_ref(), &entries)
                .map_err(|error| commit_error(&error))?
        };
        self.replicated(host.as_ref(), &info)
            .await
            .map_err(|error| commit_error(&error))?;
        let mut active = self.lock_active()?;
        let group = active
            .groups()
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, self.config, now));
        for (i, (topic, partition, value)) in offsets.into_iter().enumerate() {
            group
                .offsets
                .apply(&topic, partition, value, info.base_offset + i as i64);
        }
        Ok(())
    }

    /// Makes the writes a group decision queued (under the lock), and spawns the waits for
    /// their replication; their outcome is fed back to the group.
    pub fn flush_writes(
        self: &Arc<Self>,
        host: &Arc<dyn GroupHost>,
        groups: &mut Groups,
        group_id: &str,
    ) {
        for _ in 0..MAX_WRITE_ROUNDS {
            let Some(group) = groups.get_mut(group_id) else {
                return;
            };
            let writes = group.take_writes();
            if writes.is_empty() {
                return;
            }
            for write in writes {
                let (generation, value) = match write {
                    GroupWrite::Assignment { generation, value } => (Some(generation), value),
                    GroupWrite::Metadata { value } => (None, value),
                };
                let entry = (
                    records::encode_key(&RecordKey::Group {
                        group: group_id.to_string(),
                    }),
                    Some(records::encode_group_value(&value)),
                );
                match self.append(host.as_ref(), &[entry]) {
                    Ok(info) => self.spawn_write_completion(host, group_id, generation, info),
                    Err(error) => {
                        let error = group_write_error(&error);
                        match generation {
                            Some(generation) => {
                                group.assignment_stored(generation, Err(error), Now::current())
                            }
                            None => tracing::warn!(
                                "[GroupCoordinator {}] Failed to write metadata for group \
                                 {group_id}: {error:?}",
                                host.broker_id()
                            ),
                        }
                    }
                }
            }
        }
    }

    fn spawn_write_completion(
        self: &Arc<Self>,
        host: &Arc<dyn GroupHost>,
        group_id: &str,
        generation: Option<i32>,
        info: AppendInfo,
    ) {
        let shard = Arc::clone(self);
        let host = Arc::clone(host);
        let group_id = group_id.to_string();
        tokio::spawn(async move {
            let result = shard
                .replicated(host.as_ref(), &info)
                .await
                .map_err(|error| group_write_error(&error));
            let Some(generation) = generation else {
                if let Err(error) = result {
                    tracing::warn!(
                        "[GroupCoordinator {}] Failed to write metadata for group {group_id}: \
                         {error:?}",
                        host.broker_id()
                    );
                }
                return;
            };
            let Ok(mut active) = shard.lock_active() else {
                return;
            };
            let groups = active.groups();
            if let Some(group) = groups.get_mut(&group_id) {
                group.assignment_stored(generation, result, Now::current());
                shard.flush_writes(&host, groups, &group_id);
            }
            drop(active);
            shard.poke();
        });
    }

    /// Appends tombstones for expired offsets and removed groups (best effort: a failed
    /// append is retried at the next sweep, since the entries are already gone from memory
    /// only when it succeeds).
    fn write_tombstones(&self, host: &dyn GroupHost, keys: &[RecordKey]) -> bool {
        if keys.is_empty() {
            return true;
        }
        let entries: Vec<Entry> = keys
            .iter()
            .map(|key| (records::encode_key(key), None))
            .collect();
        match self.append(host, &entries) {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(
                    "[GroupCoordinator {}] cannot write {} tombstones to {GROUP_METADATA_TOPIC}-{}: \
                     {error}",
                    host.broker_id(),
                    keys.len(),
                    self.partition
                );
                false
            }
        }
    }

    // ---------------------------------------------------------- load / unload

    /// Reads the partition and activates the shard (see the module doc). Ends early if the
    /// shard is unloaded meanwhile.
    pub async fn load(self: Arc<Self>, host: Arc<dyn GroupHost>) {
        let started = std::time::Instant::now();
        let reader = Arc::clone(&self.replica);
        let read = tokio::task::spawn_blocking(move || read_partition(&reader)).await;
        let (replay, end) = match read {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(error)) => {
                tracing::error!(
                    "[GroupCoordinator {}] cannot load {GROUP_METADATA_TOPIC}-{}: {error}",
                    host.broker_id(),
                    self.partition
                );
                return;
            }
            Err(error) => {
                tracing::error!("group loading task failed: {error}");
                return;
            }
        };
        // Serve only what is committed: wait until the high watermark reaches what was read.
        let mut offsets = self.replica.subscribe();
        let generation = offsets.borrow().generation;
        let committed = offsets
            .wait_for(|o| o.high_watermark >= end || o.generation != generation)
            .await
            .map(|o| o.high_watermark >= end && o.generation == generation);
        if !matches!(committed, Ok(true)) {
            return;
        }
        let (records, skipped) = (replay.records, replay.skipped);
        let groups = replay.into_groups(self.config, Now::current());
        let count = groups.len();
        {
            let mut state = self.lock();
            if !matches!(*state, ShardState::Loading) {
                return;
            }
            *state = ShardState::Active(groups);
        }
        self.poke();
        tracing::info!(
            "[GroupCoordinator {}] Finished loading offsets and group metadata from \
             {GROUP_METADATA_TOPIC}-{} in {} milliseconds: {count} groups, {records} records \
             ({skipped} skipped), up to offset {end}",
            host.broker_id(),
            self.partition,
            started.elapsed().as_millis()
        );
    }

    /// Leadership moved: answers parked requests with NOT_COORDINATOR and drops the groups.
    pub fn unload(&self, broker_id: i32) {
        let now = Now::current();
        let previous = std::mem::replace(&mut *self.lock(), ShardState::Unloaded);
        if let ShardState::Active(mut groups) = previous {
            for group in groups.values_mut() {
                group.unload(now);
            }
            tracing::info!(
                "[GroupCoordinator {broker_id}] Unloaded {} groups of {GROUP_METADATA_TOPIC}-{} \
                 (epoch {})",
                groups.len(),
                self.partition,
                self.leader_epoch
            );
        }
        self.poke();
    }

    // ------------------------------------------------------------------ timers

    /// Expires group deadlines as they come and sweeps expired offsets, until unloaded.
    pub async fn run_timers(self: Arc<Self>, host: Arc<dyn GroupHost>) {
        let sweep_every =
            Duration::from_millis(self.config.offsets_retention_check_interval_ms.max(1));
        let mut next_sweep = tokio::time::Instant::now() + sweep_every;
        loop {
            let next_deadline = match &*self.lock() {
                ShardState::Unloaded => return,
                ShardState::Loading => None,
                ShardState::Active(groups) => {
                    groups.values().filter_map(Group::next_deadline).min()
                }
            };
            let wake_at = next_deadline
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + MAX_TIMER_SLEEP)
                .min(next_sweep);
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = self.wakeup.notified() => {}
            }
            self.expire_due(&host);
            if tokio::time::Instant::now() >= next_sweep {
                self.sweep_expired_offsets(host.as_ref());
                next_sweep = tokio::time::Instant::now() + sweep_every;
            }
        }
    }

    /// Runs every group's due deadlines and forgets groups that hold nothing.
    fn expire_due(self: &Arc<Self>, host: &Arc<dyn GroupHost>) {
        let Ok(mut active) = self.lock_active() else {
            return;
        };
        let now = Now::current();
        let groups = active.groups();
        let due: Vec<String> = groups
            .iter()
            .filter(|(_, group)| group.next_deadline().is_some_and(|at| at <= now.instant))
            .map(|(id, _)| id.clone())
            .collect();
        for group_id in due {
            if let Some(group) = groups.get_mut(&group_id) {
                group.expire(now);
            }
            self.flush_writes(host, groups, &group_id);
        }
        // Groups that never stored anything and hold nothing (a JoinGroup that never came
        // back after MEMBER_ID_REQUIRED) are dropped at once.
        groups.retain(|_, group| !(group.is_removable() && group.generation_id() == 0));
    }

    /// Kafka's offset expiration (KIP-211): the offsets of a consumer group that has been
    /// empty for `offsets.retention.minutes`, and those of a group without members (simple
    /// commits) committed that long ago, are deleted (tombstones); an empty group left
    /// without offsets is removed.
    fn sweep_expired_offsets(&self, host: &dyn GroupHost) {
        let Ok(mut active) = self.lock_active() else {
            return;
        };
        let now = Now::current();
        let retention_ms = self.config.offsets_retention_ms();
        let cutoff_ms = now.wall_ms.saturating_sub(retention_ms);
        let groups = active.groups();
        let mut tombstones = Vec::new();
        let mut expired_offsets: Vec<(String, Vec<(String, i32)>)> = Vec::new();
        for (group_id, group) in groups.iter() {
            if group.state() != crate::broker::group::state::GroupState::Empty {
                continue;
            }
            let expired = match group.protocol_type() {
                Some(_) if group.state_timestamp_ms() <= cutoff_ms => {
                    group.offsets.expired(0, true)
                }
                Some(_) => Vec::new(),
                None => group.offsets.expired(cutoff_ms, false),
            };
            for (topic, partition) in &expired {
                tombstones.push(RecordKey::Offset {
                    group: group_id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                });
            }
            let left = group.offsets.len() - expired.len();
            if left == 0 && group.generation_id() > 0 {
                tombstones.push(RecordKey::Group {
                    group: group_id.clone(),
                });
            }
            if !expired.is_empty() || left == 0 {
                expired_offsets.push((group_id.clone(), expired));
            }
        }
        if !self.write_tombstones(host, &tombstones) {
            return;
        }
        let mut removed_offsets = 0;
        for (group_id, expired) in expired_offsets {
            if let Some(group) = groups.get_mut(&group_id) {
                removed_offsets += expired.len();
                for (topic, partition) in expired {
                    group.offsets.remove(&topic, partition, None);
                }
            }
        }
        let before = groups.len();
        groups.retain(|_, group| !group.is_removable());
        if removed_offsets > 0 || before != groups.len() {
            tracing::info!(
                "[GroupMetadataManager brokerId={}] Removed {removed_offsets} expired offsets and \
                 {} empty groups of {GROUP_METADATA_TOPIC}-{}",
                host.broker_id(),
                before - groups.len(),
                self.partition
            );
        }
    }
}

/// Reads the whole partition (to its log end, as its leader) and replays it.
fn read_partition(replica: &Partition) -> Result<(Replay, i64), String> {
    let start = replica.offsets().log_start_offset;
    let end = replica.log_end_offset();
    let mut replay = Replay::default();
    let mut offset = start;
    while offset < end {
        let read = replica
            .read_local(offset, LOAD_READ_BYTES)
            .map_err(|error| error.to_string())?;
        if read.records.is_empty() {
            return Err(format!(
                "no batch at offset {offset} below the log end {end}"
            ));
        }
        match replay.apply_batches(read.records) {
            Ok(Some(next)) if next > offset => offset = next,
            Ok(_) => return Err(format!("no progress reading at offset {offset}")),
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok((replay, end))
}

/// Kafka's mapping of a failed offset-commit append (`GroupMetadataManager.storeOffsets`).
fn commit_error(error: &PartitionError) -> ResponseError {
    match error.kafka_error() {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::NotEnoughReplicasAfterAppend => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower
        | ResponseError::KafkaStorageError
        | ResponseError::FencedLeaderEpoch
        | ResponseError::UnknownLeaderEpoch => ResponseError::NotCoordinator,
        ResponseError::MessageTooLarge
        | ResponseError::RecordListTooLarge
        | ResponseError::InvalidFetchSize => ResponseError::InvalidCommitOffsetSize,
        other => other,
    }
}

/// Kafka's mapping of a failed group-metadata append (`GroupMetadataManager.storeGroup`).
fn group_write_error(error: &PartitionError) -> ResponseError {
    match error.kafka_error() {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::NotEnoughReplicasAfterAppend
        | ResponseError::RequestTimedOut => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower
        | ResponseError::KafkaStorageError
        | ResponseError::FencedLeaderEpoch
        | ResponseError::UnknownLeaderEpoch => ResponseError::NotCoordinator,
        _ => ResponseError::UnknownServerError,
    }
}
