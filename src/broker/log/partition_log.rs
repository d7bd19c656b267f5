//! The log of one partition replica: a directory (`topic-0/`) of segments, the leader-epoch
//! cache beside them, offsets assigned on append, reads by offset, rolling by
//! `log.segment.bytes`, fsync every `log.flush.interval.messages`, and recovery on open
//! (the active segment is scanned and a torn tail cut). It also keeps the partition's
//! idempotent-producer state in step with its batches ([`ProducerStateManager`]): checked on
//! leader appends, recorded on every append, snapshotted at roll, rebuilt on open and
//! truncation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use super::batch::{self, BatchError, BatchHeader};
use super::leader_epoch::LeaderEpochCache;
use super::records::{self, DecompressionBudget, RecordError};
use super::segment::{RecoveryOutcome, Segment};
use crate::broker::log::producer_state::append::{LeaderAppend, ProducerError};
use crate::broker::log::producer_state::manager::ProducerStateManager;

/// The settings a log needs (from the broker config; per topic later).
#[derive(Debug, Clone, Copy)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub index_interval_bytes: u64,
    pub flush_interval_messages: u64,
    pub message_max_bytes: usize,
}

/// Why an append was refused (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("corrupt record batch: {0}")]
    Corrupt(#[from] BatchError),
    #[error("record batch of {size} bytes exceeds message.max.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error("invalid records: {0}")]
    InvalidRecords(#[from] RecordError),
    #[error("no record batches in the request")]
    Empty,
    #[error("batch offsets {base_offset}.. do not follow the log end offset {log_end_offset}")]
    OffsetsOutOfOrder {
        base_offset: i64,
        log_end_offset: i64,
    },
    #[error(transparent)]
    Producer(#[from] ProducerError),
    #[error("log I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a read was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("offset {offset} is outside the log's range {log_start_offset}..={log_end_offset}")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("log I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub record_count: i64,
    /// An idempotent producer's retry of a batch already in the log: nothing was written and
    /// the offsets are the original batch's.
    pub duplicate: bool,
    /// The leader epoch it was appended in (a leader's), or its last batch's (a follower's).
    pub leader_epoch: i32,
}

/// The fsyncs of one flush, taken from the log ([`PartitionLog::take_flush`]).
#[derive(Debug)]
pub struct PendingFlush {
    files: Vec<std::fs::File>,
    dir: Option<PathBuf>,
}

impl PendingFlush {
    /// fsyncs the files, then the directory.
    pub fn sync(self) -> std::io::Result<()> {
        for file in &self.files {
            file.sync_data()?;
        }
        match &self.dir {
            Some(dir) => crate::broker::directory::sync_dir(dir),
            None => Ok(()),
        }
    }
}

/// The log of one partition replica.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    leader_epochs: LeaderEpochCache,
    producers: ProducerStateManager,
    unflushed_messages: u64,
    /// Segments from this base offset on may hold data not yet fsynced.
    unflushed_from_segment: i64,
    /// A segment was created since the last flush: the directory's entries need an fsync too.
    directory_unflushed: bool,
}

impl PartitionLog {
    /// Opens the log in `dir` (creating it if missing) and recovers the active segment.
    pub fn open(dir: &Path, config: LogConfig) -> std::io::Result<(Self, RecoveryOutcome)> {
        crate::broker::directory::create_dir_durably(dir)?;
        let mut base_offsets = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(stem) = name.strip_suffix(".log")
                && let Ok(base_offset) = stem.parse::<i64>()
            {
                base_offsets.push(base_offset);
            }
        }
        base_offsets.sort_unstable();
        let mut segments = BTreeMap::new();
        let mut outcome = RecoveryOutcome {
            batches: 0,
            truncated_bytes: 0,
        };
        let last = base_offsets.last().copied();
        for base_offset in base_offsets {
            let active = Some(base_offset) == last;
            let (segment, recovered) =
                Segment::open(dir, base_offset, config.index_interval_bytes, active)?;
            if active {
                outcome = recovered;
            }
            segments.insert(base_offset, segment);
        }
        let directory_unflushed = segments.is_empty();
        if segments.is_empty() {
            segments.insert(0, Segment::create(dir, 0, config.index_interval_bytes)?);
        }
        let log_start_offset = segments.keys().next().copied().unwrap_or(0);
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            leader_epochs: LeaderEpochCache::load(dir),
            producers: ProducerStateManager::open(dir)?,
            unflushed_messages: 0,
            unflushed_from_segment: 0,
            directory_unflushed,
        };
        // The checkpoint may be ahead of a log whose tail was cut, or missing.
        let log_end_offset = log.log_end_offset();
        log.leader_epochs.truncate_from_end(log_end_offset)?;
        if log.leader_epochs.entries().is_empty() && log_end_offset > log.log_start_offset {
            log.rebuild_leader_epochs()?;
        }
        let replay_from = log.producers.load(log.log_start_offset, log_end_offset)?;
        log.replay_producers(replay_from)?;
        Ok((log, outcome))
    }

    /// Records the producer batches from `from` to the log end into the producer state (after
    /// loading a snapshot taken at `from`): a scan of batch headers only.
    fn replay_producers(&mut self, from: i64) -> std::io::Result<()> {
        if from >= self.log_end_offset() {
            return Ok(());
        }
        let first_segment = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(from, |(base, _)| *base);
        let mut replayed = 0u64;
        for segment in self.segments.range(first_segment..).map(|(_, s)| s) {
            let Some(position) = segment.position_of(from)? else {
                continue;
            };
            segment.visit_headers_from(position, |header| {
                if header.base_offset >= from && header.has_producer_id() {
                    self.producers.record(header);
                    replayed += 1;
                }
            })?;
        }
        if replayed > 0 {
            tracing::info!(
                "rebuilt the producer state of {} from offset {from}: {replayed} idempotent \
                 batches replayed, {} producer ids",
                self.dir.display(),
                self.producers.len()
            );
        }
        Ok(())
    }

    /// Rebuilds the leader-epoch cache from the batches' `partitionLeaderEpoch` (a full scan
    /// of the headers, only when the checkpoint file is missing).
    fn rebuild_leader_epochs(&mut self) -> std::io::Result<()> {
        let mut starts = Vec::new();
        for segment in self.segments.values() {
            segment.find_batch(|header| {
                let newer = starts
                    .last()
                    .is_none_or(|(epoch, _)| header.partition_leader_epoch > *epoch);
                if newer && header.partition_leader_epoch >= 0 {
                    starts.push((header.partition_leader_epoch, header.base_offset));
                }
                false
            })?;
        }
        for (epoch, start_offset) in starts {
            self.leader_epochs.assign(epoch, start_offset)?;
        }
        Ok(())
    }

    /// The offset the next record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The leader-epoch cache.
    pub fn leader_epochs(&self) -> &LeaderEpochCache {
        &self.leader_epochs
    }

    /// A new leader records that its `epoch` starts at `start_offset` (its log end), before
    /// any batch of that epoch is appended, as Kafka's `makeLeader` does.
    pub fn assign_epoch_start(&mut self, epoch: i32, start_offset: i64) -> std::io::Result<()> {
        self.leader_epochs.assign(epoch, start_offset).map(|_| ())
    }

    fn active(&self) -> &Segment {
        match self.segments.last_key_value() {
            Some((_, segment)) => segment,
            None => unreachable!("a log always has an active segment"),
        }
    }

    fn active_mut(&mut self) -> &mut Segment {
        match self.segments.last_entry() {
            Some(entry) => entry.into_mut(),
            None => unreachable!("a log always has an active segment"),
        }
    }

    /// Validates `records` (one or more v2 batches as a producer sent them: headers, CRCs, size,
    /// then every record, decompressing within `budget`, then an idempotent producer's epoch and
    /// sequence), assigns offsets from the log end, stamps `leader_epoch`, and appends them. A
    /// retry of one of the producer's last five batches appends nothing and answers the
    /// original offsets ([`AppendInfo::duplicate`]).
    pub fn append_as_leader(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        budget: &mut DecompressionBudget,
    ) -> Result<AppendInfo, AppendError> {
        let headers = batch::validate_all(records)?;
        if headers.is_empty() {
            return Err(AppendError::Empty);
        }
        if let Some(large) = headers
            .iter()
            .find(|h| h.size > self.config.message_max_bytes)
        {
            return Err(AppendError::TooLarge {
                size: large.size,
                max: self.config.message_max_bytes,
            });
        }
        let mut position = 0;
        for header in &headers {
            records::validate(&records[position..position + header.size], budget)?;
            position += header.size;
        }
        if let Some((
            _,
            LeaderAppend::Duplicate {
                first_offset,
                last_offset,
            },
        )) = self.producers.check_leader_append(&headers)?
        {
            return Ok(AppendInfo {
                base_offset: first_offset,
                last_offset,
                record_count: last_offset - first_offset + 1,
                duplicate: true,
                leader_epoch,
            });
        }
        let base_offset = self.log_end_offset();
        let mut bytes = BytesMut::from(records);
        let mut next_offset = base_offset;
        let mut position = 0;
        let mut assigned = Vec::with_capacity(headers.len());
        for header in &headers {
            batch::patch(&mut bytes[position..], next_offset, leader_epoch);
            assigned.push(BatchHeader {
                base_offset: next_offset,
                partition_leader_epoch: leader_epoch,
                ..*header
            });
            next_offset += header.record_count();
            position += header.size;
        }
        self.write(bytes.freeze(), &assigned)?;
        Ok(AppendInfo {
            base_offset,
            last_offset: next_offset - 1,
            record_count: next_offset - base_offset,
            duplicate: false,
            leader_epoch,
        })
    }

    /// Appends batches that already carry their offsets and epochs (a follower copying its
    /// leader). The first must start at the log end.
    pub fn append_as_follower(&mut self, records: &[u8]) -> Result<AppendInfo, AppendError> {
        let headers = batch::validate_all(records)?;
        let (Some(first), Some(last)) = (headers.first(), headers.last()) else {
            return Err(AppendError::Empty);
        };
        let log_end_offset = self.log_end_offset();
        if first.base_offset != log_end_offset {
            return Err(AppendError::OffsetsOutOfOrder {
                base_offset: first.base_offset,
                log_end_offset,
            });
        }
        self.write(Bytes::copy_from_slice(records), &headers)?;
        Ok(AppendInfo {
            base_offset: first.base_offset,
            last_offset: last.last_offset(),
            record_count: last.next_offset() - first.base_offset,
            duplicate: false,
            leader_epoch: last.partition_leader_epoch,
        })
    }

    /// Writes validated batches at the log end: rolls if needed, updates the epoch cache and
    /// the producer state, and counts messages towards `flush_interval_messages`.
    fn write(&mut self, bytes: Bytes, headers: &[BatchHeader]) -> Result<(), AppendError> {
        let active = self.active();
        if active.size() > 0 && active.size() + bytes.len() as u64 > self.config.segment_bytes {
            self.roll()?;
        }
        for header in headers {
            self.leader_epochs
                .assign(header.partition_leader_epoch, header.base_offset)?;
        }
        self.active_mut().append(bytes, headers)?;
        for header in headers {
            self.producers.record(header);
        }
        let messages: i64 = headers.iter().map(BatchHeader::record_count).sum();
        self.unflushed_messages += messages as u64;
        Ok(())
    }

    /// Starts a new active segment at the log end, snapshotting the producer state there first
    /// (so that a restart replays at most the active segment).
    fn roll(&mut self) -> std::io::Result<()> {
        let base_offset = self.log_end_offset();
        self.producers.take_snapshot(base_offset)?;
        let segment = Segment::create(&self.dir, base_offset, self.config.index_interval_bytes)?;
        self.active_mut().release_tail_cache();
        tracing::info!(
            "rolled log {} to new segment at offset {base_offset}",
            self.dir.display()
        );
        self.segments.insert(base_offset, segment);
        self.directory_unflushed = true;
        Ok(())
    }

    /// Whether `log.flush.interval.messages` have been appended since the last flush: the
    /// caller then calls [`PartitionLog::flush`] (off the async threads).
    pub fn flush_due(&self) -> bool {
        self.unflushed_messages >= self.config.flush_interval_messages
    }

    /// fsyncs every segment written since the last flush, and the directory when a segment
    /// was created since (as Kafka's `LocalLog.flush` does).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.take_flush()?.sync()
    }

    /// What a flush must fsync — every segment written since the last flush, and the
    /// directory when a segment was created since — as handles of their own, so that the
    /// fsyncs can run without the lock on the log (a slow disk then holds up nobody but the
    /// caller). Everything written so far counts as flushed: an fsync that then fails takes
    /// the log directory offline.
    pub fn take_flush(&mut self) -> std::io::Result<PendingFlush> {
        let mut files = Vec::new();
        for (_, segment) in self.segments.range(self.unflushed_from_segment..) {
            files.extend(segment.file_handles()?);
        }
        let dir = self.directory_unflushed.then(|| self.dir.clone());
        self.directory_unflushed = false;
        self.unflushed_messages = 0;
        self.unflushed_from_segment = self.active().base_offset();
        Ok(PendingFlush { files, dir })
    }

    /// Reads whole stored batches from the one holding `offset`, at most `max_bytes` (but
    /// always the whole first batch), never past `offset_upper_bound` (exclusive: the high watermark for
    /// consumers, the log end for followers).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        offset_upper_bound: i64,
    ) -> Result<Bytes, ReadError> {
        let log_end_offset = self.log_end_offset();
        if offset < self.log_start_offset || offset > log_end_offset {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset,
            });
        }
        let upper_bound = offset_upper_bound.min(log_end_offset);
        if offset >= upper_bound {
            return Ok(Bytes::new());
        }
        for (_, segment) in self
            .segments
            .range(..=offset)
            .next_back()
            .into_iter()
            .chain(
                self.segments
                    .range(offset + 1..)
                    .take_while(|(base, _)| **base < upper_bound),
            )
        {
            let Some(start) = segment.position_of(offset)? else {
                continue;
            };
            let end = if upper_bound >= segment.next_offset() {
                segment.size()
            } else {
                segment.position_of(upper_bound)?.unwrap_or(segment.size())
            };
            if start >= end {
                return Ok(Bytes::new());
            }
            // Whole batches only, at most `max_bytes`, but always the first one (KIP-74).
            let first_batch_end = start + segment.batch_size_at(start)?.unwrap_or(0) as u64;
            let limit = end.min(start.saturating_add(max_bytes as u64));
            let stop = if limit <= first_batch_end {
                first_batch_end.min(end)
            } else {
                segment.last_batch_end_within(start, limit)?
            };
            return Ok(segment.read(start, (stop - start) as usize)?);
        }
        Ok(Bytes::new())
    }

    /// The first record whose timestamp is >= `timestamp_ms`, below `offset_upper_bound`:
    /// (offset, its timestamp), or `None` if there is none.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
        offset_upper_bound: i64,
    ) -> std::io::Result<Option<(i64, i64)>> {
        for segment in self.segments.values() {
            let Some((position, header)) =
                segment.find_batch(|header| header.max_timestamp >= timestamp_ms)?
            else {
                continue;
            };
            if header.base_offset >= offset_upper_bound {
                return Ok(None);
            }
            let bytes = segment.read(position, header.size)?;
            // Stored batches passed the same walk when they were appended; the budget bounds
            // the work should the file say otherwise.
            let mut budget = DecompressionBudget::for_request(self.config.message_max_bytes);
            let mut found = None;
            records::walk(&bytes, &mut budget, |record| {
                let offset = header.base_offset + i64::from(record.offset_delta);
                if record.timestamp >= timestamp_ms && offset < offset_upper_bound {
                    found = Some((offset, record.timestamp));
                    return std::ops::ControlFlow::Break(());
                }
                std::ops::ControlFlow::Continue(())
            })
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))?;
            return Ok(found);
        }
        Ok(None)
    }

    /// Removes every record at or after `offset` (a follower truncating to agree with its
    /// leader). Segments that start at or after it are deleted.
    pub fn truncate_to(&mut self, offset: i64) -> std::io::Result<()> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let offset = offset.max(self.log_start_offset);
        let doomed: Vec<i64> = self
            .segments
            .range(offset..)
            .map(|(base, _)| *base)
            .collect();
        for base in doomed {
            if base == self.log_start_offset {
                continue;
            }
            if let Some(segment) = self.segments.remove(&base) {
                segment.delete()?;
            }
        }
        self.active_mut().truncate_to(offset)?;
        self.leader_epochs.truncate_from_end(offset)?;
        let end = self.log_end_offset();
        if let Some(replay_from) = self.producers.truncate(self.log_start_offset, end)? {
            self.replay_producers(replay_from)?;
        }
        Ok(())
    }

    /// The idempotent producers' state.
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    /// Snapshots the producer state at the log end (clean shutdown), unless already done.
    pub fn take_producer_snapshot(&mut self) -> std::io::Result<()> {
        let end = self.log_end_offset();
        self.producers.take_snapshot(end)
    }

    /// Forgets producers idle for `expiration_ms` at `now_ms`; returns how many.
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.remove_expired(now_ms, expiration_ms)
    }

    /// Deletes the log's directory.
    pub fn delete(self) -> std::io::Result<()> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(dir)
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests;
