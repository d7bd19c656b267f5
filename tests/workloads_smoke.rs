//! `single-broker-smoke`, short, end to end through `kchaos workload`: our coordinator and one
//! broker as processes, acks=all producers and a consumer through librdkafka, the broker killed
//! with SIGKILL and restarted, a final read, the checker: no acknowledged message lost, exit 0,
//! and a run directory with everything a person needs to look at it again.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn single_broker_smoke_passes_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args([
            "workload",
            "single-broker-smoke",
            "--duration",
            "7s",
            "--seed",
            "7",
            "--store",
            store.to_str().unwrap(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let run_dir = std::fs::canonicalize(store.join("latest")).unwrap();
    let node_log = std::fs::read_to_string(run_dir.join("broker-1.log")).unwrap_or_default();
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}\nbroker log (end):\n{}",
        &node_log[node_log.len().saturating_sub(3000)..]
    );
    assert!(stdout.contains("verdict: valid"), "{stdout}");
    assert!(stdout.contains("lost: 0"), "{stdout}");

    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results["valid"], true, "{results:#}");
    let sends_ok = results["totals"]["sends_ok"]
        .as_u64()
        .or_else(|| results["totals"]["sends-ok"].as_u64())
        .unwrap_or(0);
    assert!(
        sends_ok > 50,
        "only {sends_ok} acknowledged sends: {results:#}"
    );

    // The run is self-contained: the workload as run (with its seed), history, configs, logs.
    let workload = std::fs::read_to_string(run_dir.join("workload.toml")).unwrap();
    assert!(workload.contains("seed = 7"), "{workload}");
    assert!(workload.contains("duration = \"7s\""), "{workload}");
    assert!(run_dir.join("broker-1/server.properties").is_file());
    let facts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(facts["seed"], 7, "{facts:#}");
    assert_eq!(facts["logs"]["broker-1"], "broker-1.log", "{facts:#}");
    assert!(run_dir.join("coordinator.log").is_file());
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    assert!(
        history.contains(r#""f":"kill""#),
        "the nemesis never killed the broker"
    );
    assert!(history.contains(r#""f":"final-read""#));

    // Re-checking the stored history gives the same verdict.
    let again = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args(["check", run_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{again:?}");

    // Nothing of the cluster is left running.
    for (name, pid) in harness::cluster::read_pid_log(&run_dir).unwrap() {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|stat| stat.contains(") Z"))
                    .unwrap_or(true),
            "{name} (pid {pid}) is still running"
        );
    }
}

#[test]
fn single_broker_pause_passes_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args([
            "workload",
            "single-broker-pause",
            "--duration",
            "7s",
            "--seed",
            "3",
            "--store",
            store.to_str().unwrap(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let run_dir = std::fs::canonicalize(store.join("latest")).unwrap();
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    assert!(history.contains(r#""f":"pause""#), "never paused");
    assert!(history.contains(r#""f":"resume""#), "never resumed");
    assert!(stdout.contains("lost: 0"), "{stdout}");
}
