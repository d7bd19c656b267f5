//! The leader-epoch cache of one partition: (leader epoch, start offset of that epoch) pairs,
//! persisted beside the log in Kafka's `leader-epoch-checkpoint` format:
//! `0` (version), the entry count, then one `<epoch> <start offset>` line per entry.
//! Replication uses it to answer OffsetsForLeaderEpoch and to truncate (KIP-101, KIP-279).

use std::path::{Path, PathBuf};

/// File name beside the segments.
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// One entry: `epoch` started at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The cache and its checkpoint file.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint in `dir` (missing or unreadable: empty; recovery rebuilds it from
    /// the batches' epochs).
    pub fn load(dir: &Path) -> Self {
        let path = dir.join(CHECKPOINT_FILE);
        let entries = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| parse(&text))
            .unwrap_or_default();
        LeaderEpochCache { path, entries }
    }

    /// Records that `epoch` starts at `start_offset` if it is newer than the latest epoch.
    /// Returns whether the cache changed (then it has been written).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> std::io::Result<bool> {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return Ok(false);
        }
        // Epochs only grow, and a new epoch starts at or after the previous one's start (a log
        // truncated below an epoch's start has dropped that entry first).
        debug_assert!(
            self.entries
                .last()
                .is_none_or(|last| start_offset >= last.start_offset),
            "leader epoch {epoch} starting at {start_offset}, before epoch {:?}'s start",
            self.entries.last()
        );
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.write()?;
        Ok(true)
    }

    /// The latest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|entry| entry.epoch)
    }

    /// KIP-279: for a requested epoch, the largest epoch <= it that we know and its end offset
    /// (the start of the next epoch, or `log_end_offset` for the latest). `None` if we know no
    /// epoch <= the requested one.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let after = self.entries.partition_point(|entry| entry.epoch <= epoch);
        let found = after.checked_sub(1)?;
        let end = self
            .entries
            .get(after)
            .map_or(log_end_offset, |next| next.start_offset);
        Some((self.entries[found].epoch, end))
    }

    /// Drops entries that start at or after `offset` (the log was truncated to `offset`).
    pub fn truncate_from_end(&mut self, offset: i64) -> std::io::Result<()> {
        let keep = self
            .entries
            .partition_point(|entry| entry.start_offset < offset);
        if keep != self.entries.len() {
            self.entries.truncate(keep);
            self.write()?;
        }
        Ok(())
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// Writes the checkpoint atomically (temporary file, fsync, rename, fsync of the
    /// directory).
    fn write(&self) -> std::io::Result<()> {
        use std::io::Write;
        let mut text = format!("0\n{}\n", self.entries.len());
        for entry in &self.entries {
            text.push_str(&format!("{} {}\n", entry.epoch, entry.start_offset));
        }
        let temporary = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        std::fs::rename(&temporary, &self.path)?;
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => crate::broker::directory::sync_dir(dir),
            _ => Ok(()),
        }
    }
}

/// The entries of a checkpoint; `None` if it is malformed: a wrong version, fewer entries than
/// its count says (the count sizes nothing), or epochs and start offsets that do not increase.
fn parse(text: &str) -> Option<Vec<EpochEntry>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries: Vec<EpochEntry> = Vec::new();
    for line in lines.take(count) {
        let (epoch, offset) = line.trim().split_once(' ')?;
        let entry = EpochEntry {
            epoch: epoch.parse().ok()?,
            start_offset: offset.trim().parse().ok()?,
        };
        let increasing = entries
            .last()
            .is_none_or(|last| entry.epoch > last.epoch && entry.start_offset >= last.start_offset);
        if entry.epoch < 0 || entry.start_offset < 0 || !increasing {
            return None;
        }
        entries.push(entry);
    }
    (entries.len() == count).then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigns_persists_and_answers_end_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cache = LeaderEpochCache::load(dir.path());
        assert!(cache.assign(0, 0).expect("write"));
        assert!(!cache.assign(0, 5).expect("same epoch is not new"));
        assert!(cache.assign(2, 10).expect("write"));
        assert!(cache.assign(5, 30).expect("write"));
        let cache = LeaderEpochCache::load(dir.path());
        assert_eq!(cache.entries().len(), 3);
        assert_eq!(cache.end_offset_for(0, 50), Some((0, 10)));
        assert_eq!(cache.end_offset_for(3, 50), Some((2, 30)));
        assert_eq!(cache.end_offset_for(7, 50), Some((5, 50)));
        assert_eq!(cache.end_offset_for(-1, 50), None);
    }

    #[test]
    fn corrupt_checkpoints_load_as_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        for text in [
            "",
            "0\n",
            "0\n2147483647\n1 0\n",
            "0\n18446744073709551615\n1 0\n",
            "0\n2\n3 10\n2 20\n",
            "0\n2\n1 10\n2 5\n",
            "0\n1\n-1 0\n",
            "7\n1\n1 0\n",
            "garbage",
        ] {
            std::fs::write(dir.path().join(CHECKPOINT_FILE), text).expect("write");
            let cache = LeaderEpochCache::load(dir.path());
            assert!(cache.entries().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn truncation_drops_epochs_starting_at_or_after_the_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cache = LeaderEpochCache::load(dir.path());
        cache.assign(1, 0).expect("write");
        cache.assign(2, 10).expect("write");
        cache.truncate_from_end(10).expect("truncate");
        assert_eq!(cache.latest_epoch(), Some(1));
        assert_eq!(LeaderEpochCache::load(dir.path()).latest_epoch(), Some(1));
    }
}
