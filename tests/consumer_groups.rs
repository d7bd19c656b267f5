//! Consumer groups against real brokers and real clients: rdkafka consumers with subscribe()
//! and a confluent-kafka consumer in its own process share a topic's partitions and rebalance
//! when one closes and when one is SIGKILLed; so do a group of an rdkafka, a kafka-python and an
//! aiokafka member (round-robin, the assignor all three offer); committed offsets survive the
//! loss of the coordinator (the leader of the group's `__consumer_offsets` partition) and a new
//! consumer — rdkafka, kafka-python and aiokafka — resumes from them; FindCoordinator waits for enough brokers for
//! `offsets.topic.replication.factor`; kcat's balanced consumer works on Kafka's default group
//! settings; and the group APIs' errors keep Kafka's meaning on the wire.
#![allow(clippy::unwrap_used)]

mod broker_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use broker_support::wire::{self, WireClient};
use broker_support::{
    TestBroker, bootstrap_of, create_topic, produce_to, start_brokers, start_coordinator,
};
use bytes::Bytes;
use harness::cluster::group_coordinator::{PartitionLag, find_group_coordinator, group_lag};
use harness::cluster::process::NodeProcess;
use harness::wait::wait_for;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, MetadataRequest,
    MetadataResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Short group timeouts for tests (Kafka's defaults: 6 s minimum session, 3 s initial delay).
const GROUP_SETTINGS: &str = "offsets.topic.num.partitions=3\n\
                              group.initial.rebalance.delay.ms=0\n\
                              group.min.session.timeout.ms=500\n";
/// One broker: `__consumer_offsets` with a single replica.
const SINGLE_BROKER: &str = "offsets.topic.replication.factor=1\n";
const SESSION_TIMEOUT_MS: u64 = 1000;
const CONVERGE: Duration = Duration::from_secs(60);

fn group_member(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set("heartbeat.interval.ms", "200")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap()
}

fn assigned(consumer: &BaseConsumer) -> BTreeSet<i32> {
    consumer
        .assignment()
        .unwrap()
        .elements()
        .iter()
        .map(|element| element.partition())
        .collect()
}

/// Polls the consumers once (rebalances are served from poll).
fn poll_all(consumers: &[&BaseConsumer]) {
    for consumer in consumers {
        if let Some(Err(error)) = consumer.poll(Duration::from_millis(20)) {
            eprintln!("consumer: {error}");
        }
    }
}

/// The last assignment the Python consumer printed.
fn python_assignment(log: &Path) -> Option<BTreeSet<i32>> {
    let output = std::fs::read_to_string(log).ok()?;
    let line = output
        .lines()
        .rev()
        .find(|line| line.starts_with("assigned "))?;
    Some(
        line.trim_start_matches("assigned ")
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().unwrap())
            .collect(),
    )
}

/// Each of `holdings` is non-empty, they are disjoint, and together they are 0..count.
fn partitioned(holdings: &[BTreeSet<i32>], count: i32) -> bool {
    let total: usize = holdings.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = holdings.iter().flatten().copied().collect();
    holdings.iter().all(|held| !held.is_empty())
        && total == count as usize
        && union == (0..count).collect()
}

/// A confluent-kafka, kafka-python or aiokafka member of `group` in its own process
/// (python_group_member.py); its log shows its assignments.
fn python_member(
    dir: &Path,
    client: &str,
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> (NodeProcess, PathBuf) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/broker_support/python_group_member.py"
    );
    let log = dir.join(format!("{client}.log"));
    let process = NodeProcess::spawn(
        client,
        Path::new("python3"),
        &[
            script.to_string(),
            client.to_string(),
            bootstrap.to_string(),
            group.to_string(),
            topic.to_string(),
            SESSION_TIMEOUT_MS.to_string(),
        ],
        &[],
        &log,
    )
    .unwrap();
    (process, log)
}

#[test]
fn three_consumers_share_six_partitions_and_rebalance_when_one_leaves_and_one_is_killed() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(
        dir.path(),
        &coordinator,
        1,
        &format!("{GROUP_SETTINGS}{SINGLE_BROKER}"),
    );
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 6, 1);

    let first = group_member(&bootstrap, "shares");
    let second = group_member(&bootstrap, "shares");
    first.subscribe(&["orders"]).unwrap();
    second.subscribe(&["orders"]).unwrap();
    let (mut python, python_log) = python_member(
        dir.path(),
        "confluent-kafka",
        &bootstrap,
        "shares",
        "orders",
    );

    let converge = |what: &str, consumers: &[&BaseConsumer], with_python: bool| {
        wait_for(what, CONVERGE, Duration::from_millis(10), || {
            poll_all(consumers);
            let mut holdings: Vec<BTreeSet<i32>> = consumers.iter().map(|c| assigned(c)).collect();
            if with_python {
                holdings.push(python_assignment(&python_log).unwrap_or_default());
            }
            partitioned(&holdings, 6).then_some(holdings)
        })
        .unwrap_or_else(|error| {
            panic!(
                "{error}\npython:\n{}\nbroker:\n{}",
                std::fs::read_to_string(&python_log).unwrap_or_default(),
                broker.output()
            )
        })
    };
    let three = converge(
        "three members to hold two partitions each",
        &[&first, &second],
        true,
    );
    assert!(three.iter().all(|held| held.len() == 2), "{three:?}");

    // One closes: LeaveGroup, and the other two take its partitions at once.
    drop(second);
    let two = converge("the two left to share all six", &[&first], true);
    assert!(two.iter().all(|held| held.len() == 3), "{two:?}");

    // The Python consumer is killed: its partitions move once its session has expired.
    let killed_at = Instant::now();
    python.kill().unwrap();
    let one = converge("the survivor to hold all six", &[&first], false);
    assert_eq!(one[0].len(), 6);
    assert!(
        killed_at.elapsed() >= Duration::from_millis(SESSION_TIMEOUT_MS / 2),
        "the killed member's partitions moved before its session could expire"
    );
    assert!(
        broker
            .output()
            .contains("has failed, removing it from the group"),
        "{}",
        broker.output()
    );
}

#[test]
fn rdkafka_kafka_python_and_aiokafka_members_share_a_group_and_rebalance() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(
        dir.path(),
        &coordinator,
        1,
        &format!("{GROUP_SETTINGS}{SINGLE_BROKER}"),
    );
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "mixed", 6, 1);
    let rdkafka: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "mixed")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set("heartbeat.interval.ms", "200")
        .set("partition.assignment.strategy", "roundrobin")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    rdkafka.subscribe(&["mixed"]).unwrap();
    let (mut kafka_python, kafka_python_log) =
        python_member(dir.path(), "kafka-python", &bootstrap, "mixed", "mixed");
    let (mut aiokafka, aiokafka_log) =
        python_member(dir.path(), "aiokafka", &bootstrap, "mixed", "mixed");
    let logs = || {
        format!(
            "kafka-python:\n{}\naiokafka:\n{}\nbroker:\n{}",
            std::fs::read_to_string(&kafka_python_log).unwrap_or_default(),
            std::fs::read_to_string(&aiokafka_log).unwrap_or_default(),
            broker.output()
        )
    };
    let converge = |what: &str, python_logs: &[&PathBuf]| {
        wait_for(what, CONVERGE, Duration::from_millis(10), || {
            poll_all(&[&rdkafka]);
            let mut holdings = vec![assigned(&rdkafka)];
            for log in python_logs {
                holdings.push(python_assignment(log).unwrap_or_default());
            }
            partitioned(&holdings, 6).then_some(holdings)
        })
        .unwrap_or_else(|error| panic!("{error}\n{}", logs()))
    };
    let three = converge(
        "rdkafka, kafka-python and aiokafka to hold two partitions each",
        &[&kafka_python_log, &aiokafka_log],
    );
    assert!(three.iter().all(|held| held.len() == 2), "{three:?}");

    // aiokafka leaves cleanly (LeaveGroup on SIGTERM): the other two take its partitions.
    assert!(aiokafka.terminate(Duration::from_secs(20)).unwrap());
    let aiokafka_output = std::fs::read_to_string(&aiokafka_log).unwrap();
    assert!(aiokafka_output.ends_with("closed\n"), "{}", logs());
    let two = converge(
        "rdkafka and kafka-python to share all six",
        &[&kafka_python_log],
    );
    assert!(two.iter().all(|held| held.len() == 3), "{two:?}");

    // kafka-python is killed: its partitions move once its session has expired.
    kafka_python.kill().unwrap();
    let one = converge("rdkafka to hold all six", &[]);
    assert_eq!(one[0].len(), 6, "{}", logs());
}

/// The broker coordinating `group` (FindCoordinator v3 on any broker).
fn find_coordinator(bootstrap: &str, group: &str) -> Result<i32, i16> {
    let address = bootstrap.split(',').next().unwrap();
    let mut client = wire::connect(address);
    let response: FindCoordinatorResponse = client
        .call(
            3,
            &FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string())),
        )
        .unwrap();
    if response.error_code == 0 {
        Ok(response.node_id.0)
    } else {
        Err(response.error_code)
    }
}

#[test]
fn committed_offsets_survive_a_coordinator_failover() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let mut brokers = start_brokers(dir.path(), &coordinator, 3, GROUP_SETTINGS);
    let bootstrap = bootstrap_of(&brokers);
    create_topic(&bootstrap, "events", 1, 3);
    let acked = produce_to(&bootstrap, "all", "events", 0, 0, 100);
    assert_eq!(acked.len(), 100);

    // A member reads 40 records and commits offset 40.
    let member = group_member(&bootstrap, "failover");
    member.subscribe(&["events"]).unwrap();
    let mut read = 0;
    wait_for("40 records", CONVERGE, Duration::from_millis(1), || {
        if let Some(Ok(message)) = member.poll(Duration::from_millis(50)) {
            assert_eq!(message.offset(), read);
            read += 1;
        }
        (read == 40).then_some(())
    })
    .unwrap();
    let mut position = TopicPartitionList::new();
    position
        .add_partition_offset("events", 0, Offset::Offset(40))
        .unwrap();
    member.commit(&position, CommitMode::Sync).unwrap();
    drop(member);

    // Its coordinator — the leader of the group's __consumer_offsets partition, replicated on
    // all three brokers — is killed.
    let coordinator_id = find_coordinator(&bootstrap, "failover").unwrap();
    // The harness sees the same coordinator and the group's standing as a client would.
    let addresses: Vec<String> = bootstrap.split(',').map(str::to_string).collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (found, lag) = runtime.block_on(async {
        let timeout = Duration::from_secs(5);
        (
            find_group_coordinator(&addresses, "failover", timeout).await,
            group_lag(&addresses, "failover", "events", 1, timeout).await,
        )
    });
    assert_eq!(found, Ok(coordinator_id));
    assert_eq!(
        lag.unwrap(),
        vec![PartitionLag {
            partition: 0,
            committed: 40,
            high_watermark: 100
        }]
    );
    brokers
        .iter_mut()
        .find(|b| b.broker_id == coordinator_id)
        .unwrap()
        .kill();
    let bootstrap = bootstrap_of(&brokers);
    let new_coordinator = wait_for(
        "another broker to coordinate the group",
        CONVERGE,
        Duration::from_millis(50),
        || {
            find_coordinator(&bootstrap, "failover")
                .ok()
                .filter(|id| *id != coordinator_id)
        },
    )
    .unwrap();

    // A new member resumes from the committed offset, not from the beginning.
    let resumed = group_member(&bootstrap, "failover");
    resumed.subscribe(&["events"]).unwrap();
    let first = wait_for(
        "a record after the failover",
        CONVERGE,
        Duration::from_millis(1),
        || match resumed.poll(Duration::from_millis(50)) {
            Some(Ok(message)) => Some(message.offset()),
            _ => None,
        },
    )
    .unwrap();
    assert_eq!(first, 40, "resumed at the committed offset");
    drop(resumed);
    let new_coordinator_log = brokers
        .iter()
        .find(|b| b.broker_id == new_coordinator)
        .unwrap()
        .output();
    assert!(
        new_coordinator_log.contains("Finished loading offsets and group metadata"),
        "{new_coordinator_log}"
    );

    // kafka-python sees the same committed offset and resumes from it too.
    let check = r#"
import sys
from kafka import KafkaConsumer, TopicPartition
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1].split(","), group_id="failover",
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         consumer_timeout_ms=20000)
partition = TopicPartition("events", 0)
print("committed", consumer.committed(partition))
consumer.subscribe(["events"])
for message in consumer:
    print("first", message.offset)
    break
consumer.close()
"#;
    let output = Command::new("python3")
        .args(["-c", check, &bootstrap])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("committed 40\n"), "{stdout}");
    assert!(stdout.contains("first 40\n"), "{stdout}");

    // So does aiokafka.
    let check = r#"
import asyncio, sys
from aiokafka import AIOKafkaConsumer, TopicPartition
async def main():
    consumer = AIOKafkaConsumer("events", bootstrap_servers=sys.argv[1], group_id="failover",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        print("committed", await consumer.committed(TopicPartition("events", 0)))
        message = await asyncio.wait_for(consumer.getone(), 20)
        print("first", message.offset)
    finally:
        await consumer.stop()
asyncio.run(main())
"#;
    let output = Command::new("python3")
        .args(["-c", check, &bootstrap])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("committed 40\n"), "{stdout}");
    assert!(stdout.contains("first 40\n"), "{stdout}");

    // The old coordinator comes back as a follower of the partition: it does not answer for
    // the group any more.
    let old = brokers
        .iter_mut()
        .find(|b| b.broker_id == coordinator_id)
        .unwrap();
    old.restart();
    let mut client = wire::connect(&old.bootstrap());
    let fetched = fetch_offsets(&mut client, "failover", "events");
    assert_eq!(
        fetched.groups[0].error_code,
        ResponseError::NotCoordinator.code()
    );
}

/// OffsetFetch v8 of partition 0 of `topic` for `group_id`.
fn fetch_offsets(client: &mut WireClient, group_id: &str, topic: &str) -> OffsetFetchResponse {
    client
        .call(
            8,
            &OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(group(group_id))
                    .with_topics(Some(vec![
                        OffsetFetchRequestTopics::default()
                            .with_name(topic_name(topic))
                            .with_partition_indexes(vec![0]),
                    ])),
            ]),
        )
        .unwrap()
}

#[test]
fn a_commit_is_acknowledged_only_once_replicated_to_min_insync_replicas() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let settings =
        format!("{GROUP_SETTINGS}min.insync.replicas=2\noffsets.commit.timeout.ms=2000\n");
    let mut brokers = start_brokers(dir.path(), &coordinator, 3, &settings);
    let bootstrap = bootstrap_of(&brokers);
    create_topic(&bootstrap, "positions", 1, 3);
    // The coordinator found may still be loading its partition (COORDINATOR_LOAD_IN_PROGRESS) or
    // may have handed it on since (NOT_COORDINATOR, e.g. a preferred leader taking over): clients
    // retry the first and look the coordinator up again on the second, and so does this test.
    let retried = [
        ResponseError::CoordinatorLoadInProgress.code(),
        ResponseError::NotCoordinator.code(),
        ResponseError::CoordinatorNotAvailable.code(),
    ];
    let (coordinator_id, mut client) = wait_for(
        "the first commit",
        CONVERGE,
        Duration::from_millis(50),
        || {
            let coordinator_id = find_coordinator(&bootstrap, "lonely").ok()?;
            let address = brokers
                .iter()
                .find(|b| b.broker_id == coordinator_id)
                .unwrap()
                .bootstrap();
            let mut client = wire::connect(&address);
            let code = commit(&mut client, "lonely", "", -1, "positions", 5);
            assert!(
                code == 0 || retried.contains(&code),
                "the first commit was answered {code}"
            );
            (code == 0).then_some((coordinator_id, client))
        },
    )
    .unwrap();

    // The coordinator is left alone: its commit cannot reach min.insync.replicas.
    for broker in brokers.iter_mut().filter(|b| b.broker_id != coordinator_id) {
        broker.kill();
    }
    let refused = commit(&mut client, "lonely", "", -1, "positions", 9);
    assert!(
        [
            ResponseError::CoordinatorNotAvailable.code(),
            ResponseError::RequestTimedOut.code()
        ]
        .contains(&refused),
        "a commit without enough replicas was answered {refused}"
    );
    // Only the acknowledged commit is visible.
    let fetched = fetch_offsets(&mut client, "lonely", "positions");
    assert_eq!(
        fetched.groups[0].topics[0].partitions[0].committed_offset,
        5
    );
}

#[test]
fn find_coordinator_waits_for_enough_brokers_for_the_offsets_topic() {
    // Kafka's default offsets.topic.replication.factor (3): one broker cannot create it.
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let mut brokers = start_brokers(dir.path(), &coordinator, 1, GROUP_SETTINGS);
    let bootstrap = bootstrap_of(&brokers);
    assert_eq!(
        find_coordinator(&bootstrap, "early"),
        Err(ResponseError::CoordinatorNotAvailable.code())
    );
    assert!(
        brokers[0]
            .output()
            .contains("does not meet the required replication factor '3' for the offsets topic"),
        "{}",
        brokers[0].output()
    );
    for id in 2..=3 {
        let broker_dir = dir.path().join(format!("broker-{id}"));
        std::fs::create_dir_all(&broker_dir).unwrap();
        brokers.push(TestBroker::start(
            &broker_dir,
            &coordinator,
            id,
            GROUP_SETTINGS,
        ));
    }
    let coordinator_id = wait_for(
        "the broker to see three live brokers and create the topic",
        CONVERGE,
        Duration::from_millis(50),
        || find_coordinator(&bootstrap, "early").ok(),
    )
    .unwrap();
    assert!((1..=3).contains(&coordinator_id));
    // The topic is internal, with the configured partitions on three replicas.
    let mut client = wire::connect(&brokers[0].bootstrap());
    let metadata: MetadataResponse = client
        .call(
            9,
            &MetadataRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(topic_name("__consumer_offsets"))),
            ])),
        )
        .unwrap();
    let topic = &metadata.topics[0];
    assert!(topic.is_internal);
    assert_eq!(topic.partitions.len(), 3);
    assert!(topic.partitions.iter().all(|p| p.replica_nodes.len() == 3));
}

#[test]
fn kcat_balanced_consumer_on_kafkas_default_group_settings_resumes_from_its_commits() {
    // Only the replication factor of __consumer_offsets is lowered (one broker): 50 partitions,
    // a 3 s initial rebalance delay, librdkafka's 45 s session.
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &coordinator, 1, SINGLE_BROKER);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "lines", 1, 1);
    produce_to(&bootstrap, "all", "lines", 0, 0, 10);
    let consume = || {
        let output = Command::new("timeout")
            .args([
                "60",
                "kcat",
                "-b",
                &bootstrap,
                "-G",
                "kcat-group",
                "lines",
                "-e",
                "-q",
                "-X",
                "auto.offset.reset=earliest",
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kcat: {}\nbroker:\n{}",
            String::from_utf8_lossy(&output.stderr),
            broker.output()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let first: Vec<String> = consume().lines().map(str::to_string).collect();
    assert_eq!(first, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
    produce_to(&bootstrap, "all", "lines", 0, 10, 5);
    // A second run starts where the first committed (on close).
    let second: Vec<String> = consume().lines().map(str::to_string).collect();
    assert_eq!(
        second,
        (10..15).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn group(id: &str) -> GroupId {
    GroupId(StrBytes::from_string(id.to_string()))
}

fn join(
    client: &mut WireClient,
    version: i16,
    member_id: &str,
    session_ms: i32,
) -> JoinGroupResponse {
    client
        .call(
            version,
            &JoinGroupRequest::default()
                .with_group_id(group("wire"))
                .with_session_timeout_ms(session_ms)
                .with_rebalance_timeout_ms(5000)
                .with_member_id(StrBytes::from_string(member_id.to_string()))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str("range"))
                        .with_metadata(Bytes::from_static(b"subscription")),
                ]),
        )
        .unwrap()
}

fn heartbeat(client: &mut WireClient, member_id: &str, generation: i32) -> i16 {
    let response: HeartbeatResponse = client
        .call(
            3,
            &HeartbeatRequest::default()
                .with_group_id(group("wire"))
                .with_member_id(StrBytes::from_string(member_id.to_string()))
                .with_generation_id(generation),
        )
        .unwrap();
    response.error_code
}

fn commit(
    client: &mut WireClient,
    group_id: &str,
    member_id: &str,
    generation: i32,
    topic: &str,
    offset: i64,
) -> i16 {
    let response: OffsetCommitResponse = client
        .call(
            8,
            &OffsetCommitRequest::default()
                .with_group_id(group(group_id))
                .with_member_id(StrBytes::from_string(member_id.to_string()))
                .with_generation_id_or_member_epoch(generation)
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(offset)
                                .with_committed_metadata(Some(StrBytes::from_static_str("meta"))),
                        ]),
                ]),
        )
        .unwrap();
    response.topics[0].partitions[0].error_code
}

#[test]
fn group_apis_keep_kafkas_errors_on_the_wire() {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(
        dir.path(),
        &coordinator,
        1,
        &format!("{GROUP_SETTINGS}{SINGLE_BROKER}"),
    );
    create_topic(&broker.bootstrap(), "wire-topic", 2, 1);
    assert_eq!(find_coordinator(&broker.bootstrap(), "wire"), Ok(1));
    let mut client = wire::connect(&broker.bootstrap());

    // Session timeouts outside group.min/max.session.timeout.ms are refused.
    let too_short = join(&mut client, 5, "", 100);
    assert_eq!(
        too_short.error_code,
        ResponseError::InvalidSessionTimeout.code()
    );
    // v4+: a new member first gets its id.
    let first = join(&mut client, 5, "", 1000);
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let member_id = first.member_id.to_string();
    assert!(member_id.starts_with("wire-test-"), "{member_id}");
    let joined = join(&mut client, 5, &member_id, 1000);
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader.as_str(), member_id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(&joined.members[0].metadata[..], b"subscription");
    // An id the group never gave out.
    let stranger = join(&mut client, 5, "stranger", 1000);
    assert_eq!(stranger.error_code, ResponseError::UnknownMemberId.code());

    // SyncGroup relays the leader's assignment; a wrong generation is ILLEGAL_GENERATION.
    let sync = |client: &mut WireClient, generation: i32| -> SyncGroupResponse {
        client
            .call(
                3,
                &SyncGroupRequest::default()
                    .with_group_id(group("wire"))
                    .with_member_id(StrBytes::from_string(member_id.clone()))
                    .with_generation_id(generation)
                    .with_assignments(vec![
                        SyncGroupRequestAssignment::default()
                            .with_member_id(StrBytes::from_string(member_id.clone()))
                            .with_assignment(Bytes::from_static(b"plan")),
                    ]),
            )
            .unwrap()
    };
    assert_eq!(
        sync(&mut client, 7).error_code,
        ResponseError::IllegalGeneration.code()
    );
    let synced = sync(&mut client, 1);
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"plan");

    assert_eq!(heartbeat(&mut client, &member_id, 1), 0);
    assert_eq!(
        heartbeat(&mut client, &member_id, 0),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        heartbeat(&mut client, "nobody", 1),
        ResponseError::UnknownMemberId.code()
    );

    // Commits: the member with its generation; a non-member of a group with members is
    // refused; an unknown topic is refused per partition.
    assert_eq!(
        commit(&mut client, "wire", &member_id, 1, "wire-topic", 17),
        0
    );
    assert_eq!(
        commit(&mut client, "wire", &member_id, 2, "wire-topic", 18),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        commit(&mut client, "wire", "", -1, "wire-topic", 19),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        commit(&mut client, "wire", &member_id, 1, "no-such-topic", 1),
        ResponseError::UnknownTopicOrPartition.code()
    );
    // A consumer without membership may commit for a group without members (created).
    assert_eq!(
        commit(&mut client, "standalone", "", -1, "wire-topic", 5),
        0
    );

    // OffsetFetch: v8 (groups), -1 where nothing is committed; v1 (old) for the standalone one.
    let fetched: OffsetFetchResponse = client
        .call(
            8,
            &OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(group("wire"))
                    .with_topics(Some(vec![
                        OffsetFetchRequestTopics::default()
                            .with_name(topic_name("wire-topic"))
                            .with_partition_indexes(vec![0, 1]),
                    ])),
                OffsetFetchRequestGroup::default().with_group_id(group("never-seen")),
            ]),
        )
        .unwrap();
    let partitions = &fetched.groups[0].topics[0].partitions;
    assert_eq!(partitions[0].committed_offset, 17);
    assert_eq!(partitions[0].metadata.as_deref(), Some("meta"));
    assert_eq!(partitions[1].committed_offset, -1);
    assert_eq!(fetched.groups[1].error_code, 0);
    assert!(fetched.groups[1].topics.is_empty());
    let old: OffsetFetchResponse = client
        .call(
            1,
            &OffsetFetchRequest::default()
                .with_group_id(group("standalone"))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name("wire-topic"))
                        .with_partition_indexes(vec![0]),
                ])),
        )
        .unwrap();
    assert_eq!(old.topics[0].partitions[0].committed_offset, 5);

    // ListGroups and DescribeGroups, as kafka-consumer-groups uses them.
    let listed: ListGroupsResponse = client.call(4, &ListGroupsRequest::default()).unwrap();
    let states: BTreeSet<(String, String)> = listed
        .groups
        .iter()
        .map(|g| (g.group_id.0.to_string(), g.group_state.to_string()))
        .collect();
    assert!(
        states.contains(&("wire".into(), "Stable".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("standalone".into(), "Empty".into())),
        "{states:?}"
    );
    let describe = |client: &mut WireClient| -> DescribeGroupsResponse {
        client
            .call(
                5,
                &DescribeGroupsRequest::default().with_groups(vec![group("wire")]),
            )
            .unwrap()
    };
    let described = describe(&mut client);
    assert_eq!(described.groups[0].group_state.as_str(), "Stable");
    assert_eq!(described.groups[0].protocol_data.as_str(), "range");
    assert_eq!(described.groups[0].members.len(), 1);
    assert_eq!(
        &described.groups[0].members[0].member_assignment[..],
        b"plan"
    );

    // LeaveGroup empties the group.
    let left: LeaveGroupResponse = client
        .call(
            3,
            &LeaveGroupRequest::default()
                .with_group_id(group("wire"))
                .with_members(vec![
                    MemberIdentity::default()
                        .with_member_id(StrBytes::from_string(member_id.clone())),
                ]),
        )
        .unwrap();
    assert_eq!(left.error_code, 0);
    assert_eq!(left.members[0].error_code, 0);
    assert_eq!(
        describe(&mut client).groups[0].group_state.as_str(),
        "Empty"
    );
    assert_eq!(
        heartbeat(&mut client, &member_id, 1),
        ResponseError::UnknownMemberId.code()
    );

    // JoinGroup v0 (no MEMBER_ID_REQUIRED round): joined at once, generation 3 (2 was the empty one).
    let v0 = join(&mut client, 0, "", 1000);
    assert_eq!(v0.error_code, 0);
    assert_eq!(v0.generation_id, 3);
    // A group with members again refuses commits from outside it.
    assert_eq!(
        commit(&mut client, "wire", "", -1, "wire-topic", 1),
        ResponseError::UnknownMemberId.code()
    );
}
