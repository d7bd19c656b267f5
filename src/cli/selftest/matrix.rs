//! The selftest's pages: `index.html`, the matrix of planted bugs against the workloads that
//! should catch them (one cell per workload, one mark per seed, each linking to that run's
//! report), with the figures on top (caught of testable, median and worst time to detection)
//! and the control runs below; and `results.xml`, one JUnit test case per bug (failed when
//! missed, skipped when it awaits a fault family) and per control run. Self-contained HTML,
//! inline CSS, no script.

use std::fmt::Write;

use reports::escape::{escape, href};

use super::record::{BugOutcome, BugStatus, RunRecord, Selftest, Verdict, format_ms};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.35em .6em;\
vertical-align:top;text-align:left}th{background:#f4f4f4}.caught{color:#1a7f37}\
.missed,.false-alarm,.error{color:#c62828;font-weight:600}.unknown{color:#9a6700}\
.awaiting{color:#666}.figures span{display:inline-block;margin-right:2em;font-size:1.2em}\
.muted{color:#666}code{font-size:.95em}td.models{max-width:32em}";

/// The matrix page.
pub fn render(selftest: &Selftest) -> String {
    let mut page = String::with_capacity(16 * 1024);
    let figures = &selftest.figures;
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>kchaos selftest \
         {}</title><style>{STYLE}</style></head><body><h1>kchaos selftest ({} mode)</h1>",
        escape(&selftest.started),
        escape(&selftest.mode)
    );
    let verdict = if selftest.passed() {
        "<span class=\"caught\">every testable planted bug caught</span>".to_string()
    } else {
        let missed = selftest.missed();
        format!(
            "<span class=\"missed\">FAILED: {}{}{}</span>",
            if missed.is_empty() {
                String::new()
            } else {
                format!("missed {}", escape(&missed.join(", ")))
            },
            if selftest.failed_controls().is_empty() {
                ""
            } else {
                "; a control run failed"
            },
            if selftest.interrupted {
                "; interrupted"
            } else {
                ""
            }
        )
    };
    let _ = write!(
        page,
        "<p id=\"verdict\">{verdict}</p><p class=\"figures\"><span id=\"caught\">caught \
         <b>{}/{}</b></span><span id=\"median\">median time to detection <b>{}</b></span>\
         <span id=\"worst\">worst <b>{}</b></span><span>awaiting a fault family <b>{}</b></span>\
         <span>controls passed <b>{}/{}</b></span></p><p class=\"muted\">Seeds {:?}. Time to \
         detection: from the first fault to the earliest operation of the first anomaly, in the \
         first run that caught the bug (0 when that operation began before the fault).</p>",
        figures.caught,
        figures.testable,
        optional_ms(figures.median_time_to_detection_ms),
        optional_ms(figures.worst_time_to_detection_ms),
        figures.awaiting,
        figures.controls_passed,
        figures.controls,
        selftest.seeds
    );
    page.push_str(
        "<table id=\"matrix\"><thead><tr><th>planted bug</th><th>models</th><th>faults</th>\
         <th>workloads and seeds</th><th>status</th><th>first seed</th><th>first anomaly</th>\
         <th>time to detection</th></tr></thead><tbody>",
    );
    for outcome in &selftest.bugs {
        bug_row(&mut page, outcome, &selftest.runs);
    }
    page.push_str("</tbody></table>");
    if !selftest.controls.is_empty() {
        page.push_str(
            "<h2>Controls</h2><p class=\"muted\">Each workload with no planted bug: it must \
             pass, or a catch above could be a false alarm.</p><table id=\"controls\"><thead>\
             <tr><th>workload</th><th>seed</th><th>verdict</th><th>reasons</th></tr></thead>\
             <tbody>",
        );
        for run in &selftest.controls {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&run.workload),
                run.seed,
                mark(run),
                escape(&run.reasons.join("; "))
            );
        }
        page.push_str("</tbody></table>");
    }
    page.push_str("</body></html>\n");
    page
}

fn bug_row(page: &mut String, outcome: &BugOutcome, runs: &[RunRecord]) {
    let bug = &outcome.bug;
    let _ = write!(
        page,
        "<tr id=\"bug-{}\"><td><code>{}</code><br><span class=\"muted\">{}</span></td>\
         <td class=\"models\">{}</td><td>{}</td><td>",
        escape(&bug.name),
        escape(&bug.name),
        escape(&bug.component),
        escape(&bug.models),
        escape(&bug.faults.join(", "))
    );
    if let Some(awaiting) = &bug.awaiting {
        let _ = write!(
            page,
            "<span class=\"awaiting\">awaiting {}</span>",
            escape(awaiting)
        );
    }
    for workload in &bug.workloads {
        let cell: Vec<&RunRecord> = runs
            .iter()
            .filter(|run| {
                run.bug.as_deref() == Some(bug.name.as_str()) && &run.workload == workload
            })
            .collect();
        let _ = write!(page, "<div><code>{}</code> ", escape(workload));
        if cell.is_empty() {
            page.push_str("<span class=\"muted\">not run</span>");
        }
        for run in cell {
            page.push_str(&mark(run));
            page.push(' ');
        }
        page.push_str("</div>");
    }
    let (class, status) = match outcome.status {
        BugStatus::Caught => (
            "caught",
            format!("caught ({}/{} runs)", outcome.caught_runs, outcome.runs),
        ),
        BugStatus::Missed => ("missed", format!("MISSED (0/{} runs)", outcome.runs)),
        BugStatus::Awaiting => ("awaiting", "awaiting".to_string()),
    };
    let first = outcome.first_catch.as_ref();
    let _ = write!(
        page,
        "</td><td class=\"{class}\">{status}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        first.map_or(String::new(), |run| run.seed.to_string()),
        first.and_then(|run| run.first_anomaly.as_deref()).map_or(
            String::new(),
            |anomaly| format!("<code>{}</code>", escape(anomaly))
        ),
        optional_ms(first.and_then(|run| run.time_to_detection_ms)),
    );
}

/// One run as a linked mark: `✓1` caught with seed 1, `✗2` missed with seed 2, ...
fn mark(run: &RunRecord) -> String {
    let (class, symbol) = match run.verdict {
        Verdict::Caught | Verdict::Passed => ("caught", "✓"),
        Verdict::Missed => ("missed", "✗"),
        Verdict::Unknown => ("unknown", "?"),
        Verdict::FalseAlarm => ("false-alarm", "✗"),
        Verdict::Error => ("error", "!"),
    };
    let mut title = format!("seed {}: {}", run.seed, run.verdict.name());
    if let Some(anomaly) = &run.first_anomaly {
        let _ = write!(title, ", first {anomaly}");
    }
    if let Some(ms) = run.time_to_detection_ms {
        let _ = write!(title, " {} after the first fault", format_ms(ms));
    }
    if !run.reasons.is_empty() {
        let _ = write!(title, " ({})", run.reasons.join("; "));
    }
    let text = format!("{symbol}{}", run.seed);
    match &run.run_dir {
        Some(dir) => format!(
            "<a class=\"{class}\" title=\"{}\" href=\"{}\">{text}</a>",
            escape(&title),
            escape(&href(&format!("{}/report.html", dir.display())))
        ),
        None => format!(
            "<span class=\"{class}\" title=\"{}\">{text}</span>",
            escape(&title)
        ),
    }
}

fn optional_ms(ms: Option<u64>) -> String {
    ms.map_or("—".to_string(), format_ms)
}

/// `results.xml`: one test case per planted bug and per control run.
pub fn junit(selftest: &Selftest) -> String {
    let mut cases = String::new();
    let mut failures = 0;
    let mut skipped = 0;
    for outcome in &selftest.bugs {
        let name = escape(&outcome.bug.name);
        let _ = write!(
            cases,
            "<testcase classname=\"kchaos.selftest.planted\" name=\"{name}\">"
        );
        match outcome.status {
            BugStatus::Caught => {
                if let Some(run) = &outcome.first_catch {
                    let _ = write!(
                        cases,
                        "<system-out>caught by {} seed {}: {} after {}</system-out>",
                        escape(&run.workload),
                        run.seed,
                        escape(run.first_anomaly.as_deref().unwrap_or("an anomaly")),
                        optional_ms(run.time_to_detection_ms)
                    );
                }
            }
            BugStatus::Missed => {
                failures += 1;
                let _ = write!(
                    cases,
                    "<failure message=\"planted bug {name} was not caught by {} ({} runs)\"/>",
                    escape(&outcome.bug.workloads.join(", ")),
                    outcome.runs
                );
            }
            BugStatus::Awaiting => {
                skipped += 1;
                let _ = write!(
                    cases,
                    "<skipped message=\"awaiting {}\"/>",
                    escape(outcome.bug.awaiting.as_deref().unwrap_or(""))
                );
            }
        }
        cases.push_str("</testcase>");
    }
    for run in &selftest.controls {
        let _ = write!(
            cases,
            "<testcase classname=\"kchaos.selftest.control\" name=\"{} seed {}\">",
            escape(&run.workload),
            run.seed
        );
        if run.verdict != Verdict::Passed {
            failures += 1;
            let _ = write!(
                cases,
                "<failure message=\"{}: {}\"/>",
                run.verdict.name(),
                escape(&run.reasons.join("; "))
            );
        }
        cases.push_str("</testcase>");
    }
    let tests = selftest.bugs.len() + selftest.controls.len();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites><testsuite name=\"kchaos \
         selftest ({})\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\">{cases}\
         </testsuite></testsuites>\n",
        escape(&selftest.mode)
    )
}

#[cfg(test)]
mod tests {
    use super::super::record::tests::example;
    use super::*;

    #[test]
    fn the_matrix_links_every_run_and_shows_the_figures() {
        let selftest = example();
        let page = render(&selftest);
        assert!(page.contains("FAILED: missed c"), "{page}");
        assert!(page.contains("caught <b>2/3</b>"), "{page}");
        assert!(
            page.contains("median time to detection <b>1.0 s</b>"),
            "{page}"
        );
        assert!(page.contains("worst <b>2.0 s</b>"), "{page}");
        assert!(page.contains("href=\"runs/w1/2/report.html\""), "{page}");
        assert!(page.contains("awaiting disk faults"), "{page}");
        assert!(page.contains("&lt;models&gt;"), "escaped: {page}");
        assert!(!page.contains("<models>"));
    }

    #[test]
    fn junit_fails_the_missed_bug_and_skips_the_awaiting_one() {
        let xml = junit(&example());
        assert!(
            xml.contains("tests=\"5\" failures=\"1\" skipped=\"1\""),
            "{xml}"
        );
        assert!(
            xml.contains("<failure message=\"planted bug c was not caught"),
            "{xml}"
        );
        assert!(
            xml.contains("<skipped message=\"awaiting disk faults\"/>"),
            "{xml}"
        );
    }
}
