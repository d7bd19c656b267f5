//! `leadership.jsonl` (optional, written by the harness): one sample per line,
//! `{"time_ns":..,"topic":"t","partition":0,"leader":2,"isr":[2,3]}`, leader -1 for none. Read
//! into one row of segments per partition: a segment lasts while the leader and ISR stay the same.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde::Deserialize;

use crate::error::ReportError;

/// Segments kept per partition, at most (later changes extend the last one).
const SEGMENTS_PER_PARTITION_MAX: usize = 5_000;

#[derive(Deserialize)]
struct Sample {
    time_ns: u64,
    topic: String,
    partition: i32,
    leader: i32,
    #[serde(default)]
    isr: Vec<i32>,
}

/// A stretch of time with one leader and one ISR.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start_ns: u64,
    /// The next sample's time; `None` for the last segment (it lasts to the end of the run).
    pub end_ns: Option<u64>,
    /// -1: no leader.
    pub leader: i32,
    pub isr: Vec<i32>,
}

/// Rows by (topic, partition).
pub type Leadership = BTreeMap<(String, i32), Vec<Segment>>;

/// Reads `path`; `Ok(None)` when the file does not exist. A malformed line is an error naming
/// it, except a last line cut short without its newline.
pub fn read_leadership(path: &Path) -> Result<Option<Leadership>, ReportError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ReportError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut reader = std::io::BufReader::new(file);
    let mut rows = Leadership::new();
    let mut line = String::new();
    let mut line_number = 0u64;
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|source| ReportError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if read == 0 {
            break;
        }
        line_number += 1;
        if line.trim().is_empty() {
            continue;
        }
        let sample: Sample = match serde_json::from_str(&line) {
            Ok(sample) => sample,
            Err(_) if !line.ends_with('\n') => break,
            Err(error) => {
                return Err(ReportError::MalformedLine {
                    path: path.to_path_buf(),
                    line: line_number,
                    reason: error.to_string(),
                });
            }
        };
        add_sample(
            rows.entry((sample.topic.clone(), sample.partition))
                .or_default(),
            sample,
        );
    }
    Ok(Some(rows))
}

fn add_sample(segments: &mut Vec<Segment>, sample: Sample) {
    let mut isr = sample.isr;
    isr.sort_unstable();
    if let Some(last) = segments.last_mut() {
        if last.leader == sample.leader && last.isr == isr {
            return;
        }
        if segments.len() >= SEGMENTS_PER_PARTITION_MAX {
            return;
        }
    }
    if let Some(last) = segments.last_mut() {
        last.end_ns = Some(sample.time_ns.max(last.start_ns));
    }
    segments.push(Segment {
        start_ns: sample.time_ns,
        end_ns: None,
        leader: sample.leader,
        isr,
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn samples_merge_into_segments_and_absence_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leadership.jsonl");
        assert!(read_leadership(&path).unwrap().is_none());
        std::fs::write(
            &path,
            concat!(
                "{\"time_ns\":0,\"topic\":\"t\",\"partition\":0,\"leader\":1,\"isr\":[1,2,3]}\n",
                "{\"time_ns\":5,\"topic\":\"t\",\"partition\":0,\"leader\":1,\"isr\":[3,2,1]}\n",
                "{\"time_ns\":9,\"topic\":\"t\",\"partition\":0,\"leader\":-1,\"isr\":[]}\n",
                "{\"time_ns\":9,\"topic\":\"t\",\"partition\":1,\"leader\":2,\"isr\":[2]}\n",
                "{\"time_ns\":12,\"topic\":\"t\",\"partition\":0,\"lea",
            ),
        )
        .unwrap();
        let rows = read_leadership(&path).unwrap().unwrap();
        let zero = &rows[&("t".to_string(), 0)];
        assert_eq!(zero.len(), 2);
        assert_eq!(zero[0].end_ns, Some(9));
        assert_eq!(zero[0].isr, vec![1, 2, 3]);
        assert_eq!(zero[1].leader, -1);
        assert_eq!(rows[&("t".to_string(), 1)].len(), 1);
    }

    #[test]
    fn a_malformed_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leadership.jsonl");
        std::fs::write(&path, "{\"time_ns\":0}\nnot json\n").unwrap();
        let error = read_leadership(&path).unwrap_err();
        assert!(
            matches!(error, ReportError::MalformedLine { line: 1, .. }),
            "{error}"
        );
    }
}
