//! The high watermarks of all partitions of a log directory, in Kafka's
//! `replication-offset-checkpoint` file: `0` (version), the entry count, then one
//! `<topic> <partition> <high watermark>` line per partition. Written periodically and on
//! shutdown; read on start so that a follower does not serve or trust more than was committed.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// File name in the log directory.
pub const CHECKPOINT_FILE: &str = "replication-offset-checkpoint";

/// (topic, partition) -> high watermark.
pub type HighWatermarks = HashMap<(String, i32), i64>;

/// Reads the checkpoint in `log_dir`; a missing or malformed file reads as empty (the high
/// watermarks then restart from the log start, the safe side).
pub fn read(log_dir: &Path) -> HighWatermarks {
    std::fs::read_to_string(log_dir.join(CHECKPOINT_FILE))
        .ok()
        .and_then(|text| parse(&text))
        .unwrap_or_default()
}

fn parse(text: &str) -> Option<HighWatermarks> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    // The count is only believed once that many lines have been read: nothing is sized by it.
    let mut entries = HighWatermarks::new();
    for line in lines.take(count) {
        let mut fields = line.split_whitespace();
        let topic = fields.next()?.to_string();
        let partition = fields.next()?.parse().ok()?;
        let offset = fields.next()?.parse().ok()?;
        entries.insert((topic, partition), offset);
    }
    (entries.len() == count).then_some(entries)
}

/// Writes the checkpoint atomically (temporary file, fsync, rename, fsync of the directory).
pub fn write(log_dir: &Path, entries: &HighWatermarks) -> std::io::Result<()> {
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort();
    let mut text = format!("0\n{}\n", sorted.len());
    for ((topic, partition), offset) in sorted {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    let temporary = log_dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_data()?;
    std::fs::rename(&temporary, log_dir.join(CHECKPOINT_FILE))?;
    crate::broker::directory::sync_dir(log_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read(dir.path()).is_empty());
        let entries: HighWatermarks = [(("t".to_string(), 0), 42), (("u.v".to_string(), 3), 7)]
            .into_iter()
            .collect();
        write(dir.path(), &entries).expect("write");
        assert_eq!(read(dir.path()), entries);
        std::fs::write(dir.path().join(CHECKPOINT_FILE), "0\n2\nt 0 42\n").expect("write");
        assert!(read(dir.path()).is_empty(), "a short file is not trusted");
    }

    #[test]
    fn corrupt_files_read_as_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let huge = format!("0\n{}\nt 0 42\n", usize::MAX);
        for text in [
            "",
            "0\n",
            "0\n2147483647\nt 0 42\n",
            huge.as_str(),
            "1\n1\nt 0 42\n",
            "0\n-1\n",
            "0\n1\nt x 42\n",
            "\u{0}\u{1}garbage\n\n",
        ] {
            std::fs::write(dir.path().join(CHECKPOINT_FILE), text).expect("write");
            assert!(read(dir.path()).is_empty(), "{text:?}");
        }
        std::fs::write(dir.path().join(CHECKPOINT_FILE), [0xff, 0xfe, 0x00]).expect("write");
        assert!(read(dir.path()).is_empty(), "not UTF-8");
    }
}
