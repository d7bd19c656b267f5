//! Loss first (the count, per partition, the first lost sends), then every other anomaly with
//! its count, its effect on the verdict and its first examples.

use std::fmt::Write;

use checker::{AnomalyKind, Example, Results};

use crate::escape::escape;
use crate::faults::Faults;
use crate::history_scan::FinalRead;
use crate::plot::{format_micros, format_time_ns};
use crate::run_dir::RunData;

/// Examples shown per anomaly.
const EXAMPLES_SHOWN: usize = 10;

pub(super) fn loss_section(page: &mut String, run: &RunData, faults: &Faults) {
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
                r#"<h3>The first {} lost</h3><table id="lost-examples"><thead><tr><th>value</th><th class="num">partition</th><th class="num">offset</th><th class="num">producer</th><th class="num">acknowledged at</th><th>fault</th></tr></thead><tbody>"#,
                anomaly.examples.len()
            );
            for example in &anomaly.examples {
                let _ = write!(
                    page,
                    r#"<tr><td class="mono">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
                    escape(example.value.as_deref().unwrap_or("")),
                    optional(example.partition),
                    optional(example.offset),
                    optional(example.process),
                    example
                        .acknowledged_ns
                        .map_or(String::new(), format_time_ns),
                    example
                        .acknowledged_ns
                        .map_or(String::new(), |time_ns| escape(&fault_context(
                            faults, time_ns
                        ))),
                );
            }
            page.push_str("</tbody></table>");
        }
    }
    page.push_str("</section>");
}

/// Where `time_ns` falls among the fault windows: `during pause broker-1`, or
/// `112 ms before kill broker-2` (the next fault), or nothing.
pub(super) fn fault_context(faults: &Faults, time_ns: u64) -> String {
    if let Some(window) = faults
        .windows
        .iter()
        .find(|window| window.start_ns <= time_ns && time_ns <= window.end_ns)
    {
        return format!("during {}", window.label());
    }
    faults
        .windows
        .iter()
        .filter(|window| window.start_ns > time_ns)
        .min_by_key(|window| window.start_ns)
        .map_or(String::new(), |window| {
            format!(
                "{} before {}",
                format_micros((window.start_ns - time_ns) / 1_000),
                window.label()
            )
        })
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or(String::new(), |value| value.to_string())
}

/// What each anomaly means, in one line (docs/checker.md).
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
        AnomalyKind::NonmonotonicCommit => {
            "a consumer group's committed offset of a partition went backwards"
        }
        AnomalyKind::Unconsumed => {
            "an acknowledged send in the final read that no member of a consumer group consumed"
        }
        AnomalyKind::Unavailable => {
            "a partition acknowledged no send for longer than the workload allows"
        }
        AnomalyKind::IndeterminateRecovered => "an indeterminate send found in the final read",
        AnomalyKind::IndeterminateLost => "an indeterminate send not in the final read",
    }
}

pub(super) fn anomalies_section(page: &mut String, results: Option<&Results>) {
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
    field("group", example.group.clone());
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
