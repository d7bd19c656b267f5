//! The handle a harness holds: mounting, the faults, the loss, and unmounting (also on drop).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuser::{Config, INodeNo, MountOption, Notifier, SessionACL, SessionUnmounter};

use crate::error::{FaultFsError, FuseUnavailable};
use crate::faults::{ActiveFaults, Fault};
use crate::filesystem::FaultFilesystem;
use crate::loss::{self, LossReport, Tear, UnsyncedWrite};
use crate::stale::{self, FS_NAME_PREFIX, FS_SUBTYPE};
use crate::state::{BackingPaths, Shared};

/// How long an unmount waits for the filesystem thread to finish before leaving it behind
/// (it ends by itself when the kernel drops the detached mount).
const SESSION_END_TIMEOUT: Duration = Duration::from_secs(1);

/// When directory entries (creates, renames, unlinks) become durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EntryDurability {
    /// Only by `fsync` of their directory (POSIX's promise; the strictest, and the default).
    #[default]
    DirectoryFsync,
    /// By any `fsync`, of a file or a directory: every entry change made before it becomes
    /// durable, as ext4's and XFS's journals commit all metadata together. Systems that never
    /// fsync a directory survive on such filesystems.
    AnyFsync,
}

/// Settings of a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Also fsync the backing file or directory when the application fsyncs (so that fsync
    /// costs what it costs on the real disk). Off: fsync only marks data durable for the model.
    pub fsync_backing: bool,
    /// Threads reading and answering kernel requests (fuser's default is 1).
    pub dispatch_threads: usize,
    /// When directory entries become durable.
    pub entry_durability: EntryDurability,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            fsync_backing: true,
            dispatch_threads: 1,
            entry_durability: EntryDurability::default(),
        }
    }
}

/// A mounted fault filesystem. Dropping it unmounts (lazily if the mount is busy).
pub struct FaultFs {
    shared: Arc<Shared>,
    mount_point: PathBuf,
    backing_dir: PathBuf,
    tag: String,
    notifier: Notifier,
    unmounter: Option<SessionUnmounter>,
    session: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for FaultFs {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FaultFs")
            .field("mount_point", &self.mount_point)
            .field("backing_dir", &self.backing_dir)
            .field("tag", &self.tag)
            .finish()
    }
}

/// Checks that this process can mount FUSE filesystems: /dev/fuse opens, and it runs as root
/// or has the setuid `fusermount3`.
pub fn check_fuse_available() -> Result<(), FuseUnavailable> {
    let device = Path::new("/dev/fuse");
    if !device.exists() {
        return Err(FuseUnavailable::NoDevice);
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(FuseUnavailable::DeviceNotOpenable)?;
    let uid = nix::unistd::geteuid();
    if !uid.is_root() && !fusermount3_available() {
        return Err(FuseUnavailable::NoPermission { uid: uid.as_raw() });
    }
    Ok(())
}

pub(crate) fn fusermount3_available() -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("fusermount3").is_file())
    })
}

/// The characters a tag may hold: it becomes part of the mount's source in /proc/mounts.
fn validate_tag(tag: &str) -> Result<(), FaultFsError> {
    let usable = !tag.is_empty()
        && tag.len() <= 100
        && tag
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if usable {
        Ok(())
    } else {
        Err(FaultFsError::InvalidTag {
            tag: tag.to_string(),
        })
    }
}

fn canonical_directory(
    path: &Path,
    error: impl Fn(String) -> FaultFsError,
) -> Result<PathBuf, FaultFsError> {
    let canonical = path
        .canonicalize()
        .map_err(|source| error(source.to_string()))?;
    if !canonical.is_dir() {
        return Err(error("not a directory".into()));
    }
    Ok(canonical)
}

impl FaultFs {
    /// Mounts a fault filesystem at `mount_point` whose contents live in `backing_dir` (which
    /// keeps them after unmount). `tag` names the mount (`kchaos-faultfs:<tag>` in
    /// /proc/mounts): begin it with the run id so that [`crate::remove_stale_mounts`] finds it.
    pub fn mount(backing_dir: &Path, mount_point: &Path, tag: &str) -> Result<Self, FaultFsError> {
        Self::mount_with(backing_dir, mount_point, tag, &MountOptions::default())
    }

    /// [`FaultFs::mount`] with options.
    pub fn mount_with(
        backing_dir: &Path,
        mount_point: &Path,
        tag: &str,
        options: &MountOptions,
    ) -> Result<Self, FaultFsError> {
        validate_tag(tag)?;
        check_fuse_available()?;
        let backing = canonical_directory(backing_dir, |reason| FaultFsError::Backing {
            path: backing_dir.to_path_buf(),
            reason,
        })?;
        let mount = canonical_directory(mount_point, |reason| FaultFsError::MountPoint {
            path: mount_point.to_path_buf(),
            reason,
        })?;
        if backing.starts_with(&mount) || mount.starts_with(&backing) {
            return Err(FaultFsError::Backing {
                path: backing,
                reason: format!(
                    "must not contain or lie inside the mount point {}",
                    mount.display()
                ),
            });
        }
        let paths = BackingPaths::prepare(&backing).map_err(|source| FaultFsError::Backing {
            path: backing.clone(),
            reason: format!("preparing its control directory: {source}"),
        })?;
        let shared = Arc::new(Shared::new(
            paths,
            options.fsync_backing,
            options.entry_durability,
        ));
        let filesystem =
            FaultFilesystem::new(shared.clone()).map_err(|source| FaultFsError::Mount {
                mount_point: mount.clone(),
                source,
            })?;

        let root = nix::unistd::geteuid().is_root();
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName(format!("{FS_NAME_PREFIX}{tag}")),
            MountOption::Subtype(FS_SUBTYPE.into()),
            MountOption::NoDev,
            MountOption::NoSuid,
        ];
        if root {
            // Any user's processes may use it, with the kernel checking permissions.
            config.mount_options.push(MountOption::DefaultPermissions);
            config.acl = SessionACL::All;
        }
        config.n_threads = Some(options.dispatch_threads.max(1));
        let mut session = fuser::Session::new(filesystem, &mount, &config).map_err(|source| {
            if source.raw_os_error() == Some(libc::EPERM) {
                FaultFsError::FuseUnavailable(FuseUnavailable::MountRefused(source))
            } else {
                FaultFsError::Mount {
                    mount_point: mount.clone(),
                    source,
                }
            }
        })?;
        let notifier = session.notifier();
        let unmounter = session.unmount_callable();
        let thread = std::thread::Builder::new()
            .name(format!("faultfs-{tag}"))
            .spawn(move || session.run())
            .map_err(|source| FaultFsError::Mount {
                mount_point: mount.clone(),
                source,
            });
        let thread = match thread {
            Ok(thread) => thread,
            Err(error) => {
                let mut unmounter = unmounter;
                let _ = unmounter.unmount();
                return Err(error);
            }
        };
        tracing::debug!(
            "mounted faultfs {tag} at {} (backing {})",
            mount.display(),
            backing.display()
        );
        Ok(FaultFs {
            shared,
            mount_point: mount,
            backing_dir: backing,
            tag: tag.to_string(),
            notifier,
            unmounter: Some(unmounter),
            session: Some(thread),
        })
    }

    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    pub fn backing_dir(&self) -> &Path {
        &self.backing_dir
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Drops every change no fsync made durable (see the crate doc for exactly what), as a
    /// power loss would; with `tear`, keeps a sector-aligned prefix of the last write.
    ///
    /// Kill the processes using the mount first: a process that keeps running sees its files
    /// change under it. Dirty pages of shared mappings are written to the filesystem first
    /// (and then dropped like any un-durable write).
    pub fn lose_unsynced(&self, tear: Option<Tear>) -> Result<LossReport, FaultFsError> {
        self.flush_kernel_pages();
        let (report, invalidations) = {
            let mut state = self.shared.lock();
            loss::lose_unsynced(&mut state, &self.shared.paths, tear).map_err(|source| {
                FaultFsError::Loss {
                    backing: self.backing_dir.clone(),
                    source,
                }
            })?
        };
        // Outside the lock: the kernel may call back into the filesystem while it invalidates.
        for (parent, name) in &invalidations.entries {
            self.invalidate_entry(*parent, name);
        }
        for ino in &invalidations.inodes {
            self.invalidate_inode(*ino);
        }
        self.shared
            .powered_off
            .store(false, std::sync::atomic::Ordering::SeqCst);
        tracing::info!("faultfs {}: lost un-durable changes: {report:?}", self.tag);
        Ok(report)
    }

    /// Cuts the power: from now until [`FaultFs::lose_unsynced`] every call that touches the
    /// disk fails with EIO and nothing becomes durable — an fsync still waiting (a slow disk's)
    /// is answered EIO at once without taking effect. Call it before killing the processes of
    /// a power loss: a process killed while the filesystem serves its fsync cannot exit before
    /// that fsync is answered (the kernel waits for a request it has handed over), so without
    /// the cut its last fsync would always complete before the loss.
    pub fn power_off(&self) {
        self.shared
            .powered_off
            .store(true, std::sync::atomic::Ordering::SeqCst);
        tracing::info!("faultfs {}: power off", self.tag);
    }

    /// The last write no fsync has made durable yet, if any.
    pub fn last_unsynced_write(&self) -> Option<UnsyncedWrite> {
        UnsyncedWrite::of(&self.shared.lock(), &self.shared.paths)
    }

    /// Opens a fault window (it stays open until [`FaultFs::clear_faults`]).
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.open(fault);
        if matches!(fault, Fault::DiskError { .. }) && self.shared.faults.current().read_errors {
            // Reads served from the kernel's page cache would never reach the filesystem.
            self.flush_kernel_pages();
            let inos = self.shared.lock().nodes.inos();
            for ino in inos {
                self.invalidate_inode(ino);
            }
        }
        tracing::info!("faultfs {}: fault window opened: {fault:?}", self.tag);
    }

    /// Closes every fault window.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
        tracing::info!("faultfs {}: fault windows closed", self.tag);
    }

    /// The open fault windows.
    pub fn active_faults(&self) -> ActiveFaults {
        self.shared.faults.current()
    }

    /// Unmounts now (lazily, if files are still open).
    pub fn unmount(mut self) -> Result<(), FaultFsError> {
        self.unmount_now()
    }

    fn unmount_now(&mut self) -> Result<(), FaultFsError> {
        let Some(mut unmounter) = self.unmounter.take() else {
            return Ok(());
        };
        if let Err(error) = unmounter.unmount() {
            tracing::debug!(
                "faultfs {}: unmount of {} failed ({error}), detaching it",
                self.tag,
                self.mount_point.display()
            );
            stale::detach(&self.mount_point).map_err(|source| FaultFsError::Unmount {
                mount_point: self.mount_point.clone(),
                source,
            })?;
        }
        if let Some(session) = self.session.take() {
            let deadline = Instant::now() + SESSION_END_TIMEOUT;
            while !session.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if session.is_finished() {
                match session.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::warn!("faultfs {}: session ended with {error}", self.tag)
                    }
                    Err(_) => tracing::warn!("faultfs {}: session thread panicked", self.tag),
                }
            } else {
                tracing::warn!(
                    "faultfs {}: {} detached but still in use; its thread ends when it is released",
                    self.tag,
                    self.mount_point.display()
                );
            }
        }
        tracing::debug!(
            "unmounted faultfs {} from {}",
            self.tag,
            self.mount_point.display()
        );
        Ok(())
    }

    /// Makes the kernel write dirty pages of shared mappings to the filesystem (with the power
    /// off they fail, and the kernel drops them: they were never durable either way).
    fn flush_kernel_pages(&self) {
        let powered_off = self.shared.is_powered_off();
        match std::fs::File::open(&self.mount_point) {
            Ok(root) => {
                if let Err(error) = nix::unistd::syncfs(&root)
                    && !powered_off
                {
                    tracing::warn!("faultfs {}: syncfs: {error}", self.tag);
                }
            }
            Err(error) => tracing::warn!("faultfs {}: opening the mount root: {error}", self.tag),
        }
    }

    fn invalidate_entry(&self, parent: u64, name: &OsStr) {
        if let Err(error) = self.notifier.inval_entry(INodeNo(parent), name) {
            tracing::debug!(
                "faultfs {}: invalidating entry {:?}: {error}",
                self.tag,
                String::from_utf8_lossy(name.as_bytes())
            );
        }
    }

    fn invalidate_inode(&self, ino: u64) {
        if let Err(error) = self.notifier.inval_inode(INodeNo(ino), 0, 0) {
            tracing::debug!("faultfs {}: invalidating inode {ino}: {error}", self.tag);
        }
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        if let Err(error) = self.unmount_now() {
            tracing::warn!("faultfs {}: {error}", self.tag);
        }
    }
}
