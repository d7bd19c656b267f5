//! Shared code of the faultfs tests: a mounted disk in a temporary directory (unmounted on drop,
//! also when the test fails) and small file helpers that fsync the way applications do.
#![allow(clippy::unwrap_used, dead_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use faultfs::{FaultFs, MountOptions};

static NEXT_DISK: AtomicUsize = AtomicUsize::new(0);

/// A fault filesystem on `<tmp>/mnt` backed by `<tmp>/backing`.
pub struct TestDisk {
    // Declared first: dropped (unmounted) before the directory is removed.
    pub disk: Option<FaultFs>,
    pub dir: tempfile::TempDir,
}

impl TestDisk {
    pub fn mount() -> Self {
        Self::mount_with(&MountOptions::default(), |_| {})
    }

    /// Mounts after `prepare` filled the backing directory (what exists then is durable).
    pub fn mount_with(options: &MountOptions, prepare: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("backing");
        let mount_point = dir.path().join("mnt");
        std::fs::create_dir(&backing).unwrap();
        std::fs::create_dir(&mount_point).unwrap();
        prepare(&backing);
        let tag = unique_tag();
        let disk = FaultFs::mount_with(&backing, &mount_point, &tag, options)
            .unwrap_or_else(|error| panic!("mounting the test disk: {error}"));
        TestDisk {
            disk: Some(disk),
            dir,
        }
    }

    pub fn disk(&self) -> &FaultFs {
        self.disk.as_ref().unwrap()
    }

    /// A path inside the mount.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join("mnt").join(relative)
    }

    pub fn backing(&self, relative: &str) -> PathBuf {
        self.dir.path().join("backing").join(relative)
    }

    pub fn lose(&self) -> faultfs::LossReport {
        self.disk().lose_unsynced(None).unwrap()
    }

    pub fn tag(&self) -> String {
        self.disk().tag().to_string()
    }
}

pub fn unique_tag() -> String {
    format!(
        "test-{}-{}",
        std::process::id(),
        NEXT_DISK.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates (or truncates) `path`, writes `bytes` and fsyncs the file (not its directory).
pub fn write_synced(path: &Path, bytes: &[u8]) {
    let mut file = File::create(path).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

/// Creates (or truncates) `path` and writes `bytes` without any fsync.
pub fn write_unsynced(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// Appends without fsync.
pub fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// fsyncs a directory: makes its entries durable.
pub fn sync_dir(path: &Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

/// The whole contents, or None when the file does not exist.
pub fn read(path: &Path) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => panic!("reading {}: {error}", path.display()),
    }
}

/// Whether /proc/mounts lists a mount with this tag.
pub fn mounted(tag: &str) -> bool {
    faultfs::find_stale_mounts(tag)
        .unwrap()
        .iter()
        .any(|mount| mount.tag == tag)
}
