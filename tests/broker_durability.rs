//! Durability of one broker's log: a clean restart keeps everything; a SIGKILL mid-stream with
//! `log.flush.interval.messages=1` loses no acknowledged message; a torn segment tail is cut
//! on restart with the earlier batches intact.
#![allow(clippy::unwrap_used)]

mod broker_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use broker_support::{TestBroker, consume_all, consumer, produce_all, start_coordinator};
use harness::wait::wait_for;
use rdkafka::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn segment_path(broker: &TestBroker, topic: &str) -> std::path::PathBuf {
    broker
        .log_dir()
        .join(format!("{topic}-0"))
        .join("00000000000000000000.log")
}

#[test]
fn a_clean_restart_keeps_every_message() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let acked = produce_all(&broker.bootstrap(), "all", "kept", 0, 20_000);
    assert_eq!(acked.len(), 20_000);
    assert!(broker.terminate(), "SIGTERM stops the broker by itself");
    assert!(broker.output().contains("broker 1 stopped"));
    broker.restart();
    let read = consume_all(&broker.bootstrap(), "kept", 0, acked.len());
    assert_eq!(read, acked);
    // New messages continue after the old ones.
    let more = produce_all(&broker.bootstrap(), "all", "kept", 20_000, 10);
    assert_eq!(more.first().map(|(_, offset)| *offset), Some(20_000));
}

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_message() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let mut broker =
        TestBroker::start(dir.path(), &coordinator, 1, "log.flush.interval.messages=1");
    let topic = "crash";
    let bootstrap = broker.bootstrap();
    let stop = Arc::new(AtomicBool::new(false));
    let producer_thread = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let producer: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("acks", "all")
                .set("linger.ms", "1")
                .set("message.timeout.ms", "20000")
                .set("enable.idempotence", "false")
                .create()
                .unwrap();
            let mut acked = Vec::new();
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                // Small windows of in-flight sends, so the kill lands between and inside them.
                let window: Vec<_> = (i..i + 50)
                    .map(|n| {
                        let value = format!("m{n}");
                        let record = FutureRecord::<(), _>::to(topic)
                            .payload(&value)
                            .partition(0);
                        (value.clone(), producer.send_result(record).ok())
                    })
                    .collect();
                i += 50;
                for (value, delivery) in window {
                    let Some(delivery) = delivery else { continue };
                    if let Ok(Ok(delivered)) = futures::executor::block_on(delivery) {
                        acked.push((value, delivered.offset));
                    }
                }
            }
            acked
        })
    };
    let segment = segment_path(&broker, topic);
    wait_for(
        "some messages on disk",
        Duration::from_secs(60),
        Duration::from_millis(10),
        || {
            std::fs::metadata(&segment)
                .ok()
                .filter(|meta| meta.len() > 100_000)
        },
    )
    .unwrap();
    broker.kill();
    broker.restart();
    // Let the producer deliver some more after the restart, then stop it.
    let log_size_after_restart = std::fs::metadata(&segment).unwrap().len();
    wait_for(
        "the producer to resume",
        Duration::from_secs(60),
        Duration::from_millis(10),
        || {
            std::fs::metadata(&segment)
                .ok()
                .filter(|meta| meta.len() > log_size_after_restart + 10_000)
        },
    )
    .unwrap();
    stop.store(true, Ordering::SeqCst);
    let acked = producer_thread.join().unwrap();
    assert!(acked.len() > 1000, "only {} acknowledged", acked.len());

    let watermarks = consumer(&broker.bootstrap())
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    let read = consume_all(&broker.bootstrap(), topic, 0, watermarks.1 as usize);
    let by_offset: std::collections::HashMap<i64, &str> = read
        .iter()
        .map(|(value, offset)| (*offset, value.as_str()))
        .collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|(value, offset)| by_offset.get(offset) != Some(&value.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

#[test]
fn a_torn_segment_tail_is_cut_on_restart_and_earlier_batches_stay() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let topic = "torn";
    // Ten rounds, each acknowledged before the next: at least ten batches.
    for round in 0..10 {
        let acked = produce_all(&broker.bootstrap(), "1", topic, round * 100, 100);
        assert_eq!(acked.len(), 100);
    }
    assert!(broker.terminate());
    let segment = segment_path(&broker, topic);
    let size = std::fs::metadata(&segment).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(size - 7).unwrap();
    drop(file);

    broker.restart();
    assert!(broker.output().contains("torn tail"), "{}", broker.output());
    let (low, high) = consumer(&broker.bootstrap())
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(low, 0);
    assert!(
        (900..1000).contains(&high),
        "log end offset {high} after cutting the last batch"
    );
    let read = consume_all(&broker.bootstrap(), topic, 0, high as usize);
    assert_eq!(read.len(), high as usize);
    for (i, (value, offset)) in read.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(*value, format!("m{i}"));
    }
    // The log accepts appends again, at the cut.
    let more = produce_all(&broker.bootstrap(), "1", topic, 5000, 1);
    assert_eq!(more[0].1, high);
}
