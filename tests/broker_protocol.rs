//! The broker on the wire: metadata lists topics, partitions and the advertised address;
//! malformed frames and garbage close that connection only; unsupported API versions get an
//! answer; a bad config value exits 2 naming the key; SIGTERM deregisters the broker.
#![allow(clippy::unwrap_used)]

mod broker_support;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use broker_support::raw::{call, closed_by_peer, connect, read_response};
use broker_support::{TestBroker, consumer, produce_all, start_coordinator};
use bytes::BytesMut;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    MetadataRequest, MetadataResponse, TopicName, create_topics_request::CreatableTopic,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_wire::frame::framed;
use kafka_wire::message::request_header;
use rdkafka::consumer::Consumer;

#[test]
fn metadata_lists_topics_partitions_and_the_advertised_address() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(
        dir.path(),
        &coordinator,
        7,
        "advertised.listeners=PLAINTEXT://localhost:0\nbroker.rack=rack-a",
    );
    let mut stream = connect(&broker.bootstrap());
    let created: CreateTopicsResponse = call(
        &mut stream,
        5,
        &CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("three")))
                    .with_num_partitions(3)
                    .with_replication_factor(1),
            ])
            .with_timeout_ms(10_000),
    );
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);
    let again: CreateTopicsResponse = call(
        &mut stream,
        5,
        &CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("three")))
                .with_num_partitions(3)
                .with_replication_factor(1),
        ]),
    );
    assert_eq!(again.topics[0].error_code, 36, "TOPIC_ALREADY_EXISTS");

    let metadata: MetadataResponse = call(
        &mut stream,
        9,
        &MetadataRequest::default().with_topics(None),
    );
    assert_eq!(metadata.brokers.len(), 1);
    let advertised = &metadata.brokers[0];
    assert_eq!(advertised.node_id.0, 7);
    assert_eq!(advertised.host.as_str(), "localhost");
    assert_eq!(advertised.port, i32::from(broker.port));
    assert_eq!(advertised.rack.as_deref(), Some("rack-a"));
    let topic = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("three"))
        .expect("topic listed");
    assert_eq!(topic.partitions.len(), 3);
    for partition in &topic.partitions {
        assert_eq!(partition.leader_id.0, 7);
        assert_eq!(
            partition.replica_nodes,
            vec![kafka_protocol::messages::BrokerId(7)]
        );
        assert_eq!(
            partition.isr_nodes,
            vec![kafka_protocol::messages::BrokerId(7)]
        );
    }

    // rdkafka sees the same.
    let client = consumer(&broker.bootstrap());
    let seen = client
        .fetch_metadata(Some("three"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(seen.topics()[0].partitions().len(), 3);
    assert_eq!(seen.brokers()[0].port(), i32::from(broker.port));
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &coordinator, 1, "");
    let acked = produce_all(&broker.bootstrap(), "1", "precious", 0, 100);
    assert_eq!(acked.len(), 100);

    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("oversized frame", vec![0x7f, 0xff, 0xff, 0xff, 1, 2, 3]),
        ("negative size", vec![0xff, 0xff, 0xff, 0xfe, 0, 0]),
        ("text", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("unknown api key", {
            let mut frame = vec![0, 0, 0, 10];
            frame.extend_from_slice(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
            frame
        }),
        ("truncated produce body", {
            let mut frame = vec![0, 0, 0, 14];
            frame.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 3]);
            frame
        }),
    ];
    for (what, bytes) in garbage {
        let mut stream = connect(&broker.bootstrap());
        stream.write_all(&bytes).unwrap();
        assert!(closed_by_peer(&mut stream), "{what}: connection still open");
    }

    // ApiVersions of a version from the future: UNSUPPORTED_VERSION with our ranges.
    // (A header alone: kafka-protocol encodes no v99 body.)
    let mut stream = connect(&broker.bootstrap());
    let header = request_header(ApiKey::ApiVersions, 99, 42, None);
    let mut body = BytesMut::new();
    header.encode(&mut body, 1).unwrap();
    stream.write_all(&framed(&body).unwrap()).unwrap();
    // The refusal is a v0 body.
    let versions = read_response::<ApiVersionsRequest>(&mut stream, 0, 42);
    assert_eq!(versions.error_code, 35);
    assert!(
        versions
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Fetch as i16)
    );

    // A well-behaved client on another connection is served, and the data is intact.
    let versions: ApiVersionsResponse = call(
        &mut connect(&broker.bootstrap()),
        3,
        &ApiVersionsRequest::default(),
    );
    assert_eq!(versions.error_code, 0);
    let read = broker_support::consume_all(&broker.bootstrap(), "precious", 0, 100);
    assert_eq!(read, acked);
    assert!(broker.output().contains("closing connection"));
}

#[test]
fn a_bad_config_value_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.properties");
    std::fs::write(
        &config,
        "broker.id=1\nzookeeper.connect=127.0.0.1:1\nnum.partitions=lots\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args(["broker", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("num.partitions") && stderr.contains("lots"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_coordinator_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.properties");
    let port = harness::cluster::ports::free_loopback_port().unwrap();
    std::fs::write(
        &config,
        format!(
            "broker.id=1\nzookeeper.connect=127.0.0.1:{port}\nzookeeper.connection.timeout.ms=1500\n\
             listeners=PLAINTEXT://127.0.0.1:0\nlog.dirs={}\n",
            dir.path().join("logs").display()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args(["broker", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the coordinator"), "{stderr}");
}
