//! What a file's data was when it was last made durable: its durable size and the original
//! contents of every durable page overwritten since, so that a loss can put them back.
//!
//! Writes go through to the backing file at once; before a write, truncate or hole punch first
//! touches a 4 KiB page that lies (partly) below the durable size, the page's durable bytes are
//! copied to an undo file (`<control dir>/undo/<ino>`) and indexed in memory (16 bytes a page).
//! Appends past the durable size cost nothing: a loss truncates them away. `fsync` or
//! `fdatasync` of the file drops the record; a loss writes the saved pages back and truncates
//! the file to its durable size.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// The granularity of saved data.
pub(crate) const PAGE_BYTES: u64 = 4096;

/// The durable state of one file's data while it has un-durable changes.
#[derive(Debug)]
pub(crate) struct DataUndo {
    durable_size: u64,
    /// Page index -> offset of its saved durable bytes in the undo file.
    saved_pages: BTreeMap<u64, u64>,
    undo_path: PathBuf,
    undo_file: Option<File>,
    undo_bytes: u64,
}

impl DataUndo {
    pub fn new(durable_size: u64, undo_path: PathBuf) -> Self {
        DataUndo {
            durable_size,
            saved_pages: BTreeMap::new(),
            undo_path,
            undo_file: None,
            undo_bytes: 0,
        }
    }

    /// Saves the durable bytes of every page in `start..end` not saved yet, reading them from
    /// `backing` (which must still hold them: call this before changing the range).
    pub fn preserve(&mut self, backing: &File, start: u64, end: u64) -> io::Result<()> {
        let end = end.min(self.durable_size);
        if start >= end {
            return Ok(());
        }
        let mut page_buffer = vec![0u8; PAGE_BYTES as usize];
        for page in start / PAGE_BYTES..end.div_ceil(PAGE_BYTES) {
            if self.saved_pages.contains_key(&page) {
                continue;
            }
            let page_start = page * PAGE_BYTES;
            let length = PAGE_BYTES.min(self.durable_size - page_start) as usize;
            let bytes = &mut page_buffer[..length];
            bytes.fill(0);
            read_up_to(backing, bytes, page_start)?;
            let undo_offset = self.undo_bytes;
            self.undo_file()?.write_all_at(bytes, undo_offset)?;
            self.undo_bytes += length as u64;
            self.saved_pages.insert(page, undo_offset);
        }
        Ok(())
    }

    fn undo_file(&mut self) -> io::Result<&File> {
        if self.undo_file.is_none() {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.undo_path)?;
            self.undo_file = Some(file);
        }
        self.undo_file
            .as_ref()
            .ok_or_else(|| io::Error::other("undo file not open"))
    }

    /// Puts the durable data back into `backing`: saved pages, then the durable size.
    pub fn restore(&self, backing: &File) -> io::Result<()> {
        if let Some(undo) = &self.undo_file {
            let mut page_buffer = vec![0u8; PAGE_BYTES as usize];
            for (&page, &undo_offset) in &self.saved_pages {
                let page_start = page * PAGE_BYTES;
                let length = PAGE_BYTES.min(self.durable_size - page_start) as usize;
                let bytes = &mut page_buffer[..length];
                undo.read_exact_at(bytes, undo_offset)?;
                backing.write_all_at(bytes, page_start)?;
            }
        }
        backing.set_len(self.durable_size)
    }

    /// The changes became durable (or were dropped): forget the saved pages.
    pub fn discard(self) {
        if self.undo_file.is_some()
            && let Err(error) = std::fs::remove_file(&self.undo_path)
        {
            tracing::warn!("removing undo file {}: {error}", self.undo_path.display());
        }
    }
}

/// Reads as much of `buffer` as the file holds at `offset` (the rest stays as it is);
/// returns how many bytes it read.
pub(crate) fn read_up_to(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buffer.len() {
        match file.read_at(&mut buffer[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(read) => done += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn overwrites_and_truncates_are_undone_appends_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let original: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &original).unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut undo = DataUndo::new(10_000, dir.path().join("undo"));
        undo.preserve(&file, 5000, 5010).unwrap();
        file.write_all_at(&[0xff; 10], 5000).unwrap();
        undo.preserve(&file, 9000, 12_000).unwrap();
        file.write_all_at(&[0xee; 3000], 9000).unwrap();
        undo.preserve(&file, 100, 10_000).unwrap();
        file.set_len(100).unwrap();
        undo.restore(&file).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), original);
        undo.discard();
        assert!(!dir.path().join("undo").exists());
    }
}
