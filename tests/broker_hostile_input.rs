//! Input built to take a broker down, sent to a real broker process: each one is refused
//! (the connection closed with the reason logged, or an error code with a message) and the
//! broker keeps serving. One test per crash of the family found in issue 10: the 19-byte
//! Metadata request, a stored CRC-valid batch claiming 2^31 records, compression bombs,
//! CreateTopics for 2,000,000,000 partitions.
#![allow(clippy::unwrap_used)]

mod broker_support;

use std::io::{Read, Write};
use std::time::Duration;

use broker_support::raw::{call, closed_by_peer, connect, resident_bytes};
use broker_support::{TestBroker, consume_all, produce_all, start_coordinator};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// CreateTopics v5 for one topic; returns its error code and message.
fn create_topic(
    stream: &mut std::net::TcpStream,
    name: &str,
    partitions: i32,
    validate_only: bool,
) -> (i16, Option<String>) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ])
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only);
    let response: CreateTopicsResponse = call(stream, 5, &request);
    let topic = &response.topics[0];
    (
        topic.error_code,
        topic.error_message.as_ref().map(|m| m.to_string()),
    )
}

fn metadata_topics(stream: &mut std::net::TcpStream) -> Vec<String> {
    let all_topics = MetadataRequest::default().with_topics(None);
    let response: MetadataResponse = call(stream, 1, &all_topics);
    response
        .topics
        .iter()
        .filter_map(|topic| topic.name.as_ref().map(|name| name.0.to_string()))
        .collect()
}

fn assert_alive(broker: &mut TestBroker) {
    let process = broker.process.as_mut().unwrap();
    assert!(
        process.is_running().unwrap(),
        "the broker died; log:\n{}",
        broker.output()
    );
}

/// A v2 batch of `values.len()` uncompressed records.
fn batch(values: &[&[u8]]) -> Vec<u8> {
    kchaos::broker::log::batch::encode_example(values, Compression::None)
        .unwrap()
        .to_vec()
}

/// Recomputes `batchLength` and the CRC after the batch was edited.
fn seal(batch: &mut [u8]) {
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Produce v9 of one batch to partition 0 of `topic`, acks=1; returns the partition's error
/// code and message.
fn produce_raw(
    stream: &mut std::net::TcpStream,
    topic: &str,
    batch: Vec<u8>,
) -> (i16, Option<String>) {
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    let response: ProduceResponse = call(stream, 9, &request);
    let partition = &response.responses[0].partition_responses[0];
    (
        partition.error_code,
        partition.error_message.as_ref().map(|m| m.to_string()),
    )
}

#[test]
fn a_19_byte_metadata_request_closes_its_connection_and_the_broker_serves_on() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let mut hostile = connect(&broker.bootstrap());
    // Size 15, Metadata v0, correlation 1, client id "a", topic count 0x7fffffff: 19 bytes.
    let mut request = Vec::new();
    request.extend_from_slice(&15i32.to_be_bytes());
    request.extend_from_slice(&3i16.to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes());
    request.extend_from_slice(&1i32.to_be_bytes());
    request.extend_from_slice(&1i16.to_be_bytes());
    request.push(b'a');
    request.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    assert_eq!(request.len(), 19);
    hostile.write_all(&request).unwrap();
    assert!(closed_by_peer(&mut hostile), "the connection stays open");
    assert_alive(&mut broker);
    let log = broker.output();
    assert!(
        log.contains("Tried to allocate a collection of size 2147483647"),
        "the reason is not logged:\n{log}"
    );
    let mut client = connect(&broker.bootstrap());
    let (error, _) = create_topic(&mut client, "after", 1, false);
    assert_eq!(error, 0);
    assert!(metadata_topics(&mut client).contains(&"after".to_string()));
    let acked = produce_all(&broker.bootstrap(), "all", "after", 0, 10);
    assert_eq!(acked.len(), 10);
    assert_eq!(consume_all(&broker.bootstrap(), "after", 0, 10).len(), 10);
}

#[test]
fn a_stored_batch_claiming_2_pow_31_records_is_an_error_for_list_offsets_not_a_crash() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let mut client = connect(&broker.bootstrap());
    assert_eq!(create_topic(&mut client, "t", 1, false).0, 0);
    // 2^31 - 1 records declared, two held; lastOffsetDelta to match; CRC-valid.
    let mut lying = batch(&[b"a", b"b"]);
    lying[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    lying[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    seal(&mut lying);
    // A producer cannot store it: the records are walked before an append.
    let (error, message) = produce_raw(&mut client, "t", lying.clone());
    assert_eq!(error, ResponseError::InvalidRecord.code(), "{message:?}");
    assert!(
        message.as_deref().unwrap_or_default().contains("declares"),
        "{message:?}"
    );
    // Stored anyway (a log written by an older broker): the segment holds just that batch.
    drop(client);
    assert!(broker.terminate());
    let partition_dir = broker.log_dir().join("t-0");
    std::fs::write(partition_dir.join("00000000000000000000.log"), &lying).unwrap();
    let _ = std::fs::remove_file(partition_dir.join("00000000000000000000.index"));
    broker.restart();
    let mut client = connect(&broker.bootstrap());
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(0),
                ]),
        ]);
    let response: ListOffsetsResponse = call(&mut client, 7, &request);
    let partition = &response.topics[0].partitions[0];
    assert!(
        partition.error_code != 0 || (0..2).contains(&partition.offset),
        "{partition:?}"
    );
    assert_alive(&mut broker);
    // And the broker still answers everything else.
    let again: ListOffsetsResponse = call(&mut client, 7, &request);
    assert_eq!(
        again.topics[0].partitions[0].error_code,
        partition.error_code
    );
    assert!(metadata_topics(&mut client).contains(&"t".to_string()));
}

/// Gzip of `bytes` as one member.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A zigzag varint.
fn varint(value: i64) -> Vec<u8> {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut out = Vec::new();
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
    out
}

/// A one-record batch header (count 1) whose records are the gzip `members` concatenated.
fn gzip_batch(members: &[Vec<u8>]) -> Vec<u8> {
    let mut batch = batch(&[b"x"]);
    batch.truncate(61);
    batch[22] |= 1;
    for member in members {
        batch.extend_from_slice(member);
    }
    seal(&mut batch);
    batch
}

#[test]
fn compression_bombs_are_refused_with_invalid_record_within_a_bounded_memory() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let mut client = connect(&broker.bootstrap());
    assert_eq!(create_topic(&mut client, "bombed", 1, false).0, 0);
    // Gzip members of 8 MiB of zeros, as many as message.max.bytes (1048588) allows.
    let zeros = gzip(&vec![0u8; 8 << 20]);
    let members = (1_048_588 - 200) / zeros.len();
    let inflated_bytes = members as u64 * (8 << 20);
    assert!(inflated_bytes >= 512 << 20, "{members} members");
    // 1. Zeros as records.
    let bomb = gzip_batch(&vec![zeros.clone(); members]);
    let (error, message) = produce_raw(&mut client, "bombed", bomb);
    assert_eq!(error, ResponseError::InvalidRecord.code(), "{message:?}");
    // 2. One record whose value is all those zeros: valid until the budget ends it.
    let value_bytes = inflated_bytes as i64;
    let mut head = vec![0u8]; // attributes
    head.extend(varint(0)); // timestamp delta
    head.extend(varint(0)); // offset delta
    head.extend(varint(-1)); // null key
    head.extend(varint(value_bytes));
    let length = head.len() as i64 + value_bytes + 1;
    let mut prefix = varint(length);
    prefix.extend(head);
    let mut parts = vec![gzip(&prefix)];
    parts.extend(vec![zeros; members]);
    parts.push(gzip(&varint(0))); // no headers
    let bomb = gzip_batch(&parts);
    assert!(bomb.len() <= 1_048_588, "{}", bomb.len());
    let (error, message) = produce_raw(&mut client, "bombed", bomb);
    assert_eq!(error, ResponseError::InvalidRecord.code(), "{message:?}");
    let message = message.unwrap_or_default();
    assert!(message.contains("decompress to more than"), "{message}");
    // Nothing of it stayed: the decompressed bytes were walked, never held.
    let (_, peak) = resident_bytes(broker.process.as_ref().unwrap().pid());
    println!("broker peak RSS after the bombs: {} MiB", peak >> 20);
    assert!(peak < 200 << 20, "peak RSS {} MiB", peak >> 20);
    assert_alive(&mut broker);
    let acked = produce_all(&broker.bootstrap(), "all", "bombed", 0, 10);
    assert_eq!(acked.len(), 10);
    assert_eq!(consume_all(&broker.bootstrap(), "bombed", 0, 10).len(), 10);
}

#[test]
fn create_topics_for_2_000_000_000_partitions_is_invalid_partitions() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let mut client = connect(&broker.bootstrap());
    for validate_only in [true, false] {
        let (error, message) = create_topic(&mut client, "huge", 2_000_000_000, validate_only);
        assert_eq!(
            error,
            ResponseError::InvalidPartitions.code(),
            "validate_only={validate_only}"
        );
        let message = message.unwrap_or_default();
        assert!(
            message.contains("2000000000 requested, at most 10000"),
            "{message}"
        );
    }
    assert_alive(&mut broker);
    assert!(!metadata_topics(&mut client).contains(&"huge".to_string()));
    let (error, _) = create_topic(&mut client, "modest", 3, false);
    assert_eq!(error, 0);
    let mut buffer = [0u8; 1];
    client
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(
        client.read(&mut buffer).is_err(),
        "no stray bytes after the answers"
    );
}
