//! Replication on our coordinator and three broker processes, with rdkafka clients: replica
//! placement and identical replicas, acks=all across a leader SIGKILL, ISR shrink and expand
//! around a paused follower, min.insync.replicas, controller failover, and the KIP-101
//! scenario (follower restart, then leader death) without acknowledged loss.
#![allow(clippy::unwrap_used)]

mod broker_support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use broker_support::cluster::Cluster;
use broker_support::{consume_all, records_through};
use harness::wait::wait_for;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

impl Cluster {
    /// `kchaos coord <server> get <path>`.
    fn coordinator_get(&self, path: &str) -> Option<String> {
        let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
            .args(["coord", &self.coordinator.connect_string(), "get", path])
            .output()
            .unwrap();
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The partition state znode, parsed.
    fn partition_state(&self, topic: &str, partition: i32) -> Option<serde_json::Value> {
        let text = self.coordinator_get(&format!(
            "/brokers/topics/{topic}/partitions/{partition}/state"
        ))?;
        text.lines()
            .find_map(|line| serde_json::from_str::<serde_json::Value>(line.trim()).ok())
    }

    fn leader_of(&self, topic: &str, partition: i32) -> i32 {
        self.partition_state(topic, partition)
            .and_then(|state| state["leader"].as_i64())
            .unwrap_or(-1) as i32
    }

    fn isr_of(&self, topic: &str, partition: i32) -> Vec<i64> {
        self.partition_state(topic, partition)
            .and_then(|state| {
                state["isr"]
                    .as_array()
                    .map(|isr| isr.iter().filter_map(|v| v.as_i64()).collect())
            })
            .unwrap_or_default()
    }

    fn controller(&self) -> Option<i64> {
        let text = self.coordinator_get("/controller")?;
        text.lines()
            .find_map(|line| serde_json::from_str::<serde_json::Value>(line.trim()).ok())
            .and_then(|json| json["brokerid"].as_i64())
    }

    /// Waits until `broker_id`'s metadata shows `topic`-`partition` led by someone other than
    /// `old_leader`, and returns that leader.
    fn wait_for_new_leader(&self, topic: &str, partition: i32, old_leader: i32) -> i32 {
        wait_for("a new leader", FAILOVER_TIMEOUT, POLL, || {
            let leader = self.leader_of(topic, partition);
            (leader >= 0 && leader != old_leader).then_some(leader)
        })
        .unwrap()
    }
}

fn create_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication: i32,
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
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

fn producer(bootstrap: &str, acks: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("linger.ms", "2")
        .set("message.timeout.ms", "30000")
        .set("request.timeout.ms", "5000")
        .set("enable.idempotence", "false")
        .set("max.in.flight.requests.per.connection", "1");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create().unwrap()
}

/// Sends one message and waits for its answer: Ok(offset) or the error.
fn send(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    value: &str,
) -> Result<i64, KafkaError> {
    let record = FutureRecord::<(), _>::to(topic)
        .payload(value)
        .partition(partition);
    futures::executor::block_on(producer.send(record, Duration::from_secs(10)))
        .map(|delivered| delivered.offset)
        .map_err(|(error, _)| error)
}

/// Sends `count` values concurrently (`prefix`-i) and returns the acknowledged (value, offset).
fn send_many(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    prefix: &str,
    count: usize,
) -> Vec<(String, i64)> {
    let deliveries: Vec<_> = (0..count)
        .map(|i| {
            let value = format!("{prefix}-{i}");
            let record = FutureRecord::<(), _>::to(topic)
                .payload(&value)
                .partition(partition);
            (value.clone(), producer.send_result(record).unwrap())
        })
        .collect();
    deliveries
        .into_iter()
        .filter_map(
            |(value, delivery)| match futures::executor::block_on(delivery) {
                Ok(Ok(delivered)) => Some((value, delivered.offset)),
                _ => None,
            },
        )
        .collect()
}

/// Every acknowledged value is read at the offset it was acknowledged with, and no offset is
/// read with two values.
fn assert_no_loss(acked: &[(String, i64)], read: &[(String, i64)]) {
    let mut by_offset: HashMap<i64, &str> = HashMap::new();
    for (value, offset) in read {
        if let Some(previous) = by_offset.insert(*offset, value) {
            assert_eq!(previous, value, "offset {offset} read with two values");
        }
    }
    for (value, offset) in acked {
        assert_eq!(
            by_offset.get(offset).copied(),
            Some(value.as_str()),
            "acknowledged {value} at offset {offset} is lost"
        );
    }
}

fn segment_bytes(log_dir: &Path, topic: &str, partition: i32) -> Vec<u8> {
    let dir = log_dir.join(format!("{topic}-{partition}"));
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".log"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .flat_map(|name| std::fs::read(dir.join(name)).unwrap_or_default())
        .collect()
}

#[test]
fn rf3_topic_spreads_leaders_and_every_replica_holds_the_same_batches() {
    let cluster = Cluster::start("");
    let bootstrap = cluster.brokers[0].bootstrap();
    create_topic(&bootstrap, "spread", 3, 3, &[("min.insync.replicas", "2")]);
    let leaders: Vec<i32> = (0..3)
        .map(|p| {
            wait_for("a leader", FAILOVER_TIMEOUT, POLL, || {
                let leader = cluster.leader_of("spread", p);
                (leader >= 0).then_some(leader)
            })
            .unwrap()
        })
        .collect();
    // A replication factor above the live brokers is refused.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let too_many = NewTopic::new("too-many", 1, TopicReplication::Fixed(4));
    let results =
        futures::executor::block_on(admin.create_topics([&too_many], &AdminOptions::new()))
            .unwrap();
    assert!(
        matches!(
            results[0],
            Err((_, RDKafkaErrorCode::InvalidReplicationFactor))
        ),
        "{results:?}"
    );
    let mut distinct = leaders.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "leaders {leaders:?}");

    // Any one broker answers metadata for the whole cluster.
    for broker in &cluster.brokers {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some("spread"), Duration::from_secs(10))
            .unwrap();
        assert_eq!(metadata.brokers().len(), 3);
        let topic = &metadata.topics()[0];
        assert_eq!(topic.partitions().len(), 3);
        for partition in topic.partitions() {
            assert_eq!(partition.replicas().len(), 3);
            assert_eq!(partition.leader(), leaders[partition.id() as usize]);
        }
    }

    let producer = producer(&bootstrap, "all", &[]);
    let mut acked = 0;
    for p in 0..3 {
        acked += send_many(&producer, "spread", p, &format!("p{p}"), 200).len();
    }
    if acked != 600 {
        for broker in &cluster.brokers {
            eprintln!("=== broker {}\n{}", broker.broker_id, broker.output());
        }
    }
    assert_eq!(acked, 600);
    for p in 0..3 {
        wait_for("identical replicas", FAILOVER_TIMEOUT, POLL, || {
            let logs: Vec<Vec<u8>> = cluster
                .brokers
                .iter()
                .map(|b| segment_bytes(&b.log_dir(), "spread", p))
                .collect();
            (!logs[0].is_empty() && logs.iter().all(|log| *log == logs[0])).then_some(())
        })
        .unwrap();
    }
}

#[test]
fn acks_all_survives_a_leader_sigkill_without_loss() {
    let mut cluster = Cluster::start("");
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "kill", 1, 3, &[("min.insync.replicas", "2")]);
    let leader = wait_for("a leader", FAILOVER_TIMEOUT, POLL, || {
        let leader = cluster.leader_of("kill", 0);
        (leader >= 0).then_some(leader)
    })
    .unwrap();
    let producer = producer(&bootstrap, "all", &[]);
    let mut acked = send_many(&producer, "kill", 0, "before", 300);
    assert_eq!(acked.len(), 300);

    // A stream of sends in flight while the leader dies.
    let values: Vec<String> = (0..300).map(|i| format!("during-{i}")).collect();
    let in_flight: Vec<_> = values
        .iter()
        .map(|value| {
            let record = FutureRecord::<(), _>::to("kill")
                .payload(value)
                .partition(0);
            (value.clone(), producer.send_result(record).unwrap())
        })
        .collect();
    cluster.broker(leader).kill();
    let new_leader = cluster.wait_for_new_leader("kill", 0, leader);
    assert_ne!(new_leader, leader);
    for (value, delivery) in in_flight {
        if let Ok(Ok(delivered)) = futures::executor::block_on(delivery) {
            acked.push((value, delivered.offset));
        }
    }
    acked.extend(send_many(&producer, "kill", 0, "after", 100));
    assert!(acked.len() >= 400, "only {} acknowledged", acked.len());

    cluster.broker(leader).restart();
    wait_for(
        "the restarted broker back in the ISR",
        FAILOVER_TIMEOUT,
        POLL,
        || (cluster.isr_of("kill", 0).len() == 3).then_some(()),
    )
    .unwrap();
    let read = consume_all(&cluster.bootstrap(), "kill", 0, records_through(&acked));
    assert_no_loss(&acked, &read);
}

#[test]
fn a_paused_follower_leaves_the_isr_and_rejoins_after_catching_up() {
    // A long session: only the replica lag removes the paused follower.
    let mut cluster = Cluster::start("zookeeper.session.timeout.ms=10000");
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "pause", 1, 3, &[("min.insync.replicas", "2")]);
    let leader = wait_for("a leader", FAILOVER_TIMEOUT, POLL, || {
        let leader = cluster.leader_of("pause", 0);
        (leader >= 0).then_some(leader)
    })
    .unwrap();
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    let producer = producer(&bootstrap, "all", &[]);
    assert_eq!(send_many(&producer, "pause", 0, "a", 50).len(), 50);

    cluster
        .broker(follower)
        .process
        .as_mut()
        .unwrap()
        .pause()
        .unwrap();
    wait_for(
        "the paused follower to leave the ISR",
        FAILOVER_TIMEOUT,
        POLL,
        || {
            let isr = cluster.isr_of("pause", 0);
            (isr.len() == 2 && !isr.contains(&i64::from(follower))).then_some(())
        },
    )
    .unwrap();
    let during = send_many(&producer, "pause", 0, "b", 100);
    assert_eq!(
        during.len(),
        100,
        "acks=all sends go on with the ISR of two"
    );

    cluster
        .broker(follower)
        .process
        .as_mut()
        .unwrap()
        .resume()
        .unwrap();
    wait_for(
        "the follower to rejoin the ISR",
        FAILOVER_TIMEOUT,
        POLL,
        || (cluster.isr_of("pause", 0).len() == 3).then_some(()),
    )
    .unwrap();
    let output = cluster.broker(leader).output();
    assert!(output.contains("Shrinking ISR"), "{output}");
    assert!(output.contains("Expanding ISR"), "{output}");
}

#[test]
fn isr_below_min_insync_replicas_refuses_acks_all_but_not_acks_1() {
    let mut cluster = Cluster::start("");
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "minisr", 1, 3, &[("min.insync.replicas", "2")]);
    let leader = wait_for("a leader", FAILOVER_TIMEOUT, POLL, || {
        let leader = cluster.leader_of("minisr", 0);
        (leader >= 0).then_some(leader)
    })
    .unwrap();
    for id in [1, 2, 3] {
        if id != leader {
            cluster.broker(id).kill();
        }
    }
    wait_for(
        "the ISR to shrink to the leader",
        FAILOVER_TIMEOUT,
        POLL,
        || (cluster.isr_of("minisr", 0) == vec![i64::from(leader)]).then_some(()),
    )
    .unwrap();
    let leader_address = cluster.broker(leader).bootstrap();
    let all = producer(&leader_address, "all", &[("retries", "0")]);
    match send(&all, "minisr", 0, "refused") {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas)) => {}
        other => panic!("expected NOT_ENOUGH_REPLICAS, got {other:?}"),
    }
    let one = producer(&leader_address, "1", &[]);
    let offset = send(&one, "minisr", 0, "accepted").unwrap();
    assert_eq!(offset, 0, "the refused acks=all send appended nothing");
}

#[test]
fn a_new_controller_takes_over_and_leader_failover_still_works() {
    let mut cluster = Cluster::start("");
    let controller = wait_for("a controller", FAILOVER_TIMEOUT, POLL, || {
        cluster.controller()
    })
    .unwrap() as i32;
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "ctl", 3, 3, &[]);
    cluster.broker(controller).kill();
    let new_controller = wait_for("a new controller", FAILOVER_TIMEOUT, POLL, || {
        cluster
            .controller()
            .filter(|id| *id != i64::from(controller))
    })
    .unwrap() as i32;
    // Partitions the dead controller led have moved.
    for p in 0..3 {
        wait_for("a live leader", FAILOVER_TIMEOUT, POLL, || {
            let leader = cluster.leader_of("ctl", p);
            (leader >= 0 && leader != controller).then_some(())
        })
        .unwrap();
    }
    // A failover under the new controller.
    let victim_partition = (0..3)
        .find(|p| cluster.leader_of("ctl", *p) != new_controller)
        .unwrap();
    let victim = cluster.leader_of("ctl", victim_partition);
    cluster.broker(victim).kill();
    let leader = cluster.wait_for_new_leader("ctl", victim_partition, victim);
    assert_eq!(leader, new_controller, "the only broker left leads");
    let producer = producer(&cluster.bootstrap(), "1", &[]);
    send(&producer, "ctl", victim_partition, "served").unwrap();
}

#[test]
fn kip_101_follower_restart_then_leader_death_loses_nothing() {
    // A long replica lag: the follower leaves the ISR only because it died, not for lagging.
    let mut cluster = Cluster::start("replica.lag.time.max.ms=30000");
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "kip101", 1, 2, &[]);
    let state = wait_for("a state", FAILOVER_TIMEOUT, POLL, || {
        cluster.partition_state("kip101", 0)
    })
    .unwrap();
    let leader = state["leader"].as_i64().unwrap() as i32;
    let isr: Vec<i32> = state["isr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap() as i32)
        .collect();
    let follower = *isr.iter().find(|id| **id != leader).unwrap();
    let producer = producer(&bootstrap, "all", &[]);
    let acked = send_many(&producer, "kip101", 0, "m", 200);
    assert_eq!(acked.len(), 200);
    drop(producer);

    cluster.broker(follower).kill();
    cluster.broker(follower).restart();
    // Its old registration expired before it could register again, so the controller took it
    // out of the ISR (Kafka's OfflineReplica); it rejoins once it fetched up to the leader,
    // after truncating where its log diverges (KIP-101). The leader dies right after.
    wait_for(
        "the follower back in the ISR",
        FAILOVER_TIMEOUT,
        POLL,
        || {
            cluster
                .isr_of("kip101", 0)
                .contains(&i64::from(follower))
                .then_some(())
        },
    )
    .unwrap();
    cluster.broker(leader).kill();
    let new_leader = cluster.wait_for_new_leader("kip101", 0, leader);
    assert_eq!(new_leader, follower);
    let read = consume_all(&cluster.bootstrap(), "kip101", 0, records_through(&acked));
    assert_no_loss(&acked, &read);
}

#[test]
fn sigterm_moves_leadership_away_before_the_broker_stops() {
    let mut cluster = Cluster::start("");
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "term", 1, 3, &[("min.insync.replicas", "2")]);
    let leader = wait_for("a leader", FAILOVER_TIMEOUT, POLL, || {
        let leader = cluster.leader_of("term", 0);
        (leader >= 0).then_some(leader)
    })
    .unwrap();
    let producer = producer(&bootstrap, "all", &[]);
    let mut acked = send_many(&producer, "term", 0, "before", 100);
    assert!(cluster.broker(leader).terminate(), "exited by itself");
    let output = cluster.broker(leader).output();
    assert!(output.contains("Controlled shutdown succeeded"), "{output}");
    let new_leader = cluster.leader_of("term", 0);
    assert!(
        new_leader >= 0 && new_leader != leader,
        "leader {new_leader}"
    );
    acked.extend(send_many(&producer, "term", 0, "after", 100));
    assert_eq!(acked.len(), 200);
    let read = consume_all(&cluster.bootstrap(), "term", 0, records_through(&acked));
    assert_no_loss(&acked, &read);
}

#[test]
fn a_deposed_leader_truncates_its_unreplicated_tail_and_converges() {
    let mut cluster = Cluster::start("");
    let bootstrap = cluster.bootstrap();
    // Unclean election: the followers can lead even after the ISR shrank to the old leader.
    create_topic(
        &bootstrap,
        "diverge",
        1,
        3,
        &[("unclean.leader.election.enable", "true")],
    );
    let leader = wait_for("a leader", FAILOVER_TIMEOUT, POLL, || {
        let leader = cluster.leader_of("diverge", 0);
        (leader >= 0).then_some(leader)
    })
    .unwrap();
    let all = producer(&bootstrap, "all", &[]);
    assert_eq!(send_many(&all, "diverge", 0, "a", 50).len(), 50);
    drop(all);
    let followers: Vec<i32> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    for id in &followers {
        cluster.broker(*id).kill();
    }
    // Only the leader gets these: acks=1 answers without the (dead) followers.
    let leader_address = cluster.broker(leader).bootstrap();
    let one = producer(&leader_address, "1", &[]);
    assert_eq!(send_many(&one, "diverge", 0, "tail", 20).len(), 20);
    drop(one);
    cluster.broker(leader).kill();
    for id in &followers {
        cluster.broker(*id).restart();
    }
    let new_leader = cluster.wait_for_new_leader("diverge", 0, leader);
    assert!(followers.contains(&new_leader));

    cluster.broker(leader).restart();
    let all = producer(&cluster.bootstrap(), "all", &[]);
    assert_eq!(send_many(&all, "diverge", 0, "b", 30).len(), 30);
    wait_for(
        "the old leader to truncate its tail",
        FAILOVER_TIMEOUT,
        POLL,
        || {
            cluster
                .broker(leader)
                .output()
                .contains("Truncating partition diverge-0 to offset 50")
                .then_some(())
        },
    )
    .unwrap_or_else(|error| panic!("{error}: {}", cluster.broker(leader).output()));
    wait_for("identical replicas", FAILOVER_TIMEOUT, POLL, || {
        let logs: Vec<Vec<u8>> = cluster
            .brokers
            .iter()
            .map(|b| segment_bytes(&b.log_dir(), "diverge", 0))
            .collect();
        logs.iter().all(|log| *log == logs[0]).then_some(())
    })
    .unwrap();
    let read = consume_all(&cluster.bootstrap(), "diverge", 0, 80);
    assert_eq!(read.len(), 80);
    assert!(read.iter().all(|(value, _)| !value.starts_with("tail")));
}

#[test]
fn an_isr_shrinking_under_a_waiting_acks_all_send_is_not_enough_replicas_after_append() {
    let mut cluster = Cluster::start("zookeeper.session.timeout.ms=10000");
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "after", 1, 2, &[("min.insync.replicas", "2")]);
    let state = wait_for("a state", FAILOVER_TIMEOUT, POLL, || {
        cluster.partition_state("after", 0)
    })
    .unwrap();
    let leader = state["leader"].as_i64().unwrap() as i32;
    let follower = state["isr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap() as i32)
        .find(|id| *id != leader)
        .unwrap();
    let all = producer(
        &cluster.broker(leader).bootstrap(),
        "all",
        &[("retries", "0")],
    );
    assert!(send(&all, "after", 0, "warm").is_ok());
    cluster
        .broker(follower)
        .process
        .as_mut()
        .unwrap()
        .pause()
        .unwrap();
    // Appended while the ISR is still two; answered once the leader drops the follower.
    match send(&all, "after", 0, "stranded") {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicasAfterAppend)) => {}
        other => panic!("expected NOT_ENOUGH_REPLICAS_AFTER_APPEND, got {other:?}"),
    }
    assert_eq!(cluster.isr_of("after", 0), vec![i64::from(leader)]);
    cluster
        .broker(follower)
        .process
        .as_mut()
        .unwrap()
        .resume()
        .unwrap();
}
