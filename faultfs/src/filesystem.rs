//! The FUSE operations: each one is applied to the backing directory at once (so reads see
//! every write) after recording what a loss must undo, and each one checks the open fault
//! windows first.

use std::ffi::{CString, OsStr};
use std::fs::OpenOptions;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{
    DirBuilderExt, DirEntryExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::namespace::{Ino, Kind, Link, Place, ROOT};
use crate::state::{
    CONTROL_DIR, DirectoryEntry, Handle, LastWrite, Shared, State, not_found, open_backing,
};
use crate::syncer::{SyncTarget, Syncer};

/// How long the kernel may cache entries and attributes (a loss invalidates them explicitly).
const CACHE_TTL: Duration = Duration::from_secs(1);

/// Inode numbers shown in listings for entries the table does not know yet (only `ls -i` sees
/// them; a lookup gives the real one).
const UNKNOWN_INO_BIT: u64 = 1 << 63;

/// The fuser filesystem: the shared state plus the pool that runs fsyncs.
pub(crate) struct FaultFilesystem {
    shared: Arc<Shared>,
    syncer: Syncer,
    running_as_root: bool,
}

impl FaultFilesystem {
    pub fn new(shared: Arc<Shared>) -> io::Result<Self> {
        Ok(FaultFilesystem {
            syncer: Syncer::start(shared.clone())?,
            shared,
            running_as_root: nix::unistd::geteuid().is_root(),
        })
    }

    fn paths(&self) -> &crate::state::BackingPaths {
        &self.shared.paths
    }

    /// The errno that an open window imposes on a call that writes (and creates, if `creates`).
    fn write_fault(&self, allocates: bool) -> Option<Errno> {
        let faults = self.shared.faults.current();
        if faults.write_errors || self.shared.is_powered_off() {
            Some(Errno::EIO)
        } else if allocates && faults.disk_full {
            Some(Errno::ENOSPC)
        } else {
            None
        }
    }

    fn read_fault(&self) -> Option<Errno> {
        (self.shared.faults.current().read_errors || self.shared.is_powered_off())
            .then_some(Errno::EIO)
    }

    /// The attributes of a node (from an open handle when given).
    fn attributes(&self, state: &State, ino: Ino, fh: Option<u64>) -> io::Result<FileAttr> {
        let metadata = match fh.and_then(|fh| state.file(fh)) {
            Some(file) => file.metadata()?,
            None => std::fs::symlink_metadata(state.path_of(self.paths(), ino)?)?,
        };
        let unlinked = state
            .nodes
            .get(ino)
            .is_some_and(|node| matches!(node.place, Place::Limbo | Place::Gone));
        Ok(file_attr(ino, &metadata, unlinked))
    }

    /// The node named `name` in `parent`: known, or adopted from the backing directory.
    fn resolve(&self, state: &mut State, parent: Ino, name: &OsStr) -> io::Result<Ino> {
        if is_control_entry(parent, name) {
            return Err(not_found());
        }
        if let Some(ino) = state.nodes.child(parent, name) {
            return Ok(ino);
        }
        let parent_node = state.nodes.get(parent).ok_or_else(not_found)?;
        if parent_node.kind != Kind::Directory {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        let path = state.path_of(self.paths(), parent)?.join(name);
        let metadata = std::fs::symlink_metadata(&path)?;
        Ok(state.nodes.adopt(parent, name, kind_of(&metadata)))
    }

    /// Whether `name` exists in `parent` (known or in the backing directory).
    fn exists(&self, state: &mut State, parent: Ino, name: &OsStr) -> io::Result<Option<Ino>> {
        match self.resolve(state, parent, name) {
            Ok(ino) => Ok(Some(ino)),
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Replies with the entry of a node the kernel now holds one more lookup of.
    fn entry(&self, state: &mut State, ino: Ino) -> io::Result<FileAttr> {
        let attributes = self.attributes(state, ino, None)?;
        if let Some(node) = state.nodes.get_mut(ino) {
            node.lookups += 1;
        }
        Ok(attributes)
    }

    /// Gives a new object to the calling user when the filesystem runs as root.
    fn chown_to_caller(&self, path: &Path, request: &Request) {
        if self.running_as_root && (request.uid() != 0 || request.gid() != 0) {
            let _ = std::os::unix::fs::lchown(path, Some(request.uid()), Some(request.gid()));
        }
    }

    /// Records a new entry and answers its lookup.
    fn created(
        &self,
        state: &mut State,
        parent: Ino,
        name: &OsStr,
        kind: Kind,
    ) -> io::Result<(Ino, FileAttr)> {
        let ino = state.nodes.create(parent, name, kind, None);
        if kind == Kind::File
            && let Some(node) = state.nodes.get_mut(ino)
        {
            node.data = Some(crate::undo::DataUndo::new(
                0,
                self.paths().undo.join(ino.to_string()),
            ));
        }
        Ok((ino, self.entry(state, ino)?))
    }

    /// mknod, mkdir and symlink: checks the windows, makes the object with `make` (which
    /// returns its kind), gives it to the caller and answers its entry.
    fn create_entry(
        &self,
        request: &Request,
        parent: Ino,
        name: &OsStr,
        reply: ReplyEntry,
        make: impl FnOnce(&Path) -> io::Result<Kind>,
    ) {
        if let Some(fault) = self.write_fault(true) {
            return reply.error(fault);
        }
        if is_control_entry(parent, name) {
            return reply.error(Errno::EPERM);
        }
        let mut state = self.shared.lock();
        let result = (|| {
            let path = state.path_of(self.paths(), parent)?.join(name);
            let kind = make(&path)?;
            self.chown_to_caller(&path, request);
            self.created(&mut state, parent, name, kind)
        })();
        match result {
            Ok((_, attributes)) => reply.entry(&CACHE_TTL, &attributes, Generation(0)),
            Err(error) => reply.error(errno(error)),
        }
    }

    /// Removes `ino` from its entry: parked in limbo when a durable entry still names it,
    /// deleted otherwise.
    fn detach(&self, state: &mut State, ino: Ino, path: &Path, directory: bool) -> io::Result<()> {
        let durable = state
            .nodes
            .get(ino)
            .is_some_and(|node| node.durable.is_some());
        if durable {
            std::fs::rename(path, self.paths().limbo.join(ino.to_string()))?;
            state.nodes.set_place(ino, Place::Limbo);
        } else {
            if directory {
                std::fs::remove_dir(path)?;
            } else {
                std::fs::remove_file(path)?;
            }
            state.nodes.set_place(ino, Place::Gone);
        }
        state.nodes.forget_if_unused(ino);
        Ok(())
    }

    fn truncate(&self, state: &mut State, ino: Ino, fh: Option<u64>, size: u64) -> io::Result<()> {
        let file = match fh.and_then(|fh| state.file(fh)) {
            Some(file) => file,
            None => Arc::new(open_backing(
                &state.path_of(self.paths(), ino)?,
                libc::O_WRONLY,
            )?),
        };
        let current_size = file.metadata()?.size();
        if size < current_size {
            state
                .dirty_data(self.paths(), ino, &file)?
                .preserve(&file, size, current_size)?;
        } else {
            state.dirty_data(self.paths(), ino, &file)?;
        }
        file.set_len(size)?;
        if state.last_write.is_some_and(|write| write.ino == ino) {
            state.last_write = None;
        }
        Ok(())
    }

    fn rename_entry(
        &self,
        state: &mut State,
        from: Link,
        to: Link,
        flags: RenameFlags,
    ) -> io::Result<()> {
        if flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT)
        {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        if is_control_entry(to.parent, &to.name) {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        let source = self.resolve(state, from.parent, &from.name)?;
        let source_path = state.path_of(self.paths(), source)?;
        let target_path = state.path_of(self.paths(), to.parent)?.join(&to.name);
        let target = self.exists(state, to.parent, &to.name)?;
        if target == Some(source) {
            return Ok(());
        }
        if let Some(target) = target {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            check_replaceable(state, source, target, &target_path)?;
            let target_durable = state
                .nodes
                .get(target)
                .is_some_and(|node| node.durable.is_some());
            if target_durable {
                let parked = self.paths().limbo.join(target.to_string());
                std::fs::rename(&target_path, &parked)?;
                if let Err(error) = std::fs::rename(&source_path, &target_path) {
                    std::fs::rename(&parked, &target_path)?;
                    return Err(error);
                }
                state.nodes.set_place(target, Place::Limbo);
            } else {
                std::fs::rename(&source_path, &target_path)?;
                state.nodes.set_place(target, Place::Gone);
            }
            state.nodes.set_place(source, Place::Linked(to));
            state.nodes.forget_if_unused(target);
        } else {
            std::fs::rename(&source_path, &target_path)?;
            state.nodes.set_place(source, Place::Linked(to));
        }
        Ok(())
    }

    fn list_directory(&self, state: &mut State, ino: Ino) -> io::Result<Vec<DirectoryEntry>> {
        let path = state.path_of(self.paths(), ino)?;
        let parent = match state.nodes.get(ino).map(|node| &node.place) {
            Some(Place::Linked(link)) => link.parent,
            _ => ino,
        };
        let mut entries = vec![
            DirectoryEntry {
                name: ".".into(),
                ino,
                kind: FileType::Directory,
            },
            DirectoryEntry {
                name: "..".into(),
                ino: parent,
                kind: FileType::Directory,
            },
        ];
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            let name = entry.file_name();
            if is_control_entry(ino, &name) {
                continue;
            }
            let file_type = entry.file_type()?;
            let listed_ino = match state.nodes.child(ino, &name) {
                Some(known) => known,
                None => UNKNOWN_INO_BIT | entry.ino(),
            };
            entries.push(DirectoryEntry {
                name,
                ino: listed_ino,
                kind: FileType::from_std(file_type).unwrap_or(FileType::RegularFile),
            });
        }
        Ok(entries)
    }
}

/// Whether a rename may replace `target` with `source` (POSIX's type rules).
fn check_replaceable(
    state: &State,
    source: Ino,
    target: Ino,
    target_path: &Path,
) -> io::Result<()> {
    let kind = |ino| state.nodes.get(ino).map(|node| node.kind);
    match (kind(source), kind(target)) {
        (Some(Kind::Directory), Some(Kind::Directory)) => {
            if std::fs::read_dir(target_path)?.next().is_some() {
                return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY));
            }
            Ok(())
        }
        (Some(Kind::Directory), _) => Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
        (_, Some(Kind::Directory)) => Err(io::Error::from_raw_os_error(libc::EISDIR)),
        _ => Ok(()),
    }
}

/// The control directory is not part of the filesystem.
fn is_control_entry(parent: Ino, name: &OsStr) -> bool {
    parent == ROOT && name == CONTROL_DIR
}

fn kind_of(metadata: &std::fs::Metadata) -> Kind {
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        Kind::Directory
    } else if file_type.is_file() {
        Kind::File
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    }
}

fn system_time(seconds: i64, nanoseconds: i64) -> SystemTime {
    let nanoseconds = nanoseconds.clamp(0, 999_999_999) as u32;
    if seconds >= 0 {
        UNIX_EPOCH + Duration::new(seconds as u64, nanoseconds)
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()) + Duration::new(0, nanoseconds)
    }
}

fn file_attr(ino: Ino, metadata: &std::fs::Metadata, unlinked: bool) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: metadata.size(),
        blocks: metadata.blocks(),
        atime: system_time(metadata.atime(), metadata.atime_nsec()),
        mtime: system_time(metadata.mtime(), metadata.mtime_nsec()),
        ctime: system_time(metadata.ctime(), metadata.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: FileType::from_std(metadata.file_type()).unwrap_or(FileType::RegularFile),
        perm: (metadata.mode() & 0o7777) as u16,
        nlink: if unlinked { 0 } else { metadata.nlink() as u32 },
        uid: metadata.uid(),
        gid: metadata.gid(),
        rdev: metadata.rdev() as u32,
        blksize: metadata.blksize() as u32,
        flags: 0,
    }
}

fn errno(error: io::Error) -> Errno {
    Errno::from(error)
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn set_times(path: &Path, atime: Option<TimeOrNow>, mtime: Option<TimeOrNow>) -> io::Result<()> {
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    let spec = |time: Option<TimeOrNow>| match time {
        None => TimeSpec::UTIME_OMIT,
        Some(TimeOrNow::Now) => TimeSpec::UTIME_NOW,
        Some(TimeOrNow::SpecificTime(time)) => {
            let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
            TimeSpec::from(since)
        }
    };
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &spec(atime),
        &spec(mtime),
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

impl Filesystem for FaultFilesystem {
    fn lookup(&self, _request: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut state = self.shared.lock();
        let result = self
            .resolve(&mut state, parent.0, name)
            .and_then(|ino| self.entry(&mut state, ino));
        match result {
            Ok(attributes) => reply.entry(&CACHE_TTL, &attributes, Generation(0)),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn forget(&self, _request: &Request, ino: INodeNo, lookups: u64) {
        let mut state = self.shared.lock();
        if let Some(node) = state.nodes.get_mut(ino.0) {
            node.lookups = node.lookups.saturating_sub(lookups);
        }
        state.nodes.forget_if_unused(ino.0);
    }

    fn getattr(&self, _request: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let state = self.shared.lock();
        match self.attributes(&state, ino.0, fh.map(|fh| fh.0)) {
            Ok(attributes) => reply.attr(&CACHE_TTL, &attributes),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn setattr(
        &self,
        _request: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if size.is_some()
            && let Some(fault) = self.write_fault(false)
        {
            return reply.error(fault);
        }
        let mut state = self.shared.lock();
        let fh = fh.map(|fh| fh.0);
        let result = (|| {
            let path = state.path_of(self.paths(), ino.0)?;
            if let Some(size) = size {
                self.truncate(&mut state, ino.0, fh, size)?;
            }
            if let Some(mode) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&path, uid, gid)?;
            }
            if atime.is_some() || mtime.is_some() {
                set_times(&path, atime, mtime)?;
            }
            self.attributes(&state, ino.0, fh)
        })();
        match result {
            Ok(attributes) => reply.attr(&CACHE_TTL, &attributes),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn readlink(&self, _request: &Request, ino: INodeNo, reply: ReplyData) {
        if let Some(fault) = self.read_fault() {
            return reply.error(fault);
        }
        let state = self.shared.lock();
        match state
            .path_of(self.paths(), ino.0)
            .and_then(std::fs::read_link)
        {
            Ok(target) => reply.data(target.as_os_str().as_bytes()),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn mknod(
        &self,
        request: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.create_entry(request, parent.0, name, reply, |path| {
            let kind = match mode & libc::S_IFMT {
                libc::S_IFREG => Kind::File,
                libc::S_IFIFO | libc::S_IFSOCK => Kind::Other,
                _ => return Err(io::Error::from_raw_os_error(libc::EPERM)),
            };
            let c_path = c_path(path)?;
            // SAFETY: c_path is a valid NUL-terminated path; mknod only reads it.
            let status =
                unsafe { libc::mknod(c_path.as_ptr(), mode & !umask, libc::dev_t::from(rdev)) };
            if status != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(kind)
        });
    }

    fn mkdir(
        &self,
        request: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.create_entry(request, parent.0, name, reply, |path| {
            std::fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(path)?;
            Ok(Kind::Directory)
        });
    }

    fn unlink(&self, _request: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if let Some(fault) = self.write_fault(false) {
            return reply.error(fault);
        }
        let mut state = self.shared.lock();
        let result = (|| {
            let ino = self.resolve(&mut state, parent.0, name)?;
            if state.nodes.get(ino).map(|node| node.kind) == Some(Kind::Directory) {
                return Err(io::Error::from_raw_os_error(libc::EISDIR));
            }
            let path = state.path_of(self.paths(), ino)?;
            self.detach(&mut state, ino, &path, false)
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn rmdir(&self, _request: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if let Some(fault) = self.write_fault(false) {
            return reply.error(fault);
        }
        let mut state = self.shared.lock();
        let result = (|| {
            let ino = self.resolve(&mut state, parent.0, name)?;
            if state.nodes.get(ino).map(|node| node.kind) != Some(Kind::Directory) {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            let path = state.path_of(self.paths(), ino)?;
            if std::fs::read_dir(&path)?.next().is_some() {
                return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY));
            }
            self.detach(&mut state, ino, &path, true)
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn symlink(
        &self,
        request: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.create_entry(request, parent.0, link_name, reply, |path| {
            std::os::unix::fs::symlink(target, path)?;
            Ok(Kind::Symlink)
        });
    }

    fn rename(
        &self,
        _request: &Request,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if let Some(fault) = self.write_fault(false) {
            return reply.error(fault);
        }
        let mut state = self.shared.lock();
        let from = Link::new(parent.0, name);
        let to = Link::new(new_parent.0, new_name);
        match self.rename_entry(&mut state, from, to, flags) {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn link(
        &self,
        _request: &Request,
        _ino: INodeNo,
        _new_parent: INodeNo,
        _new_name: &OsStr,
        reply: ReplyEntry,
    ) {
        // Hard links are not modelled (an inode has one entry): refused, as some filesystems do.
        reply.error(Errno::EPERM);
    }

    fn open(&self, _request: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut state = self.shared.lock();
        let result = (|| {
            let node = state.nodes.get(ino.0).ok_or_else(not_found)?;
            if node.kind == Kind::Directory {
                return Err(io::Error::from_raw_os_error(libc::EISDIR));
            }
            let path = state.path_of(self.paths(), ino.0)?;
            let file = open_backing(&path, flags.0 & libc::O_ACCMODE)?;
            Ok(state.add_handle(Handle::File {
                ino: ino.0,
                file: Arc::new(file),
            }))
        })();
        match result {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn read(
        &self,
        _request: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if let Some(fault) = self.read_fault() {
            return reply.error(fault);
        }
        let Some(file) = self.shared.lock().file(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut buffer = vec![0u8; size as usize];
        match crate::undo::read_up_to(&file, &mut buffer, offset) {
            Ok(done) => reply.data(&buffer[..done]),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn write(
        &self,
        _request: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if let Some(fault) = self.write_fault(true) {
            return reply.error(fault);
        }
        let mut state = self.shared.lock();
        let result = (|| {
            let file = state
                .file(fh.0)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
            let end = offset + data.len() as u64;
            state
                .dirty_data(self.paths(), ino.0, &file)?
                .preserve(&file, offset, end)?;
            file.write_all_at(data, offset)?;
            state.last_write = Some(LastWrite {
                ino: ino.0,
                offset,
                length: data.len() as u64,
            });
            Ok(())
        })();
        match result {
            Ok(()) => reply.written(data.len() as u32),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn flush(
        &self,
        _request: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _request: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.lock().remove_handle(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _request: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        if let Some(fault) = self.write_fault(false) {
            return reply.error(fault);
        }
        let Some(file) = self.shared.lock().file(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        self.syncer
            .submit(ino.0, SyncTarget::File { file, datasync }, reply);
    }

    fn opendir(&self, _request: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut state = self.shared.lock();
        let result = self.list_directory(&mut state, ino.0).map(|entries| {
            state.add_handle(Handle::Directory {
                ino: ino.0,
                entries,
            })
        });
        match result {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn readdir(
        &self,
        _request: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let state = self.shared.lock();
        let Some(Handle::Directory { entries, .. }) = state.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (index, entry) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(entry.ino),
                index as u64 + 1,
                entry.kind,
                &entry.name,
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _request: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.shared.lock().remove_handle(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _request: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        if let Some(fault) = self.write_fault(false) {
            return reply.error(fault);
        }
        // The state's lock is released before the submit, which takes it again.
        let path = self.shared.lock().path_of(self.paths(), ino.0);
        match path {
            Ok(path) => self
                .syncer
                .submit(ino.0, SyncTarget::Directory { path }, reply),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn statfs(&self, _request: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match nix::sys::statvfs::statvfs(&self.paths().root) {
            Ok(stats) => {
                let full = self.shared.faults.current().disk_full;
                let (free, available) = if full {
                    (0, 0)
                } else {
                    (stats.blocks_free(), stats.blocks_available())
                };
                reply.statfs(
                    stats.blocks(),
                    free,
                    available,
                    stats.files(),
                    stats.files_free(),
                    stats.block_size() as u32,
                    stats.name_max() as u32,
                    stats.fragment_size() as u32,
                );
            }
            Err(error) => reply.error(Errno::from_i32(error as i32)),
        }
    }

    fn access(
        &self,
        _request: &Request,
        _ino: INodeNo,
        _mask: fuser::AccessFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn create(
        &self,
        request: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        if let Some(fault) = self.write_fault(true) {
            return reply.error(fault);
        }
        if is_control_entry(parent.0, name) {
            return reply.error(Errno::EPERM);
        }
        let mut state = self.shared.lock();
        let result = (|| {
            if let Some(existing) = self.exists(&mut state, parent.0, name)? {
                if flags & libc::O_EXCL != 0 {
                    return Err(io::Error::from_raw_os_error(libc::EEXIST));
                }
                let path = state.path_of(self.paths(), existing)?;
                let file = Arc::new(open_backing(&path, flags & libc::O_ACCMODE)?);
                if flags & libc::O_TRUNC != 0 {
                    self.truncate(&mut state, existing, None, 0)?;
                }
                let attributes = self.entry(&mut state, existing)?;
                let fh = state.add_handle(Handle::File {
                    ino: existing,
                    file,
                });
                return Ok((attributes, fh));
            }
            let path = state.path_of(self.paths(), parent.0)?.join(name);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(mode & !umask & 0o7777)
                .open(&path)?;
            self.chown_to_caller(&path, request);
            let (ino, attributes) = self.created(&mut state, parent.0, name, Kind::File)?;
            let fh = state.add_handle(Handle::File {
                ino,
                file: Arc::new(file),
            });
            Ok((attributes, fh))
        })();
        match result {
            Ok((attributes, fh)) => reply.created(
                &CACHE_TTL,
                &attributes,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn fallocate(
        &self,
        _request: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let frees = mode & libc::FALLOC_FL_PUNCH_HOLE != 0;
        if let Some(fault) = self.write_fault(!frees) {
            return reply.error(fault);
        }
        let mut state = self.shared.lock();
        let result = (|| {
            let file = state
                .file(fh.0)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
            let shifts =
                mode & (libc::FALLOC_FL_COLLAPSE_RANGE | libc::FALLOC_FL_INSERT_RANGE) != 0;
            let end = if shifts { u64::MAX } else { offset + length };
            let undo = state.dirty_data(self.paths(), ino.0, &file)?;
            if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
                undo.preserve(&file, offset, end)?;
            }
            nix::fcntl::fallocate(
                &*file,
                nix::fcntl::FallocateFlags::from_bits_truncate(mode),
                offset as i64,
                length as i64,
            )
            .map_err(io::Error::from)
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(errno(error)),
        }
    }
}

/// The path of a node relative to the mount's root (for reports), when it is linked.
pub(crate) fn relative_path(
    state: &State,
    paths: &crate::state::BackingPaths,
    ino: Ino,
) -> Option<PathBuf> {
    let path = state.path_of(paths, ino).ok()?;
    path.strip_prefix(&paths.root).ok().map(Path::to_path_buf)
}
