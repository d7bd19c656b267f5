//! [`HistoryWriter`]: the one writer of `history.jsonl`, which every client and the nemesis
//! append to while a run goes on (and the checker's benchmark uses to generate histories). It
//! writes the documented layout (docs/checker.md) that the reader's scanner expects:
//!
//! ```text
//! {"index":0,"time_ns":1200311,"process":3,"type":"invoke","f":"send","value":{"key":"k7","value":"3-17"}}
//! {"index":2,"time_ns":3500000,"process":"nemesis","type":"info","f":"kill","value":{"node":"broker-2"}}
//! ```

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::HistoryError;
use crate::op::{Op, OpType, Process};

/// How often the background flusher pushes buffered operations to the file.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

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

/// One line as written: the fields of an [`Op`] in its order, with the value borrowed.
#[derive(Serialize)]
struct OpLine<'a, V> {
    index: u64,
    time_ns: u64,
    process: Process,
    #[serde(rename = "type")]
    op_type: OpType,
    f: &'a str,
    value: &'a V,
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
        let (index, time_ns) = self.append(None, process, op_type, f, &value)?;
        Ok(Op {
            index,
            time_ns,
            process,
            op_type,
            f: f.to_string(),
            value,
        })
    }

    /// Appends one operation at `time_ns` of the caller's clock, with a value of any
    /// serializable type, and returns its `index`: for histories generated rather than
    /// recorded (benchmarks, tests), which must keep `time_ns` from going back themselves.
    pub fn record_at<V: Serialize>(
        &self,
        time_ns: u64,
        process: Process,
        op_type: OpType,
        f: &str,
        value: &V,
    ) -> Result<u64, HistoryError> {
        self.append(Some(time_ns), process, op_type, f, value)
            .map(|(index, _)| index)
    }

    /// Writes one line (at `time_ns`, or now on the writer's clock) under the lock; returns
    /// its index and time.
    fn append<V: Serialize>(
        &self,
        time_ns: Option<u64>,
        process: Process,
        op_type: OpType,
        f: &str,
        value: &V,
    ) -> Result<(u64, u64), HistoryError> {
        let mut state = self.lock_state();
        if state.closed {
            return Err(HistoryError::Closed {
                path: self.shared.path.clone(),
            });
        }
        if let Some(reason) = &state.failure {
            return Err(self.poisoned(reason.clone()));
        }
        let op = OpLine {
            index: state.next_index,
            time_ns: time_ns.unwrap_or_else(|| self.elapsed_ns()),
            process,
            op_type,
            f,
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
        Ok((op.index, op.time_ns))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::reader::read_history;
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
        // Awaits the condition (the flusher's line on disk) for at most 5 s.
        let deadline = Instant::now() + Duration::from_secs(5);
        let flushed = loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.ends_with('\n') || Instant::now() >= deadline {
                break text;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(flushed.ends_with('\n'), "{flushed:?}");
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
    fn generated_lines_are_the_same_layout_at_the_callers_times() {
        #[derive(Serialize)]
        struct Send<'a> {
            key: &'a str,
            value: &'a str,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let writer = HistoryWriter::create(&path).unwrap();
        let send = Send {
            key: "k7",
            value: "3-17",
        };
        let index = writer
            .record_at(1_200_311, Process::Client(3), OpType::Invoke, "send", &send)
            .unwrap();
        writer.close().unwrap();
        assert_eq!(index, 0);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"index\":0,\"time_ns\":1200311,\"process\":3,\"type\":\"invoke\",\"f\":\"send\",\"value\":{\"key\":\"k7\",\"value\":\"3-17\"}}\n"
        );
    }
}
