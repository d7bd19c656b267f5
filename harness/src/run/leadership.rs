//! Leadership sampling: while a run goes on, which broker leads each partition and how large its
//! ISR is, read from live metadata every interval and written to `leadership.jsonl` beside the
//! history (on the history's clock), one line per partition whenever its leader, leader epoch or
//! ISR changes — and one when metadata cannot be read at all. The report draws its leadership
//! timeline from this file.
//!
//! ```text
//! {"time_ns":1200311,"topic":"t","partition":0,"leader":2,"leader_epoch":3,"isr":[2,3]}
//! ```
//! `leader` -1 means the partition has no leader.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use crate::cluster::metadata::{self, PartitionState};
use crate::recorder::Recorder;

/// How long one metadata request may take before the sample is skipped.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(1);

/// One line of `leadership.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeadershipSample {
    pub time_ns: u64,
    pub topic: String,
    pub partition: i32,
    /// -1 when the partition has no leader (or metadata could not be read).
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
}

/// Why the sampler stopped early.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct LeadershipError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// What the sampler saw last, per partition: (leader, leader epoch, ISR).
type Seen = BTreeMap<i32, (i32, i32, Vec<i32>)>;

/// Samples `topic`'s leadership from `addresses` every `interval` until `stop` turns true,
/// appending changes to `path`. Returns the number of lines written. With `ask_every_broker`
/// (runs with network partitions) every broker is asked and the newest leader epoch wins, so
/// that a zombie leader's own claim does not hide its successor; otherwise the first broker to
/// answer is taken (a frozen broker then costs no wait).
pub async fn sample_leadership(
    addresses: Vec<String>,
    topic: String,
    path: PathBuf,
    interval: Duration,
    recorder: Recorder,
    ask_every_broker: bool,
    mut stop: watch::Receiver<bool>,
) -> Result<u64, LeadershipError> {
    let io_error = |source| LeadershipError {
        path: path.clone(),
        source,
    };
    let mut out = BufWriter::new(File::create(&path).map_err(io_error)?);
    let mut seen = Seen::new();
    let mut written = 0;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        let fetched = if ask_every_broker {
            metadata::fetch_freshest(&addresses, Some(&topic), SAMPLE_TIMEOUT).await
        } else {
            metadata::fetch(&addresses, Some(&topic), SAMPLE_TIMEOUT).await
        };
        let partitions = match fetched {
            Ok(metadata) => metadata.partitions,
            // No broker answered: every known partition is, as far as a client can tell, leaderless.
            Err(_) => seen
                .keys()
                .map(|&partition| PartitionState {
                    partition,
                    leader: None,
                    leader_epoch: -1,
                    replicas: Vec::new(),
                    isr: Vec::new(),
                })
                .collect(),
        };
        let time_ns = recorder.elapsed_ns();
        for sample in changes(&mut seen, &topic, time_ns, &partitions) {
            write_line(&mut out, &sample).map_err(io_error)?;
            written += 1;
        }
        out.flush().map_err(io_error)?;
    }
    out.flush().map_err(io_error)?;
    Ok(written)
}

/// The samples for partitions whose state differs from what was seen last; updates `seen`.
fn changes(
    seen: &mut Seen,
    topic: &str,
    time_ns: u64,
    partitions: &[PartitionState],
) -> Vec<LeadershipSample> {
    partitions
        .iter()
        .filter_map(|state| {
            let now = (
                state.leader.unwrap_or(-1),
                state.leader_epoch,
                state.isr.clone(),
            );
            if seen.get(&state.partition) == Some(&now) {
                return None;
            }
            seen.insert(state.partition, now.clone());
            Some(LeadershipSample {
                time_ns,
                topic: topic.to_string(),
                partition: state.partition,
                leader: now.0,
                leader_epoch: now.1,
                isr: now.2,
            })
        })
        .collect()
}

fn write_line(out: &mut impl Write, sample: &LeadershipSample) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, sample).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

/// Reads `leadership.jsonl`; lines that do not parse are skipped.
pub fn read_leadership(path: &Path) -> std::io::Result<Vec<LeadershipSample>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(partition: i32, leader: Option<i32>, isr: &[i32]) -> PartitionState {
        PartitionState {
            partition,
            leader,
            leader_epoch: 1,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
        }
    }

    #[test]
    fn only_changes_are_written() {
        let mut seen = Seen::new();
        let first = changes(
            &mut seen,
            "t",
            10,
            &[state(0, Some(1), &[1, 2]), state(1, Some(2), &[2])],
        );
        assert_eq!(first.len(), 2);
        let same = changes(
            &mut seen,
            "t",
            20,
            &[state(0, Some(1), &[1, 2]), state(1, Some(2), &[2])],
        );
        assert!(same.is_empty());
        let moved = changes(
            &mut seen,
            "t",
            30,
            &[state(0, None, &[1]), state(1, Some(2), &[2])],
        );
        assert_eq!(moved.len(), 1);
        assert_eq!(moved[0].partition, 0);
        assert_eq!(moved[0].leader, -1);
        assert_eq!(moved[0].time_ns, 30);
    }

    #[test]
    fn samples_round_trip_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("leadership.jsonl");
        let mut seen = Seen::new();
        let samples = changes(&mut seen, "t", 5, &[state(0, Some(3), &[3, 1])]);
        let mut file = File::create(&path).expect("create");
        for sample in &samples {
            write_line(&mut file, sample).expect("write");
        }
        std::fs::write(dir.path().join("junk"), "x").expect("junk");
        assert_eq!(read_leadership(&path).expect("read"), samples);
    }
}
