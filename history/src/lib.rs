//! The history of a run: `history.jsonl`, one operation per line, in Jepsen's model (an `invoke`
//! followed by exactly one completion, `ok`, `fail` or `info`; faults are operations of the
//! `nemesis`). The format is documented in docs/checker.md. This crate is the only code that
//! writes or reads it: the harness records through [`HistoryWriter`]; the checker, the reports and
//! the tests read through [`HistoryReader`] (or [`read_history`] for whole [`Op`]s). It knows
//! nothing of clusters, clients or verdicts, and needs neither tokio nor librdkafka.
//!
//! ```text
//! {"index":0,"time_ns":1200311,"process":3,"type":"invoke","f":"send","value":{"key":"k7","value":"3-17"}}
//! {"index":1,"time_ns":3400121,"process":3,"type":"ok","f":"send","value":{"key":"k7","value":"3-17","partition":1,"offset":40}}
//! {"index":2,"time_ns":3500000,"process":"nemesis","type":"info","f":"kill","value":{"node":"broker-2","why":"leader of t-1"}}
//! ```
//!
//! # Layout
//! - [`op`]: the operation types ([`Process`], [`OpType`], [`Op`]).
//! - [`error`]: [`HistoryError`], naming the file and the line.
//! - [`writer`]: [`HistoryWriter`], the one writer (a buffered file and a background flusher).
//! - [`line`]: one line as a typed, borrowed view ([`Line`], [`Fields`], [`ValueText`]).
//! - `scan`: the fast path of the reader, a scanner for the exact layout the writer emits.
//! - [`reader`]: [`HistoryReader`], the one streaming reader, and [`read_history`].

pub mod error;
pub mod line;
pub mod op;
pub mod reader;
mod scan;
pub mod writer;

pub use error::HistoryError;
pub use line::{Fields, Grudge, Line, OpName, Record, Text, ValueId, ValueName, ValueText};
pub use op::{Op, OpType, Process};
pub use reader::{HistoryReader, Item, read_history, read_lines};
pub use writer::{FLUSH_INTERVAL, HistoryWriter};
