//! The timeline: latency, throughput and fault-window charts on one time axis, with their
//! legends, and the partition leaders on the same axis.

use std::fmt::Write;

use crate::charts;
use crate::faults::Faults;
use crate::plot::{
    COLOUR_CLIENT_CRASH, COLOUR_FAIL, COLOUR_INFO, COLOUR_LOST, COLOUR_OK, TimeAxis, fault_colour,
};
use crate::run_dir::{LEADERSHIP_FILE, RunData};

fn legend_item(page: &mut String, colour: &str, shape: &str, text: &str) {
    let _ = write!(
        page,
        r#"<span><span class="swatch {shape}" style="background:{colour}"></span>{text}</span>"#
    );
}

pub(super) fn timeline_section(page: &mut String, run: &RunData, faults: &Faults, axis: &TimeAxis) {
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
    if scan.client_crashes_total > 0 {
        let _ = write!(
            page,
            r#"<span><span style="color:{COLOUR_CLIENT_CRASH};font-weight:700;margin-right:5px">✕</span>client crash ({})</span>"#,
            scan.client_crashes_total
        );
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
    if faults.windows.is_empty() && faults.markers.is_empty() && scan.client_crashes.is_empty() {
        page.push_str("<p class=\"muted\">The nemesis did nothing in this run.</p>");
    } else {
        page.push_str(&charts::fault_lanes_chart(
            faults,
            &scan.client_crashes,
            axis,
        ));
    }
    page.push_str("</section>");
}

pub(super) fn leadership_section(
    page: &mut String,
    run: &RunData,
    faults: &Faults,
    axis: &TimeAxis,
) {
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
