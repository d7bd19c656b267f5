//! The disk-fault workloads, each end to end through `kchaos workload` (one seed) against a
//! real coordinator and three real brokers whose data directories the harness put on fault
//! filesystems: the result must match the workload's expectation (exit 0), and what the run
//! left must show the faults — power losses in the history with what each dropped, the errors
//! clients saw in the report, an ISR that a slow disk did not shrink. The runs take turns (one
//! cluster at a time), as in workloads_replicated.rs. They need /dev/fuse and root, as the
//! faultfs tests do (`.ci/setup` installs fuse3).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use history::{OpType, Process};

/// One run at a time.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What a run printed and left.
struct Run {
    code: Option<i32>,
    text: String,
    dir: PathBuf,
    _store: tempfile::TempDir,
}

impl Run {
    fn lost(&self) -> Option<u64> {
        self.text
            .lines()
            .find_map(|line| line.split("lost: ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|count| count.parse().ok())
    }

    fn nemesis(&self, f: &str) -> Vec<history::Op> {
        history::read_history(&self.dir.join("history.jsonl"))
            .unwrap()
            .map(Result::unwrap)
            .filter(|op| op.process == Process::Nemesis && op.f == f)
            .collect()
    }
}

/// Runs `kchaos workload NAME --duration D --seed 1`.
fn run_workload(name: &str, duration: &str) -> Run {
    let _turn = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let store = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args([
            "workload",
            name,
            "--duration",
            duration,
            "--seed",
            "1",
            "--no-progress",
            "--store",
            store.path().to_str().unwrap(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = std::fs::canonicalize(store.path().join("latest")).unwrap_or_default();
    assert_no_mount_left(&dir);
    Run {
        code: output.status.code(),
        text,
        dir,
        _store: store,
    }
}

/// Every fault filesystem of the run is gone (unmounted at teardown).
fn assert_no_mount_left(run_dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let run_dir = run_dir.display().to_string();
    assert!(
        !mounts
            .lines()
            .any(|line| line.starts_with("kchaos-faultfs:") && line.contains(&run_dir)),
        "a fault filesystem of {run_dir} is still mounted:\n{mounts}"
    );
}

fn assert_nothing_lost(run: &Run, name: &str) {
    assert_eq!(run.code, Some(0), "{name}:\n{}", run.text);
    assert_eq!(run.lost(), Some(0), "{name}:\n{}", run.text);
    assert!(!run.text.contains("sends: 0 ok"), "{name}:\n{}", run.text);
}

fn assert_loss_found(run: &Run, name: &str) {
    assert_eq!(
        run.code,
        Some(0),
        "the checker should find the loss in {name}:\n{}",
        run.text
    );
    assert!(
        run.lost().is_some_and(|lost| lost > 0),
        "{name}:\n{}",
        run.text
    );
}

#[test]
fn a_power_loss_of_every_broker_on_kafkas_defaults_loses_acknowledged_messages() {
    let run = run_workload("power-loss-all-brokers", "8s");
    assert_loss_found(&run, "power-loss-all-brokers");
    // One power-loss per broker, all invoked before any completed, each saying what it dropped.
    let ops = run.nemesis("power-loss");
    let invokes: Vec<&history::Op> = ops
        .iter()
        .filter(|op| op.op_type == OpType::Invoke)
        .collect();
    assert_eq!(invokes.len(), 3, "{ops:?}");
    let first_completion = ops.iter().position(|op| op.op_type == OpType::Info);
    assert_eq!(first_completion, Some(3), "{ops:?}");
    for op in ops.iter().filter(|op| op.op_type == OpType::Info) {
        assert!(
            op.value["lost"]["files_rolled_back"].as_u64().unwrap_or(0) > 0,
            "{op:?}"
        );
    }
}

#[test]
fn a_power_loss_of_every_broker_with_an_fsync_per_message_loses_nothing() {
    let run = run_workload("power-loss-all-brokers-flushed", "8s");
    assert_nothing_lost(&run, "power-loss-all-brokers-flushed");
}

#[test]
fn a_leader_that_loses_its_page_cache_loses_nothing_acknowledged() {
    let run = run_workload("lose-unfsynced-leader", "8s");
    assert_nothing_lost(&run, "lose-unfsynced-leader");
    assert_eq!(run.nemesis("lose-unfsynced").len(), 2);
}

#[test]
fn a_full_disk_under_the_leader_loses_nothing_and_the_report_shows_the_errors() {
    let run = run_workload("disk-full-leader", "10s");
    assert_nothing_lost(&run, "disk-full-leader");
    assert_eq!(run.nemesis("disk-full").len(), 2);
    assert_eq!(run.nemesis("heal-disk").len(), 2);
    let report = std::fs::read_to_string(run.dir.join("report.html")).unwrap();
    assert!(
        report.contains(r#"id="client-errors""#),
        "no client errors table"
    );
    assert!(
        report.contains("KAFKA_STORAGE_ERROR"),
        "the report does not show the storage errors clients saw"
    );
    assert!(report.contains("disk-full broker-"), "no disk-full window");
    // The broker said why it stopped, and came back.
    let logs: String = ["broker-1", "broker-2", "broker-3"]
        .iter()
        .map(|name| std::fs::read_to_string(run.dir.join(format!("{name}.log"))).unwrap())
        .collect();
    assert!(
        logs.contains("Shutdown broker because all log dirs in"),
        "no broker said its log dir failed"
    );
}

#[test]
fn a_coordinator_that_loses_power_keeps_every_acknowledged_write() {
    let run = run_workload("coordinator-power-loss", "16s");
    assert_nothing_lost(&run, "coordinator-power-loss");
    let losses = run.nemesis("power-loss");
    assert!(
        losses
            .iter()
            .any(|op| op.op_type == OpType::Info && op.value["error"].is_null()),
        "the coordinator's power loss did not happen: {losses:?}"
    );
}

#[test]
fn the_last_replica_standing_loses_acknowledged_messages_with_min_insync_replicas_one() {
    let run = run_workload("last-replica-standing-min-isr-1", "12s");
    assert_loss_found(&run, "last-replica-standing-min-isr-1");
}

#[test]
fn the_last_replica_standing_loses_nothing_with_min_insync_replicas_two() {
    let run = run_workload("last-replica-standing-min-isr-2", "12s");
    assert_nothing_lost(&run, "last-replica-standing-min-isr-2");
}

#[test]
fn a_slow_disk_under_the_leader_keeps_its_followers_in_the_isr() {
    let run = run_workload("slow-disk-leader", "8s");
    assert_nothing_lost(&run, "slow-disk-leader");
    // The leadership samples (every 250 ms, a line when something changed): t-0 keeps its
    // full ISR all along.
    let samples = std::fs::read_to_string(run.dir.join("leadership.jsonl")).unwrap();
    let mut seen = 0;
    for line in samples.lines() {
        let sample: serde_json::Value = serde_json::from_str(line).unwrap();
        if sample["partition"] != 0 {
            continue;
        }
        seen += 1;
        assert_eq!(
            sample["isr"].as_array().map(Vec::len),
            Some(3),
            "the ISR shrank under a slow disk: {line}"
        );
    }
    assert!(seen > 0, "no leadership sample of t-0");
}
