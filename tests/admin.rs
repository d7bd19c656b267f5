//! `kchaos topics`, `configs` and `elect` against a `kchaos cluster up --brokers 1`: the
//! printed lines, Kafka's errors, usage errors and an unreachable broker.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use harness::cluster::process::NodeProcess;
use harness::wait::wait_for;

const KCHAOS: &str = env!("CARGO_BIN_EXE_kchaos");
/// How long one CLI command may take before the test kills it and fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What one command did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `kchaos args...` to the end (killed and failed after COMMAND_TIMEOUT).
fn kchaos(args: &[&str]) -> Run {
    let child = Command::new(KCHAOS)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match outcome.recv_timeout(COMMAND_TIMEOUT) {
        Ok(output) => {
            let output = output.unwrap();
            Run {
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        }
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("kchaos {args:?} did not finish within {COMMAND_TIMEOUT:?}");
        }
    }
}

/// A `kchaos cluster up --brokers 1` for one test, stopped (SIGTERM, which stops its
/// children) when dropped, even when the test fails.
struct TestCluster {
    process: NodeProcess,
    bootstrap: String,
    _root: tempfile::TempDir,
}

impl TestCluster {
    fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let output = root.path().join("cluster-up.out");
        let ports = harness::cluster::ports::free_loopback_ports(2).unwrap();
        let args: Vec<String> = [
            "cluster",
            "up",
            "--brokers",
            "1",
            "--dir",
            &root.path().join("cluster").display().to_string(),
            "--base-port",
            &ports[0].to_string(),
            "--coordinator-port",
            &ports[1].to_string(),
        ]
        .map(String::from)
        .to_vec();
        let process = NodeProcess::spawn(
            "cluster-up",
            Path::new(KCHAOS),
            &args,
            &[("NO_COLOR".into(), "1".into())],
            &output,
        )
        .unwrap();
        let text = wait_for(
            "cluster up",
            Duration::from_secs(90),
            Duration::from_millis(100),
            || {
                std::fs::read_to_string(&output)
                    .ok()
                    .filter(|text| text.contains("Cluster up:") || text.contains("error:"))
            },
        )
        .unwrap();
        let bootstrap = text
            .lines()
            .find_map(|line| line.strip_prefix("Bootstrap servers: "))
            .unwrap_or_else(|| panic!("no bootstrap line in {text}"))
            .to_string();
        TestCluster {
            process,
            bootstrap,
            _root: root,
        }
    }

    /// `kchaos <name> --bootstrap-server <this cluster> args...`.
    fn tool(&self, name: &str, args: &[&str]) -> Run {
        let mut all = vec![name, "--bootstrap-server", self.bootstrap.as_str()];
        all.extend_from_slice(args);
        kchaos(&all)
    }

    /// A topic of 3 partitions, replication factor 1.
    fn create(&self, topic: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "--create",
            "--topic",
            topic,
            "--partitions",
            "3",
            "--replication-factor",
            "1",
        ];
        args.extend_from_slice(extra);
        self.tool("topics", &args)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = self.process.terminate(Duration::from_secs(30));
    }
}

#[test]
fn topics_create_describe_list_delete() {
    let cluster = TestCluster::start();
    let created = cluster.create("orders", &["--config", "retention.ms=1234"]);
    assert_eq!(created.code, Some(0), "{created:?}");
    assert_eq!(created.stdout, "Created topic orders.\n");

    let described = cluster.tool("topics", &["--describe", "--topic", "orders"]);
    assert_eq!(described.code, Some(0), "{described:?}");
    let lines: Vec<&str> = described.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{described:?}");
    assert!(lines[0].starts_with("Topic: orders\t"), "{}", lines[0]);
    // Only the topic's own overrides, as kafka-topics: not what it takes from the broker.
    assert!(
        lines[0].ends_with("\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: retention.ms=1234"),
        "{}",
        lines[0]
    );
    for (partition, line) in lines[1..].iter().enumerate() {
        assert_eq!(
            *line,
            format!("\tTopic: orders\tPartition: {partition}\tLeader: 1\tReplicas: 1\tIsr: 1")
        );
    }

    let listed = cluster.tool("topics", &["--list"]);
    assert_eq!(listed.code, Some(0), "{listed:?}");
    assert!(
        listed.stdout.lines().any(|line| line == "orders"),
        "{listed:?}"
    );

    let deleted = cluster.tool("topics", &["--delete", "--topic", "orders"]);
    assert_eq!(deleted.code, Some(0), "{deleted:?}");
    wait_for(
        "orders to leave the list",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let listed = cluster.tool("topics", &["--list"]);
            (listed.code == Some(0) && !listed.stdout.lines().any(|line| line == "orders"))
                .then_some(())
        },
    )
    .unwrap();
    let missing = cluster.tool("topics", &["--describe", "--topic", "orders"]);
    assert_eq!(missing.code, Some(1), "{missing:?}");
    assert_eq!(
        missing.stderr,
        "Error while executing topic command : Topic 'orders' does not exist as expected\n"
    );
    let tolerated = cluster.tool(
        "topics",
        &["--describe", "--topic", "orders", "--if-exists"],
    );
    assert_eq!(tolerated.code, Some(0), "{tolerated:?}");
}

#[test]
fn creating_a_topic_twice_is_topic_already_exists() {
    let cluster = TestCluster::start();
    assert_eq!(cluster.create("twice", &[]).code, Some(0));
    let again = cluster.create("twice", &[]);
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(
        again
            .stderr
            .starts_with("Error while executing topic command : TOPIC_ALREADY_EXISTS"),
        "{again:?}"
    );
    assert_eq!(cluster.create("twice", &["--if-not-exists"]).code, Some(0));
}

#[test]
fn replication_factor_above_the_brokers_is_invalid_replication_factor() {
    let cluster = TestCluster::start();
    let run = cluster.tool(
        "topics",
        &[
            "--create",
            "--topic",
            "wide",
            "--partitions",
            "1",
            "--replication-factor",
            "3",
        ],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .starts_with("Error while executing topic command : INVALID_REPLICATION_FACTOR: "),
        "{run:?}"
    );
    assert!(run.stdout.is_empty(), "{run:?}");
}

#[test]
fn creating_with_an_unknown_or_bad_config_is_invalid_config() {
    let cluster = TestCluster::start();
    let unknown = cluster.create("configured", &["--config", "no.such.config=1"]);
    assert_eq!(unknown.code, Some(1), "{unknown:?}");
    assert!(
        unknown.stderr.starts_with(
            "Error while executing topic command : INVALID_CONFIG: Unknown topic config name: \
             no.such.config"
        ),
        "{unknown:?}"
    );
    let bad = cluster.create("configured", &["--config", "retention.ms=soon"]);
    assert_eq!(bad.code, Some(1), "{bad:?}");
    assert!(bad.stderr.contains("INVALID_CONFIG"), "{bad:?}");
    let listed = cluster.tool("topics", &["--list"]);
    assert!(
        !listed.stdout.lines().any(|line| line == "configured"),
        "{listed:?}"
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    let unknown = kchaos(&[
        "topics",
        "--bootstrap-server",
        "127.0.0.1:1",
        "--list",
        "--bogus",
    ]);
    assert_eq!(unknown.code, Some(2), "{unknown:?}");
    assert!(unknown.stderr.contains("'--bogus'"), "{unknown:?}");
    let no_action = kchaos(&["topics", "--bootstrap-server", "127.0.0.1:1"]);
    assert_eq!(no_action.code, Some(2), "{no_action:?}");
    assert!(no_action.stderr.contains("Usage:"), "{no_action:?}");
    let zero = kchaos(&[
        "topics",
        "--bootstrap-server",
        "127.0.0.1:1",
        "--create",
        "--topic",
        "t",
        "--partitions",
        "0",
    ]);
    assert_eq!(zero.code, Some(2), "{zero:?}");
    let no_partition = kchaos(&[
        "elect",
        "--bootstrap-server",
        "127.0.0.1:1",
        "--election-type",
        "preferred",
        "--topic",
        "t",
    ]);
    assert_eq!(no_partition.code, Some(2), "{no_partition:?}");
    let bad_add = kchaos(&[
        "configs",
        "--bootstrap-server",
        "127.0.0.1:1",
        "--topic",
        "t",
        "--alter",
        "--add-config",
        "retention.ms",
    ]);
    assert_eq!(bad_add.code, Some(2), "{bad_add:?}");
    assert!(bad_add.stderr.contains("key=val"), "{bad_add:?}");
}

#[test]
fn a_broker_that_is_down_is_named() {
    let port = harness::cluster::ports::free_loopback_port().unwrap();
    let address = format!("127.0.0.1:{port}");
    let run = kchaos(&["topics", "--bootstrap-server", &address, "--list"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains(&format!("cannot connect to {address}")),
        "{run:?}"
    );
}

#[test]
fn configs_describe_shows_the_topic_overrides() {
    let cluster = TestCluster::start();
    assert_eq!(
        cluster
            .create("described", &["--config", "min.insync.replicas=1"])
            .code,
        Some(0)
    );
    let dynamic = cluster.tool(
        "configs",
        &[
            "--entity-type",
            "topics",
            "--entity-name",
            "described",
            "--describe",
        ],
    );
    assert_eq!(dynamic.code, Some(0), "{dynamic:?}");
    assert_eq!(
        dynamic.stdout,
        "Dynamic configs for topic described are:\n  min.insync.replicas=1 sensitive=false synonyms={}\n"
    );
    let all = cluster.tool("configs", &["--topic", "described", "--describe", "--all"]);
    assert_eq!(all.code, Some(0), "{all:?}");
    assert!(
        all.stdout
            .starts_with("All configs for topic described are:\n"),
        "{all:?}"
    );
    assert!(
        all.stdout
            .lines()
            .any(|line| line.starts_with("  unclean.leader.election.enable=")),
        "{all:?}"
    );
    assert!(
        all.stdout
            .lines()
            .any(|line| line.starts_with("  retention.ms=604800000 ")),
        "Kafka's defaults are listed too: {all:?}"
    );
    let unknown = cluster.tool("configs", &["--topic", "no-such-topic", "--describe"]);
    assert_eq!(unknown.code, Some(1), "{unknown:?}");
    assert!(
        unknown.stderr.contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{unknown:?}"
    );
}

#[test]
fn deleting_a_config_that_is_not_set_is_refused() {
    let cluster = TestCluster::start();
    assert_eq!(cluster.create("unset", &[]).code, Some(0));
    let run = cluster.tool(
        "configs",
        &[
            "--topic",
            "unset",
            "--alter",
            "--delete-config",
            "retention.ms",
        ],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.ends_with("\nInvalid config(s): retention.ms\n"),
        "{run:?}"
    );
}

/// IncrementalAlterConfigs: set, delete, and Kafka's INVALID_CONFIG for an unknown key and a
/// bad value.
#[test]
fn configs_alter_sets_deletes_and_rejects_with_kafkas_errors() {
    let cluster = TestCluster::start();
    assert_eq!(cluster.create("altered", &[]).code, Some(0));
    let alter = |change: &[&str]| {
        let mut args = vec!["--topic", "altered", "--alter"];
        args.extend_from_slice(change);
        cluster.tool("configs", &args)
    };
    let set = alter(&["--add-config", "retention.ms=5000,min.insync.replicas=1"]);
    assert_eq!(set.code, Some(0), "{set:?}");
    assert_eq!(set.stdout, "Completed updating config for topic altered.\n");
    let described = cluster.tool("configs", &["--topic", "altered", "--describe"]);
    assert!(
        described.stdout.contains("  retention.ms=5000 "),
        "{described:?}"
    );

    let deleted = alter(&["--delete-config", "retention.ms"]);
    assert_eq!(deleted.code, Some(0), "{deleted:?}");
    let described = cluster.tool("configs", &["--topic", "altered", "--describe"]);
    assert!(!described.stdout.contains("retention.ms="), "{described:?}");

    let unknown = alter(&["--add-config", "no.such.config=1"]);
    assert_eq!(unknown.code, Some(1), "{unknown:?}");
    assert!(unknown.stderr.contains("INVALID_CONFIG"), "{unknown:?}");
    assert!(
        unknown
            .stderr
            .contains("Unknown topic config name: no.such.config"),
        "{unknown:?}"
    );
    let bad_value = alter(&["--add-config", "min.insync.replicas=many"]);
    assert_eq!(bad_value.code, Some(1), "{bad_value:?}");
    assert!(bad_value.stderr.contains("INVALID_CONFIG"), "{bad_value:?}");
}

/// ElectLeaders: a single replica is already its preferred leader.
#[test]
fn elect_preferred_leader() {
    let cluster = TestCluster::start();
    assert_eq!(cluster.create("elected", &[]).code, Some(0));
    let run = cluster.tool(
        "elect",
        &[
            "--election-type",
            "preferred",
            "--topic",
            "elected",
            "--partition",
            "0",
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        "Valid replica already elected for partitions elected-0\n"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("partitions.json");
    std::fs::write(
        &file,
        r#"{"partitions": [{"topic": "elected", "partition": 2}, {"topic": "elected", "partition": 1}]}"#,
    )
    .unwrap();
    let from_file = cluster.tool(
        "elect",
        &[
            "--election-type",
            "PREFERRED",
            "--path-to-json-file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(from_file.code, Some(0), "{from_file:?}");
    assert_eq!(
        from_file.stdout,
        "Valid replica already elected for partitions elected-1, elected-2\n"
    );
}
