//! Durability of `kchaos coordinator`: kill -9 in the middle of a stream of acknowledged writes
//! loses none of them; a torn log tail is cut on restart; snapshots bound the log; sessions come
//! back after a restart if their clients do, and expire if they do not.
#![allow(clippy::unwrap_used)]

mod coordinator_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use coordinator_support::*;
use zookeeper_client as zk;

fn log_files(data_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(data_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("log."))
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_loses_no_acknowledged_write() {
    const WRITERS: usize = 8;
    const ACKS_BEFORE_KILL: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let mut coordinator = Coordinator::start(dir.path(), &[]);
    let client = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    client.create("/w", b"", &persistent()).await.unwrap();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let client = client.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for sequence in 0.. {
                let path = format!("/w/{writer}-{sequence}");
                let data = format!("{writer}-{sequence}");
                match client.create(&path, data.as_bytes(), &persistent()).await {
                    Ok(_) => acknowledged.lock().unwrap().push(path),
                    Err(_) => return,
                }
            }
        }));
    }
    harness::wait::wait_for_async(
        "writes to be acknowledged",
        Duration::from_secs(120),
        Duration::from_millis(5),
        || {
            let count = acknowledged.lock().unwrap().len();
            async move { (count >= ACKS_BEFORE_KILL).then_some(()) }
        },
    )
    .await
    .unwrap();
    coordinator.process.kill().unwrap();
    for writer in writers {
        tokio::time::timeout(Duration::from_secs(60), writer)
            .await
            .expect("writers stop once the server is gone")
            .unwrap();
    }
    drop(client);
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= ACKS_BEFORE_KILL);

    coordinator.restart();
    let reader = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    let present: std::collections::HashSet<String> = reader
        .list_children("/w")
        .await
        .unwrap()
        .into_iter()
        .map(|child| format!("/w/{child}"))
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|path| !present.contains(*path))
        .collect();
    eprintln!(
        "{} acknowledged before kill -9, {} present after restart",
        acknowledged.len(),
        present.len()
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    let (data, _) = reader.get_data(&acknowledged[0]).await.unwrap();
    assert_eq!(data, acknowledged[0].trim_start_matches("/w/").as_bytes());
    close(reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_log_tail_is_cut_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut coordinator = Coordinator::start(dir.path(), &[]);
    let client = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    for index in 0..5 {
        let path = format!("/t{index}");
        client.create(&path, b"x", &persistent()).await.unwrap();
    }
    drop(client);
    coordinator.process.kill().unwrap();

    // Cut the last record (the create of /t4) in the middle.
    let log = log_files(&coordinator.data_dir).pop().expect("a log file");
    let length = std::fs::metadata(&log).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(length - 5)
        .unwrap();

    coordinator.restart();
    let client = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    let mut children = client.list_children("/").await.unwrap();
    children.sort();
    assert_eq!(children, vec!["t0", "t1", "t2", "t3"]);
    assert!(
        coordinator.log().contains("cutting a torn tail"),
        "no torn tail reported:\n{}",
        coordinator.log()
    );
    // The log goes on after the cut, and reads back whole next time.
    client.create("/after", b"y", &persistent()).await.unwrap();
    drop(client);
    coordinator.kill_and_restart();
    let client = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    let mut children = client.list_children("/").await.unwrap();
    children.sort();
    assert_eq!(children, vec!["after", "t0", "t1", "t2", "t3"]);
    close(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_bound_the_log_and_restore_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut coordinator = Coordinator::start(dir.path(), &["--snapshot-count", "10"]);
    let client = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    for index in 0..35 {
        let path = format!("/s{index}");
        client
            .create(&path, index.to_string().as_bytes(), &persistent())
            .await
            .unwrap();
    }
    client.set_data("/s3", b"changed", Some(0)).await.unwrap();
    drop(client);
    coordinator.kill_and_restart();
    let names: Vec<String> = std::fs::read_dir(&coordinator.data_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|name| name.starts_with("snapshot.")),
        "{names:?}"
    );
    assert_eq!(
        log_files(&coordinator.data_dir).len(),
        1,
        "old logs removed: {names:?}"
    );
    let client = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    assert_eq!(client.list_children("/").await.unwrap().len(), 35);
    let (data, stat) = client.get_data("/s3").await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"changed"[..], 1));
    close(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart_if_their_clients_return() {
    require_kazoo();
    let dir = tempfile::tempdir().unwrap();
    let mut coordinator = Coordinator::start(dir.path(), &[]);
    let survivor = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    survivor.create("/alive", b"", &ephemeral()).await.unwrap();
    let mut departed = python(
        dir.path(),
        "departed",
        KAZOO_EPHEMERAL_OWNER,
        &[&coordinator.address(), "/gone", "1.0"],
    );
    wait_for_log(&departed, "ready", Duration::from_secs(60));
    // A watch set before the outage must still fire after it (restored with setWatches).
    let (_, gone_watch) = survivor.check_and_watch_stat("/gone").await.unwrap();
    departed.kill().unwrap();
    coordinator.kill_and_restart();

    let observer = connect(&coordinator.address(), SESSION_TIMEOUT).await;
    harness::wait::wait_for_async(
        "the departed client's ephemeral to expire",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let observer = observer.clone();
            async move {
                observer
                    .check_stat("/gone")
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await
    .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(30), gone_watch.changed())
        .await
        .expect("the survivor's watch fired after the restart");
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (zk::EventType::NodeDeleted, "/gone")
    );
    // The survivor reconnected with its session, which outlived the outage.
    let stat = observer
        .check_stat("/alive")
        .await
        .unwrap()
        .expect("/alive kept");
    assert_eq!(stat.ephemeral_owner, survivor.session_id().0);
    survivor
        .create("/still-works", b"", &persistent())
        .await
        .unwrap();
    assert_eq!(survivor.state(), zk::SessionState::SyncConnected);
    close(survivor).await;
    close(observer).await;
}
