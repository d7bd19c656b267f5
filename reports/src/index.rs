//! `store/index.html`: every run under a store directory (`store/<workload>/<timestamp>/`),
//! newest first, with its workload, date, verdict, loss, p99 send latency and a link to its
//! report. A run whose results are missing or unreadable is listed as such, never skipped.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use checker::{AnomalyKind, Outcome, Results};

use crate::error::ReportError;
use crate::escape::{escape, href};
use crate::page::verdict;
use crate::plot::format_micros;
use crate::run_dir::{
    HISTORY_FILE, REPORT_FILE, RESULTS_FILE, WORKLOAD_FILE, read_results, read_workload,
    require_dir,
};

/// Runs listed, at most (the newest).
const RUNS_MAX: usize = 5_000;
/// The index's file name.
pub const INDEX_FILE: &str = "index.html";

struct Run {
    workload: String,
    name: String,
    results: Result<Option<Results>, String>,
    seed: Option<i64>,
    has_report: bool,
}

/// Writes `store_dir/index.html` and returns its path.
pub fn write_index(store_dir: &Path) -> Result<PathBuf, ReportError> {
    require_dir(store_dir)?;
    let mut runs = find_runs(store_dir)?;
    runs.sort_by(|a, b| {
        b.name
            .cmp(&a.name)
            .then_with(|| a.workload.cmp(&b.workload))
    });
    runs.truncate(RUNS_MAX);
    let html = render(&runs);
    let path = store_dir.join(INDEX_FILE);
    std::fs::write(&path, html).map_err(|source| ReportError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn read_dir(path: &Path) -> Result<Vec<std::fs::DirEntry>, ReportError> {
    let entries = std::fs::read_dir(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(entries.flatten().collect())
}

/// `store/<workload>/<run>/` directories holding a history or results (not the `latest` link).
fn find_runs(store_dir: &Path) -> Result<Vec<Run>, ReportError> {
    let mut runs = Vec::new();
    for workload in read_dir(store_dir)? {
        let workload_name = workload.file_name().to_string_lossy().into_owned();
        let is_link = workload.file_type().is_ok_and(|kind| kind.is_symlink());
        if workload_name.starts_with('.') || is_link || !workload.path().is_dir() {
            continue;
        }
        for run in read_dir(&workload.path())? {
            let dir = run.path();
            let is_link = run.file_type().is_ok_and(|kind| kind.is_symlink());
            if is_link || !(dir.join(HISTORY_FILE).is_file() || dir.join(RESULTS_FILE).is_file()) {
                continue;
            }
            let workload = read_workload(&dir.join(WORKLOAD_FILE)).ok().flatten();
            let seed = workload
                .as_ref()
                .and_then(|table| table.get("seed").and_then(toml::Value::as_integer));
            runs.push(Run {
                workload: workload_name.clone(),
                name: run.file_name().to_string_lossy().into_owned(),
                results: read_results(&dir.join(RESULTS_FILE)).map_err(|error| error.to_string()),
                seed,
                has_report: dir.join(REPORT_FILE).is_file(),
            });
        }
    }
    Ok(runs)
}

/// `20261125T154021.123Z` as `2026-11-25 15:40:21Z`; other names as they are.
fn readable_date(name: &str) -> String {
    let bytes = name.as_bytes();
    if bytes.len() >= 15 && bytes[8] == b'T' && name.is_char_boundary(15) {
        return format!(
            "{}-{}-{} {}:{}:{}Z",
            &name[0..4],
            &name[4..6],
            &name[6..8],
            &name[9..11],
            &name[11..13],
            &name[13..15]
        );
    }
    name.to_string()
}

fn render(runs: &[Run]) -> String {
    let mut html = String::with_capacity(16 * 1024 + runs.len() * 400);
    html.push_str(r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>kchaos runs</title><style>
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1f2328}
main{max-width:1200px;margin:0 auto;padding:18px 24px}
h1{font-size:22px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #d0d7de;padding:5px 10px;text-align:left}
th{background:#f6f8fa}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 9px;border-radius:999px;font-weight:700;font-size:12px;color:#fff}
.valid{background:#1a7f37}.invalid{background:#cf222e}.unknown{background:#9a6700}.not-checked{background:#6e7781}
.yes{color:#1a7f37;font-weight:600}.no{color:#cf222e;font-weight:700}
.lost{color:#cf222e;font-weight:700}
a{color:#0969da}
</style></head><body><main><h1>kchaos runs</h1>"#);
    let _ = write!(
        html,
        r#"<p>{} run{}, newest first.</p><table id="runs"><thead><tr><th>date</th><th>workload</th><th class="num">seed</th><th>verdict</th><th>expectation</th><th class="num">lost</th><th class="num">send p99</th><th>report</th></tr></thead><tbody>"#,
        runs.len(),
        if runs.len() == 1 { "" } else { "s" }
    );
    for run in runs {
        let relative = format!("{}/{}", run.workload, run.name);
        let (verdict_cell, expectation, lost, p99) = match &run.results {
            Ok(results) => {
                let (class, text) = verdict(results.as_ref());
                let expectation = match results.as_ref().map(Results::outcome) {
                    Some(Outcome::AsExpected) => {
                        r#"<span class="yes">as expected</span>"#.to_string()
                    }
                    Some(Outcome::Contradicted) => {
                        r#"<span class="no">contradicted</span>"#.to_string()
                    }
                    Some(Outcome::ProvesNothing) => {
                        r#"<span class="no">proves nothing (no send acknowledged)</span>"#
                            .to_string()
                    }
                    None => "—".to_string(),
                };
                let lost = results.as_ref().map_or("—".to_string(), |results| {
                    match results.count(AnomalyKind::Lost) {
                        0 => "0".to_string(),
                        count => format!(r#"<span class="lost">{count}</span>"#),
                    }
                });
                let p99 = results
                    .as_ref()
                    .and_then(|results| results.operations.get("send"))
                    .filter(|send| send.ok > 0)
                    .map_or("—".to_string(), |send| format_micros(send.latency_us.p99));
                (
                    format!(r#"<span class="badge {class}">{text}</span>"#),
                    expectation,
                    lost,
                    p99,
                )
            }
            Err(error) => (
                format!(
                    r#"<span class="badge unknown" title="{}">UNREADABLE</span>"#,
                    escape(error)
                ),
                "—".to_string(),
                "—".to_string(),
                "—".to_string(),
            ),
        };
        let link = if run.has_report {
            format!(
                r#"<a href="{}">report</a>"#,
                escape(&href(&format!("{relative}/{REPORT_FILE}")))
            )
        } else {
            format!(r#"<a href="{}/">files</a>"#, escape(&href(&relative)))
        };
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td>{}</td><td class="num">{}</td><td>{verdict_cell}</td><td>{expectation}</td><td class="num">{lost}</td><td class="num">{p99}</td><td>{link}</td></tr>"#,
            escape(&readable_date(&run.name)),
            escape(&run.workload),
            run.seed.map_or(String::new(), |seed| seed.to_string()),
        );
    }
    html.push_str("</tbody></table></main></body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_timestamps_read_as_dates() {
        assert_eq!(
            readable_date("20261125T154021.123Z"),
            "2026-11-25 15:40:21Z"
        );
        assert_eq!(readable_date("my-run"), "my-run");
    }
}
