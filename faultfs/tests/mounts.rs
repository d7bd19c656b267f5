//! Mount lifetime: unmount on drop and explicitly (also while a file is open), and the stale
//! mount of a killed owner found by tag and removed.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::BufRead;
use std::time::Duration;

use faultfs::{FaultFs, find_stale_mounts, remove_stale_mounts};
use support::{TestDisk, mounted, unique_tag};

#[test]
fn drop_and_unmount_remove_the_mount_and_keep_the_backing_files() {
    let disk = TestDisk::mount();
    let tag = disk.tag();
    assert!(mounted(&tag));
    std::fs::write(disk.path("kept"), b"in the backing dir").unwrap();
    let TestDisk { disk: fs, dir } = disk;
    drop(fs);
    assert!(!mounted(&tag));
    assert_eq!(
        std::fs::read(dir.path().join("backing/kept")).unwrap(),
        b"in the backing dir"
    );

    // Explicitly, while a file on it is still open: detached.
    let backing = dir.path().join("backing");
    let mount_point = dir.path().join("mnt");
    let tag = unique_tag();
    let disk = FaultFs::mount(&backing, &mount_point, &tag).unwrap();
    let open = std::fs::File::open(mount_point.join("kept")).unwrap();
    disk.unmount().unwrap();
    assert!(!mounted(&tag));
    drop(open);
}

#[test]
fn a_killed_owners_mount_is_found_by_tag_and_removed() {
    if let Some(tag) = std::env::var_os("FAULTFS_OWNER_CHILD") {
        // The child: mount, say so, and wait to be killed.
        let dir = std::path::PathBuf::from(std::env::var_os("FAULTFS_OWNER_DIR").unwrap());
        let disk = FaultFs::mount(
            &dir.join("backing"),
            &dir.join("mnt"),
            tag.to_str().unwrap(),
        )
        .unwrap();
        println!("MOUNTED");
        std::thread::sleep(Duration::from_secs(60));
        drop(disk);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("backing")).unwrap();
    std::fs::create_dir(dir.path().join("mnt")).unwrap();
    let run = unique_tag();
    let tag = format!("{run}-broker-1");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_owners_mount_is_found_by_tag_and_removed",
            "--nocapture",
        ])
        .env("FAULTFS_OWNER_CHILD", &tag)
        .env("FAULTFS_OWNER_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mounted_line = stdout
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("MOUNTED"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(mounted_line, "the child did not mount");

    let found = find_stale_mounts(&run).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].tag, tag);
    assert_eq!(found[0].mount_point, dir.path().join("mnt"));
    // Its filesystem process is gone: the mount answers ENOTCONN.
    let error = std::fs::read_dir(dir.path().join("mnt")).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::ENOTCONN), "{error}");
    let removed = remove_stale_mounts(&run).unwrap();
    assert_eq!(removed, found);
    assert!(find_stale_mounts(&run).unwrap().is_empty());
    assert!(std::fs::read_dir(dir.path().join("mnt")).is_ok());
}
