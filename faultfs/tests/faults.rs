//! The fault windows on real mounts: disk-error on reads and on writes, disk-full, slow
//! fsync; and the typed errors of bad mounts.
#![allow(clippy::unwrap_used)]

mod support;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use faultfs::{ErrorOn, Fault, FaultFs, FaultFsError};
use support::{TestDisk, read, sync_dir, write_synced};

fn raw_error(result: std::io::Result<impl std::fmt::Debug>) -> i32 {
    result.unwrap_err().raw_os_error().unwrap()
}

#[test]
fn reads_fail_with_eio_during_a_read_error_window_even_when_cached() {
    let disk = TestDisk::mount();
    let path = disk.path("data");
    write_synced(&path, &[1u8; 10_000]);
    let mut file = File::open(&path).unwrap();
    assert_eq!(read(&path).unwrap().len(), 10_000, "now in the page cache");
    disk.disk().inject(Fault::DiskError { on: ErrorOn::Reads });
    let mut buffer = Vec::new();
    assert_eq!(raw_error(file.read_to_end(&mut buffer)), libc::EIO);
    assert_eq!(raw_error(std::fs::read(&path)), libc::EIO);
    // Writes still work in a read-error window.
    std::fs::write(disk.path("other"), b"x").unwrap();
    disk.disk().clear_faults();
    assert!(disk.disk().active_faults().is_clear());
    assert_eq!(read(&path).unwrap(), vec![1u8; 10_000]);
}

#[test]
fn writes_and_fsyncs_fail_with_eio_during_a_write_error_window() {
    let disk = TestDisk::mount();
    let path = disk.path("log");
    write_synced(&path, b"durable");
    sync_dir(&disk.path(""));
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    disk.disk().inject(Fault::DiskError {
        on: ErrorOn::Writes,
    });
    assert_eq!(raw_error(file.write_all(b"refused")), libc::EIO);
    assert_eq!(raw_error(file.sync_all()), libc::EIO);
    assert_eq!(raw_error(File::create(disk.path("new"))), libc::EIO);
    assert_eq!(raw_error(std::fs::create_dir(disk.path("dir"))), libc::EIO);
    assert_eq!(
        raw_error(std::fs::rename(&path, disk.path("renamed"))),
        libc::EIO
    );
    assert_eq!(read(&path).unwrap(), b"durable", "reads still work");
    disk.disk().clear_faults();
    file.write_all(b" then more").unwrap();
    file.sync_all().unwrap();
    disk.lose();
    assert_eq!(read(&path).unwrap(), b"durable then more");
}

#[test]
fn a_full_disk_refuses_writes_and_creates_until_cleared() {
    let disk = TestDisk::mount();
    let path = disk.path("log");
    write_synced(&path, b"before");
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    disk.disk().inject(Fault::DiskFull);
    assert_eq!(raw_error(file.write_all(b"refused")), libc::ENOSPC);
    assert_eq!(raw_error(File::create(disk.path("new"))), libc::ENOSPC);
    assert_eq!(
        raw_error(std::fs::create_dir(disk.path("dir"))),
        libc::ENOSPC
    );
    let stats = nix::sys::statvfs::statvfs(&disk.path("")).unwrap();
    assert_eq!(stats.blocks_available(), 0, "statfs shows a full disk");
    // What frees or only renames space still works.
    file.set_len(3).unwrap();
    file.sync_all().unwrap();
    disk.disk().clear_faults();
    file.write_all(b"-after").unwrap();
    File::create(disk.path("new")).unwrap();
    assert_eq!(read(&path).unwrap(), b"bef-after");
}

#[test]
fn a_slow_disk_delays_fsyncs_by_at_least_the_delay() {
    let disk = TestDisk::mount();
    let path = disk.path("log");
    let mut file = File::create(&path).unwrap();
    let delay = Duration::from_millis(300);
    disk.disk().inject(Fault::SlowDisk { fsync_delay: delay });
    file.write_all(b"x").unwrap();
    let started = Instant::now();
    file.sync_data().unwrap();
    assert!(
        started.elapsed() >= delay,
        "file fsync took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    sync_dir(&disk.path(""));
    assert!(
        started.elapsed() >= delay,
        "directory fsync took {:?}",
        started.elapsed()
    );
    // Other calls are not delayed behind a waiting fsync.
    let waiting = std::thread::spawn({
        let path = path.clone();
        move || File::open(path).unwrap().sync_all().unwrap()
    });
    assert_eq!(read(&path).unwrap(), b"x");
    waiting.join().unwrap();
    disk.disk().clear_faults();
    // The delayed fsyncs made their data and entry durable.
    disk.lose();
    assert_eq!(read(&path).unwrap(), b"x");
}

/// A slow device has not written what a waiting fsync covers: a power cut during the delay
/// answers it EIO at once and the loss drops what it covered; an fsync begun before a loss
/// makes nothing written after the loss durable.
#[test]
fn a_loss_during_a_slow_fsync_drops_what_it_covers() {
    let disk = TestDisk::mount();
    let path = disk.path("wal");
    write_synced(&path, b"durable ");
    sync_dir(&disk.path(""));
    let delay = Duration::from_millis(600);
    disk.disk().inject(Fault::SlowDisk { fsync_delay: delay });
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"waiting").unwrap();
    let waiting = std::thread::spawn(move || file.sync_data());
    // The fsync is under way (its write is in the file) when the power goes: it answers EIO
    // at once, without taking effect.
    std::thread::sleep(delay / 3);
    let cut = Instant::now();
    disk.disk().power_off();
    let answer = waiting.join().unwrap();
    assert_eq!(answer.unwrap_err().raw_os_error(), Some(libc::EIO));
    assert!(
        cut.elapsed() < delay / 2,
        "answered {:?} after the cut",
        cut.elapsed()
    );
    assert_eq!(
        std::fs::read(&path).unwrap_err().raw_os_error(),
        Some(libc::EIO),
        "nothing reads from a disk without power"
    );
    disk.lose();
    assert_eq!(read(&path).unwrap(), b"durable ");
    // After the loss the power is back; an fsync begun before a loss (here one answered when
    // its delay passed, without a cut) commits nothing written after it.
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"waiting again").unwrap();
    let waiting = std::thread::spawn(move || file.sync_data());
    std::thread::sleep(delay / 3);
    disk.lose();
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"after").unwrap();
    drop(file);
    waiting.join().unwrap().unwrap();
    disk.disk().clear_faults();
    disk.lose();
    assert_eq!(read(&path).unwrap(), b"durable ");
}

#[test]
fn bad_mounts_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("backing");
    let mount_point = dir.path().join("mnt");
    std::fs::create_dir(&backing).unwrap();
    let error = FaultFs::mount(&backing, &mount_point, "t").unwrap_err();
    assert!(matches!(error, FaultFsError::MountPoint { .. }), "{error}");
    std::fs::create_dir(&mount_point).unwrap();
    let error = FaultFs::mount(&backing, &mount_point, "has space").unwrap_err();
    assert!(matches!(error, FaultFsError::InvalidTag { .. }), "{error}");
    let error = FaultFs::mount(&mount_point, &mount_point, "same").unwrap_err();
    assert!(matches!(error, FaultFsError::Backing { .. }), "{error}");
    let error = FaultFs::mount(&dir.path().join("missing"), &mount_point, "t").unwrap_err();
    assert!(matches!(error, FaultFsError::Backing { .. }), "{error}");
    assert!(error.to_string().contains("missing"), "{error}");
}

/// Without root and without fusermount3, mounting says what is missing. Runs this test binary
/// again as `nobody` with an empty PATH.
#[test]
fn without_root_or_fusermount3_the_error_says_what_is_missing() {
    if std::env::var_os("FAULTFS_UNPRIVILEGED_CHILD").is_some() {
        let error = faultfs::check_fuse_available().unwrap_err();
        println!("CHILD-ERROR: {error}");
        assert!(
            matches!(error, faultfs::FuseUnavailable::NoPermission { .. }),
            "{error}"
        );
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        return; // the unprivileged case is this process itself: covered by the child branch
    }
    // A copy of this binary that `nobody` can execute.
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("faults-test");
    std::fs::copy(std::env::current_exe().unwrap(), &binary).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    use std::os::unix::process::CommandExt;
    let output = std::process::Command::new(&binary)
        .args([
            "--exact",
            "without_root_or_fusermount3_the_error_says_what_is_missing",
            "--nocapture",
        ])
        .env("FAULTFS_UNPRIVILEGED_CHILD", "1")
        .env("PATH", dir.path())
        .current_dir(dir.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("CHILD-ERROR: FUSE is unavailable")
            || stdout.contains("mounting needs root or the setuid helper fusermount3"),
        "{stdout}"
    );
}
