//! The checker: a history in, a verdict out. Pure (it reads `history.jsonl` and nothing else, so
//! it judges a history from any Kafka-protocol cluster alike), streaming (one pass over the
//! file, linear time, memory proportional to the number of distinct values) and total (it never
//! panics: a history it cannot read gives `valid: "unknown"` naming the line and the reason).
//! The definitions it implements are in docs/checker.md. It reads through the `history` crate's
//! streaming reader and depends on nothing else of ours: no cluster, no client, no tokio.
//!
//! # Layout
//! - [`results`]: the verdict, expectations, anomalies and figures (results.json), and the one
//!   pass rule, [`Outcome::decide`].
//! - `pipeline`: reading and parsing (the `history` crate's reader) on one thread, the analysis
//!   on another.
//! - `values`: compact value ids and the (partition, offset) table.
//! - `analysis`: the single pass (its state and the dispatch of each line) and the final walk
//!   over the values; split by what it looks at: `analysis/sends.rs` (sends and
//!   acknowledgements), `analysis/reads.rs` (polls and final reads), `analysis/verdict.rs`
//!   (end-of-run checks and the results).
//! - `figures`: latency, throughput, unavailability after faults, the per-second timeline.
//! - `availability`: stretches without an acknowledged send, per partition (`unavailable`).

mod analysis;
mod availability;
mod figures;
mod pipeline;
pub mod results;
mod values;

#[cfg(test)]
mod group_tests;
#[cfg(test)]
mod tests;

use std::io::Read;
use std::path::Path;

pub use results::{
    AcknowledgedSendsExpectation, Anomaly, AnomalyKind, Detection, Example, Expectations,
    FaultFigures, FinalReadSummary, LatencyMicros, LostExpectation, Malformed, OperationFigures,
    Outcome, Results, SecondCounts, Strictness, Totals, Validity,
};

use analysis::Analysis;

/// How the checker reads a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reading {
    /// Read and parse on a second thread while the analysis runs (the default: about twice as
    /// fast when two cores are free).
    #[default]
    TwoThreads,
    /// Everything on the caller's thread (less CPU time in all; better on a busy machine).
    OneThread,
}

/// Checks the history at `path`. Never panics; a file that cannot be opened or read gives
/// `valid: "unknown"` with the reason.
pub fn check_history_file(path: &Path, expectations: &Expectations) -> Results {
    check_history_file_with(path, expectations, Reading::default())
}

/// [`check_history_file`], choosing how to read.
pub fn check_history_file_with(
    path: &Path,
    expectations: &Expectations,
    reading: Reading,
) -> Results {
    match std::fs::File::open(path) {
        Ok(file) => check_history_with(file, expectations, reading),
        Err(error) => {
            let mut analysis = Analysis::new(expectations);
            analysis.malformed_at(0, format!("cannot open {}: {error}", path.display()));
            analysis.finish()
        }
    }
}

/// Does only the reader thread's work on the history at `path` (read, parse, turn values into
/// ids) and returns how many lines it has: the first of the checker's two stages alone, for
/// benchmarks.
pub fn parse_history_file(path: &Path) -> std::io::Result<u64> {
    pipeline::read_only(std::fs::File::open(path)?)
}

/// Checks a history read from `reader` (JSON lines). Never panics.
pub fn check_history<R: Read + Send>(reader: R, expectations: &Expectations) -> Results {
    check_history_with(reader, expectations, Reading::default())
}

/// [`check_history`], choosing how to read.
pub fn check_history_with<R: Read + Send>(
    reader: R,
    expectations: &Expectations,
    reading: Reading,
) -> Results {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut analysis = Analysis::new(expectations);
        match reading {
            Reading::TwoThreads => {
                pipeline::run(reader, &mut analysis, history::reader::READ_BUFFER_BYTES);
            }
            Reading::OneThread => {
                history::read_lines(reader, history::reader::READ_BUFFER_BYTES, |item| {
                    analysis.feed(&item);
                    true
                });
            }
        }
        analysis.finish()
    }));
    outcome.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let mut analysis = Analysis::new(expectations);
        analysis.malformed_at(0, format!("the checker failed: {message}"));
        analysis.finish()
    })
}
