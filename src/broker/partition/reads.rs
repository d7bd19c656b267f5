//! What reads a replica: fetches (consumers up to the high watermark, followers up to the log
//! end, which records their fetch), the group coordinator's local read, ListOffsets by time,
//! and the leader-epoch lookups of OffsetsForLeaderEpoch and KIP-101 truncation.

use super::{Partition, PartitionError, ReadOutcome, blocking};
use crate::broker::log::partition_log::ReadError;
#[cfg(feature = "planted-bugs")]
use crate::planted::{self, PlantedBug};

impl Partition {
    /// Reads for a consumer (up to the high watermark) or a follower (`replica_id` >= 0: up to
    /// the log end, and the follower's fetch offset is its log end offset). Only the leader
    /// serves reads.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        replica_id: i32,
    ) -> Result<ReadOutcome, PartitionError> {
        self.check_log_dir()?;
        // Off the async threads: a read may wait for the disk (or for an append that does).
        let read = blocking(|| self.read_locked(offset, max_bytes, replica_id));
        self.io_checked("reading", read)
    }

    fn read_locked(
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
            // Kafka records a follower's fetch only once the read succeeded: a follower asking
            // past this log's end (its divergent tail not truncated yet) is answered
            // OFFSET_OUT_OF_RANGE and is not caught up, whatever its offset says.
            let log = inner.log.as_ref().ok_or(PartitionError::Deleted)?;
            let (log_start_offset, log_end_offset) = (log.log_start_offset(), log.log_end_offset());
            if offset > log_end_offset {
                return Err(PartitionError::Read(ReadError::OffsetOutOfRange {
                    offset,
                    log_start_offset,
                    log_end_offset,
                }));
            }
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
        self.check_log_dir()?;
        let read = {
            let inner = self.lock();
            let log = inner.log.as_ref().ok_or(PartitionError::Deleted)?;
            log.read(offset, max_bytes, log.log_end_offset())
                .map_err(PartitionError::from)
                .map(|records| ReadOutcome {
                    records,
                    offsets: self.current_offsets(&inner),
                })
        };
        self.io_checked("reading", read)
    }

    /// The first committed record with a timestamp >= `timestamp_ms` (ListOffsets).
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, PartitionError> {
        self.check_log_dir()?;
        let found = {
            let inner = self.lock();
            let log = inner.log.as_ref().ok_or(PartitionError::Deleted)?;
            log.offset_for_timestamp(timestamp_ms, inner.high_watermark)
                .map_err(|error| PartitionError::Read(ReadError::Io(error)))
        };
        self.io_checked("looking up a timestamp in", found)
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
}
