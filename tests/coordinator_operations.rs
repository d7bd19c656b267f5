//! Operations through `zookeeper-client` against `kchaos coordinator`, needing no peer:
//! compare-and-set and multi-op conflicts answer BadVersion and change nothing; two sessions
//! racing to create `/controller` get one winner; the `kchaos coord` shell prints what
//! zookeeper-shell prints and exits 1 on ZooKeeper errors.
#![allow(clippy::unwrap_used)]

mod coordinator_support;

use std::io::Write;
use std::process::{Command, Stdio};

use coordinator_support::*;
use zookeeper_client as zk;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_set_and_multi_conflicts_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let client = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    client
        .create("/controller_epoch", b"7", &persistent())
        .await
        .unwrap();
    let (_, before) = client.get_data("/controller_epoch").await.unwrap();

    assert_eq!(
        client.set_data("/controller_epoch", b"8", Some(3)).await,
        Err(zk::Error::BadVersion)
    );
    assert_eq!(
        client.delete("/controller_epoch", Some(3)).await,
        Err(zk::Error::BadVersion)
    );
    let mut multi = client.new_multi_writer();
    multi.add_create("/brokers", b"", &persistent()).unwrap();
    multi.add_set_data("/controller_epoch", b"8", None).unwrap();
    multi.add_check_version("/controller_epoch", 0).unwrap();
    assert_eq!(
        multi.commit().await,
        Err(zk::MultiWriteError::OperationFailed {
            index: 2,
            source: zk::Error::BadVersion
        })
    );
    let (data, after) = client.get_data("/controller_epoch").await.unwrap();
    assert_eq!(data, b"7");
    assert_eq!(after, before, "a refused CAS or multi changed the stat");
    assert_eq!(client.check_stat("/brokers").await.unwrap(), None);

    let mut multi = client.new_multi_writer();
    multi.add_check_version("/controller_epoch", 0).unwrap();
    multi.add_set_data("/controller_epoch", b"8", None).unwrap();
    let results = multi.commit().await.unwrap();
    assert_eq!(results.len(), 2);
    let (data, stat) = client.get_data("/controller_epoch").await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"8"[..], 1));
    close(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_controller_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let first = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    let second = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    for round in 0..20 {
        let (a, b) = tokio::join!(
            first.create("/controller", b"1", &ephemeral()),
            second.create("/controller", b"2", &ephemeral())
        );
        assert!(
            a.is_ok() != b.is_ok(),
            "round {round}: exactly one wins: {a:?} {b:?}"
        );
        let loser_error = a.err().or(b.err()).unwrap();
        assert_eq!(loser_error, zk::Error::NodeExists);
        first.delete("/controller", None).await.unwrap();
    }
    close(first).await;
    close(second).await;
}

fn coord(address: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .arg("coord")
        .arg(address)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn shell_commands_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let address = coordinator.address();
    let controller = r#"{"version":1,"brokerid":1,"timestamp":"1704544728806"}"#;
    assert_eq!(coord(&address, &["create", "/controller", controller]).0, 0);
    assert_eq!(coord(&address, &["create", "/brokers", ""]).0, 0);
    let (code, out, _) = coord(&address, &["create", "-s", "/brokers/seq-", "x"]);
    assert_eq!((code, out.trim()), (0, "Created /brokers/seq-0000000000"));
    let (code, out, _) = coord(&address, &["ls", "/"]);
    assert_eq!((code, out.trim()), (0, "[brokers, controller]"));
    let (code, out, _) = coord(&address, &["get", "/controller"]);
    assert_eq!((code, out.trim()), (0, controller));
    let (code, out, _) = coord(&address, &["stat", "/brokers"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("numChildren = 1") && out.contains("dataVersion = 0"),
        "{out}"
    );
    assert_eq!(
        coord(&address, &["set", "/controller", "v2", "-v", "0"]).0,
        0
    );
    let (code, _, err) = coord(&address, &["set", "/controller", "v3", "-v", "0"]);
    assert_eq!(
        (code, err.trim()),
        (1, "version No is not valid : /controller")
    );
    let (code, _, err) = coord(&address, &["get", "/nope"]);
    assert_eq!((code, err.trim()), (1, "Node does not exist: /nope"));
    let (code, _, err) = coord(&address, &["create", "/controller", "x"]);
    assert_eq!((code, err.trim()), (1, "Node already exists: /controller"));
    let (code, _, err) = coord(&address, &["delete", "/brokers"]);
    assert_eq!((code, err.trim()), (1, "Node not empty: /brokers"));
    assert_eq!(coord(&address, &["delete", "/controller"]).0, 0);
    let (code, out, _) = coord(&address, &["ls", "/"]);
    assert_eq!((code, out.trim()), (0, "[brokers]"));
}

#[test]
fn interactive_shell_reads_commands_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let mut shell = Command::new(env!("CARGO_BIN_EXE_kchaos"))
        .arg("coord")
        .arg(coordinator.address())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(b"create -e /session-owned here\nls /\nget /nope\nquit\n")
        .unwrap();
    let output = shell.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("Created /session-owned"), "{out}");
    assert!(out.contains("[session-owned]"), "{out}");
    assert!(out.contains("Node does not exist: /nope"), "{out}");
    // The shell closed its session on exit: its ephemeral node is gone at once.
    let (code, listing, _) = coord(&coordinator.address(), &["ls", "/"]);
    assert_eq!((code, listing.trim()), (0, "[]"));
}

/// What people type into zookeeper-shell: `ls -R` walks the tree, `get -s` and `ls -s` add the
/// stat, `deleteall` removes a subtree, and a flag the command does not know is refused (exit 2,
/// nothing done) instead of being ignored.
#[test]
fn shell_flags_as_zookeeper_shell() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let address = coordinator.address();
    for path in [
        "/brokers",
        "/brokers/ids",
        "/brokers/ids/1",
        "/brokers/topics",
        "/config",
    ] {
        assert_eq!(coord(&address, &["create", path, "x"]).0, 0, "{path}");
    }
    let (code, out, _) = coord(&address, &["ls", "-R", "/"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "/",
            "/brokers",
            "/brokers/ids",
            "/brokers/ids/1",
            "/brokers/topics",
            "/config"
        ]
    );
    let (code, out, _) = coord(&address, &["ls", "-R", "/brokers/ids"]);
    assert_eq!((code, out.as_str()), (0, "/brokers/ids\n/brokers/ids/1\n"));

    let (code, out, _) = coord(&address, &["get", "-s", "/brokers/ids/1"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("x\ncZxid = 0x"), "{out}");
    assert!(out.contains("dataLength = 1\nnumChildren = 0"), "{out}");
    let (code, out, _) = coord(&address, &["ls", "-s", "/brokers"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("[ids, topics]\ncZxid = 0x"), "{out}");
    assert!(out.contains("numChildren = 2"), "{out}");
    let (code, out, _) = coord(&address, &["set", "-s", "/config", "y", "-v", "0"]);
    assert_eq!(code, 0);
    assert!(out.contains("dataVersion = 1"), "{out}");

    for (args, wanted) in [
        (&["ls", "-x", "/"][..], "ls: unknown option -x"),
        (&["get", "-z", "/config"][..], "get: unknown option -z"),
        (
            &["delete", "-R", "/config"][..],
            "delete: unknown option -R",
        ),
    ] {
        let (code, out, err) = coord(&address, args);
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}: {err}");
        assert!(err.contains(wanted), "{args:?}: {err}");
    }
    // The refused delete did nothing.
    assert_eq!(coord(&address, &["stat", "/config"]).0, 0);

    let (code, _, err) = coord(&address, &["ls", "-R", "/nope"]);
    assert_eq!((code, err.trim()), (1, "Node does not exist: /nope"));
    assert_eq!(coord(&address, &["deleteall", "/brokers"]).0, 0);
    let (code, out, _) = coord(&address, &["ls", "/"]);
    assert_eq!((code, out.trim()), (0, "[config]"));
}
