//! What `lose_unsynced` keeps and drops, on real mounts: file data, appends, overwrites,
//! truncates, creates, renames (the checkpoint pattern with and without the directory fsync),
//! unlinks, directories, shared mappings, and a torn last write.
#![allow(clippy::unwrap_used)]

mod support;

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, FileTypeExt};

use faultfs::{MountOptions, Tear};
use support::{TestDisk, append, read, sync_dir, write_synced, write_unsynced};

#[test]
fn synced_data_stays_and_unsynced_appends_go() {
    let disk = TestDisk::mount();
    let log = disk.path("segment.log");
    write_synced(&log, b"durable ");
    sync_dir(&disk.path(""));
    append(&log, b"lost");
    assert_eq!(
        read(&log).unwrap(),
        b"durable lost",
        "reads see every write"
    );
    let report = disk.lose();
    assert_eq!(read(&log).unwrap(), b"durable ");
    assert_eq!(report.files_rolled_back, 1);
    // Synced again after the loss: stays through the next one.
    append(&log, b"again");
    File::open(&log).unwrap().sync_data().unwrap();
    disk.lose();
    assert_eq!(read(&log).unwrap(), b"durable again");
}

#[test]
fn unsynced_overwrites_of_durable_bytes_are_undone() {
    let original: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    let disk = TestDisk::mount_with(&MountOptions::default(), |backing| {
        std::fs::write(backing.join("data"), &original).unwrap();
    });
    let path = disk.path("data");
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0xAA; 5000], 3000).unwrap();
    file.write_all_at(&[0xBB; 100], 19_950).unwrap();
    drop(file);
    assert_ne!(read(&path).unwrap(), original);
    disk.lose();
    assert_eq!(read(&path).unwrap(), original);
}

#[test]
fn fdatasync_makes_overwrites_durable() {
    let disk = TestDisk::mount_with(&MountOptions::default(), |backing| {
        std::fs::write(backing.join("data"), b"0123456789").unwrap();
    });
    let path = disk.path("data");
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(b"ab", 2).unwrap();
    file.sync_data().unwrap();
    file.write_all_at(b"XY", 6).unwrap();
    drop(file);
    disk.lose();
    assert_eq!(read(&path).unwrap(), b"01ab456789");
}

#[test]
fn unsynced_truncates_are_undone_both_ways() {
    let disk = TestDisk::mount_with(&MountOptions::default(), |backing| {
        std::fs::write(backing.join("shrunk"), vec![7u8; 10_000]).unwrap();
        std::fs::write(backing.join("grown"), b"short").unwrap();
    });
    OpenOptions::new()
        .write(true)
        .open(disk.path("shrunk"))
        .unwrap()
        .set_len(10)
        .unwrap();
    OpenOptions::new()
        .write(true)
        .open(disk.path("grown"))
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    assert_eq!(read(&disk.path("shrunk")).unwrap().len(), 10);
    disk.lose();
    assert_eq!(read(&disk.path("shrunk")).unwrap(), vec![7u8; 10_000]);
    assert_eq!(read(&disk.path("grown")).unwrap(), b"short");

    // A truncate that was synced stays.
    let file = OpenOptions::new()
        .write(true)
        .open(disk.path("shrunk"))
        .unwrap();
    file.set_len(100).unwrap();
    file.sync_all().unwrap();
    drop(file);
    disk.lose();
    assert_eq!(read(&disk.path("shrunk")).unwrap(), vec![7u8; 100]);
}

#[test]
fn a_created_file_needs_its_directory_fsynced() {
    let disk = TestDisk::mount();
    write_synced(&disk.path("no-dir-sync"), b"data synced, entry not");
    let report = disk.lose();
    assert_eq!(read(&disk.path("no-dir-sync")), None);
    assert_eq!(report.entries_removed, 1);

    write_synced(&disk.path("both"), b"data and entry synced");
    write_unsynced(&disk.path("entry-only"), b"entry synced, data not");
    sync_dir(&disk.path(""));
    disk.lose();
    assert_eq!(read(&disk.path("both")).unwrap(), b"data and entry synced");
    assert_eq!(
        read(&disk.path("entry-only")).unwrap(),
        b"",
        "the entry survives, its never-synced data does not"
    );
}

/// Writes `checkpoint.tmp`, fsyncs it and renames it over `checkpoint` (the way Kafka and
/// ZooKeeper replace checkpoint files).
fn replace_checkpoint(disk: &TestDisk, contents: &[u8]) {
    let tmp = disk.path("checkpoint.tmp");
    write_synced(&tmp, contents);
    std::fs::rename(&tmp, disk.path("checkpoint")).unwrap();
}

#[test]
fn checkpoint_replaced_by_rename_with_a_directory_fsync_survives() {
    let disk = TestDisk::mount();
    write_synced(&disk.path("checkpoint"), b"v1");
    sync_dir(&disk.path(""));
    replace_checkpoint(&disk, b"v2");
    sync_dir(&disk.path(""));
    disk.lose();
    assert_eq!(read(&disk.path("checkpoint")).unwrap(), b"v2");
    assert_eq!(read(&disk.path("checkpoint.tmp")), None);
}

#[test]
fn checkpoint_replaced_by_rename_without_a_directory_fsync_reverts() {
    let disk = TestDisk::mount();
    write_synced(&disk.path("checkpoint"), b"v1");
    sync_dir(&disk.path(""));
    replace_checkpoint(&disk, b"v2");
    assert_eq!(read(&disk.path("checkpoint")).unwrap(), b"v2");
    let report = disk.lose();
    assert_eq!(read(&disk.path("checkpoint")).unwrap(), b"v1");
    assert_eq!(read(&disk.path("checkpoint.tmp")), None);
    assert_eq!(report.entries_restored, 1, "{report:?}");
    assert_eq!(report.entries_removed, 1, "{report:?}");
}

#[test]
fn an_unsynced_unlink_comes_back_with_its_durable_data() {
    let disk = TestDisk::mount();
    write_synced(&disk.path("kept"), b"durable");
    write_synced(&disk.path("deleted"), b"durable too");
    sync_dir(&disk.path(""));
    append(&disk.path("kept"), b" and more");
    std::fs::remove_file(disk.path("kept")).unwrap();
    std::fs::remove_file(disk.path("deleted")).unwrap();
    sync_dir(&disk.path(""));
    // `kept` is unlinked again, but now without a directory fsync.
    disk.lose();
    assert_eq!(read(&disk.path("kept")), None);
    assert_eq!(read(&disk.path("deleted")), None);

    write_synced(&disk.path("kept"), b"durable");
    sync_dir(&disk.path(""));
    append(&disk.path("kept"), b" and more");
    std::fs::remove_file(disk.path("kept")).unwrap();
    assert_eq!(read(&disk.path("kept")), None);
    disk.lose();
    assert_eq!(read(&disk.path("kept")).unwrap(), b"durable");
}

#[test]
fn directories_follow_the_same_rules_up_to_the_root() {
    let disk = TestDisk::mount();
    std::fs::create_dir(disk.path("topic-0")).unwrap();
    write_synced(&disk.path("topic-0/00000000000000000000.log"), b"batch");
    sync_dir(&disk.path("topic-0"));
    // The partition directory's own entry was never made durable.
    disk.lose();
    assert!(!disk.path("topic-0").exists());

    std::fs::create_dir(disk.path("topic-0")).unwrap();
    write_synced(&disk.path("topic-0/00000000000000000000.log"), b"batch");
    sync_dir(&disk.path("topic-0"));
    sync_dir(&disk.path(""));
    std::fs::create_dir(disk.path("topic-1")).unwrap();
    disk.lose();
    assert_eq!(
        read(&disk.path("topic-0/00000000000000000000.log")).unwrap(),
        b"batch"
    );
    assert!(!disk.path("topic-1").exists());

    // An unsynced rmdir and an unsynced directory rename are undone too.
    std::fs::rename(disk.path("topic-0"), disk.path("topic-0.deleted")).unwrap();
    std::fs::create_dir(disk.path("empty")).unwrap();
    sync_dir(&disk.path(""));
    std::fs::remove_dir(disk.path("empty")).unwrap();
    std::fs::rename(disk.path("topic-0.deleted"), disk.path("moved-again")).unwrap();
    disk.lose();
    assert!(disk.path("empty").is_dir());
    assert!(!disk.path("moved-again").exists());
    assert_eq!(
        read(&disk.path("topic-0.deleted/00000000000000000000.log")).unwrap(),
        b"batch"
    );
}

#[test]
fn a_rename_across_directories_commits_from_either_side() {
    let disk = TestDisk::mount();
    for dir in ["from", "to"] {
        std::fs::create_dir(disk.path(dir)).unwrap();
    }
    write_synced(&disk.path("from/file"), b"x");
    sync_dir(&disk.path("from"));
    sync_dir(&disk.path(""));
    std::fs::rename(disk.path("from/file"), disk.path("to/file")).unwrap();
    sync_dir(&disk.path("from"));
    disk.lose();
    assert_eq!(read(&disk.path("to/file")).unwrap(), b"x");
    assert_eq!(read(&disk.path("from/file")), None);
}

#[test]
fn files_present_at_mount_time_are_durable() {
    let disk = TestDisk::mount_with(&MountOptions::default(), |backing| {
        std::fs::create_dir_all(backing.join("a/b")).unwrap();
        std::fs::write(backing.join("a/b/c"), b"before the mount").unwrap();
    });
    append(&disk.path("a/b/c"), b", after");
    std::fs::remove_dir_all(disk.path("a")).unwrap_or(());
    disk.lose();
    assert_eq!(read(&disk.path("a/b/c")).unwrap(), b"before the mount");
    assert!(
        !disk.backing(".faultfs/limbo/x").exists()
            && std::fs::read_dir(disk.backing("")).unwrap().count() == 2,
        "the backing root holds the file tree and the control directory only"
    );
    assert!(
        std::fs::read_dir(disk.path(""))
            .unwrap()
            .all(|entry| entry.unwrap().file_name() != ".faultfs"),
        "the control directory is hidden"
    );
}

#[test]
fn shared_mappings_are_durable_after_msync_only() {
    let disk = TestDisk::mount();
    let path = disk.path("index");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.set_len(8192).unwrap();
    file.sync_all().unwrap();
    sync_dir(&disk.path(""));
    let length = 8192;
    // SAFETY: a fresh shared mapping of a file of `length` bytes, unmapped below.
    let mapping = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            length,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
        )
    };
    assert_ne!(
        mapping,
        libc::MAP_FAILED,
        "{}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the mapping is `length` bytes long and writable.
    unsafe {
        std::ptr::write_bytes(mapping.cast::<u8>(), b's', 4096);
        assert_eq!(libc::msync(mapping, length, libc::MS_SYNC), 0);
        std::ptr::write_bytes(mapping.cast::<u8>().add(4096), b'u', 4096);
        libc::munmap(mapping, length);
    }
    drop(file);
    let before = read(&path).unwrap();
    assert!(
        before[4096..].iter().all(|&b| b == b'u'),
        "reads see mapped writes"
    );
    disk.lose();
    let after = read(&path).unwrap();
    assert!(
        after[..4096].iter().all(|&b| b == b's'),
        "msync'd page kept"
    );
    assert!(
        after[4096..].iter().all(|&b| b == 0),
        "un-synced page dropped"
    );
}

#[test]
fn a_torn_write_keeps_only_whole_sectors() {
    let disk = TestDisk::mount();
    let path = disk.path("segment.log");
    write_synced(&path, &[b'd'; 1000]);
    sync_dir(&disk.path(""));
    let mut file = OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::End(0)).unwrap();
    file.write_all(&[b'n'; 2000]).unwrap();
    drop(file);
    let last = disk.disk().last_unsynced_write().unwrap();
    assert_eq!((last.offset, last.length, last.sectors), (1000, 2000, 5));
    // Sectors 1..: the write's first sector is [512, 1024); keeping 2 ends at 1536.
    let report = disk
        .disk()
        .lose_unsynced(Some(Tear { keep_sectors: 2 }))
        .unwrap();
    let torn = report.torn_write.unwrap();
    assert_eq!(torn.kept_bytes, 536);
    let contents = read(&path).unwrap();
    assert_eq!(contents.len(), 1536);
    assert!(contents[..1000].iter().all(|&b| b == b'd'));
    assert!(contents[1000..].iter().all(|&b| b == b'n'));
    assert_eq!(contents.len() % faultfs::SECTOR_BYTES as usize, 0);

    // keep_sectors 0: nothing of it.
    append(&path, &[b'x'; 700]);
    File::open(&path).unwrap().sync_all().unwrap();
    append(&path, &[b'y'; 3000]);
    disk.disk()
        .lose_unsynced(Some(Tear { keep_sectors: 0 }))
        .unwrap();
    assert_eq!(read(&path).unwrap().len(), 1536 + 700);
    assert_eq!(disk.disk().last_unsynced_write(), None);
}

#[test]
fn symlinks_and_fifos_are_entries_like_any_other() {
    let disk = TestDisk::mount();
    std::os::unix::fs::symlink("target", disk.path("kept-link")).unwrap();
    nix::unistd::mkfifo(&disk.path("kept-fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    sync_dir(&disk.path(""));
    std::os::unix::fs::symlink("target", disk.path("lost-link")).unwrap();
    assert_eq!(
        std::fs::hard_link(disk.path("kept-fifo"), disk.path("hard"))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EPERM),
        "hard links are refused"
    );
    disk.lose();
    assert_eq!(
        std::fs::read_link(disk.path("kept-link")).unwrap(),
        std::path::Path::new("target")
    );
    assert!(
        std::fs::symlink_metadata(disk.path("kept-fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(std::fs::symlink_metadata(disk.path("lost-link")).is_err());
}

#[test]
fn with_any_fsync_entries_commit_like_a_journal() {
    let options = MountOptions {
        entry_durability: faultfs::EntryDurability::AnyFsync,
        ..MountOptions::default()
    };
    let disk = TestDisk::mount_with(&options, |_| {});
    std::fs::create_dir(disk.path("version-2")).unwrap();
    write_synced(&disk.path("version-2/log.1"), b"txn");
    write_unsynced(&disk.path("after-the-fsync"), b"x");
    disk.lose();
    assert_eq!(read(&disk.path("version-2/log.1")).unwrap(), b"txn");
    assert_eq!(read(&disk.path("after-the-fsync")), None);
}
