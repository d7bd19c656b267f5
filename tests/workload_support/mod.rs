//! Running a shipped workload end to end for the workload tests: `kchaos workload NAME
//! --duration D --seed 1` in a temporary store, one run at a time in a test binary (on two
//! cores, several three-broker clusters at once would miss their 1.5 s sessions and the runs
//! would judge the machine, not the system), and what a run left: its exit code, its output,
//! its results and its history.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use history::{Op, read_history};

/// One run at a time.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A finished run: its exit code, its output, its directory (kept while `_store` lives).
pub struct WorkloadRun {
    pub code: Option<i32>,
    pub text: String,
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
}

/// Runs `kchaos workload NAME --duration D --seed 1`, waiting for its turn.
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
