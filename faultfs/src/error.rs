//! The typed errors of mounting, fault control and stale-mount cleanup.

use std::path::PathBuf;

/// Why a fault filesystem could not be mounted, controlled or cleaned up.
#[derive(Debug, thiserror::Error)]
pub enum FaultFsError {
    /// This machine or user cannot mount FUSE filesystems: the harness exits 2 with this.
    #[error("FUSE is unavailable: {0}")]
    FuseUnavailable(#[from] FuseUnavailable),
    /// The tag would not survive in /proc/mounts as one field.
    #[error("mount tag {tag:?} is not usable: use 1 to 100 ASCII letters, digits, '.', '_' or '-'")]
    InvalidTag { tag: String },
    /// The backing directory is missing, not a directory, or overlaps the mount point.
    #[error("backing directory {path}: {reason}")]
    Backing { path: PathBuf, reason: String },
    /// The mount point is missing or not a directory.
    #[error("mount point {path}: {reason}")]
    MountPoint { path: PathBuf, reason: String },
    /// The kernel refused the mount.
    #[error("mounting {mount_point}: {source}")]
    Mount {
        mount_point: PathBuf,
        source: std::io::Error,
    },
    /// Unmounting failed (the mount may still be there).
    #[error("unmounting {mount_point}: {source}")]
    Unmount {
        mount_point: PathBuf,
        source: std::io::Error,
    },
    /// A loss could not rebuild the durable state in the backing directory.
    #[error("dropping un-durable changes under {backing}: {source}")]
    Loss {
        backing: PathBuf,
        source: std::io::Error,
    },
    /// The filesystem was already unmounted.
    #[error("{mount_point} is no longer mounted")]
    NotMounted { mount_point: PathBuf },
    /// /proc/mounts could not be read.
    #[error("reading /proc/mounts: {0}")]
    ProcMounts(std::io::Error),
}

/// What is missing for FUSE mounts, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum FuseUnavailable {
    #[error(
        "/dev/fuse does not exist (load the `fuse` kernel module, or give the container the device: --device /dev/fuse)"
    )]
    NoDevice,
    #[error(
        "/dev/fuse cannot be opened: {0} (a container needs --device /dev/fuse and the right to use it)"
    )]
    DeviceNotOpenable(std::io::Error),
    #[error(
        "mounting needs root or the setuid helper fusermount3 (Debian package `fuse3`); running as uid {uid} without it"
    )]
    NoPermission { uid: u32 },
    #[error(
        "the kernel refused the FUSE mount as not permitted: {0} (run as root, or allow FUSE mounts in this container)"
    )]
    MountRefused(std::io::Error),
}
