//! The idempotent producer against real brokers: librdkafka with `enable.idempotence=true`
//! through a SIGKILL of the partition leader (every message exactly once, in order).
#![allow(clippy::unwrap_used)]

mod broker_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use broker_support::{TestBroker, TestCoordinator, start_coordinator};
use harness::wait::wait_for;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// A coordinator and three brokers (ids 1, 2, 3) with test-sized timeouts.
struct Cluster {
    brokers: Vec<TestBroker>,
    _coordinator: TestCoordinator,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start(extra: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = start_coordinator();
        let extra =
            format!("zookeeper.session.timeout.ms=1000\nreplica.fetch.wait.max.ms=100\n{extra}");
        let brokers = (1..=3)
            .map(|id| {
                let broker_dir = dir.path().join(format!("broker-{id}"));
                std::fs::create_dir_all(&broker_dir).unwrap();
                TestBroker::start(&broker_dir, &coordinator, id, &extra)
            })
            .collect();
        Cluster {
            brokers,
            _coordinator: coordinator,
            _dir: dir,
        }
    }

    fn broker(&mut self, id: i32) -> &mut TestBroker {
        self.brokers.iter_mut().find(|b| b.broker_id == id).unwrap()
    }

    fn bootstrap(&self) -> String {
        broker_support::bootstrap_of(&self.brokers)
    }
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(3));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let results = futures::executor::block_on(admin.create_topics(
        [&topic],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))
    .unwrap();
    for result in results {
        result.unwrap();
    }
}

/// The leader of `topic`-`partition` as the cluster's metadata says (-1: none).
fn leader_of(bootstrap: &str, topic: &str, partition: i32) -> i32 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()
        .and_then(|metadata| {
            metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .and_then(|t| t.partitions().iter().find(|p| p.id() == partition))
                .map(|p| p.leader())
        })
        .unwrap_or(-1)
}

fn idempotent_producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "120000")
        .set("request.timeout.ms", "5000")
        .create()
        .unwrap()
}

/// Reads every record of `topic`-`partition` up to its high watermark: (value, offset).
fn read_partition(bootstrap: &str, topic: &str, partition: i32) -> Vec<(String, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kchaos-idempotence-test")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap();
    let (_, high_watermark) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut read = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while read
        .last()
        .is_none_or(|(_, offset)| offset + 1 < high_watermark)
    {
        assert!(
            Instant::now() < deadline,
            "read only {} records",
            read.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => read.push((
                String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
                message.offset(),
            )),
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(error)) => panic!("consume error: {error}"),
        }
        if high_watermark == 0 {
            break;
        }
    }
    read
}

/// librdkafka's idempotent producer sends a steady stream to three partitions while the leader
/// of partition 0 is SIGKILLed: every message is acknowledged, and the final read finds each
/// exactly once, at its acknowledged offset, in send order per partition.
#[test]
fn an_idempotent_producer_through_a_leader_kill_writes_each_message_once_in_order() {
    const MESSAGES: usize = 3000;
    const PARTITIONS: i32 = 3;
    let mut cluster = Cluster::start("");
    let bootstrap = cluster.bootstrap();
    create_topic(
        &bootstrap,
        "idem",
        PARTITIONS,
        &[("min.insync.replicas", "2")],
    );
    let leader = wait_for("a leader", FAILOVER_TIMEOUT, POLL, || {
        let leader = leader_of(&bootstrap, "idem", 0);
        (leader >= 0).then_some(leader)
    })
    .unwrap();
    let producer = Arc::new(idempotent_producer(&bootstrap));

    // One message per millisecond from another thread; the leader dies a third of the way in.
    let enqueued = Arc::new(AtomicUsize::new(0));
    let sender = {
        let producer = Arc::clone(&producer);
        let enqueued = Arc::clone(&enqueued);
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut deliveries = Vec::with_capacity(MESSAGES);
            for i in 0..MESSAGES {
                let due = start + Duration::from_millis(i as u64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let value = format!("v{i}");
                let partition = (i % PARTITIONS as usize) as i32;
                let record = FutureRecord::<(), _>::to("idem")
                    .payload(&value)
                    .partition(partition);
                deliveries.push((
                    value.clone(),
                    partition,
                    producer.send_result(record).unwrap(),
                ));
                enqueued.store(i + 1, Ordering::Relaxed);
            }
            deliveries
        })
    };
    wait_for(
        "a third of the messages sent",
        FAILOVER_TIMEOUT,
        POLL,
        || (enqueued.load(Ordering::Relaxed) >= MESSAGES / 3).then_some(()),
    )
    .unwrap();
    cluster.broker(leader).kill();
    let deliveries = sender.join().unwrap();
    let mut acked: HashMap<String, (i32, i64)> = HashMap::new();
    let mut failed = Vec::new();
    for (value, partition, delivery) in deliveries {
        match futures::executor::block_on(delivery) {
            Ok(Ok(delivered)) => {
                assert_eq!(delivered.partition, partition);
                acked.insert(value, (partition, delivered.offset));
            }
            Ok(Err((error, _))) => failed.push((value, error.to_string())),
            Err(cancelled) => failed.push((value, cancelled.to_string())),
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    assert!(
        failed.is_empty(),
        "{} sends failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(acked.len(), MESSAGES);

    cluster.broker(leader).restart();
    let bootstrap = cluster.bootstrap();
    for partition in 0..PARTITIONS {
        let read = read_partition(&bootstrap, "idem", partition);
        let sent: Vec<String> = (0..MESSAGES)
            .filter(|i| (i % PARTITIONS as usize) as i32 == partition)
            .map(|i| format!("v{i}"))
            .collect();
        let values: Vec<&String> = read.iter().map(|(value, _)| value).collect();
        let duplicates = values.len()
            - values
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len();
        assert_eq!(
            duplicates, 0,
            "partition {partition}: {duplicates} values read twice"
        );
        assert_eq!(
            values,
            sent.iter().collect::<Vec<_>>(),
            "partition {partition}: each message once, in send order"
        );
        for (value, offset) in &read {
            assert_eq!(
                acked.get(value),
                Some(&(partition, *offset)),
                "{value} read at {partition}/{offset}"
            );
        }
    }
}
