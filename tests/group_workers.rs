//! Consumer group members as client workers (docs/client-protocol.md), both shipped ones —
//! `kchaos client` (rdkafka) and the Python worker (confluent-kafka) — against a real
//! coordinator and broker, driven request by request as the harness drives them. What the
//! checker relies on: a poll stops at a rebalance, so a reply's records come before its
//! rebalances; a member's revocation is reported before the assignment that follows; an
//! assignment reports the group's committed offsets, and the member's first read of each
//! partition is at exactly that offset (the log start where none is committed); a member
//! SIGKILLed (no LeaveGroup) loses its partitions to the others once its session times out,
//! with the offsets it committed.
#![allow(clippy::unwrap_used)]

mod broker_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_support::{TestBroker, create_topic, produce_to, start_brokers, start_coordinator};
use harness::clients::group_member::GroupMemberSettings;
use harness::clients::launch::PYTHON_WORKER;
use harness::clients::protocol::{Operation, Outcome, Rebalance, Reply, Role};
use harness::clients::worker::{CrashHook, ProcessFault, Worker, WorkerCommand};

const GROUP_SETTINGS: &str = "offsets.topic.num.partitions=3\n\
                              offsets.topic.replication.factor=1\n\
                              group.initial.rebalance.delay.ms=0\n\
                              group.min.session.timeout.ms=500\n";
const TOPIC: &str = "t";
const RECORDS_PER_PARTITION: usize = 30;
const CONVERGE: Duration = Duration::from_secs(60);

/// What one member saw, reply after reply: records and rebalances in the order they came.
#[derive(Default)]
struct Seen {
    events: Vec<Event>,
}

/// Per partition of one assignment: the committed offset it reported, the first offset read.
type Starts = BTreeMap<i32, (Option<i64>, Option<i64>)>;

#[derive(Debug, Clone)]
enum Event {
    Record(i32, i64),
    Rebalance(Rebalance),
}

impl Seen {
    fn take(&mut self, reply: Reply) {
        assert_eq!(reply.outcome, Outcome::Ok, "{reply:?}");
        for (partition, offset, _) in reply.records.unwrap_or_default() {
            self.events.push(Event::Record(partition, offset));
        }
        for rebalance in reply.rebalances.unwrap_or_default() {
            self.events.push(Event::Rebalance(rebalance));
        }
    }

    /// The partitions held after the last rebalance.
    fn held(&self) -> BTreeSet<i32> {
        let mut held = BTreeSet::new();
        for event in &self.events {
            if let Event::Rebalance(rebalance) = event {
                for partition in rebalance.revoked.iter().flatten() {
                    held.remove(partition);
                }
                if let Some(given) = &rebalance.assigned {
                    held = given.iter().copied().collect();
                }
            }
        }
        held
    }

    /// Checks the rules and returns, per assignment (in order), the partitions given with the
    /// committed offsets reported and the first offset read of each.
    fn assignments(&self) -> Vec<Starts> {
        let mut assignments: Vec<Starts> = Vec::new();
        let mut held: BTreeSet<i32> = BTreeSet::new();
        for event in &self.events {
            match event {
                Event::Rebalance(rebalance) => {
                    assert!(
                        rebalance.revoked.is_some() != rebalance.assigned.is_some(),
                        "one rebalance at a time: {rebalance:?}"
                    );
                    for partition in rebalance.revoked.iter().flatten() {
                        held.remove(partition);
                    }
                    if let Some(given) = &rebalance.assigned {
                        assert!(held.is_empty(), "an eager assignment follows a revocation");
                        let committed = rebalance
                            .committed
                            .clone()
                            .unwrap_or_else(|| panic!("no committed offsets: {rebalance:?}"));
                        held = given.iter().copied().collect();
                        assignments.push(
                            given
                                .iter()
                                .map(|partition| {
                                    let at = committed
                                        .iter()
                                        .find(|(p, _)| p == partition)
                                        .map(|(_, offset)| *offset);
                                    (*partition, (at, None))
                                })
                                .collect(),
                        );
                    }
                }
                Event::Record(partition, offset) => {
                    assert!(
                        held.contains(partition),
                        "a record of partition {partition} (offset {offset}) read while it was not held: {:?}",
                        self.events
                    );
                    let current = assignments.last_mut().unwrap();
                    let first = &mut current.get_mut(partition).unwrap().1;
                    first.get_or_insert(*offset);
                }
            }
        }
        assignments
    }
}

struct Member {
    worker: Worker,
    seen: Seen,
}

impl Member {
    async fn start(command: &WorkerCommand, process: u64, group: &str, bootstrap: &str) -> Self {
        let settings = GroupMemberSettings {
            bootstrap_servers: bootstrap.to_string(),
            topic: TOPIC.into(),
            group: group.into(),
            session_timeout_ms: 1000,
            heartbeat_interval_ms: 200,
            max_poll_interval_ms: 10_000,
        };
        let hook: CrashHook = Arc::new(|_| {});
        let worker = Worker::start(
            &format!("client-{process}"),
            command,
            process,
            Role::Consumer,
            settings.config(process),
            hook,
            |_| {},
        )
        .await
        .unwrap();
        let member = Member {
            worker,
            seen: Seen::default(),
        };
        let subscribed = member
            .ask(Operation::Subscribe {
                topics: vec![TOPIC.into()],
            })
            .await;
        assert_eq!(subscribed.outcome, Outcome::Ok, "{subscribed:?}");
        member
    }

    async fn ask(&self, operation: Operation) -> Reply {
        self.worker
            .submit(operation, Duration::from_secs(30))
            .await
            .await
            .unwrap()
    }

    async fn poll(&mut self) {
        let reply = self
            .ask(Operation::Poll {
                max_records: 7,
                timeout_ms: 100,
            })
            .await;
        self.seen.take(reply);
    }

    async fn commit(&self, offsets: Vec<(i32, i64)>) {
        let reply = self
            .ask(Operation::Commit {
                topic: TOPIC.into(),
                offsets: Some(offsets),
            })
            .await;
        assert_eq!(reply.outcome, Outcome::Ok, "{reply:?}");
    }
}

/// Polls every member until `done` holds of them.
async fn poll_until(
    members: &mut [&mut Member],
    what: &str,
    done: impl Fn(&[&mut Member]) -> bool,
) {
    let deadline = Instant::now() + CONVERGE;
    while !done(members) {
        assert!(Instant::now() < deadline, "never: {what}");
        for member in members.iter_mut() {
            member.poll().await;
        }
    }
}

/// Reads of partition `partition` since its last assignment, in order.
fn reads_since_assignment(seen: &Seen, partition: i32) -> Vec<i64> {
    let mut reads = Vec::new();
    for event in &seen.events {
        match event {
            Event::Rebalance(rebalance) if rebalance.assigned.is_some() => reads.clear(),
            Event::Record(p, offset) if *p == partition => reads.push(*offset),
            _ => {}
        }
    }
    reads
}

async fn a_group_of_workers_rebalances_by_the_rules(command: WorkerCommand, group: &str) {
    let coordinator = start_coordinator();
    let dir = tempfile::tempdir().unwrap();
    let brokers: Vec<TestBroker> = start_brokers(dir.path(), &coordinator, 1, GROUP_SETTINGS);
    let bootstrap = brokers[0].bootstrap();
    create_topic(&bootstrap, TOPIC, 2, 1);
    for partition in 0..2 {
        produce_to(
            &bootstrap,
            "all",
            TOPIC,
            partition,
            0,
            RECORDS_PER_PARTITION,
        );
    }

    // One member: both partitions, nothing committed, read from the log start.
    let mut first = Member::start(&command, 1, group, &bootstrap).await;
    poll_until(
        &mut [&mut first],
        "the first member holds both partitions",
        |members| {
            members[0].seen.held().len() == 2
                && (0..2).all(|p| reads_since_assignment(&members[0].seen, p).len() >= 12)
        },
    )
    .await;
    let assignments = first.seen.assignments();
    assert_eq!(assignments.len(), 1, "{:?}", first.seen.events);
    assert_eq!(
        assignments[0],
        BTreeMap::from([(0, (None, Some(0))), (1, (None, Some(0)))]),
        "nothing committed: both read from the log start"
    );
    // It commits less than it read: a new owner must start there, not where it got to.
    first.commit(vec![(0, 10), (1, 7)]).await;

    // A second member joins: the first gives up everything, then each gets one partition at
    // the committed offset.
    let mut second = Member::start(&command, 2, group, &bootstrap).await;
    poll_until(
        &mut [&mut first, &mut second],
        "each member holds one partition",
        |members| members.iter().all(|member| member.seen.held().len() == 1),
    )
    .await;
    for member in [&mut first, &mut second] {
        let partition = *member.seen.held().iter().next().unwrap();
        poll_until(
            &mut [&mut *member],
            "a read after the rebalance",
            |members| !reads_since_assignment(&members[0].seen, partition).is_empty(),
        )
        .await;
        let at = if partition == 0 { 10 } else { 7 };
        let last = member.seen.assignments().pop().unwrap();
        assert_eq!(
            last.get(&partition),
            Some(&(Some(at), Some(at))),
            "the assignment reports the committed offset and the first read is there: {:?}",
            member.seen.events
        );
    }
    let revoked_first = first.seen.events.iter().position(
        |event| matches!(event, Event::Rebalance(r) if r.revoked.as_ref().is_some_and(|p| p.len() == 2)),
    );
    let assigned_again = first.seen.events.iter().rposition(
        |event| matches!(event, Event::Rebalance(r) if r.assigned.as_ref().is_some_and(|p| p.len() == 1)),
    );
    assert!(
        revoked_first.is_some() && revoked_first < assigned_again,
        "revoked before assigned: {:?}",
        first.seen.events
    );

    // The second commits three further and is SIGKILLed: no LeaveGroup, so the first gets its
    // partition back only when its session times out, at what it committed.
    let taken = *second.seen.held().iter().next().unwrap();
    let committed = if taken == 0 { 13 } else { 10 };
    second.commit(vec![(taken, committed)]).await;
    second.worker.fault(ProcessFault::Kill).unwrap();
    let mut death = second.worker.death();
    let cause = tokio::time::timeout(Duration::from_secs(10), death.wait_for(Option::is_some))
        .await
        .unwrap()
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(cause, "SIGKILL by the nemesis");
    poll_until(
        &mut [&mut first],
        "the survivor holds both again",
        |members| {
            members[0].seen.held().len() == 2
                && !reads_since_assignment(&members[0].seen, taken).is_empty()
        },
    )
    .await;
    let last = first.seen.assignments().pop().unwrap();
    assert_eq!(
        last.get(&taken),
        Some(&(Some(committed), Some(committed))),
        "{:?}",
        first.seen.events
    );
    first.worker.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_workers_rebalance_by_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let command = WorkerCommand {
        program: env!("CARGO_BIN_EXE_kchaos").into(),
        args: vec!["client".into()],
        envs: Vec::new(),
        log_path: dir.path().join("client.log"),
    };
    a_group_of_workers_rebalances_by_the_rules(command, "g-rdkafka").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_workers_rebalance_by_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("kchaos_worker.py");
    std::fs::write(&script, PYTHON_WORKER).unwrap();
    let command = WorkerCommand {
        program: "python3".into(),
        args: vec!["-u".into(), script.display().to_string()],
        envs: Vec::new(),
        log_path: dir.path().join("client.log"),
    };
    a_group_of_workers_rebalances_by_the_rules(command, "g-python").await;
}
