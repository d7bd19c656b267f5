//! `kchaos selftest` end to end (a `planted-bugs` build: `cargo test --features planted-bugs
//! --test selftest`): one planted bug against its workload is caught, and against a copy of the
//! workload made too weak to catch it (its faults taken out) the selftest fails, exit 1, naming
//! the bug — in its output, its matrix and its JUnit. One cluster at a time.
#![cfg(feature = "planted-bugs")]
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

const BUG: &str = "acks-all-before-replication";
const WORKLOAD: &str = "acks-all-freeze-successor-kill-leader";

/// Runs the quick selftest of `BUG` with one seed, workloads from `workloads`; returns the exit
/// code, the output and the selftest's directory.
fn selftest(workloads: &Path, store: &Path) -> (Option<i32>, String, std::path::PathBuf) {
    let _turn = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args(["selftest", "--quick", "--seeds", "1", "--bug", BUG])
        .arg("--workloads")
        .arg(workloads)
        .arg("--store")
        .arg(store)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = std::fs::canonicalize(store.join("selftest/latest")).unwrap();
    (output.status.code(), said, dir)
}

fn shipped_workloads() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads")
}

#[test]
fn the_planted_bug_is_caught_by_its_workload() {
    let store = tempfile::tempdir().unwrap();
    let (code, said, dir) = selftest(&shipped_workloads(), store.path());
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("caught 1/1 planted bugs"), "{said}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("selftest.json")).unwrap()).unwrap();
    let bug = json["bugs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|outcome| outcome["bug"]["name"] == BUG)
        .unwrap();
    assert_eq!(bug["status"], "caught", "{json:#}");
    let first = &bug["first-catch"];
    assert_eq!(first["seed"], 1);
    assert_eq!(first["first-anomaly"], "lost", "{json:#}");
    assert!(first["time-to-detection-ms"].is_u64(), "{json:#}");
    let run_dir = dir.join(first["run-dir"].as_str().unwrap());
    assert!(run_dir.join("report.html").is_file());
    let matrix = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(matrix.contains("caught <b>1/1</b>"), "{matrix}");
}

#[test]
fn a_workload_too_weak_to_catch_the_bug_fails_the_selftest_naming_it() {
    let workloads = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(shipped_workloads()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            std::fs::copy(&path, workloads.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    // The same workload without its faults: the leader never dies, nothing is taken back.
    let path = workloads.path().join(format!("{WORKLOAD}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("[nemesis]").unwrap();
    let end = text.find("[expect]").unwrap();
    let weakened = format!(
        "{}[nemesis]\nkind = \"none\"\n\n{}",
        text[..start].replace("duration = \"14s\"", "duration = \"8s\""),
        &text[end..]
    );
    std::fs::write(&path, weakened).unwrap();
    let store = tempfile::tempdir().unwrap();
    let (code, said, dir) = selftest(workloads.path(), store.path());
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!("MISSED: planted bug {BUG}")),
        "{said}"
    );
    assert!(said.contains("caught 0/1 planted bugs"), "{said}");
    let junit = std::fs::read_to_string(dir.join("results.xml")).unwrap();
    assert!(
        junit.contains(&format!(
            "<failure message=\"planted bug {BUG} was not caught"
        )),
        "{junit}"
    );
    let matrix = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        matrix.contains(&format!("FAILED: missed {BUG}")),
        "{matrix}"
    );
}
