//! Elections an operator steers, on our coordinator and three broker processes, driven with the
//! `kchaos` admin CLI and rdkafka clients: the seed's unclean scenario (leaderless with
//! `unclean.leader.election.enable=false`, a leader at once after flipping it with `kchaos
//! configs --alter`, the writes only the old leader had are gone, and the old leader truncates
//! to the new leader's log), preferred election with `kchaos elect`, and the auto rebalance.
#![allow(clippy::unwrap_used)]

mod broker_support;

use std::process::Command;
use std::time::Duration;

use broker_support::cluster::Cluster;
use broker_support::{consume_all, produce_all, records_through, wire};
use harness::wait::wait_for;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

const ELECTION_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// One `--describe` line of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionLine {
    /// The broker id, or "none".
    leader: String,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

/// What a `kchaos` command did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The election tests' cluster: topics are only created on purpose.
fn start_cluster(extra: &str) -> Cluster {
    Cluster::start(&format!("auto.create.topics.enable=false\n{extra}"))
}

impl Cluster {
    /// `kchaos <tool> --bootstrap-server <a running broker> args...`.
    fn tool(&self, tool: &str, args: &[&str]) -> Run {
        let bootstrap = self.bootstrap();
        let first = bootstrap.split(',').next().unwrap().to_string();
        let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
            .arg(tool)
            .args(["--bootstrap-server", &first])
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `topics --describe --topic <topic>`, the line of `partition`.
    fn describe(&self, topic: &str, partition: i32) -> Option<PartitionLine> {
        let run = self.tool("topics", &["--describe", "--topic", topic]);
        if run.code != Some(0) {
            return None;
        }
        let prefix = format!("\tTopic: {topic}\tPartition: {partition}\t");
        let line = run.stdout.lines().find(|line| line.starts_with(&prefix))?;
        let field = |name: &str| {
            line.split('\t')
                .find_map(|part| part.strip_prefix(&format!("{name}: ")))
                .map(str::to_string)
        };
        let ids = |text: Option<String>| -> Vec<i32> {
            text.unwrap_or_default()
                .split(',')
                .filter_map(|id| id.trim().parse().ok())
                .collect()
        };
        Some(PartitionLine {
            leader: field("Leader")?,
            replicas: ids(field("Replicas")),
            isr: ids(field("Isr")),
        })
    }

    /// Waits until the described partition satisfies `condition`; returns that line.
    fn wait_for_partition(
        &self,
        what: &str,
        topic: &str,
        partition: i32,
        condition: impl Fn(&PartitionLine) -> bool,
    ) -> PartitionLine {
        wait_for(what, ELECTION_TIMEOUT, POLL, || {
            self.describe(topic, partition)
                .filter(|line| condition(line))
        })
        .unwrap_or_else(|error| panic!("{error}; last: {:?}", self.describe(topic, partition)))
    }

    fn create(&self, topic: &str, partitions: &str, configs: &[&str]) {
        let mut args = vec![
            "--create",
            "--topic",
            topic,
            "--partitions",
            partitions,
            "--replication-factor",
            "3",
        ];
        for config in configs {
            args.extend_from_slice(&["--config", config]);
        }
        let run = self.tool("topics", &args);
        assert_eq!(run.code, Some(0), "{run:?}");
    }
}

fn leader_id(line: &PartitionLine) -> Option<i32> {
    line.leader.parse().ok()
}

/// The seed's scenario: min.insync.replicas=1, RF 3; stop both followers, keep producing to the
/// leader, stop it, start the followers: leaderless until unclean election is enabled for the
/// topic, then a follower leads at once and the writes only the old leader had are gone.
#[test]
fn unclean_election_after_the_config_flip_loses_what_only_the_old_leader_had() {
    let mut cluster = start_cluster("auto.leader.rebalance.enable=false");
    cluster.create("seed", "1", &["min.insync.replicas=1"]);
    let full = cluster.wait_for_partition("a full ISR", "seed", 0, |line| line.isr.len() == 3);
    let leader = leader_id(&full).unwrap();
    let followers: Vec<i32> = full
        .replicas
        .iter()
        .copied()
        .filter(|id| *id != leader)
        .collect();

    let before = produce_all(&cluster.bootstrap(), "all", "seed", 0, 20);
    assert_eq!(
        before.len(),
        20,
        "every send before the faults is acknowledged"
    );

    for follower in &followers {
        cluster.broker(*follower).kill();
    }
    cluster.wait_for_partition("the ISR to shrink to the leader", "seed", 0, |line| {
        line.isr == vec![leader]
    });
    let alone = produce_all(&cluster.bootstrap(), "all", "seed", 20, 20);
    assert_eq!(
        alone.len(),
        20,
        "acks=all succeeds with the ISR {{leader}} and min.insync.replicas=1"
    );

    cluster.broker(leader).kill();
    for follower in &followers {
        cluster.broker(*follower).restart();
    }
    let leaderless =
        cluster.wait_for_partition("Leader: none", "seed", 0, |line| line.leader == "none");
    assert_eq!(
        leaderless.isr,
        vec![leader],
        "the ISR keeps its last member"
    );
    // It stays leaderless: the controller checks it again with both followers alive and does
    // not elect (it says so in its log at every check).
    // In assignment order, as the controller lists them.
    let live_followers = followers
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let still_offline = format!(
        "Partition seed-0 stays offline: no replica in its ISR ({leader}) is alive and \
         unclean.leader.election.enable is false (live replicas: {live_followers})"
    );
    wait_for(
        "the controller to check seed-0 with both followers alive",
        ELECTION_TIMEOUT,
        POLL,
        || {
            followers
                .iter()
                .any(|id| cluster.broker_output(*id).contains(&still_offline))
                .then_some(())
        },
    )
    .unwrap();
    assert_eq!(
        cluster.describe("seed", 0).map(|line| line.leader),
        Some("none".to_string())
    );

    let flip = cluster.tool(
        "configs",
        &[
            "--entity-type",
            "topics",
            "--entity-name",
            "seed",
            "--alter",
            "--add-config",
            "unclean.leader.election.enable=true",
        ],
    );
    assert_eq!(flip.code, Some(0), "{flip:?}");
    let elected = cluster.wait_for_partition("an unclean leader", "seed", 0, |line| {
        leader_id(line).is_some_and(|id| followers.contains(&id))
    });
    let new_leader = leader_id(&elected).unwrap();
    // The unclean leader starts as the ISR alone; the other follower may have rejoined since.
    assert!(
        elected.isr.contains(&new_leader) && !elected.isr.contains(&leader),
        "{elected:?}"
    );

    let after = produce_all(&cluster.bootstrap(), "all", "seed", 40, 5);
    assert_eq!(after.len(), 5);
    let read = consume_all(&cluster.bootstrap(), "seed", 0, 25);
    let values: Vec<&str> = read.iter().map(|(value, _)| value.as_str()).collect();
    let expected: Vec<String> = (0..20).chain(40..45).map(|i| format!("m{i}")).collect();
    assert_eq!(
        values, expected,
        "the log is the new leader's: m20..m39, acknowledged by the old leader alone, are gone"
    );

    // The old leader comes back and truncates to the new leader's log (KIP-101), then rejoins.
    cluster.broker(leader).restart();
    cluster.wait_for_partition("the old leader back in the ISR", "seed", 0, |line| {
        line.isr.contains(&leader)
    });
    cluster.broker(new_leader).kill();
    let other = followers
        .iter()
        .copied()
        .find(|id| *id != new_leader)
        .unwrap();
    cluster.broker(other).kill();
    cluster.wait_for_partition("the old leader leads again", "seed", 0, |line| {
        leader_id(line) == Some(leader)
    });
    let reread = consume_all(&cluster.bootstrap(), "seed", 0, 25);
    let values: Vec<&str> = reread.iter().map(|(value, _)| value.as_str()).collect();
    assert_eq!(
        values, expected,
        "the old leader truncated its divergent writes"
    );
}

/// Leadership moves away from the preferred replica when it crashes and stays away after it
/// returns, until `kchaos elect --election-type preferred` moves it back at once.
#[test]
fn kchaos_elect_preferred_moves_leadership_back_at_once() {
    let mut cluster = start_cluster("auto.leader.rebalance.enable=false");
    cluster.create("pref", "3", &[]);
    let full = cluster.wait_for_partition("a full ISR", "pref", 0, |line| line.isr.len() == 3);
    let preferred = full.replicas[0];
    assert_eq!(leader_id(&full), Some(preferred));

    cluster.broker(preferred).kill();
    let moved = cluster.wait_for_partition("a new leader", "pref", 0, |line| {
        leader_id(line).is_some_and(|id| id != preferred)
    });
    cluster.broker(preferred).restart();
    cluster.wait_for_partition("the preferred replica back in the ISR", "pref", 0, |line| {
        line.isr.contains(&preferred)
    });
    assert_eq!(
        cluster
            .describe("pref", 0)
            .and_then(|line| leader_id(&line)),
        leader_id(&moved),
        "without a rebalance leadership stays where it moved"
    );

    let run = cluster.tool(
        "elect",
        &[
            "--election-type",
            "preferred",
            "--topic",
            "pref",
            "--partition",
            "0",
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        "Successfully completed leader election (PREFERRED) for partitions pref-0\n"
    );
    cluster.wait_for_partition("the preferred leader", "pref", 0, |line| {
        leader_id(line) == Some(preferred)
    });

    // Unclean election for a partition that has a leader is not needed.
    let unclean = cluster.tool(
        "elect",
        &[
            "--election-type",
            "unclean",
            "--topic",
            "pref",
            "--partition",
            "0",
        ],
    );
    assert_eq!(unclean.code, Some(0), "{unclean:?}");
    assert_eq!(
        unclean.stdout,
        "Valid replica already elected for partitions pref-0\n"
    );
    let unknown = cluster.tool(
        "elect",
        &[
            "--election-type",
            "preferred",
            "--topic",
            "pref",
            "--partition",
            "7",
        ],
    );
    assert_eq!(unknown.code, Some(1), "{unknown:?}");
    assert!(
        unknown.stdout.contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{unknown:?}"
    );
    assert_eq!(unknown.stderr, "1 replica(s) could not be elected\n");

    // Only the controller serves ElectLeaders; the others answer NOT_CONTROLLER.
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(Some(vec![
            TopicPartitions::default()
                .with_topic(TopicName(StrBytes::from_static_str("pref")))
                .with_partitions(vec![0]),
        ]))
        .with_timeout_ms(10_000);
    let codes: Vec<i16> = cluster
        .brokers
        .iter()
        .map(|broker| {
            let response: ElectLeadersResponse = wire::connect(&broker.bootstrap())
                .call(2, &request)
                .unwrap();
            response.error_code
        })
        .collect();
    let not_controller = ResponseError::NotController.code();
    assert_eq!(
        codes.iter().filter(|code| **code == 0).count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|code| **code == not_controller).count(),
        2,
        "{codes:?}"
    );
}

/// The seed's preferred-election notes, with `auto.leader.rebalance.enable` (the default) and
/// a 1 s check interval: stop brokers 2 and 3, then 1; restart 2 (leader: none, 2 is out of
/// sync), then 1 (leader 1 everywhere: leader skew), then 3; once 2 and 3 are back in the ISRs
/// the controller moves every partition back to its preferred replica by itself.
#[test]
fn auto_rebalance_undoes_the_seeds_leader_skew() {
    let mut cluster = start_cluster("leader.imbalance.check.interval.seconds=1");
    cluster.create("skew", "3", &[]);
    let mut preferred = Vec::new();
    for partition in 0..3 {
        let full =
            cluster.wait_for_partition("a full ISR", "skew", partition, |line| line.isr.len() == 3);
        preferred.push(full.replicas[0]);
    }
    let mut sorted = preferred.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![1, 2, 3],
        "each broker is preferred for one partition"
    );

    cluster.broker(2).kill();
    cluster.broker(3).kill();
    for partition in 0..3 {
        cluster.wait_for_partition("broker 1 alone", "skew", partition, |line| {
            line.isr == vec![1] && line.leader == "1"
        });
    }
    cluster.broker(1).kill();
    cluster.broker(2).restart();
    for partition in 0..3 {
        cluster.wait_for_partition("Leader: none", "skew", partition, |line| {
            line.leader == "none"
        });
    }
    cluster.broker(1).restart();
    for partition in 0..3 {
        cluster.wait_for_partition("leader 1", "skew", partition, |line| line.leader == "1");
    }
    cluster.broker(3).restart();
    for (partition, preferred) in preferred.iter().enumerate() {
        cluster.wait_for_partition(
            "the preferred leader again",
            "skew",
            partition as i32,
            |line| leader_id(line) == Some(*preferred),
        );
    }
}

/// A topic config altered at run time takes effect on the leader without a restart:
/// `min.insync.replicas` raised above the ISR turns acks=all sends into NOT_ENOUGH_REPLICAS,
/// and lowered again lets them through.
#[test]
fn a_dynamic_min_insync_replicas_takes_effect_without_a_restart() {
    use rdkafka::ClientConfig;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let mut cluster = start_cluster("auto.leader.rebalance.enable=false");
    cluster.create("dyn", "1", &["min.insync.replicas=1"]);
    let full = cluster.wait_for_partition("a full ISR", "dyn", 0, |line| line.isr.len() == 3);
    let leader = leader_id(&full).unwrap();
    let follower = full
        .replicas
        .iter()
        .copied()
        .find(|id| *id != leader)
        .unwrap();
    cluster.broker(follower).kill();
    cluster.wait_for_partition("the ISR to shrink", "dyn", 0, |line| line.isr.len() == 2);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("acks", "all")
        .set("retries", "0")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    let send = || {
        let record = FutureRecord::<(), _>::to("dyn").payload("x").partition(0);
        futures::executor::block_on(producer.send(record, Duration::from_secs(10)))
            .map(|_| ())
            .map_err(|(error, _)| error)
    };
    assert!(send().is_ok());

    let alter = |value: &str| {
        let setting = format!("min.insync.replicas={value}");
        let run = cluster.tool(
            "configs",
            &["--topic", "dyn", "--alter", "--add-config", &setting],
        );
        assert_eq!(run.code, Some(0), "{run:?}");
    };
    alter("3");
    wait_for("NOT_ENOUGH_REPLICAS", ELECTION_TIMEOUT, POLL, || {
        matches!(
            send(),
            Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::NotEnoughReplicas
            ))
        )
        .then_some(())
    })
    .unwrap();
    alter("2");
    wait_for("sends to succeed again", ELECTION_TIMEOUT, POLL, || {
        send().is_ok().then_some(())
    })
    .unwrap();
}

/// `kchaos elect --election-type unclean` elects a leaderless partition's first live replica
/// even with `unclean.leader.election.enable=false` (the operator's explicit choice).
#[test]
fn kchaos_elect_unclean_elects_a_leaderless_partition() {
    let mut cluster = start_cluster("auto.leader.rebalance.enable=false");
    cluster.create("manual", "1", &["min.insync.replicas=1"]);
    let full = cluster.wait_for_partition("a full ISR", "manual", 0, |line| line.isr.len() == 3);
    let leader = leader_id(&full).unwrap();
    let followers: Vec<i32> = full
        .replicas
        .iter()
        .copied()
        .filter(|id| *id != leader)
        .collect();
    for follower in &followers {
        cluster.broker(*follower).kill();
    }
    cluster.wait_for_partition("the ISR to shrink to the leader", "manual", 0, |line| {
        line.isr == vec![leader]
    });
    cluster.broker(leader).kill();
    for follower in &followers {
        cluster.broker(*follower).restart();
    }
    cluster.wait_for_partition("Leader: none", "manual", 0, |line| line.leader == "none");

    let preferred = cluster.tool(
        "elect",
        &["--election-type", "preferred", "--all-topic-partitions"],
    );
    assert_eq!(preferred.code, Some(1), "{preferred:?}");
    assert!(
        preferred.stdout.contains("PREFERRED_LEADER_NOT_AVAILABLE"),
        "{preferred:?}"
    );

    let run = cluster.tool(
        "elect",
        &[
            "--election-type",
            "unclean",
            "--topic",
            "manual",
            "--partition",
            "0",
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        "Successfully completed leader election (UNCLEAN) for partitions manual-0\n"
    );
    cluster.wait_for_partition("an unclean leader", "manual", 0, |line| {
        leader_id(line).is_some_and(|id| followers.contains(&id))
    });
}

/// SIGTERM of a leader under a steady acks=all load: the broker moves its leadership away
/// (controlled shutdown) before it exits, and every send is acknowledged — none fails — and
/// read back.
#[test]
fn sigterm_of_a_leader_fails_no_acks_all_send() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use rdkafka::producer::FutureRecord;

    let mut cluster = start_cluster("auto.leader.rebalance.enable=false");
    cluster.create("steady", "1", &["min.insync.replicas=2"]);
    let full = cluster.wait_for_partition("a full ISR", "steady", 0, |line| line.isr.len() == 3);
    let leader = leader_id(&full).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let enqueued = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (stop, enqueued) = (Arc::clone(&stop), Arc::clone(&enqueued));
        let bootstrap = cluster.bootstrap();
        std::thread::spawn(move || {
            let producer = broker_support::producer(&bootstrap, "all");
            let mut deliveries = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let value = format!("m{}", deliveries.len());
                let record = FutureRecord::<(), _>::to("steady")
                    .payload(&value)
                    .partition(0);
                deliveries.push((value.clone(), producer.send_result(record).unwrap()));
                enqueued.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
            deliveries
                .into_iter()
                .map(
                    |(value, delivery)| match futures::executor::block_on(delivery) {
                        Ok(Ok(delivered)) => Ok((value, delivered.offset)),
                        Ok(Err((error, _))) => Err(format!("{value}: {error}")),
                        Err(canceled) => Err(format!("{value}: {canceled}")),
                    },
                )
                .collect::<Vec<_>>()
        })
    };
    let wait_enqueued = |at_least: usize| {
        wait_for("sends to go out", ELECTION_TIMEOUT, POLL, || {
            (enqueued.load(Ordering::SeqCst) >= at_least).then_some(())
        })
        .unwrap();
    };
    wait_enqueued(200);
    assert!(cluster.broker(leader).terminate(), "exited by itself");
    let output = cluster.broker(leader).output();
    assert!(output.contains("Controlled shutdown succeeded"), "{output}");
    let after = enqueued.load(Ordering::SeqCst);
    wait_enqueued(after + 200);
    stop.store(true, Ordering::SeqCst);
    let results = sender.join().unwrap();
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "failed sends: {failed:?}");
    let acked: Vec<(String, i64)> = results.into_iter().filter_map(Result::ok).collect();
    let read = consume_all(&cluster.bootstrap(), "steady", 0, records_through(&acked));
    let read_at: std::collections::HashMap<i64, &str> = read
        .iter()
        .map(|(value, offset)| (*offset, value.as_str()))
        .collect();
    for (value, offset) in &acked {
        assert_eq!(
            read_at.get(offset).copied(),
            Some(value.as_str()),
            "{value} lost"
        );
    }
}

/// KIP-207: a leader just elected holds records its predecessor appended that it cannot count
/// as committed until a follower fetches from it, so its high watermark is below the start of
/// its epoch. Until it catches up, a client's ListOffsets gets OFFSET_NOT_AVAILABLE (Kafka's
/// answer), not that lower high watermark, which a reader would take for the end of what was
/// committed; once the follower fetches, the latest offset covers every record.
#[test]
fn a_new_leader_answers_offset_not_available_until_its_high_watermark_reaches_its_epoch() {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, ListOffsetsResponse};

    // A session the frozen follower outlives, so that it stays registered and in the ISR
    // (Kafka's default replica lag) while the new leader waits for it.
    let mut cluster = start_cluster(
        "auto.leader.rebalance.enable=false\nzookeeper.session.timeout.ms=6000\n\
         replica.lag.time.max.ms=30000",
    );
    cluster.create("kip207", "1", &[]);
    let full = cluster.wait_for_partition("a full ISR", "kip207", 0, |line| line.isr.len() == 3);
    let leader = leader_id(&full).unwrap();
    // The controller elects the first live ISR member in assignment order.
    let followers: Vec<i32> = full
        .replicas
        .iter()
        .copied()
        .filter(|id| *id != leader)
        .collect();
    let (successor, frozen) = (followers[0], followers[1]);
    cluster
        .broker(frozen)
        .process
        .as_mut()
        .unwrap()
        .pause()
        .unwrap();
    // acks=1: the leader and the successor have them; the frozen follower holds the high
    // watermark where it was.
    let acked = produce_all(&cluster.bootstrap(), "1", "kip207", 0, 50);
    // Nothing outside the brokers shows a follower's log end: give the successor several of
    // its fetches (replica.fetch.wait.max.ms=100) to take the records.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(cluster.broker(leader).terminate(), "exited by itself");
    cluster.wait_for_partition("the successor leading", "kip207", 0, |line| {
        leader_id(line) == Some(successor)
    });

    let latest = |stream: &mut std::net::TcpStream| {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("kip207")))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                    ]),
            ]);
        let response: ListOffsetsResponse = broker_support::raw::call(stream, 5, &request);
        let partition = &response.topics[0].partitions[0];
        (partition.error_code, partition.offset)
    };
    let mut stream = broker_support::raw::connect(&cluster.broker(successor).bootstrap());
    assert_eq!(
        latest(&mut stream).0,
        ResponseError::OffsetNotAvailable.code(),
        "the new leader's high watermark is behind its epoch; its log:\n{}",
        cluster.broker(successor).output()
    );

    cluster
        .broker(frozen)
        .process
        .as_mut()
        .unwrap()
        .resume()
        .unwrap();
    let end = records_through(&acked) as i64;
    wait_for(
        "the latest offset after the catch-up",
        ELECTION_TIMEOUT,
        POLL,
        || (latest(&mut stream) == (0, end)).then_some(()),
    )
    .unwrap_or_else(|error| panic!("{error}; last: {:?}", latest(&mut stream)));
}
