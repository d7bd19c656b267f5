//! The top of the page: the workload's name, the verdict and expectation badges, the summary
//! figures, the checker's reasons and the workload's configuration as cards.

use std::fmt::Write;

use checker::{AnomalyKind, LostExpectation};

use crate::escape::escape;
use crate::faults::Faults;
use crate::plot::format_micros;
use crate::run_dir::{RESULTS_FILE, RunData, WORKLOAD_FILE};

pub(super) fn header(
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
        let outcome = results.outcome();
        let (class, text) = if outcome.passed() {
            ("expect-yes", format!("✓ {}", outcome.describe()))
        } else {
            ("expect-no", format!("✗ {}", outcome.describe()))
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
    if let Some(detection) = run
        .results
        .as_ref()
        .and_then(|results| results.detection.as_ref())
    {
        let after = match detection.time_to_detection_us {
            Some(micros) => format!("{} after the first fault", format_micros(micros)),
            None => "with no fault injected".to_string(),
        };
        let _ = write!(
            page,
            r#"<p class="note" id="detection">First anomaly: <code>{}</code>, in an operation at {:.1} s into the run, {after}.</p>"#,
            escape(&detection.first_anomaly),
            detection.first_anomaly_ns as f64 / 1e9
        );
    }
    if let Some(malformed) = run
        .results
        .as_ref()
        .and_then(|results| results.malformed.as_ref())
    {
        let _ = write!(
            page,
            r#"<p class="note">The checker could not read {} line{} of the history; the first, line {}: {}</p>"#,
            malformed.count,
            if malformed.count == 1 { "" } else { "s" },
            malformed.line,
            escape(&malformed.reason)
        );
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
    figure(
        page,
        "",
        faults.distinct_windows().count().to_string(),
        "fault windows",
    );
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
