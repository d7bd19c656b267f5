//! The command line itself: every subcommand is listed, and bad usage is a clear error.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn kchaos(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args(args)
        .output()
        .unwrap()
}

/// The names in the `Commands:` section of a clap help text (the first word of each entry).
fn subcommand_names(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .map(String::from)
        .collect()
}

#[test]
fn help_lists_every_subcommand_by_name() {
    let output = kchaos(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    let names = subcommand_names(&help);
    assert_eq!(
        names,
        [
            "workload",
            "list",
            "check",
            "report",
            "cluster",
            "broker",
            "coordinator",
            "client",
            "topics",
            "configs",
            "elect",
            "coord",
            "bench",
            "cleanup",
            "selftest",
            "help",
        ],
        "{help}"
    );
    // Each is a subcommand of its own: its help names it.
    for name in names.iter().filter(|name| *name != "help") {
        let output = kchaos(&[name, "--help"]);
        assert!(output.status.success(), "{name} --help: {output:?}");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(
            help.contains(&format!("Usage: kchaos {name}")),
            "{name} --help:\n{help}"
        );
    }
}

#[test]
fn cluster_lists_its_subcommands_by_name() {
    let output = kchaos(&["cluster", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        subcommand_names(&help),
        [
            "up", "status", "down", "kill", "stop", "start", "pause", "resume", "help"
        ],
        "{help}"
    );
}

#[test]
fn unknown_subcommand_is_a_usage_error_naming_it() {
    let output = kchaos(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("frobnicate"), "{stderr}");
}

#[test]
fn cluster_up_help_documents_its_console_and_the_second_shell() {
    let output = kchaos(&["cluster", "up", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for command in [
        "kill NODE",
        "stop NODE",
        "start NODE",
        "pause NODE",
        "resume NODE",
    ] {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(command)),
            "`{command}` missing:\n{help}"
        );
    }
    for line in [
        "  status ",
        "  down ",
        "kchaos cluster status|down",
        "pids.log",
        "docs/lab.md",
    ] {
        assert!(help.contains(line), "`{line}` missing:\n{help}");
    }
}
