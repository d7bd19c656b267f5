//! Unit tests of one replica's state: the high watermark from the ISR's log ends, stale states
//! ignored, ISR shrink and expansion, a sole replica leading from its log end.

use std::time::Duration;

use super::*;
use crate::broker::log::batch::tests::encoded_batch;
use crate::broker::log::partition_log::LogConfig;
use crate::broker::log::records::DecompressionBudget;

fn replica(dir: &std::path::Path, broker_id: i32) -> Partition {
    let config = LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 4096,
        flush_interval_messages: u64::MAX,
        message_max_bytes: 1 << 20,
    };
    let (log, _) = PartitionLog::open(dir, config).expect("open");
    Partition::new(
        "t",
        0,
        broker_id,
        log,
        LeaderAndIsr::unelected(vec![1, 2, 3]),
        None,
        ReplicaShared {
            isr_wakeup: Arc::new(Notify::new()),
            log_dir: Arc::new(LogDirFailures::new(std::path::Path::new("/test-logs"))),
        },
    )
}

fn state(leader: i32, leader_epoch: i32, isr: &[i32], controller_epoch: i32) -> LeaderAndIsr {
    LeaderAndIsr {
        leader,
        leader_epoch,
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
        elr: Vec::new(),
        controller_epoch,
        zk_version: leader_epoch,
    }
}

#[test]
fn the_high_watermark_is_the_smallest_log_end_in_the_isr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let leader = replica(dir.path(), 1);
    assert_eq!(
        leader.apply_state(state(1, 0, &[1, 2, 3], 1)),
        RoleChange::BecameLeader { leader_epoch: 0 }
    );
    leader
        .append_as_leader(
            &encoded_batch(10),
            true,
            2,
            &mut DecompressionBudget::new(u64::MAX),
        )
        .expect("append");
    assert_eq!(leader.offsets().high_watermark, 0, "no follower has it yet");
    leader.record_follower_fetch(2, 10);
    assert_eq!(leader.offsets().high_watermark, 0, "follower 3 has not");
    leader.record_follower_fetch(3, 4);
    assert_eq!(leader.offsets().high_watermark, 4);
    leader.record_follower_fetch(3, 10);
    assert_eq!(leader.offsets().high_watermark, 10);
    // Only the leader serves reads; followers refuse.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let follower = replica(dir2.path(), 2);
    assert_eq!(
        follower.apply_state(state(1, 0, &[1, 2, 3], 1)),
        RoleChange::BecameFollower {
            leader: 1,
            leader_epoch: 0
        }
    );
    assert!(matches!(
        follower.read(0, 100, -1),
        Err(PartitionError::NotLeader { .. })
    ));
}

#[test]
fn states_from_an_older_controller_or_leader_epoch_are_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let partition = replica(dir.path(), 2);
    partition.apply_state(state(1, 5, &[1, 2, 3], 7));
    assert_eq!(
        partition.apply_state(state(2, 6, &[2, 3], 6)),
        RoleChange::Stale,
        "stale controller epoch"
    );
    assert_eq!(
        partition.apply_state(state(3, 4, &[3], 7)),
        RoleChange::Stale
    );
    assert_eq!(partition.leader_and_isr().leader, 1);
    assert_eq!(
        partition.apply_state(state(2, 6, &[2, 3], 8)),
        RoleChange::BecameLeader { leader_epoch: 6 }
    );
}

#[test]
fn lagging_followers_leave_the_isr_and_caught_up_ones_rejoin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let leader = replica(dir.path(), 1);
    leader.apply_state(state(1, 0, &[1, 2], 1));
    leader
        .append_as_leader(
            &encoded_batch(3),
            false,
            1,
            &mut DecompressionBudget::new(u64::MAX),
        )
        .expect("append");
    // Neither follower fetches: past the lag both are out (3 was never in).
    let live = [1, 2, 3];
    assert_eq!(leader.isr_change(Duration::from_secs(60), &live), None);
    let change = leader.isr_change(Duration::ZERO, &live).expect("shrink");
    assert_eq!(change.new_isr, vec![1]);
    assert!(leader.isr_written(&change, 1));
    assert_eq!(leader.offsets().high_watermark, 3);
    // Follower 3 catches up: it may join.
    leader.record_follower_fetch(3, 3);
    assert_eq!(
        leader.isr_change(Duration::from_secs(60), &[1, 2]),
        None,
        "a broker that is not registered does not join"
    );
    let change = leader
        .isr_change(Duration::from_secs(60), &live)
        .expect("expand");
    assert_eq!(change.new_isr, vec![1, 3]);
}

#[test]
fn a_replica_the_controller_removed_rejoins_only_after_a_new_fetch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let leader = replica(dir.path(), 1);
    leader.apply_state(state(1, 0, &[1, 2, 3], 1));
    leader
        .append_as_leader(
            &encoded_batch(3),
            true,
            2,
            &mut DecompressionBudget::new(u64::MAX),
        )
        .expect("append");
    leader.record_follower_fetch(2, 3);
    leader.record_follower_fetch(3, 3);
    assert_eq!(leader.offsets().high_watermark, 3);
    // Broker 3 died; the controller took it out of the ISR (same leader epoch).
    let mut removed = state(1, 0, &[1, 2], 2);
    removed.zk_version = 1;
    assert_eq!(leader.apply_state(removed), RoleChange::Unchanged);
    // Its last fetch was caught up, but it is gone: it does not come back by itself...
    let live = [1, 2, 3];
    assert_eq!(leader.isr_change(Duration::from_secs(60), &live), None);
    // ...only after fetching again (a restarted broker).
    leader.record_follower_fetch(3, 3);
    let change = leader
        .isr_change(Duration::from_secs(60), &live)
        .expect("expand");
    assert_eq!(change.new_isr, vec![1, 2, 3]);
}

#[test]
fn a_sole_replica_leads_from_its_log_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 4096,
        flush_interval_messages: u64::MAX,
        message_max_bytes: 1 << 20,
    };
    {
        let (mut log, _) = PartitionLog::open(dir.path(), config).expect("open");
        log.append_as_leader(
            &encoded_batch(5),
            0,
            &mut DecompressionBudget::new(u64::MAX),
        )
        .expect("append");
    }
    // Reopened as at start-up: unelected, no checkpointed high watermark.
    let (log, _) = PartitionLog::open(dir.path(), config).expect("reopen");
    let partition = Partition::new(
        "t",
        0,
        1,
        log,
        LeaderAndIsr::unelected(vec![1]),
        None,
        ReplicaShared {
            isr_wakeup: Arc::new(Notify::new()),
            log_dir: Arc::new(LogDirFailures::new(std::path::Path::new("/test-logs"))),
        },
    );
    let mut sole = state(1, 1, &[1], 1);
    sole.replicas = vec![1];
    partition.apply_state(sole);
    assert_eq!(partition.offsets().high_watermark, 5);
}
