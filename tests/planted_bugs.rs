//! The planted bugs' switches, through the real binary. A default build refuses them with an
//! error that says how to get a build that has them, and contains none of their code (the names
//! of the catalogue appear nowhere in it); a `planted-bugs` build contains them all, and refuses
//! only names it does not know or that belong to the other process. Run in both builds:
//! `cargo test --test planted_bugs` and `cargo test --features planted-bugs --test planted_bugs`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn kchaos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A broker config that fails nowhere before the planted-bug switch would be read.
fn broker_config(dir: &Path, bugs: &str) -> String {
    let path = dir.join("server.properties");
    std::fs::write(
        &path,
        format!(
            "broker.id=1\nzookeeper.connect=127.0.0.1:1\nlog.dirs={}\nkchaos.planted.bugs={bugs}\n",
            dir.join("logs").display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// The bug names of the catalogue, read from its source (`Name = "name" in Component,`).
fn catalogue_names() -> Vec<String> {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/planted/catalogue.rs"),
    )
    .unwrap();
    let names: Vec<String> = source
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(" = \"")?;
            let (name, tail) = rest.split_once('"')?;
            (tail.starts_with(" in Broker") || tail.starts_with(" in Coordinator"))
                .then(|| name.to_string())
        })
        .collect();
    assert!(names.len() >= 14, "{names:?}");
    names
}

/// The binary as text (bytes that are not UTF-8 become U+FFFD; the strings of the code stay).
fn binary_text() -> String {
    let bytes = std::fs::read(env!("CARGO_BIN_EXE_kchaos")).unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(not(feature = "planted-bugs"))]
#[test]
fn a_default_build_refuses_the_broker_switch_naming_the_feature() {
    let dir = tempfile::tempdir().unwrap();
    let config = broker_config(dir.path(), "acks-all-before-replication");
    let output = kchaos(&["broker", "--config", &config]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("kchaos.planted.bugs"), "{said}");
    assert!(said.contains("--features planted-bugs"), "{said}");
    assert!(said.contains("acks-all-before-replication"), "{said}");
    assert!(
        !dir.path().join("logs").exists(),
        "it refused before starting"
    );
}

#[cfg(not(feature = "planted-bugs"))]
#[test]
fn a_default_build_refuses_the_coordinator_switch_and_the_selftest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = kchaos(&[
        "coordinator",
        "--port",
        "0",
        "--data-dir",
        data.to_str().unwrap(),
        "--planted-bugs",
        "ephemerals-outlive-session",
    ]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("--planted-bugs"), "{said}");
    assert!(said.contains("--features planted-bugs"), "{said}");
    let store = dir.path().join("store");
    let output = kchaos(&["selftest", "--store", store.to_str().unwrap()]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(
        said.contains("cargo run --release --features planted-bugs -- selftest"),
        "{said}"
    );
    assert!(!store.exists(), "nothing written: {said}");
}

#[cfg(not(feature = "planted-bugs"))]
#[test]
fn a_default_build_contains_no_planted_bug() {
    let binary = binary_text();
    for name in catalogue_names() {
        assert!(
            !binary.contains(&name),
            "the default binary contains `{name}`: a planted bug's code leaked into it"
        );
    }
    assert!(!binary.contains("PLANTED BUG ON"));
}

#[cfg(feature = "planted-bugs")]
#[test]
fn a_planted_build_contains_every_planted_bug() {
    // The twin of the default build's test: the same search finds them here.
    let binary = binary_text();
    for name in catalogue_names() {
        assert!(binary.contains(&name), "`{name}` is not in the binary");
    }
    assert!(binary.contains("PLANTED BUG ON"));
}

#[cfg(feature = "planted-bugs")]
#[test]
fn a_planted_build_refuses_unknown_names_and_the_other_process_bugs() {
    let dir = tempfile::tempdir().unwrap();
    let config = broker_config(dir.path(), "acks-all-before-replication,no-such-bug");
    let output = kchaos(&["broker", "--config", &config]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(
        said.contains("no planted bug is named `no-such-bug`"),
        "{said}"
    );
    assert!(said.contains("high-watermark-from-leader-alone"), "{said}");
    let data = dir.path().join("data");
    let output = kchaos(&[
        "coordinator",
        "--port",
        "0",
        "--data-dir",
        data.to_str().unwrap(),
        "--planted-bugs",
        "acks-all-before-replication",
    ]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(
        said.contains("lives in the broker, not the coordinator"),
        "{said}"
    );
}
