//! One partition replica on this broker: its log and its replica state (leader epoch, leader,
//! replica list, ISR, the followers' log end offsets, high watermark), and the waiting
//! mechanism for `acks=all` produces (completed when the high watermark passes the batch) and
//! for long-polling fetches (woken when the log end or high watermark moves).
//!
//! With one replica the high watermark follows the log end at once; with followers it is the
//! smallest log end offset among the ISR, advanced by [`Partition::record_follower_fetch`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::log::partition_log::{AppendError, AppendInfo, PartitionLog, ReadError};

/// The replica assignment and leadership of a partition, as the coordinator stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderAndIsr {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
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
    #[error("timed out waiting for the high watermark to pass offset {offset}")]
    Timeout { offset: i64 },
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("the partition was deleted")]
    Deleted,
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy)]
struct FollowerState {
    log_end_offset: i64,
    last_caught_up: Instant,
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
        let info = log.append_as_leader(records, epoch)?;
        if log.flush_due() {
            blocking(|| log.flush()).map_err(AppendError::Io)?;
        }
        self.advance_high_watermark(&mut inner);
        self.publish(&inner);
        Ok(info)
    }

    /// Waits until the high watermark passes `last_offset` (an `acks=all` produce), at most
    /// `timeout`.
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
            Ok(_) => return Err(PartitionError::Deleted),
            Err(_) => {
                return Err(PartitionError::Timeout {
                    offset: last_offset,
                });
            }
        }
        if (self.lock().state.isr.len() as i32) < min_insync_replicas {
            return Err(PartitionError::NotEnoughReplicasAfterAppend);
        }
        Ok(())
    }

    /// Reads for a consumer (up to the high watermark) or a follower (`replica_id` >= 0: up to
    /// the log end, and the follower's fetch offset is its log end offset).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        replica_id: i32,
    ) -> Result<ReadOutcome, PartitionError> {
        let mut inner = self.lock();
        if replica_id >= 0 {
            self.record_follower_fetch_locked(&mut inner, replica_id, offset);
        }
        let log = inner.log.as_ref().ok_or(PartitionError::Deleted)?;
        let upper_bound = if replica_id >= 0 {
            log.log_end_offset()
        } else {
            inner.high_watermark
        };
        let records = log.read(offset, max_bytes, upper_bound)?;
        Ok(ReadOutcome {
            records,
            offsets: self.current_offsets(&inner),
        })
    }

    /// KIP-279: the largest epoch <= `epoch` in this replica's leader-epoch cache and its end
    /// offset; `None` if there is no such epoch.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Result<Option<(i32, i64)>, PartitionError> {
        let inner = self.lock();
        let log = inner.log.as_ref().ok_or(PartitionError::Deleted)?;
        Ok(log
            .leader_epochs()
            .end_offset_for(epoch, log.log_end_offset()))
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

    fn record_follower_fetch_locked(&self, inner: &mut Inner, replica_id: i32, fetch_offset: i64) {
        let Some(log) = inner.log.as_ref() else {
            return;
        };
        let leader_end = log.log_end_offset();
        let now = Instant::now();
        let follower = inner.followers.entry(replica_id).or_insert(FollowerState {
            log_end_offset: fetch_offset,
            last_caught_up: now,
        });
        follower.log_end_offset = fetch_offset;
        if fetch_offset >= leader_end {
            follower.last_caught_up = now;
        }
        if self.advance_high_watermark(inner) {
            self.publish(inner);
        }
    }

    /// HW = the smallest log end offset among the ISR (the leader's own included). Returns
    /// whether it moved. It never moves back.
    fn advance_high_watermark(&self, inner: &mut Inner) -> bool {
        let Some(log) = inner.log.as_ref() else {
            return false;
        };
        let mut candidate = log.log_end_offset();
        for replica in &inner.state.isr {
            if *replica == self.broker_id {
                continue;
            }
            let follower_end = inner.followers.get(replica).map_or(0, |f| f.log_end_offset);
            candidate = candidate.min(follower_end);
        }
        if candidate > inner.high_watermark {
            inner.high_watermark = candidate;
            return true;
        }
        false
    }

    /// Followers whose last catch-up is older than `lag_max` (candidates to leave the ISR).
    pub fn lagging_followers(&self, lag_max: Duration) -> Vec<i32> {
        let inner = self.lock();
        let now = Instant::now();
        inner
            .state
            .isr
            .iter()
            .copied()
            .filter(|replica| *replica != self.broker_id)
            .filter(|replica| {
                inner
                    .followers
                    .get(replica)
                    .is_none_or(|f| now.duration_since(f.last_caught_up) > lag_max)
            })
            .collect()
    }

    /// Takes a new leadership/ISR decision (from the controller, or this broker's own).
    pub fn update_leader_and_isr(&self, state: LeaderAndIsr) {
        let mut inner = self.lock();
        if state.leader_epoch > inner.state.leader_epoch || state.leader != inner.state.leader {
            inner.followers.clear();
            inner.generation += 1;
        }
        inner.state = state;
        self.advance_high_watermark(&mut inner);
        self.publish(&inner);
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
