//! Every shipped replicated workload, in a short form, end to end through `kchaos workload`
//! against a real coordinator and three real brokers: its result must match its expectation
//! (exit 0). The single-broker workloads are in workloads_smoke.rs. The runs take turns (one
//! cluster at a time): on two cores, several three-broker clusters at once would miss their
//! 1.5 s sessions and the runs would judge the machine, not the system.
#![allow(clippy::unwrap_used)]

mod workload_support;

/// Runs `kchaos workload NAME --duration D --seed 1` and returns (exit code, stdout + stderr).
fn run_workload(name: &str, duration: &str) -> (Option<i32>, String) {
    let run = workload_support::run_workload(name, duration);
    (run.code, run.text)
}

/// The run matched a `lost = "none"` expectation: exit 0, nothing lost, something acknowledged.
fn assert_nothing_lost(name: &str, duration: &str) {
    let (code, text) = run_workload(name, duration);
    assert_eq!(code, Some(0), "{name}:\n{text}");
    assert!(text.contains("lost: 0"), "{name}:\n{text}");
    assert!(!text.contains("sends: 0 ok"), "{name}:\n{text}");
}

/// The run matched a `lost = "some"` expectation: exit 0 and a lost count above zero.
fn assert_loss_found(name: &str, duration: &str) {
    let (code, text) = run_workload(name, duration);
    assert_eq!(
        code,
        Some(0),
        "the checker should find the loss in {name}:\n{text}"
    );
    let lost = text
        .lines()
        .find_map(|line| line.split("lost: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse::<u64>().ok());
    assert!(matches!(lost, Some(count) if count > 0), "{name}:\n{text}");
}

#[test]
fn acks_all_kill_leader_loses_nothing() {
    assert_nothing_lost("acks-all-kill-leader", "10s");
}

#[test]
fn acks_all_pause_leader_loses_nothing() {
    assert_nothing_lost("acks-all-pause-leader", "10s");
}

#[test]
fn acks_all_kill_controller_loses_nothing() {
    assert_nothing_lost("acks-all-kill-controller", "10s");
}

#[test]
fn acks_all_rolling_restart_loses_nothing() {
    assert_nothing_lost("acks-all-rolling-restart", "8s");
}

#[test]
fn random_faults_lose_nothing() {
    assert_nothing_lost("random-faults", "8s");
}

#[test]
fn clean_election_loses_nothing() {
    assert_nothing_lost("clean-election-unavailable", "12s");
}

#[test]
fn unclean_election_loss_is_found() {
    assert_loss_found("unclean-election-loss", "12s");
}

#[test]
fn acks1_leader_kill_loss_is_found() {
    assert_loss_found("acks1-kill-leader", "11s");
}

// The workloads `kchaos selftest` runs its planted bugs against, whole (their scripts end
// within their durations): on a correct cluster each must pass, or a catch of the selftest
// could be a false alarm.

#[test]
fn freezing_the_successor_then_killing_the_leader_loses_nothing() {
    assert_nothing_lost("acks-all-freeze-successor-kill-leader", "14s");
}

#[test]
fn freezing_the_successor_then_the_leader_loses_nothing() {
    assert_nothing_lost("acks-all-freeze-successor-pause-leader", "14s");
}

#[test]
fn a_rebalance_to_a_frozen_preferred_replica_loses_nothing() {
    assert_nothing_lost("acks-all-freeze-preferred-rebalance", "14s");
}

#[test]
fn a_crash_of_every_broker_loses_nothing() {
    assert_nothing_lost("acks-all-crash-all-brokers", "14s");
}

#[test]
fn an_old_leader_that_returns_and_leads_again_loses_nothing() {
    assert_nothing_lost("acks-all-old-leader-returns", "22s");
}

#[test]
fn an_isr_shrink_while_the_coordinator_is_down_loses_nothing() {
    assert_nothing_lost("acks-all-coordinator-down-isr-shrink", "15s");
}

#[test]
fn a_coordinator_killed_right_after_an_isr_shrink_loses_nothing() {
    assert_nothing_lost("acks-all-kill-coordinator-after-isr-shrink", "14s");
}

#[test]
fn unclean_election_with_min_insync_replicas_two_loses_nothing_acknowledged() {
    assert_nothing_lost("unclean-election-min-isr", "18s");
}

#[test]
fn a_dead_controller_is_replaced_in_time() {
    assert_nothing_lost("kill-controller-keep-down", "22s");
}
