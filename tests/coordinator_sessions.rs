//! Sessions, ephemerals and watches against a real `kchaos coordinator` process: an owner that is
//! killed or frozen loses its ephemeral node after its session timeout and the watchers hear of
//! it; a clean close removes it at once; two brokers race for `/controller`.
#![allow(clippy::unwrap_used)]

mod coordinator_support;

use std::time::{Duration, Instant};

use coordinator_support::*;
use zookeeper_client as zk;

/// The owner's session timeout (the coordinator allows 200 ms..2 s with a 100 ms tick).
const OWNER_TIMEOUT: Duration = Duration::from_secs(1);
/// Generous slack on top of timeout + one tick, for a loaded CI machine.
const SLACK: Duration = Duration::from_secs(3);

async fn watch_until_deleted(watcher: &zk::Client, path: &str) -> zk::OneshotWatcher {
    let (stat, watch) = watcher.check_and_watch_stat(path).await.unwrap();
    assert!(stat.is_some(), "{path} exists before the owner goes");
    watch
}

async fn owner_loses_its_node(fault: &str) {
    require_kazoo();
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let mut owner = python(
        dir.path(),
        "owner",
        KAZOO_EPHEMERAL_OWNER,
        &[&coordinator.address(), "/brokers/ids/1", "1.0"],
    );
    wait_for_log(&owner, "ready", Duration::from_secs(60));
    let watcher = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    let watch = watch_until_deleted(&watcher, "/brokers/ids/1").await;

    let faulted_at = Instant::now();
    match fault {
        "kill" => owner.kill().unwrap(),
        "pause" => owner.pause().unwrap(),
        _ => unreachable!(),
    }
    let bound = OWNER_TIMEOUT + Duration::from_millis(TICK_MS) + SLACK;
    let event = tokio::time::timeout(bound, watch.changed())
        .await
        .unwrap_or_else(|_| panic!("no watch event within {bound:?} after {fault}"));
    let waited = faulted_at.elapsed();
    eprintln!("{fault}: ephemeral gone and watch fired after {waited:?}");
    assert_eq!(event.event_type, zk::EventType::NodeDeleted);
    assert_eq!(event.path, "/brokers/ids/1");
    assert!(
        waited >= OWNER_TIMEOUT / 2,
        "the node went after {waited:?}, before the session could have timed out"
    );
    assert_eq!(watcher.check_stat("/brokers/ids/1").await.unwrap(), None);
    let log = coordinator.log();
    assert!(log.contains("expired"), "no expiry logged:\n{log}");
    if fault == "pause" {
        // Thawed, the owner learns that its session is gone.
        owner.resume().unwrap();
        wait_for_log(&owner, "state LOST", Duration::from_secs(30));
    }
    close(watcher).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_owner_loses_its_ephemeral_and_the_watch_fires() {
    owner_loses_its_node("kill").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_owner_loses_its_ephemeral_and_the_watch_fires() {
    owner_loses_its_node("pause").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_close_removes_ephemerals_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let owner = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    let watcher = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    owner.create("/e", b"x", &ephemeral()).await.unwrap();
    let (children, _, children_watch) = watcher.get_and_watch_children("/").await.unwrap();
    assert_eq!(children, vec!["e".to_string()]);
    let watch = watch_until_deleted(&watcher, "/e").await;
    close(owner).await;
    // The close is confirmed: the node is gone now, not after a timeout.
    assert_eq!(watcher.check_stat("/e").await.unwrap(), None);
    let event = tokio::time::timeout(Duration::from_secs(10), watch.changed())
        .await
        .unwrap();
    assert_eq!(event.event_type, zk::EventType::NodeDeleted);
    let event = tokio::time::timeout(Duration::from_secs(10), children_watch.changed())
        .await
        .unwrap();
    assert_eq!(event.event_type, zk::EventType::NodeChildrenChanged);
    assert!(coordinator.log().contains("closed by its client"));
    close(watcher).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_timeout_is_bounded_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    // Default bounds: 2 and 20 ticks.
    let coordinator = Coordinator::start(dir.path(), &[]);
    let greedy = connect(&coordinator.address(), Duration::from_secs(600)).await;
    assert_eq!(
        greedy.session_timeout(),
        Duration::from_millis(20 * TICK_MS)
    );
    close(greedy).await;
    // The minimum is checked byte by byte in coordinator_wire.rs: zookeeper-client would spend
    // only the tiny requested timeout on connecting.
}

const KAZOO_RACER: &str = r#"
import sys, threading, time, os
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError
address, name, go_file = sys.argv[1], sys.argv[2], sys.argv[3]
zk = KazooClient(hosts=address, timeout=1.0)
zk.start(timeout=30)
print('connected', flush=True)
while not os.path.exists(go_file):
    time.sleep(0.01)
while True:
    try:
        zk.create('/controller', name.encode(), ephemeral=True)
        print('won', flush=True)
        break
    except NodeExistsError:
        gone = threading.Event()
        if zk.exists('/controller', watch=lambda event: gone.set()) is None:
            continue
        print('lost', flush=True)
        gone.wait()
        print('watch fired', flush=True)
while True:
    time.sleep(1)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_race_has_one_winner_and_the_loser_takes_over() {
    require_kazoo();
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let go = dir.path().join("go");
    let go_arg = go.display().to_string();
    let mut racers = ["broker-1", "broker-2"].map(|name| {
        python(
            dir.path(),
            name,
            KAZOO_RACER,
            &[&coordinator.address(), name, &go_arg],
        )
    });
    for racer in &racers {
        wait_for_log(racer, "connected", Duration::from_secs(60));
    }
    std::fs::write(&go, b"go").unwrap();
    let outcome = |racer: &harness::cluster::process::NodeProcess| {
        let log = std::fs::read_to_string(racer.log_path()).unwrap_or_default();
        if log.contains("won") {
            Some(true)
        } else if log.contains("lost") {
            Some(false)
        } else {
            None
        }
    };
    harness::wait::wait_for(
        "both racers to finish the race",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || outcome(&racers[0]).zip(outcome(&racers[1])),
    )
    .unwrap();
    let won: Vec<bool> = racers
        .iter()
        .map(|racer| outcome(racer) == Some(true))
        .collect();
    assert_eq!(
        won.iter().filter(|won| **won).count(),
        1,
        "exactly one winner: {won:?}"
    );
    let (winner, loser) = if won[0] { (0, 1) } else { (1, 0) };
    let observer = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    let (data, _) = observer.get_data("/controller").await.unwrap();
    assert_eq!(data, racers[winner].name().as_bytes());

    racers[winner].kill().unwrap();
    wait_for_log(&racers[loser], "watch fired", Duration::from_secs(30));
    wait_for_log(&racers[loser], "won", Duration::from_secs(30));
    let (data, _) = observer.get_data("/controller").await.unwrap();
    assert_eq!(data, racers[loser].name().as_bytes());
    close(observer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_watch_of_every_session_fires() {
    const WATCHERS: usize = 4;
    const NODES: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let writer = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    writer.create("/n", b"", &persistent()).await.unwrap();
    for node in 0..NODES {
        let path = format!("/n/{node}");
        writer.create(&path, b"0", &persistent()).await.unwrap();
    }
    let mut watchers = Vec::new();
    let mut pending = Vec::new();
    for _ in 0..WATCHERS {
        let watcher = connect(&coordinator.address(), SESSION_TIMEOUT).await;
        for node in 0..NODES {
            let path = format!("/n/{node}");
            let (_, _, watch) = watcher.get_and_watch_data(&path).await.unwrap();
            pending.push((path, watch));
        }
        let (_, _, children) = watcher.get_and_watch_children("/n").await.unwrap();
        pending.push(("/n".to_string(), children));
        watchers.push(watcher);
    }
    // Half the nodes change one by one, the other half in one multi; then a child appears.
    for node in 0..NODES / 2 {
        let path = format!("/n/{node}");
        writer.set_data(&path, b"1", None).await.unwrap();
    }
    let mut multi = writer.new_multi_writer();
    for node in NODES / 2..NODES {
        multi
            .add_set_data(&format!("/n/{node}"), b"1", None)
            .unwrap();
    }
    multi.commit().await.unwrap();
    writer.create("/n/extra", b"", &persistent()).await.unwrap();
    for (path, watch) in pending {
        let event = tokio::time::timeout(Duration::from_secs(20), watch.changed())
            .await
            .unwrap_or_else(|_| panic!("the watch on {path} never fired"));
        let expected = if path == "/n" {
            zk::EventType::NodeChildrenChanged
        } else {
            zk::EventType::NodeDataChanged
        };
        assert_eq!(
            (event.event_type, event.path.as_str()),
            (expected, path.as_str())
        );
    }
    for watcher in watchers {
        close(watcher).await;
    }
    close(writer).await;
}

/// A TCP proxy whose connections the test can cut, and which can refuse new ones for a while.
struct Proxy {
    port: u16,
    cut: tokio::sync::watch::Sender<u64>,
    refusing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    async fn start(target_port: u16) -> Proxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let refusing = std::sync::Arc::new(AtomicBool::new(false));
        let cuts = cut.clone();
        let refuse = refusing.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if refuse.load(Ordering::SeqCst) {
                    continue;
                }
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            cut,
            refusing,
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Drops every proxied connection; new ones are refused until `allow`.
    fn cut_and_refuse(&self) {
        self.refusing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|generation| *generation += 1);
    }

    fn allow(&self) {
        self.refusing
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_a_reconnect_and_catches_up_on_missed_events() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let proxy = Proxy::start(coordinator.port).await;
    let broker = connect(&proxy.address(), SESSION_TIMEOUT).await;
    let session_id = broker.session_id();
    broker.create("/brokers", b"", &persistent()).await.unwrap();
    broker
        .create("/brokers/1", b"", &ephemeral())
        .await
        .unwrap();
    let (missing, created_watch) = broker.check_and_watch_stat("/controller").await.unwrap();
    assert!(missing.is_none());
    let mut state = broker.state_watcher();

    proxy.cut_and_refuse();
    tokio::time::timeout(Duration::from_secs(10), async {
        while state.changed().await != zk::SessionState::Disconnected {}
    })
    .await
    .expect("the client noticed the cut");
    // Changed while the broker cannot hear: it must learn of it when it is back.
    let other = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    other
        .create("/controller", b"2", &ephemeral())
        .await
        .unwrap();
    proxy.allow();

    let event = tokio::time::timeout(Duration::from_secs(10), created_watch.changed())
        .await
        .expect("the missed creation was reported after the reconnect");
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (zk::EventType::NodeCreated, "/controller")
    );
    assert_eq!(broker.session_id(), session_id);
    assert_eq!(broker.state(), zk::SessionState::SyncConnected);
    // Its ephemeral node outlived the disconnection and stays while the session lives.
    let stat = other.check_stat("/brokers/1").await.unwrap().expect("kept");
    assert_eq!(stat.ephemeral_owner, session_id.0);
    assert!(coordinator.log().contains("reconnected"));
    close(broker).await;
    close(other).await;
}
