//! Shared code of the broker integration tests: start a coordinator (one function, so that
//! switching from Apache ZooKeeper to `kchaos coordinator` is one change), start and restart
//! brokers as `NodeProcess`es, build rdkafka clients, and speak the wire protocol ([`wire`]).
#![allow(clippy::unwrap_used, dead_code)]

pub mod cluster;
pub mod raw;
pub mod wire;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::cluster::ports::free_loopback_port;
use harness::cluster::process::NodeProcess;
use harness::wait::wait_for;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running coordinator (Apache ZooKeeper for now) on a loopback port.
pub struct TestCoordinator {
    pub process: NodeProcess,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl TestCoordinator {
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Starts a coordinator with a short tick (so sessions of ~1 s are allowed) and waits until
/// it accepts connections: `kchaos coordinator`, or Apache ZooKeeper when
/// `KCHAOS_TEST_COORDINATOR=zookeeper` (the differential peer).
pub fn start_coordinator() -> TestCoordinator {
    start_coordinator_with_tick(100)
}

/// [`start_coordinator`] with tickTime `tick_time_ms`: sessions are granted 2 to 20 ticks
/// (up to 60 s), so a shorter request is raised to 2 ticks, as ZooKeeper's default tick
/// (2000 ms) raises Kafka's test-sized timeouts.
pub fn start_coordinator_with_tick(tick_time_ms: u32) -> TestCoordinator {
    let dir = tempfile::tempdir().unwrap();
    let port = free_loopback_port().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let apache = std::env::var("KCHAOS_TEST_COORDINATOR").is_ok_and(|which| which == "zookeeper");
    let (program, args) = if apache {
        let config = dir.path().join("zoo.cfg");
        std::fs::write(
            &config,
            format!(
                "tickTime={tick_time_ms}\ndataDir={}\nclientPort={port}\n\
                 clientPortAddress=127.0.0.1\nmaxSessionTimeout=60000\n\
                 admin.enableServer=false\n",
                data_dir.display()
            ),
        )
        .unwrap();
        (
            PathBuf::from("java"),
            vec![
                "-Xmx256m".into(),
                "-cp".into(),
                "/usr/share/java/*:/etc/zookeeper/conf".into(),
                "org.apache.zookeeper.server.quorum.QuorumPeerMain".into(),
                config.display().to_string(),
            ],
        )
    } else {
        (
            PathBuf::from(env!("CARGO_BIN_EXE_kchaos")),
            vec![
                "coordinator".into(),
                "--port".into(),
                port.to_string(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--tick-time-ms".into(),
                tick_time_ms.to_string(),
                "--max-session-timeout-ms".into(),
                "60000".into(),
            ],
        )
    };
    let process = NodeProcess::spawn(
        "coordinator",
        &program,
        &args,
        &[],
        &dir.path().join("coordinator.log"),
    )
    .unwrap();
    wait_for(
        "the coordinator to listen",
        STARTUP_TIMEOUT,
        Duration::from_millis(50),
        || TcpStream::connect(("127.0.0.1", port)).ok(),
    )
    .unwrap();
    TestCoordinator {
        process,
        port,
        _dir: dir,
    }
}

/// One broker process with its config file and log directory.
pub struct TestBroker {
    pub process: Option<NodeProcess>,
    pub port: u16,
    pub broker_id: i32,
    pub dir: PathBuf,
    pub config_path: PathBuf,
}

impl TestBroker {
    /// Writes `server.properties` (with `extra` lines) in `dir` and starts the broker.
    pub fn start(dir: &Path, coordinator: &TestCoordinator, broker_id: i32, extra: &str) -> Self {
        let port = free_loopback_port().unwrap();
        let log_dir = dir.join("kafka-logs");
        let config_path = dir.join(format!("server-{broker_id}.properties"));
        std::fs::write(
            &config_path,
            format!(
                "broker.id={broker_id}\nlisteners=PLAINTEXT://127.0.0.1:{port}\n\
                 log.dirs={}\nzookeeper.connect={}\nzookeeper.session.timeout.ms=2000\n\
                 replica.lag.time.max.ms=1000\n{extra}\n",
                log_dir.display(),
                coordinator.connect_string()
            ),
        )
        .unwrap();
        let mut broker = TestBroker {
            process: None,
            port,
            broker_id,
            dir: dir.to_path_buf(),
            config_path,
        };
        broker.restart();
        broker
    }

    /// The bootstrap address.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("kafka-logs")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join(format!("broker-{}.log", self.broker_id))
    }

    /// (Re)starts the process and waits until it logs that it started.
    pub fn restart(&mut self) {
        let starts_before = self.starts();
        self.spawn();
        self.wait_started(starts_before);
    }

    /// How many times the log says the broker started.
    pub fn starts(&self) -> usize {
        self.output()
            .matches(&format!("broker {} started", self.broker_id))
            .count()
    }

    /// Starts the process without waiting for it.
    pub fn spawn(&mut self) {
        let process = NodeProcess::spawn(
            &format!("broker-{}", self.broker_id),
            Path::new(env!("CARGO_BIN_EXE_kchaos")),
            &[
                "broker".into(),
                "--config".into(),
                self.config_path.display().to_string(),
            ],
            &[("RUST_LOG".into(), "info".into())],
            &self.log_file(),
        )
        .unwrap();
        self.process = Some(process);
    }

    /// Waits until the log says the broker started once more than `starts_before` times;
    /// panics at once if the process exits first.
    pub fn wait_started(&mut self, starts_before: usize) {
        let started = wait_for(
            "the broker to start",
            STARTUP_TIMEOUT,
            Duration::from_millis(20),
            || {
                if self.starts() > starts_before {
                    return Some(Ok(()));
                }
                let running = self
                    .process
                    .as_mut()
                    .is_some_and(|p| p.is_running().unwrap());
                (!running).then_some(Err("the broker exited"))
            },
        );
        match started {
            Ok(Ok(())) => {}
            Ok(Err(exited)) => panic!("{exited}; log:\n{}", self.output()),
            Err(error) => panic!("{error}; log:\n{}", self.output()),
        }
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().unwrap();
        }
    }

    /// SIGTERM and wait: a clean stop. Returns whether it exited by itself.
    pub fn terminate(&mut self) -> bool {
        match self.process.take() {
            Some(mut process) => process.terminate(Duration::from_secs(20)).unwrap(),
            None => true,
        }
    }

    /// The broker's log output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }
}

/// Starts brokers 1..=`count`, each in its own directory under `dir`, with `extra`
/// server.properties lines.
pub fn start_brokers(
    dir: &Path,
    coordinator: &TestCoordinator,
    count: i32,
    extra: &str,
) -> Vec<TestBroker> {
    (1..=count)
        .map(|id| {
            let broker_dir = dir.join(format!("broker-{id}"));
            std::fs::create_dir_all(&broker_dir).unwrap();
            TestBroker::start(&broker_dir, coordinator, id, extra)
        })
        .collect()
}

/// The addresses of the brokers that run, comma-separated.
pub fn bootstrap_of(brokers: &[TestBroker]) -> String {
    brokers
        .iter()
        .filter(|broker| broker.process.is_some())
        .map(TestBroker::bootstrap)
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates `name` with `partitions` partitions of `replication_factor` replicas (rdkafka's
/// admin client) and fails the test if it cannot.
pub fn create_topic(bootstrap: &str, name: &str, partitions: i32, replication_factor: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let topic = NewTopic::new(
        name,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    let results = futures::executor::block_on(admin.create_topics(
        [&topic],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))
    .unwrap();
    for result in results {
        result.unwrap();
    }
}

/// A producer with `acks` and fast failure detection.
pub fn producer(bootstrap: &str, acks: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("enable.idempotence", "false")
        .create()
        .unwrap()
}

/// A consumer that reads by `assign` (no group coordination).
pub fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kchaos-test")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap()
}

/// Sends `m<first>`..`m<first+count-1>` to `topic` partition 0 and waits for every
/// acknowledgement. Returns (value, offset) of the acknowledged sends, in send order; a send
/// that failed is left out.
pub fn produce_all(
    bootstrap: &str,
    acks: &str,
    topic: &str,
    first: usize,
    count: usize,
) -> Vec<(String, i64)> {
    produce_to(bootstrap, acks, topic, 0, first, count)
}

/// [`produce_all`] to `partition`.
pub fn produce_to(
    bootstrap: &str,
    acks: &str,
    topic: &str,
    partition: i32,
    first: usize,
    count: usize,
) -> Vec<(String, i64)> {
    let producer = producer(bootstrap, acks);
    let mut pending = std::collections::VecDeque::new();
    let mut acked = Vec::with_capacity(count);
    let mut settle = |pending: &mut std::collections::VecDeque<(String, _)>| {
        let (value, delivery): (String, rdkafka::producer::DeliveryFuture) =
            pending.pop_front().unwrap();
        if let Ok(Ok(delivered)) = futures::executor::block_on(delivery) {
            acked.push((value, delivered.offset));
        }
    };
    for i in first..first + count {
        let value = format!("m{i}");
        loop {
            let record = FutureRecord::<(), _>::to(topic)
                .payload(&value)
                .partition(partition);
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push_back((value.clone(), delivery));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    settle(&mut pending);
                }
                Err((error, _)) => panic!("cannot enqueue {value}: {error}"),
            }
        }
    }
    while !pending.is_empty() {
        settle(&mut pending);
    }
    acked
}

/// Reads `topic` partition 0 from `from_offset` until `count` messages arrived (or 60 s
/// passed). Returns (value, offset) in read order.
/// How many records to read from offset 0 to reach every acknowledged offset: the highest one
/// plus one. After a fault this is more than the number of acknowledged sends, because a send that
/// librdkafka retried (without idempotence) may have been appended twice.
pub fn records_through(acked: &[(String, i64)]) -> usize {
    acked
        .iter()
        .map(|(_, offset)| *offset + 1)
        .max()
        .map_or(0, |end| end as usize)
}

pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    from_offset: i64,
    count: usize,
) -> Vec<(String, i64)> {
    let consumer = consumer(bootstrap);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(from_offset))
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut read = Vec::with_capacity(count);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while read.len() < count && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let value =
                    String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
                read.push((value, message.offset()));
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(error)) => panic!("consume error: {error}"),
        }
    }
    read
}
