//! The disk-fault workloads, each end to end through `kchaos workload` (one seed) against a
//! real coordinator and three real brokers whose data directories the harness put on fault
//! filesystems: the result must match the workload's expectation (exit 0), and what the run
//! left must show the faults — power losses in the history with what each dropped, the errors
//! clients saw in the report, an ISR that a slow disk did not shrink. The runs take turns (one
//! cluster at a time: `workload_support`). They need /dev/fuse and root, as the faultfs tests
//! do (`.ci/setup` installs fuse3).
#![allow(clippy::unwrap_used)]

mod workload_support;

use std::path::Path;

use history::{OpType, Process};
use workload_support::{WorkloadRun, assert_loss_found, assert_nothing_lost};

/// Runs the workload (its turn, one seed), and checks that its fault filesystems are gone.
fn run_workload(name: &str, duration: &str) -> WorkloadRun {
    let run = workload_support::run_workload(name, duration);
    assert_no_mount_left(&run.dir);
    run
}

/// The nemesis operations `f` of a run.
fn nemesis(run: &WorkloadRun, f: &str) -> Vec<history::Op> {
    history::read_history(&run.dir.join("history.jsonl"))
        .unwrap()
        .map(Result::unwrap)
        .filter(|op| op.process == Process::Nemesis && op.f == f)
        .collect()
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

#[test]
fn a_power_loss_of_every_broker_on_kafkas_defaults_loses_acknowledged_messages() {
    let run = run_workload("power-loss-all-brokers", "8s");
    assert_loss_found(&run, "power-loss-all-brokers");
    // One power-loss per broker, all invoked before any completed, each saying what it dropped.
    let ops = nemesis(&run, "power-loss");
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
    assert_eq!(nemesis(&run, "lose-unfsynced").len(), 2);
}

#[test]
fn a_full_disk_under_the_leader_loses_nothing_and_the_report_shows_the_errors() {
    let run = run_workload("disk-full-leader", "10s");
    assert_nothing_lost(&run, "disk-full-leader");
    assert_eq!(nemesis(&run, "disk-full").len(), 2);
    assert_eq!(nemesis(&run, "heal-disk").len(), 2);
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
    let losses = nemesis(&run, "power-loss");
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
