//! The report, index and JUnit file of hand-written run directories, with results.json made by
//! the real checker: the values and counts shown are exactly the fixture's.

#![allow(clippy::unwrap_used)]

mod support;

use checker::{AnomalyKind, LostExpectation, Outcome};
use reports::{ReportError, write_index, write_junit, write_report};

fn fixture_run(store: &std::path::Path) -> std::path::PathBuf {
    let dir = support::run_dir(store, "acks-all-kill-leader", "20261125T150000.000Z");
    support::fixture(&dir);
    dir
}

/// The `<tr>` of the per-partition table for `partition`.
fn partition_row(html: &str, partition: i32) -> String {
    let table_start = html.find(r#"id="lost-per-partition""#).unwrap();
    let table = &html[table_start..];
    let table = &table[..table.find("</table>").unwrap()];
    let cell = format!(r#"<td class="num">{partition}</td>"#);
    let start = table.find(&cell).unwrap();
    let row = &table[start..];
    row[..row.find("</tr>").unwrap()].to_string()
}

#[test]
fn the_fixture_losses_are_shown_exactly() {
    let store = tempfile::tempdir().unwrap();
    let dir = fixture_run(store.path());
    let results = support::check(&dir, LostExpectation::None);
    assert_eq!(
        results.count(AnomalyKind::Lost),
        2,
        "{:#?}",
        results.anomalies
    );

    let path = write_report(&dir).unwrap();
    assert_eq!(path, dir.join("report.html"));
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.contains(r#"id="lost-count">2 acknowledged sends lost"#));
    assert!(html.contains(r#"id="verdict">INVALID"#));
    assert!(html.contains("contradicts the workload's expectation"));
    // Per partition: four acknowledged and one lost each; the final reads complete.
    assert_eq!(
        partition_row(&html, 0),
        r#"<td class="num">0</td><td class="num">4</td><td class="num count">1</td><td>complete, 3 records</td>"#
    );
    assert_eq!(
        partition_row(&html, 1),
        r#"<td class="num">1</td><td class="num">4</td><td class="num count">1</td><td>complete, 3 records</td>"#
    );
    // The first lost ones, by acknowledgement: value, partition, offset, producer, time.
    let examples = &html[html.find(r#"id="lost-examples""#).unwrap()..];
    let examples = &examples[..examples.find("</table>").unwrap()];
    assert!(examples.contains(
        r#"<td class="mono">1-3</td><td class="num">0</td><td class="num">2</td><td class="num">1</td><td class="num">0.040 s</td>"#
    ), "{examples}");
    assert!(examples.contains(
        r#"<td class="mono">&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;co</td><td class="num">1</td><td class="num">1</td><td class="num">2</td><td class="num">0.023 s</td>"#
    ), "{examples}");
    assert_eq!(examples.matches("<tr>").count(), 3, "a header and two rows");
    assert!(
        examples.contains("<td>during kill broker-2</td>"),
        "1-3 acked at 40 ms"
    );
    assert!(
        examples.contains("<td>1.00 ms before kill broker-2</td>"),
        "acked at 23 ms"
    );
    // The fault window, the failed and indeterminate sends, the workload's header.
    assert!(html.contains("kill broker-2"));
    assert!(html.contains(r#"<div class="number">1</div><div class="label">sends failed</div>"#));
    assert!(
        html.contains(r#"<div class="number">1</div><div class="label">sends indeterminate</div>"#)
    );
    assert!(html.contains(r#"<div class="number">42</div><div class="label">seed</div>"#));
    assert!(html.contains(r#"<span class="key">min.insync.replicas</span> = <code>2</code>"#));
    assert!(html.contains(r#"id="no-leadership""#));
    // The kill of broker-2 at 24 ms lasts until its restart completed at 99 ms.
    let windows = &html[html.find(r#"id="fault-windows""#).unwrap()..];
    let windows = &windows[..windows.find("</table>").unwrap()];
    assert!(windows.contains(
        r#"kill broker-2</td><td class="num">0.024 s</td><td class="num">0.099 s</td><td class="num">75.0 ms</td><td>restart</td><td>leader of t-1</td>"#
    ), "{windows}");
    assert!(html.contains(r#"<a href="broker-2.log">broker-2.log</a>"#));
    assert!(html.contains(r#"<a href="history.jsonl">history.jsonl</a>"#));
}

#[test]
fn text_from_the_run_is_escaped_and_the_page_is_self_contained() {
    let store = tempfile::tempdir().unwrap();
    let dir = fixture_run(store.path());
    support::check(&dir, LostExpectation::None);
    let html = std::fs::read_to_string(write_report(&dir).unwrap()).unwrap();
    assert!(!html.contains("<script"), "no script, and none injected");
    assert!(html.contains("&lt;script&gt;"));
    assert!(
        html.contains("6 s &amp; restart it &lt;3 s later"),
        "workload text escaped"
    );
    assert!(html.contains("&amp;co"));
    assert!(
        html.contains("heal &lt;now&gt; &amp; then"),
        "nemesis text escaped"
    );
    assert!(!html.contains("&co<"), "a bare & from the run");
    for reference in ["src=", "@import", "url(http", "<link", "<iframe"] {
        assert!(!html.contains(reference), "{reference} in the page");
    }
    let outside: Vec<&str> = html
        .match_indices("http")
        .map(|(at, _)| &html[at..(at + 30).min(html.len())])
        .filter(|text| !text.starts_with("http://www.w3.org/2000/svg"))
        .collect();
    assert!(outside.is_empty(), "network references: {outside:?}");
}

#[test]
fn a_run_without_results_renders_as_not_checked() {
    let store = tempfile::tempdir().unwrap();
    let dir = fixture_run(store.path());
    let html = std::fs::read_to_string(write_report(&dir).unwrap()).unwrap();
    assert!(html.contains(r#"id="verdict">NOT CHECKED"#));
    assert!(
        html.contains("Not checked: 2 acknowledged sends are missing from a complete final read")
    );
    assert!(
        matches!(write_junit(&dir), Err(ReportError::Missing { path }) if path.ends_with("results.json"))
    );
}

#[test]
fn missing_and_malformed_files_are_named() {
    let store = tempfile::tempdir().unwrap();
    let dir = fixture_run(store.path());

    std::fs::write(dir.join("results.json"), "{\"valid\": 3}").unwrap();
    let error = write_report(&dir).unwrap_err();
    assert!(
        matches!(&error, ReportError::Malformed { path, .. } if path.ends_with("results.json")),
        "{error}"
    );
    assert!(
        error.to_string().contains("results.json is malformed"),
        "{error}"
    );
    std::fs::remove_file(dir.join("results.json")).unwrap();

    std::fs::write(dir.join("workload.toml"), "duration = [").unwrap();
    let error = write_report(&dir).unwrap_err();
    assert!(
        error.to_string().contains("workload.toml is malformed"),
        "{error}"
    );
    std::fs::write(dir.join("workload.toml"), support::WORKLOAD_TOML).unwrap();

    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let mut lines: Vec<&str> = history.lines().collect();
    lines.insert(3, "{\"index\": oops}");
    std::fs::write(dir.join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    let error = write_report(&dir).unwrap_err();
    assert!(
        matches!(&error, ReportError::MalformedLine { line: 4, .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("history.jsonl line 4 is malformed"),
        "{error}"
    );

    // A last line cut short (a run that died while writing) is skipped, not an error.
    std::fs::write(dir.join("history.jsonl"), history + "{\"index\":99,\"time").unwrap();
    let html = std::fs::read_to_string(write_report(&dir).unwrap()).unwrap();
    assert!(html.contains("last line was cut short"));

    std::fs::remove_file(dir.join("history.jsonl")).unwrap();
    let error = write_report(&dir).unwrap_err();
    assert!(
        matches!(&error, ReportError::Missing { path } if path.ends_with("history.jsonl")),
        "{error}"
    );
    let error = write_report(&dir.join("nowhere")).unwrap_err();
    assert!(matches!(error, ReportError::Missing { .. }), "{error}");
}

#[test]
fn an_incomplete_final_read_is_unknown_and_not_checked_for_loss() {
    let store = tempfile::tempdir().unwrap();
    let dir = fixture_run(store.path());
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let last = history.lines().last().unwrap();
    assert!(last.contains(r#""partition":1"#) && last.contains(r#""complete":true"#));
    let cut = history.replace(
        last,
        &last.replace(r#""complete":true"#, r#""complete":false"#),
    );
    std::fs::write(dir.join("history.jsonl"), cut).unwrap();
    let results = support::check(&dir, LostExpectation::None);
    assert_eq!(results.final_read.incomplete, vec![1]);
    let html = std::fs::read_to_string(write_report(&dir).unwrap()).unwrap();
    assert!(html.contains("The final read was not complete"));
    assert_eq!(
        partition_row(&html, 1),
        r#"<td class="num">1</td><td class="num">4</td><td class="num count">0</td><td>incomplete: not checked</td>"#
    );
    let xml = std::fs::read_to_string(write_junit(&dir).unwrap()).unwrap();
    let document = roxmltree::Document::parse(&xml).unwrap();
    let final_read = document
        .descendants()
        .find(|node| node.attribute("name") == Some("final-read-complete"))
        .unwrap();
    assert!(
        final_read
            .children()
            .any(|child| child.has_tag_name("failure"))
    );
}

#[test]
fn a_run_without_an_acknowledged_send_proves_nothing() {
    let store = tempfile::tempdir().unwrap();
    let dir = support::run_dir(store.path(), "acks-all-kill-leader", "20261125T150000.000Z");
    let ms = 1_000_000;
    let mut history = support::History::default();
    history.invoke_send(ms, 1, "1-1");
    history.failed_send(10_000 * ms, 1, "1-1", "info", "Local: Message timed out");
    history.final_read(10_001 * ms, 9, 0, &[]);
    history.write(&dir.join("history.jsonl"));
    std::fs::write(dir.join("workload.toml"), support::WORKLOAD_TOML).unwrap();
    let results = support::check(&dir, LostExpectation::None);
    assert_eq!(results.valid, checker::Validity::True, "nothing lost");
    assert_eq!(results.outcome(), Outcome::ProvesNothing);
    assert!(
        !results.matches_expectation,
        "results.json says what the exit code says"
    );

    let html = std::fs::read_to_string(write_report(&dir).unwrap()).unwrap();
    assert!(html.contains("✗ proves nothing: no send was acknowledged"));
    let xml = std::fs::read_to_string(write_junit(&dir).unwrap()).unwrap();
    let document = roxmltree::Document::parse(&xml).unwrap();
    let expectation = document
        .descendants()
        .find(|node| node.attribute("name") == Some("expectation"))
        .unwrap();
    let failure = expectation
        .children()
        .find(|child| child.has_tag_name("failure"))
        .unwrap();
    assert_eq!(
        failure.attribute("message"),
        Some("proves nothing: no send was acknowledged")
    );
    let index = std::fs::read_to_string(write_index(store.path()).unwrap()).unwrap();
    assert!(index.contains("proves nothing (no send acknowledged)"));
}

#[test]
fn an_empty_history_says_so_instead_of_drawing_empty_charts() {
    let store = tempfile::tempdir().unwrap();
    let dir = support::run_dir(store.path(), "acks-all-kill-leader", "20261125T150000.000Z");
    std::fs::write(dir.join("history.jsonl"), "").unwrap();
    std::fs::write(dir.join("broker-1.log"), "error: bind: address in use\n").unwrap();
    let html = std::fs::read_to_string(write_report(&dir).unwrap()).unwrap();
    assert!(html.contains(r#"id="empty-history""#));
    assert!(!html.contains("<svg"));
    assert!(html.contains(r#"<a href="broker-1.log">broker-1.log</a>"#));
    assert!(html.contains("NOT CHECKED"));
}

#[test]
fn leadership_samples_become_a_timeline() {
    let store = tempfile::tempdir().unwrap();
    let dir = fixture_run(store.path());
    std::fs::write(
        dir.join("leadership.jsonl"),
        concat!(
            "{\"time_ns\":0,\"topic\":\"t\",\"partition\":1,\"leader\":2,\"isr\":[1,2,3]}\n",
            "{\"time_ns\":25000000,\"topic\":\"t\",\"partition\":1,\"leader\":-1,\"isr\":[]}\n",
            "{\"time_ns\":60000000,\"topic\":\"t\",\"partition\":1,\"leader\":3,\"isr\":[1,3]}\n",
        ),
    )
    .unwrap();
    let html = std::fs::read_to_string(write_report(&dir).unwrap()).unwrap();
    assert!(!html.contains(r#"id="no-leadership""#));
    assert!(html.contains("t-1: leader 2, ISR [1,2,3] from 0.000 s to 0.025 s"));
    assert!(html.contains("t-1: no leader, ISR [] from 0.025 s to 0.060 s"));
    assert!(html.contains("t-1: leader 3, ISR [1,3] from 0.060 s"));
    assert!(html.contains("broker 3 leads"));
}

#[test]
fn junit_has_one_case_per_check_and_fails_the_contradicted_ones() {
    let store = tempfile::tempdir().unwrap();
    let dir = fixture_run(store.path());
    let results = support::check(&dir, LostExpectation::None);
    let path = write_junit(&dir).unwrap();
    assert_eq!(path, dir.join("results.xml"));
    let xml = std::fs::read_to_string(&path).unwrap();
    let document = roxmltree::Document::parse(&xml).unwrap();
    let suite = document
        .descendants()
        .find(|node| node.has_tag_name("testsuite"))
        .unwrap();
    let cases: Vec<roxmltree::Node> = suite
        .children()
        .filter(|node| node.has_tag_name("testcase"))
        .collect();
    assert_eq!(
        cases.len(),
        AnomalyKind::ALL.len() + 2,
        "every anomaly, the final read, the expectation"
    );
    assert_eq!(
        suite.attribute("tests"),
        Some((AnomalyKind::ALL.len() + 2).to_string().as_str())
    );
    let failed: Vec<&str> = cases
        .iter()
        .filter(|case| case.children().any(|child| child.has_tag_name("failure")))
        .map(|case| case.attribute("name").unwrap())
        .collect();
    let mut expected_failures: Vec<&str> = AnomalyKind::ALL
        .iter()
        .filter(|kind| results.anomaly(**kind).invalid && results.count(**kind) > 0)
        .map(|kind| kind.name())
        .collect();
    expected_failures.push("expectation");
    assert!(
        failed.contains(&"lost") && failed.contains(&"expectation"),
        "{failed:?}"
    );
    assert_eq!(failed, expected_failures);
    assert_eq!(
        suite.attribute("failures"),
        Some(failed.len().to_string().as_str())
    );
    assert!(!failed.contains(&"final-read-complete"));
    let seed = suite
        .descendants()
        .find(|node| node.attribute("name") == Some("seed"))
        .unwrap();
    assert_eq!(seed.attribute("value"), Some("42"));

    // With lost = "some" the same loss is what the workload wants: lost and expectation pass.
    let results = support::check(&dir, LostExpectation::Some);
    let xml = std::fs::read_to_string(write_junit(&dir).unwrap()).unwrap();
    let document = roxmltree::Document::parse(&xml).unwrap();
    let failed: Vec<&str> = document
        .descendants()
        .filter(|node| node.has_tag_name("testcase"))
        .filter(|case| case.children().any(|child| child.has_tag_name("failure")))
        .map(|case| case.attribute("name").unwrap())
        .collect();
    assert!(!failed.contains(&"lost"), "{failed:?}");
    assert_eq!(
        failed.contains(&"expectation"),
        !results.matches_expectation
    );
}

#[test]
fn the_index_lists_every_run_newest_first() {
    let store = tempfile::tempdir().unwrap();
    let older = fixture_run(store.path());
    support::check(&older, LostExpectation::None);
    write_report(&older).unwrap();
    let newer = support::run_dir(store.path(), "single-broker-smoke", "20261125T160000.000Z");
    support::fixture(&newer);
    let unreadable = support::run_dir(store.path(), "random-faults", "20261125T155000.000Z");
    support::fixture(&unreadable);
    std::fs::write(unreadable.join("results.json"), "{").unwrap();
    std::os::unix::fs::symlink(
        "single-broker-smoke/20261125T160000.000Z",
        store.path().join("latest"),
    )
    .unwrap();
    std::fs::create_dir_all(store.path().join("empty-workload/not-a-run")).unwrap();

    let path = write_index(store.path()).unwrap();
    assert_eq!(path, store.path().join("index.html"));
    let html = std::fs::read_to_string(path).unwrap();
    let body = &html[html.find("<tbody>").unwrap()..];
    let rows: Vec<&str> = body.split("<tr>").skip(1).collect();
    assert_eq!(rows.len(), 3, "{body}");
    assert!(
        rows[0].starts_with(
            "<td>2026-11-25 16:00:00Z</td><td>single-broker-smoke</td><td class=\"num\">42</td>"
        ),
        "{}",
        rows[0]
    );
    assert!(
        rows[0].contains("NOT CHECKED")
            && rows[0].contains(r#"<a href="single-broker-smoke/20261125T160000.000Z/">files</a>"#)
    );
    assert!(rows[1].contains("random-faults") && rows[1].contains("UNREADABLE"));
    assert!(rows[2].contains("acks-all-kill-leader") && rows[2].contains("INVALID"));
    assert!(rows[2].contains(r#"<span class="lost">2</span>"#));
    assert!(
        rows[2].contains(
            r#"<a href="acks-all-kill-leader/20261125T150000.000Z/report.html">report</a>"#
        )
    );
    assert!(rows[2].contains("contradicted"));
}

#[test]
fn a_consumer_group_run_shows_its_rebalances_and_its_unconsumed_values() {
    use serde_json::json;
    let store = tempfile::tempdir().unwrap();
    let dir = support::run_dir(store.path(), "group-kill-consumers", "20261129T150000.000Z");
    let mut history = support::History::default();
    let ms = 1_000_000;
    for offset in 0..3i64 {
        let value = format!("1-{offset}");
        history.invoke_send(offset as u64 * ms, 1, &value);
        history.ok_send(offset as u64 * ms + ms / 2, 1, &value, 0, offset);
    }
    let group = |partitions: &[i32]| json!({"group": "kchaos", "partitions": partitions});
    history.op(
        5 * ms,
        json!(4),
        "invoke",
        "subscribe",
        json!({"group": "kchaos", "topics": ["t"]}),
    );
    history.op(
        5 * ms,
        json!(4),
        "ok",
        "subscribe",
        json!({"group": "kchaos", "topics": ["t"]}),
    );
    history.op(6 * ms, json!(4), "invoke", "assign", group(&[0]));
    let mut assigned = group(&[0]);
    assigned["committed"] = json!([]);
    history.op(6 * ms, json!(4), "ok", "assign", assigned);
    history.op(7 * ms, json!(4), "invoke", "poll", json!({}));
    history.op(
        8 * ms,
        json!(4),
        "ok",
        "poll",
        json!({"records": [[0, 0, "1-0"]]}),
    );
    history.op(
        9 * ms,
        json!(4),
        "invoke",
        "commit",
        json!({"group": "kchaos", "offsets": [[0, 1]]}),
    );
    history.op(
        9 * ms,
        json!(4),
        "ok",
        "commit",
        json!({"group": "kchaos", "offsets": [[0, 1]]}),
    );
    history.nemesis(
        10 * ms,
        "invoke",
        "kill",
        "consumer-1",
        "a member of the group",
    );
    history.nemesis(
        10 * ms,
        "info",
        "kill",
        "consumer-1",
        "a member of the group",
    );
    history.final_read(
        20 * ms,
        9,
        0,
        &(0..3)
            .map(|offset| (offset, format!("1-{offset}")))
            .collect::<Vec<_>>(),
    );
    history.write(&dir.join("history.jsonl"));
    let results = support::check(&dir, LostExpectation::None);
    assert_eq!(results.count(AnomalyKind::Unconsumed), 2, "{results:#?}");

    let html = std::fs::read_to_string(write_report(&dir).unwrap()).unwrap();
    assert!(html.contains(r##"<a href="#group">Group</a>"##), "{html}");
    assert!(
        html.contains("1 member subscribed; 1 assignment and 0 revocations by rebalances; commits: 1 ok, 0 failed, 0 indeterminate."),
        "{html}"
    );
    assert!(html.contains("<td>0: log start</td>"), "{html}");
    assert!(html.contains("before kill consumer-1</td>"), "{html}");
    let unconsumed = &html[html.find(r#"id="anomaly-unconsumed""#).unwrap()..];
    assert!(unconsumed.starts_with(r#"id="anomaly-unconsumed"><td><code>unconsumed</code></td><td class="num count">2</td><td>makes the run invalid</td>"#), "{unconsumed}");
    assert!(unconsumed.contains("no member of group kchaos consumed it"));

    // A run without a group has no such section.
    let plain = fixture_run(store.path());
    support::check(&plain, LostExpectation::None);
    let html = std::fs::read_to_string(write_report(&plain).unwrap()).unwrap();
    assert!(!html.contains(r#"id="group""#));
}

#[test]
fn client_crashes_are_on_the_time_axis_and_in_a_table() {
    let store = tempfile::tempdir().unwrap();
    let dir = support::run_dir(store.path(), "acks-all-kill-leader", "20261129T150000.000Z");
    let ms = 1_000_000;
    let mut history = support::History::default();
    history.invoke_send(ms, 1, "1-1");
    history.ok_send(2 * ms, 1, "1-1", 0, 0);
    history.invoke_send(3 * ms, 1, "1-2");
    history.op(
        4_000 * ms,
        serde_json::json!("harness"),
        "info",
        "client-crash",
        serde_json::json!({"process": 1, "pid": 4242, "cause": "signal 11 (SIGSEGV)", "in_flight": 1}),
    );
    history.failed_send(
        4_000 * ms,
        1,
        "1-2",
        "info",
        "client crashed: signal 11 (SIGSEGV)",
    );
    history.invoke_send(5_000 * ms, 5, "5-1");
    history.ok_send(5_001 * ms, 5, "5-1", 0, 1);
    history.final_read(10_000 * ms, 9, 0, &[(0, "1-1".into()), (1, "5-1".into())]);
    history.write(&dir.join("history.jsonl"));
    std::fs::write(dir.join("workload.toml"), support::WORKLOAD_TOML).unwrap();
    let results = support::check(&dir, LostExpectation::None);
    assert_eq!(results.totals.client_crashes, 1);
    let html = std::fs::read_to_string(write_report(&dir).unwrap()).unwrap();
    assert!(html.contains(r#"<table id="client-crashes">"#), "no table");
    assert!(
        html.contains("<td>client 1</td><td>signal 11 (SIGSEGV)</td>"),
        "the crash's row"
    );
    // On the latency and throughput charts and in its own lane of the fault chart.
    assert_eq!(html.matches(r#"class="client-crash""#).count(), 3);
    assert!(html.contains("client 1 crashed at 4.000 s: signal 11 (SIGSEGV)"));
    assert!(html.contains("client crash (1)"), "the legend");
}
