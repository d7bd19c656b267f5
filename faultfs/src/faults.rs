//! The fault windows a harness opens and closes: disk full, disk errors, slow fsync.

use std::sync::Mutex;
use std::time::Duration;

/// Which operations fail with EIO during a disk-error window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorOn {
    /// `read` (and `readlink`) fail.
    Reads,
    /// Everything that changes the disk fails: `write`, truncates, `fallocate`, creates,
    /// `mkdir`, `rename`, `unlink`, `rmdir`, `symlink`, `fsync` and `fsync` of directories.
    Writes,
    /// Both.
    ReadsAndWrites,
}

/// One fault window; several can be open at once (each kind at most once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// ENOSPC on writes, `fallocate` and every call that creates an entry; `statfs` shows no
    /// free space. Truncates, renames, unlinks and `fsync` still work.
    DiskFull,
    /// EIO on reads, on writes, or both.
    DiskError { on: ErrorOn },
    /// `fsync`/`fdatasync` of files and directories answer `fsync_delay` late (at least).
    SlowDisk { fsync_delay: Duration },
}

/// The open windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActiveFaults {
    pub disk_full: bool,
    pub read_errors: bool,
    pub write_errors: bool,
    pub fsync_delay: Option<Duration>,
}

impl ActiveFaults {
    /// Whether no window is open.
    pub fn is_clear(&self) -> bool {
        *self == ActiveFaults::default()
    }

    fn open(&mut self, fault: Fault) {
        match fault {
            Fault::DiskFull => self.disk_full = true,
            Fault::DiskError { on } => {
                self.read_errors |= matches!(on, ErrorOn::Reads | ErrorOn::ReadsAndWrites);
                self.write_errors |= matches!(on, ErrorOn::Writes | ErrorOn::ReadsAndWrites);
            }
            Fault::SlowDisk { fsync_delay } => self.fsync_delay = Some(fsync_delay),
        }
    }
}

/// The windows, shared by the filesystem's threads and the controlling handle.
#[derive(Debug, Default)]
pub(crate) struct FaultWindows {
    active: Mutex<ActiveFaults>,
}

impl FaultWindows {
    pub fn current(&self) -> ActiveFaults {
        *self
            .active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn open(&self, fault: Fault) {
        self.active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .open(fault);
    }

    pub fn clear(&self) {
        *self
            .active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = ActiveFaults::default();
    }
}
