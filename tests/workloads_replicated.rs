//! Every shipped replicated workload, in a short form, end to end through `kchaos workload`
//! against a real coordinator and three real brokers: its result must match its expectation
//! (exit 0). The single-broker workloads are in workloads_smoke.rs, the disk-fault ones in
//! workloads_disk.rs. The runs take turns (one cluster at a time: `workload_support`).
#![allow(clippy::unwrap_used)]

mod workload_support;

use workload_support::run_workload;

/// The run matched a `lost = "none"` expectation: exit 0, nothing lost, something acknowledged.
fn assert_nothing_lost(name: &str, duration: &str) {
    workload_support::assert_nothing_lost(&run_workload(name, duration), name);
}

/// The run matched a `lost = "some"` expectation: exit 0 and a lost count above zero.
fn assert_loss_found(name: &str, duration: &str) {
    workload_support::assert_loss_found(&run_workload(name, duration), name);
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
    assert_nothing_lost("acks-all-kill-coordinator-after-isr-shrink", "16s");
}

#[test]
fn unclean_election_with_min_insync_replicas_two_loses_nothing_acknowledged() {
    assert_nothing_lost("unclean-election-min-isr", "18s");
}

#[test]
fn a_dead_controller_is_replaced_in_time() {
    assert_nothing_lost("kill-controller-keep-down", "22s");
}
