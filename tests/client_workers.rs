//! Clients as worker processes, end to end through `kchaos workload` with real brokers and real
//! client libraries: a client worker that dies of SIGSEGV mid-run is replaced by a fresh process
//! and the run still ends with a verdict and a report (its in-flight operations `info`, the
//! crash in the history and the report, the counts right); a single broker whose storage does
//! not survive a restart (the third-party broker of issue 11) is caught losing data, with client
//! crashes at the worst moments; and the Python worker (confluent-kafka) runs the single-broker
//! and leader-kill workloads.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// `kchaos workload ARGS...` with `envs`, from the source tree, storing under `store`.
fn workload(store: &Path, args: &[&str], envs: &[(&str, &str)]) -> (Output, PathBuf) {
    let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .arg("workload")
        .args(args)
        .args(["--store", store.to_str().unwrap(), "--no-progress"])
        .envs(envs.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let run_dir = std::fs::canonicalize(store.join("latest")).unwrap_or_default();
    (output, run_dir)
}

/// The run's exit, output and, for a run that found loss, the evidence the store holds (the run
/// directory is a temporary one, gone when the test ends): the lost sends the checker names and
/// every leadership change.
fn describe(output: &Output, run_dir: &Path) -> String {
    let lost = std::fs::read_to_string(run_dir.join("results.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .map(|results| results["anomalies"]["lost"]["examples"].to_string())
        .unwrap_or_default();
    let leadership = std::fs::read_to_string(run_dir.join("leadership.jsonl")).unwrap_or_default();
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}\nlost (examples): {lost}\nleadership:\n{leadership}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn history(run_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(run_dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn results(run_dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap()).unwrap()
}

/// Every pid the run started (nodes and client workers) is gone.
fn assert_nothing_left(run_dir: &Path) {
    let pids = harness::cluster::read_pid_log(run_dir).unwrap();
    assert!(
        pids.iter().any(|(name, _)| name.starts_with("client-")),
        "no client worker in pids.log: {pids:?}"
    );
    for (name, pid) in pids {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                !stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false);
        assert!(!alive, "{name} (pid {pid}) is still running");
    }
}

/// Lost and duplicated counted again from the history, the plain way: an acknowledged send
/// missing from the complete final read of its partition is lost; a value read at more than one
/// (partition, offset) by any read is duplicated.
fn recount(history: &[Value]) -> (u64, u64) {
    let mut acknowledged: Vec<(String, i64)> = Vec::new();
    let mut final_values: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    let mut positions: HashMap<String, BTreeSet<(i64, i64)>> = HashMap::new();
    for op in history {
        let value = &op["value"];
        match (op["f"].as_str(), op["type"].as_str()) {
            (Some("send"), Some("ok")) => acknowledged.push((
                value["value"].as_str().unwrap().to_string(),
                value["partition"].as_i64().unwrap(),
            )),
            (Some("poll" | "final-read"), Some("ok")) => {
                for record in value["records"].as_array().unwrap() {
                    let (partition, offset) =
                        (record[0].as_i64().unwrap(), record[1].as_i64().unwrap());
                    let text = record[2].as_str().unwrap().to_string();
                    positions
                        .entry(text.clone())
                        .or_default()
                        .insert((partition, offset));
                    if op["f"] == "final-read" {
                        assert_eq!(value["complete"], true, "{op}");
                        final_values.entry(partition).or_default().insert(text);
                    }
                }
            }
            _ => {}
        }
    }
    let lost = acknowledged
        .iter()
        .filter(|(value, partition)| {
            !final_values
                .get(partition)
                .is_some_and(|values| values.contains(value))
        })
        .count() as u64;
    let duplicated = positions.values().filter(|at| at.len() > 1).count() as u64;
    (lost, duplicated)
}

/// The crash events of a history, and for each crashed process its operations that completed
/// `info` because of the crash.
fn crashes(history: &[Value]) -> Vec<(Value, Vec<Value>)> {
    history
        .iter()
        .filter(|op| op["process"] == "harness" && op["f"] == "client-crash")
        .map(|crash| {
            let process = crash["value"]["process"].clone();
            let crashed: Vec<Value> = history
                .iter()
                .filter(|op| {
                    op["process"] == process
                        && op["type"] == "info"
                        && op["value"]["error"]
                            .as_str()
                            .is_some_and(|error| error.starts_with("client crashed: "))
                })
                .cloned()
                .collect();
            (crash.clone(), crashed)
        })
        .collect()
}

/// Every invoke of `process` has exactly one completion.
fn assert_every_invoke_completes(history: &[Value], process: &Value) {
    let mut open: BTreeMap<String, i64> = BTreeMap::new();
    for op in history.iter().filter(|op| op["process"] == *process) {
        let key = format!("{}:{}", op["f"], op["value"]["value"]);
        *open.entry(key).or_default() += if op["type"] == "invoke" { 1 } else { -1 };
    }
    assert!(
        open.values().all(|count| *count == 0),
        "process {process}: invokes and completions do not pair: {open:?}"
    );
}

#[test]
fn a_client_worker_dying_of_sigsegv_is_replaced_and_the_run_ends_with_a_verdict() {
    let store = tempfile::tempdir().unwrap();
    // Producer 1 dies after 150 requests, the consumer (process 3) after 30: both mid-run.
    let (output, run_dir) = workload(
        store.path(),
        &["single-broker-smoke", "--duration", "7s", "--seed", "5"],
        &[("KCHAOS_TEST_CLIENT_SIGSEGV", "1:150,3:30")],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        describe(&output, &run_dir)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("verdict: valid"), "{stdout}");
    assert!(stdout.contains("client crashes: 2"), "{stdout}");

    let history = history(&run_dir);
    let crashes = crashes(&history);
    assert_eq!(crashes.len(), 2, "{crashes:?}");
    for (crash, crashed) in &crashes {
        assert_eq!(crash["value"]["cause"], "signal 11 (SIGSEGV)", "{crash}");
        assert_eq!(
            crash["value"]["in_flight"].as_u64().unwrap(),
            crashed.len() as u64,
            "the crash event counts the operations it left info: {crash} {crashed:?}"
        );
        for op in crashed {
            assert_eq!(
                op["value"]["error"], "client crashed: signal 11 (SIGSEGV)",
                "{op}"
            );
        }
        assert_every_invoke_completes(&history, &crash["value"]["process"]);
    }
    let producer_crash = &crashes
        .iter()
        .find(|(crash, _)| crash["value"]["process"] == 1)
        .unwrap();
    assert!(
        producer_crash.1.iter().any(|op| op["f"] == "send"),
        "the producer died with no send in flight: {:?}",
        producer_crash.1
    );
    // The crashed producer's successor is a new process (the workload's are 1 to 3) that went
    // on sending.
    let fresh_sends = history
        .iter()
        .filter(|op| op["f"] == "send" && op["type"] == "ok")
        .filter(|op| op["process"].as_u64().is_some_and(|process| process > 3))
        .count();
    assert!(
        fresh_sends > 50,
        "only {fresh_sends} sends by fresh workers"
    );

    // The checker's counts are the plain ones.
    let results = results(&run_dir);
    let (lost, duplicated) = recount(&history);
    assert_eq!(results["anomalies"]["lost"]["count"], lost, "{results:#}");
    assert_eq!(results["anomalies"]["duplicated"]["count"], duplicated);
    assert_eq!(lost, 0);
    assert_eq!(results["totals"]["client-crashes"], 2);
    assert_eq!(results["client-crashes"][0]["cause"], "signal 11 (SIGSEGV)");

    let report = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(report.contains(r#"<table id="client-crashes">"#));
    assert!(report.contains("<td>signal 11 (SIGSEGV)</td>"));
    assert!(run_dir.join("clients/client-1.log").is_file());
    let facts: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(facts["clients"]["library"], "librdkafka", "{facts:#}");
    assert_nothing_left(&run_dir);
}

#[test]
fn a_broker_that_loses_its_storage_is_caught_even_while_clients_crash() {
    let store = tempfile::tempdir().unwrap();
    let broker = format!(
        "sh tests/fixtures/wiping-broker.sh {{data_dir}} {} broker --config {{config}}",
        env!("CARGO_BIN_EXE_kchaos")
    );
    // Workers die around the broker's restarts (at 3 s and 7 s): the run must still end with
    // its verdict.
    let (output, run_dir) = workload(
        store.path(),
        &[
            "tests/fixtures/single-broker-wiped-storage.toml",
            "--seed",
            "11",
            "--broker-command",
            &broker,
        ],
        &[("KCHAOS_TEST_CLIENT_SIGSEGV", "1:330,2:720,3:45")],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        describe(&output, &run_dir)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("verdict: INVALID"), "{stdout}");
    let results = results(&run_dir);
    assert_eq!(results["valid"], false);
    let history = history(&run_dir);
    let (lost, _) = recount(&history);
    assert!(lost > 0, "nothing lost: {results:#}");
    assert_eq!(results["anomalies"]["lost"]["count"], lost);
    assert_eq!(crashes(&history).len(), 3, "{stdout}");
    assert!(run_dir.join("report.html").is_file());
    assert_nothing_left(&run_dir);
}

#[test]
fn the_python_worker_runs_the_single_broker_workload_and_survives_its_own_crash() {
    let store = tempfile::tempdir().unwrap();
    let (output, run_dir) = workload(
        store.path(),
        &[
            "single-broker-smoke",
            "--duration",
            "7s",
            "--seed",
            "2",
            "--client-library",
            "confluent-kafka-python",
        ],
        &[("KCHAOS_TEST_CLIENT_SIGSEGV", "2:100")],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        describe(&output, &run_dir)
    );
    let facts: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(facts["clients"]["library"], "confluent-kafka-python");
    assert!(run_dir.join("clients/kchaos_worker.py").is_file());
    let history = history(&run_dir);
    let crashes = crashes(&history);
    assert_eq!(crashes.len(), 1);
    assert_eq!(crashes[0].0["value"]["cause"], "signal 11 (SIGSEGV)");
    let results = results(&run_dir);
    let (lost, duplicated) = recount(&history);
    assert_eq!(
        (lost, results["anomalies"]["lost"]["count"].clone()),
        (0, 0.into())
    );
    assert_eq!(results["anomalies"]["duplicated"]["count"], duplicated);
    assert_nothing_left(&run_dir);
}

#[test]
fn the_python_worker_runs_the_leader_kill_workload() {
    let store = tempfile::tempdir().unwrap();
    let (output, run_dir) = workload(
        store.path(),
        &[
            "acks-all-kill-leader",
            "--duration",
            "13s",
            "--seed",
            "4",
            "--client-library",
            "confluent-kafka-python",
        ],
        &[],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        describe(&output, &run_dir)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("verdict: valid"), "{stdout}");
    let history = history(&run_dir);
    assert!(
        history.iter().any(|op| op["f"] == "kill"),
        "the nemesis never killed a leader"
    );
    assert_nothing_left(&run_dir);
}

#[test]
fn a_worker_that_cannot_start_fails_the_run_naming_it() {
    let store = tempfile::tempdir().unwrap();
    let (output, run_dir) = workload(
        store.path(),
        &[
            "single-broker-smoke",
            "--duration",
            "3s",
            "--client-command",
            "python3 -c import_no_such_library",
        ],
        &[],
    );
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        describe(&output, &run_dir)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the client workers could not start"),
        "{stderr}"
    );
    assert!(stderr.contains("exited before saying hello"), "{stderr}");
    assert!(
        stderr.contains("NameError"),
        "the worker's log is quoted: {stderr}"
    );
    assert_nothing_left(&run_dir);
}
