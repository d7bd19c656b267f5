//! `faultfs`: a FUSE filesystem, mounted over a node's data directory and backed by a real
//! directory, that holds every change no `fsync` made durable so that a fault can drop it (a
//! power loss), and that fills up, fails and slows down on command. It knows nothing of the
//! system under test: a Kafka broker, Apache ZooKeeper or our own nodes all run on it.
//!
//! # Use
//!
//! ```no_run
//! use faultfs::{ErrorOn, Fault, FaultFs, Tear};
//! # fn main() -> Result<(), faultfs::FaultFsError> {
//! let disk = FaultFs::mount("run/disks/broker-1".as_ref(), "run/broker-1/data".as_ref(), "run-42-broker-1")?;
//! // ... start the node on run/broker-1/data, SIGKILL it ...
//! disk.power_off(); // then SIGKILL the node, then:
//! let report = disk.lose_unsynced(Some(Tear { keep_sectors: 1 }))?;
//! disk.inject(Fault::DiskError { on: ErrorOn::Writes });
//! disk.clear_faults();
//! disk.unmount()?; // or drop it
//! # Ok(()) }
//! ```
//!
//! The harness process owns the mount (its threads answer the kernel). Mounting needs
//! /dev/fuse and root (or the setuid `fusermount3` of Debian's `fuse3`); otherwise
//! [`FaultFsError::FuseUnavailable`] says what is missing. The source of every mount is
//! `kchaos-faultfs:<tag>` (type `fuse.faultfs`), so a later run or `kchaos cleanup` finds what
//! a killed orchestrator left: [`find_stale_mounts`] / [`remove_stale_mounts`] by tag prefix.
//!
//! # Durability model
//!
//! Every operation is applied to the backing directory at once, so reads (and `ls`, `stat`,
//! `mmap`) see every write. What a loss must undo is recorded beside it, in `.faultfs/` at the
//! backing root (hidden from the mount, recreated empty at each mount: the backing directory
//! as it is at mount time is the durable state).
//!
//! - **File data and size** become durable by `fsync` or `fdatasync` of the file (any open
//!   handle of it; `msync(MS_SYNC)` and `O_SYNC`/`O_DSYNC` writes reach the filesystem as
//!   fsyncs). Until then [`FaultFs::lose_unsynced`] puts back the contents and size the file had
//!   at its last fsync: overwritten bytes return, appended bytes go, a truncated tail comes
//!   back, a file extended by `ftruncate` shrinks again, punched holes are refilled. A file
//!   created since the mount was never fsynced: it comes back empty if its entry survives.
//! - **Directory entries** become durable by `fsync` of their directory. Creating a file,
//!   directory, symlink or FIFO, `rename`, `unlink` and `rmdir` are undone by a loss unless the
//!   directory was fsynced after them: a created entry disappears (with everything under it),
//!   a renamed entry returns to its old name, an unlinked one comes back with its durable data.
//!   A rename commits atomically, as in a journaling filesystem: `fsync` of either its source
//!   or its target directory makes both halves durable, together with the replacement of the
//!   target it displaced. So write-tmp, fsync, rename, fsync-dir keeps the new file; without
//!   the last fsync the old file returns. `fsync` of a file does *not* make its entry durable.
//!   An entry is only reachable if its directory's own entry is durable too, up to the root.
//!   With [`EntryDurability::AnyFsync`] any fsync (of a file or a directory) makes every entry
//!   change made before it durable, as ext4's journal does: Apache ZooKeeper 3.8, for one,
//!   never fsyncs its data directory and loses everything under the default.
//! - **Metadata**: `chmod`, `chown` and timestamps are written through and are not undone;
//!   after a loss, mtime and ctime are those of the rollback. Hard links are not supported
//!   (`link` fails with EPERM), nor `RENAME_EXCHANGE` (EINVAL).
//! - **A torn write**: with `Some(Tear { keep_sectors })`, the last write not yet durable keeps
//!   its first `keep_sectors` 512-byte sectors (counted from the sector its first byte is in)
//!   after the rollback, if its file's entry survives; the file grows to hold them (a gap to
//!   the durable end reads as zeros). [`FaultFs::last_unsynced_write`] tells how many sectors
//!   it has. A write followed by a truncate of its file is not torn.
//! - **Faults** ([`Fault`]): a window stays open until [`FaultFs::clear_faults`]. Disk full:
//!   ENOSPC on writes, `fallocate`, and calls that create entries. Disk error: EIO on reads
//!   (the kernel's page cache is dropped when the window opens, so cached pages do not hide
//!   it) or on every call that changes the disk, `fsync` included (a failed fsync makes nothing
//!   durable). Slow disk: file and directory fsyncs take effect and answer `fsync_delay`
//!   late, at least (a device that slow has not written the data before then).
//! - **When an fsync takes effect**: when its backing fsync has finished (and, in a slow-disk
//!   window, its delay has passed), just before it answers; writes racing with it may be
//!   included (as on a real disk). A loss before that drops what it covers, and an fsync
//!   called before a loss makes nothing durable after it.
//! - **A power loss** is [`FaultFs::power_off`], killing the processes, then
//!   [`FaultFs::lose_unsynced`]: from the cut on, every call that touches the disk fails with
//!   EIO and fsyncs still under way (a slow disk's) answer EIO at once, taking no effect. The
//!   cut comes first because the kernel lets a killed process exit only once the filesystem
//!   has answered the request it is in, and an fsync answered is an fsync done.
//!
//! # Cost
//!
//! The kernel's page cache serves reads; every `write` is a round trip to the filesystem
//! (no writeback cache). A durable page overwritten before its fsync is first copied to the
//! undo file; appends cost no copy. One dispatch thread by default
//! ([`MountOptions::dispatch_threads`]); fsyncs run in a pool of two beside it, so a waiting
//! fsync (slow disk or a real one) never blocks other calls. `examples/io_bench.rs` and
//! `examples/produce_bench.rs` measure the cost.
//!
//! # Layout
//!
//! - [`mount`]: the handle ([`FaultFs`]): mount, loss, fault windows, unmount (also on drop).
//! - `filesystem`: the FUSE operations (write-through, recording what a loss must undo).
//! - `namespace`: the inode table and the durability of directory entries.
//! - `undo`: the durable size and saved pages of each file with un-durable data.
//! - `loss`: rebuilding the durable state in the backing directory.
//! - `syncer`: fsyncs off the dispatch thread, and their delayed answers.
//! - `faults`: the fault windows. `stale`: finding and removing left-behind mounts.
//! - `state`: the shared state and backing paths. `error`: typed errors.

mod error;
mod faults;
mod filesystem;
mod loss;
pub mod mount;
mod namespace;
mod stale;
mod state;
mod syncer;
mod undo;

pub use error::{FaultFsError, FuseUnavailable};
pub use faults::{ActiveFaults, ErrorOn, Fault};
pub use loss::{LossReport, SECTOR_BYTES, Tear, TornWrite, UnsyncedWrite};
pub use mount::{EntryDurability, FaultFs, MountOptions, check_fuse_available};
pub use stale::{FS_NAME_PREFIX, FaultMount, find_stale_mounts, remove_stale_mounts};
