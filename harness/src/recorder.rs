//! The one handle every client and the nemesis share during a run: it writes operations to the
//! history and keeps the live counters the progress line shows. A history that cannot be written
//! makes the run unusable, so the first write error is kept and reported at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use history::{HistoryWriter, Op, OpType, Process};
use serde_json::Value;

use crate::lock::lock;

/// Live counts of a run, for the progress line and the summary.
#[derive(Debug, Default)]
pub struct Counters {
    pub sends_ok: AtomicU64,
    pub sends_fail: AtomicU64,
    pub sends_info: AtomicU64,
    pub polls: AtomicU64,
    pub records_polled: AtomicU64,
    pub faults: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub sends_ok: u64,
    pub sends_fail: u64,
    pub sends_info: u64,
    pub polls: u64,
    pub records_polled: u64,
    pub faults: u64,
}

/// History writer plus counters; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    history: HistoryWriter,
    counters: Arc<Counters>,
    current_fault: Arc<Mutex<Option<String>>>,
    first_error: Arc<Mutex<Option<String>>>,
}

impl Recorder {
    pub fn new(history: HistoryWriter) -> Self {
        Recorder {
            history,
            counters: Arc::default(),
            current_fault: Arc::default(),
            first_error: Arc::default(),
        }
    }

    /// Nanoseconds on the history's clock (see [`HistoryWriter::elapsed_ns`]).
    pub fn elapsed_ns(&self) -> u64 {
        self.history.elapsed_ns()
    }

    /// Records one operation; a write error is kept (see [`Recorder::first_error`]) and `None`
    /// returned. Completions of sends update the counters.
    pub fn record(&self, process: Process, op_type: OpType, f: &str, value: Value) -> Option<Op> {
        if f == "send" {
            let counter = match op_type {
                OpType::Ok => Some(&self.counters.sends_ok),
                OpType::Fail => Some(&self.counters.sends_fail),
                OpType::Info => Some(&self.counters.sends_info),
                OpType::Invoke => None,
            };
            if let Some(counter) = counter {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        match self.history.record(process, op_type, f, value) {
            Ok(op) => Some(op),
            // A completion that arrives after the run closed its history is dropped: the
            // history already has its invoke, which the checker reads as indeterminate.
            Err(history::HistoryError::Closed { .. }) => None,
            Err(error) => {
                let mut first = lock(&self.first_error);
                if first.is_none() {
                    tracing::error!("history: {error}");
                    *first = Some(error.to_string());
                }
                None
            }
        }
    }

    /// Counts one poll that returned `records` records.
    pub fn count_poll(&self, records: usize) {
        self.counters.polls.fetch_add(1, Ordering::Relaxed);
        self.counters
            .records_polled
            .fetch_add(records as u64, Ordering::Relaxed);
    }

    /// Sets (or clears) the fault the progress line shows.
    pub fn set_current_fault(&self, fault: Option<String>) {
        if fault.is_some() {
            self.counters.faults.fetch_add(1, Ordering::Relaxed);
        }
        *lock(&self.current_fault) = fault;
    }

    pub fn current_fault(&self) -> Option<String> {
        lock(&self.current_fault).clone()
    }

    pub fn counters(&self) -> CountersSnapshot {
        let c = &self.counters;
        CountersSnapshot {
            sends_ok: c.sends_ok.load(Ordering::Relaxed),
            sends_fail: c.sends_fail.load(Ordering::Relaxed),
            sends_info: c.sends_info.load(Ordering::Relaxed),
            polls: c.polls.load(Ordering::Relaxed),
            records_polled: c.records_polled.load(Ordering::Relaxed),
            faults: c.faults.load(Ordering::Relaxed),
        }
    }

    /// The first history write error, if any.
    pub fn first_error(&self) -> Option<String> {
        lock(&self.first_error).clone()
    }

    /// Flushes and closes the history; later records are refused (and ignored).
    pub fn close(&self) -> Result<(), history::HistoryError> {
        self.history.close()
    }
}
