//! The command line itself: every subcommand is listed, and bad usage is a clear error.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn kchaos(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_every_subcommand() {
    let output = kchaos(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for subcommand in [
        "workload",
        "list",
        "check",
        "report",
        "cluster",
        "broker",
        "coordinator",
        "topics",
        "configs",
        "elect",
        "coord",
        "bench",
    ] {
        assert!(
            help.contains(subcommand),
            "--help lacks {subcommand}:\n{help}"
        );
    }
}

#[test]
fn unknown_subcommand_is_a_usage_error_naming_it() {
    let output = kchaos(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("frobnicate"), "{stderr}");
}
