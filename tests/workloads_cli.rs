//! `kchaos list`, and the errors of `kchaos workload` for a workload that does not exist or a
//! file that is not a good workload: exit code 2 and a message naming the file, line and field.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn kchaos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn list_shows_every_shipped_workload_with_its_description() {
    let output = kchaos(&["list"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    for name in [
        "acks-all-kill-leader",
        "acks-all-pause-leader",
        "acks-all-kill-controller",
        "acks-all-rolling-restart",
        "acks1-kill-leader",
        "clean-election-unavailable",
        "unclean-election-loss",
        "random-faults",
        "single-broker-smoke",
    ] {
        let line = text
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"));
        assert!(line.len() > name.len() + 10, "no description: {line}");
    }
}

#[test]
fn an_unknown_workload_exits_2_naming_it_and_the_known_ones() {
    let store = tempfile::tempdir().unwrap();
    let output = kchaos(&[
        "workload",
        "no-such-workload",
        "--store",
        store.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-workload"), "{stderr}");
    assert!(stderr.contains("single-broker-smoke"), "{stderr}");
    assert!(
        std::fs::read_dir(store.path()).unwrap().next().is_none(),
        "nothing should be stored for a workload that does not exist"
    );
}

#[test]
fn a_bad_toml_exits_2_naming_the_file_the_line_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    let good = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/single-broker-smoke.toml"),
    )
    .unwrap();
    let bad = good.replace("[clients]\n", "[clients]\nproducerz = 3\n");
    let line = bad
        .lines()
        .position(|line| line.starts_with("producerz"))
        .unwrap()
        + 1;
    std::fs::write(&path, bad).unwrap();
    let output = kchaos(&[
        "workload",
        path.to_str().unwrap(),
        "--store",
        dir.path().join("store").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("typo.toml"), "{stderr}");
    assert!(stderr.contains(&format!("line {line}")), "{stderr}");
    assert!(stderr.contains("producerz"), "{stderr}");
}

#[test]
fn a_bad_value_names_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rf.toml");
    let good = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/single-broker-smoke.toml"),
    )
    .unwrap();
    std::fs::write(
        &path,
        good.replace("replication_factor = 1", "replication_factor = 2"),
    )
    .unwrap();
    let output = kchaos(&["workload", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rf.toml"), "{stderr}");
    assert!(stderr.contains("topic.replication_factor"), "{stderr}");
}

#[test]
fn check_of_a_directory_that_is_not_a_run_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = kchaos(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a run directory"), "{stderr}");
}

#[test]
fn a_seed_toml_cannot_hold_is_refused_before_anything_starts() {
    let output = kchaos(&[
        "workload",
        "single-broker-smoke",
        "--seed",
        "18446744073709551615",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--seed 18446744073709551615 is too large"),
        "{stderr}"
    );
}

/// One run in which no send can be acknowledged (RF 1 under `min.insync.replicas=2`: every
/// acks=all send is refused with NOT_ENOUGH_REPLICAS), judged by every surface: `kchaos
/// workload`, `kchaos check` on the same run, the report's badge, the JUnit `expectation` case
/// and the store's index all call it a failure, because one rule decides.
#[test]
fn a_run_without_an_acknowledged_send_fails_on_every_surface() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let path = dir.path().join("nothing-acknowledged.toml");
    let good = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/single-broker-smoke.toml"),
    )
    .unwrap();
    let workload = good
        .replace(
            "replication_factor = 1\n",
            "replication_factor = 1\nconfigs = { \"min.insync.replicas\" = \"2\" }\n",
        )
        .replace("kind = \"scripted\"", "kind = \"none\"")
        .lines()
        .filter(|line| !line.starts_with("steps") && !line.starts_with("  {") && *line != "]")
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, workload).unwrap();
    let run = kchaos(&[
        "workload",
        path.to_str().unwrap(),
        "--duration",
        "2s",
        "--seed",
        "3",
        "--no-progress",
        "--store",
        store.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(stdout.contains("sends: 0 ok"), "{stdout}");
    assert!(stdout.contains("proves nothing"), "{stdout}");

    let run_dir = std::fs::canonicalize(store.join("latest")).unwrap();
    let check = kchaos(&["check", run_dir.to_str().unwrap()]);
    assert_eq!(
        check.status.code(),
        run.status.code(),
        "kchaos check must judge the run as kchaos workload did: {check:?}"
    );
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("FAIL: proves nothing"),
        "{check:?}"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results["matches-expectation"], false, "{results:#}");

    let report = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(
        report.contains("✗ proves nothing: no send was acknowledged"),
        "the report's badge disagrees"
    );
    let junit = std::fs::read_to_string(run_dir.join("results.xml")).unwrap();
    let expectation = junit
        .lines()
        .find(|line| line.contains(r#"name="expectation""#))
        .unwrap();
    assert!(
        expectation.contains("<failure message=\"proves nothing"),
        "{expectation}"
    );
    let index = std::fs::read_to_string(store.join("index.html")).unwrap();
    assert!(index.contains("proves nothing"), "{index}");
}
