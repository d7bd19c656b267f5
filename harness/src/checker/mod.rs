//! The checker: a history in, a verdict out. Pure (it reads `history.jsonl` and nothing else, so
//! it judges a history from any Kafka-protocol cluster alike), streaming (one pass over the
//! file, linear time, memory proportional to the number of distinct values) and total (it never
//! panics: a history it cannot read gives `valid: "unknown"` naming the line and the reason).
//! The definitions it implements are in CHECKER.md.
//!
//! # Layout
//! - [`results`]: the verdict, expectations, anomalies and figures (results.json).
//! - `parse`: one history line into a borrowed, typed view (no `serde_json::Value`).
//! - `scan`: the fast path of `parse`, a scanner for the exact layout the writer emits.
//! - `values`: compact value ids and the (partition, offset) table.
//! - `analysis`: the single pass and the final walk over the values.
//! - `figures`: latency, throughput, unavailability after faults, the per-second timeline.

mod analysis;
mod figures;
mod parse;
pub mod results;
mod scan;
mod values;

#[cfg(test)]
mod tests;

use std::io::BufRead;
use std::path::Path;

pub use results::{
    Anomaly, AnomalyKind, Example, Expectations, FaultFigures, FinalReadSummary, LatencyMicros,
    LostExpectation, Malformed, OperationFigures, Results, SecondCounts, Strictness, Totals,
    Validity,
};

use analysis::Analysis;

/// Size of the read buffer: large reads keep the per-line cost low.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// Checks the history at `path`. Never panics; a file that cannot be opened or read gives
/// `valid: "unknown"` with the reason.
pub fn check_history_file(path: &Path, expectations: &Expectations) -> Results {
    match std::fs::File::open(path) {
        Ok(file) => check_history(
            std::io::BufReader::with_capacity(READ_BUFFER_BYTES, file),
            expectations,
        ),
        Err(error) => {
            let mut analysis = Analysis::new(expectations);
            analysis.malformed_at(0, format!("cannot open {}: {error}", path.display()));
            analysis.finish()
        }
    }
}

/// Checks a history read from `reader` (JSON lines). Never panics.
pub fn check_history<R: BufRead>(reader: R, expectations: &Expectations) -> Results {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut analysis = Analysis::new(expectations);
        feed_lines(reader, &mut analysis);
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

/// Feeds every line of `reader` to `analysis`, reusing one line buffer.
fn feed_lines<R: BufRead>(mut reader: R, analysis: &mut Analysis) {
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                analysis.feed_line(text);
            }
            Err(error) => {
                analysis.malformed_at(0, format!("reading the history failed: {error}"));
                return;
            }
        }
    }
}
