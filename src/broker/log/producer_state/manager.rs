//! The producer state of one partition replica (Kafka's `ProducerStateManager`): every
//! producer id seen in the log with its [`ProducerEntry`], kept in step with the log by its
//! owner, [`crate::broker::log::partition_log::PartitionLog`]:
//!
//! - every appended batch — the leader's after [`ProducerStateManager::check_leader_append`],
//!   a follower's copied from its leader, a batch replayed at start — is
//!   [`ProducerStateManager::record`]ed;
//! - a snapshot is taken at each segment roll and at clean shutdown
//!   ([`ProducerStateManager::take_snapshot`]);
//! - on open, [`ProducerStateManager::load`] reads the latest usable snapshot at or before the
//!   log end and says from where the log must be replayed;
//! - on truncation, [`ProducerStateManager::truncate`] drops the snapshots past the new end and,
//!   when a producer had batches there, starts over from the latest snapshot before it;
//! - producers idle for `producer.id.expiration.ms` are forgotten
//!   ([`ProducerStateManager::remove_expired`]); and since any client may write with any
//!   producer id, a partition never keeps more than [`PRODUCERS_PER_PARTITION_MAX`]: past that,
//!   the idlest tenth is forgotten at once (Kafka has no such bound; KIP-936 describes brokers
//!   run out of memory by producer ids).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::append::{self, LeaderAppend, ProducerError};
use super::entry::{ProducerBatch, ProducerEntry};
use super::snapshot::{self, SnapshotError};
use crate::broker::directory;
use crate::broker::log::batch::BatchHeader;

/// The most producers one partition remembers (about 150 bytes each).
pub const PRODUCERS_PER_PARTITION_MAX: usize = 100_000;

/// The producers of one partition and its snapshot files.
#[derive(Debug)]
pub struct ProducerStateManager {
    dir: PathBuf,
    producers: HashMap<i64, ProducerEntry>,
    /// Offsets of the snapshot files in `dir`.
    snapshots: BTreeSet<i64>,
    /// The offset the state was last snapshotted (or loaded) at: no new snapshot until the log
    /// has grown past it.
    last_snapshot_offset: i64,
}

impl ProducerStateManager {
    /// No producers yet; knows the snapshot files in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        Ok(ProducerStateManager {
            dir: dir.to_path_buf(),
            producers: HashMap::new(),
            snapshots: snapshot::list(dir)?,
            last_snapshot_offset: 0,
        })
    }

    /// Loads the latest readable snapshot at or before `log_end_offset` — deleting the ones
    /// after it (a tail that was cut) and the ones that cannot be read — and returns the offset
    /// from which the log must be replayed into this state (`log_start_offset` without one).
    pub fn load(&mut self, log_start_offset: i64, log_end_offset: i64) -> std::io::Result<i64> {
        self.producers.clear();
        self.delete_snapshots_after(log_end_offset)?;
        while let Some(offset) = self.snapshots.last().copied() {
            match snapshot::read(&self.dir, offset) {
                Ok(entries) => {
                    self.producers = entries.into_iter().collect();
                    if self.producers.len() > PRODUCERS_PER_PARTITION_MAX {
                        self.forget_idlest();
                    }
                    self.last_snapshot_offset = offset;
                    tracing::info!(
                        "loaded producer snapshot {} with {} producer ids",
                        snapshot::path(&self.dir, offset).display(),
                        self.producers.len()
                    );
                    return Ok(offset);
                }
                Err(error @ (SnapshotError::Corrupt { .. } | SnapshotError::Io { .. })) => {
                    tracing::warn!("{error}: deleted, the state is rebuilt from the log");
                    snapshot::delete(&self.dir, offset)?;
                    self.snapshots.remove(&offset);
                }
            }
        }
        self.last_snapshot_offset = log_start_offset;
        Ok(log_start_offset)
    }

    /// The leader's checks of a client's batches; `Ok(None)` when no batch has a producer id.
    pub fn check_leader_append(
        &self,
        headers: &[BatchHeader],
    ) -> Result<Option<(ProducerBatch, LeaderAppend)>, ProducerError> {
        let Some(batch) = append::validate_client_batches(headers)? else {
            return Ok(None);
        };
        let decision = append::check_leader_append(self.producers.get(&batch.producer_id), &batch)?;
        Ok(Some((batch, decision)))
    }

    /// Records a batch now in the log (its `base_offset` assigned), unchecked: a leader's
    /// accepted batch, a follower's copy, a batch replayed from the log.
    pub fn record(&mut self, header: &BatchHeader) {
        let Some(batch) = ProducerBatch::of(header).filter(|batch| !batch.control) else {
            return;
        };
        self.producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry::new(batch.epoch, [], batch.max_timestamp_ms))
            .add(&batch, header.base_offset);
        if self.producers.len() > PRODUCERS_PER_PARTITION_MAX {
            self.forget_idlest();
        }
    }

    /// Forgets the tenth of the producers whose latest batch is oldest (one sort per tenth of
    /// the bound: the cost per batch stays small).
    fn forget_idlest(&mut self) {
        let mut by_age: Vec<(i64, i64)> = self
            .producers
            .iter()
            .map(|(id, entry)| (entry.last_timestamp_ms, *id))
            .collect();
        by_age.sort_unstable();
        let forget = self.producers.len() - PRODUCERS_PER_PARTITION_MAX * 9 / 10;
        for (_, producer_id) in by_age.into_iter().take(forget) {
            self.producers.remove(&producer_id);
        }
        tracing::warn!(
            "more than {PRODUCERS_PER_PARTITION_MAX} producer ids wrote to {}: forgot the {forget} \
             idlest (their retries are no longer recognised)",
            self.dir.display()
        );
    }

    /// Writes a snapshot at `log_end_offset` unless one at or past it was already taken.
    pub fn take_snapshot(&mut self, log_end_offset: i64) -> std::io::Result<()> {
        if log_end_offset <= self.last_snapshot_offset {
            return Ok(());
        }
        snapshot::write(&self.dir, log_end_offset, &self.producers)?;
        self.snapshots.insert(log_end_offset);
        self.last_snapshot_offset = log_end_offset;
        tracing::info!(
            "wrote producer snapshot at offset {log_end_offset} with {} producer ids in {}",
            self.producers.len(),
            self.dir.display()
        );
        Ok(())
    }

    /// The log was truncated to `log_end_offset`. Snapshots past it are deleted (durably: one
    /// coming back would describe batches no longer in the log). When no producer has a batch
    /// at or past the new end the state is unchanged (`None`); otherwise it is reloaded from
    /// the latest snapshot and the log must be replayed from the offset returned.
    pub fn truncate(
        &mut self,
        log_start_offset: i64,
        log_end_offset: i64,
    ) -> std::io::Result<Option<i64>> {
        self.delete_snapshots_after(log_end_offset)?;
        self.last_snapshot_offset = self
            .last_snapshot_offset
            .min(self.snapshots.last().copied().unwrap_or(log_start_offset));
        let affected = self.producers.values().any(|entry| {
            entry
                .last_offset()
                .is_some_and(|last| last >= log_end_offset)
        });
        if !affected {
            return Ok(None);
        }
        self.load(log_start_offset, log_end_offset).map(Some)
    }

    fn delete_snapshots_after(&mut self, offset: i64) -> std::io::Result<()> {
        let stale: Vec<i64> = self.snapshots.range(offset + 1..).copied().collect();
        if stale.is_empty() {
            return Ok(());
        }
        for offset in stale {
            snapshot::delete(&self.dir, offset)?;
            self.snapshots.remove(&offset);
        }
        directory::sync_dir(&self.dir)
    }

    /// Forgets producers idle for `expiration_ms` at `now_ms`; returns how many.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, entry| !entry.is_expired(now_ms, expiration_ms));
        before - self.producers.len()
    }

    /// The state of `producer_id`, if the partition knows it.
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// How many producers the partition knows.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The offsets of the snapshot files.
    pub fn snapshot_offsets(&self) -> &BTreeSet<i64> {
        &self.snapshots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, epoch: i16, base_sequence: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            size: 100,
            partition_leader_epoch: 0,
            last_offset_delta: 4,
            max_timestamp: 10_000,
            attributes: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
        }
    }

    #[test]
    fn records_checks_and_snapshots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut state = ProducerStateManager::open(dir.path()).expect("open");
        assert_eq!(state.load(0, 0).expect("load"), 0);
        state.record(&header(1, 0, 0, 0));
        state.record(&header(-1, -1, -1, 5));
        state.record(&header(1, 0, 5, 10));
        assert_eq!(state.len(), 1);
        assert_eq!(
            state
                .check_leader_append(&[header(1, 0, 0, 99)])
                .expect("dup"),
            Some((
                ProducerBatch::of(&header(1, 0, 0, 99)).expect("batch"),
                LeaderAppend::Duplicate {
                    first_offset: 0,
                    last_offset: 4
                }
            ))
        );
        assert!(state.check_leader_append(&[header(1, 0, 12, 99)]).is_err());
        assert_eq!(
            state.check_leader_append(&[header(-1, -1, -1, 99)]),
            Ok(None)
        );
        state.take_snapshot(15).expect("snapshot");
        state.take_snapshot(15).expect("nothing new: no write");
        assert_eq!(state.snapshot_offsets(), &BTreeSet::from([15]));

        let mut reopened = ProducerStateManager::open(dir.path()).expect("reopen");
        assert_eq!(reopened.load(0, 20).expect("load"), 15);
        assert_eq!(reopened.entry(1), state.entry(1));
        // A log that ends before the snapshot (its tail was cut): the snapshot goes.
        let mut cut = ProducerStateManager::open(dir.path()).expect("reopen");
        assert_eq!(cut.load(0, 12).expect("load"), 0);
        assert!(cut.is_empty() && cut.snapshot_offsets().is_empty());
        assert!(!snapshot::path(dir.path(), 15).exists());
    }

    #[test]
    fn a_corrupt_snapshot_is_deleted_and_an_older_one_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut state = ProducerStateManager::open(dir.path()).expect("open");
        state.load(0, 0).expect("load");
        state.record(&header(1, 0, 0, 0));
        state.take_snapshot(5).expect("snapshot");
        state.record(&header(1, 0, 5, 5));
        state.take_snapshot(10).expect("snapshot");
        std::fs::write(snapshot::path(dir.path(), 10), b"garbage").expect("corrupt");
        let mut reopened = ProducerStateManager::open(dir.path()).expect("reopen");
        assert_eq!(reopened.load(0, 10).expect("load"), 5, "replay from 5");
        assert_eq!(
            reopened.entry(1).and_then(ProducerEntry::last_offset),
            Some(4)
        );
        assert_eq!(reopened.snapshot_offsets(), &BTreeSet::from([5]));
    }

    #[test]
    fn truncation_rolls_back_only_when_a_producer_had_batches_past_the_new_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut state = ProducerStateManager::open(dir.path()).expect("open");
        state.load(0, 0).expect("load");
        state.record(&header(1, 0, 0, 0));
        state.take_snapshot(5).expect("snapshot");
        state.record(&header(2, 0, 0, 5));
        state.record(&header(1, 0, 5, 10));
        state.take_snapshot(15).expect("snapshot");
        // Nothing at or past 20: unchanged.
        assert_eq!(state.truncate(0, 20).expect("truncate"), None);
        assert_eq!(state.len(), 2);
        // Producer 1's batch at 10 goes: reload from the snapshot at 5, replay from there.
        assert_eq!(state.truncate(0, 10).expect("truncate"), Some(5));
        assert_eq!(state.snapshot_offsets(), &BTreeSet::from([5]));
        assert_eq!(state.entry(1).and_then(ProducerEntry::last_offset), Some(4));
        assert!(state.entry(2).is_none(), "replaying 5..10 brings it back");
        state.record(&header(2, 0, 0, 5));
        state
            .take_snapshot(10)
            .expect("a snapshot at the new end is written again");
        assert_eq!(state.snapshot_offsets(), &BTreeSet::from([5, 10]));
    }

    #[test]
    fn past_the_bound_the_idlest_producers_are_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut state = ProducerStateManager::open(dir.path()).expect("open");
        for producer_id in 0..=PRODUCERS_PER_PARTITION_MAX as i64 {
            let mut batch = header(producer_id, 0, 0, producer_id * 5);
            batch.max_timestamp = producer_id;
            state.record(&batch);
        }
        assert_eq!(state.len(), PRODUCERS_PER_PARTITION_MAX * 9 / 10);
        assert!(state.entry(0).is_none(), "the idlest went");
        assert!(state.entry(PRODUCERS_PER_PARTITION_MAX as i64).is_some());
    }

    #[test]
    fn idle_producers_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut state = ProducerStateManager::open(dir.path()).expect("open");
        state.record(&header(1, 0, 0, 0));
        let mut later = header(2, 0, 0, 5);
        later.max_timestamp = 50_000;
        state.record(&later);
        assert_eq!(state.remove_expired(60_000, 20_000), 1);
        assert!(state.entry(1).is_none() && state.entry(2).is_some());
    }
}
