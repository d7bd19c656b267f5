//! Requests on the wire, checked field by field: Produce (acks, min.insync.replicas, corrupt
//! batches), Fetch long polling woken by a produce, ListOffsets, DescribeConfigs with a topic
//! override, DeleteTopics, and segment rolling with reads across segments and a restart.
#![allow(clippy::unwrap_used)]

mod broker_support;

use broker_support::wire::{self, WireClient};
use broker_support::{TestBroker, consume_all, produce_all, start_coordinator};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, FetchRequest, FetchResponse,
    ListOffsetsRequest, ListOffsetsResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A strict blocking client connected to `broker`.
fn connect(broker: &TestBroker) -> WireClient {
    wire::connect(&broker.bootstrap())
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn batch(values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(value.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn produce(client: &mut WireClient, topic: &str, acks: i16, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let response: ProduceResponse = client.call(9, &request).unwrap();
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

fn create_topic(client: &mut WireClient, topic: &str, configs: &[(&str, &str)]) {
    let request = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(key, value)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(key.to_string()))
                            .with_value(Some(StrBytes::from_string(value.to_string())))
                    })
                    .collect(),
            ),
    ]);
    let response: CreateTopicsResponse = client.call(7, &request).unwrap();
    assert_eq!(response.topics[0].error_code, 0, "{:?}", response.topics[0]);
}

fn latest_offset(client: &mut WireClient, topic: &str) -> i64 {
    let request = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
    ]);
    let response: ListOffsetsResponse = client.call(7, &request).unwrap();
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.offset
}

#[test]
fn produce_honours_acks_min_insync_replicas_and_crcs() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let mut client = connect(&broker);
    create_topic(&mut client, "strict", &[("min.insync.replicas", "2")]);

    // acks=all with an ISR of one below min.insync.replicas=2: refused, nothing appended.
    assert_eq!(produce(&mut client, "strict", -1, batch(&["a"])), (19, -1));
    assert_eq!(latest_offset(&mut client, "strict"), 0);
    // acks=1 does not need the ISR.
    assert_eq!(
        produce(&mut client, "strict", 1, batch(&["a", "b"])),
        (0, 0)
    );
    assert_eq!(produce(&mut client, "strict", 1, batch(&["c"])), (0, 2));
    // A flipped bit fails the CRC: CORRUPT_MESSAGE, nothing appended.
    let mut corrupt = BytesMut::from(&batch(&["d"])[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x01;
    assert_eq!(produce(&mut client, "strict", 1, corrupt.freeze()).0, 2);
    // Unknown topic (auto-creation is for Metadata only).
    assert_eq!(produce(&mut client, "nope", 1, batch(&["x"])).0, 3);
    assert_eq!(latest_offset(&mut client, "strict"), 3);

    // acks=0: no response at all (the pending answer is dropped); the next request's answer
    // comes next.
    let _no_answer = client
        .send(
            9,
            &ProduceRequest::default()
                .with_acks(0)
                .with_timeout_ms(1000)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(name("strict"))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch(&["e"]))),
                        ]),
                ]),
        )
        .unwrap();
    assert_eq!(latest_offset(&mut client, "strict"), 4);

    // DescribeConfigs shows the topic override and the broker default.
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("strict"))
            .with_configuration_keys(None),
    ]);
    let response: DescribeConfigsResponse = client.call(4, &request).unwrap();
    let configs = &response.results[0].configs;
    let value = |key: &str| {
        configs
            .iter()
            .find(|c| c.name.as_str() == key)
            .and_then(|c| c.value.as_ref().map(|v| v.to_string()))
    };
    assert_eq!(value("min.insync.replicas").as_deref(), Some("2"));
    assert_eq!(
        value("unclean.leader.election.enable").as_deref(),
        Some("false")
    );

    // ListOffsets by timestamp: the first record at or after it; none after the last.
    for (timestamp, expected) in [(1_700_000_000_000, 0), (1_800_000_000_000, -1)] {
        let request = ListOffsetsRequest::default().with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name("strict"))
                .with_partitions(vec![
                    ListOffsetsPartition::default().with_timestamp(timestamp),
                ]),
        ]);
        let response: ListOffsetsResponse = client.call(7, &request).unwrap();
        let partition = &response.topics[0].partitions[0];
        assert_eq!(
            (partition.error_code, partition.offset),
            (0, expected),
            "at {timestamp}"
        );
    }

    // OffsetForLeaderEpoch: epoch 0 (the only one) ends at the log end; epoch -1 is unknown.
    for (epoch, expected) in [(0, (0, 0, 4)), (3, (0, 0, 4)), (-1, (0, -1, -1))] {
        use kafka_protocol::messages::offset_for_leader_epoch_request::{
            OffsetForLeaderPartition, OffsetForLeaderTopic,
        };
        let request =
            kafka_protocol::messages::OffsetForLeaderEpochRequest::default().with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(name("strict"))
                    .with_partitions(vec![
                        OffsetForLeaderPartition::default()
                            .with_current_leader_epoch(0)
                            .with_leader_epoch(epoch),
                    ]),
            ]);
        let response: kafka_protocol::messages::OffsetForLeaderEpochResponse =
            client.call(4, &request).unwrap();
        let answer = &response.topics[0].partitions[0];
        assert_eq!(
            (answer.error_code, answer.leader_epoch, answer.end_offset),
            expected,
            "epoch {epoch}"
        );
    }

    // A version the broker does not serve (FindCoordinator v5+): a clear UNSUPPORTED_VERSION,
    // connection kept.
    let request = kafka_protocol::messages::FindCoordinatorRequest::default()
        .with_coordinator_keys(vec![StrBytes::from_static_str("group")]);
    let response: kafka_protocol::messages::FindCoordinatorResponse =
        client.call(5, &request).unwrap();
    assert_eq!(response.coordinators[0].error_code, 35);

    // DeleteTopics removes it, files included.
    let request = DeleteTopicsRequest::default().with_topic_names(vec![name("strict")]);
    let response: DeleteTopicsResponse = client.call(4, &request).unwrap();
    assert_eq!(response.responses[0].error_code, 0);
    assert!(!broker.log_dir().join("strict-0").exists());
    let response: DeleteTopicsResponse = client.call(4, &request).unwrap();
    assert_eq!(
        response.responses[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
}

#[test]
fn a_waiting_fetch_is_woken_by_a_produce() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let mut producer = connect(&broker);
    create_topic(&mut producer, "wake", &[]);
    let mut fetcher = connect(&broker);
    // Far longer than the socket's 30 s read timeout: only a wake-up answers in time.
    let fetch = FetchRequest::default()
        .with_max_wait_ms(120_000)
        .with_min_bytes(1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name("wake"))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let waiting = fetcher.send(11, &fetch).unwrap();
    assert_eq!(
        produce(&mut producer, "wake", 1, batch(&["hello", "world"])),
        (0, 0)
    );
    let response: FetchResponse = fetcher.receive(waiting).unwrap();
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.high_watermark, 2);
    let mut records = partition.records.clone().unwrap();
    let decoded = RecordBatchDecoder::decode(&mut records).unwrap();
    let values: Vec<_> = decoded
        .records
        .iter()
        .map(|r| (r.offset, r.value.clone().unwrap()))
        .collect();
    assert_eq!(
        values,
        vec![
            (0, Bytes::from_static(b"hello")),
            (1, Bytes::from_static(b"world"))
        ]
    );

    // A fetch past the end is OFFSET_OUT_OF_RANGE at once.
    let past = FetchRequest::default()
        .with_max_wait_ms(120_000)
        .with_min_bytes(1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name("wake"))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_fetch_offset(10)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response: FetchResponse = fetcher.call(11, &past).unwrap();
    assert_eq!(response.responses[0].partitions[0].error_code, 1);
}

#[test]
fn segments_roll_and_reads_cross_them_before_and_after_a_restart() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(
        dir.path(),
        &coordinator,
        1,
        "log.segment.bytes=65536\nlog.index.interval.bytes=1024",
    );
    // Rounds acknowledged one by one: many batches, each smaller than a segment.
    let mut acked = Vec::new();
    for round in 0..20 {
        acked.extend(produce_all(
            &broker.bootstrap(),
            "1",
            "rolled",
            round * 1000,
            1000,
        ));
    }
    assert_eq!(acked.len(), 20_000);
    let segments = std::fs::read_dir(broker.log_dir().join("rolled-0"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count();
    assert!(segments > 3, "only {segments} segments");
    assert_eq!(consume_all(&broker.bootstrap(), "rolled", 0, 20_000), acked);
    assert_eq!(
        consume_all(&broker.bootstrap(), "rolled", 12_345, 10),
        acked[12_345..12_355]
    );
    assert!(broker.terminate());
    broker.restart();
    assert_eq!(consume_all(&broker.bootstrap(), "rolled", 0, 20_000), acked);
}
