//! The tables after the charts: fault windows and the unavailability after each nemesis
//! operation, latency percentiles per client operation, and links to the run's files.

use std::fmt::Write;

use crate::escape::{escape, href};
use crate::faults::Faults;
use crate::plot::{fault_colour, format_micros, format_time_ns};
use crate::run_dir::{
    HISTORY_FILE, JUNIT_FILE, LEADERSHIP_FILE, RESULTS_FILE, RunData, WORKLOAD_FILE,
};

/// Every client worker crash: when, which process, why. Its operations in flight are `info`
/// in the history, and a new process took its place.
fn client_crashes_table(page: &mut String, run: &RunData) {
    let scan = &run.history;
    if scan.client_crashes.is_empty() {
        return;
    }
    let _ = write!(
        page,
        r#"<h3>Client crashes</h3><p class="muted">{} client worker(s) crashed; their operations in flight completed as indeterminate (info), and a fresh worker with a new process number took over each time.</p><table id="client-crashes"><thead><tr><th class="num">at</th><th>client</th><th>cause</th></tr></thead><tbody>"#,
        scan.client_crashes_total
    );
    for crash in &scan.client_crashes {
        let _ = write!(
            page,
            r#"<tr><td class="num">{}</td><td>{}</td><td>{}</td></tr>"#,
            format_time_ns(crash.time_ns),
            escape(&crash.client()),
            escape(&crash.cause),
        );
    }
    page.push_str("</tbody></table>");
}

pub(super) fn faults_section(page: &mut String, run: &RunData, faults: &Faults) {
    page.push_str(r#"<section id="faults"><h2>Faults and unavailability</h2>"#);
    if faults.windows.is_empty() {
        page.push_str("<p class=\"muted\">No fault windows.</p>");
    } else {
        page.push_str(r#"<table id="fault-windows"><thead><tr><th>fault</th><th class="num">from</th><th class="num">to</th><th class="num">length</th><th>healed by</th><th>why</th></tr></thead><tbody>"#);
        for window in &faults.windows {
            let _ = write!(
                page,
                r#"<tr><td><span class="swatch" style="background:{}"></span>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td>{}</td></tr>"#,
                fault_colour(&window.f),
                escape(&window.label()),
                format_time_ns(window.start_ns),
                format_time_ns(window.end_ns),
                format_micros(window.end_ns.saturating_sub(window.start_ns) / 1_000),
                if window.open_at_end {
                    "never (open at the end)".to_string()
                } else {
                    escape(window.healed_by.as_deref().unwrap_or(""))
                },
                escape(window.why.as_deref().unwrap_or("")),
            );
        }
        page.push_str("</tbody></table>");
    }
    client_crashes_table(page, run);
    client_errors(page, run);
    page.push_str("<h3>Unavailability after each nemesis operation</h3>");
    let Some(results) = &run.results else {
        page.push_str("<p class=\"muted\">Not checked.</p></section>");
        return;
    };
    if results.faults.is_empty() {
        page.push_str("<p class=\"muted\">No nemesis operations.</p></section>");
        return;
    }
    page.push_str(r#"<p class="muted">From each nemesis operation until the next (or the last send): the time to the first acknowledged send, and the longest stretch with none (of the aimed-at partition's sends, for a fault aimed at a partition's leader).</p><table id="unavailability"><thead><tr><th class="num">at</th><th>operation</th><th>why</th><th class="num">window</th><th class="num">first ok send after</th><th class="num">longest without ok send</th></tr></thead><tbody>"#);
    for fault in &results.faults {
        let first_ok = fault
            .time_to_first_ok_send_us
            .map_or("none".to_string(), format_micros);
        let longest = fault.longest_without_ok_send_us;
        let _ = write!(
            page,
            r#"<tr class="{}"><td class="num">{}</td><td>{} {}</td><td>{}</td><td class="num">{}</td><td class="num">{first_ok}</td><td class="num count">{}</td></tr>"#,
            if longest >= 1_000_000 { "bad" } else { "" },
            format_time_ns(fault.time_ns),
            escape(&fault.f),
            escape(fault.node.as_deref().unwrap_or("")),
            escape(&match fault.partition {
                Some(partition) => format!(
                    "{} (sends to partition {partition} only)",
                    fault.why.as_deref().unwrap_or("")
                ),
                None => fault.why.clone().unwrap_or_default(),
            }),
            format_micros(fault.window_end_ns.saturating_sub(fault.time_ns) / 1_000),
            format_micros(longest),
        );
    }
    page.push_str("</tbody></table></section>");
}

/// The errors clients saw: every failed or indeterminate send's error, counted, with when it
/// was first and last seen.
fn client_errors(page: &mut String, run: &RunData) {
    page.push_str("<h3>Errors clients saw</h3>");
    let errors = &run.history.send_errors;
    if errors.is_empty() {
        page.push_str("<p class=\"muted\">Every completed send was acknowledged.</p>");
        return;
    }
    let mut rows: Vec<_> = errors.iter().collect();
    rows.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
    page.push_str(r#"<table id="client-errors"><thead><tr><th>send</th><th>error</th><th class="num">sends</th><th class="num">first</th><th class="num">last</th></tr></thead><tbody>"#);
    for ((completion, error), figures) in rows {
        let _ = write!(
            page,
            r#"<tr><td>{}</td><td><code>{}</code></td><td class="num count">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            if *completion == "fail" {
                "failed"
            } else {
                "indeterminate"
            },
            escape(error),
            figures.count,
            format_time_ns(figures.first_ns),
            format_time_ns(figures.last_ns),
        );
    }
    page.push_str("</tbody></table>");
}

pub(super) fn latency_section(page: &mut String, run: &RunData) {
    page.push_str(r#"<section id="latency"><h2>Latency percentiles</h2>"#);
    let Some(results) = &run.results else {
        page.push_str("<p class=\"muted\">Not checked.</p></section>");
        return;
    };
    page.push_str(r#"<p class="muted">Of ok completions, invoke to completion.</p><table id="percentiles"><thead><tr><th>operation</th><th class="num">count</th><th class="num">ok</th><th class="num">fail</th><th class="num">info</th><th class="num">p50</th><th class="num">p90</th><th class="num">p99</th><th class="num">p99.9</th><th class="num">max</th><th class="num">ok / s</th></tr></thead><tbody>"#);
    let is_nemesis = |name: &str| run.history.nemesis.iter().any(|op| op.f == name);
    for (name, figures) in &results.operations {
        if is_nemesis(name) {
            continue;
        }
        let latency = &figures.latency_us;
        let cell = |micros: u64| {
            if figures.ok == 0 {
                "—".to_string()
            } else {
                format_micros(micros)
            }
        };
        let _ = write!(
            page,
            r#"<tr><td><code>{}</code></td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{:.1}</td></tr>"#,
            escape(name),
            figures.count,
            figures.ok,
            figures.fail,
            figures.info,
            cell(latency.p50),
            cell(latency.p90),
            cell(latency.p99),
            cell(latency.p99_9),
            cell(latency.max),
            figures.ok_per_second,
        );
    }
    page.push_str("</tbody></table></section>");
}

pub(super) fn files_section(page: &mut String, run: &RunData) {
    page.push_str(r#"<section id="files"><h2>Files</h2><ul>"#);
    let described = [
        (HISTORY_FILE, "the raw history, one operation per line"),
        (RESULTS_FILE, "the checker's verdict and figures"),
        (JUNIT_FILE, "the checks as JUnit test cases"),
        (WORKLOAD_FILE, "the workload as run, with its seed"),
        (LEADERSHIP_FILE, "leader and ISR samples"),
    ];
    for (name, what) in described {
        if run.has_file(name) {
            let _ = write!(
                page,
                r#"<li><a href="{}">{}</a> — {what}</li>"#,
                escape(&href(name)),
                escape(name)
            );
        }
    }
    for log in &run.logs {
        let _ = write!(
            page,
            r#"<li><a href="{}">{}</a></li>"#,
            escape(&href(log)),
            escape(log)
        );
    }
    page.push_str("</ul></section>");
}
