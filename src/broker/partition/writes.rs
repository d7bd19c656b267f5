//! What changes a replica's log: appends as leader (refused below `min.insync.replicas` for
//! `acks=all`) and the `acks=all` wait for the high watermark to pass the batch, appends as
//! follower (taking the leader's high watermark), and KIP-101 truncation.

use std::time::Duration;

use super::{Partition, PartitionError, blocking};
use crate::broker::log::partition_log::{AppendError, AppendInfo};
use crate::broker::log::records::DecompressionBudget;
#[cfg(feature = "planted-bugs")]
use crate::planted::{self, PlantedBug};

impl Partition {
    /// Appends a producer's batches as leader. With `acks_all`, refuses (appending nothing)
    /// when the ISR is smaller than `min_insync_replicas`.
    pub fn append_as_leader(
        &self,
        records: &[u8],
        acks_all: bool,
        min_insync_replicas: i32,
        budget: &mut DecompressionBudget,
    ) -> Result<AppendInfo, PartitionError> {
        self.check_log_dir()?;
        // Off the async threads: the write, and an fsync, wait for the disk.
        let appended = blocking(|| {
            let _disk = self.disk_lock();
            self.append_as_leader_locked(records, acks_all, min_insync_replicas, budget)
        });
        self.io_checked("appending to", appended)
    }

    fn append_as_leader_locked(
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
        let flush = if log.flush_due() {
            Some(log.take_flush().map_err(AppendError::Io)?)
        } else {
            None
        };
        self.advance_high_watermark(&mut inner);
        self.publish(&inner);
        // The fsync runs without the lock: fetches (followers keeping up, so staying in the
        // ISR) and other appends go on while a slow disk takes its time. The caller answers
        // the producer only after it.
        drop(inner);
        if let Some(flush) = flush {
            flush.sync().map_err(AppendError::Io)?;
        }
        Ok(info)
    }

    /// Waits until the high watermark passes the `appended` batch (an `acks=all` produce), at
    /// most `timeout`. A leadership change since the batch was appended (while it was being
    /// fsync'd, or while waiting) answers NOT_LEADER_OR_FOLLOWER (the batch may or may not
    /// survive: the client retries): a high watermark of a later epoch says nothing of it.
    pub async fn wait_for_commit(
        &self,
        appended: &AppendInfo,
        min_insync_replicas: i32,
        timeout: Duration,
    ) -> Result<(), PartitionError> {
        let last_offset = appended.last_offset;
        let (mut offsets, generation) = {
            let inner = self.lock();
            if inner.state.leader != self.broker_id
                || inner.state.leader_epoch != appended.leader_epoch
            {
                #[cfg(feature = "planted-bugs")]
                // planted bug: deposed-leader-acks-waiting-produces
                if planted::is_active(PlantedBug::DeposedLeaderAcksWaitingProduces) {
                    return Ok(());
                }
                return Err(PartitionError::NotLeader {
                    broker_id: self.broker_id,
                    leader: inner.state.leader,
                });
            }
            // Subscribed under the lock: every later leadership change bumps the generation.
            let offsets = self.subscribe();
            let generation = offsets.borrow().generation;
            (offsets, generation)
        };
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

    /// As follower: appends batches copied from the leader and takes the leader's high
    /// watermark (never past the local log end). `expected_epoch` guards against a role
    /// change between the fetch and the append.
    pub fn append_as_follower(
        &self,
        records: &[u8],
        leader_high_watermark: i64,
        expected_epoch: i32,
    ) -> Result<Option<AppendInfo>, PartitionError> {
        self.check_log_dir()?;
        let appended = blocking(|| {
            let _disk = self.disk_lock();
            self.append_as_follower_locked(records, leader_high_watermark, expected_epoch)
        });
        self.io_checked("appending a follower's copy to", appended)
    }

    fn append_as_follower_locked(
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
        let mut flush = None;
        let info = if records.is_empty() {
            None
        } else {
            let info = log.append_as_follower(records)?;
            if log.flush_due() {
                flush = Some(log.take_flush().map_err(AppendError::Io)?);
            }
            Some(info)
        };
        let end = log.log_end_offset();
        let high_watermark = leader_high_watermark.min(end);
        if high_watermark > inner.high_watermark {
            inner.high_watermark = high_watermark;
        }
        self.publish(&inner);
        // Without the lock, as a leader does; the fetcher asks for more (reporting this log
        // end to the leader) only after it.
        drop(inner);
        if let Some(flush) = flush {
            flush.sync().map_err(AppendError::Io)?;
        }
        Ok(info)
    }

    /// As follower: removes every record at or after `offset` (KIP-101 truncation).
    pub fn truncate_to(&self, offset: i64) -> Result<(), PartitionError> {
        self.check_log_dir()?;
        let truncated = blocking(|| {
            let _disk = self.disk_lock();
            self.truncate_to_locked(offset)
        });
        self.io_checked("truncating", truncated)
    }

    fn truncate_to_locked(&self, offset: i64) -> Result<(), PartitionError> {
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
}
