//! Shared code of the workload tests: one whole `kchaos workload NAME --duration D --seed 1`
//! run at a time, in a store of its own, and what it printed and left. On two cores, several
//! three-broker clusters at once would miss their 1.5 s sessions and the runs would judge the
//! machine, not the system. It also reads a run's results and history.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use history::{Op, read_history};

/// One run at a time (per test binary; cargo runs the binaries one after another).
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What a run printed and left.
pub struct WorkloadRun {
    pub code: Option<i32>,
    /// stdout, then stderr.
    pub text: String,
    /// The run directory (store/latest resolved).
    pub dir: PathBuf,
    _store: tempfile::TempDir,
}

impl WorkloadRun {
    pub fn results(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.join("results.json")).unwrap())
            .unwrap()
    }

    pub fn history(&self) -> Vec<Op> {
        read_history(&self.dir.join("history.jsonl"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The count of an anomaly in results.json.
    pub fn count(&self, anomaly: &str) -> u64 {
        self.results()["anomalies"][anomaly]["count"]
            .as_u64()
            .unwrap()
    }

    /// The summary's `lost: N`.
    pub fn lost(&self) -> Option<u64> {
        self.text
            .lines()
            .find_map(|line| line.split("lost: ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|count| count.parse().ok())
    }
}

/// Runs `kchaos workload NAME --duration D --seed 1` in the repository, waiting its turn.
pub fn run_workload(name: &str, duration: &str) -> WorkloadRun {
    let _turn = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let store = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args([
            "workload",
            name,
            "--duration",
            duration,
            "--seed",
            "1",
            "--no-progress",
            "--store",
            store.path().to_str().unwrap(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = std::fs::canonicalize(store.path().join("latest")).unwrap_or_default();
    WorkloadRun {
        code: output.status.code(),
        text,
        dir,
        _store: store,
    }
}

/// The run matched a `lost = "none"` expectation: exit 0, nothing lost, something acknowledged.
pub fn assert_nothing_lost(run: &WorkloadRun, name: &str) {
    assert_eq!(run.code, Some(0), "{name}:\n{}", run.text);
    assert!(run.text.contains("lost: 0"), "{name}:\n{}", run.text);
    assert!(!run.text.contains("sends: 0 ok"), "{name}:\n{}", run.text);
}

/// The run matched a `lost = "some"` expectation: exit 0 and a lost count above zero.
pub fn assert_loss_found(run: &WorkloadRun, name: &str) {
    assert_eq!(
        run.code,
        Some(0),
        "the checker should find the loss in {name}:\n{}",
        run.text
    );
    assert!(
        run.lost().is_some_and(|lost| lost > 0),
        "{name}:\n{}",
        run.text
    );
}
