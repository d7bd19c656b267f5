//! Turns a kchaos run directory (history.jsonl, results.json, workload.toml, node logs, and an
//! optional leadership.jsonl) into one self-contained HTML report; lists a store's runs in an
//! index; writes a run's checks as JUnit XML. It reads files only; it never talks to a cluster.
//! It depends on the `history` crate (the history's reader) and the `checker` crate (the types of
//! `results.json` and the pass rule) and on nothing else of ours: no tokio, no librdkafka.
//!
//! # Layout
//! - [`error`]: [`ReportError`], naming the file that was missing or malformed.
//! - [`run_dir`]: a run directory, loaded.
//! - [`history_scan`]: one streaming pass over the history (points, rates, faults, loss), through
//!   the history crate's reader.
//! - [`faults`]: nemesis operations into fault windows.
//! - [`leadership`]: `leadership.jsonl` into leader/ISR segments per partition.
//! - [`plot`]: the shared time axis, scales, formats and colours.
//! - [`charts`]: the SVG charts.
//! - [`page`]: the report page.
//! - [`index`]: the store's `index.html`.
//! - [`junit`]: the JUnit checks, `results.xml`.
//! - [`escape`]: HTML/XML escaping.

pub mod charts;
pub mod error;
pub mod escape;
pub mod faults;
pub mod history_scan;
pub mod index;
pub mod junit;
pub mod leadership;
pub mod page;
pub mod plot;
pub mod run_dir;

use std::path::{Path, PathBuf};

pub use error::ReportError;
pub use index::write_index;
pub use junit::write_junit;

/// Everything for one finished run: `report.html`, and `results.xml` when the run was checked
/// (has a `results.json`). Returns the paths written. What the harness calls after each run,
/// with [`write_index`] on the store.
pub fn write_run(run_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = vec![write_report(run_dir)?];
    if run_dir.join(run_dir::RESULTS_FILE).is_file() {
        written.push(write_junit(run_dir)?);
    }
    Ok(written)
}

/// Writes `report.html` into `run_dir` and returns its path. The run directory must hold a
/// `history.jsonl`; without `results.json` the report still renders, as "not checked".
pub fn write_report(run_dir: &Path) -> Result<PathBuf, ReportError> {
    let run = run_dir::load_run(run_dir)?;
    let html = page::render(&run);
    let path = run_dir.join(run_dir::REPORT_FILE);
    std::fs::write(&path, html).map_err(|source| ReportError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
