//! The FUSE operations: each one is applied to the backing directory at once (so reads see
//! every write) after recording what a loss must undo, and each one checks the open fault
//! windows first.

mod attributes;
mod backing;

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::namespace::{Ino, Kind, Link};
use crate::state::{Handle, LastWrite, Shared, State, not_found, open_backing};
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

use attributes::{c_path, errno, set_times};
use backing::is_control_entry;

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
