//! Broker failures the controller must ride out, on real processes (our coordinator, or
//! Apache ZooKeeper with `KCHAOS_TEST_COORDINATOR=zookeeper`; `kchaos broker`s; librdkafka and
//! kcat):
//! - a broker restarted at once after kill -9, while its previous registration still lives
//!   (a tick that raises the session, as ZooKeeper's defaults do), comes up and keeps every
//!   acknowledged message;
//! - a controller paused for most of its session keeps its role and still elects; a broker
//!   whose connection dropped that way still takes over when the controller dies;
//! - deleting `/controller` moves the role to exactly one broker;
//! - a follower killed (or stopped with SIGTERM) leaves every ISR when its registration goes,
//!   with Kafka's 30 s `replica.lag.time.max.ms`, so that acks=all sends succeed on the live
//!   replicas; restarted, it rejoins through the leaders' normal ISR expansion;
//! - a controller paused past its session gives up its role, registers again under a new
//!   session and rejoins the ISRs, and exactly one broker acts as the controller;
//! - a controller of an older epoch cannot write a partition state.
//!
//! The coordinator is read directly ([`Observer`]): it holds the states the brokers act on.
#![allow(clippy::unwrap_used)]

mod broker_support;

use std::process::Command;
use std::time::{Duration, Instant};

use broker_support::{
    TestBroker, TestCoordinator, bootstrap_of, produce_all, produce_to, start_brokers,
    start_coordinator, start_coordinator_with_tick,
};
use harness::wait::wait_for;
use kchaos::broker::partition::LeaderAndIsr;
use kchaos::broker::zk::{KafkaZkClient, PartitionStateJson, TopicRecord, ZkClientError};

const TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// A session of its own on the coordinator, to read what the brokers act on.
struct Observer {
    runtime: tokio::runtime::Runtime,
    coordinator: KafkaZkClient,
}

impl Observer {
    fn connect(coordinator: &TestCoordinator) -> Observer {
        // A worker thread keeps the session's pings going between calls.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let coordinator = runtime
            .block_on(KafkaZkClient::connect(
                &coordinator.connect_string(),
                Duration::from_secs(30),
                Duration::from_secs(30),
            ))
            .unwrap();
        Observer {
            runtime,
            coordinator,
        }
    }

    fn state(&self, topic: &str, partition: i32) -> Option<PartitionStateJson> {
        self.runtime
            .block_on(self.coordinator.partition_state(topic, partition))
            .ok()
            .flatten()
            .map(|(state, _)| state)
    }

    fn states(&self, topic: &str, partitions: i32) -> Vec<PartitionStateJson> {
        (0..partitions)
            .filter_map(|partition| self.state(topic, partition))
            .collect()
    }

    fn controller(&self) -> Option<i32> {
        self.runtime
            .block_on(self.coordinator.controller_id())
            .ok()
            .flatten()
    }

    fn live(&self) -> Vec<i32> {
        self.runtime
            .block_on(self.coordinator.live_broker_ids())
            .unwrap_or_default()
    }

    fn registration_owner(&self, broker_id: i32) -> Option<i64> {
        self.runtime
            .block_on(
                self.coordinator
                    .ephemeral_owner(&format!("/brokers/ids/{broker_id}")),
            )
            .ok()
            .flatten()
    }

    /// Waits until every partition of `topic` satisfies `condition`; returns the states.
    fn wait_for_states(
        &self,
        what: &str,
        topic: &str,
        partitions: i32,
        condition: impl Fn(&PartitionStateJson) -> bool,
    ) -> Vec<PartitionStateJson> {
        wait_for(what, TIMEOUT, POLL, || {
            let states = self.states(topic, partitions);
            (states.len() == partitions as usize && states.iter().all(&condition)).then_some(states)
        })
        .unwrap_or_else(|error| panic!("{error}; states: {:?}", self.states(topic, partitions)))
    }
}

/// A coordinator, brokers 1..=n and an observer.
struct Lab {
    coordinator: TestCoordinator,
    observer: Observer,
    brokers: Vec<TestBroker>,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// `count` brokers with `extra` server.properties lines on `coordinator`.
    fn start(coordinator: TestCoordinator, count: i32, extra: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let extra = format!(
            "replica.fetch.wait.max.ms=100\nauto.create.topics.enable=false\n\
             auto.leader.rebalance.enable=false\n{extra}"
        );
        let brokers = start_brokers(dir.path(), &coordinator, count, &extra);
        let observer = Observer::connect(&coordinator);
        Lab {
            coordinator,
            observer,
            brokers,
            _dir: dir,
        }
    }

    fn connect_string(&self) -> String {
        self.coordinator.connect_string()
    }

    fn broker(&mut self, id: i32) -> &mut TestBroker {
        self.brokers.iter_mut().find(|b| b.broker_id == id).unwrap()
    }

    fn bootstrap(&self) -> String {
        bootstrap_of(&self.brokers)
    }

    /// `kchaos topics --bootstrap-server <a running broker> args...`; (exit code, stdout).
    fn topics(&self, args: &[&str]) -> (Option<i32>, String) {
        let bootstrap = self.bootstrap();
        let first = bootstrap.split(',').next().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
            .args(["topics", "--bootstrap-server", first])
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    fn create(&self, topic: &str, partitions: i32, configs: &[&str]) {
        self.create_with_replication(topic, partitions, 3, configs);
    }

    fn create_with_replication(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &[&str],
    ) {
        let partitions = partitions.to_string();
        let replication_factor = replication_factor.to_string();
        let mut args = vec![
            "--create",
            "--topic",
            topic,
            "--partitions",
            &partitions,
            "--replication-factor",
            &replication_factor,
        ];
        for config in configs {
            args.extend_from_slice(&["--config", config]);
        }
        let (code, stdout) = self.topics(&args);
        assert_eq!(code, Some(0), "{stdout}");
    }

    /// Pauses broker `id` for `pause` (less than its session, more than its client's
    /// connection timeout, 2 s) and resumes it: it finds its connection silent, drops it and
    /// reconnects to its session. Unless an answer (a ping's) arrived during the pause and
    /// counted as traffic: then it pauses it again. Returns how many pauses it took.
    fn pause_until_reconnected(&mut self, id: i32, pause: Duration) -> usize {
        let reconnected = "coordinator session state: SyncConnected";
        let reconnects_before = self.broker(id).output().matches(reconnected).count();
        for pauses in 1..=5 {
            let process = self.broker(id).process.as_mut().unwrap();
            process.pause().unwrap();
            std::thread::sleep(pause);
            process.resume().unwrap();
            let dropped = wait_for(
                "the broker to reconnect",
                Duration::from_secs(2),
                POLL,
                || {
                    (self.broker(id).output().matches(reconnected).count() > reconnects_before)
                        .then_some(())
                },
            );
            if dropped.is_ok() {
                return pauses;
            }
        }
        panic!(
            "5 pauses of {pause:?}, no reconnection:\n{}",
            self.broker(id).output()
        );
    }

    /// The broker ids whose log says they act as the controller now: their last controller
    /// line is "successfully elected", not "Resigned".
    fn acting_controllers(&self) -> Vec<i32> {
        self.brokers
            .iter()
            .filter(|broker| {
                let output = broker.output();
                let elected = output.rfind("successfully elected as the controller");
                let resigned = output.rfind("Resigned as the controller");
                broker.process.is_some() && elected > resigned
            })
            .map(|broker| broker.broker_id)
            .collect()
    }
}

/// The broker's negotiated session timeout, from its own session on the same coordinator
/// with the same request.
fn negotiated_session(coordinator: &TestCoordinator, requested: Duration) -> Duration {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let session = KafkaZkClient::connect(&coordinator.connect_string(), requested, TIMEOUT)
            .await
            .unwrap();
        let negotiated = session.negotiated_session_timeout();
        session.close(Duration::from_secs(5)).await;
        negotiated
    })
}

/// kcat's `offset value` lines of `topic` partition 0, from the beginning to the end.
fn kcat_read(bootstrap: &str, topic: &str) -> Vec<(i64, String)> {
    let output = Command::new("kcat")
        .args(["-C", "-b", bootstrap, "-t", topic, "-p", "0"])
        .args(["-o", "beginning", "-e", "-q", "-f", "%o %s\n"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kcat: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (offset, value) = line.split_once(' ')?;
            Some((offset.parse().ok()?, value.to_string()))
        })
        .collect()
}

/// Kafka's defaults meet a coordinator with a long tick: the requested session is raised
/// (here 1000 ms to 2 ticks, 2000 ms) and expires up to a tick later. A broker restarted within
/// 300 ms of kill -9 finds its old registration still there, waits for it (saying so once)
/// and comes up, and kcat reads every acknowledged message. A sole replica's leader line
/// shows its high watermark at its log end.
#[test]
fn a_broker_restarted_right_after_kill_9_waits_for_its_old_registration_and_comes_up() {
    let coordinator = start_coordinator_with_tick(1000);
    let negotiated = negotiated_session(&coordinator, Duration::from_millis(1000));
    assert_eq!(
        negotiated,
        Duration::from_millis(2000),
        "the coordinator raises the session to 2 ticks"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(
        dir.path(),
        &coordinator,
        1,
        "zookeeper.session.timeout.ms=1000\nnum.partitions=1",
    );
    let acked = produce_all(&broker.bootstrap(), "all", "crash", 0, 300);
    assert_eq!(
        acked.len(),
        300,
        "every send before the crash is acknowledged"
    );

    let starts_before = broker.starts();
    broker.kill();
    let killed = Instant::now();
    broker.spawn();
    let respawned_after = killed.elapsed();
    assert!(
        respawned_after < Duration::from_millis(300),
        "restarted {respawned_after:?} after the kill"
    );
    broker.wait_started(starts_before);
    let up_after = killed.elapsed();
    assert!(
        broker.process.as_mut().unwrap().is_running().unwrap(),
        "the restarted broker exited:\n{}",
        broker.output()
    );
    let output = broker.output();
    let restarted = &output[output.rfind("listening on").unwrap()..];
    assert_eq!(
        restarted
            .matches("is still registered by another coordinator session")
            .count(),
        1,
        "it waits for the old registration and says so once:\n{restarted}"
    );
    assert!(!restarted.contains("already registered"), "{restarted}");
    eprintln!("kill -9, restart after {respawned_after:?}: up after {up_after:?}");

    // The sole replica leads from its log end: its high watermark is there, not 0.
    let leader_line = restarted
        .lines()
        .find(|line| line.contains("Leader crash-0 with leader epoch"))
        .unwrap_or_else(|| panic!("no leader line:\n{restarted}"));
    let end = acked.iter().map(|(_, offset)| offset + 1).max().unwrap();
    assert!(
        leader_line.contains(&format!("starts at offset {end}, high watermark {end}")),
        "{leader_line}"
    );

    let after = produce_all(&broker.bootstrap(), "all", "crash", 300, 20);
    assert_eq!(after.len(), 20, "the restarted broker takes writes");
    let read = kcat_read(&broker.bootstrap(), "crash");
    for (value, offset) in acked.iter().chain(&after) {
        assert!(
            read.contains(&(*offset, value.clone())),
            "acknowledged {value} at offset {offset} is not read back"
        );
    }
}

/// A controller paused (SIGSTOP) for 70% of its session loses its connection to the
/// coordinator but not its session: resumed, it still is the controller, and when another
/// broker that leads a partition is killed, that partition gets a new leader within the
/// session timeout plus a second. No other broker ever acted as controller.
#[test]
fn a_controller_paused_for_most_of_its_session_stays_the_controller_and_elects() {
    let session = Duration::from_millis(4000);
    // Kafka's replica.lag.time.max.ms: no ISR change (hence no watch event) reaches the
    // paused controller, so its client finds the connection silent and drops it on resume.
    let mut lab = Lab::start(
        start_coordinator(),
        3,
        "zookeeper.session.timeout.ms=4000\nreplica.lag.time.max.ms=30000",
    );
    lab.create("paused", 3, &[]);
    let states = lab
        .observer
        .wait_for_states("a full ISR", "paused", 3, |state| state.isr.len() == 3);
    let controller = lab.observer.controller().unwrap();
    let (partition, victim) = states
        .iter()
        .enumerate()
        .find(|(_, state)| state.leader != controller)
        .map(|(partition, state)| (partition as i32, state.leader))
        .unwrap();

    let pauses = lab.pause_until_reconnected(controller, session * 7 / 10);

    lab.broker(victim).kill();
    let killed = Instant::now();
    let elected = wait_for("a new leader", TIMEOUT, POLL, || {
        lab.observer
            .state("paused", partition)
            .filter(|state| state.leader >= 0 && state.leader != victim)
    })
    .unwrap();
    let elected_after = killed.elapsed();
    eprintln!(
        "controller paused {:?} ({pauses} times); partition {partition} led by killed broker \
         {victim}: new leader {} after {elected_after:?}",
        session * 7 / 10,
        elected.leader
    );
    assert!(
        elected_after <= session + Duration::from_secs(1),
        "new leader after {elected_after:?}; controller:\n{}",
        lab.broker(controller).output()
    );
    assert_eq!(lab.observer.controller(), Some(controller));
    let output = lab.broker(controller).output();
    assert!(
        !output.contains("Resigned as the controller"),
        "a lost connection is not a lost session:\n{output}"
    );
    assert!(
        output.contains(&format!(
            "[Controller id={controller}] Partition paused-{partition} state changed"
        )),
        "the paused controller elected:\n{output}"
    );
    assert_eq!(lab.acting_controllers(), vec![controller]);
    for broker in &lab.brokers {
        if broker.broker_id != controller {
            assert!(
                !broker
                    .output()
                    .contains("successfully elected as the controller"),
                "broker {} acted as controller too",
                broker.broker_id
            );
        }
    }
}

/// A broker whose connection to the coordinator dropped and came back (paused for most of its
/// session) still hears of `/controller` and the brokers going: when the controller is then
/// killed, it takes over within the session timeout plus a second and elects leaders for the
/// partitions the dead controller led. (The client library does not restore persistent
/// watches on reconnection; without adding them again it would wait forever.)
#[test]
fn a_broker_whose_connection_dropped_takes_over_when_the_controller_dies() {
    let session = Duration::from_millis(4000);
    let mut lab = Lab::start(
        start_coordinator(),
        2,
        "zookeeper.session.timeout.ms=4000\nreplica.lag.time.max.ms=30000",
    );
    lab.create_with_replication("takeover", 2, 2, &[]);
    let states = lab
        .observer
        .wait_for_states("a full ISR", "takeover", 2, |state| state.isr.len() == 2);
    let controller = lab.observer.controller().unwrap();
    let survivor = 3 - controller;
    let led: Vec<i32> = (0..2)
        .filter(|partition| states[*partition as usize].leader == controller)
        .collect();
    assert!(!led.is_empty(), "{states:?}");
    lab.pause_until_reconnected(survivor, session * 7 / 10);

    lab.broker(controller).kill();
    let killed = Instant::now();
    wait_for("the survivor to become controller", TIMEOUT, POLL, || {
        (lab.observer.controller() == Some(survivor)).then_some(())
    })
    .unwrap();
    let controller_after = killed.elapsed();
    for partition in &led {
        wait_for("a new leader", TIMEOUT, POLL, || {
            lab.observer
                .state("takeover", *partition)
                .filter(|state| state.leader == survivor)
        })
        .unwrap();
    }
    let leaders_after = killed.elapsed();
    eprintln!(
        "controller {controller} killed: broker {survivor}, reconnected before, controller after \
         {controller_after:?}, leads partitions {led:?} after {leaders_after:?}"
    );
    assert!(
        leaders_after <= session + Duration::from_secs(1),
        "took over after {leaders_after:?}:\n{}",
        lab.broker(survivor).output()
    );
}

/// With Kafka's 30 s replica.lag.time.max.ms, a follower killed with SIGKILL is out of every
/// ISR within its session timeout plus a second (the controller removes it when its
/// registration expires), and acks=all sends with min.insync.replicas=2 succeed on the two
/// live replicas. Restarted, it rejoins every ISR through the leaders' normal expansion;
/// stopped with SIGTERM, its controlled shutdown takes it out of every ISR at once.
#[test]
fn a_dead_follower_leaves_every_isr_when_its_session_expires() {
    let session = Duration::from_millis(2000);
    let mut lab = Lab::start(
        start_coordinator(),
        3,
        "zookeeper.session.timeout.ms=2000\nreplica.lag.time.max.ms=30000",
    );
    lab.create("isr", 3, &["min.insync.replicas=2"]);
    lab.observer
        .wait_for_states("a full ISR", "isr", 3, |state| state.isr.len() == 3);
    let controller = lab.observer.controller().unwrap();
    let victim = (1..=3).find(|id| *id != controller).unwrap();

    lab.broker(victim).kill();
    let killed = Instant::now();
    let states =
        lab.observer
            .wait_for_states("the killed broker out of every ISR", "isr", 3, |state| {
                !state.isr.contains(&victim)
            });
    let out_after = killed.elapsed();
    eprintln!("SIGKILL of broker {victim}: out of every ISR after {out_after:?}: {states:?}");
    assert!(
        out_after <= session + Duration::from_secs(1),
        "out of the ISRs after {out_after:?}"
    );
    assert!(
        states
            .iter()
            .all(|state| state.leader != victim && state.isr.len() == 2),
        "{states:?}"
    );
    let (code, under_replicated) = lab.topics(&[
        "--describe",
        "--topic",
        "isr",
        "--under-replicated-partitions",
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(under_replicated.lines().count(), 3, "{under_replicated}");

    let sent = Instant::now();
    for partition in 0..3 {
        let acked = produce_to(&lab.bootstrap(), "all", "isr", partition, 0, 20);
        assert_eq!(acked.len(), 20, "acks=all to partition {partition}");
    }
    eprintln!(
        "60 acks=all sends on two live replicas took {:?}",
        sent.elapsed()
    );

    lab.broker(victim).restart();
    let restarted = Instant::now();
    lab.observer.wait_for_states(
        "the restarted broker back in every ISR",
        "isr",
        3,
        |state| state.isr.contains(&victim),
    );
    eprintln!(
        "restarted broker {victim} back in every ISR after {:?}",
        restarted.elapsed()
    );

    assert!(lab.broker(victim).terminate(), "a clean stop");
    let stopped = Instant::now();
    lab.observer
        .wait_for_states("the stopped broker out of every ISR", "isr", 3, |state| {
            !state.isr.contains(&victim)
        });
    let out_after = stopped.elapsed();
    eprintln!("SIGTERM of broker {victim}: out of every ISR {out_after:?} after it exited");
    assert!(
        out_after <= Duration::from_secs(1),
        "out of the ISRs {out_after:?} after the controlled shutdown"
    );
    for partition in 0..3 {
        let acked = produce_to(&lab.bootstrap(), "all", "isr", partition, 20, 20);
        assert_eq!(acked.len(), 20, "acks=all to partition {partition}");
    }
}

/// A controller paused three times its session loses it: another broker becomes the
/// controller, leads its partitions and takes it out of the ISRs. Resumed, it notices the
/// expiry, resigns, registers again under a new session without exiting, and rejoins every
/// ISR; exactly one broker acts as the controller, the one `/controller` names.
#[test]
fn a_controller_paused_past_its_session_resigns_registers_again_and_rejoins() {
    let session = Duration::from_millis(1000);
    let mut lab = Lab::start(start_coordinator(), 3, "zookeeper.session.timeout.ms=1000");
    lab.create("expiry", 3, &["min.insync.replicas=2"]);
    lab.observer
        .wait_for_states("a full ISR", "expiry", 3, |state| state.isr.len() == 3);
    let paused = lab.observer.controller().unwrap();
    let old_registration = lab.observer.registration_owner(paused).unwrap();

    lab.broker(paused)
        .process
        .as_mut()
        .unwrap()
        .pause()
        .unwrap();
    let successor = wait_for("another controller", TIMEOUT, POLL, || {
        lab.observer.controller().filter(|id| *id != paused)
    })
    .unwrap();
    lab.observer
        .wait_for_states("the paused broker out of every ISR", "expiry", 3, |state| {
            state.leader >= 0 && state.leader != paused && !state.isr.contains(&paused)
        });
    std::thread::sleep(session * 3);
    let resigned_before = lab
        .broker(paused)
        .output()
        .matches("Resigned as the controller")
        .count();
    lab.broker(paused)
        .process
        .as_mut()
        .unwrap()
        .resume()
        .unwrap();
    let resumed = Instant::now();

    wait_for("the old controller to resign", TIMEOUT, POLL, || {
        (lab.broker(paused)
            .output()
            .matches("Resigned as the controller")
            .count()
            > resigned_before)
            .then_some(())
    })
    .unwrap();
    let registered = wait_for("a new registration", TIMEOUT, POLL, || {
        lab.observer
            .registration_owner(paused)
            .filter(|owner| *owner != old_registration)
    });
    assert!(
        registered.is_ok(),
        "not registered again:\n{}",
        lab.broker(paused).output()
    );
    lab.observer.wait_for_states(
        "the resumed broker back in every ISR",
        "expiry",
        3,
        |state| state.isr.contains(&paused),
    );
    eprintln!(
        "controller {paused} paused {:?} (session {session:?}): back in every ISR {:?} after \
         resuming; controller now {successor}",
        session * 3,
        resumed.elapsed()
    );
    assert!(
        lab.broker(paused)
            .process
            .as_mut()
            .unwrap()
            .is_running()
            .unwrap(),
        "the resumed broker exited:\n{}",
        lab.broker(paused).output()
    );
    assert!(lab.observer.live().contains(&paused));
    assert_eq!(lab.observer.controller(), Some(successor));
    assert_eq!(lab.acting_controllers(), vec![successor]);
    for partition in 0..3 {
        let acked = produce_to(&lab.bootstrap(), "all", "expiry", partition, 0, 10);
        assert_eq!(acked.len(), 10, "acks=all to partition {partition}");
    }
}

/// Deleting `/controller` (the operator's way to move the role) ends the term of the broker
/// that held it: the brokers race again, the winner bumps the controller epoch, and exactly
/// one broker acts as controller, the one `/controller` names; it elects a leader for a
/// partition whose leader is then killed.
#[test]
fn deleting_controller_moves_the_role_to_exactly_one_broker() {
    let session = Duration::from_millis(2000);
    let mut lab = Lab::start(start_coordinator(), 3, "zookeeper.session.timeout.ms=2000");
    lab.create("moved", 3, &[]);
    lab.observer
        .wait_for_states("a full ISR", "moved", 3, |state| state.isr.len() == 3);
    let epoch = |lab: &Lab| {
        lab.observer
            .runtime
            .block_on(lab.observer.coordinator.controller_epoch())
            .unwrap()
            .unwrap()
            .0
    };
    let first_epoch = epoch(&lab);
    let deleted = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args(["coord", &lab.connect_string(), "delete", "/controller"])
        .output()
        .unwrap();
    assert!(deleted.status.success(), "{deleted:?}");
    let controller = wait_for("a new controller term", TIMEOUT, POLL, || {
        let controller = lab.observer.controller()?;
        (epoch(&lab) > first_epoch && lab.acting_controllers() == vec![controller])
            .then_some(controller)
    })
    .unwrap_or_else(|error| panic!("{error}; acting: {:?}", lab.acting_controllers()));

    let states = lab.observer.states("moved", 3);
    let (partition, victim) = (0..3)
        .map(|partition| (partition, states[partition as usize].leader))
        .find(|(_, leader)| *leader != controller)
        .unwrap();
    lab.broker(victim).kill();
    let killed = Instant::now();
    wait_for("a new leader", TIMEOUT, POLL, || {
        lab.observer
            .state("moved", partition)
            .filter(|state| state.leader >= 0 && state.leader != victim)
    })
    .unwrap();
    assert!(killed.elapsed() <= session + Duration::from_secs(1));
    assert_eq!(lab.acting_controllers(), vec![controller]);
}

/// Every controller write is a multi-op that checks the version of `/controller_epoch`: once
/// a newer controller bumped it, the older one's write fails with ControllerMoved and the
/// state stays as it was.
#[test]
fn a_stale_controllers_partition_state_write_is_fenced() {
    let coordinator = start_coordinator();
    let observer = Observer::connect(&coordinator);
    let session = &observer.coordinator;
    let record = TopicRecord {
        name: "fenced".to_string(),
        partitions: [(
            0,
            LeaderAndIsr {
                leader: 1,
                leader_epoch: 0,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2, 3],
                elr: vec![],
                controller_epoch: 0,
                zk_version: -1,
            },
        )]
        .into_iter()
        .collect(),
        config: Default::default(),
    };
    observer
        .runtime
        .block_on(async {
            let (_, stale_version) = session.increment_controller_epoch().await?;
            session.create_topic(&record).await?;
            let (_, state_version) = session.partition_state("fenced", 0).await?.unwrap();
            let (epoch, current_version) = session.increment_controller_epoch().await?;
            let write = |controller_epoch: i32, leader: i32| PartitionStateJson {
                controller_epoch,
                leader,
                version: 1,
                leader_epoch: 1,
                isr: vec![leader],
                elr: vec![],
            };
            let stale = session
                .controller_write_partition_state(
                    "fenced",
                    0,
                    &write(epoch - 1, 2),
                    state_version,
                    stale_version,
                )
                .await;
            assert!(
                matches!(stale, Err(ZkClientError::ControllerMoved)),
                "{stale:?}"
            );
            let (unchanged, version) = session.partition_state("fenced", 0).await?.unwrap();
            assert_eq!((unchanged.leader, version), (1, state_version));
            session
                .controller_write_partition_state(
                    "fenced",
                    0,
                    &write(epoch, 3),
                    state_version,
                    current_version,
                )
                .await?;
            let (written, _) = session.partition_state("fenced", 0).await?.unwrap();
            assert_eq!(written.leader, 3);
            Ok::<(), ZkClientError>(())
        })
        .unwrap();
}
