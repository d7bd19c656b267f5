//! Coordinators on the fault filesystem: acknowledged znode creates, SIGKILL, restart.
//!
//! Our coordinator goes through a power loss (every change no fsync made durable dropped, with
//! entries durable only by a directory fsync) and keeps every acknowledged znode; with a log
//! it cannot write (EIO) it acknowledges nothing more and stops, saying why. Apache
//! ZooKeeper 3.8 (a Java system under test) shows that the filesystem carries another
//! program's I/O (64 MiB preallocated logs through FileChannel, snapshots): a SIGKILL and
//! restart on faultfs keeps everything. It does not survive a power loss here: it never fsyncs
//! its data directory (strict entries: everything is lost), and it writes its first snapshot
//! without fsync (with entries committed by any fsync, as on ext4, `snapshot.0` comes back
//! empty and the server does not start again).
#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use faultfs::{EntryDurability, FaultFs, MountOptions};
use harness::cluster::ports::free_loopback_port;
use harness::cluster::process::NodeProcess;
use harness::wait::wait_for;

const ZNODES: usize = 50;

#[derive(Clone, Copy)]
enum Coordinator {
    Ours,
    ApacheZooKeeper,
}

fn start(which: Coordinator, dir: &Path, data_dir: &Path, port: u16, run: usize) -> NodeProcess {
    let (program, args): (PathBuf, Vec<String>) = match which {
        Coordinator::Ours => (
            PathBuf::from(env!("CARGO_BIN_EXE_kchaos")),
            vec![
                "coordinator".into(),
                "--port".into(),
                port.to_string(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--tick-time-ms".into(),
                "100".into(),
            ],
        ),
        Coordinator::ApacheZooKeeper => {
            let config = dir.join("zoo.cfg");
            std::fs::write(
                &config,
                format!(
                    "tickTime=100\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                     admin.enableServer=false\n",
                    data_dir.display()
                ),
            )
            .unwrap();
            (
                PathBuf::from("java"),
                vec![
                    "-Xmx256m".into(),
                    "-cp".into(),
                    "/usr/share/java/*:/etc/zookeeper/conf".into(),
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain".into(),
                    config.display().to_string(),
                ],
            )
        }
    };
    let process = NodeProcess::spawn(
        "coordinator",
        &program,
        &args,
        &[],
        &dir.join(format!("coordinator-{run}.log")),
    )
    .unwrap();
    wait_for(
        "the coordinator to listen",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || TcpStream::connect(("127.0.0.1", port)).ok(),
    )
    .unwrap();
    process
}

async fn connect(port: u16) -> zookeeper_client::Client {
    let address = format!("127.0.0.1:{port}");
    let connecting = zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_secs(5))
        .connect(&address);
    tokio::time::timeout(Duration::from_secs(60), connecting)
        .await
        .expect("connect timed out")
        .expect("connect")
}

/// Creates znodes, kills, loses what was never fsync'd (when `power_loss`), restarts; returns
/// the acknowledged paths missing afterwards.
async fn znodes_lost_after_crash(
    which: Coordinator,
    entries: EntryDurability,
    power_loss: bool,
) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("disk");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&backing).unwrap();
    std::fs::create_dir(&data_dir).unwrap();
    let options = MountOptions {
        entry_durability: entries,
        ..MountOptions::default()
    };
    let tag = format!("test-{}-coordinator", std::process::id());
    let disk = FaultFs::mount_with(&backing, &data_dir, &tag, &options).unwrap();
    let port = free_loopback_port().unwrap();

    let mut coordinator = start(which, dir.path(), &data_dir, port, 0);
    let client = connect(port).await;
    let acls = zookeeper_client::Acls::anyone_all();
    let create = zookeeper_client::CreateMode::Persistent.with_acls(acls);
    let mut acknowledged = Vec::new();
    for i in 0..ZNODES {
        let path = format!("/acked-{i}");
        client
            .create(&path, path.as_bytes(), &create)
            .await
            .unwrap();
        acknowledged.push(path);
    }
    drop(client);
    coordinator.kill().unwrap();
    if power_loss {
        let report = disk.lose_unsynced(None).unwrap();
        eprintln!("{report:?}");
    }

    let mut coordinator = start(which, dir.path(), &data_dir, port, 1);
    let client = connect(port).await;
    let mut lost = Vec::new();
    for path in acknowledged {
        match client.get_data(&path).await {
            Ok((data, _)) => assert_eq!(data, path.as_bytes()),
            Err(zookeeper_client::Error::NoNode) => lost.push(path),
            Err(error) => panic!("get {path}: {error}"),
        }
    }
    drop(client);
    coordinator.kill().unwrap();
    drop(disk);
    lost
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_coordinator_loses_no_acknowledged_znode_in_a_power_loss() {
    let lost =
        znodes_lost_after_crash(Coordinator::Ours, EntryDurability::DirectoryFsync, true).await;
    assert!(lost.is_empty(), "lost {lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_zookeeper_runs_on_faultfs_and_keeps_everything_through_a_sigkill() {
    let lost = znodes_lost_after_crash(
        Coordinator::ApacheZooKeeper,
        EntryDurability::DirectoryFsync,
        false,
    )
    .await;
    assert!(lost.is_empty(), "lost {lost:?}");
}

/// A write-ahead log that cannot be written (EIO on every write and fsync): the create is not
/// acknowledged, the coordinator stops saying why (acknowledging more would break durability),
/// and once the disk works again a restart still has everything acknowledged before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_coordinator_acknowledges_nothing_its_log_could_not_write_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("disk");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&backing).unwrap();
    std::fs::create_dir(&data_dir).unwrap();
    let tag = format!("test-{}-failing-coordinator", std::process::id());
    let disk = FaultFs::mount(&backing, &data_dir, &tag).unwrap();
    let port = free_loopback_port().unwrap();
    let mut coordinator = start(Coordinator::Ours, dir.path(), &data_dir, port, 0);
    let client = connect(port).await;
    let create =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    client.create("/before", b"kept", &create).await.unwrap();

    disk.inject(faultfs::Fault::DiskError {
        on: faultfs::ErrorOn::Writes,
    });
    let during = tokio::time::timeout(
        Duration::from_secs(10),
        client.create("/during", b"refused", &create),
    )
    .await;
    assert!(
        !matches!(during, Ok(Ok(_))),
        "a create acknowledged although the log could not be written"
    );
    drop(client);
    wait_for(
        "the coordinator to stop",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || (!coordinator.is_running().unwrap()).then_some(()),
    )
    .unwrap();
    let log = std::fs::read_to_string(dir.path().join("coordinator-0.log")).unwrap();
    assert!(log.contains("write-ahead log"), "{log}");

    disk.clear_faults();
    let mut coordinator = start(Coordinator::Ours, dir.path(), &data_dir, port, 1);
    let client = connect(port).await;
    let (data, _) = client.get_data("/before").await.unwrap();
    assert_eq!(data, b"kept");
    drop(client);
    coordinator.kill().unwrap();
    drop(disk);
}
