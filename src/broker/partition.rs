//! One partition replica on this broker: its log and its replica state (leader epoch, leader,
//! replica list, ISR, the followers' log end offsets, high watermark), and the waiting
//! mechanism for `acks=all` produces (completed when the high watermark passes the batch) and
//! for long-polling fetches (woken when the log end or high watermark moves).
//!
//! Roles come from the coordinator's partition state ([`Partition::apply_state`]): as leader
//! the high watermark is the smallest log end offset among the ISR (advanced as followers
//! fetch, [`Partition::record_follower_fetch`]) and [`Partition::isr_change`] says who should
//! leave or join the ISR; as follower the replica appends what its leader sends
//! ([`Partition::append_as_follower`]), takes the leader's high watermark and truncates where
//! its log diverges ([`Partition::truncate_to`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, watch};

use super::log::partition_log::{AppendError, AppendInfo, PartitionLog, ReadError};
use super::log::records::DecompressionBudget;
#[cfg(feature = "planted-bugs")]
use crate::planted::{self, PlantedBug};

/// The replica assignment and leadership of a partition, as the coordinator stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderAndIsr {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// The controller epoch of the write that produced this state.
    pub controller_epoch: i32,
    /// The version of the partition state znode this was read from (for compare-and-set).
    pub zk_version: i32,
}

impl LeaderAndIsr {
    /// No leader and no ISR yet (assigned, not elected).
    pub fn unelected(replicas: Vec<i32>) -> Self {
        LeaderAndIsr {
            leader: -1,
            leader_epoch: -1,
            replicas,
            isr: Vec::new(),
            controller_epoch: -1,
            zk_version: -1,
        }
    }
}

/// What a new partition state meant for this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// This broker leads from `leader_epoch` on.
    BecameLeader { leader_epoch: i32 },
    /// This broker follows `leader` from `leader_epoch` on.
    BecameFollower { leader: i32, leader_epoch: i32 },
    /// The partition has no leader: nothing to follow.
    NoLeader,
    /// Same leader and epoch (an ISR change at most).
    Unchanged,
    /// Older than what this replica already knows: ignored.
    Stale,
}

/// An ISR change the leader wants to write to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub state: LeaderAndIsr,
    pub new_isr: Vec<i32>,
}

/// Why a partition operation failed, mapped to a Kafka error code by the handlers.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("broker {broker_id} is not the leader (leader is {leader})")]
    NotLeader { broker_id: i32, leader: i32 },
    #[error("ISR size {isr} is below min.insync.replicas {min_insync_replicas}")]
    NotEnoughReplicas {
        isr: usize,
        min_insync_replicas: i32,
    },
    #[error("appended, but the ISR shrank below min.insync.replicas while waiting")]
    NotEnoughReplicasAfterAppend,
    #[error("leader epoch {requested} is older than the current leader epoch {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    #[error("leader epoch {requested} is newer than the current leader epoch {current}")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
    #[error("timed out waiting for the high watermark to pass offset {offset}")]
    Timeout { offset: i64 },
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("the partition was deleted")]
    Deleted,
}

/// What the leader knows of one follower (Kafka's `Replica` state on the leader).
#[derive(Debug, Clone, Copy)]
struct FollowerState {
    /// -1 until the follower's first fetch in this leader epoch.
    log_end_offset: i64,
    last_caught_up: Instant,
    /// The leader's log end and the time at the follower's previous fetch.
    last_fetch_leader_end: i64,
    last_fetch: Instant,
}

impl FollowerState {
    fn unknown(now: Instant) -> Self {
        FollowerState {
            log_end_offset: -1,
            last_caught_up: now,
            last_fetch_leader_end: -1,
            last_fetch: now,
        }
    }
}

/// Offsets a waiter can watch: they only grow (until a truncation, which is a new epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offsets {
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    /// Bumped when the partition is deleted or its leadership changes, so waiters re-check.
    pub generation: u64,
}

struct Inner {
    log: Option<PartitionLog>,
    state: LeaderAndIsr,
    followers: BTreeMap<i32, FollowerState>,
    high_watermark: i64,
    generation: u64,
}

/// One partition replica.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    broker_id: i32,
    inner: Mutex<Inner>,
    offsets: watch::Sender<Offsets>,
    /// Poked when a follower may rejoin the ISR (the ISR task then writes the change).
    isr_wakeup: Arc<Notify>,
}

/// The result of a read.
#[derive(Debug, Clone)]
pub struct ReadOutcome {
    pub records: Bytes,
    pub offsets: Offsets,
}

impl Partition {
    /// A replica of `topic`-`index` on broker `broker_id` with its opened log. The high
    /// watermark starts at the log end for a sole replica; otherwise at the checkpointed
    /// value (never past the log end), or the log start without one.
    pub fn new(
        topic: &str,
        index: i32,
        broker_id: i32,
        log: PartitionLog,
        state: LeaderAndIsr,
        checkpointed_high_watermark: Option<i64>,
        isr_wakeup: Arc<Notify>,
    ) -> Self {
        let log_end_offset = log.log_end_offset();
        let high_watermark = if state.isr == [broker_id] {
            log_end_offset
        } else {
            checkpointed_high_watermark
                .unwrap_or(log.log_start_offset())
                .clamp(log.log_start_offset(), log_end_offset)
        };
        let offsets = Offsets {
            log_start_offset: log.log_start_offset(),
            log_end_offset,
            high_watermark,
            generation: 0,
        };
        Partition {
            topic: topic.to_string(),
            index,
            broker_id,
            inner: Mutex::new(Inner {
                log: Some(log),
                state,
                followers: BTreeMap::new(),
                high_watermark,
                generation: 0,
            }),
            offsets: watch::channel(offsets).0,
            isr_wakeup,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the data as consistent as each step left it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Current leadership and ISR.
    pub fn leader_and_isr(&self) -> LeaderAndIsr {
        self.lock().state.clone()
    }

    /// Current offsets.
    pub fn offsets(&self) -> Offsets {
        *self.offsets.borrow()
    }

    /// A receiver woken whenever the offsets change.
    pub fn subscribe(&self) -> watch::Receiver<Offsets> {
        self.offsets.subscribe()
    }

    /// Appends a producer's batches as leader. With `acks_all`, refuses (appending nothing)
    /// when the ISR is smaller than `min_insync_replicas`.
    pub fn append_as_leader(
        &self,
        records: &[u8],
        acks_all: bool,
        min_insync_replicas: i32,
        budget: &mut DecompressionBudget,
    ) -> Result<AppendInfo, PartitionError> {
        let mut inner = self.lock();
        if inner.state.leader != self.broker_id {
            return Err(PartitionError::NotLeader {
                broker_id: self.broker_id,
                leader: inner.state.leader,
            });
        }
        if acks_all && (inner.state.isr.len() as i32) < min_insync_replicas {
            return Err(PartitionError::NotEnoughReplicas {
                isr: inner.state.isr.len(),
                min_insync_replicas,
            });
        }
        let epoch = inner.state.leader_epoch;
        let log = inner.log.as_mut().ok_or(PartitionError::Deleted)?;
        let info = log.append_as_leader(records, epoch, budget)?;
        if log.flush_due() {
            blocking(|| log.flush()).map_err(AppendError::Io)?;
        }
        self.advance_high_watermark(&mut inner);
        self.publish(&inner);
        Ok(info)
    }

    /// Waits until the high watermark passes `last_offset` (an `acks=all` produce), at most
    /// `timeout`. A leadership change while waiting answers NOT_LEADER_OR_FOLLOWER (the batch
    /// may or may not survive: the client retries).
    pub async fn wait_for_commit(
        &self,
        last_offset: i64,
        min_insync_replicas: i32,
        timeout: Duration,
    ) -> Result<(), PartitionError> {
        let mut offsets = self.subscribe();
        let generation = offsets.borrow().generation;
        let committed =
            offsets.wait_for(|o| o.high_watermark > last_offset || o.generation != generation);
        match tokio::time::timeout(timeout, committed).await {
            Ok(Ok(current)) if current.high_watermark > last_offset => {}
            Ok(_) => {
                #[cfg(feature = "planted-bugs")]
                // planted bug: deposed-leader-acks-waiting-produces
                if planted::is_active(PlantedBug::DeposedLeaderAcksWaitingProduces) {
                    return Ok(());
                }
                let inner = self.lock();
                if inner.log.is_none() {
                    return Err(PartitionError::Deleted);
                }
                return Err(PartitionError::NotLeader {
                    broker_id: self.broker_id,
                    leader: inner.state.leader,
                });
            }
            Err(_) => {
                return Err(PartitionError::Timeout {
                    offset: last_offset,
                });
            }
        }
        #[cfg(feature = "planted-bugs")] // planted bug: min-insync-not-enforced-after-append
        if planted::is_active(PlantedBug::MinInsyncNotEnforcedAfterAppend) {
            return Ok(());
        }
        if (self.lock().state.isr.len() as i32) < min_insync_replicas {
            return Err(PartitionError::NotEnoughReplicasAfterAppend);
        }
        Ok(())
    }

    /// Reads for a consumer (up to the high watermark) or a follower (`replica_id` >= 0: up to
    /// the log end, and the follower's fetch offset is its log end offset). Only the leader
    /// serves reads.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        replica_id: i32,
    ) -> Result<ReadOutcome, PartitionError> {
        let mut inner = self.lock();
        if inner.state.leader != self.broker_id {
            return Err(PartitionError::NotLeader {
                broker_id: self.broker_id,
                leader: inner.state.leader,
            });
        }
        if replica_id >= 0 {
            self.record_follower_fetch_locked(&mut inner, replica_id, offset);
        }
        let log = inner.log.as_ref().ok_or(PartitionError::Deleted)?;
        let upper_bound = if replica_id >= 0 {
            log.log_end_offset()
        } else {
            inner.high_watermark
        };
        #[cfg(feature = "planted-bugs")] // planted bug: consumers-read-past-high-watermark
        let upper_bound = if planted::is_active(PlantedBug::ConsumersReadPastHighWatermark) {
            log.log_end_offset()
        } else {
            upper_bound
        };
        let records = log.read(offset, max_bytes, upper_bound)?;
        Ok(ReadOutcome {
            records,
            offsets: self.current_offsets(&inner),
        })
    }

    /// Reads this replica's own log up to its end, committed or not, without counting as a
    /// fetch: the group coordinator loading `__consumer_offsets` as its new leader (whose log
    /// is the one that will be committed).
    pub fn read_local(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome, PartitionError> {
        let inner = self.lock();
        let log = inner.log.as_ref().ok_or(PartitionError::Deleted)?;
        let records = log.read(offset, max_bytes, log.log_end_offset())?;
        Ok(ReadOutcome {
            records,
            offsets: self.current_offsets(&inner),
        })
    }

    /// The first committed record with a timestamp >= `timestamp_ms` (ListOffsets).
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, PartitionError> {
        let inner = self.lock();
        let log = inner.log.as_ref().ok_or(PartitionError::Deleted)?;
        log.offset_for_timestamp(timestamp_ms, inner.high_watermark)
            .map_err(|error| PartitionError::Read(ReadError::Io(error)))
    }

    /// A follower fetched at `fetch_offset` (its log end offset): may move the high watermark.
    pub fn record_follower_fetch(&self, replica_id: i32, fetch_offset: i64) {
        let mut inner = self.lock();
        self.record_follower_fetch_locked(&mut inner, replica_id, fetch_offset);
    }

    /// Kafka's catch-up rule: a fetch at or past the leader's current end means caught up now;
    /// one at or past the leader's end at the previous fetch means caught up at that fetch.
    fn record_follower_fetch_locked(&self, inner: &mut Inner, replica_id: i32, fetch_offset: i64) {
        let Some(log) = inner.log.as_ref() else {
            return;
        };
        if !inner.state.replicas.contains(&replica_id) {
            return;
        }
        let leader_end = log.log_end_offset();
        let now = Instant::now();
        let follower = inner
            .followers
            .entry(replica_id)
            .or_insert_with(|| FollowerState::unknown(now));
        follower.log_end_offset = fetch_offset;
        if fetch_offset >= leader_end {
            follower.last_caught_up = now;
        } else if fetch_offset >= follower.last_fetch_leader_end {
            follower.last_caught_up = follower.last_caught_up.max(follower.last_fetch);
        }
        follower.last_fetch_leader_end = leader_end;
        follower.last_fetch = now;
        let rejoin =
            !inner.state.isr.contains(&replica_id) && self.can_join_isr(inner, fetch_offset);
        if self.advance_high_watermark(inner) || rejoin {
            self.publish(inner);
        }
        if rejoin {
            self.isr_wakeup.notify_one();
        }
    }

    /// A follower may join the ISR when its log end has reached the high watermark and the
    /// start of the leader's current epoch.
    fn can_join_isr(&self, inner: &Inner, follower_end: i64) -> bool {
        let Some(log) = inner.log.as_ref() else {
            return false;
        };
        let epoch_start = log
            .leader_epochs()
            .entries()
            .iter()
            .rev()
            .find(|entry| entry.epoch == inner.state.leader_epoch)
            .map_or(log.log_end_offset(), |entry| entry.start_offset);
        follower_end >= inner.high_watermark && follower_end >= epoch_start
    }

    /// HW = the smallest log end offset among the ISR (the leader's own included). Returns
    /// whether it moved. It never moves back; only the leader moves it this way.
    fn advance_high_watermark(&self, inner: &mut Inner) -> bool {
        let Some(log) = inner.log.as_ref() else {
            return false;
        };
        if inner.state.leader != self.broker_id {
            return false;
        }
        let mut candidate = log.log_end_offset();
        for replica in &inner.state.isr {
            if *replica == self.broker_id {
                continue;
            }
            #[cfg(feature = "planted-bugs")] // planted bug: high-watermark-from-leader-alone
            if planted::is_active(PlantedBug::HighWatermarkFromLeaderAlone) {
                continue;
            }
            let follower_end = inner
                .followers
                .get(replica)
                .map_or(-1, |f| f.log_end_offset);
            candidate = candidate.min(follower_end);
        }
        #[cfg(feature = "planted-bugs")] // planted bug: high-watermark-from-one-follower
        if planted::is_active(PlantedBug::HighWatermarkFromOneFollower) {
            let most_caught_up = (inner.state.isr.iter())
                .filter(|replica| **replica != self.broker_id)
                .filter_map(|replica| inner.followers.get(replica))
                .map(|follower| follower.log_end_offset)
                .max();
            candidate = most_caught_up.map_or(candidate, |end| end.min(log.log_end_offset()));
        }
        if candidate > inner.high_watermark {
            inner.high_watermark = candidate;
            return true;
        }
        false
    }

    /// As leader: the ISR this partition should have now (followers that have not caught up
    /// within `lag_max` leave; replicas of `live` brokers that caught up join), if it differs
    /// from the current. A broker that is not registered (dead, or in a controlled shutdown
    /// whose fetchers still run) does not join: the controller has just taken it out.
    pub fn isr_change(&self, lag_max: Duration, live: &[i32]) -> Option<IsrChange> {
        let inner = self.lock();
        if inner.state.leader != self.broker_id || inner.log.is_none() {
            return None;
        }
        let now = Instant::now();
        let mut new_isr: Vec<i32> = inner
            .state
            .isr
            .iter()
            .copied()
            .filter(|replica| {
                *replica == self.broker_id
                    || inner
                        .followers
                        .get(replica)
                        .is_some_and(|f| now.duration_since(f.last_caught_up) <= lag_max)
            })
            .collect();
        for replica in &inner.state.replicas {
            if new_isr.contains(replica) || !live.contains(replica) {
                continue;
            }
            let caught_up = inner.followers.get(replica).is_some_and(|f| {
                now.duration_since(f.last_caught_up) <= lag_max
                    && self.can_join_isr(&inner, f.log_end_offset)
            });
            if caught_up {
                new_isr.push(*replica);
            }
        }
        if !new_isr.contains(&self.broker_id) {
            new_isr.insert(0, self.broker_id);
        }
        (new_isr != inner.state.isr).then(|| IsrChange {
            state: inner.state.clone(),
            new_isr,
        })
    }

    /// The leader's own ISR change was written (znode version `zk_version`): take it, unless
    /// leadership moved meanwhile.
    pub fn isr_written(&self, change: &IsrChange, zk_version: i32) -> bool {
        let mut inner = self.lock();
        if inner.state.leader_epoch != change.state.leader_epoch
            || inner.state.zk_version != change.state.zk_version
        {
            return false;
        }
        inner.state.isr = change.new_isr.clone();
        inner.state.zk_version = zk_version;
        self.advance_high_watermark(&mut inner);
        let offsets = self.current_offsets(&inner);
        // Waiters re-check the ISR size even when the high watermark did not move.
        self.offsets.send_replace(offsets);
        true
    }

    /// Takes a partition state from the coordinator (the controller's decision, or a leader's
    /// ISR change): becomes leader or follower when the leader or its epoch changed. States
    /// from an older controller epoch or leader epoch than already seen are ignored.
    pub fn apply_state(&self, state: LeaderAndIsr) -> RoleChange {
        let mut inner = self.lock();
        let current = &inner.state;
        if state.controller_epoch < current.controller_epoch {
            tracing::warn!(
                "ignoring state of partition {}-{} from controller epoch {}: older than {} \
                 (stale controller epoch)",
                self.topic,
                self.index,
                state.controller_epoch,
                current.controller_epoch
            );
            return RoleChange::Stale;
        }
        if state.leader_epoch < current.leader_epoch
            || (state.leader_epoch == current.leader_epoch && state.zk_version < current.zk_version)
        {
            return RoleChange::Stale;
        }
        let new_epoch =
            state.leader_epoch != current.leader_epoch || state.leader != current.leader;
        if !new_epoch {
            // Replicas that left the ISR (the controller removed a dead broker's, or this
            // leader's own shrink) rejoin only after a fetch shows them caught up again.
            let left: Vec<i32> = current
                .isr
                .iter()
                .copied()
                .filter(|replica| !state.isr.contains(replica))
                .collect();
            for replica in left {
                inner.followers.remove(&replica);
            }
        }
        inner.state = state;
        let change = if !new_epoch {
            RoleChange::Unchanged
        } else if inner.state.leader == self.broker_id {
            self.become_leader(&mut inner);
            RoleChange::BecameLeader {
                leader_epoch: inner.state.leader_epoch,
            }
        } else {
            inner.followers.clear();
            inner.generation += 1;
            if inner.state.leader < 0 {
                RoleChange::NoLeader
            } else {
                RoleChange::BecameFollower {
                    leader: inner.state.leader,
                    leader_epoch: inner.state.leader_epoch,
                }
            }
        };
        self.advance_high_watermark(&mut inner);
        let offsets = self.current_offsets(&inner);
        self.offsets.send_replace(offsets);
        change
    }

    fn become_leader(&self, inner: &mut Inner) {
        let now = Instant::now();
        inner.followers = inner
            .state
            .isr
            .iter()
            .filter(|replica| **replica != self.broker_id)
            .map(|replica| (*replica, FollowerState::unknown(now)))
            .collect();
        inner.generation += 1;
        let epoch = inner.state.leader_epoch;
        if let Some(log) = inner.log.as_mut() {
            let end = log.log_end_offset();
            if let Err(error) = log.assign_epoch_start(epoch, end) {
                tracing::error!(
                    "cannot write the leader-epoch checkpoint of {}-{}: {error}",
                    self.topic,
                    self.index
                );
            }
        }
        // The high watermark as this leader starts with it (a sole replica's is its log end).
        self.advance_high_watermark(inner);
        tracing::info!(
            "[Partition {}-{} broker={}] Leader {}-{} with leader epoch {} starts at offset {}, \
             high watermark {}, ISR {:?}",
            self.topic,
            self.index,
            self.broker_id,
            self.topic,
            self.index,
            epoch,
            inner.log.as_ref().map_or(-1, PartitionLog::log_end_offset),
            inner.high_watermark,
            inner.state.isr
        );
    }

    /// The fencing check of a request carrying `current_leader_epoch` (-1: not checked).
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), PartitionError> {
        #[cfg(feature = "planted-bugs")] // planted bug: leader-epoch-fencing-off
        if planted::is_active(PlantedBug::LeaderEpochFencingOff) {
            return Ok(());
        }
        let current = self.lock().state.leader_epoch;
        match current_leader_epoch {
            requested if requested < 0 || requested == current => Ok(()),
            requested if requested < current => {
                Err(PartitionError::FencedLeaderEpoch { requested, current })
            }
            requested => Err(PartitionError::UnknownLeaderEpoch { requested, current }),
        }
    }

    /// As leader, OffsetsForLeaderEpoch: the largest epoch <= `epoch` in this log and its end
    /// offset (KIP-279), or `None` (UNDEFINED) when the log knows no such epoch.
    pub fn end_offset_for_epoch(
        &self,
        epoch: i32,
        current_leader_epoch: i32,
    ) -> Result<Option<(i32, i64)>, PartitionError> {
        self.check_leader_epoch(current_leader_epoch)?;
        let inner = self.lock();
        if inner.state.leader != self.broker_id {
            return Err(PartitionError::NotLeader {
                broker_id: self.broker_id,
                leader: inner.state.leader,
            });
        }
        let log = inner.log.as_ref().ok_or(PartitionError::Deleted)?;
        Ok(log
            .leader_epochs()
            .end_offset_for(epoch, log.log_end_offset()))
    }

    /// As follower: this log's latest epoch and its own end offset for `epoch`.
    pub fn local_epoch_end(&self, epoch: Option<i32>) -> Option<(i32, i64)> {
        let inner = self.lock();
        let log = inner.log.as_ref()?;
        let epoch = epoch.or_else(|| log.leader_epochs().latest_epoch())?;
        log.leader_epochs()
            .end_offset_for(epoch, log.log_end_offset())
    }

    /// As follower: the latest epoch in the local log.
    pub fn latest_epoch(&self) -> Option<i32> {
        let inner = self.lock();
        inner.log.as_ref()?.leader_epochs().latest_epoch()
    }

    /// As follower: appends batches copied from the leader and takes the leader's high
    /// watermark (never past the local log end). `expected_epoch` guards against a role
    /// change between the fetch and the append.
    pub fn append_as_follower(
        &self,
        records: &[u8],
        leader_high_watermark: i64,
        expected_epoch: i32,
    ) -> Result<Option<AppendInfo>, PartitionError> {
        let mut inner = self.lock();
        if inner.state.leader_epoch != expected_epoch || inner.state.leader == self.broker_id {
            return Err(PartitionError::FencedLeaderEpoch {
                requested: expected_epoch,
                current: inner.state.leader_epoch,
            });
        }
        let log = inner.log.as_mut().ok_or(PartitionError::Deleted)?;
        let info = if records.is_empty() {
            None
        } else {
            let info = log.append_as_follower(records)?;
            if log.flush_due() {
                blocking(|| log.flush()).map_err(AppendError::Io)?;
            }
            Some(info)
        };
        let end = log.log_end_offset();
        let high_watermark = leader_high_watermark.min(end);
        if high_watermark > inner.high_watermark {
            inner.high_watermark = high_watermark;
        }
        self.publish(&inner);
        Ok(info)
    }

    /// As follower: removes every record at or after `offset` (KIP-101 truncation).
    pub fn truncate_to(&self, offset: i64) -> Result<(), PartitionError> {
        let mut inner = self.lock();
        let log = inner.log.as_mut().ok_or(PartitionError::Deleted)?;
        if offset >= log.log_end_offset() {
            return Ok(());
        }
        log.truncate_to(offset)
            .map_err(|error| PartitionError::Append(AppendError::Io(error)))?;
        let end = log.log_end_offset();
        inner.high_watermark = inner.high_watermark.min(end);
        self.publish(&inner);
        Ok(())
    }

    /// The local log end offset.
    pub fn log_end_offset(&self) -> i64 {
        self.offsets().log_end_offset
    }

    /// fsyncs the log.
    pub fn flush(&self) -> std::io::Result<()> {
        match self.lock().log.as_mut() {
            Some(log) => log.flush(),
            None => Ok(()),
        }
    }

    /// Deletes the log's files; waiters are woken and see [`PartitionError::Deleted`].
    pub fn delete(&self) -> std::io::Result<()> {
        let mut inner = self.lock();
        inner.generation += 1;
        let log = inner.log.take();
        self.publish(&inner);
        match log {
            Some(log) => log.delete(),
            None => Ok(()),
        }
    }

    fn current_offsets(&self, inner: &Inner) -> Offsets {
        match inner.log.as_ref() {
            Some(log) => Offsets {
                log_start_offset: log.log_start_offset(),
                log_end_offset: log.log_end_offset(),
                high_watermark: inner.high_watermark,
                generation: inner.generation,
            },
            None => Offsets {
                generation: inner.generation,
                ..Offsets::default()
            },
        }
    }

    fn publish(&self, inner: &Inner) {
        let offsets = self.current_offsets(inner);
        self.offsets.send_if_modified(|current| {
            let changed = *current != offsets;
            *current = offsets;
            changed
        });
    }
}

/// Runs a blocking call (an fsync) without stalling the other tasks of a multi-threaded
/// runtime; elsewhere (unit tests) it simply runs it.
fn blocking<T>(call: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(call)
    } else {
        call()
    }
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Partition({}-{})", self.topic, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::log::batch::tests::encoded_batch;
    use crate::broker::log::partition_log::LogConfig;

    fn replica(dir: &std::path::Path, broker_id: i32) -> Partition {
        let config = LogConfig {
            segment_bytes: 1 << 20,
            index_interval_bytes: 4096,
            flush_interval_messages: u64::MAX,
            message_max_bytes: 1 << 20,
        };
        let (log, _) = PartitionLog::open(dir, config).expect("open");
        Partition::new(
            "t",
            0,
            broker_id,
            log,
            LeaderAndIsr::unelected(vec![1, 2, 3]),
            None,
            Arc::new(Notify::new()),
        )
    }

    fn state(leader: i32, leader_epoch: i32, isr: &[i32], controller_epoch: i32) -> LeaderAndIsr {
        LeaderAndIsr {
            leader,
            leader_epoch,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            controller_epoch,
            zk_version: leader_epoch,
        }
    }

    #[test]
    fn the_high_watermark_is_the_smallest_log_end_in_the_isr() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leader = replica(dir.path(), 1);
        assert_eq!(
            leader.apply_state(state(1, 0, &[1, 2, 3], 1)),
            RoleChange::BecameLeader { leader_epoch: 0 }
        );
        leader
            .append_as_leader(
                &encoded_batch(10),
                true,
                2,
                &mut DecompressionBudget::new(u64::MAX),
            )
            .expect("append");
        assert_eq!(leader.offsets().high_watermark, 0, "no follower has it yet");
        leader.record_follower_fetch(2, 10);
        assert_eq!(leader.offsets().high_watermark, 0, "follower 3 has not");
        leader.record_follower_fetch(3, 4);
        assert_eq!(leader.offsets().high_watermark, 4);
        leader.record_follower_fetch(3, 10);
        assert_eq!(leader.offsets().high_watermark, 10);
        // Only the leader serves reads; followers refuse.
        let dir2 = tempfile::tempdir().expect("tempdir");
        let follower = replica(dir2.path(), 2);
        assert_eq!(
            follower.apply_state(state(1, 0, &[1, 2, 3], 1)),
            RoleChange::BecameFollower {
                leader: 1,
                leader_epoch: 0
            }
        );
        assert!(matches!(
            follower.read(0, 100, -1),
            Err(PartitionError::NotLeader { .. })
        ));
    }

    #[test]
    fn states_from_an_older_controller_or_leader_epoch_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partition = replica(dir.path(), 2);
        partition.apply_state(state(1, 5, &[1, 2, 3], 7));
        assert_eq!(
            partition.apply_state(state(2, 6, &[2, 3], 6)),
            RoleChange::Stale,
            "stale controller epoch"
        );
        assert_eq!(
            partition.apply_state(state(3, 4, &[3], 7)),
            RoleChange::Stale
        );
        assert_eq!(partition.leader_and_isr().leader, 1);
        assert_eq!(
            partition.apply_state(state(2, 6, &[2, 3], 8)),
            RoleChange::BecameLeader { leader_epoch: 6 }
        );
    }

    #[test]
    fn lagging_followers_leave_the_isr_and_caught_up_ones_rejoin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leader = replica(dir.path(), 1);
        leader.apply_state(state(1, 0, &[1, 2], 1));
        leader
            .append_as_leader(
                &encoded_batch(3),
                false,
                1,
                &mut DecompressionBudget::new(u64::MAX),
            )
            .expect("append");
        // Neither follower fetches: past the lag both are out (3 was never in).
        let live = [1, 2, 3];
        assert_eq!(leader.isr_change(Duration::from_secs(60), &live), None);
        let change = leader.isr_change(Duration::ZERO, &live).expect("shrink");
        assert_eq!(change.new_isr, vec![1]);
        assert!(leader.isr_written(&change, 1));
        assert_eq!(leader.offsets().high_watermark, 3);
        // Follower 3 catches up: it may join.
        leader.record_follower_fetch(3, 3);
        assert_eq!(
            leader.isr_change(Duration::from_secs(60), &[1, 2]),
            None,
            "a broker that is not registered does not join"
        );
        let change = leader
            .isr_change(Duration::from_secs(60), &live)
            .expect("expand");
        assert_eq!(change.new_isr, vec![1, 3]);
    }

    #[test]
    fn a_replica_the_controller_removed_rejoins_only_after_a_new_fetch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leader = replica(dir.path(), 1);
        leader.apply_state(state(1, 0, &[1, 2, 3], 1));
        leader
            .append_as_leader(
                &encoded_batch(3),
                true,
                2,
                &mut DecompressionBudget::new(u64::MAX),
            )
            .expect("append");
        leader.record_follower_fetch(2, 3);
        leader.record_follower_fetch(3, 3);
        assert_eq!(leader.offsets().high_watermark, 3);
        // Broker 3 died; the controller took it out of the ISR (same leader epoch).
        let mut removed = state(1, 0, &[1, 2], 2);
        removed.zk_version = 1;
        assert_eq!(leader.apply_state(removed), RoleChange::Unchanged);
        // Its last fetch was caught up, but it is gone: it does not come back by itself...
        let live = [1, 2, 3];
        assert_eq!(leader.isr_change(Duration::from_secs(60), &live), None);
        // ...only after fetching again (a restarted broker).
        leader.record_follower_fetch(3, 3);
        let change = leader
            .isr_change(Duration::from_secs(60), &live)
            .expect("expand");
        assert_eq!(change.new_isr, vec![1, 2, 3]);
    }

    #[test]
    fn a_sole_replica_leads_from_its_log_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            segment_bytes: 1 << 20,
            index_interval_bytes: 4096,
            flush_interval_messages: u64::MAX,
            message_max_bytes: 1 << 20,
        };
        {
            let (mut log, _) = PartitionLog::open(dir.path(), config).expect("open");
            log.append_as_leader(
                &encoded_batch(5),
                0,
                &mut DecompressionBudget::new(u64::MAX),
            )
            .expect("append");
        }
        // Reopened as at start-up: unelected, no checkpointed high watermark.
        let (log, _) = PartitionLog::open(dir.path(), config).expect("reopen");
        let partition = Partition::new(
            "t",
            0,
            1,
            log,
            LeaderAndIsr::unelected(vec![1]),
            None,
            Arc::new(Notify::new()),
        );
        let mut sole = state(1, 1, &[1], 1);
        sole.replicas = vec![1];
        partition.apply_state(sole);
        assert_eq!(partition.offsets().high_watermark, 5);
    }
}
