//! The report page: one self-contained HTML file (inline CSS and SVG, no scripts, nothing from
//! the network) with, top to bottom, the verdict and configuration, loss, the timeline charts
//! on one time axis (latency, throughput, fault windows, leadership), the other anomalies, the
//! consumer group's rebalances (when there is one), the unavailability after each fault, latency
//! percentiles, and links to the raw files.
//!
//! - `header`: verdict, expectation, summary figures, the workload's configuration.
//! - `anomalies`: loss per partition and the first lost sends, then every other anomaly.
//! - `timeline`: the charts on one time axis, and the leadership lanes.
//! - `group`: the consumer group's members, rebalances and commits.
//! - `tables`: fault windows, unavailability, latency percentiles, links to the files.
//! - `style.css`: the page's inline style.

mod anomalies;
mod group;
mod header;
mod tables;
mod timeline;

use checker::{Results, Validity};
use std::fmt::Write;

use crate::escape::escape;
use crate::faults::fault_windows;
use crate::plot::TimeAxis;
use crate::run_dir::RunData;

const STYLE: &str = include_str!("style.css");

/// The whole page for a loaded run.
pub fn render(run: &RunData) -> String {
    let scan = &run.history;
    let axis = TimeAxis::new(0, scan.last_ns);
    let faults = fault_windows(&scan.nemesis, scan.last_ns);
    let mut page = String::with_capacity(256 * 1024);
    let (verdict_class, verdict_text) = verdict(run.results.as_ref());
    let _ = write!(
        page,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{} — {} — kchaos</title><style>{STYLE}</style></head><body><main>"#,
        escape(&run.workload_name),
        verdict_text
    );
    header::header(&mut page, run, verdict_class, verdict_text, &faults);
    let group_link = if scan.groups.members > 0 {
        r##"<a href="#group">Group</a>"##
    } else {
        ""
    };
    let _ = write!(
        page,
        r##"<nav><a href="#loss">Loss</a><a href="#timeline">Timeline</a><a href="#leadership">Leadership</a><a href="#anomalies">Anomalies</a>{group_link}<a href="#faults">Faults</a><a href="#latency">Latency</a><a href="#files">Files</a></nav>"##
    );
    anomalies::loss_section(&mut page, run, &faults);
    timeline::timeline_section(&mut page, run, &faults, &axis);
    timeline::leadership_section(&mut page, run, &faults, &axis);
    anomalies::anomalies_section(&mut page, run.results.as_ref());
    group::group_section(&mut page, run, &faults);
    tables::faults_section(&mut page, run, &faults);
    tables::latency_section(&mut page, run);
    tables::files_section(&mut page, run);
    let _ = writeln!(
        page,
        "<footer>Written by <code>kchaos report</code> from <code>{}</code>: {} operations{}.</footer></main></body></html>",
        escape(&run.dir.display().to_string()),
        scan.operations,
        if scan.truncated_last_line {
            "; the history's last line was cut short and skipped"
        } else {
            ""
        }
    );
    page
}

/// The verdict badge's class and text.
pub fn verdict(results: Option<&Results>) -> (&'static str, &'static str) {
    match results.map(|results| results.valid) {
        Some(Validity::True) => ("valid", "VALID"),
        Some(Validity::False) => ("invalid", "INVALID"),
        Some(Validity::Unknown) => ("unknown", "UNKNOWN"),
        None => ("not-checked", "NOT CHECKED"),
    }
}
