//! Unit tests of [`super`] (partition_log.rs).

use super::*;
use crate::broker::log::batch::tests::{encoded_batch, idempotent_batch};

fn unlimited() -> DecompressionBudget {
    DecompressionBudget::new(u64::MAX)
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 256,
        flush_interval_messages: u64::MAX,
        message_max_bytes: 1 << 20,
    }
}

fn offsets_in(bytes: &[u8]) -> Vec<(i64, i64)> {
    batch::validate_all(bytes)
        .expect("whole batches")
        .iter()
        .map(|h| (h.base_offset, h.last_offset()))
        .collect()
}

#[test]
fn assigns_offsets_rolls_segments_and_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config(1000)).expect("open");
    for i in 0..40 {
        let info = log
            .append_as_leader(&encoded_batch(3), 4, &mut unlimited())
            .expect("append");
        assert_eq!(info.base_offset, i * 3);
        assert_eq!(info.last_offset, i * 3 + 2);
    }
    assert_eq!(log.log_end_offset(), 120);
    assert!(log.segments.len() > 3, "rolled: {}", log.segments.len());
    // Every offset is readable, from the batch that holds it.
    for offset in 0..120 {
        let bytes = log.read(offset, 1, 120).expect("read");
        let batches = offsets_in(&bytes);
        assert_eq!(batches.len(), 1);
        assert!(batches[0].0 <= offset && offset <= batches[0].1);
    }
    // A byte budget yields whole batches only.
    let one_batch = log.read(0, 1, 120).expect("read").len();
    let bytes = log.read(0, one_batch * 5 / 2, 120).expect("read");
    assert_eq!(offsets_in(&bytes), vec![(0, 2), (3, 5)]);
    // The upper bound (high watermark) is respected.
    let bytes = log.read(0, 1 << 20, 6).expect("read");
    assert_eq!(offsets_in(&bytes), vec![(0, 2), (3, 5)]);
    assert!(log.read(120, 100, 120).expect("at end").is_empty());
    assert!(matches!(
        log.read(121, 100, 121),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.leader_epochs().latest_epoch(), Some(4));
    // encoded_batch stamps records 1000, 1001, 1002: the first at or after 1002 is the
    // third record of the first batch.
    assert_eq!(
        log.offset_for_timestamp(1002, 120).expect("io"),
        Some((2, 1002))
    );
    assert_eq!(
        log.offset_for_timestamp(1000, 120).expect("io"),
        Some((0, 1000))
    );
    assert_eq!(log.offset_for_timestamp(5000, 120).expect("io"), None);
    drop(log);
    let (log, outcome) = PartitionLog::open(dir.path(), config(1000)).expect("reopen");
    assert_eq!(outcome.truncated_bytes, 0);
    assert_eq!(log.log_end_offset(), 120);
    assert_eq!(
        offsets_in(&log.read(60, 1, 120).expect("read")),
        vec![(60, 62)]
    );
}

#[test]
fn corrupt_and_oversized_batches_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config(1 << 20)).expect("open");
    let mut bad = encoded_batch(2);
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    assert!(matches!(
        log.append_as_leader(&bad, 0, &mut unlimited()),
        Err(AppendError::Corrupt(BatchError::Crc { .. }))
    ));
    log.config.message_max_bytes = 10;
    assert!(matches!(
        log.append_as_leader(&encoded_batch(2), 0, &mut unlimited()),
        Err(AppendError::TooLarge { .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn truncation_and_follower_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config(600)).expect("open");
    for epoch in [1, 1, 2, 2, 3, 3] {
        log.append_as_leader(&encoded_batch(5), epoch, &mut unlimited())
            .expect("append");
    }
    log.truncate_to(15).expect("truncate");
    assert_eq!(log.log_end_offset(), 15);
    assert_eq!(log.leader_epochs().latest_epoch(), Some(2));
    // A lost checkpoint is rebuilt from the batches.
    drop(log);
    std::fs::remove_file(dir.path().join(super::super::leader_epoch::CHECKPOINT_FILE))
        .expect("remove checkpoint");
    let (mut log, _) = PartitionLog::open(dir.path(), config(600)).expect("reopen");
    let entries: Vec<(i32, i64)> = log
        .leader_epochs()
        .entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect();
    assert_eq!(entries, vec![(1, 0), (2, 10)]);
    let mut copied = encoded_batch(5);
    batch::patch(&mut copied, 15, 4);
    log.append_as_follower(&copied).expect("follower append");
    assert_eq!(log.log_end_offset(), 20);
    let mut gap = encoded_batch(1);
    batch::patch(&mut gap, 30, 4);
    assert!(matches!(
        log.append_as_follower(&gap),
        Err(AppendError::OffsetsOutOfOrder { .. })
    ));
}

#[test]
fn idempotent_appends_are_checked_recorded_and_deduplicated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config(1 << 20)).expect("open");
    log.append_as_leader(&encoded_batch(2), 0, &mut unlimited())
        .expect("plain");
    let first = log
        .append_as_leader(&idempotent_batch(9, 0, 0, 3), 0, &mut unlimited())
        .expect("first");
    assert_eq!((first.base_offset, first.duplicate), (2, false));
    log.append_as_leader(&idempotent_batch(9, 0, 3, 2), 0, &mut unlimited())
        .expect("next");
    // A retry of the first batch: its offsets, nothing written.
    let retry = log
        .append_as_leader(&idempotent_batch(9, 0, 0, 3), 0, &mut unlimited())
        .expect("duplicate");
    assert_eq!(
        (retry.base_offset, retry.last_offset, retry.duplicate),
        (2, 4, true)
    );
    assert_eq!(log.log_end_offset(), 7);
    assert!(matches!(
        log.append_as_leader(&idempotent_batch(9, 0, 9, 1), 0, &mut unlimited()),
        Err(AppendError::Producer(
            ProducerError::OutOfOrderSequence { .. }
        ))
    ));
    // Two batches of an idempotent producer in one request are refused.
    let two = [
        &idempotent_batch(9, 0, 5, 1)[..],
        &idempotent_batch(9, 0, 6, 1)[..],
    ]
    .concat();
    assert!(matches!(
        log.append_as_leader(&two, 0, &mut unlimited()),
        Err(AppendError::Producer(ProducerError::ManyBatches {
            batches: 2
        }))
    ));
    assert_eq!(log.log_end_offset(), 7, "refusals write nothing");
}

#[test]
fn producer_state_survives_reopening_with_and_without_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Small segments: rolls snapshot the state on the way.
    let (mut log, _) = PartitionLog::open(dir.path(), config(400)).expect("open");
    for i in 0..12 {
        log.append_as_leader(&idempotent_batch(5, 0, i * 2, 2), 0, &mut unlimited())
            .expect("append");
    }
    let snapshots = log.producer_state().snapshot_offsets().clone();
    assert!(!snapshots.is_empty(), "rolls took snapshots");
    let before = log.producer_state().entry(5).cloned();
    drop(log);
    // Reopened without a clean shutdown: latest snapshot + replay of the active segment.
    let (mut log, _) = PartitionLog::open(dir.path(), config(400)).expect("reopen");
    assert_eq!(log.producer_state().entry(5).cloned(), before);
    let retry = log
        .append_as_leader(&idempotent_batch(5, 0, 16, 2), 0, &mut unlimited())
        .expect("a retry of the fourth-last batch");
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, 16);
    // Clean shutdown: a snapshot at the log end; then every snapshot deleted: full replay.
    log.take_producer_snapshot().expect("snapshot");
    assert!(log.producer_state().snapshot_offsets().contains(&24));
    drop(log);
    let (log, _) = PartitionLog::open(dir.path(), config(400)).expect("reopen");
    assert_eq!(log.producer_state().entry(5).cloned(), before);
    let offsets: Vec<i64> = log
        .producer_state()
        .snapshot_offsets()
        .iter()
        .copied()
        .collect();
    drop(log);
    for offset in offsets {
        std::fs::remove_file(crate::broker::log::producer_state::snapshot::path(
            dir.path(),
            offset,
        ))
        .expect("remove");
    }
    let (log, _) = PartitionLog::open(dir.path(), config(400)).expect("reopen");
    assert_eq!(log.producer_state().entry(5).cloned(), before);
}

#[test]
fn truncation_rolls_the_producer_state_back_with_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config(1 << 20)).expect("open");
    for i in 0..4 {
        log.append_as_leader(&idempotent_batch(3, 0, i * 5, 5), 0, &mut unlimited())
            .expect("append");
    }
    log.truncate_to(10).expect("truncate");
    // The batches at 10.. are gone: their retries are new appends, not duplicates.
    let again = log
        .append_as_leader(&idempotent_batch(3, 0, 10, 5), 0, &mut unlimited())
        .expect("append");
    assert_eq!((again.base_offset, again.duplicate), (10, false));
    assert!(
        log.append_as_leader(&idempotent_batch(3, 0, 5, 5), 0, &mut unlimited())
            .expect("retry")
            .duplicate
    );
    // A follower records what it copies, without checking it.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let (mut follower, _) = PartitionLog::open(dir2.path(), config(1 << 20)).expect("open");
    let mut copied = idempotent_batch(3, 2, 77, 4);
    batch::patch(&mut copied, 0, 1);
    follower.append_as_follower(&copied).expect("copy");
    let entry = follower.producer_state().entry(3).expect("recorded");
    assert_eq!((entry.epoch, entry.last_sequence()), (2, Some(80)));
}
