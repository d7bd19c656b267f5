//! The checker on hand-written histories of consumer groups: reads judged per assignment (a
//! rebalance is not a seek nor a skip), the first read after an assignment judged against the
//! committed offset it started from, `nonmonotonic-commit` and `unconsumed`, each beside a
//! clean twin.

#![allow(clippy::unwrap_used)]

use super::tests::{History, assert_only, records_json};
use super::*;

const GROUP: &str = "g";

/// The group operations of a member, on top of the common history builder.
trait GroupHistory {
    fn subscribe(&mut self, time_ms: u64, consumer: u64) -> &mut Self;
    /// A rebalance's assignment: `partitions`, starting at `committed` (`None`: the member
    /// could not fetch them).
    fn group_assign(
        &mut self,
        time_ms: u64,
        consumer: u64,
        partitions: &[i32],
        committed: Option<&[(i32, i64)]>,
    ) -> &mut Self;
    fn revoke(&mut self, time_ms: u64, consumer: u64, partitions: &[i32]) -> &mut Self;
    /// A commit invoked at `time_ms`, completed (`op_type`) at `completed_ms`.
    fn commit_at(
        &mut self,
        time_ms: u64,
        completed_ms: u64,
        consumer: u64,
        offsets: &[(i32, i64)],
        op_type: &str,
    ) -> &mut Self;
    fn commit(&mut self, time_ms: u64, consumer: u64, offsets: &[(i32, i64)]) -> &mut Self;
}

fn pairs(pairs: &[(i32, i64)]) -> String {
    let items: Vec<String> = pairs.iter().map(|(p, o)| format!("[{p},{o}]")).collect();
    format!("[{}]", items.join(","))
}

fn list(partitions: &[i32]) -> String {
    let items: Vec<String> = partitions.iter().map(i32::to_string).collect();
    format!("[{}]", items.join(","))
}

impl GroupHistory for History {
    fn subscribe(&mut self, time_ms: u64, consumer: u64) -> &mut Self {
        let value = format!(r#"{{"group":"{GROUP}","topics":["t"]}}"#);
        self.op(
            time_ms,
            &consumer.to_string(),
            "invoke",
            "subscribe",
            &value,
        )
        .op(time_ms, &consumer.to_string(), "ok", "subscribe", &value)
    }

    fn group_assign(
        &mut self,
        time_ms: u64,
        consumer: u64,
        partitions: &[i32],
        committed: Option<&[(i32, i64)]>,
    ) -> &mut Self {
        let invoke = format!(r#"{{"group":"{GROUP}","partitions":{}}}"#, list(partitions));
        let ok = match committed {
            Some(committed) => format!(
                r#"{{"group":"{GROUP}","partitions":{},"committed":{}}}"#,
                list(partitions),
                pairs(committed)
            ),
            None => invoke.clone(),
        };
        self.op(time_ms, &consumer.to_string(), "invoke", "assign", &invoke)
            .op(time_ms, &consumer.to_string(), "ok", "assign", &ok)
    }

    fn revoke(&mut self, time_ms: u64, consumer: u64, partitions: &[i32]) -> &mut Self {
        let value = format!(r#"{{"group":"{GROUP}","partitions":{}}}"#, list(partitions));
        self.op(time_ms, &consumer.to_string(), "invoke", "revoke", &value)
            .op(time_ms, &consumer.to_string(), "ok", "revoke", &value)
    }

    fn commit_at(
        &mut self,
        time_ms: u64,
        completed_ms: u64,
        consumer: u64,
        offsets: &[(i32, i64)],
        op_type: &str,
    ) -> &mut Self {
        let value = format!(r#"{{"group":"{GROUP}","offsets":{}}}"#, pairs(offsets));
        self.op(time_ms, &consumer.to_string(), "invoke", "commit", &value)
            .op(
                completed_ms,
                &consumer.to_string(),
                op_type,
                "commit",
                &value,
            )
    }

    fn commit(&mut self, time_ms: u64, consumer: u64, offsets: &[(i32, i64)]) -> &mut Self {
        self.commit_at(time_ms, time_ms + 1, consumer, offsets, "ok")
    }
}

/// Five acknowledged sends to partition 0, offsets 0..5, values `1-0`..`1-4`.
fn sends(history: &mut History) {
    for offset in 0..5 {
        history.send(offset as u64 * 2, 1, &format!("1-{offset}"), 0, offset);
    }
}

fn record(offset: i64) -> (i32, i64, String) {
    (0, offset, format!("1-{offset}"))
}

fn poll_offsets(history: &mut History, time_ms: u64, consumer: u64, offsets: &[i64]) {
    let records: Vec<(i32, i64, String)> = offsets.iter().map(|o| record(*o)).collect();
    let borrowed: Vec<(i32, i64, &str)> = records
        .iter()
        .map(|(p, o, v)| (*p, *o, v.as_str()))
        .collect();
    history.poll(time_ms, consumer, &borrowed);
}

fn final_read(history: &mut History) {
    let records: Vec<(i32, i64, String)> = (0..5).map(record).collect();
    let borrowed: Vec<(i32, i64, &str)> = records
        .iter()
        .map(|(p, o, v)| (*p, *o, v.as_str()))
        .collect();
    history.final_read(100, 0, &borrowed);
}

/// Two members: 9 reads 0..3 and commits 3; a rebalance moves the partition to 10, which
/// starts at the committed 3 and reads the rest.
fn handover() -> History {
    let mut history = History::default();
    sends(&mut history);
    history
        .subscribe(20, 9)
        .subscribe(20, 10)
        .group_assign(21, 9, &[0], Some(&[]));
    poll_offsets(&mut history, 22, 9, &[0, 1, 2]);
    history
        .commit(24, 9, &[(0, 3)])
        .revoke(30, 9, &[0])
        .group_assign(31, 9, &[], Some(&[]))
        .group_assign(31, 10, &[0], Some(&[(0, 3)]));
    poll_offsets(&mut history, 32, 10, &[3, 4]);
    history.commit(34, 10, &[(0, 5)]);
    final_read(&mut history);
    history
}

#[test]
fn a_group_that_hands_a_partition_over_at_its_commit_is_valid() {
    let results = handover().check();
    assert_eq!(results.valid, Validity::True, "{results:#?}");
    assert!(results.anomaly_types.is_empty(), "{results:#?}");
    assert_eq!(results.operations["commit"].ok, 2);
    assert_eq!(results.operations["subscribe"].count, 2);
}

#[test]
fn rereading_from_the_commit_after_a_rebalance_is_not_nonmonotonic() {
    // 9 reads 0..3 but commits only 1; the partition comes back to it at 1: it reads 1 again.
    let mut rebalanced = History::default();
    sends(&mut rebalanced);
    rebalanced.subscribe(20, 9).group_assign(21, 9, &[0], None);
    poll_offsets(&mut rebalanced, 22, 9, &[0, 1, 2]);
    rebalanced
        .commit(24, 9, &[(0, 1)])
        .revoke(30, 9, &[0])
        .group_assign(31, 9, &[0], Some(&[(0, 1)]));
    poll_offsets(&mut rebalanced, 32, 9, &[1, 2, 3, 4]);
    final_read(&mut rebalanced);
    let results = rebalanced.check();
    assert_eq!(results.valid, Validity::True, "{results:#?}");

    // The same reads without the rebalance between them go backwards.
    let mut seek_free = History::default();
    sends(&mut seek_free);
    seek_free.subscribe(20, 9).group_assign(21, 9, &[0], None);
    poll_offsets(&mut seek_free, 22, 9, &[0, 1, 2]);
    seek_free.commit(24, 9, &[(0, 1)]);
    poll_offsets(&mut seek_free, 32, 9, &[1, 2, 3, 4]);
    final_read(&mut seek_free);
    let results = seek_free.check();
    assert_only(&results, AnomalyKind::NonmonotonicPoll, 1);
}

#[test]
fn jumping_to_another_members_commit_after_a_rebalance_is_not_a_skip() {
    // 9 reads 0..2; 10 reads 2..5 meanwhile and commits 5; 9 gets the partition back at 5.
    let mut rebalanced = History::default();
    sends(&mut rebalanced);
    rebalanced.subscribe(20, 9).subscribe(20, 10);
    rebalanced.group_assign(21, 9, &[0], Some(&[]));
    poll_offsets(&mut rebalanced, 22, 9, &[0, 1]);
    rebalanced
        .commit(23, 9, &[(0, 2)])
        .revoke(24, 9, &[0])
        .group_assign(25, 10, &[0], Some(&[(0, 2)]));
    poll_offsets(&mut rebalanced, 26, 10, &[2, 3, 4]);
    rebalanced
        .commit(28, 10, &[(0, 5)])
        .revoke(29, 10, &[0])
        .group_assign(30, 9, &[0], Some(&[(0, 5)]));
    poll_offsets(&mut rebalanced, 31, 9, &[]);
    final_read(&mut rebalanced);
    let results = rebalanced.check();
    assert_eq!(results.valid, Validity::True, "{results:#?}");

    // Without the rebalance, 9's jump from 1 to 4 skips 2 and 3 (which no member consumed).
    let mut skipping = History::default();
    sends(&mut skipping);
    skipping
        .subscribe(20, 9)
        .group_assign(21, 9, &[0], Some(&[]));
    poll_offsets(&mut skipping, 22, 9, &[0, 1]);
    poll_offsets(&mut skipping, 26, 9, &[4]);
    final_read(&mut skipping);
    let results = skipping.check();
    assert_eq!(results.count(AnomalyKind::PollSkip), 1, "{results:#?}");
    assert_eq!(results.count(AnomalyKind::Unconsumed), 2, "{results:#?}");
}

#[test]
fn the_first_read_of_an_assignment_is_judged_against_the_committed_offset() {
    // 10 starts at the committed 2 but first reads 4: offsets 2 and 3 were skipped.
    let mut history = History::default();
    sends(&mut history);
    history.subscribe(20, 9).subscribe(20, 10);
    history.group_assign(21, 9, &[0], Some(&[]));
    poll_offsets(&mut history, 22, 9, &[0, 1]);
    history
        .commit(23, 9, &[(0, 2)])
        .revoke(24, 9, &[0])
        .group_assign(25, 10, &[0], Some(&[(0, 2)]));
    poll_offsets(&mut history, 26, 10, &[4]);
    final_read(&mut history);
    let results = history.check();
    // 2 and 3 were never consumed by the group either.
    assert_eq!(results.count(AnomalyKind::PollSkip), 1, "{results:#?}");
    assert_eq!(results.count(AnomalyKind::Unconsumed), 2, "{results:#?}");
    let example = &results.anomaly(AnomalyKind::PollSkip).examples[0];
    assert!(
        example
            .explanation
            .contains("started at the group's committed offset 2"),
        "{example:?}"
    );
    assert_eq!(example.skipped, Some(2));

    // Reading below where it started is nonmonotonic.
    let mut below = History::default();
    sends(&mut below);
    below
        .subscribe(20, 10)
        .group_assign(25, 10, &[0], Some(&[(0, 3)]));
    poll_offsets(&mut below, 26, 10, &[0, 1, 2, 3, 4]);
    final_read(&mut below);
    let results = below.check();
    assert_only(&results, AnomalyKind::NonmonotonicPoll, 1);
}

#[test]
fn nonmonotonic_commit_a_commit_below_one_acknowledged_before_it() {
    let mut history = History::default();
    sends(&mut history);
    history
        .subscribe(20, 9)
        .group_assign(21, 9, &[0], Some(&[]));
    poll_offsets(&mut history, 22, 9, &[0, 1, 2, 3, 4]);
    history.commit(24, 9, &[(0, 5)]).commit(26, 9, &[(0, 3)]);
    final_read(&mut history);
    let results = history.check();
    assert_only(&results, AnomalyKind::NonmonotonicCommit, 1);
    let example = &results.anomaly(AnomalyKind::NonmonotonicCommit).examples[0];
    assert_eq!(example.offset, Some(3));
    assert_eq!(example.previous_offset, Some(5));
    assert_eq!(example.group.as_deref(), Some(GROUP));
    assert!(results.anomaly(AnomalyKind::NonmonotonicCommit).invalid);

    // Concurrent commits (the lower one invoked before the higher one completed), and commits
    // that failed or are indeterminate, do not count.
    let mut concurrent = History::default();
    sends(&mut concurrent);
    concurrent
        .subscribe(20, 9)
        .subscribe(20, 10)
        .group_assign(21, 9, &[0], Some(&[]));
    poll_offsets(&mut concurrent, 22, 9, &[0, 1, 2, 3, 4]);
    concurrent
        .op(
            24,
            "9",
            "invoke",
            "commit",
            r#"{"group":"g","offsets":[[0,5]]}"#,
        )
        .op(
            24,
            "10",
            "invoke",
            "commit",
            r#"{"group":"g","offsets":[[0,3]]}"#,
        )
        .op(
            25,
            "9",
            "ok",
            "commit",
            r#"{"group":"g","offsets":[[0,5]]}"#,
        )
        .op(
            26,
            "10",
            "ok",
            "commit",
            r#"{"group":"g","offsets":[[0,3]]}"#,
        )
        .commit_at(27, 28, 9, &[(0, 2)], "fail")
        .commit_at(29, 30, 9, &[(0, 1)], "info");
    final_read(&mut concurrent);
    let results = concurrent.check();
    assert_eq!(results.valid, Validity::True, "{results:#?}");
    assert_eq!(results.operations["commit"].fail, 1);
}

#[test]
fn nonmonotonic_commit_an_assignment_that_finds_an_older_commit_or_none() {
    let lost_commit = |found: Option<(i32, i64)>| {
        let mut history = History::default();
        sends(&mut history);
        history
            .subscribe(20, 9)
            .subscribe(20, 10)
            .group_assign(21, 9, &[0], Some(&[]));
        poll_offsets(&mut history, 22, 9, &[0, 1, 2, 3, 4]);
        let found: Vec<(i32, i64)> = found.into_iter().collect();
        history
            .commit(24, 9, &[(0, 5)])
            .revoke(30, 9, &[0])
            .group_assign(31, 10, &[0], Some(&found));
        // 10 reads again from where it started.
        let from = found.first().map_or(0, |(_, offset)| *offset);
        poll_offsets(&mut history, 32, 10, &(from..5).collect::<Vec<_>>());
        history.commit(34, 10, &[(0, 5)]);
        final_read(&mut history);
        history.check()
    };
    let older = lost_commit(Some((0, 2)));
    assert_only(&older, AnomalyKind::NonmonotonicCommit, 1);
    let example = &older.anomaly(AnomalyKind::NonmonotonicCommit).examples[0];
    assert!(
        example.explanation.contains("found committed offset 2"),
        "{example:?}"
    );
    let none = lost_commit(None);
    assert_only(&none, AnomalyKind::NonmonotonicCommit, 1);
    assert!(
        none.anomaly(AnomalyKind::NonmonotonicCommit).examples[0]
            .explanation
            .contains("found no committed offset"),
        "{none:#?}"
    );
    // The commit found intact is no anomaly.
    assert_eq!(lost_commit(Some((0, 5))).valid, Validity::True);
}

#[test]
fn unconsumed_an_acknowledged_value_no_member_polled() {
    let mut history = History::default();
    sends(&mut history);
    history
        .subscribe(20, 9)
        .group_assign(21, 9, &[0], Some(&[]));
    poll_offsets(&mut history, 22, 9, &[0, 1, 2]);
    // An assign-mode consumer (not a member) reads the rest: that does not count.
    poll_offsets(&mut history, 23, 11, &[3, 4]);
    final_read(&mut history);
    let results = history.check();
    assert_only(&results, AnomalyKind::Unconsumed, 2);
    let example = &results.anomaly(AnomalyKind::Unconsumed).examples[0];
    assert_eq!(example.value.as_deref(), Some("1-3"));
    assert_eq!(example.group.as_deref(), Some(GROUP));
    assert!(results.anomaly(AnomalyKind::Unconsumed).invalid);

    // A lost value is `lost`, not also `unconsumed`; without groups nothing is unconsumed.
    let mut lossy = History::default();
    sends(&mut lossy);
    lossy.subscribe(20, 9);
    poll_offsets(&mut lossy, 22, 9, &[0, 1, 2, 3]);
    let records: Vec<(i32, i64, String)> = (0..4).map(record).collect();
    let borrowed: Vec<(i32, i64, &str)> = records
        .iter()
        .map(|(p, o, v)| (*p, *o, v.as_str()))
        .collect();
    lossy.final_read(100, 0, &borrowed);
    assert_only(&lossy.check(), AnomalyKind::Lost, 1);
    let mut no_group = History::default();
    sends(&mut no_group);
    final_read(&mut no_group);
    assert_eq!(no_group.check().valid, Validity::True);
    let _ = records_json(&[]);
}

#[test]
fn group_operations_without_their_fields_are_malformed() {
    let mut history = handover();
    history.op(50, "9", "invoke", "subscribe", "{}");
    let results = history.check();
    assert_eq!(results.valid, Validity::Unknown, "{results:#?}");
    assert!(
        results
            .malformed
            .as_ref()
            .is_some_and(|malformed| malformed.reason.contains("subscribe without a group")),
        "{results:#?}"
    );
}
