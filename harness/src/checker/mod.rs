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

use std::io::Read;
use std::path::Path;

pub use results::{
    Anomaly, AnomalyKind, Example, Expectations, FaultFigures, FinalReadSummary, LatencyMicros,
    LostExpectation, Malformed, OperationFigures, Results, SecondCounts, Strictness, Totals,
    Validity,
};

use analysis::Analysis;

/// Size of the read buffer: large reads keep the per-line cost low.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// The longest line the checker reads (a final read of tens of millions of records).
const LINE_BYTES_MAX: usize = 1 << 31;

/// Checks the history at `path`. Never panics; a file that cannot be opened or read gives
/// `valid: "unknown"` with the reason.
pub fn check_history_file(path: &Path, expectations: &Expectations) -> Results {
    match std::fs::File::open(path) {
        Ok(file) => check_history(file, expectations),
        Err(error) => {
            let mut analysis = Analysis::new(expectations);
            analysis.malformed_at(0, format!("cannot open {}: {error}", path.display()));
            analysis.finish()
        }
    }
}

/// Checks a history read from `reader` (JSON lines). Never panics.
pub fn check_history<R: Read>(reader: R, expectations: &Expectations) -> Results {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut analysis = Analysis::new(expectations);
        feed_lines(reader, &mut analysis, READ_BUFFER_BYTES);
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

/// Feeds every line of `reader` to `analysis` straight from a read buffer: lines in the
/// writer's layout are scanned in place (the scanner finds their end), any other line is cut
/// at its line break and parsed on its own. The buffer grows to hold the longest line (a final
/// read of a large partition is one line), up to [`LINE_BYTES_MAX`].
fn feed_lines<R: Read>(mut reader: R, analysis: &mut Analysis, buffer_bytes: usize) {
    let mut buffer = vec![0u8; buffer_bytes.max(1)];
    let (mut start, mut end, mut at_end) = (0, 0, false);
    loop {
        while start < end {
            let window = &buffer[start..end];
            if let Some(consumed) = analysis.feed_scanned(window, at_end) {
                start += consumed;
                continue;
            }
            match window.iter().position(|byte| *byte == b'\n') {
                Some(newline) => {
                    analysis.feed_line(&window[..newline]);
                    start += newline + 1;
                }
                None if at_end => {
                    analysis.feed_line(window);
                    start = end;
                }
                None => break,
            }
        }
        if at_end {
            return;
        }
        buffer.copy_within(start..end, 0);
        end -= start;
        start = 0;
        if end == buffer.len() {
            if buffer.len() >= LINE_BYTES_MAX {
                analysis.malformed_at(
                    0,
                    format!("a line longer than {LINE_BYTES_MAX} bytes; stopped reading"),
                );
                return;
            }
            buffer.resize(buffer.len() * 2, 0);
        }
        match reader.read(&mut buffer[end..]) {
            Ok(0) => at_end = true,
            Ok(read) => end += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                analysis.malformed_at(0, format!("reading the history failed: {error}"));
                return;
            }
        }
    }
}
