//! Compatibility with ZooKeeper's own tools and clients: one scripted sequence run through
//! `zookeeper-client` against Apache ZooKeeper and against `kchaos coordinator` gives the same
//! transcript (results, errors, watch events); `zkCli.sh` and a python `kazoo` script work
//! against our coordinator unchanged. A missing peer fails the test, naming what to install.
#![allow(clippy::unwrap_used)]

mod coordinator_support;

use std::time::Duration;

use coordinator_support::*;
use zookeeper_client as zk;

/// The parts of a stat that do not depend on zxids, clocks or session ids.
fn summary(stat: &zk::Stat, session: &zk::Client) -> String {
    format!(
        "version={} cversion={} aversion={} length={} children={} ephemeral={} modified={}",
        stat.version,
        stat.cversion,
        stat.aversion,
        stat.data_length,
        stat.num_children,
        if stat.ephemeral_owner == 0 {
            "no"
        } else if stat.ephemeral_owner == session.session_id().0 {
            "mine"
        } else {
            "other"
        },
        stat.mzxid != stat.czxid,
    )
}

fn outcome<T>(result: Result<T, zk::Error>, show: impl FnOnce(T) -> String) -> String {
    match result {
        Ok(value) => format!("ok {}", show(value)),
        Err(error) => format!("error {error:?}"),
    }
}

fn multi_outcome(result: Result<Vec<zk::MultiWriteResult>, zk::MultiWriteError>) -> String {
    match result {
        Ok(results) => {
            let kinds: Vec<String> = results
                .iter()
                .map(|result| match result {
                    zk::MultiWriteResult::Check => "check".to_string(),
                    zk::MultiWriteResult::Delete => "delete".to_string(),
                    zk::MultiWriteResult::Create { path, .. } => format!("create {path}"),
                    zk::MultiWriteResult::SetData { stat } => {
                        format!("set version={}", stat.version)
                    }
                    other => format!("{other:?}"),
                })
                .collect();
            format!("ok [{}]", kinds.join(", "))
        }
        Err(error) => format!("error {error:?}"),
    }
}

async fn event(watch: zk::OneshotWatcher) -> String {
    let event = tokio::time::timeout(Duration::from_secs(20), watch.changed())
        .await
        .expect("watch event");
    format!("event {:?} {}", event.event_type, event.path)
}

/// The scripted sequence: creates, CAS conflicts, ephemerals, sequentials, multi, watches.
async fn scenario(address: &str) -> Vec<String> {
    let zk = connect(address, Duration::from_secs(4)).await;
    let other = connect(address, Duration::from_secs(4)).await;
    let mut log = Vec::new();
    let p = persistent();
    let e = ephemeral();
    let seq = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    macro_rules! step {
        ($name:expr, $value:expr) => {{
            let line = format!("{}: {}", $name, $value);
            log.push(line);
        }};
    }
    let stat = |s: (zk::Stat, zk::CreateSequence)| summary(&s.0, &zk);
    step!(
        "create /diff",
        outcome(zk.create("/diff", b"root", &p).await, stat)
    );
    step!(
        "create /diff again",
        outcome(zk.create("/diff", b"root", &p).await, stat)
    );
    step!(
        "create /diff/a/b",
        outcome(zk.create("/diff/a/b", b"", &p).await, stat)
    );
    step!(
        "create /diff/a",
        outcome(zk.create("/diff/a", b"1", &p).await, stat)
    );
    step!(
        "get /diff/a",
        outcome(zk.get_data("/diff/a").await, |(data, s)| format!(
            "{} {}",
            String::from_utf8_lossy(&data),
            summary(&s, &zk)
        ))
    );
    step!(
        "set /diff/a v5",
        outcome(zk.set_data("/diff/a", b"2", Some(5)).await, |s| summary(
            &s, &zk
        ))
    );
    step!(
        "set /diff/a v0",
        outcome(zk.set_data("/diff/a", b"2", Some(0)).await, |s| summary(
            &s, &zk
        ))
    );
    step!(
        "get after CAS",
        outcome(zk.get_data("/diff/a").await, |(d, _)| {
            String::from_utf8_lossy(&d).into_owned()
        })
    );
    step!(
        "delete /diff/a v0",
        outcome(zk.delete("/diff/a", Some(0)).await, |()| String::new())
    );
    step!(
        "create /diff/a/child",
        outcome(zk.create("/diff/a/child", b"", &p).await, stat)
    );
    step!(
        "delete /diff/a",
        outcome(zk.delete("/diff/a", None).await, |()| String::new())
    );
    step!(
        "delete /diff/missing",
        outcome(zk.delete("/diff/missing", None).await, |()| String::new())
    );
    step!(
        "get /diff/missing",
        outcome(zk.get_data("/diff/missing").await, |_| String::new())
    );
    step!(
        "create ephemeral /diff/e",
        outcome(zk.create("/diff/e", b"", &e).await, stat)
    );
    step!(
        "create /diff/e/x",
        outcome(zk.create("/diff/e/x", b"", &p).await, stat)
    );
    step!(
        "stat /diff/e",
        outcome(zk.check_stat("/diff/e").await, |s| s
            .map(|s| summary(&s, &zk))
            .unwrap_or_default())
    );
    step!(
        "other sees /diff/e",
        outcome(other.check_stat("/diff/e").await, |s| s
            .map(|s| summary(&s, &other))
            .unwrap_or_default())
    );
    step!(
        "other creates /diff/e",
        outcome(other.create("/diff/e", b"", &e).await, stat)
    );
    for _ in 0..3 {
        step!(
            "create sequential /diff/q-",
            outcome(zk.create("/diff/q-", b"", &seq).await, |(_, sequence)| {
                sequence.to_string()
            })
        );
    }
    step!(
        "ephemerals under /diff",
        outcome(zk.list_ephemerals("/diff").await, |list| list.join(","))
    );
    step!(
        "other's ephemerals",
        outcome(other.list_ephemerals("/").await, |list| list.join(","))
    );
    step!(
        "descendants of /diff",
        outcome(zk.count_descendants_number("/diff").await, |count| count
            .to_string())
    );
    step!(
        "ls /diff",
        outcome(zk.list_children("/diff").await, |mut children| {
            children.sort();
            children.join(",")
        })
    );
    step!(
        "stat /diff",
        outcome(zk.check_stat("/diff").await, |s| s
            .map(|s| summary(&s, &zk))
            .unwrap_or_default())
    );

    let mut reader = zk.new_multi_reader();
    reader.add_get_data("/diff/a").unwrap();
    reader.add_get_children("/diff/a").unwrap();
    reader.add_get_data("/diff/missing").unwrap();
    let results = reader.commit().await.map(|results| {
        results
            .into_iter()
            .map(|result| match result {
                zk::MultiReadResult::Data { data, stat } => {
                    format!(
                        "data {} {}",
                        String::from_utf8_lossy(&data),
                        summary(&stat, &zk)
                    )
                }
                zk::MultiReadResult::Children { children } => format!("children {children:?}"),
                zk::MultiReadResult::Error { err } => format!("error {err:?}"),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    });
    step!("multi read", outcome(results, |text| text));

    // Multi: all or nothing.
    let mut multi = zk.new_multi_writer();
    multi.add_check_version("/diff/a", 1).unwrap();
    multi.add_set_data("/diff/a", b"m", None).unwrap();
    multi.add_create("/diff/m", b"", &p).unwrap();
    step!(
        "multi check+set+create",
        multi_outcome(multi.commit().await)
    );
    let mut multi = zk.new_multi_writer();
    multi.add_check_version("/diff/a", 1).unwrap();
    multi.add_create("/diff/n", b"", &p).unwrap();
    step!("multi stale check", multi_outcome(multi.commit().await));
    step!(
        "exists /diff/n",
        outcome(zk.check_stat("/diff/n").await, |s| format!(
            "{}",
            s.is_some()
        ))
    );
    let mut multi = zk.new_multi_writer();
    multi.add_set_data("/diff/a", b"z", None).unwrap();
    multi.add_create("/diff/m", b"", &p).unwrap();
    step!("multi failing last op", multi_outcome(multi.commit().await));
    step!(
        "get after failed multi",
        outcome(zk.get_data("/diff/a").await, |(d, s)| format!(
            "{} {}",
            String::from_utf8_lossy(&d),
            summary(&s, &zk)
        ))
    );
    let mut multi = zk.new_multi_writer();
    multi.add_delete("/diff/a/child", None).unwrap();
    multi.add_delete("/diff/a", Some(2)).unwrap();
    step!("multi delete tree", multi_outcome(multi.commit().await));

    // The controller's fencing: bump /controller_epoch only if nobody else did.
    step!(
        "create epoch",
        outcome(zk.create("/diff/controller_epoch", b"1", &p).await, stat)
    );
    for attempt in 0..2 {
        let mut multi = zk.new_multi_writer();
        multi
            .add_check_version("/diff/controller_epoch", 0)
            .unwrap();
        multi
            .add_set_data("/diff/controller_epoch", b"2", None)
            .unwrap();
        multi.add_create("/diff/controller", b"", &e).unwrap();
        step!(
            format!("fenced takeover {attempt}"),
            multi_outcome(multi.commit().await)
        );
    }

    // Watches.
    let (_, _, data_watch) = zk
        .get_and_watch_data("/diff/controller_epoch")
        .await
        .unwrap();
    other
        .set_data("/diff/controller_epoch", b"3", None)
        .await
        .unwrap();
    step!("data watch", event(data_watch).await);
    let (missing, exists_watch) = zk.check_and_watch_stat("/diff/w").await.unwrap();
    step!(
        "exists watch set on missing",
        format!("{}", missing.is_none())
    );
    other.create("/diff/w", b"", &p).await.unwrap();
    step!("exists watch", event(exists_watch).await);
    let (_, _, children_watch) = zk.get_and_watch_children("/diff").await.unwrap();
    other.create("/diff/c2", b"", &p).await.unwrap();
    step!("children watch", event(children_watch).await);
    let (_, _, delete_watch) = zk.get_and_watch_data("/diff/w").await.unwrap();
    other.delete("/diff/w", None).await.unwrap();
    step!("delete watch", event(delete_watch).await);
    // Persistent watches (addWatch): they stay; recursive ones see the subtree.
    zk.create("/diff/p", b"", &p).await.unwrap();
    zk.create("/diff/r", b"", &p).await.unwrap();
    let mut persistent_watch = zk
        .watch("/diff/p", zk::AddWatchMode::Persistent)
        .await
        .unwrap();
    let mut recursive_watch = zk
        .watch("/diff/r", zk::AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    for round in 0..2 {
        other.set_data("/diff/p", b"x", None).await.unwrap();
        let event = tokio::time::timeout(Duration::from_secs(20), persistent_watch.changed())
            .await
            .expect("persistent watch event");
        step!(
            format!("persistent watch {round}"),
            format!("{:?} {}", event.event_type, event.path)
        );
    }
    other.create("/diff/r/x", b"", &p).await.unwrap();
    other.set_data("/diff/r/x", b"y", None).await.unwrap();
    other.delete("/diff/r/x", None).await.unwrap();
    for round in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(20), recursive_watch.changed())
            .await
            .expect("recursive watch event");
        step!(
            format!("recursive watch {round}"),
            format!("{:?} {}", event.event_type, event.path)
        );
    }
    // Explicit removal (deprecated in favour of drop) lets us see the server accept it.
    #[allow(deprecated)]
    {
        persistent_watch.remove().await.unwrap();
        recursive_watch.remove().await.unwrap();
    }
    other.create("/diff/eph2", b"", &e).await.unwrap();
    let (_, ephemeral_watch) = zk.check_and_watch_stat("/diff/eph2").await.unwrap();
    close(other).await;
    step!("owner closed", event(ephemeral_watch).await);
    step!(
        "/diff/eph2 after close",
        outcome(zk.check_stat("/diff/eph2").await, |s| format!(
            "{}",
            s.is_some()
        ))
    );
    close(zk).await;
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_results_as_apache_zookeeper() {
    let dir = tempfile::tempdir().unwrap();
    let apache = ApacheZooKeeper::start(dir.path());
    let ours = Coordinator::start(dir.path(), &["--max-session-timeout-ms", "10000"]);
    let expected = scenario(&apache.address()).await;
    let actual = scenario(&ours.address()).await;
    for (index, (want, got)) in expected.iter().zip(&actual).enumerate() {
        assert_eq!(got, want, "step {index} differs from Apache ZooKeeper");
    }
    assert_eq!(actual.len(), expected.len());
    eprintln!("{}", actual.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zkcli_lists_and_gets() {
    require("bash", &["-c", &format!("test -x {ZK_CLI}")]);
    require("java", &["-version"]);
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let client = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    client.create("/brokers", b"", &persistent()).await.unwrap();
    let controller = br#"{"version":1,"brokerid":1,"timestamp":"1704544728806"}"#;
    client
        .create("/controller", controller, &persistent())
        .await
        .unwrap();
    let zkcli = |args: &[&str]| {
        let output = std::process::Command::new(ZK_CLI)
            .arg("-server")
            .arg(coordinator.address())
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let listing = zkcli(&["ls", "/"]);
    assert!(
        listing.contains("[brokers, controller]"),
        "zkCli ls /:\n{listing}"
    );
    let data = zkcli(&["get", "/controller"]);
    assert!(
        data.contains(std::str::from_utf8(controller).unwrap()),
        "zkCli get /controller:\n{data}"
    );
    let missing = zkcli(&["get", "/nope"]);
    assert!(!missing.contains("brokerid"), "{missing}");
    close(client).await;
}

const KAZOO_SCRIPT: &str = r#"
import json, sys, threading
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError
zk = KazooClient(hosts=sys.argv[1], timeout=2.0)
zk.start(timeout=30)
out = {}
zk.ensure_path('/kazoo/ids')
zk.create('/kazoo/ids/1', b'{"host":"h"}', ephemeral=True)
out['sequential'] = zk.create('/kazoo/job-', b'', sequence=True)
data, stat = zk.get('/kazoo/ids/1')
out['data'] = data.decode()
out['ephemeral_is_mine'] = stat.ephemeralOwner == zk.client_id[0]
events = []
fired = threading.Event()
def on_change(event):
    events.append([event.type, event.path])
    fired.set()
zk.get('/kazoo/ids/1', watch=on_change)
zk.set('/kazoo/ids/1', b'changed', version=0)
fired.wait(10)
out['events'] = events
try:
    zk.set('/kazoo/ids/1', b'stale', version=0)
    out['cas'] = 'accepted'
except BadVersionError:
    out['cas'] = 'BadVersion'
try:
    zk.create('/kazoo/ids/1', b'')
    out['again'] = 'created'
except NodeExistsError:
    out['again'] = 'NodeExists'
tx = zk.transaction()
tx.check('/kazoo/ids/1', 1)
tx.set_data('/kazoo/ids/1', b'tx')
out['transaction'] = [repr(result) for result in tx.commit()]
children = []
child_fired = threading.Event()
def on_children(event):
    children.append([event.type, event.path])
    child_fired.set()
zk.get_children('/kazoo/ids', watch=on_children)
zk.create('/kazoo/ids/2', b'', ephemeral=True)
child_fired.wait(10)
out['child_events'] = children
out['children'] = sorted(zk.get_children('/kazoo/ids'))
zk.stop()
print(json.dumps(out), flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_creates_reads_and_watches() {
    require_kazoo();
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let script = python(dir.path(), "kazoo", KAZOO_SCRIPT, &[&coordinator.address()]);
    let log = wait_for_log(&script, "\"children\"", Duration::from_secs(60));
    let line = log.lines().find(|line| line.starts_with('{')).unwrap();
    let out: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(out["sequential"], "/kazoo/job-0000000001");
    assert_eq!(out["data"], r#"{"host":"h"}"#);
    assert_eq!(out["ephemeral_is_mine"], true);
    assert_eq!(
        out["events"],
        serde_json::json!([["CHANGED", "/kazoo/ids/1"]])
    );
    assert_eq!(out["cas"], "BadVersion");
    assert_eq!(out["again"], "NodeExists");
    assert_eq!(out["transaction"][0], "True");
    assert_eq!(
        out["child_events"],
        serde_json::json!([["CHILD", "/kazoo/ids"]])
    );
    assert_eq!(out["children"], serde_json::json!(["1", "2"]));
    // kazoo closed its session cleanly: its ephemerals went with it.
    let client = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    assert!(client.list_children("/kazoo/ids").await.unwrap().is_empty());
    close(client).await;
}

/// One random operation from a small space of paths, versions and flags.
async fn random_step(rng: &mut impl rand::Rng, sessions: &[&zk::Client; 2]) -> String {
    const PATHS: [&str; 8] = [
        "/r", "/r/a", "/r/a", "/r/b", "/r/a/x", "/r/a/y", "/r/b/x", "/r/e",
    ];
    let session_index = rng.random_range(0..2);
    let zk = sessions[session_index];
    let path = PATHS[rng.random_range(0..PATHS.len())];
    let version = [-1, -1, 0, 1, 2][rng.random_range(0..5)];
    let data = format!("d{}", rng.random_range(0..100));
    let mode = [
        zk::CreateMode::Persistent,
        zk::CreateMode::Persistent,
        zk::CreateMode::Ephemeral,
        zk::CreateMode::PersistentSequential,
        zk::CreateMode::EphemeralSequential,
    ][rng.random_range(0..5)];
    let options = mode.with_acls(zk::Acls::anyone_all());
    let who = format!("s{session_index}");
    let summary_of = |stat: &zk::Stat| summary(stat, zk);
    match rng.random_range(0..8) {
        0 | 1 => {
            let result = zk.create(path, data.as_bytes(), &options).await;
            format!(
                "{who} create {path} {mode:?}: {}",
                outcome(result, |(stat, sequence)| format!(
                    "{sequence} {}",
                    summary_of(&stat)
                ))
            )
        }
        2 => format!(
            "{who} delete {path} v{version}: {}",
            outcome(zk.delete(path, Some(version)).await, |()| String::new())
        ),
        3 => format!(
            "{who} set {path} v{version}: {}",
            outcome(
                zk.set_data(path, data.as_bytes(), Some(version)).await,
                |stat| summary_of(&stat)
            )
        ),
        4 => format!(
            "{who} get {path}: {}",
            outcome(zk.get_data(path).await, |(bytes, stat)| format!(
                "{} {}",
                String::from_utf8_lossy(&bytes),
                summary_of(&stat)
            ))
        ),
        5 => format!(
            "{who} ls {path}: {}",
            outcome(zk.get_children(path).await, |(mut children, stat)| {
                children.sort();
                format!("{} {}", children.join(","), summary_of(&stat))
            })
        ),
        _ => {
            let mut multi = zk.new_multi_writer();
            let mut described = Vec::new();
            for _ in 0..rng.random_range(1..4) {
                let path = PATHS[rng.random_range(0..PATHS.len())];
                let version = [-1, 0, 1][rng.random_range(0..3)];
                match rng.random_range(0..4) {
                    0 => {
                        multi.add_create(path, b"m", &options).unwrap();
                        described.push(format!("create {path} {mode:?}"));
                    }
                    1 => {
                        multi.add_delete(path, Some(version)).unwrap();
                        described.push(format!("delete {path} v{version}"));
                    }
                    2 => {
                        multi.add_set_data(path, b"m", Some(version)).unwrap();
                        described.push(format!("set {path} v{version}"));
                    }
                    _ => {
                        if version >= 0 {
                            multi.add_check_version(path, version).unwrap();
                            described.push(format!("check {path} v{version}"));
                        }
                    }
                }
            }
            format!(
                "{who} multi [{}]: {}",
                described.join("; "),
                multi_outcome(multi.commit().await)
            )
        }
    }
}

/// Random operations (a fixed seed, printed) give the same transcript on both servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_match_apache_zookeeper() {
    use rand::SeedableRng;
    const STEPS: usize = 400;
    let seed: u64 = std::env::var("KCHAOS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(20261125);
    let dir = tempfile::tempdir().unwrap();
    let apache = ApacheZooKeeper::start(dir.path());
    let ours = Coordinator::start(dir.path(), &["--max-session-timeout-ms", "10000"]);
    let mut transcripts = Vec::new();
    for address in [apache.address(), ours.address()] {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let first = connect(&address, Duration::from_secs(4)).await;
        let second = connect(&address, Duration::from_secs(4)).await;
        // A persistent base, so that most steps land somewhere that exists.
        first.create("/r", b"", &persistent()).await.unwrap();
        let mut transcript = Vec::with_capacity(STEPS);
        for _ in 0..STEPS {
            transcript.push(random_step(&mut rng, &[&first, &second]).await);
        }
        close(first).await;
        close(second).await;
        transcripts.push(transcript);
    }
    if let Ok(dump) = std::env::var("KCHAOS_DUMP") {
        std::fs::write(format!("{dump}.apache"), transcripts[0].join("\n")).unwrap();
        std::fs::write(format!("{dump}.ours"), transcripts[1].join("\n")).unwrap();
    }
    for (index, (want, got)) in transcripts[0].iter().zip(&transcripts[1]).enumerate() {
        assert_eq!(
            got, want,
            "seed {seed}, step {index} differs from Apache ZooKeeper"
        );
    }
    let failures = transcripts[1]
        .iter()
        .filter(|line| line.contains(": error"))
        .count();
    eprintln!("seed {seed}: {STEPS} random steps agree ({failures} were refused by both)");
}
