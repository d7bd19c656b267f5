//! The workloads of the idempotent producer and of consumer groups, in a short form, end to
//! end through `kchaos workload` against a real coordinator and three real brokers, one seed
//! each: the result must match the expectation (exit 0), and the history must show that the
//! faults happened where they were aimed and that the group did what it is judged on.
//! `idempotent-kill-leader` expects no duplicate; `group-kill-coordinator` kills the broker
//! that FindCoordinator names for the group and rebalances the group while it is down;
//! `group-kill-consumers` kills and pauses group members. The runs take turns (one cluster at a
//! time).
#![allow(clippy::unwrap_used)]

mod workload_support;

use history::{Op, OpType, Process};
use workload_support::{WorkloadRun, run_workload};

fn assert_passed(name: &str, run: &WorkloadRun) {
    assert_eq!(run.code, Some(0), "{name}:\n{}", run.text);
    assert!(run.text.contains("lost: 0"), "{name}:\n{}", run.text);
    assert!(!run.text.contains("sends: 0 ok"), "{name}:\n{}", run.text);
}

/// The nemesis operations `f` that were done (an `info` without `error`), by node.
fn faults_done(ops: &[Op], f: &str) -> Vec<String> {
    ops.iter()
        .filter(|op| op.process == Process::Nemesis && op.op_type == OpType::Info && op.f == f)
        .filter(|op| op.value.get("error").is_none())
        .filter_map(|op| op.value["node"].as_str().map(str::to_string))
        .collect()
}

fn completed(ops: &[Op], f: &str, op_type: OpType) -> usize {
    ops.iter()
        .filter(|op| op.f == f && op.op_type == op_type)
        .count()
}

#[test]
fn idempotent_producers_through_leader_kills_write_each_message_once() {
    let run = run_workload("idempotent-kill-leader", "10s");
    assert_passed("idempotent-kill-leader", &run);
    let results = run.results();
    assert_eq!(results["expectations"]["duplicates"], "none", "{results:#}");
    assert_eq!(run.count("duplicated"), 0);
    assert_eq!(run.count("reordered"), 0);
    let ops = run.history();
    assert!(!faults_done(&ops, "kill").is_empty(), "{}", run.text);
}

#[test]
fn a_group_whose_coordinator_is_killed_keeps_its_commits_and_consumes_everything() {
    let run = run_workload("group-kill-coordinator", "10s");
    assert_passed("group-kill-coordinator", &run);
    let ops = run.history();
    let killed = faults_done(&ops, "kill");
    assert!(
        !killed.is_empty() && killed.iter().all(|node| node.starts_with("broker-")),
        "{killed:?}\n{}",
        run.text
    );
    // The group rebalanced while its coordinator was down (a member left and rejoined), so
    // members fetched committed offsets from the coordinator that took over.
    assert!(!faults_done(&ops, "restart").is_empty(), "{}", run.text);
    let fetched_after_a_kill = ops
        .iter()
        .skip_while(|op| !(op.process == Process::Nemesis && op.f == "kill"))
        .filter(|op| op.f == "assign" && op.op_type == OpType::Ok)
        .filter(|op| {
            op.value["committed"]
                .as_array()
                .is_some_and(|committed| !committed.is_empty())
        })
        .count();
    assert!(fetched_after_a_kill > 0, "{}", run.text);
    assert!(completed(&ops, "commit", OpType::Ok) > 0);
    assert_eq!(run.count("nonmonotonic-commit"), 0);
    assert_eq!(run.count("unconsumed"), 0);
}

#[test]
fn a_group_whose_members_are_killed_and_paused_consumes_every_acknowledged_message() {
    let run = run_workload("group-kill-consumers", "12s");
    assert_passed("group-kill-consumers", &run);
    let ops = run.history();
    let hit: Vec<String> = ["kill", "pause"]
        .iter()
        .flat_map(|f| faults_done(&ops, f))
        .collect();
    assert!(
        !hit.is_empty() && hit.iter().all(|node| node.starts_with("consumer-")),
        "{hit:?}\n{}",
        run.text
    );
    // A kill is a SIGKILL of the member's worker process: a crash of the process it names, and
    // a fresh worker (a new process number) subscribes in its place.
    let killed: Vec<u64> = ops
        .iter()
        .filter(|op| op.process == Process::Nemesis && op.op_type == OpType::Info)
        .filter(|op| op.f == "kill" && op.value.get("error").is_none())
        .filter_map(|op| op.value["process"].as_u64())
        .collect();
    let crashed: Vec<u64> = ops
        .iter()
        .filter(|op| op.process == Process::Harness && op.f == "client-crash")
        .filter(|op| op.value["cause"] == "SIGKILL by the nemesis")
        .filter_map(|op| op.value["process"].as_u64())
        .collect();
    assert!(!killed.is_empty(), "{}", run.text);
    assert_eq!(killed, crashed, "{}", run.text);
    let subscribers: Vec<u64> = ops
        .iter()
        .filter(|op| op.f == "subscribe" && op.op_type == OpType::Ok)
        .filter_map(|op| match op.process {
            Process::Client(process) => Some(process),
            _ => None,
        })
        .collect();
    assert_eq!(subscribers.len(), 3 + killed.len(), "{subscribers:?}");
    // Every fault moved partitions: more assignments than the first one per member.
    assert!(completed(&ops, "assign", OpType::Ok) > 3, "{}", run.text);
    assert!(completed(&ops, "revoke", OpType::Ok) > 0);
    assert_eq!(run.count("unconsumed"), 0);
    assert_eq!(run.count("poll-skip"), 0);
    assert_eq!(run.count("nonmonotonic-poll"), 0);
}
