//! The fuzzer as a test: a short seeded run of `kchaos bench fuzz` (the same in-process broker
//! and coordinator actor, the same generator) finds no crash and reaches every API the broker
//! answers; and every input that ever crashed a daemon (`tests/fuzz-regressions/`) is replayed
//! and is now refused or answered without a crash.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Mutex;

use kchaos::bench::fuzz::{self, FuzzOptions};
use kchaos::broker::handlers::SUPPORTED;

/// The fuzzer installs a process-wide panic hook and signal handler: one run at a time.
static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

fn regression_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "bin"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_short_seeded_run_finds_no_crash_and_reaches_every_api() {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let crashes = tempfile::tempdir().unwrap();
    let report = fuzz::run_fuzz(&FuzzOptions {
        inputs: 30_000,
        seed: 20_261_129,
        crash_dir: crashes.path().to_path_buf(),
        data_parent: fuzz::default_data_parent(),
        progress: false,
    })
    .unwrap();
    let messages: Vec<String> = report
        .crashes
        .iter()
        .map(|crash| format!("{} {}: {}", crash.kind, crash.index, crash.message))
        .collect();
    assert!(messages.is_empty(), "crashes:\n{}", messages.join("\n"));
    assert_eq!(report.inputs, 30_000);
    for (api_key, _, _) in SUPPORTED {
        let answered = report
            .answered_by_api
            .get(&(*api_key as i16))
            .copied()
            .unwrap_or(0);
        assert!(answered > 0, "no {api_key:?} input was answered");
    }
    for (kind, counts) in &report.by_kind {
        assert!(counts.executed > 0, "{kind:?}");
    }
    let jute_answered: u64 = report
        .by_kind
        .iter()
        .filter(|(kind, _)| !kind.is_kafka())
        .map(|(_, counts)| counts.answered)
        .sum();
    assert!(
        jute_answered > 1_000,
        "{jute_answered} jute inputs answered"
    );
}

#[test]
fn every_input_that_ever_crashed_is_replayed_without_a_crash() {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let files = regression_files();
    assert!(
        files.len() >= 8,
        "the regression inputs are missing: {files:?}"
    );
    let crashes = tempfile::tempdir().unwrap();
    let report = fuzz::replay(&files, crashes.path(), &fuzz::default_data_parent()).unwrap();
    assert_eq!(report.inputs, files.len() as u64);
    assert!(report.crashes.is_empty(), "{:?}", report.crashes);
    // The Kafka ones asked for gigabytes with a count or length: each is now cut off by the
    // length check, a refusal (the connection would close).
    let kafka_files = files
        .iter()
        .filter(|file| fuzz::kind_of_file(file).is_kafka())
        .count() as u64;
    let kafka_refused: u64 = report
        .by_kind
        .iter()
        .filter(|(kind, _)| kind.is_kafka())
        .map(|(_, counts)| counts.refused)
        .sum();
    assert_eq!(kafka_refused, kafka_files, "{:?}", report.by_kind);
}
