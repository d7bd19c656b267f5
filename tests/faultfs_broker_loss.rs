//! The fault filesystem under a real broker: acks=1 sends, SIGKILL, every un-fsynced change
//! dropped (a power loss), restart. With `log.flush.interval.messages=1` every acknowledged
//! message is still there; with Kafka's default (no fsync) some are gone — the loss Kafka's
//! durability-by-replication accepts, which a SIGKILL alone never shows.
#![allow(clippy::unwrap_used)]

mod broker_support;

use std::time::Duration;

use broker_support::{TestBroker, consume_all, consumer, produce_all, start_coordinator};
use faultfs::FaultFs;
use rdkafka::consumer::Consumer;

const MESSAGES: usize = 2_000;

/// Sends, kills, loses what was never fsync'd, restarts; returns (acknowledged, still there).
fn acked_and_kept_after_power_loss(extra_config: &str, topic: &str) -> (usize, usize) {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("disk");
    let log_dir = dir.path().join("kafka-logs");
    std::fs::create_dir(&backing).unwrap();
    std::fs::create_dir(&log_dir).unwrap();
    let tag = format!("test-{}-{topic}", std::process::id());
    let disk = FaultFs::mount(&backing, &log_dir, &tag).unwrap();
    let mut broker = TestBroker::start(dir.path(), &coordinator, 1, extra_config);
    assert_eq!(broker.log_dir(), log_dir);

    let acked = produce_all(&broker.bootstrap(), "1", topic, 0, MESSAGES);
    assert!(
        acked.len() > MESSAGES / 2,
        "only {} acknowledged",
        acked.len()
    );
    broker.kill();
    let report = disk.lose_unsynced(None).unwrap();
    eprintln!("{topic}: {report:?}");
    broker.restart();

    let high_watermark = consumer(&broker.bootstrap())
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .map(|(_, high)| high)
        .unwrap_or(0);
    let read = if high_watermark > 0 {
        consume_all(&broker.bootstrap(), topic, 0, high_watermark as usize)
    } else {
        Vec::new()
    };
    let kept = acked.iter().filter(|sent| read.contains(sent)).count();
    broker.kill();
    drop(disk);
    assert!(
        !faultfs::find_stale_mounts(&tag)
            .unwrap()
            .iter()
            .any(|m| m.tag == tag)
    );
    (acked.len(), kept)
}

#[test]
fn with_an_fsync_per_message_a_power_loss_loses_no_acknowledged_message() {
    let (acked, kept) = acked_and_kept_after_power_loss("log.flush.interval.messages=1", "flushed");
    assert_eq!(
        kept, acked,
        "acknowledged messages lost despite fsync per message"
    );
}

#[test]
fn with_kafkas_default_flush_a_power_loss_loses_acknowledged_messages() {
    let (acked, kept) = acked_and_kept_after_power_loss("", "unflushed");
    assert!(
        kept < acked,
        "all {acked} acknowledged messages survived a loss of everything never fsync'd"
    );
}
