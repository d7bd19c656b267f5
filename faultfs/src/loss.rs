//! A loss: the backing directory is rebuilt into the durable state (durable entries, durable
//! data), optionally keeping a sector-aligned prefix of the last un-durable write.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::filesystem::relative_path;
use crate::namespace::{Ino, Kind, Place, ROOT};
use crate::state::{BackingPaths, State, open_backing};

/// The sector size a torn write is cut at.
pub const SECTOR_BYTES: u64 = 512;

/// How to tear the last un-durable write: keep its first `keep_sectors` sectors (counted
/// from the sector its first byte is in, so a write that starts mid-sector keeps less than
/// `keep_sectors * 512` bytes of its own). 0 keeps nothing, as no tear; a count past its end
/// keeps it whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tear {
    pub keep_sectors: u64,
}

/// The last write no fsync has made durable yet (a candidate for a [`Tear`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsyncedWrite {
    /// Relative to the mount's root; `None` when the file is no longer linked.
    pub path: Option<PathBuf>,
    pub offset: u64,
    pub length: u64,
    /// The sectors it touches: `keep_sectors` from 0 to this tears it at every place.
    pub sectors: u64,
}

/// The write a tear kept part of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornWrite {
    pub path: PathBuf,
    pub offset: u64,
    pub length: u64,
    pub kept_bytes: u64,
}

/// What a loss dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LossReport {
    /// Files whose data was put back to its durable contents and size.
    pub files_rolled_back: usize,
    /// Files, directories and links that existed but had no durable entry: removed.
    pub entries_removed: usize,
    /// Entries renamed or unlinked without a durable directory: put back where they were.
    pub entries_restored: usize,
    /// The last write, when a tear kept part of it.
    pub torn_write: Option<TornWrite>,
}

/// What the kernel must forget after a loss: changed entries and every known inode's pages.
#[derive(Debug, Default)]
pub(crate) struct Invalidations {
    pub entries: Vec<(Ino, OsString)>,
    pub inodes: Vec<Ino>,
}

impl UnsyncedWrite {
    pub(crate) fn of(state: &State, paths: &BackingPaths) -> Option<Self> {
        let write = state.last_write?;
        let first_sector = write.offset / SECTOR_BYTES;
        let end_sector = (write.offset + write.length).div_ceil(SECTOR_BYTES);
        Some(UnsyncedWrite {
            path: relative_path(state, paths, write.ino),
            offset: write.offset,
            length: write.length,
            sectors: end_sector - first_sector,
        })
    }
}

/// Rebuilds the durable state in the backing directory and settles the inode table.
pub(crate) fn lose_unsynced(
    state: &mut State,
    paths: &BackingPaths,
    tear: Option<Tear>,
) -> io::Result<(LossReport, Invalidations)> {
    let mut report = LossReport::default();
    let mut invalidations = Invalidations::default();
    let torn = torn_bytes(state, paths, tear)?;
    let survivors = state.nodes.survivors();
    let surviving: HashSet<Ino> = survivors.iter().copied().collect();

    // 1. Move aside, deepest first, everything not already at its durable entry.
    let mut moving: Vec<(usize, Ino)> = Vec::new();
    for ino in state.nodes.inos() {
        let Some(node) = state.nodes.get(ino) else {
            continue;
        };
        if ino == ROOT || node.place == Place::Gone {
            continue;
        }
        let in_place = surviving.contains(&ino) && node.current() == node.durable.as_ref();
        if !in_place {
            moving.push((state.nodes.current_depth(ino), ino));
        }
        for link in [node.current(), node.durable.as_ref()]
            .into_iter()
            .flatten()
        {
            invalidations.entries.push((link.parent, link.name.clone()));
        }
    }
    moving.sort_unstable_by(|a, b| b.cmp(a));
    for &(_, ino) in &moving {
        let from = state.path_of(paths, ino)?;
        std::fs::rename(&from, paths.stage.join(ino.to_string()))?;
        state.nodes.set_place(ino, Place::Staged);
        if surviving.contains(&ino) {
            report.entries_restored += 1;
        } else {
            report.entries_removed += 1;
        }
    }

    // 2. Put the survivors back at their durable entries, parents first.
    for &ino in &survivors {
        let Some(node) = state.nodes.get(ino) else {
            continue;
        };
        if node.place != Place::Staged {
            continue;
        }
        let Some(link) = node.durable.clone() else {
            continue;
        };
        let target = state.path_of(paths, link.parent)?.join(&link.name);
        if std::fs::symlink_metadata(&target).is_ok() {
            // Only a change behind the filesystem's back can put something here.
            let junk = paths.stage.join(format!("occupant-{ino}"));
            std::fs::rename(&target, junk)?;
        }
        std::fs::rename(paths.stage.join(ino.to_string()), &target)?;
        state.nodes.set_place(ino, Place::Linked(link));
    }

    // 3. Durable data back, then the kept part of a torn write.
    for &ino in &survivors {
        let Some(node) = state.nodes.get(ino) else {
            continue;
        };
        if node.kind != Kind::File {
            continue;
        }
        if let Some(data) = &node.data {
            let file = open_backing(&state.path_of(paths, ino)?, libc::O_RDWR)?;
            data.restore(&file)?;
            report.files_rolled_back += 1;
        }
    }
    if let Some((ino, offset, bytes)) = torn
        && surviving.contains(&ino)
        && let Some(last) = state.last_write
    {
        let file = open_backing(&state.path_of(paths, ino)?, libc::O_RDWR)?;
        file.write_all_at(&bytes, offset)?;
        report.torn_write = Some(TornWrite {
            path: relative_path(state, paths, ino).unwrap_or_default(),
            offset,
            length: last.length,
            kept_bytes: bytes.len() as u64,
        });
    }

    // 4. Whatever did not survive goes; the table now says what the disk holds.
    std::fs::remove_dir_all(&paths.stage)?;
    std::fs::create_dir_all(&paths.stage)?;
    std::fs::remove_dir_all(&paths.limbo)?;
    std::fs::create_dir_all(&paths.limbo)?;
    state.last_write = None;
    state.losses += 1;
    invalidations.inodes = state.nodes.inos();
    state.nodes.settle_after_loss(&survivors);
    Ok((report, invalidations))
}

/// The bytes of the last write a tear keeps (read now, before the rollback overwrites them).
fn torn_bytes(
    state: &State,
    paths: &BackingPaths,
    tear: Option<Tear>,
) -> io::Result<Option<(Ino, u64, Vec<u8>)>> {
    let (Some(tear), Some(write)) = (tear, state.last_write) else {
        return Ok(None);
    };
    let sector_start = write.offset / SECTOR_BYTES * SECTOR_BYTES;
    let kept_end = sector_start
        .saturating_add(tear.keep_sectors.saturating_mul(SECTOR_BYTES))
        .min(write.offset + write.length);
    if kept_end <= write.offset {
        return Ok(None);
    }
    let Ok(path) = state.path_of(paths, write.ino) else {
        return Ok(None);
    };
    let file = open_backing(&path, libc::O_RDONLY)?;
    let mut bytes = vec![0u8; (kept_end - write.offset) as usize];
    file.read_exact_at(&mut bytes, write.offset)?;
    Ok(Some((write.ino, write.offset, bytes)))
}
