//! The history: `history.jsonl`, one operation per line, in Jepsen's model (an `invoke` followed
//! by exactly one completion: `ok`, `fail` or `info`; faults are operations of the `nemesis`).
//!
//! This module owns the on-disk format (docs/checker.md), the [`HistoryWriter`] that every client
//! and the nemesis append to while a run goes on, and [`read_history`] for anyone who wants the
//! operations back as typed values. The checker has its own faster line parser for the same
//! format (`checker::parse`), but it accepts exactly what this module writes.
//!
//! ```text
//! {"index":0,"time_ns":1200311,"process":3,"type":"invoke","f":"send","value":{"key":"k7","value":"3-17"}}
//! {"index":2,"time_ns":3500000,"process":"nemesis","type":"info","f":"kill","value":{"node":"broker-2"}}
//! ```

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How often the background flusher pushes buffered operations to the file.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Who performed an operation: a client process (a number, fresh after an indeterminate
/// operation, as in Jepsen) or the nemesis. JSON: a number, or the string `"nemesis"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Client(u64),
    Nemesis,
}

impl fmt::Display for Process {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(id) => write!(formatter, "{id}"),
            Process::Nemesis => formatter.write_str("nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(id) => serializer.serialize_u64(*id),
            Process::Nemesis => serializer.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ProcessVisitor;
        impl serde::de::Visitor<'_> for ProcessVisitor {
            type Value = Process;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a process number or \"nemesis\"")
            }
            fn visit_u64<E: serde::de::Error>(self, id: u64) -> Result<Process, E> {
                Ok(Process::Client(id))
            }
            fn visit_i64<E: serde::de::Error>(self, id: i64) -> Result<Process, E> {
                u64::try_from(id)
                    .map(Process::Client)
                    .map_err(|_| E::custom(format!("negative process number {id}")))
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Process, E> {
                if name == "nemesis" {
                    Ok(Process::Nemesis)
                } else {
                    Err(E::custom(format!(
                        "unknown process {name:?} (expected a number or \"nemesis\")"
                    )))
                }
            }
        }
        deserializer.deserialize_any(ProcessVisitor)
    }
}

/// The type of an operation: an invocation or one of its three possible completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The operation was started.
    Invoke,
    /// It happened.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Unknown whether it happened (a timeout, a broken connection, a fault).
    Info,
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history: 0, 1, 2, ... in the order written.
    pub index: u64,
    /// Nanoseconds since the writer was created (monotonic clock).
    pub time_ns: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// The function: `send`, `poll`, `assign`, `final-read`, `kill`, `pause`, ...
    pub f: String,
    pub value: serde_json::Value,
}

/// What can go wrong writing or reading a history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("history {path} line {line}: {reason}")]
    Malformed {
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        reason: String,
    },
    #[error("history {path} is closed")]
    Closed { path: PathBuf },
    #[error("history {path}: an earlier write failed: {reason}")]
    Poisoned { path: PathBuf, reason: String },
}

/// Appends operations to `history.jsonl`. Cheap to clone and usable from many tasks and threads:
/// each [`record`](HistoryWriter::record) takes a short lock, assigns the next `index` and the
/// `time_ns`, and appends one line to a 64 KiB buffer that a background thread flushes every
/// [`FLUSH_INTERVAL`] (and [`close`](HistoryWriter::close) or dropping the last clone flushes),
/// so a run that dies still leaves its history. `record` does no I/O except when the buffer
/// fills (one write of 64 KiB), so it is fine to call from async code.
#[derive(Clone)]
pub struct HistoryWriter {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    started: Instant,
    state: Arc<Mutex<WriterState>>,
    /// Dropping the sender (or sending) stops the flusher, which flushes one last time.
    stop_flusher: Mutex<Option<mpsc::Sender<()>>>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

struct WriterState {
    file: BufWriter<File>,
    next_index: u64,
    closed: bool,
    /// The first write or flush error, reported by every later call.
    failure: Option<String>,
    line: Vec<u8>,
}

impl WriterState {
    fn flush(&mut self) {
        if self.failure.is_none()
            && let Err(error) = self.file.flush()
        {
            self.failure = Some(error.to_string());
        }
    }
}

impl HistoryWriter {
    /// Creates (or truncates) the history file and starts its background flusher.
    pub fn create(path: &Path) -> Result<Self, HistoryError> {
        let file = File::create(path).map_err(|source| HistoryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let state = Arc::new(Mutex::new(WriterState {
            file: BufWriter::with_capacity(64 * 1024, file),
            next_index: 0,
            closed: false,
            failure: None,
            line: Vec::with_capacity(256),
        }));
        let (stop_sender, stop_receiver) = mpsc::channel::<()>();
        let flusher_state = Arc::clone(&state);
        let flusher = std::thread::Builder::new()
            .name("history-flusher".to_string())
            .spawn(move || run_flusher(&flusher_state, &stop_receiver))
            .map_err(|source| HistoryError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            shared: Arc::new(Shared {
                path: path.to_path_buf(),
                started: Instant::now(),
                state,
                stop_flusher: Mutex::new(Some(stop_sender)),
                flusher: Mutex::new(Some(flusher)),
            }),
        })
    }

    /// The file this writer appends to.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Nanoseconds since the writer was created: the clock of every `time_ns` it writes, for
    /// files kept beside the history (e.g. leadership samples) that share its time axis.
    pub fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.shared.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Appends one operation and returns it as written (with `index` and `time_ns` set).
    pub fn record(
        &self,
        process: Process,
        op_type: OpType,
        f: &str,
        value: serde_json::Value,
    ) -> Result<Op, HistoryError> {
        let mut state = self.lock_state();
        if state.closed {
            return Err(HistoryError::Closed {
                path: self.shared.path.clone(),
            });
        }
        if let Some(reason) = &state.failure {
            return Err(self.poisoned(reason.clone()));
        }
        let op = Op {
            index: state.next_index,
            time_ns: self.elapsed_ns(),
            process,
            op_type,
            f: f.to_string(),
            value,
        };
        let WriterState { file, line, .. } = &mut *state;
        line.clear();
        if let Err(error) = serde_json::to_writer(&mut *line, &op) {
            // Serializing a `Value` cannot fail in practice; report it rather than panic.
            return Err(self.poisoned(error.to_string()));
        }
        line.push(b'\n');
        if let Err(error) = file.write_all(line) {
            state.failure = Some(error.to_string());
            return Err(self.poisoned(error.to_string()));
        }
        state.next_index += 1;
        Ok(op)
    }

    /// Flushes everything recorded so far to the file.
    pub fn flush(&self) -> Result<(), HistoryError> {
        let mut state = self.lock_state();
        state.flush();
        match &state.failure {
            Some(reason) => Err(self.poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    /// Flushes, stops the flusher and refuses further records. Idempotent.
    pub fn close(&self) -> Result<(), HistoryError> {
        {
            let mut state = self.lock_state();
            state.flush();
            state.closed = true;
        }
        if let Some(sender) = lock(&self.shared.stop_flusher).take() {
            drop(sender);
        }
        if let Some(flusher) = lock(&self.shared.flusher).take() {
            // The flusher only flushes; if it panicked there is nothing left to recover.
            let _ = flusher.join();
        }
        match &self.lock_state().failure {
            Some(reason) => Err(self.poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, WriterState> {
        lock(&self.shared.state)
    }

    fn poisoned(&self, reason: String) -> HistoryError {
        HistoryError::Poisoned {
            path: self.shared.path.clone(),
            reason,
        }
    }
}

impl fmt::Debug for HistoryWriter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("HistoryWriter")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        lock(&self.state).flush();
        if let Some(sender) = lock(&self.stop_flusher).take() {
            drop(sender);
        }
        if let Some(flusher) = lock(&self.flusher).take() {
            let _ = flusher.join();
        }
    }
}

/// A poisoned lock only means another thread panicked while holding it; the buffered file is
/// still usable, so we carry on with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn run_flusher(state: &Mutex<WriterState>, stop: &mpsc::Receiver<()>) {
    loop {
        match stop.recv_timeout(FLUSH_INTERVAL) {
            Err(RecvTimeoutError::Timeout) => lock(state).flush(),
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                lock(state).flush();
                return;
            }
        }
    }
}

/// Reads a history file back, one typed [`Op`] per non-empty line. A line that is not a valid
/// operation is an `Err` naming its line number; iteration can go on after it.
pub fn read_history(
    path: &Path,
) -> Result<impl Iterator<Item = Result<Op, HistoryError>>, HistoryError> {
    let file = File::open(path).map_err(|source| HistoryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let path = path.to_path_buf();
    let mut line_number = 0u64;
    let lines = BufReader::with_capacity(256 * 1024, file).lines();
    Ok(lines.filter_map(move |line| {
        line_number += 1;
        let line = match line {
            Ok(line) => line,
            Err(source) => {
                return Some(Err(HistoryError::Io {
                    path: path.clone(),
                    source,
                }));
            }
        };
        if line.trim().is_empty() {
            return None;
        }
        Some(
            serde_json::from_str::<Op>(&line).map_err(|error| HistoryError::Malformed {
                path: path.clone(),
                line: line_number,
                reason: error.to_string(),
            }),
        )
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn writes_the_documented_format_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let writer = HistoryWriter::create(&path).unwrap();
        let invoke = writer
            .record(
                Process::Client(3),
                OpType::Invoke,
                "send",
                json!({"key": "k7", "value": "3-17"}),
            )
            .unwrap();
        let fault = writer
            .record(
                Process::Nemesis,
                OpType::Info,
                "kill",
                json!({"node": "broker-2"}),
            )
            .unwrap();
        writer.close().unwrap();
        assert_eq!(invoke.index, 0);
        assert_eq!(fault.index, 1);
        assert!(fault.time_ns >= invoke.time_ns);

        let text = std::fs::read_to_string(&path).unwrap();
        let first_line = text.lines().next().unwrap();
        let expected_prefix = "{\"index\":0,\"time_ns\":";
        assert!(first_line.starts_with(expected_prefix), "{first_line}");
        assert!(
            first_line.ends_with(
                ",\"process\":3,\"type\":\"invoke\",\"f\":\"send\",\"value\":{\"key\":\"k7\",\"value\":\"3-17\"}}"
            ),
            "{first_line}"
        );
        assert!(text.contains("\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"kill\""));

        let ops: Vec<Op> = read_history(&path)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ops, vec![invoke, fault]);
        assert!(matches!(
            writer.record(Process::Client(1), OpType::Ok, "send", json!({})),
            Err(HistoryError::Closed { .. })
        ));
    }

    #[test]
    fn the_background_flusher_writes_without_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let writer = HistoryWriter::create(&path).unwrap();
        writer
            .record(Process::Client(1), OpType::Invoke, "poll", json!({}))
            .unwrap();
        let flushed = crate::wait::wait_for(
            "the flusher to write the line",
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                std::fs::read_to_string(&path)
                    .ok()
                    .filter(|text| text.ends_with('\n'))
            },
        );
        assert!(flushed.is_ok());
    }

    #[test]
    fn clones_on_many_threads_get_distinct_consecutive_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let writer = HistoryWriter::create(&path).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        writer
                            .record(Process::Client(thread), OpType::Invoke, "poll", json!({}))
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(writer);
        let ops: Vec<Op> = read_history(&path)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let indexes: Vec<u64> = ops.iter().map(|op| op.index).collect();
        assert_eq!(indexes, (0..1000).collect::<Vec<u64>>());
        assert!(
            ops.windows(2)
                .all(|pair| pair[0].time_ns <= pair[1].time_ns)
        );
    }

    #[test]
    fn the_writer_can_be_shared_between_threads_and_tasks() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<HistoryWriter>();
    }

    #[test]
    fn process_json_is_a_number_or_nemesis() {
        assert_eq!(serde_json::to_string(&Process::Client(7)).unwrap(), "7");
        assert_eq!(
            serde_json::to_string(&Process::Nemesis).unwrap(),
            "\"nemesis\""
        );
        assert_eq!(
            serde_json::from_str::<Process>("7").unwrap(),
            Process::Client(7)
        );
        assert!(serde_json::from_str::<Process>("-1").is_err());
        assert!(serde_json::from_str::<Process>("\"client\"").is_err());
    }

    #[test]
    fn a_malformed_line_names_its_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        std::fs::write(
            &path,
            "{\"index\":0,\"time_ns\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"poll\",\"value\":{}}\n\nnot json\n{\"index\":1,\"time_ns\":1,\"process\":\"nobody\",\"type\":\"ok\",\"f\":\"poll\",\"value\":{}}\n",
        )
        .unwrap();
        let results: Vec<_> = read_history(&path).unwrap().collect();
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok());
        assert!(matches!(
            results[1],
            Err(HistoryError::Malformed { line: 3, .. })
        ));
        assert!(matches!(
            &results[2],
            Err(HistoryError::Malformed { line: 4, reason, .. }) if reason.contains("nobody")
        ));
    }
}
