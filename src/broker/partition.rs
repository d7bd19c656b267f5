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
//!
//! The state is behind one mutex, held briefly; the log's files are written under a second
//! one, the disk lock, held through an fsync (as Kafka's log lock is), so that a slow disk
//! holds up the next write but not fetches. Whatever may wait for the disk or for these locks
//! runs off the async threads (`blocking`). The first I/O error takes the log directory
//! offline (`log::dir_failure`): from then on the replica answers KAFKA_STORAGE_ERROR.
//!
//! # Layout
//! This file holds the replica's state and its role changes (leader, follower, no leader; the
//! leader-epoch fence); the rest is split by what it does to that state:
//! - [`followers`]: the leader's view of its followers, the high watermark and ISR changes.
//! - [`writes`]: appends as leader (and the `acks=all` wait), appends as follower, truncation.
//! - [`reads`]: fetches, ListOffsets by time, leader-epoch lookups.

mod followers;
mod kafka_errors;
pub use kafka_errors::producer_error;
mod reads;
mod writes;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{Notify, watch};

use super::log::dir_failure::LogDirFailures;
use super::log::partition_log::{AppendError, PartitionLog, ReadError};
#[cfg(feature = "planted-bugs")]
use crate::planted::{self, PlantedBug};
use followers::FollowerState;

/// The replica assignment and leadership of a partition, as the coordinator stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderAndIsr {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// KIP-966's eligible leader replicas (empty unless `eligible.leader.replicas.enable`).
    pub elr: Vec<i32>,
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
            elr: Vec::new(),
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
    #[error("the log directory {0} is offline")]
    LogDirOffline(std::path::PathBuf),
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
    /// With KIP-966's eligible leader replicas: the high watermark advances only while the
    /// ISR has at least this many members (Kafka 4's strict min ISR).
    high_watermark_min_isr: Option<i32>,
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
    /// The health of the log directory this replica lives in.
    log_dir: Arc<LogDirFailures>,
    /// Held by whoever writes the log's files, through its fsync (Kafka's log lock): a write
    /// waits here, not on `inner`, while an fsync of the same files is under way — on some
    /// filesystems (FUSE) it would block inside the write syscall until the fsync ends, and
    /// fetches (followers keeping up, so staying in the ISR) need `inner` meanwhile.
    disk: Mutex<()>,
}

/// What every replica of a broker shares with the others.
#[derive(Debug, Clone)]
pub struct ReplicaShared {
    /// Poked when a follower may rejoin an ISR (the ISR task then writes the change).
    pub isr_wakeup: Arc<Notify>,
    /// The health of the log directory the replicas live in.
    pub log_dir: Arc<LogDirFailures>,
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
        shared: ReplicaShared,
    ) -> Self {
        let ReplicaShared {
            isr_wakeup,
            log_dir,
        } = shared;
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
                high_watermark_min_isr: None,
            }),
            offsets: watch::channel(offsets).0,
            isr_wakeup,
            log_dir,
            disk: Mutex::new(()),
        }
    }

    /// The right to write the log's files ([`Partition::disk`]).
    fn disk_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.disk
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refuses (KAFKA_STORAGE_ERROR) while the log directory is offline: the log's files may
    /// no longer match what it holds in memory, so it is not touched again.
    fn check_log_dir(&self) -> Result<(), PartitionError> {
        if self.log_dir.is_offline() {
            return Err(PartitionError::LogDirOffline(
                self.log_dir.dir().to_path_buf(),
            ));
        }
        Ok(())
    }

    /// An I/O error of this replica's log takes its directory offline; the result is passed on.
    fn io_checked<T>(
        &self,
        what: &str,
        result: Result<T, PartitionError>,
    ) -> Result<T, PartitionError> {
        if let Err(
            PartitionError::Append(AppendError::Io(error))
            | PartitionError::Read(ReadError::Io(error)),
        ) = &result
        {
            self.log_dir
                .fail(&format!("{what} {}-{}", self.topic, self.index), error);
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the data as consistent as each step left it.
        match self.inner.try_lock() {
            Ok(inner) => inner,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            // Its holder may be waiting for the disk (a slow one can take seconds): wait off
            // the async threads, so that the rest of the broker (its coordinator session, other
            // partitions' fetches) goes on meanwhile.
            Err(std::sync::TryLockError::WouldBlock) => blocking(|| crate::lock::lock(&self.inner)),
        }
    }

    /// With KIP-966's eligible leader replicas on: the high watermark advances only while the
    /// ISR has `min_isr` members (`None`: whatever its size, as before Kafka 4).
    pub fn set_high_watermark_min_isr(&self, min_isr: Option<i32>) {
        self.lock().high_watermark_min_isr = min_isr;
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
                self.log_dir.fail(
                    &format!(
                        "writing the leader-epoch checkpoint of {}-{}",
                        self.topic, self.index
                    ),
                    &error,
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

    /// Snapshots the idempotent producers' state at the log end (clean shutdown).
    pub fn take_producer_snapshot(&self) -> std::io::Result<()> {
        match self.lock().log.as_mut() {
            Some(log) => log.take_producer_snapshot(),
            None => Ok(()),
        }
    }

    /// Forgets producers idle for `expiration_ms` at `now_ms`; returns how many.
    pub fn remove_expired_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.lock()
            .log
            .as_mut()
            .map_or(0, |log| log.remove_expired_producers(now_ms, expiration_ms))
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
        self.check_invariants(inner, &offsets);
        self.offsets.send_if_modified(|current| {
            let changed = *current != offsets;
            *current = offsets;
            changed
        });
    }
}

impl Partition {
    /// The replica's invariants, checked (in debug builds, so by every test) each time its
    /// offsets are published: the high watermark stays within [log start, log end] and moves
    /// back only when a truncation cut the log below it (then it is the new log end); the
    /// leader's ISR is a subset of the replicas and holds the leader; the followers this leader
    /// tracks never claim a log end past its own.
    fn check_invariants(&self, inner: &Inner, offsets: &Offsets) {
        if !cfg!(debug_assertions) || inner.log.is_none() {
            return;
        }
        let name = format!("{}-{}", self.topic, self.index);
        debug_assert!(
            offsets.log_start_offset <= offsets.high_watermark
                && offsets.high_watermark <= offsets.log_end_offset,
            "{name}: high watermark {} outside the log [{}, {}]",
            offsets.high_watermark,
            offsets.log_start_offset,
            offsets.log_end_offset
        );
        let previous = *self.offsets.borrow();
        debug_assert!(
            offsets.high_watermark >= previous.high_watermark
                || offsets.high_watermark == offsets.log_end_offset,
            "{name}: high watermark moved back from {} to {} without a truncation (log end {})",
            previous.high_watermark,
            offsets.high_watermark,
            offsets.log_end_offset
        );
        if inner.state.leader == self.broker_id {
            debug_assert!(
                inner
                    .followers
                    .values()
                    .all(|follower| follower.log_end_offset <= offsets.log_end_offset
                        || follower.log_end_offset == -1),
                "{name}: a follower's fetch offset passed the leader's log end {}",
                offsets.log_end_offset
            );
        }
    }
}

/// Runs a call that may block (a write, an fsync, a lock whose holder waits for one) without
/// stalling the other tasks of a multi-threaded runtime; elsewhere (unit tests) it simply runs
/// it.
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
mod tests;
