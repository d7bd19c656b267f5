//! `kchaos cluster up`: the lab's layout on disk, brokers registered (by this cluster's own
//! processes), its console on stdin and from a second shell (`kchaos cluster status|kill|start|
//! down`), and nothing left behind when it is stopped (SIGTERM, `cluster down`) or killed
//! (SIGKILL).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::cluster::process::NodeProcess;
use harness::wait::wait_for;

const KCHAOS: &str = env!("CARGO_BIN_EXE_kchaos");

/// A running `kchaos cluster up` and where it keeps things.
struct ClusterUp {
    process: NodeProcess,
    dir: PathBuf,
    output: PathBuf,
    bootstrap: String,
    base_port: u16,
    _root: tempfile::TempDir,
}

/// A port p with p+1..p+count-1 free as well.
fn free_port_run(count: u16) -> u16 {
    wait_for(
        "a run of free ports",
        Duration::from_secs(5),
        Duration::ZERO,
        || {
            let base = harness::cluster::ports::free_loopback_port().ok()?;
            (1..count)
                .all(|offset| {
                    base.checked_add(offset)
                        .is_some_and(|port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok())
                })
                .then_some(base)
        },
    )
    .unwrap()
}

fn start(brokers: u16) -> ClusterUp {
    let root = tempfile::tempdir().unwrap();
    let base_port = free_port_run(brokers);
    let coordinator_port = harness::cluster::ports::free_loopback_port().unwrap();
    start_in(root, brokers, base_port, coordinator_port, "cluster-up.out")
}

/// `kchaos cluster up` in `root/cluster`, its output in `root/<output>`.
fn start_in(
    root: tempfile::TempDir,
    brokers: u16,
    base_port: u16,
    coordinator_port: u16,
    output: &str,
) -> ClusterUp {
    let dir = root.path().join("cluster");
    let output = root.path().join(output);
    let args: Vec<String> = [
        "cluster",
        "up",
        "--brokers",
        &brokers.to_string(),
        "--dir",
        &dir.display().to_string(),
        "--base-port",
        &base_port.to_string(),
        "--coordinator-port",
        &coordinator_port.to_string(),
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
        "cluster up to report every broker registered",
        Duration::from_secs(90),
        Duration::from_millis(100),
        || {
            std::fs::read_to_string(&output)
                .ok()
                .filter(|text| text.contains("Cluster up:") || text.contains("error:"))
        },
    )
    .unwrap();
    assert!(text.contains("Cluster up:"), "{text}");
    let bootstrap = text
        .lines()
        .find_map(|line| line.strip_prefix("Bootstrap servers: "))
        .unwrap()
        .to_string();
    ClusterUp {
        process,
        dir,
        output,
        bootstrap,
        base_port,
        _root: root,
    }
}

/// `kchaos cluster ARGS --dir DIR` from a second shell: exit code, stdout, stderr.
fn second_shell(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(KCHAOS)
        .arg("cluster")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The pids cluster up started (from the harness's pids.log).
fn child_pids(dir: &Path) -> Vec<(String, u32)> {
    harness::cluster::read_pid_log(dir).unwrap()
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

fn assert_all_gone(children: &[(String, u32)]) {
    wait_for(
        "every child of cluster up to be gone",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || children.iter().all(|(_, pid)| !alive(*pid)).then_some(()),
    )
    .unwrap_or_else(|error| {
        let left: Vec<_> = children.iter().filter(|(_, pid)| alive(*pid)).collect();
        panic!("{error}: still alive {left:?}")
    });
}

#[test]
fn cluster_up_writes_the_lab_layout_registers_brokers_and_sigterm_stops_all() {
    let mut cluster = start(2);
    for id in 1..=2u16 {
        let path = cluster.dir.join(format!("server-{id}.properties"));
        let properties = std::fs::read_to_string(&path).unwrap();
        assert!(
            properties.contains(&format!("broker.id={id}\n")),
            "{properties}"
        );
        let port = cluster.base_port + id - 1;
        assert!(
            properties.contains(&format!("listeners=PLAINTEXT://127.0.0.1:{port}\n")),
            "{properties}"
        );
        let log_dir = cluster
            .dir
            .canonicalize()
            .unwrap()
            .join(format!("broker-{id}"));
        assert!(
            properties.contains(&format!("log.dirs={}", log_dir.display())),
            "{properties}"
        );
    }
    let port_2 = cluster.base_port + 1;
    assert_eq!(
        cluster.bootstrap,
        format!("127.0.0.1:{},127.0.0.1:{port_2}", cluster.base_port)
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addresses: Vec<String> = cluster.bootstrap.split(',').map(String::from).collect();
    let metadata = runtime
        .block_on(harness::cluster::metadata::fetch(
            &addresses,
            None,
            Duration::from_secs(10),
        ))
        .unwrap();
    assert_eq!(metadata.brokers, vec![1, 2]);

    let children = child_pids(&cluster.dir);
    assert_eq!(children.len(), 3, "{children:?}");
    let text = std::fs::read_to_string(&cluster.output).unwrap();
    for (name, pid) in &children {
        assert!(alive(*pid), "{name} {pid}");
        assert!(
            text.contains(&format!("pid {pid} ")),
            "{name} {pid} not in {text}"
        );
    }

    let clean = cluster.process.terminate(Duration::from_secs(60)).unwrap();
    assert!(clean, "cluster up did not stop by itself after SIGTERM");
    assert_all_gone(&children);
    let text = std::fs::read_to_string(&cluster.output).unwrap();
    assert!(text.contains("stopped"), "{text}");
}

#[test]
fn sigkill_of_cluster_up_leaves_no_child() {
    let mut cluster = start(1);
    let children = child_pids(&cluster.dir);
    assert_eq!(children.len(), 2, "{children:?}");
    cluster.process.kill().unwrap();
    assert_all_gone(&children);
}

#[test]
fn a_taken_port_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let coordinator_port = harness::cluster::ports::free_loopback_port().unwrap();
    let output = std::process::Command::new(KCHAOS)
        .args(["cluster", "up", "--brokers", "1", "--dir"])
        .arg(dir.path().join("cluster"))
        .args(["--base-port", &port.to_string()])
        .args(["--coordinator-port", &coordinator_port.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port} is not free")) && stderr.contains("--base-port"),
        "{stderr}"
    );
}

/// `kchaos cluster up` with a pipe to its stdin, a `NodeProcess`: killed on drop, and by the
/// kernel if this test process dies (its own children follow it the same way).
struct Steered {
    child: NodeProcess,
    stdin: Option<std::process::ChildStdin>,
    output: PathBuf,
    dir: PathBuf,
    bootstrap: Vec<String>,
    _root: tempfile::TempDir,
}

impl Steered {
    fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let output = root.path().join("cluster-up.out");
        let base_port = free_port_run(2);
        let coordinator_port = harness::cluster::ports::free_loopback_port().unwrap();
        let cluster_dir = root.path().join("cluster");
        let args: Vec<String> = [
            "cluster",
            "up",
            "--brokers",
            "2",
            "--session-timeout-ms",
            "1000",
            "--dir",
            cluster_dir.to_str().unwrap(),
            "--base-port",
            &base_port.to_string(),
            "--coordinator-port",
            &coordinator_port.to_string(),
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        let mut child = NodeProcess::spawn_with_stdin(
            "cluster-up",
            std::path::Path::new(KCHAOS),
            &args,
            &[("NO_COLOR".to_string(), "1".to_string())],
            &output,
            true,
        )
        .unwrap();
        let stdin = child.take_stdin();
        let mut steered = Steered {
            child,
            stdin,
            output,
            dir: cluster_dir,
            bootstrap: Vec::new(),
            _root: root,
        };
        let text = steered.wait_for_output("Cluster up:");
        steered.bootstrap = text
            .lines()
            .find_map(|line| line.strip_prefix("Bootstrap servers: "))
            .unwrap()
            .split(',')
            .map(String::from)
            .collect();
        steered
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn wait_for_output(&self, wanted: &str) -> String {
        wait_for(
            wanted,
            Duration::from_secs(60),
            Duration::from_millis(50),
            || {
                std::fs::read_to_string(&self.output)
                    .ok()
                    .filter(|text| text.contains(wanted))
            },
        )
        .unwrap_or_else(|error| {
            panic!(
                "{error}: {}",
                std::fs::read_to_string(&self.output).unwrap_or_default()
            )
        })
    }

    fn wait_for_brokers(&self, wanted: &[i32]) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        wait_for(
            &format!("brokers {wanted:?} in the metadata"),
            Duration::from_secs(60),
            Duration::from_millis(100),
            || {
                let metadata = runtime
                    .block_on(harness::cluster::metadata::fetch(
                        &self.bootstrap,
                        None,
                        Duration::from_secs(5),
                    ))
                    .ok()?;
                (metadata.brokers == wanted).then_some(())
            },
        )
        .unwrap();
    }
}

#[test]
fn typed_commands_kill_and_start_single_brokers() {
    let mut cluster = Steered::start();
    cluster.type_line("kill 2");
    cluster.wait_for_output("broker-2 killed (SIGKILL)");
    cluster.wait_for_output("status: broker-2 down");
    cluster.wait_for_brokers(&[1]);

    cluster.type_line("start broker-2");
    cluster.wait_for_output("broker-2 started");
    cluster.wait_for_brokers(&[1, 2]);

    cluster.type_line("explode 1");
    cluster.wait_for_output("error: unknown command `explode 1`");

    // The end of its input does not stop the cluster; it says once that the console is off,
    // and how to reach it from another shell.
    drop(cluster.stdin.take());
    cluster.wait_for_output("The console is off (stdin is closed)");
    cluster.wait_for_brokers(&[1, 2]);
    assert!(cluster.child.is_running().unwrap());
    let text = std::fs::read_to_string(&cluster.output).unwrap();
    assert!(!text.contains("stopping the cluster"), "{text}");
    assert_eq!(text.matches("The console is off").count(), 1, "{text}");
    assert!(
        text.contains(&format!(
            "kchaos cluster status --dir {}",
            cluster.dir.canonicalize().unwrap().display()
        )),
        "{text}"
    );

    // A second shell: status, a kill, a start, a mistake, then down.
    let (code, out, err) = second_shell(&cluster.dir, &["status"]);
    assert_eq!(code, Some(0), "{err}");
    for id in 1..=2 {
        let line = out
            .lines()
            .find(|line| line.starts_with(&format!("status: broker-{id} running (pid ")))
            .unwrap_or_else(|| panic!("no running broker-{id} in:\n{out}"));
        assert!(line.ends_with(" registered"), "{line}");
    }
    assert!(out.contains("status: coordinator running (pid "), "{out}");
    assert!(out.contains("\ncontroller: broker "), "{out}");

    let (code, out, err) = second_shell(&cluster.dir, &["kill", "2"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("broker-2 killed (SIGKILL)\n"), "{out}");
    assert!(out.contains("status: broker-2 down"), "{out}");
    cluster.wait_for_brokers(&[1]);
    let (code, out, _) = second_shell(&cluster.dir, &["start", "broker-2"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("broker-2 started\n"), "{out}");
    cluster.wait_for_brokers(&[1, 2]);
    let (code, _, err) = second_shell(&cluster.dir, &["pause", "7"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("error: no node named broker-7"), "{err}");

    let children = child_pids(&cluster.dir);
    let (code, out, err) = second_shell(&cluster.dir, &["down"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("stopping the cluster\n"), "{out}");
    assert!(out.ends_with("coordinator stopped\nstopped\n"), "{out}");
    assert!(
        cluster
            .child
            .wait_for_exit(Duration::from_secs(30))
            .unwrap(),
        "cluster up still runs after `cluster down`"
    );
    assert_all_gone(&children);
    let (code, _, err) = second_shell(&cluster.dir, &["down"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nothing to stop"), "{err}");
    let (code, _, err) = second_shell(&cluster.dir, &["status"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no `kchaos cluster up` is running in"),
        "{err}"
    );
}

/// `cluster up` prints its own pid; restarted on the same directory right after a SIGKILL, it
/// counts a broker only once the broker's own process has registered — not while the
/// registration of the killed one is still in the coordinator — and a second `cluster up` on a
/// directory in use is refused.
#[test]
fn the_banner_counts_only_this_clusters_registrations() {
    let root = tempfile::tempdir().unwrap();
    let base_port = free_port_run(1);
    let coordinator_port = harness::cluster::ports::free_loopback_port().unwrap();
    let mut first = start_in(root, 1, base_port, coordinator_port, "first.out");
    let text = std::fs::read_to_string(&first.output).unwrap();
    assert!(
        text.starts_with(&format!("kchaos cluster up: pid {}, ", first.process.pid())),
        "{text}"
    );
    let children = child_pids(&first.dir);
    first.process.kill().unwrap();
    assert_all_gone(&children);

    // Same directory and ports: the coordinator restores the killed broker's session, whose
    // registration lives until the session expires.
    let ClusterUp { _root: root, .. } = first;
    let mut second = start_in(root, 1, base_port, coordinator_port, "second.out");
    let text = std::fs::read_to_string(&second.output).unwrap();
    let (code, out, err) = second_shell(&second.dir, &["status"]);
    assert_eq!(code, Some(0), "{err}");
    let broker = out
        .lines()
        .find(|line| line.starts_with("status: broker-1 "))
        .unwrap();
    assert!(broker.ends_with(" registered"), "{out}\n{text}");
    assert!(out.contains("controller: broker 1"), "{out}");

    let refused = std::process::Command::new(KCHAOS)
        .args(["cluster", "up", "--brokers", "1", "--dir"])
        .arg(&second.dir)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("another `kchaos cluster up` is running in"),
        "{stderr}"
    );
    assert!(second.process.terminate(Duration::from_secs(60)).unwrap());
}
