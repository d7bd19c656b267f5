//! The report page: one self-contained HTML file (inline CSS and SVG, no scripts, nothing from
//! the network) with, top to bottom, the verdict and configuration, loss, the timeline charts
//! on one time axis (latency, throughput, fault windows, leadership), the other anomalies, the
//! unavailability after each fault, latency percentiles, and links to the raw files.

use std::fmt::Write;

use harness::checker::{AnomalyKind, Example, LostExpectation, Results, Validity};

use crate::charts;
use crate::escape::{escape, href};
use crate::faults::{Faults, fault_windows};
use crate::history_scan::FinalRead;
use crate::plot::{
    COLOUR_FAIL, COLOUR_INFO, COLOUR_LOST, COLOUR_OK, TimeAxis, fault_colour, format_micros,
    format_time_ns,
};
use crate::run_dir::{
    HISTORY_FILE, JUNIT_FILE, LEADERSHIP_FILE, RESULTS_FILE, RunData, WORKLOAD_FILE,
};

/// Examples shown per anomaly.
const EXAMPLES_SHOWN: usize = 10;

const STYLE: &str = r#"
:root{--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--muted:#57606a;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;background:#fff}
main{max-width:1240px;margin:0 auto;padding:18px 24px 48px}
h1{font-size:24px;margin:0}
h2{font-size:18px;margin:30px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 6px}
p{margin:6px 0}
.muted{color:var(--muted)}
.title{display:flex;flex-wrap:wrap;align-items:center;gap:12px}
.badge{display:inline-block;padding:3px 12px;border-radius:999px;font-weight:700;font-size:14px;color:#fff;letter-spacing:.02em}
.valid{background:var(--ok)}.invalid{background:var(--bad)}.unknown{background:var(--warn)}.not-checked{background:#6e7781}
.expect-yes{background:#fff;color:var(--ok);border:2px solid var(--ok)}
.expect-no{background:#fff;color:var(--bad);border:2px solid var(--bad)}
.summary{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.figure{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:120px;background:var(--bg)}
.figure .number{font-size:24px;font-weight:700}
.figure .label{color:var(--muted);font-size:12px}
.figure.bad{border-color:var(--bad);background:#ffebe9}.figure.bad .number{color:var(--bad)}
.figure.good .number{color:var(--ok)}
.reasons{margin:6px 0;padding-left:20px;color:var(--bad)}
.config{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:8px;margin-top:10px}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 12px;font-size:13px}
.card h3{margin:0 0 4px;font-size:13px;text-transform:uppercase;color:var(--muted);letter-spacing:.05em}
.card .kv{overflow-wrap:anywhere;padding-left:1em;text-indent:-1em}
.card .key{color:var(--muted)}
nav{position:sticky;top:0;background:rgba(255,255,255,.95);border-bottom:1px solid var(--line);padding:6px 0;margin-top:12px;z-index:1}
nav a{margin-right:16px;color:#0969da;text-decoration:none}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.zero td{color:#8c959f}
tr.bad td.num.count{color:var(--bad);font-weight:700}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.lost-big{font-size:20px;font-weight:700;margin:8px 0}
.lost-big.bad{color:var(--bad)}.lost-big.good{color:var(--ok)}
.chart{width:100%;height:auto;display:block}
.chart .tick{font-size:11px;fill:#57606a}
.chart .axis-title{font-size:12px;fill:#57606a}
.chart .fault-label{font-size:11px;font-weight:600}
.chart .lane-label{font-size:12px;fill:#1f2328}
.chart .bar-label{font-size:11px;fill:#fff;font-weight:600;pointer-events:none}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:12px;color:var(--muted);margin:4px 0 0 86px}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.dot{border-radius:50%}
details summary{cursor:pointer;color:#0969da}
ul.examples{margin:4px 0;padding-left:18px}
.note{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:6px 10px;margin:8px 0}
footer{margin-top:40px;color:var(--muted);font-size:12px}
"#;

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
    header(&mut page, run, verdict_class, verdict_text, &faults);
    page.push_str(r##"<nav><a href="#loss">Loss</a><a href="#timeline">Timeline</a><a href="#leadership">Leadership</a><a href="#anomalies">Anomalies</a><a href="#faults">Faults</a><a href="#latency">Latency</a><a href="#files">Files</a></nav>"##);
    loss_section(&mut page, run);
    timeline_section(&mut page, run, &faults, &axis);
    leadership_section(&mut page, run, &faults, &axis);
    anomalies_section(&mut page, run.results.as_ref());
    faults_section(&mut page, run, &faults);
    latency_section(&mut page, run);
    files_section(&mut page, run);
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

fn header(
    page: &mut String,
    run: &RunData,
    verdict_class: &str,
    verdict_text: &str,
    faults: &Faults,
) {
    let _ = write!(
        page,
        r#"<header><div class="title"><h1>{}</h1><span class="badge {verdict_class}" id="verdict">{verdict_text}</span>"#,
        escape(&run.workload_name)
    );
    if let Some(results) = &run.results {
        let expected = match results.expectations.lost {
            LostExpectation::None => "lost = none",
            LostExpectation::Some => "lost = some",
        };
        let (class, text) = if results.matches_expectation {
            ("expect-yes", "✓ as the workload expects")
        } else {
            ("expect-no", "✗ contradicts the workload's expectation")
        };
        let _ = write!(
            page,
            r#"<span class="badge {class}" title="expectation: {expected}">{text} ({expected})</span>"#
        );
    }
    let _ = write!(
        page,
        r#"<span class="muted">run {}</span></div>"#,
        escape(&run.run_name)
    );
    if let Some(description) = run
        .workload
        .as_ref()
        .and_then(|workload| workload.get("description"))
        .and_then(toml::Value::as_str)
    {
        let _ = write!(page, "<p>{}</p>", escape(description));
    }
    summary_figures(page, run, faults);
    if let Some(results) = &run.results
        && !results.reasons.is_empty()
    {
        page.push_str(r#"<ul class="reasons">"#);
        for reason in &results.reasons {
            let _ = write!(page, "<li>{}</li>", escape(reason));
        }
        page.push_str("</ul>");
    }
    if run.results.is_none() {
        let _ = write!(
            page,
            r#"<p class="note">No <code>{RESULTS_FILE}</code>: this run was not checked. Run <code>kchaos check</code> on it, then <code>kchaos report</code> again.</p>"#
        );
    }
    config_cards(page, run);
    page.push_str("</header>");
}

fn summary_figures(page: &mut String, run: &RunData, faults: &Faults) {
    let scan = &run.history;
    let lost = run
        .results
        .as_ref()
        .map_or(scan.lost_total, |results| results.count(AnomalyKind::Lost));
    let lost_class = match (&run.results, lost) {
        (None, _) => "",
        (Some(_), 0) => "good",
        (Some(_), _) => "bad",
    };
    let lost_label = if run.results.is_some() {
        "acknowledged sends lost"
    } else {
        "lost (not checked)"
    };
    let figure = |page: &mut String, class: &str, number: String, label: &str| {
        let _ = write!(
            page,
            r#"<div class="figure {class}"><div class="number">{number}</div><div class="label">{label}</div></div>"#
        );
    };
    page.push_str(r#"<div class="summary">"#);
    figure(page, lost_class, lost.to_string(), lost_label);
    figure(page, "", scan.sends_ok.to_string(), "sends ok");
    figure(page, "", scan.sends_fail.to_string(), "sends failed");
    figure(
        page,
        "",
        (scan.sends_info + scan.sends_never_completed).to_string(),
        "sends indeterminate",
    );
    let p99 = run
        .results
        .as_ref()
        .and_then(|results| results.operations.get("send"))
        .map_or("—".to_string(), |send| format_micros(send.latency_us.p99));
    figure(page, "", p99, "send latency p99");
    figure(page, "", faults.windows.len().to_string(), "fault windows");
    figure(
        page,
        "",
        format!(
            "{:.1} s",
            scan.last_ns.saturating_sub(scan.first_ns) as f64 / 1e9
        ),
        "duration",
    );
    let seed = run.seed().map_or("—".to_string(), |seed| seed.to_string());
    figure(page, "", seed, "seed");
    page.push_str("</div>");
}

/// One card per table of workload.toml, and one for its top-level values.
fn config_cards(page: &mut String, run: &RunData) {
    let Some(workload) = &run.workload else {
        let _ = write!(
            page,
            r#"<p class="note">No <code>{WORKLOAD_FILE}</code> in the run directory: the configuration is unknown.</p>"#
        );
        return;
    };
    page.push_str(r#"<div class="config">"#);
    let top: Vec<(&String, &toml::Value)> = workload
        .iter()
        .filter(|(key, value)| !value.is_table() && key.as_str() != "description")
        .collect();
    if !top.is_empty() {
        page.push_str("<div class=\"card\"><h3>run</h3>");
        for (key, value) in top {
            definition(page, key, value);
        }
        page.push_str("</div>");
    }
    for (name, value) in workload {
        let Some(table) = value.as_table() else {
            continue;
        };
        let _ = write!(page, "<div class=\"card\"><h3>{}</h3>", escape(name));
        for (key, value) in table {
            match value.as_table() {
                Some(inner) if !inner.is_empty() => {
                    for (inner_key, inner_value) in inner {
                        definition(page, inner_key, inner_value);
                    }
                }
                _ => definition(page, key, value),
            }
        }
        page.push_str("</div>");
    }
    page.push_str("</div>");
}

fn definition(page: &mut String, key: &str, value: &toml::Value) {
    let text = match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                toml::Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    let _ = write!(
        page,
        r#"<div class="kv"><span class="key">{}</span> = <code>{}</code></div>"#,
        escape(key),
        escape(&text)
    );
}

fn loss_section(page: &mut String, run: &RunData) {
    let scan = &run.history;
    page.push_str(r#"<section id="loss"><h2>Loss</h2>"#);
    let lost = run
        .results
        .as_ref()
        .map(|results| results.count(AnomalyKind::Lost));
    match lost {
        Some(0) => page.push_str(
            r#"<p class="lost-big good" id="lost-count">No acknowledged send was lost.</p>"#,
        ),
        Some(count) => {
            let _ = write!(
                page,
                r#"<p class="lost-big bad" id="lost-count">{count} acknowledged send{} lost</p>"#,
                if count == 1 { "" } else { "s" }
            );
        }
        None => {
            let _ = write!(
                page,
                r#"<p class="lost-big" id="lost-count">Not checked: {} acknowledged send{} missing from a complete final read</p>"#,
                scan.lost_total,
                if scan.lost_total == 1 { " is" } else { "s are" }
            );
        }
    }
    if let Some(count) = lost
        && count != scan.lost_total
    {
        let _ = write!(
            page,
            r#"<p class="note">The checker counts {count}; this report's own pass over the history finds {} (the per-partition counts below are the report's).</p>"#,
            scan.lost_total
        );
    }
    if let Some(results) = &run.results
        && !results.final_read.is_complete()
    {
        let _ = write!(
            page,
            r#"<p class="note">The final read was not complete (missing {:?}, incomplete {:?}, failed {:?}): {} acknowledged sends on those partitions were not checked for loss.</p>"#,
            results.final_read.missing,
            results.final_read.incomplete,
            results.final_read.failed,
            results.totals.sends_ok_unchecked
        );
    }
    page.push_str(r#"<table id="lost-per-partition"><thead><tr><th>partition</th><th class="num">acknowledged</th><th class="num">lost</th><th>final read</th></tr></thead><tbody>"#);
    for (partition, figures) in &scan.partitions {
        let final_read = match figures.final_read {
            FinalRead::Missing => "missing: not checked".to_string(),
            FinalRead::Incomplete => "incomplete: not checked".to_string(),
            FinalRead::Complete { records } => format!("complete, {records} records"),
        };
        let _ = write!(
            page,
            r#"<tr class="{}"><td class="num">{partition}</td><td class="num">{}</td><td class="num count">{}</td><td>{final_read}</td></tr>"#,
            if figures.lost > 0 { "bad" } else { "" },
            figures.acknowledged,
            figures.lost,
        );
    }
    page.push_str("</tbody></table>");
    if let Some(results) = &run.results {
        let anomaly = results.anomaly(AnomalyKind::Lost);
        if !anomaly.examples.is_empty() {
            let _ = write!(
                page,
                r#"<h3>The first {} lost</h3><table id="lost-examples"><thead><tr><th>value</th><th class="num">partition</th><th class="num">offset</th><th class="num">producer</th><th class="num">acknowledged at</th></tr></thead><tbody>"#,
                anomaly.examples.len()
            );
            for example in &anomaly.examples {
                let _ = write!(
                    page,
                    r#"<tr><td class="mono">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                    escape(example.value.as_deref().unwrap_or("")),
                    optional(example.partition),
                    optional(example.offset),
                    optional(example.process),
                    example
                        .acknowledged_ns
                        .map_or(String::new(), format_time_ns),
                );
            }
            page.push_str("</tbody></table>");
        }
    }
    page.push_str("</section>");
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or(String::new(), |value| value.to_string())
}

/// What each anomaly means, in one line (CHECKER.md).
fn anomaly_meaning(kind: AnomalyKind) -> &'static str {
    match kind {
        AnomalyKind::Lost => "an acknowledged send missing from the final read of its partition",
        AnomalyKind::Divergent => "one partition and offset seen with two different values",
        AnomalyKind::Unexpected => "a value read that no send ever invoked",
        AnomalyKind::AbortedRead => "a value of a failed send that some read returned",
        AnomalyKind::Duplicated => "a value present at more than one offset",
        AnomalyKind::Reordered => {
            "one producer's acknowledged sends in the opposite order of their invocations"
        }
        AnomalyKind::PollSkip => "a consumer jumped over offsets that exist",
        AnomalyKind::NonmonotonicPoll => {
            "a consumer saw an offset at or below one it had already read"
        }
        AnomalyKind::IndeterminateRecovered => "an indeterminate send found in the final read",
        AnomalyKind::IndeterminateLost => "an indeterminate send not in the final read",
    }
}

fn anomalies_section(page: &mut String, results: Option<&Results>) {
    page.push_str(r#"<section id="anomalies"><h2>Anomalies</h2>"#);
    let Some(results) = results else {
        page.push_str("<p class=\"muted\">Not checked.</p></section>");
        return;
    };
    page.push_str(r#"<table id="anomaly-table"><thead><tr><th>anomaly</th><th class="num">count</th><th>effect</th><th>meaning and examples</th></tr></thead><tbody>"#);
    for kind in AnomalyKind::ALL {
        let anomaly = results.anomaly(kind);
        let effect = if anomaly.count == 0 {
            "—"
        } else if anomaly.invalid {
            "makes the run invalid"
        } else {
            "counted only"
        };
        let class = if anomaly.count == 0 {
            "zero"
        } else if anomaly.invalid {
            "bad"
        } else {
            ""
        };
        let _ = write!(
            page,
            r#"<tr class="{class}" id="anomaly-{}"><td><code>{}</code></td><td class="num count">{}</td><td>{effect}</td><td>{}"#,
            kind.name(),
            kind.name(),
            anomaly.count,
            anomaly_meaning(kind),
        );
        if !anomaly.examples.is_empty() {
            let _ = write!(
                page,
                "<details{}><summary>{} example{}</summary><ul class=\"examples\">",
                if anomaly.invalid && kind != AnomalyKind::Lost {
                    " open"
                } else {
                    ""
                },
                anomaly.examples.len().min(EXAMPLES_SHOWN),
                if anomaly.examples.len() == 1 { "" } else { "s" }
            );
            for example in anomaly.examples.iter().take(EXAMPLES_SHOWN) {
                let _ = write!(page, "<li>{}</li>", example_text(example));
            }
            page.push_str("</ul></details>");
        }
        page.push_str("</td></tr>");
    }
    page.push_str("</tbody></table></section>");
}

/// An example as escaped HTML: its explanation, then the fields it has.
fn example_text(example: &Example) -> String {
    let mut fields: Vec<String> = Vec::new();
    let mut field = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            fields.push(format!("{name} <code>{}</code>", escape(&value)));
        }
    };
    field("value", example.value.clone());
    field(
        "partition",
        example.partition.map(|value| value.to_string()),
    );
    field("offset", example.offset.map(|value| value.to_string()));
    field("producer", example.process.map(|value| value.to_string()));
    field(
        "acknowledged at",
        example.acknowledged_ns.map(format_time_ns),
    );
    field("consumer", example.consumer.map(|value| value.to_string()));
    field(
        "history index",
        example.index.map(|value| value.to_string()),
    );
    if !example.values.is_empty() {
        field("values", Some(example.values.join(", ")));
    }
    if !example.offsets.is_empty() {
        let offsets: Vec<String> = example.offsets.iter().map(i64::to_string).collect();
        field("offsets", Some(offsets.join(", ")));
    }
    field(
        "previous offset",
        example.previous_offset.map(|value| value.to_string()),
    );
    field("skipped", example.skipped.map(|value| value.to_string()));
    field("earlier value", example.earlier_value.clone());
    field(
        "earlier offset",
        example.earlier_offset.map(|value| value.to_string()),
    );
    format!("{} — {}", escape(&example.explanation), fields.join(", "))
}

fn legend_item(page: &mut String, colour: &str, shape: &str, text: &str) {
    let _ = write!(
        page,
        r#"<span><span class="swatch {shape}" style="background:{colour}"></span>{text}</span>"#
    );
}

fn timeline_section(page: &mut String, run: &RunData, faults: &Faults, axis: &TimeAxis) {
    let scan = &run.history;
    if scan.operations == 0 {
        page.push_str(r##"<section id="timeline"><h2>Timeline</h2><p class="note" id="empty-history">The history is empty: the run recorded no operation, so it most likely failed while the cluster was starting. The node logs under <a href="#files">Files</a> say why.</p></section>"##);
        return;
    }
    page.push_str(
        r#"<section id="timeline"><h2>Timeline</h2><h3>Send latency</h3><p class="muted">Each send is a point at the time it was invoked, as high as it took to complete.</p><div class="legend">"#,
    );
    legend_item(page, COLOUR_OK, "dot", &format!("ok ({})", scan.sends_ok));
    legend_item(
        page,
        COLOUR_FAIL,
        "dot",
        &format!("fail ({})", scan.sends_fail),
    );
    legend_item(
        page,
        COLOUR_INFO,
        "dot",
        &format!("info / indeterminate ({})", scan.sends_info),
    );
    let _ = write!(
        page,
        r#"<span><span style="color:{COLOUR_LOST};font-weight:700;margin-right:5px">✕</span>lost ({})</span>"#,
        scan.lost_total
    );
    let mut fault_kinds: Vec<&str> = faults
        .windows
        .iter()
        .map(|window| window.f.as_str())
        .collect();
    fault_kinds.sort_unstable();
    fault_kinds.dedup();
    for kind in fault_kinds {
        legend_item(page, fault_colour(kind), "", &format!("{kind} window"));
    }
    page.push_str("</div>");
    page.push_str(&charts::latency_chart(scan, faults, axis));
    if scan.ok_points.len() as u64 + 1 < scan.sends_ok {
        let _ = write!(
            page,
            r#"<p class="muted">Showing every failed and indeterminate send and {} of the {} ok sends, spread over time and latency.</p>"#,
            scan.ok_points.len(),
            scan.sends_ok
        );
    }
    page.push_str("<h3>Sends per second</h3>");
    page.push_str(&charts::throughput_chart(scan, faults, axis));
    page.push_str("<h3>Fault windows per node</h3>");
    if faults.windows.is_empty() && faults.markers.is_empty() {
        page.push_str("<p class=\"muted\">The nemesis did nothing in this run.</p>");
    } else {
        page.push_str(&charts::fault_lanes_chart(faults, axis));
    }
    page.push_str("</section>");
}

fn faults_section(page: &mut String, run: &RunData, faults: &Faults) {
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
    page.push_str("<h3>Unavailability after each nemesis operation</h3>");
    let Some(results) = &run.results else {
        page.push_str("<p class=\"muted\">Not checked.</p></section>");
        return;
    };
    if results.faults.is_empty() {
        page.push_str("<p class=\"muted\">No nemesis operations.</p></section>");
        return;
    }
    page.push_str(r#"<p class="muted">From each nemesis operation until the next (or the last send): the time to the first acknowledged send, and the longest stretch with none.</p><table id="unavailability"><thead><tr><th class="num">at</th><th>operation</th><th>why</th><th class="num">window</th><th class="num">first ok send after</th><th class="num">longest without ok send</th></tr></thead><tbody>"#);
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
            escape(fault.why.as_deref().unwrap_or("")),
            format_micros(fault.window_end_ns.saturating_sub(fault.time_ns) / 1_000),
            format_micros(longest),
        );
    }
    page.push_str("</tbody></table></section>");
}

fn latency_section(page: &mut String, run: &RunData) {
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

fn leadership_section(page: &mut String, run: &RunData, faults: &Faults, axis: &TimeAxis) {
    page.push_str(r#"<section id="leadership"><h3>Partition leaders</h3>"#);
    match &run.leadership {
        None => {
            let _ = write!(
                page,
                r#"<p class="muted" id="no-leadership">No <code>{LEADERSHIP_FILE}</code> in the run directory: leadership was not sampled in this run.</p>"#
            );
        }
        Some(rows) if rows.is_empty() => {
            let _ = write!(
                page,
                r#"<p class="muted">{LEADERSHIP_FILE} holds no samples.</p>"#
            );
        }
        Some(rows) => {
            let mut brokers: Vec<i32> = rows
                .values()
                .flatten()
                .map(|segment| segment.leader)
                .collect();
            brokers.sort_unstable();
            brokers.dedup();
            page.push_str(r#"<div class="legend">"#);
            for broker in brokers {
                let text = if broker < 0 {
                    "no leader".to_string()
                } else {
                    format!("broker {broker} leads")
                };
                legend_item(page, crate::plot::broker_colour(broker), "", &text);
            }
            page.push_str(
                r#"<span>hatched: ISR smaller than the partition's largest; dashed outlines: fault windows</span></div>"#,
            );
            page.push_str(&charts::leadership_chart(rows, faults, axis));
        }
    }
    page.push_str("</section>");
}

fn files_section(page: &mut String, run: &RunData) {
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
