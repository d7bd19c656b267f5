//! The filesystem's work on its backing directory, shared by the FUSE operations: fault windows
//! a call must honour, resolving and creating entries in the inode table, detaching, truncating,
//! renaming and listing.

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use fuser::{Errno, FileAttr, FileType, Generation, RenameFlags, ReplyEntry, Request};

use crate::namespace::{Ino, Kind, Link, Place, ROOT};
use crate::state::{CONTROL_DIR, DirectoryEntry, Shared, State, not_found, open_backing};
use crate::syncer::Syncer;

use super::attributes::{errno, file_attr, kind_of};
use super::{CACHE_TTL, FaultFilesystem, UNKNOWN_INO_BIT};

impl FaultFilesystem {
    pub fn new(shared: Arc<Shared>) -> io::Result<Self> {
        Ok(FaultFilesystem {
            syncer: Syncer::start(shared.clone())?,
            shared,
            running_as_root: nix::unistd::geteuid().is_root(),
        })
    }

    pub(super) fn paths(&self) -> &crate::state::BackingPaths {
        &self.shared.paths
    }

    /// The errno that an open window imposes on a call that writes (and creates, if `creates`).
    pub(super) fn write_fault(&self, allocates: bool) -> Option<Errno> {
        let faults = self.shared.faults.current();
        if faults.write_errors || self.shared.is_powered_off() {
            Some(Errno::EIO)
        } else if allocates && faults.disk_full {
            Some(Errno::ENOSPC)
        } else {
            None
        }
    }

    pub(super) fn read_fault(&self) -> Option<Errno> {
        (self.shared.faults.current().read_errors || self.shared.is_powered_off())
            .then_some(Errno::EIO)
    }

    /// The attributes of a node (from an open handle when given).
    pub(super) fn attributes(
        &self,
        state: &State,
        ino: Ino,
        fh: Option<u64>,
    ) -> io::Result<FileAttr> {
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
    pub(super) fn resolve(&self, state: &mut State, parent: Ino, name: &OsStr) -> io::Result<Ino> {
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
    pub(super) fn exists(
        &self,
        state: &mut State,
        parent: Ino,
        name: &OsStr,
    ) -> io::Result<Option<Ino>> {
        match self.resolve(state, parent, name) {
            Ok(ino) => Ok(Some(ino)),
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Replies with the entry of a node the kernel now holds one more lookup of.
    pub(super) fn entry(&self, state: &mut State, ino: Ino) -> io::Result<FileAttr> {
        let attributes = self.attributes(state, ino, None)?;
        if let Some(node) = state.nodes.get_mut(ino) {
            node.lookups += 1;
        }
        Ok(attributes)
    }

    /// Gives a new object to the calling user when the filesystem runs as root.
    pub(super) fn chown_to_caller(&self, path: &Path, request: &Request) {
        if self.running_as_root && (request.uid() != 0 || request.gid() != 0) {
            let _ = std::os::unix::fs::lchown(path, Some(request.uid()), Some(request.gid()));
        }
    }

    /// Records a new entry and answers its lookup.
    pub(super) fn created(
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
    pub(super) fn create_entry(
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
    pub(super) fn detach(
        &self,
        state: &mut State,
        ino: Ino,
        path: &Path,
        directory: bool,
    ) -> io::Result<()> {
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

    pub(super) fn truncate(
        &self,
        state: &mut State,
        ino: Ino,
        fh: Option<u64>,
        size: u64,
    ) -> io::Result<()> {
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

    pub(super) fn rename_entry(
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

    pub(super) fn list_directory(
        &self,
        state: &mut State,
        ino: Ino,
    ) -> io::Result<Vec<DirectoryEntry>> {
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
pub(super) fn check_replaceable(
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
pub(super) fn is_control_entry(parent: Ino, name: &OsStr) -> bool {
    parent == ROOT && name == CONTROL_DIR
}
