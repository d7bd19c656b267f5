//! The filesystem's shared state: the inode table, open handles, the last un-durable write, and
//! where the backing objects and the control directory are.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::faults::FaultWindows;
use crate::namespace::{Ino, Kind, NodeTable, Place};
use crate::undo::DataUndo;

/// The name of the control directory at the backing root, hidden from the mount.
pub(crate) const CONTROL_DIR: &str = ".faultfs";

/// Where things live in the backing directory.
#[derive(Debug, Clone)]
pub(crate) struct BackingPaths {
    /// The backing directory: the mount's root.
    pub root: PathBuf,
    /// Unlinked objects that a durable entry still names, as `limbo/<ino>`.
    pub limbo: PathBuf,
    /// Objects moved aside while a loss rebuilds the tree, as `stage/<ino>`.
    pub stage: PathBuf,
    /// Saved durable pages, as `undo/<ino>`.
    pub undo: PathBuf,
}

impl BackingPaths {
    /// Creates a fresh control directory under `root` (a previous mount's leftovers are
    /// removed: the backing directory as it is now is the durable state).
    pub fn prepare(root: &Path) -> io::Result<Self> {
        let control = root.join(CONTROL_DIR);
        if control.exists() {
            std::fs::remove_dir_all(&control)?;
        }
        let paths = BackingPaths {
            root: root.to_path_buf(),
            limbo: control.join("limbo"),
            stage: control.join("stage"),
            undo: control.join("undo"),
        };
        for dir in [&paths.limbo, &paths.stage, &paths.undo] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(paths)
    }
}

/// An open file or directory.
#[derive(Debug)]
pub(crate) enum Handle {
    File {
        ino: Ino,
        file: Arc<File>,
    },
    Directory {
        ino: Ino,
        entries: Vec<DirectoryEntry>,
    },
}

impl Handle {
    pub fn ino(&self) -> Ino {
        match self {
            Handle::File { ino, .. } | Handle::Directory { ino, .. } => *ino,
        }
    }
}

/// One entry of a directory listing taken at `opendir`.
#[derive(Debug, Clone)]
pub(crate) struct DirectoryEntry {
    pub name: std::ffi::OsString,
    pub ino: u64,
    pub kind: fuser::FileType,
}

/// The most recent write that is not durable yet (a loss may tear it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LastWrite {
    pub ino: Ino,
    pub offset: u64,
    pub length: u64,
}

/// Everything the filesystem's operations change.
#[derive(Debug)]
pub(crate) struct State {
    pub nodes: NodeTable,
    pub handles: HashMap<u64, Handle>,
    next_handle: u64,
    pub last_write: Option<LastWrite>,
    /// How many losses this mount has been through: an fsync that began before a loss must
    /// not commit anything after it.
    pub losses: u64,
}

impl State {
    pub fn new() -> Self {
        State {
            nodes: NodeTable::new(),
            handles: HashMap::new(),
            next_handle: 1,
            last_write: None,
            losses: 0,
        }
    }

    pub fn add_handle(&mut self, handle: Handle) -> u64 {
        let fh = self.next_handle;
        self.next_handle += 1;
        if let Some(node) = self.nodes.get_mut(handle.ino()) {
            node.open_handles += 1;
        }
        self.handles.insert(fh, handle);
        fh
    }

    pub fn remove_handle(&mut self, fh: u64) {
        if let Some(handle) = self.handles.remove(&fh) {
            let ino = handle.ino();
            if let Some(node) = self.nodes.get_mut(ino) {
                node.open_handles = node.open_handles.saturating_sub(1);
            }
            self.nodes.forget_if_unused(ino);
        }
    }

    /// The open backing file of a file handle.
    pub fn file(&self, fh: u64) -> Option<Arc<File>> {
        match self.handles.get(&fh) {
            Some(Handle::File { file, .. }) => Some(file.clone()),
            _ => None,
        }
    }

    /// Where the backing object of `ino` is now.
    pub fn path_of(&self, paths: &BackingPaths, ino: Ino) -> io::Result<PathBuf> {
        let mut names = Vec::new();
        let mut at = ino;
        loop {
            let node = self.nodes.get(at).ok_or_else(not_found)?;
            match &node.place {
                Place::Root => {
                    let mut path = paths.root.clone();
                    path.extend(names.iter().rev());
                    return Ok(path);
                }
                Place::Linked(link) => {
                    names.push(link.name.clone());
                    at = link.parent;
                }
                Place::Limbo | Place::Staged if names.is_empty() => {
                    let dir = if node.place == Place::Limbo {
                        &paths.limbo
                    } else {
                        &paths.stage
                    };
                    return Ok(dir.join(at.to_string()));
                }
                _ => return Err(not_found()),
            }
        }
    }

    /// Makes sure the node has an undo record before its data changes (a clean file's durable
    /// size is its size now).
    pub fn dirty_data(
        &mut self,
        paths: &BackingPaths,
        ino: Ino,
        file: &File,
    ) -> io::Result<&mut DataUndo> {
        let node = self.nodes.get_mut(ino).ok_or_else(not_found)?;
        if node.kind != Kind::File {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        if node.data.is_none() {
            let size = file.metadata()?.size();
            node.data = Some(DataUndo::new(size, paths.undo.join(ino.to_string())));
        }
        node.data
            .as_mut()
            .ok_or_else(|| io::Error::other("undo record vanished"))
    }
}

pub(crate) fn not_found() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

/// Opens a backing file for reading and writing when allowed (the undo record must read what
/// a write-only handle overwrites), else as the caller asked.
pub(crate) fn open_backing(path: &Path, access_mode: i32) -> io::Result<File> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => Ok(file),
        Err(error) if error.raw_os_error() == Some(libc::EACCES) => OpenOptions::new()
            .read(access_mode != libc::O_WRONLY)
            .write(access_mode != libc::O_RDONLY)
            .open(path),
        Err(error) => Err(error),
    }
}

/// What the filesystem threads and the controlling handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub paths: BackingPaths,
    pub faults: FaultWindows,
    pub fsync_backing: bool,
    pub entry_durability: crate::mount::EntryDurability,
    /// The power is off (between [`crate::FaultFs::power_off`] and the loss): every call that
    /// touches the disk fails with EIO and nothing becomes durable.
    pub powered_off: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
}

impl Shared {
    pub fn new(
        paths: BackingPaths,
        fsync_backing: bool,
        entry_durability: crate::mount::EntryDurability,
    ) -> Self {
        Shared {
            paths,
            faults: FaultWindows::default(),
            fsync_backing,
            entry_durability,
            powered_off: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(State::new()),
        }
    }

    pub fn is_powered_off(&self) -> bool {
        self.powered_off.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
