//! Killing the orchestrator itself (SIGKILL of `kchaos workload`) leaves no node of its cluster
//! and no client worker running: every one is in its own process group with PR_SET_PDEATHSIG,
//! and every pid it ever started is in the run's `pids.log`.
//!
//! Here the "brokers" are `sleep` processes (via `--broker-command`), so the orchestrator is
//! stuck waiting for them to show up in the metadata when it is killed: this tests the process
//! guard itself, whatever state the real broker is in.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::cluster::process::NodeProcess;
use harness::wait::wait_for;

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

fn run_dir(store: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(store.join("latest")).ok()
}

fn pids(run_dir: &Path) -> Vec<(String, u32)> {
    harness::cluster::read_pid_log(run_dir).unwrap_or_default()
}

/// `kchaos workload` with a coordinator that accepts connections and "brokers" that never
/// answer, waiting until all four nodes are started. Returns the orchestrator, the run
/// directory and the nodes' pids.
fn start_stuck_run(dir: &Path) -> (NodeProcess, PathBuf, Vec<(String, u32)>) {
    let store = dir.join("store");
    let coordinator = dir.join("listen.sh");
    std::fs::write(
        &coordinator,
        "#!/bin/sh\nexec python3 -c 'import socket, sys, time\n\
         s = socket.socket()\ns.bind((\"127.0.0.1\", int(sys.argv[1])))\ns.listen()\n\
         time.sleep(300)' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &coordinator,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let orchestrator = NodeProcess::spawn(
        "orchestrator",
        Path::new(env!("CARGO_BIN_EXE_kchaos")),
        &[
            "workload".into(),
            "acks-all-kill-leader".into(),
            "--store".into(),
            store.display().to_string(),
            "--coordinator-command".into(),
            format!("{} {{port}}", coordinator.display()),
            "--broker-command".into(),
            "sleep 300".into(),
        ],
        &[(
            "KCHAOS_WORKLOADS".into(),
            format!("{}/workloads", env!("CARGO_MANIFEST_DIR")),
        )],
        &dir.join("orchestrator.log"),
    )
    .unwrap();
    let started = wait_for(
        "four nodes in pids.log",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let run_dir = run_dir(&store)?;
            let pids = pids(&run_dir);
            (pids.len() >= 4).then_some((run_dir, pids))
        },
    );
    let (run_dir, pids) = started.unwrap_or_else(|error| {
        let log = std::fs::read_to_string(dir.join("orchestrator.log")).unwrap_or_default();
        panic!("{error}\norchestrator log:\n{log}")
    });
    for (name, pid) in &pids {
        assert!(alive(*pid), "{name} (pid {pid}) should be running");
    }
    (orchestrator, run_dir, pids)
}

fn wait_until_all_dead(pids: &[(String, u32)]) {
    for (name, pid) in pids {
        wait_for(
            &format!("{name} (pid {pid}) to die"),
            Duration::from_secs(20),
            Duration::from_millis(20),
            || (!alive(*pid)).then_some(()),
        )
        .unwrap();
    }
}

#[test]
fn killing_the_orchestrator_kills_every_node_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let (mut orchestrator, run_dir, pids) = start_stuck_run(dir.path());

    orchestrator.kill().unwrap();

    wait_until_all_dead(&pids);
    // The history exists and is readable (here: empty, the run had not started sending).
    let history_path = run_dir.join("history.jsonl");
    let history = history::read_history(&history_path).unwrap();
    assert_eq!(history.filter(|op| op.is_err()).count(), 0);
    assert!(run_dir.join("workload.toml").is_file());
    assert!(run_dir.join("broker-1/server.properties").is_file());
}

#[test]
fn an_interrupt_during_setup_stops_every_node_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (mut orchestrator, _run_dir, pids) = start_stuck_run(dir.path());

    orchestrator
        .signal(nix::sys::signal::Signal::SIGINT)
        .unwrap();

    assert!(
        orchestrator.wait_for_exit(Duration::from_secs(30)).unwrap(),
        "the orchestrator should stop after an interrupt"
    );
    wait_until_all_dead(&pids);
    let log = std::fs::read_to_string(dir.path().join("orchestrator.log")).unwrap();
    assert!(log.contains("interrupted during setup"), "{log}");
}

#[test]
fn a_workload_with_a_node_that_cannot_start_exits_2_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args([
            "workload",
            "single-broker-smoke",
            "--store",
            store.to_str().unwrap(),
            "--coordinator-command",
            "ls /coordinator-is-broken",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("coordinator exited"), "{stderr}");
    assert!(stderr.contains("coordinator-is-broken"), "{stderr}");
}

/// `single-broker-smoke` with the real broker, started and left running until the history
/// shows acknowledged sends. Returns the orchestrator, the run directory and the node pids.
fn start_real_run(dir: &Path) -> (NodeProcess, PathBuf, Vec<(String, u32)>) {
    let store = dir.join("store");
    let orchestrator = NodeProcess::spawn(
        "orchestrator",
        Path::new(env!("CARGO_BIN_EXE_kchaos")),
        &[
            "workload".into(),
            "single-broker-smoke".into(),
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
            let run_dir = run_dir(&store)?;
            let history = std::fs::read_to_string(run_dir.join("history.jsonl")).ok()?;
            (history.matches(r#""type":"ok","f":"send""#).count() > 20).then_some(run_dir)
        },
    )
    .unwrap_or_else(|error| {
        let log = std::fs::read_to_string(dir.join("orchestrator.log")).unwrap_or_default();
        panic!("{error}\norchestrator log:\n{log}")
    });
    // The coordinator, the broker and the client workers (two producers, a consumer).
    let pids = pids(&run_dir);
    let mut names: Vec<&str> = pids.iter().map(|(name, _)| name.as_str()).collect();
    // The workers start together, in any order.
    if let Some(workers) = names.get_mut(2..) {
        workers.sort_unstable();
    }
    assert_eq!(
        names,
        [
            "coordinator",
            "broker-1",
            "client-1",
            "client-2",
            "client-3"
        ],
        "{pids:?}"
    );
    (orchestrator, run_dir, pids)
}

#[test]
fn killing_the_orchestrator_mid_run_leaves_no_node_and_a_readable_history() {
    let dir = tempfile::tempdir().unwrap();
    let (mut orchestrator, run_dir, pids) = start_real_run(dir.path());

    orchestrator.kill().unwrap();

    wait_until_all_dead(&pids);
    // Every line written is a whole operation (the writer flushes whole lines).
    let ops: Vec<_> = history::read_history(&run_dir.join("history.jsonl"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        ops.iter().any(|op| op.f == "send"),
        "no send in the history"
    );
}

#[test]
fn an_interrupt_mid_run_still_heals_reads_checks_and_stops_the_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut orchestrator, run_dir, pids) = start_real_run(dir.path());

    orchestrator
        .signal(nix::sys::signal::Signal::SIGINT)
        .unwrap();

    assert!(
        orchestrator.wait_for_exit(Duration::from_secs(60)).unwrap(),
        "the orchestrator should finish after an interrupt"
    );
    wait_until_all_dead(&pids);
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    assert!(
        history.contains(r#""f":"heal""#),
        "no heal after the interrupt"
    );
    assert!(history.contains(r#""f":"final-read""#), "no final read");
    let results = std::fs::read_to_string(run_dir.join("results.json")).unwrap();
    assert!(results.contains(r#""valid": true"#), "{results}");
    let log = std::fs::read_to_string(dir.path().join("orchestrator.log")).unwrap();
    assert!(log.contains("verdict: valid"), "{log}");
}
