//! The checker on hand-written histories: one test per anomaly, each beside a clean twin that
//! is valid; malformed and incomplete histories; the `lost = "some"` expectation; the figures.

#![allow(clippy::unwrap_used)]

use super::*;

/// Builds a JSONL history: each call appends one line with the next index, at `time_ms`.
#[derive(Default)]
pub(crate) struct History {
    lines: Vec<String>,
}

impl History {
    pub(crate) fn op(
        &mut self,
        time_ms: u64,
        process: &str,
        op_type: &str,
        f: &str,
        value: &str,
    ) -> &mut Self {
        let index = self.lines.len();
        let time_ns = time_ms * 1_000_000;
        self.lines.push(format!(
            r#"{{"index":{index},"time_ns":{time_ns},"process":{process},"type":"{op_type}","f":"{f}","value":{value}}}"#
        ));
        self
    }

    pub(crate) fn invoke_send(&mut self, time_ms: u64, process: u64, value: &str) -> &mut Self {
        self.op(
            time_ms,
            &process.to_string(),
            "invoke",
            "send",
            &format!(r#"{{"key":"k","value":"{value}"}}"#),
        )
    }

    pub(crate) fn ok_send(
        &mut self,
        time_ms: u64,
        process: u64,
        value: &str,
        partition: i32,
        offset: i64,
    ) -> &mut Self {
        self.op(
            time_ms,
            &process.to_string(),
            "ok",
            "send",
            &format!(
                r#"{{"key":"k","value":"{value}","partition":{partition},"offset":{offset}}}"#
            ),
        )
    }

    /// An acknowledged send: invoke at `time_ms`, ok 1 ms later.
    pub(crate) fn send(
        &mut self,
        time_ms: u64,
        process: u64,
        value: &str,
        partition: i32,
        offset: i64,
    ) -> &mut Self {
        self.invoke_send(time_ms, process, value).ok_send(
            time_ms + 1,
            process,
            value,
            partition,
            offset,
        )
    }

    pub(crate) fn failed_send(
        &mut self,
        time_ms: u64,
        process: u64,
        value: &str,
        op_type: &str,
    ) -> &mut Self {
        self.invoke_send(time_ms, process, value).op(
            time_ms + 1,
            &process.to_string(),
            op_type,
            "send",
            &format!(r#"{{"key":"k","value":"{value}","error":"REQUEST_TIMED_OUT"}}"#),
        )
    }

    pub(crate) fn poll(
        &mut self,
        time_ms: u64,
        consumer: u64,
        records: &[(i32, i64, &str)],
    ) -> &mut Self {
        self.op(time_ms, &consumer.to_string(), "invoke", "poll", "{}")
            .op(
                time_ms + 1,
                &consumer.to_string(),
                "ok",
                "poll",
                &format!(r#"{{"records":{}}}"#, records_json(records)),
            )
    }

    pub(crate) fn assign(
        &mut self,
        time_ms: u64,
        consumer: u64,
        partition: i32,
        offset: i64,
    ) -> &mut Self {
        let value = format!(r#"{{"positions":[[{partition},{offset}]]}}"#);
        self.op(time_ms, &consumer.to_string(), "invoke", "assign", &value)
            .op(time_ms, &consumer.to_string(), "ok", "assign", &value)
    }

    pub(crate) fn nemesis(&mut self, time_ms: u64, f: &str, node: &str) -> &mut Self {
        let value = format!(r#"{{"node":"{node}","why":"test"}}"#);
        self.op(time_ms, r#""nemesis""#, "invoke", f, &value).op(
            time_ms,
            r#""nemesis""#,
            "info",
            f,
            &value,
        )
    }

    /// A complete final read of one partition, by process 100.
    pub(crate) fn final_read(
        &mut self,
        time_ms: u64,
        partition: i32,
        records: &[(i32, i64, &str)],
    ) -> &mut Self {
        self.final_read_with(time_ms, partition, records, "ok", true)
    }

    pub(crate) fn final_read_with(
        &mut self,
        time_ms: u64,
        partition: i32,
        records: &[(i32, i64, &str)],
        op_type: &str,
        complete: bool,
    ) -> &mut Self {
        self.op(
            time_ms,
            "100",
            "invoke",
            "final-read",
            &format!(r#"{{"partition":{partition}}}"#),
        );
        let value = if op_type == "ok" {
            format!(
                r#"{{"partition":{partition},"log_start_offset":0,"high_watermark":{},"records":{},"complete":{complete}}}"#,
                records.len(),
                records_json(records)
            )
        } else {
            format!(r#"{{"partition":{partition},"error":"deadline"}}"#)
        };
        self.op(time_ms + 1, "100", op_type, "final-read", &value)
    }

    pub(crate) fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }

    pub(crate) fn check(&self) -> Results {
        check_with(self, &Expectations::default())
    }
}

pub(crate) fn records_json(records: &[(i32, i64, &str)]) -> String {
    let items: Vec<String> = records
        .iter()
        .map(|(partition, offset, value)| format!(r#"[{partition},{offset},"{value}"]"#))
        .collect();
    format!("[{}]", items.join(","))
}

pub(crate) fn check_with(history: &History, expectations: &Expectations) -> Results {
    check_history(history.text().as_bytes(), expectations)
}

pub(crate) fn strict() -> Expectations {
    Expectations {
        lost: LostExpectation::None,
        duplicates: Strictness::Strict,
        order: Strictness::Strict,
        unavailable_max_ms: None,
        acknowledged_sends: AcknowledgedSendsExpectation::Some,
    }
}

/// Two producers, one consumer, a final read: nothing wrong.
fn clean_history() -> History {
    let mut history = History::default();
    history
        .send(0, 1, "1-0", 0, 0)
        .send(2, 2, "2-0", 0, 1)
        .send(4, 1, "1-1", 0, 2)
        .poll(6, 9, &[(0, 0, "1-0"), (0, 1, "2-0")])
        .poll(8, 9, &[(0, 2, "1-1")])
        .final_read(20, 0, &[(0, 0, "1-0"), (0, 1, "2-0"), (0, 2, "1-1")]);
    history
}

pub(crate) fn assert_only(results: &Results, kind: AnomalyKind, count: u64) {
    for other in AnomalyKind::ALL {
        let expected = if other == kind { count } else { 0 };
        assert_eq!(
            results.count(other),
            expected,
            "{}: {results:#?}",
            other.name()
        );
    }
}

#[test]
fn a_clean_history_is_valid() {
    let results = clean_history().check();
    assert_eq!(results.valid, Validity::True, "{results:#?}");
    assert!(results.matches_expectation());
    assert!(results.reasons.is_empty());
    assert!(results.anomaly_types.is_empty());
    assert_eq!(results.totals.sends_ok, 3);
    assert_eq!(results.final_read.complete, vec![0]);
    let strict_results = check_with(&clean_history(), &strict());
    assert_eq!(strict_results.valid, Validity::True, "{strict_results:#?}");
}

#[test]
fn lost_an_acknowledged_send_missing_from_the_final_read() {
    let mut history = History::default();
    history
        .send(0, 1, "1-0", 0, 0)
        .send(2, 1, "1-1", 0, 1)
        .final_read(20, 0, &[(0, 0, "1-0")]);
    let results = history.check();
    assert_eq!(results.valid, Validity::False);
    assert!(!results.matches_expectation());
    assert_only(&results, AnomalyKind::Lost, 1);
    let example = &results.anomaly(AnomalyKind::Lost).examples[0];
    assert_eq!(example.value.as_deref(), Some("1-1"));
    assert_eq!(example.partition, Some(0));
    assert_eq!(example.offset, Some(1));
    assert_eq!(example.process, Some(1));
    assert_eq!(example.acknowledged_ns, Some(3_000_000));
    assert!(results.anomaly(AnomalyKind::Lost).invalid);
}

#[test]
fn lost_some_is_expected_only_when_loss_is_found() {
    let some = Expectations {
        lost: LostExpectation::Some,
        ..Expectations::default()
    };
    let mut lossy = History::default();
    lossy
        .send(0, 1, "1-0", 0, 0)
        .send(2, 1, "1-1", 0, 1)
        .final_read(20, 0, &[(0, 0, "1-0")]);
    let results = check_with(&lossy, &some);
    assert_eq!(results.valid, Validity::False);
    assert!(results.matches_expectation(), "{results:#?}");

    let clean = check_with(&clean_history(), &some);
    assert_eq!(clean.valid, Validity::True);
    assert!(!clean.matches_expectation());

    // What truncation brings with loss — a later send taking the lost offset, seen as
    // divergent — is expected with it.
    let mut overwritten = History::default();
    overwritten
        .send(0, 1, "1-0", 0, 0)
        .send(2, 1, "1-1", 0, 1)
        .send(4, 2, "2-0", 0, 1)
        .final_read(20, 0, &[(0, 0, "1-0"), (0, 1, "2-0")]);
    let truncated = check_with(&overwritten, &some);
    assert!(
        truncated.count(AnomalyKind::Divergent) > 0,
        "{truncated:#?}"
    );
    assert!(truncated.matches_expectation(), "{truncated:#?}");

    // Loss together with another always-invalid anomaly (here: unexpected) does not match.
    lossy.poll(10, 9, &[(0, 0, "9-9")]);
    let both = check_with(&lossy, &some);
    assert!(!both.matches_expectation(), "{both:#?}");
}

#[test]
fn a_run_without_an_acknowledged_send_proves_nothing_whatever_the_verdict() {
    let mut refused = History::default();
    refused
        .failed_send(0, 1, "1-0", "fail")
        .failed_send(2, 1, "1-1", "info")
        .final_read(20, 0, &[]);
    let results = refused.check();
    assert_eq!(results.valid, Validity::True, "nothing was lost");
    assert_eq!(results.outcome(), Outcome::ProvesNothing, "{results:#?}");
    assert!(!results.matches_expectation);
    assert_eq!(results.outcome().exit_code(), 1);
    assert!(
        results
            .reasons
            .iter()
            .any(|reason| reason.contains("no send was acknowledged")),
        "{:?}",
        results.reasons
    );

    // A workload without producers has nothing to acknowledge.
    let no_producers = Expectations {
        acknowledged_sends: AcknowledgedSendsExpectation::Any,
        ..Expectations::default()
    };
    let mut quiet = History::default();
    quiet.final_read(20, 0, &[]);
    assert_eq!(
        check_with(&quiet, &no_producers).outcome(),
        Outcome::AsExpected
    );

    // With `lost = "some"` it is still nothing proved, not a contradiction.
    let some = Expectations {
        lost: LostExpectation::Some,
        ..Expectations::default()
    };
    assert_eq!(
        check_with(&refused, &some).outcome(),
        Outcome::ProvesNothing
    );

    // A results.json written before the rule knew of acknowledged sends reads the same way.
    let mut old = serde_json::to_value(&results).unwrap();
    old["matches-expectation"] = serde_json::Value::Bool(true);
    old["expectations"]
        .as_object_mut()
        .unwrap()
        .remove("acknowledged-sends");
    let old: Results = serde_json::from_value(old).unwrap();
    assert_eq!(old.outcome(), Outcome::ProvesNothing);
}

#[test]
fn divergent_two_values_at_one_offset() {
    let mut history = History::default();
    history
        .send(0, 1, "1-0", 0, 0)
        .send(2, 2, "2-0", 0, 1)
        .poll(4, 9, &[(0, 0, "1-0"), (0, 1, "2-0")])
        .poll(6, 8, &[(0, 0, "1-0"), (0, 1, "1-0")])
        .final_read(20, 0, &[(0, 0, "1-0"), (0, 1, "2-0")]);
    let results = history.check();
    assert_eq!(results.valid, Validity::False);
    // Consumer 8 read 1-0 at two offsets (duplicated, counted only) and offset 1 with two
    // values (divergent).
    assert_eq!(results.count(AnomalyKind::Divergent), 1, "{results:#?}");
    assert_eq!(results.count(AnomalyKind::Duplicated), 1);
    let example = &results.anomaly(AnomalyKind::Divergent).examples[0];
    assert_eq!(example.values, vec!["2-0".to_string(), "1-0".to_string()]);
    assert_eq!((example.partition, example.offset), (Some(0), Some(1)));
}

#[test]
fn divergent_an_acknowledged_offset_holding_another_value() {
    // Unclean election: 1-1 was acknowledged at offset 1, the new leader has 2-0 there.
    let mut history = History::default();
    history
        .send(0, 1, "1-0", 0, 0)
        .send(2, 1, "1-1", 0, 1)
        .send(4, 2, "2-0", 0, 1)
        .final_read(20, 0, &[(0, 0, "1-0"), (0, 1, "2-0")]);
    let results = history.check();
    assert_eq!(results.valid, Validity::False);
    assert_eq!(results.count(AnomalyKind::Divergent), 1, "{results:#?}");
    assert_eq!(results.count(AnomalyKind::Lost), 1);
    let example = &results.anomaly(AnomalyKind::Divergent).examples[0];
    assert_eq!(example.value.as_deref(), Some("1-1"));
    assert_eq!(example.values, vec!["1-1".to_string(), "2-0".to_string()]);
}

#[test]
fn unexpected_a_value_never_sent() {
    let mut history = clean_history();
    history.poll(10, 9, &[(0, 3, "7-7")]);
    let results = history.check();
    assert_eq!(results.valid, Validity::False);
    assert_only(&results, AnomalyKind::Unexpected, 1);
    assert_eq!(
        results.anomaly(AnomalyKind::Unexpected).examples[0]
            .value
            .as_deref(),
        Some("7-7")
    );

    // A value that does not parse as <process>-<seq> is still a value.
    let mut odd = History::default();
    odd.invoke_send(0, 1, "hello")
        .ok_send(1, 1, "hello", 0, 0)
        .final_read(20, 0, &[(0, 0, "hello")]);
    let odd_results = odd.check();
    assert_eq!(odd_results.valid, Validity::True, "{odd_results:#?}");
    odd.poll(21, 9, &[(0, 1, "hullo")]);
    assert_eq!(odd.check().count(AnomalyKind::Unexpected), 1);
}

#[test]
fn aborted_read_a_failed_send_that_was_read() {
    let mut history = History::default();
    history
        .send(0, 1, "1-0", 0, 0)
        .failed_send(2, 1, "1-1", "fail")
        .final_read(20, 0, &[(0, 0, "1-0"), (0, 1, "1-1")]);
    let results = history.check();
    assert_eq!(results.valid, Validity::False);
    assert_only(&results, AnomalyKind::AbortedRead, 1);

    let mut clean = History::default();
    clean
        .send(0, 1, "1-0", 0, 0)
        .failed_send(2, 1, "1-1", "fail")
        .final_read(20, 0, &[(0, 0, "1-0")]);
    assert_eq!(clean.check().valid, Validity::True);
}

#[test]
fn duplicated_invalid_only_when_the_workload_says_none() {
    let mut history = History::default();
    history
        .send(0, 1, "1-0", 0, 0)
        .final_read(20, 0, &[(0, 0, "1-0"), (0, 1, "1-0")]);
    let allowed = history.check();
    assert_eq!(allowed.valid, Validity::True, "{allowed:#?}");
    assert_only(&allowed, AnomalyKind::Duplicated, 1);
    assert!(!allowed.anomaly(AnomalyKind::Duplicated).invalid);
    let none = Expectations {
        duplicates: Strictness::Strict,
        ..Expectations::default()
    };
    let strict_results = check_with(&history, &none);
    assert_eq!(strict_results.valid, Validity::False);
    assert_eq!(
        strict_results.anomaly(AnomalyKind::Duplicated).examples[0].offsets,
        vec![0, 1]
    );
    assert_eq!(check_with(&clean_history(), &none).valid, Validity::True);
}

#[test]
fn reordered_invalid_only_when_order_is_strict() {
    // 1-0 completes (offset 5) before 1-1 is invoked, yet 1-1 lands at offset 4.
    let mut history = History::default();
    history
        .send(0, 1, "1-0", 0, 5)
        .send(2, 1, "1-1", 0, 4)
        .final_read(20, 0, &[(0, 4, "1-1"), (0, 5, "1-0")]);
    let allowed = history.check();
    assert_eq!(allowed.valid, Validity::True, "{allowed:#?}");
    assert_only(&allowed, AnomalyKind::Reordered, 1);
    let strict_results = check_with(&history, &strict());
    assert_eq!(strict_results.valid, Validity::False);
    let example = &strict_results.anomaly(AnomalyKind::Reordered).examples[0];
    assert_eq!(example.value.as_deref(), Some("1-1"));
    assert_eq!(example.earlier_value.as_deref(), Some("1-0"));
    assert_eq!((example.offset, example.earlier_offset), (Some(4), Some(5)));

    // Concurrent sends (the second invoked before the first completed) may land either way.
    let mut concurrent = History::default();
    concurrent
        .invoke_send(0, 1, "1-0")
        .invoke_send(1, 1, "1-1")
        .ok_send(2, 1, "1-0", 0, 5)
        .ok_send(3, 1, "1-1", 0, 4)
        .final_read(20, 0, &[(0, 4, "1-1"), (0, 5, "1-0")]);
    assert_eq!(check_with(&concurrent, &strict()).valid, Validity::True);

    // An acknowledgement without an offset (-1001: librdkafka's implicit ack of a request that
    // failed uncertainly, by a later one's success) orders nothing and diverges from nothing;
    // it is lost only if the final read lacks it.
    let mut implicit = History::default();
    implicit
        .send(0, 1, "1-0", 0, 5)
        .send(2, 1, "1-1", 0, -1001)
        .final_read(20, 0, &[(0, 5, "1-0"), (0, 6, "1-1")]);
    let results = check_with(&implicit, &strict());
    assert_eq!(results.valid, Validity::True, "{results:#?}");
    let mut implicit_lost = History::default();
    implicit_lost
        .send(0, 1, "1-0", 0, 5)
        .send(2, 1, "1-1", 0, -1001)
        .final_read(20, 0, &[(0, 5, "1-0")]);
    assert_only(&implicit_lost.check(), AnomalyKind::Lost, 1);
}

#[test]
fn poll_skip_a_jump_over_offsets_that_exist() {
    let mut history = History::default();
    history
        .send(0, 1, "1-0", 0, 0)
        .send(2, 1, "1-1", 0, 1)
        .send(4, 1, "1-2", 0, 2)
        .poll(6, 9, &[(0, 0, "1-0")])
        .poll(8, 9, &[(0, 2, "1-2")])
        .final_read(20, 0, &[(0, 0, "1-0"), (0, 1, "1-1"), (0, 2, "1-2")]);
    let results = history.check();
    assert_eq!(results.valid, Validity::False);
    assert_only(&results, AnomalyKind::PollSkip, 1);
    let example = &results.anomaly(AnomalyKind::PollSkip).examples[0];
    assert_eq!(
        (example.previous_offset, example.offset),
        (Some(0), Some(2))
    );
    assert_eq!(example.consumer, Some(9));
    assert_eq!(example.skipped, Some(1));

    // The same jump after a seek (assign) is fine.
    let mut sought = History::default();
    sought
        .send(0, 1, "1-0", 0, 0)
        .send(2, 1, "1-1", 0, 1)
        .send(4, 1, "1-2", 0, 2)
        .poll(6, 9, &[(0, 0, "1-0")])
        .assign(7, 9, 0, 2)
        .poll(8, 9, &[(0, 2, "1-2")])
        .final_read(20, 0, &[(0, 0, "1-0"), (0, 1, "1-1"), (0, 2, "1-2")]);
    assert_eq!(sought.check().valid, Validity::True);

    // A jump over offsets the final read does not have (a gap in the log) is fine too.
    let mut gap = History::default();
    gap.send(0, 1, "1-0", 0, 0)
        .send(2, 1, "1-2", 0, 2)
        .poll(6, 9, &[(0, 0, "1-0"), (0, 2, "1-2")])
        .final_read(20, 0, &[(0, 0, "1-0"), (0, 2, "1-2")]);
    assert_eq!(gap.check().valid, Validity::True);
}

#[test]
fn nonmonotonic_poll_going_back_without_a_seek() {
    let mut history = History::default();
    history
        .send(0, 1, "1-0", 0, 0)
        .send(2, 1, "1-1", 0, 1)
        .poll(6, 9, &[(0, 0, "1-0"), (0, 1, "1-1")])
        .poll(8, 9, &[(0, 1, "1-1")])
        .final_read(20, 0, &[(0, 0, "1-0"), (0, 1, "1-1")]);
    let results = history.check();
    assert_eq!(results.valid, Validity::False);
    assert_only(&results, AnomalyKind::NonmonotonicPoll, 1);

    let mut sought = History::default();
    sought
        .send(0, 1, "1-0", 0, 0)
        .send(2, 1, "1-1", 0, 1)
        .poll(6, 9, &[(0, 0, "1-0"), (0, 1, "1-1")])
        .assign(7, 9, 0, 1)
        .poll(8, 9, &[(0, 1, "1-1")])
        .final_read(20, 0, &[(0, 0, "1-0"), (0, 1, "1-1")]);
    assert_eq!(sought.check().valid, Validity::True);
}

#[test]
fn indeterminate_sends_are_counted_never_invalid() {
    let mut history = History::default();
    history
        .send(0, 1, "1-0", 0, 0)
        .failed_send(2, 1, "1-1", "info")
        .failed_send(4, 1, "1-2", "info")
        .invoke_send(6, 1, "1-3") // never completes: indeterminate too
        .final_read(20, 0, &[(0, 0, "1-0"), (0, 1, "1-1")]);
    let results = history.check();
    assert_eq!(results.valid, Validity::True, "{results:#?}");
    assert_eq!(results.count(AnomalyKind::IndeterminateRecovered), 1);
    assert_eq!(results.count(AnomalyKind::IndeterminateLost), 2);
    assert_eq!(results.totals.sends_info, 3);
    assert_eq!(results.operations["send"].info, 3);
    assert_eq!(results.operations["send"].count, 4);
}

#[test]
fn missing_incomplete_or_failed_final_reads_give_unknown() {
    let mut missing = History::default();
    missing.send(0, 1, "1-0", 0, 0).send(2, 1, "1-1", 1, 0);
    let results = missing.check();
    assert_eq!(results.valid, Validity::Unknown);
    assert!(!results.matches_expectation());

    missing.final_read(20, 0, &[(0, 0, "1-0")]);
    let results = missing.check();
    assert_eq!(results.valid, Validity::Unknown);
    assert_eq!(results.final_read.missing, vec![1]);
    assert_eq!(results.totals.sends_ok_unchecked, 1);

    let mut incomplete = History::default();
    incomplete
        .send(0, 1, "1-0", 0, 0)
        .final_read_with(20, 0, &[], "ok", false);
    let results = incomplete.check();
    assert_eq!(results.valid, Validity::Unknown, "{results:#?}");
    assert_eq!(results.final_read.incomplete, vec![0]);
    assert_eq!(results.count(AnomalyKind::Lost), 0);

    let mut failed = History::default();
    failed
        .send(0, 1, "1-0", 0, 0)
        .final_read_with(20, 0, &[], "info", false);
    let results = failed.check();
    assert_eq!(results.valid, Validity::Unknown);
    assert_eq!(results.final_read.failed, vec![0]);

    // An always-invalid anomaly beats unknown.
    let mut both = History::default();
    both.send(0, 1, "1-0", 0, 0)
        .send(2, 1, "1-1", 1, 0)
        .poll(4, 9, &[(0, 0, "5-5")])
        .final_read(20, 0, &[(0, 0, "1-0")]);
    assert_eq!(both.check().valid, Validity::False);
}

#[test]
fn malformed_lines_give_unknown_with_the_line_and_reason() {
    let cases = [
        ("not json at all", "not an operation"),
        (
            r#"{"index":9,"time_ns":1,"process":1,"type":"maybe","f":"send","value":{}}"#,
            "maybe",
        ),
        (
            r#"{"index":9,"time_ns":1,"process":1,"type":"ok","f":"poll","value":{"records":[[0,"x","1-0"]]}}"#,
            "poll ok",
        ),
        (
            r#"{"index":9,"time_ns":1,"process":1,"type":"ok","f":"send","value":{"value":"8-8","partition":0,"offset":3}}"#,
            "no pending invoke",
        ),
        (
            r#"{"index":9,"time_ns":1,"process":1,"type":"invoke","f":"send","value":{"value":"1-0"}}"#,
            "sent twice",
        ),
        (
            r#"{"index":9,"time_ns":1,"process":1,"type":"ok""#,
            "not an operation",
        ),
    ];
    for (bad_line, reason) in cases {
        let mut text = clean_history().text();
        text.push_str(bad_line);
        text.push('\n');
        let results = check_history(text.as_bytes(), &Expectations::default());
        assert_eq!(results.valid, Validity::Unknown, "{bad_line}");
        let malformed = results.malformed.as_ref().unwrap();
        assert_eq!(malformed.line, 13, "{bad_line}");
        assert!(
            malformed.reason.contains(reason),
            "{bad_line}: {}",
            malformed.reason
        );
    }
    // Blank lines and a nemesis value of any shape are fine.
    let mut text = clean_history().text();
    text.push_str("\n\r\n");
    text.push_str(r#"{"index":13,"time_ns":1,"process":"nemesis","type":"info","f":"kill","value":{"node":["odd"]}}"#);
    let results = check_history(text.as_bytes(), &Expectations::default());
    assert_eq!(results.valid, Validity::True, "{results:#?}");
    // Arbitrary bytes never panic.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_eq!(
        check_history(&garbage[..], &Expectations::default()).valid,
        Validity::Unknown
    );
}

#[test]
fn a_missing_file_gives_unknown() {
    let results = check_history_file(
        Path::new("/nonexistent/history.jsonl"),
        &Expectations::default(),
    );
    assert_eq!(results.valid, Validity::Unknown);
    assert_eq!(results.malformed.as_ref().unwrap().line, 0);
}

#[test]
fn a_fault_aimed_at_a_partition_counts_that_partitions_sends_only() {
    // Partition 1 keeps acknowledging; partition 0's leader is isolated at 0.2 s and its first
    // acknowledged send after that completes at 3.201 s.
    let mut history = History::default();
    let isolate = r#"{"node":"broker-1","why":"leader of t-0","partition":0,"topology":"isolate","grudge":{"broker-1":["broker-2"],"broker-2":["broker-1"]}}"#;
    history
        .send(0, 1, "1-0", 0, 0)
        .op(200, r#""nemesis""#, "invoke", "partition", isolate)
        .op(210, r#""nemesis""#, "info", "partition", isolate)
        .send(300, 1, "1-1", 1, 0)
        .send(1300, 1, "1-2", 1, 1)
        .send(3200, 1, "1-3", 0, 1)
        .send(3300, 1, "1-4", 1, 2)
        .final_read(4000, 0, &[(0, 0, "1-0"), (0, 1, "1-3")])
        .final_read(4000, 1, &[(1, 0, "1-1"), (1, 1, "1-2"), (1, 2, "1-4")]);
    let results = history.check();
    assert_eq!(results.valid, Validity::True, "{results:#?}");
    let partition = &results.faults[0];
    assert_eq!(partition.f, "partition");
    assert_eq!(partition.partition, Some(0));
    assert_eq!(partition.time_to_first_ok_send_us, Some(3_001_000));
    assert_eq!(partition.longest_without_ok_send_us, 3_001_000);
}

#[test]
fn unavailability_after_each_fault() {
    // ok sends at 0.001 s and 0.101 s; a kill at 0.200 s; ok sends again at 1.201 s and
    // 1.301 s; a restart at 2.000 s; ok sends at 2.051 s, then the last send at 2.500 s.
    let mut history = History::default();
    history
        .send(0, 1, "1-0", 0, 0)
        .send(100, 1, "1-1", 0, 1)
        .nemesis(200, "kill", "broker-2")
        .failed_send(300, 1, "1-2", "info")
        .send(1200, 1, "1-3", 0, 2)
        .send(1300, 1, "1-4", 0, 3)
        .nemesis(2000, "restart", "broker-2")
        .send(2050, 1, "1-5", 0, 4)
        .failed_send(2499, 1, "1-6", "fail")
        .final_read(
            3000,
            0,
            &[
                (0, 0, "1-0"),
                (0, 1, "1-1"),
                (0, 2, "1-3"),
                (0, 3, "1-4"),
                (0, 4, "1-5"),
            ],
        );
    let results = history.check();
    assert_eq!(results.valid, Validity::True, "{results:#?}");
    assert_eq!(results.faults.len(), 2);
    let kill = &results.faults[0];
    assert_eq!(kill.f, "kill");
    assert_eq!(kill.node.as_deref(), Some("broker-2"));
    assert_eq!(kill.time_to_first_ok_send_us, Some(1_001_000));
    assert_eq!(kill.longest_without_ok_send_us, 1_001_000);
    assert_eq!(kill.window_end_ns, 2_000_000_000);
    let restart = &results.faults[1];
    assert_eq!(restart.time_to_first_ok_send_us, Some(51_000));
    // From the ok at 2.051 s to the last send (the fail at 2.500 s).
    assert_eq!(restart.longest_without_ok_send_us, 449_000);
    assert_eq!(restart.window_end_ns, 2_500_000_000);

    let send = &results.operations["send"];
    assert_eq!((send.count, send.ok, send.fail, send.info), (7, 5, 1, 1));
    assert_eq!(send.latency_us.p50, 1000);
    assert_eq!(send.latency_us.max, 1000);
    assert!(results.operations.contains_key("kill"));
    let timeline = &results.timeline;
    assert_eq!(timeline.len(), 3);
    assert_eq!((timeline[0].ok, timeline[0].info), (2, 1));
    assert_eq!(timeline[1].ok, 2);
    assert_eq!((timeline[2].ok, timeline[2].fail), (1, 1));
}

#[test]
fn results_json_has_the_documented_field_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    std::fs::write(&path, clean_history().text()).unwrap();
    let results = check_history_file(&path, &Expectations::default());
    let json_path = dir.path().join("results.json");
    results.write_json(&json_path).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(json["valid"], serde_json::json!(true));
    for name in [
        "lost",
        "divergent",
        "unexpected",
        "aborted-read",
        "duplicated",
        "reordered",
        "poll-skip",
        "nonmonotonic-poll",
        "indeterminate-recovered",
        "indeterminate-lost",
    ] {
        assert_eq!(
            json["anomalies"][name]["count"],
            serde_json::json!(0),
            "{name}"
        );
    }
    assert!(json["operations"]["send"]["latency-us"]["p99.9"].is_u64());
    assert!(json["operations"]["send"]["ok-per-second"].is_f64());
    assert_eq!(json["expectations"]["lost"], serde_json::json!("none"));
    // results.json reads back into the same Results (floats up to parsing precision).
    let back: Results = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), json);
    assert_eq!(back.anomalies, results.anomalies);

    let unknown: serde_json::Value = serde_json::to_value(History::default().check()).unwrap();
    assert_eq!(unknown["valid"], serde_json::json!("unknown"));
}

#[test]
fn validity_merges_false_over_unknown_over_true() {
    use Validity::{False, True, Unknown};
    assert_eq!(True.merge(True), True);
    assert_eq!(True.merge(Unknown), Unknown);
    assert_eq!(Unknown.merge(False), False);
    assert_eq!(False.merge(True), False);
    let parsed: Expectations =
        serde_json::from_str(r#"{"lost":"some","duplicates":"none","order":"strict"}"#).unwrap();
    assert_eq!(
        parsed,
        Expectations {
            lost: LostExpectation::Some,
            duplicates: Strictness::Strict,
            order: Strictness::Strict,
            unavailable_max_ms: None,
            acknowledged_sends: AcknowledgedSendsExpectation::Some,
        }
    );
    assert_eq!(
        serde_json::to_string(&parsed).unwrap(),
        r#"{"lost":"some","duplicates":"none","order":"strict","acknowledged-sends":"some"}"#
    );
    let from_toml: Expectations =
        toml::from_str("lost = \"none\"\nduplicates = \"allowed\"").unwrap();
    assert_eq!(from_toml, Expectations::default());
}

#[test]
fn lines_split_across_reads_are_read_whole() {
    let mut history = clean_history();
    history
        .poll(10, 9, &[(0, 3, "7-7")])
        .nemesis(11, "kill", "broker-1");
    let mut text = history.text();
    // Another spelling (CRLF, spaces) goes through serde, also across reads.
    text.push_str("{ \"index\":99,\"time_ns\":1,\"process\":4,\"type\":\"invoke\",\"f\":\"poll\",\"value\":{}}\r\n");
    let expected = check_history(text.as_bytes(), &Expectations::default());
    assert_eq!(expected.count(AnomalyKind::Unexpected), 1);
    assert_eq!(expected.totals.operations, 17);
    for buffer_bytes in [1, 7, 64, 300] {
        let mut analysis = analysis::Analysis::new(&Expectations::default());
        pipeline::run(text.as_bytes(), &mut analysis, buffer_bytes);
        assert_eq!(
            analysis.finish(),
            expected,
            "buffer of {buffer_bytes} bytes"
        );
        // The same on one thread.
        let mut analysis = analysis::Analysis::new(&Expectations::default());
        history::read_lines(text.as_bytes(), buffer_bytes, |item| {
            analysis.feed(&item);
            true
        });
        assert_eq!(
            analysis.finish(),
            expected,
            "one thread, {buffer_bytes} bytes"
        );
    }
    // The last line may lack its line break.
    let trimmed = text.trim_end();
    let results = check_history(trimmed.as_bytes(), &Expectations::default());
    assert_eq!(results, expected);
}

#[test]
fn reordered_is_found_far_back_in_a_long_run() {
    // 1-0 is invoked after 1-5 was acknowledged at offset 105, and acknowledged 35
    // acknowledgements later, at offset 50.
    let mut history = History::default();
    let mut records: Vec<(i32, i64, String)> = Vec::new();
    for sequence in 1..=40u64 {
        if sequence == 6 {
            history.invoke_send(5, 1, "1-0");
        }
        let offset = sequence as i64 + 100;
        history.send(sequence * 2, 1, &format!("1-{sequence}"), 0, offset);
        records.push((0, offset, format!("1-{sequence}")));
    }
    history.ok_send(90, 1, "1-0", 0, 50);
    records.push((0, 50, "1-0".to_string()));
    let borrowed: Vec<(i32, i64, &str)> = records
        .iter()
        .map(|(p, o, v)| (*p, *o, v.as_str()))
        .collect();
    history.final_read(100, 0, &borrowed);
    let results = history.check();
    assert_eq!(results.count(AnomalyKind::Reordered), 1, "{results:#?}");
    let example = &results.anomaly(AnomalyKind::Reordered).examples[0];
    assert_eq!(example.value.as_deref(), Some("1-0"));
    assert_eq!(example.earlier_value.as_deref(), Some("1-5"));
    assert_eq!(example.earlier_offset, Some(105));
}

#[test]
fn many_batches_keep_their_order() {
    // More lines than one batch between the reader and the analysis.
    let mut history = History::default();
    let mut records = Vec::new();
    for sequence in 0..5000u64 {
        history.send(sequence, 1, &format!("1-{sequence}"), 0, sequence as i64);
        records.push((0, sequence as i64, format!("1-{sequence}")));
    }
    let borrowed: Vec<(i32, i64, &str)> = records
        .iter()
        .map(|(p, o, v)| (*p, *o, v.as_str()))
        .collect();
    history.final_read(6000, 0, &borrowed[..4999]);
    let results = history.check();
    assert_eq!(results.totals.operations, 10_002);
    assert_eq!(results.count(AnomalyKind::Lost), 1);
    assert_eq!(
        results.anomaly(AnomalyKind::Lost).examples[0]
            .value
            .as_deref(),
        Some("1-4999")
    );
}

#[test]
fn what_the_history_writer_writes_is_checked() {
    use history::{HistoryWriter, OpType as Type, Process};
    use serde_json::json;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let writer = HistoryWriter::create(&path).unwrap();
    let send = |value: &str, partition: i32, offset: i64| {
        writer
            .record(
                Process::Client(3),
                Type::Invoke,
                "send",
                json!({"key": "k", "value": value}),
            )
            .unwrap();
        writer
            .record(
                Process::Client(3),
                Type::Ok,
                "send",
                json!({"key": "k", "value": value, "partition": partition, "offset": offset}),
            )
            .unwrap();
    };
    send("3-0", 0, 0);
    send("3-1", 0, 1);
    writer
        .record(
            Process::Nemesis,
            Type::Invoke,
            "kill",
            json!({"node": "broker-2", "why": "ünïcode"}),
        )
        .unwrap();
    writer
        .record(
            Process::Nemesis,
            Type::Info,
            "kill",
            json!({"node": "broker-2", "why": "ünïcode"}),
        )
        .unwrap();
    writer
        .record(Process::Client(9), Type::Invoke, "poll", json!({}))
        .unwrap();
    writer
        .record(
            Process::Client(9),
            Type::Ok,
            "poll",
            json!({"records": [[0, 0, "3-0"], [0, 1, "3-1"]]}),
        )
        .unwrap();
    writer
        .record(
            Process::Client(20),
            Type::Invoke,
            "final-read",
            json!({"partition": 0}),
        )
        .unwrap();
    writer
        .record(
            Process::Client(20),
            Type::Ok,
            "final-read",
            json!({"partition": 0, "log_start_offset": 0, "high_watermark": 2,
                   "records": [[0, 0, "3-0"]], "complete": true}),
        )
        .unwrap();
    writer.close().unwrap();

    // (That every line takes the reader's fast path is the history crate's test.)
    let results = check_history_file(&path, &Expectations::default());
    assert_eq!(results.valid, Validity::False, "{results:#?}");
    assert_only(&results, AnomalyKind::Lost, 1);
    assert_eq!(results.faults[0].why.as_deref(), Some("ünïcode"));
    let one_thread = check_history_file_with(&path, &Expectations::default(), Reading::OneThread);
    assert_eq!(one_thread, results);
}

#[test]
fn mutated_histories_never_panic() {
    let mut base = clean_history();
    base.nemesis(9, "kill", "broker-1")
        .assign(10, 9, 0, 0)
        .failed_send(11, 2, "2-1", "info");
    let text = base.text().into_bytes();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    let alphabet = b"{}[]\",:-0123456789.e\\\n tfnu\xff";
    for _ in 0..1000 {
        let mut mutated = text.clone();
        for _ in 0..(1 + next() % 4) {
            let position = next() % mutated.len();
            match next() % 3 {
                0 => mutated[position] = alphabet[next() % alphabet.len()],
                1 => {
                    mutated.remove(position);
                }
                _ => mutated.insert(position, alphabet[next() % alphabet.len()]),
            }
        }
        let results = check_history(&mutated[..], &Expectations::default());
        if let Some(malformed) = &results.malformed {
            assert!(
                !malformed.reason.contains("the checker failed")
                    && !malformed.reason.contains("panicked"),
                "{}\n{}",
                malformed.reason,
                String::from_utf8_lossy(&mutated)
            );
        }
    }
}

#[test]
fn values_of_lines_the_analysis_skips_do_not_shift_the_ids() {
    // A nemesis operation and a malformed final read carry values; the reader thread interns
    // them, the analysis skips the lines: later values must still map to the right state.
    let mut history = History::default();
    history
        .op(
            0,
            r#""nemesis""#,
            "info",
            "kill",
            r#"{"node":"b","value":"9-9"}"#,
        )
        .op(
            1,
            "100",
            "ok",
            "final-read",
            r#"{"records":[[0,7,"8-8"]],"complete":true}"#,
        )
        .op(
            2,
            "5",
            "invoke",
            "weird-op",
            r#"{"value":"7-7","records":[[0,1,"6-6"]]}"#,
        )
        .send(3, 1, "1-0", 0, 0)
        .send(5, 1, "1-1", 0, 1)
        .final_read(20, 0, &[(0, 0, "1-0")]);
    for reading in [Reading::TwoThreads, Reading::OneThread] {
        let results =
            check_history_with(history.text().as_bytes(), &Expectations::default(), reading);
        assert_eq!(results.valid, Validity::Unknown, "{results:#?}");
        assert_eq!(results.malformed.as_ref().unwrap().line, 2);
        assert_eq!(results.count(AnomalyKind::Lost), 1, "{reading:?}");
        assert_eq!(
            results.anomaly(AnomalyKind::Lost).examples[0]
                .value
                .as_deref(),
            Some("1-1")
        );
        assert_eq!(results.count(AnomalyKind::Unexpected), 0, "{reading:?}");
    }
}

#[test]
fn detection_times_the_first_lost_send_from_the_first_fault() {
    let mut history = History::default();
    history
        .send(0, 1, "1-1", 0, 0)
        .nemesis(1_000, "pause", "broker-2")
        .send(1_500, 1, "1-2", 0, 1)
        .send(2_000, 1, "1-3", 0, 2)
        .nemesis(2_500, "resume", "broker-2")
        .final_read(5_000, 0, &[(0, 0, "1-1"), (0, 1, "1-3")]);
    let results = history.check();
    assert_eq!(results.valid, Validity::False);
    let lost = results.anomaly(AnomalyKind::Lost);
    assert_eq!(lost.first_ns, Some(1_500_000_000));
    let detection = results.detection.expect("a detection");
    assert_eq!(detection.first_anomaly, "lost");
    assert_eq!(detection.first_fault_ns, Some(1_000_000_000));
    assert_eq!(detection.time_to_detection_us, Some(500_000));
    // A clean run has no detection; an anomaly whose send began before the fault counts as 0.
    assert!(clean_history().check().detection.is_none());
    let mut early = History::default();
    early
        .send(0, 1, "1-1", 0, 0)
        .nemesis(1_000, "kill", "broker-1")
        .nemesis(2_000, "start", "broker-1")
        .final_read(3_000, 0, &[]);
    let detection = early.check().detection.expect("a detection");
    assert_eq!(detection.time_to_detection_us, Some(0));
}

#[test]
fn a_partition_without_acknowledgements_for_too_long_is_unavailable_when_a_bound_is_set() {
    let mut history = History::default();
    history
        .send(0, 1, "1-1", 0, 0)
        .send(0, 1, "1-2", 1, 0)
        .nemesis(1_000, "kill", "broker-1")
        .send(2_000, 1, "1-3", 0, 1)
        .send(12_000, 1, "1-4", 0, 2)
        // Partition 1 was tried (a timeout naming it) and never acknowledged again.
        .invoke_send(3_000, 1, "1-5")
        .op(
            13_000,
            "1",
            "info",
            "send",
            r#"{"key":"k","value":"1-5","partition":1,"error":"MESSAGE_TIMED_OUT"}"#,
        )
        .final_read(15_000, 0, &[(0, 0, "1-1"), (0, 1, "1-3"), (0, 2, "1-4")])
        .final_read(15_000, 1, &[(1, 0, "1-2")]);
    assert_eq!(
        history.check().valid,
        Validity::True,
        "no bound, not judged"
    );
    let bounded = Expectations {
        unavailable_max_ms: Some(8_000),
        ..Expectations::default()
    };
    let results = check_with(&history, &bounded);
    assert_eq!(results.valid, Validity::False, "{:#?}", results.reasons);
    let unavailable = results.anomaly(AnomalyKind::Unavailable);
    // Partition 0: 2.001 s -> 12.001 s (10 s); partition 1: 0.001 s -> 13 s, the last send.
    assert_eq!(unavailable.count, 2, "{:#?}", unavailable.examples);
    assert_eq!(unavailable.first_ns, Some(8_001_000_000));
    assert_eq!(unavailable.examples[0].partition, Some(1));
    let detection = results.detection.expect("a detection");
    assert_eq!(detection.first_anomaly, "unavailable");
    assert_eq!(detection.time_to_detection_us, Some(7_001_000));
    let loose = Expectations {
        unavailable_max_ms: Some(20_000),
        ..Expectations::default()
    };
    assert_eq!(check_with(&history, &loose).valid, Validity::True);
}

/// A client worker crash, as the harness records it: the event, then the crashed process's
/// in-flight operations completed `info`; its successor is a fresh process.
#[test]
fn a_client_crash_leaves_its_operations_indeterminate_and_nothing_lost() {
    let mut history = History::default();
    history
        .send(1, 1, "1-1", 0, 0)
        .invoke_send(2, 1, "1-2")
        .invoke_send(3, 1, "1-3")
        .poll(4, 2, &[(0, 0, "1-1")])
        .op(5, "2", "invoke", "poll", "{}")
        .op(
            6,
            r#""harness""#,
            "info",
            "client-crash",
            r#"{"process":1,"pid":812,"cause":"signal 11 (SIGSEGV)","in_flight":2}"#,
        )
        .op(
            6,
            "1",
            "info",
            "send",
            r#"{"key":"k","value":"1-2","error":"client crashed: signal 11 (SIGSEGV)"}"#,
        )
        .op(
            6,
            "1",
            "info",
            "send",
            r#"{"key":"k","value":"1-3","error":"client crashed: signal 11 (SIGSEGV)"}"#,
        )
        .op(
            7,
            r#""harness""#,
            "info",
            "client-crash",
            r#"{"process":2,"pid":813,"cause":"exit status 3","in_flight":1}"#,
        )
        .op(
            7,
            "2",
            "info",
            "poll",
            r#"{"error":"client crashed: exit status 3"}"#,
        )
        // The successors: a fresh producer and a fresh consumer that reads from where the
        // crashed one had got to (it saw offset 0 already: no nonmonotonic poll across
        // processes).
        .send(10, 5, "5-1", 0, 2)
        .assign(11, 6, 0, 0)
        .poll(12, 6, &[(0, 0, "1-1"), (0, 1, "1-2"), (0, 2, "5-1")])
        .final_read(20, 0, &[(0, 0, "1-1"), (0, 1, "1-2"), (0, 2, "5-1")]);
    let results = history.check();
    assert_eq!(results.valid, Validity::True, "{:?}", results.reasons);
    assert_eq!(results.count(AnomalyKind::Lost), 0);
    assert_eq!(results.count(AnomalyKind::NonmonotonicPoll), 0);
    assert_eq!(results.count(AnomalyKind::IndeterminateRecovered), 1);
    assert_eq!(results.count(AnomalyKind::IndeterminateLost), 1);
    assert_eq!(results.totals.sends_info, 2);
    assert_eq!(results.totals.client_crashes, 2);
    assert_eq!(results.client_crashes.len(), 2);
    assert_eq!(results.client_crashes[0].process, Some(1));
    assert_eq!(results.client_crashes[0].cause, "signal 11 (SIGSEGV)");
    assert_eq!(results.client_crashes[1].cause, "exit status 3");
    // A client crash is not a fault of the system under test: no unavailability window.
    assert!(results.faults.is_empty(), "{:?}", results.faults);
    assert!(!results.operations.contains_key("client-crash"));
}
