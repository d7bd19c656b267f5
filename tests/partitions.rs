//! Network partitions end to end, against real coordinators and brokers in network namespaces
//! of their own (needs root, `ip` and `nft`, as `.ci/setup` installs):
//! - the nemesis's grudges on a live cluster: during an `isolate` the isolated node cannot
//!   connect to another while the others can and clients (the root namespace) reach every node;
//!   `heal` restores it; `one-way` blocks one direction only; each is in the history;
//! - every partition workload matches its expectation with one seed;
//! - nothing of ours (namespace, veth, bridge, nft table, subnet lock) is left after a run, nor
//!   after a SIGKILL of the orchestrator followed by a new run or by `kchaos cleanup`;
//! - without root, a workload with partitions exits 2 saying why.
//!
//! Runs take turns (one cluster at a time), as in workloads_replicated.rs.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::cluster::config::{ClusterConfig, CommandTemplates, Layout};
use harness::cluster::process::NodeProcess;
use harness::cluster::{Cluster, metadata};
use harness::nemesis::partitions::grudge_for;
use harness::nemesis::{Nemesis, PartitionAim};
use harness::recorder::Recorder;
use harness::run::network::node_names;
use harness::wait::{wait_for, wait_for_async};
use harness::workload::Topology;
use history::{HistoryWriter, read_history};
use netfault::Network;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One cluster at a time.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `work` on a runtime of its own (the tests hold their turn outside of it).
fn in_runtime(work: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(work);
}

/// How long a connection attempt that a grudge drops is given before it counts as failed.
const BLOCKED_TIMEOUT: Duration = Duration::from_millis(700);
const REACHABLE_TIMEOUT: Duration = Duration::from_secs(5);

fn templates() -> CommandTemplates {
    let exe = env!("CARGO_BIN_EXE_kchaos").to_string();
    CommandTemplates {
        coordinator: [
            exe.as_str(),
            "coordinator",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--data-dir",
            "{data_dir}",
            "--tick-time-ms",
            "100",
        ]
        .map(String::from)
        .to_vec(),
        broker: [exe.as_str(), "broker", "--config", "{config}"]
            .map(String::from)
            .to_vec(),
    }
}

/// A TCP connection from inside `from`'s namespace (or the root namespace) to `to`.
fn connect(network: &Network, from: Option<&str>, to: SocketAddr, timeout: Duration) -> bool {
    let attempt = move || TcpStream::connect_timeout(&to, timeout).is_ok();
    match from {
        Some(node) => network.node(node).unwrap().run_in(attempt).unwrap(),
        None => attempt(),
    }
}

/// Every node's listening address (the coordinator's client port, each broker's listener).
fn listeners(cluster: &Cluster) -> BTreeMap<String, SocketAddr> {
    let mut listeners = BTreeMap::from([(
        "coordinator".to_string(),
        cluster.coordinator_address().parse().unwrap(),
    )]);
    for (index, address) in cluster.broker_addresses().iter().enumerate() {
        listeners.insert(format!("broker-{}", index + 1), address.parse().unwrap());
    }
    listeners
}

/// What of network `tag` exists on this machine: its namespaces, root links and lock files.
fn traces_of(tag: &str) -> Vec<String> {
    let names = |dir: &str| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut traces: Vec<String> = names("/run/netns")
        .into_iter()
        .filter(|name| name.starts_with(&format!("{tag}-")))
        .map(|name| format!("namespace {name}"))
        .collect();
    traces.extend(
        names("/sys/class/net")
            .into_iter()
            .filter(|name| name.starts_with(tag))
            .map(|name| format!("link {name}")),
    );
    for lock in names("/run/kchaos/netfault") {
        let path = format!("/run/kchaos/netfault/{lock}");
        if std::fs::read_to_string(&path).is_ok_and(|text| text.contains(tag)) {
            traces.push(format!("lock {path}"));
        }
    }
    // nft tables live in the node namespaces; none is ever made in the root namespace.
    if let Ok(output) = Command::new("nft").args(["list", "tables"]).output() {
        let tables = String::from_utf8_lossy(&output.stdout);
        if tables.contains(tag) {
            traces.push(format!("root nft table {tag}"));
        }
    }
    traces
}

/// A cluster of three real brokers and our coordinator, each in a network namespace of its own,
/// started; with its directory and network.
struct PartitionedCluster {
    dir: tempfile::TempDir,
    names: Vec<String>,
    network: Arc<Network>,
    tag: String,
    cluster: Arc<Mutex<Cluster>>,
}

impl PartitionedCluster {
    fn start(run_id: &str, session_timeout_ms: u64, broker_configs: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let names = node_names(3);
        let network = Arc::new(Network::create(run_id, &names).unwrap());
        let tag = network.tag().to_string();
        let mut cluster = Cluster::prepare_with_layout(
            &ClusterConfig {
                dir: dir.path().to_path_buf(),
                brokers: 3,
                session_timeout_ms,
                broker_configs: broker_configs
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.to_string()))
                    .collect(),
                templates: templates(),
            },
            &Layout {
                network: Some(Arc::clone(&network)),
                ..Layout::default()
            },
        )
        .unwrap();
        cluster.start_all().unwrap();
        PartitionedCluster {
            dir,
            names,
            network,
            tag,
            cluster: Arc::new(Mutex::new(cluster)),
        }
    }

    /// Stops every node, removes the network and checks nothing of it is left; returns the
    /// cluster's directory (history, logs), removed when dropped.
    fn stop(self, nemesis: Nemesis) -> tempfile::TempDir {
        lock(&self.cluster)
            .stop_all(Duration::from_secs(10))
            .unwrap();
        let detached = lock(&self.cluster).detach_network().unwrap();
        drop((self.cluster, nemesis, self.network));
        Arc::try_unwrap(detached).unwrap().teardown().unwrap();
        assert_eq!(traces_of(&self.tag), Vec::<String>::new(), "left behind");
        self.dir
    }
}

#[test]
fn grudges_cut_real_nodes_and_heal_restores_them() {
    let _turn = one_at_a_time();
    in_runtime(grudges_cut_real_nodes_and_heal_restores_them_on_a_cluster());
}

async fn grudges_cut_real_nodes_and_heal_restores_them_on_a_cluster() {
    let started = PartitionedCluster::start("test-grudges-on-a-cluster", 6000, &[]);
    let (names, network) = (&started.names, Arc::clone(&started.network));
    let (addresses, listeners) = {
        let cluster = lock(&started.cluster);
        (cluster.broker_addresses(), listeners(&cluster))
    };
    for (name, address) in &listeners {
        let namespace_address = network.node(name).unwrap().address();
        assert_eq!(address.ip(), std::net::IpAddr::V4(namespace_address));
    }
    wait_for_async(
        "three brokers in the metadata, from the root namespace",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            metadata::fetch(&addresses, None, Duration::from_secs(1))
                .await
                .ok()
                .filter(|metadata| metadata.brokers.len() == 3)
        },
    )
    .await
    .unwrap();
    let cluster = Arc::clone(&started.cluster);
    let history_path = started.dir.path().join("history.jsonl");
    let recorder = Recorder::new(HistoryWriter::create(&history_path).unwrap());
    let nemesis = Nemesis::new(Arc::clone(&cluster), recorder.clone());
    let rng = &mut ChaCha8Rng::seed_from_u64(1);

    // Isolate broker-2.
    let isolate = grudge_for(Topology::Isolate, names, &["broker-2".into()], None, rng).unwrap();
    let aim = PartitionAim {
        node: Some("broker-2".into()),
        why: "named".into(),
        topic_partition: None,
    };
    nemesis
        .partition(Topology::Isolate, isolate, &aim)
        .await
        .unwrap();
    let net = Arc::clone(&network);
    let probes = tokio::task::spawn_blocking(move || {
        (
            connect(
                &net,
                Some("broker-2"),
                listeners["broker-1"],
                BLOCKED_TIMEOUT,
            ),
            connect(
                &net,
                Some("broker-2"),
                listeners["coordinator"],
                BLOCKED_TIMEOUT,
            ),
            connect(
                &net,
                Some("broker-1"),
                listeners["broker-3"],
                REACHABLE_TIMEOUT,
            ),
            connect(
                &net,
                Some("broker-3"),
                listeners["coordinator"],
                REACHABLE_TIMEOUT,
            ),
            listeners
                .values()
                .all(|address| connect(&net, None, *address, REACHABLE_TIMEOUT)),
            listeners,
        )
    })
    .await
    .unwrap();
    let (isolated_out, isolated_to_coordinator, others, others_to_coordinator, clients, listeners) =
        probes;
    assert!(!isolated_out, "broker-2 must not reach broker-1");
    assert!(
        !isolated_to_coordinator,
        "broker-2 must not reach the coordinator"
    );
    assert!(others, "broker-1 still reaches broker-3");
    assert!(
        others_to_coordinator,
        "broker-3 still reaches the coordinator"
    );
    assert!(clients, "the root namespace reaches every node");
    // A client still reads the isolated broker's metadata.
    let isolated_metadata = metadata::fetch(
        &[listeners["broker-2"].to_string()],
        None,
        Duration::from_secs(2),
    )
    .await;
    assert!(isolated_metadata.is_ok(), "{isolated_metadata:?}");

    // Heal.
    nemesis.heal_network("test").await.unwrap();
    let net = Arc::clone(&network);
    let healed = tokio::task::spawn_blocking(move || {
        connect(
            &net,
            Some("broker-2"),
            listeners["broker-1"],
            REACHABLE_TIMEOUT,
        ) && connect(
            &net,
            Some("broker-1"),
            listeners["broker-2"],
            REACHABLE_TIMEOUT,
        )
    })
    .await
    .unwrap();
    assert!(healed, "heal restores broker-2's links");

    // One-way: broker-2 hears nothing from the others, but can still open connections.
    let one_way = grudge_for(Topology::OneWay, names, &["broker-2".into()], None, rng).unwrap();
    nemesis
        .partition(Topology::OneWay, one_way, &aim)
        .await
        .unwrap();
    let net = Arc::clone(&network);
    let listeners = self::listeners(&lock(&cluster));
    let (outgoing, incoming, from_root) = tokio::task::spawn_blocking(move || {
        (
            connect(
                &net,
                Some("broker-2"),
                listeners["broker-1"],
                REACHABLE_TIMEOUT,
            ),
            connect(
                &net,
                Some("broker-1"),
                listeners["broker-2"],
                BLOCKED_TIMEOUT,
            ),
            connect(&net, None, listeners["broker-2"], REACHABLE_TIMEOUT),
        )
    })
    .await
    .unwrap();
    assert!(outgoing, "broker-2 still connects to broker-1");
    assert!(!incoming, "broker-1 must not reach broker-2");
    assert!(from_root, "clients still reach broker-2");

    nemesis.heal_all("the end").await.unwrap();
    assert!(nemesis.current_grudge().is_empty());
    recorder.close().unwrap();
    drop((cluster, network));
    let _dir = started.stop(nemesis);

    let ops: Vec<_> = read_history(&history_path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let summary: Vec<(String, Option<String>)> = ops
        .iter()
        .filter(|op| op.op_type == history::OpType::Info)
        .map(|op| {
            (
                op.f.clone(),
                op.value["topology"].as_str().map(String::from),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("partition".to_string(), Some("isolate".to_string())),
            ("heal".to_string(), None),
            ("partition".to_string(), Some("one-way".to_string())),
            ("heal".to_string(), None),
        ]
    );
    assert_eq!(
        ops[0].value["grudge"]["broker-2"],
        serde_json::json!(["broker-1", "broker-3", "coordinator"])
    );
    assert_eq!(ops[3].value["what"], "network");
    assert_eq!(
        ops[7].value["healed"],
        serde_json::json!([["network", "heal"]])
    );
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One run: its exit code, its output, its run directory, and the store holding it (removed
/// when this is dropped).
struct Run {
    code: Option<i32>,
    text: String,
    dir: PathBuf,
    _store: tempfile::TempDir,
}

/// `kchaos workload NAME --seed 1 [--duration D]` in a fresh store.
fn run_workload(name: &str, duration: Option<&str>) -> Run {
    let _turn = one_at_a_time();
    let store = tempfile::tempdir().unwrap();
    let mut args = vec![
        "workload",
        name,
        "--seed",
        "1",
        "--no-progress",
        "--store",
        store.path().to_str().unwrap(),
    ];
    if let Some(duration) = duration {
        args.extend(["--duration", duration]);
    }
    let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = std::fs::canonicalize(store.path().join("latest"))
        .unwrap_or_else(|_| store.path().to_path_buf());
    Run {
        code: output.status.code(),
        text,
        dir,
        _store: store,
    }
}

/// The run's network tag, from its run.json.
fn network_tag(run_dir: &Path) -> Option<String> {
    let facts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).ok()?).ok()?;
    facts["network"]["tag"].as_str().map(String::from)
}

fn lost_count(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.split("lost: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse::<u64>().ok())
}

/// Runs a shipped partition workload whole and checks it matched its expectation, that it
/// really partitioned, and that its network is gone.
fn assert_matches_expectation(name: &str, loss_expected: bool) -> Run {
    let run = run_workload(name, None);
    let (code, text, run_dir) = (run.code, &run.text, &run.dir);
    assert_eq!(code, Some(0), "{name}:\n{text}");
    let lost = lost_count(text);
    if loss_expected {
        assert!(matches!(lost, Some(count) if count > 0), "{name}:\n{text}");
    } else {
        assert_eq!(lost, Some(0), "{name}:\n{text}");
        assert!(!text.contains("sends: 0 ok"), "{name}:\n{text}");
    }
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    let partitions = history
        .lines()
        .filter(|line| line.contains(r#""type":"info","f":"partition""#))
        .collect::<Vec<_>>();
    assert!(!partitions.is_empty(), "{name}: no partition happened");
    assert!(
        partitions
            .iter()
            .all(|line| line.contains(r#""grudge":{""#) && !line.contains(r#""error""#)),
        "{name}: {partitions:?}"
    );
    let tag = network_tag(run_dir).expect("run.json names the network");
    assert_eq!(traces_of(&tag), Vec::<String>::new(), "{name} left behind");
    run
}

/// How long the partition the first partition fault aimed at went without an acknowledged send
/// (its longest stretch until the next nemesis operation), from results.json.
fn unavailability_after_isolation_us(run_dir: &Path) -> Option<u64> {
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).ok()?).ok()?;
    results["faults"]
        .as_array()?
        .iter()
        .find(|fault| fault["f"] == "partition" && fault["partition"].is_number())
        .and_then(|fault| fault["longest-without-ok-send-us"].as_u64())
}

#[test]
fn an_isolated_acks1_leader_loses_what_it_acknowledged_alone() {
    assert_matches_expectation("partition-leader-acks1", true);
}

#[test]
fn an_isolated_acks_all_leader_acknowledges_nothing_it_cannot_commit() {
    let run = assert_matches_expectation("partition-leader-acks-all", false);
    // The leader's partition waits for a new leader (a session timeout, 3 s, and an election).
    let unavailable_us = unavailability_after_isolation_us(&run.dir).expect("figures");
    assert!(
        unavailable_us > 1_000_000,
        "t-0 went at most {unavailable_us} us without an acknowledged send after its leader \
         was isolated"
    );
}

#[test]
fn brokers_cut_from_the_coordinator_lose_nothing() {
    assert_matches_expectation("partition-coordinator", false);
}

#[test]
fn halves_bridge_and_ring_lose_nothing() {
    let run = assert_matches_expectation("partition-halves", false);
    let history = std::fs::read_to_string(run.dir.join("history.jsonl")).unwrap();
    for topology in ["halves", "bridge", "ring"] {
        assert!(
            history.contains(&format!(r#""topology":"{topology}""#)),
            "no {topology}"
        );
    }
}

#[test]
fn one_way_partitions_lose_nothing() {
    assert_matches_expectation("partition-one-way", false);
}

/// Starts `kchaos workload` on a partition workload and waits until its cluster runs (its
/// network is up and sends are acknowledged); returns the orchestrator and the run directory.
fn start_partition_run(dir: &Path) -> (NodeProcess, PathBuf) {
    let store = dir.join("store");
    let orchestrator = NodeProcess::spawn(
        "orchestrator",
        Path::new(env!("CARGO_BIN_EXE_kchaos")),
        &[
            "workload".into(),
            "partition-leader-acks-all".into(),
            "--duration".into(),
            "60s".into(),
            "--store".into(),
            store.display().to_string(),
        ],
        &[(
            "KCHAOS_WORKLOADS".into(),
            format!("{}/workloads", env!("CARGO_MANIFEST_DIR")),
        )],
        &dir.join("orchestrator.log"),
    )
    .unwrap();
    let run_dir = wait_for(
        "acknowledged sends in the history",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            let run_dir = std::fs::canonicalize(store.join("latest")).ok()?;
            let history = std::fs::read_to_string(run_dir.join("history.jsonl")).ok()?;
            (history.matches(r#""type":"ok","f":"send""#).count() > 20).then_some(run_dir)
        },
    )
    .unwrap_or_else(|error| {
        let log = std::fs::read_to_string(dir.join("orchestrator.log")).unwrap_or_default();
        panic!("{error}\norchestrator log:\n{log}")
    });
    (orchestrator, run_dir)
}

/// SIGKILLs a partition run's orchestrator mid-run; returns its network's tag, whose namespaces
/// and links are still there (the nodes are gone: PR_SET_PDEATHSIG).
fn kill_a_partition_run(dir: &Path) -> String {
    let (mut orchestrator, run_dir) = start_partition_run(dir);
    let tag = network_tag(&run_dir).expect("run.json names the network");
    orchestrator.kill().unwrap();
    let pids = harness::cluster::read_pid_log(&run_dir).unwrap();
    for (name, pid) in pids {
        wait_for(
            &format!("{name} (pid {pid}) to die"),
            Duration::from_secs(20),
            Duration::from_millis(20),
            || (!Path::new(&format!("/proc/{pid}")).exists()).then_some(()),
        )
        .unwrap();
    }
    let traces = traces_of(&tag);
    assert!(
        traces.iter().any(|trace| trace.starts_with("namespace")),
        "a SIGKILL'd run cannot clean up, so its namespaces stay: {traces:?}"
    );
    tag
}

fn kchaos(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        output.status.code(),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn what_a_killed_orchestrator_left_goes_with_the_next_run_or_kchaos_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let stale = {
        let _turn = one_at_a_time();
        kill_a_partition_run(dir.path())
    };
    let (code, listed) = kchaos(&["cleanup", "--dry-run"]);
    assert_eq!(code, Some(0), "{listed}");
    assert!(
        listed.contains(&format!("network: left network {stale}")),
        "{listed}"
    );
    assert!(!traces_of(&stale).is_empty(), "--dry-run removes nothing");

    // The next run with partitions sweeps it before making its own.
    let run = run_workload("partition-one-way", Some("2s"));
    assert_eq!(run.code, Some(0), "{}", run.text);
    assert_eq!(traces_of(&stale), Vec::<String>::new(), "{}", run.text);
    let own = network_tag(&run.dir).unwrap();
    assert_ne!(own, stale);
    assert_eq!(traces_of(&own), Vec::<String>::new());

    // And `kchaos cleanup` removes one too.
    let dir = tempfile::tempdir().unwrap();
    let stale = {
        let _turn = one_at_a_time();
        kill_a_partition_run(dir.path())
    };
    let (code, removed) = kchaos(&["cleanup"]);
    assert_eq!(code, Some(0), "{removed}");
    assert!(
        removed.contains(&format!("network: removed network {stale}")),
        "{removed}"
    );
    assert_eq!(traces_of(&stale), Vec::<String>::new());
}

#[test]
fn without_root_a_workload_with_partitions_exits_2_saying_why() {
    let store = tempfile::tempdir().unwrap();
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_kchaos"))
        .args([
            "workload",
            "partition-leader-acks1",
            "--no-progress",
            "--store",
            store.path().to_str().unwrap(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("partition-leader-acks1"), "{stderr}");
    assert!(stderr.contains("needs root"), "{stderr}");
    assert!(
        std::fs::read_dir(store.path()).unwrap().next().is_none(),
        "nothing was started or written"
    );
}

/// Fetch and OffsetsForLeaderEpoch for `t-0` from `address`, with `current_leader_epoch`, as a
/// follower (replica id 99) would send them: the two error codes.
async fn epoch_checks(address: &str, current_leader_epoch: i32) -> (i16, i16) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::{
        BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    let options = kafka_wire::Options::new("partition-test", Duration::from_secs(5));
    let mut client = kafka_wire::Client::connect_negotiated(address, &options)
        .await
        .unwrap();
    let topic = || TopicName(StrBytes::from_static_str("t"));
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(99))
        .with_max_wait_ms(0)
        .with_max_bytes(1024)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic())
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(current_leader_epoch)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1024),
                ]),
        ]);
    let (_, fetched) = client.request(12, &fetch).await.unwrap();
    let epochs = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(99))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(topic())
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(current_leader_epoch)
                        .with_leader_epoch(0),
                ]),
        ]);
    let (_, ended) = client.request(4, &epochs).await.unwrap();
    (
        fetched.responses[0].partitions[0].error_code,
        ended.topics[0].partitions[0].error_code,
    )
}

/// Kafka's error codes the fencing answers with.
const NONE: i16 = 0;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

#[test]
fn a_zombie_leader_and_its_successor_are_fenced_by_leader_epoch() {
    let _turn = one_at_a_time();
    in_runtime(a_zombie_leader_and_its_successor_are_fenced_by_leader_epoch_on_a_cluster());
}

async fn a_zombie_leader_and_its_successor_are_fenced_by_leader_epoch_on_a_cluster() {
    let started = PartitionedCluster::start(
        "test-kip-320-zombie",
        2000,
        &[
            ("replica.lag.time.max.ms", "1000"),
            ("auto.leader.rebalance.enable", "false"),
        ],
    );
    let names = &started.names;
    let addresses = lock(&started.cluster).broker_addresses();
    let configs = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
    let topic = harness::cluster::topic::NewTopic {
        name: "t",
        partitions: 1,
        replication_factor: 3,
        configs: &configs,
    };
    harness::cluster::topic::create_topic(&addresses, &topic, Duration::from_secs(60))
        .await
        .unwrap();
    let before = wait_for_async(
        "t-0 led with a full ISR",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            let metadata = metadata::fetch(&addresses, Some("t"), Duration::from_secs(1))
                .await
                .ok()?;
            let state = metadata.partition(0)?.clone();
            (state.leader.is_some() && state.isr.len() == 3).then_some(state)
        },
    )
    .await
    .unwrap();
    let zombie = before.leader.unwrap();
    let zombie_address = addresses[zombie as usize - 1].clone();
    let old_epoch = before.leader_epoch;
    let history_path = started.dir.path().join("history.jsonl");
    let recorder = Recorder::new(HistoryWriter::create(&history_path).unwrap());
    let nemesis = Nemesis::new(Arc::clone(&started.cluster), recorder.clone());

    // Cut the leader off from the coordinator only: its followers and clients still reach it.
    let zombie_name = format!("broker-{zombie}");
    let grudge = grudge_for(
        Topology::Isolate,
        names,
        std::slice::from_ref(&zombie_name),
        Some(&["coordinator".to_string()]),
        &mut ChaCha8Rng::seed_from_u64(1),
    )
    .unwrap();
    let aim = PartitionAim {
        node: Some(zombie_name.clone()),
        why: "leader of t-0, from the coordinator".into(),
        topic_partition: Some(0),
    };
    nemesis
        .partition(Topology::Isolate, grudge, &aim)
        .await
        .unwrap();
    let others: Vec<String> = addresses
        .iter()
        .filter(|address| **address != zombie_address)
        .cloned()
        .collect();
    let after = wait_for_async(
        "a new leader of t-0, elected once the zombie's session expired",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let metadata = metadata::fetch(&others, Some("t"), Duration::from_secs(1))
                .await
                .ok()?;
            let state = metadata.partition(0)?.clone();
            (state.leader.is_some_and(|leader| leader != zombie)).then_some(state)
        },
    )
    .await
    .unwrap();
    let successor = after.leader.unwrap();
    let successor_address = addresses[successor as usize - 1].clone();
    let new_epoch = after.leader_epoch;
    assert!(new_epoch > old_epoch, "{before:?} -> {after:?}");

    // The zombie has not heard of the election: a request with the new epoch is from its future.
    assert_eq!(
        epoch_checks(&zombie_address, new_epoch).await,
        (UNKNOWN_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH),
        "the zombie broker-{zombie} at epoch {old_epoch}, asked at {new_epoch}"
    );
    // The successor fences whoever still believes in the old epoch, and serves the new one.
    assert_eq!(
        epoch_checks(&successor_address, old_epoch).await,
        (FENCED_LEADER_EPOCH, FENCED_LEADER_EPOCH),
        "broker-{successor} at epoch {new_epoch}, asked at {old_epoch}"
    );
    assert_eq!(
        epoch_checks(&successor_address, new_epoch).await,
        (NONE, NONE)
    );

    // Once healed, the zombie registers again, learns it was replaced and follows.
    nemesis.heal_network("test").await.unwrap();
    let zombie_addresses = [zombie_address.clone()];
    wait_for_async(
        "the old leader to follow the new one",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let metadata = metadata::fetch(&zombie_addresses, Some("t"), Duration::from_secs(1))
                .await
                .ok()?;
            (metadata.partition(0)?.leader == Some(successor)).then_some(())
        },
    )
    .await
    .unwrap();
    let (fetch, _) = epoch_checks(&zombie_address, new_epoch).await;
    assert_eq!(fetch, NOT_LEADER_OR_FOLLOWER);

    recorder.close().unwrap();
    started.stop(nemesis);
}
