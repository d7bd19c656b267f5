//! The harness's fault filesystems around a run: without FUSE rights a disk-fault workload
//! exits 2 saying what is missing; a killed orchestrator leaves its mounts behind (its nodes
//! die with it), and `remove_stale_disks` — what every run calls first, and `kchaos cleanup` —
//! removes them while leaving the mounts of live runs alone.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::cluster::process::NodeProcess;
use harness::nemesis::disk::{TAG_PREFIX, remove_stale_disks};
use harness::wait::wait_for;

/// The mount points of fault filesystems whose tag starts with `prefix`.
fn mounts_tagged(prefix: &str) -> Vec<PathBuf> {
    faultfs::find_stale_mounts(prefix)
        .unwrap()
        .into_iter()
        .map(|mount| mount.mount_point)
        .collect()
}

fn workload_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("workloads")
        .join(format!("{name}.toml"))
}

#[test]
fn without_root_or_fusermount3_a_disk_workload_exits_2_saying_why() {
    if !nix::unistd::geteuid().is_root() {
        return; // the case is made by dropping root below
    }
    // A copy of the binary and the workload that `nobody` can read, and a store it can write.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let binary = dir.path().join("kchaos");
    std::fs::copy(env!("CARGO_BIN_EXE_kchaos"), &binary).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let workload = dir.path().join("power-loss-all-brokers.toml");
    std::fs::copy(workload_file("power-loss-all-brokers"), &workload).unwrap();
    std::fs::set_permissions(&workload, std::fs::Permissions::from_mode(0o644)).unwrap();
    use std::os::unix::process::CommandExt;
    let output = Command::new(&binary)
        .args(["workload", workload.to_str().unwrap(), "--no-progress"])
        .args(["--store", dir.path().join("store").to_str().unwrap()])
        .env("PATH", dir.path())
        .current_dir(dir.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("disk faults") && stderr.contains("fusermount3"),
        "the error should say that disk faults need root or fusermount3: {stderr}"
    );
}

#[test]
fn a_killed_orchestrators_mounts_are_removed_and_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let orchestrator = NodeProcess::spawn(
        "orchestrator",
        Path::new(env!("CARGO_BIN_EXE_kchaos")),
        &[
            "workload".into(),
            workload_file("disk-full-leader").display().to_string(),
            "--no-progress".into(),
            "--store".into(),
            store.display().to_string(),
        ],
        &[],
        &dir.path().join("orchestrator.log"),
    )
    .unwrap();
    let prefix = format!("{TAG_PREFIX}{}-", orchestrator.pid());
    // Every node's data directory is mounted before the nodes start.
    wait_for(
        "the run's four fault filesystems",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || (mounts_tagged(&prefix).len() == 4).then_some(()),
    )
    .unwrap();
    // Another run of ours, alive: a mount of this test process's own.
    let live_backing = dir.path().join("live-backing");
    let live_mount = dir.path().join("live-mount");
    std::fs::create_dir(&live_backing).unwrap();
    std::fs::create_dir(&live_mount).unwrap();
    let live_tag = format!("{TAG_PREFIX}{}-0-broker-9", std::process::id());
    let live = faultfs::FaultFs::mount(&live_backing, &live_mount, &live_tag).unwrap();

    let mut orchestrator = orchestrator;
    orchestrator.kill().unwrap();
    let left = mounts_tagged(&prefix);
    assert_eq!(left.len(), 4, "the killed run's mounts stay until removed");
    let removed = remove_stale_disks().unwrap();
    let removed_points: Vec<&PathBuf> = removed.iter().map(|mount| &mount.mount_point).collect();
    for mount_point in &left {
        assert!(removed_points.contains(&mount_point), "{removed:?}");
    }
    assert!(mounts_tagged(&prefix).is_empty());
    assert_eq!(
        mounts_tagged(&live_tag),
        vec![live_mount.canonicalize().unwrap()],
        "a live run's mount was removed"
    );
    drop(live);
    // The nodes died with the orchestrator.
    let run_dir = std::fs::canonicalize(store.join("latest")).unwrap();
    for (name, pid) in harness::cluster::read_pid_log(&run_dir).unwrap() {
        wait_for(
            &format!("{name} (pid {pid}) to die"),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                (stat.is_empty() || state.starts_with('Z')).then_some(())
            },
        )
        .unwrap();
    }
}
