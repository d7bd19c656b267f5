//! `kchaos report RUN_DIR` and `kchaos report --index STORE_DIR` through the real binary: the
//! files appear, their paths are printed, and a run directory without a history fails with
//! exit code 2 naming the file.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn kchaos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A run whose acknowledged send `1-2` is missing from the final read.
fn write_run(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let lines = [
        r#"{"index":0,"time_ns":1000000,"process":1,"type":"invoke","f":"send","value":{"key":"k","value":"1-1"}}"#,
        r#"{"index":1,"time_ns":3000000,"process":1,"type":"ok","f":"send","value":{"key":"k","value":"1-1","partition":0,"offset":0}}"#,
        r#"{"index":2,"time_ns":4000000,"process":1,"type":"invoke","f":"send","value":{"key":"k","value":"1-2"}}"#,
        r#"{"index":3,"time_ns":5000000,"process":1,"type":"ok","f":"send","value":{"key":"k","value":"1-2","partition":0,"offset":1}}"#,
        r#"{"index":4,"time_ns":6000000,"process":"nemesis","type":"invoke","f":"kill","value":{"node":"broker-1","why":"leader of t-0"}}"#,
        r#"{"index":5,"time_ns":7000000,"process":"nemesis","type":"info","f":"kill","value":{"node":"broker-1","why":"leader of t-0"}}"#,
        r#"{"index":6,"time_ns":9000000,"process":9,"type":"invoke","f":"final-read","value":{"partition":0}}"#,
        r#"{"index":7,"time_ns":9500000,"process":9,"type":"ok","f":"final-read","value":{"partition":0,"log_start_offset":0,"high_watermark":1,"records":[[0,0,"1-1"]],"complete":true}}"#,
    ];
    std::fs::write(dir.join("history.jsonl"), lines.join("\n") + "\n").unwrap();
}

#[test]
fn report_writes_the_page_and_the_junit_checks() {
    let store = tempfile::tempdir().unwrap();
    let run = store.path().join("smoke").join("20261125T150000.000Z");
    write_run(&run);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/single-broker-smoke.toml"),
        run.join("workload.toml"),
    )
    .unwrap();
    let check = kchaos(&["check", run.to_str().unwrap()]);
    assert_eq!(
        check.status.code(),
        Some(1),
        "a loss: {}",
        text(&check.stderr)
    );
    let output = kchaos(&["report", run.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("report.html") && stdout.contains("results.xml"),
        "{stdout}"
    );
    assert!(run.join("results.xml").is_file());
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains(r#"id="lost-count">1 acknowledged send lost"#));
    assert!(html.contains("kill broker-1"));

    let output = kchaos(&["report", "--index", store.path().to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let index = std::fs::read_to_string(store.path().join("index.html")).unwrap();
    assert!(index.contains(r#"<a href="smoke/20261125T150000.000Z/report.html">report</a>"#));
}

#[test]
fn report_of_a_directory_without_history_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = kchaos(&["report", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("history.jsonl is missing"), "{stderr}");

    let output = kchaos(&["report"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap: a run directory or --index is required"
    );
}
