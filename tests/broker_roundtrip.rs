//! rdkafka producers (acks=all, acks=1) and an assign-based consumer round-trip 100k messages
//! through one broker process: every acknowledged message is read back exactly once, in order,
//! at the offset the producer was given.
#![allow(clippy::unwrap_used)]

mod broker_support;

use broker_support::{TestBroker, consume_all, produce_all, start_coordinator};

fn round_trip(acks: &str, topic: &str, count: usize) {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let acked = produce_all(&broker.bootstrap(), acks, topic, 0, count);
    assert_eq!(acked.len(), count, "every send was acknowledged");
    // Offsets are assigned densely from 0 in send order (one producer, one partition).
    for (i, (value, offset)) in acked.iter().enumerate() {
        assert_eq!(*value, format!("m{i}"));
        assert_eq!(*offset, i as i64, "offset of {value}");
    }
    let read = consume_all(&broker.bootstrap(), topic, 0, count);
    assert_eq!(read.len(), count, "read back every message once");
    for ((sent, acked_offset), (value, offset)) in acked.iter().zip(&read) {
        assert_eq!(sent, value);
        assert_eq!(acked_offset, offset);
    }
}

#[test]
fn acks_all_round_trips_100k_messages() {
    round_trip("all", "acks-all", 100_000);
}

#[test]
fn acks_1_round_trips_100k_messages() {
    round_trip("1", "acks-one", 100_000);
}
