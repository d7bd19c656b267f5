//! The report's charts as inline SVG, all on one time axis: send latency (every send a point,
//! log scale, lost sends marked), sends per second, the nemesis's fault windows per node, and
//! which broker led each partition. Fault windows are shaded in the first two. All text that
//! came from the run is escaped.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::escape::escape;
use crate::faults::Faults;
use crate::history_scan::{ClientCrashPoint, HistoryScan, Outcome, SendPoint};
use crate::leadership::Leadership;
use crate::plot::{
    CHART_WIDTH, COLOUR_AXIS, COLOUR_CLIENT_CRASH, COLOUR_FAIL, COLOUR_GRID, COLOUR_INFO,
    COLOUR_LOST, COLOUR_OK, LogScale, MARGIN_LEFT, MARGIN_RIGHT, TimeAxis, broker_colour,
    fault_colour, format_seconds, format_time_ns,
};

/// Label lanes above the latency plot.
const LABEL_LANES: usize = 3;
const LABEL_LANE_HEIGHT: f64 = 14.0;
/// Approximate width of one character of an 11px label.
const LABEL_CHAR_WIDTH: f64 = 6.3;
/// Bars of the throughput chart, at most.
const THROUGHPUT_BARS_MAX: u64 = 300;

fn open_svg(svg: &mut String, height: f64, title: &str) {
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_WIDTH} {height}" role="img" aria-label="{}" class="chart">"#,
        escape(title)
    );
}

/// Shades every fault window between `top_y` and `bottom_y`, and draws the markers as dashed
/// lines.
fn shade_faults(svg: &mut String, faults: &Faults, axis: &TimeAxis, top_y: f64, bottom_y: f64) {
    for window in faults.distinct_windows() {
        let x = axis.x(window.start_ns);
        let width = (axis.x(window.end_ns) - x).max(1.5);
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{top_y:.1}" width="{width:.1}" height="{:.1}" fill="{}" fill-opacity="0.16"><title>{}</title></rect>"#,
            bottom_y - top_y,
            fault_colour(&window.f),
            escape(&window_title(window)),
        );
    }
    for marker in &faults.markers {
        let x = axis.x(marker.time_ns);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{top_y:.1}" x2="{x:.1}" y2="{bottom_y:.1}" stroke="#555" stroke-dasharray="3 3"><title>{} at {}: {}</title></line>"##,
            escape(&marker.label),
            format_time_ns(marker.time_ns),
            escape(&marker.detail),
        );
    }
}

/// Every client crash as a dotted line from `top_y` to `bottom_y`, with a cross at the top.
fn mark_client_crashes(
    svg: &mut String,
    crashes: &[ClientCrashPoint],
    axis: &TimeAxis,
    top_y: f64,
    bottom_y: f64,
) {
    for crash in crashes {
        let x = axis.x(crash.time_ns);
        let _ = write!(
            svg,
            r#"<g class="client-crash"><title>{}</title><line x1="{x:.1}" y1="{top_y:.1}" x2="{x:.1}" y2="{bottom_y:.1}" stroke="{COLOUR_CLIENT_CRASH}" stroke-dasharray="1 3"/><path d="M{:.1} {:.1}l7 7m0 -7l-7 7" stroke="{COLOUR_CLIENT_CRASH}" stroke-width="2"/></g>"#,
            escape(&crash_title(crash)),
            x - 3.5,
            top_y - 3.5,
        );
    }
}

/// `client 4 crashed at 12.3 s: signal 11 (SIGSEGV)`.
pub fn crash_title(crash: &ClientCrashPoint) -> String {
    format!(
        "{} crashed at {}: {}",
        crash.client(),
        format_time_ns(crash.time_ns),
        crash.cause
    )
}

fn window_title(window: &crate::faults::FaultWindow) -> String {
    let end = if window.open_at_end {
        "the end of the run".to_string()
    } else {
        format!(
            "{} ({})",
            format_time_ns(window.end_ns),
            window.healed_by.as_deref().unwrap_or("")
        )
    };
    let why = window
        .why
        .as_deref()
        .map(|why| format!(" — {why}"))
        .unwrap_or_default();
    format!(
        "{} from {} to {end}{why}",
        window.label(),
        format_time_ns(window.start_ns)
    )
}

/// Fault labels in lanes above the plot (`plot_top_y`), each in the lowest lane where it does not
/// overlap another.
fn label_faults(svg: &mut String, faults: &Faults, axis: &TimeAxis, plot_top_y: f64) {
    let mut lane_ends = [f64::MIN; LABEL_LANES];
    for window in faults.distinct_windows() {
        let label = window.label();
        let x = axis.x(window.start_ns);
        let width = label.chars().count() as f64 * LABEL_CHAR_WIDTH;
        let x = x.min(CHART_WIDTH - MARGIN_RIGHT - width);
        let Some(lane) = lane_ends.iter().position(|end| *end < x) else {
            continue;
        };
        lane_ends[lane] = x + width + 6.0;
        let y = plot_top_y - 4.0 - lane as f64 * LABEL_LANE_HEIGHT;
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{y:.1}" class="fault-label" fill="{}">{}<title>{}</title></text>"#,
            label_colour(&window.f),
            escape(&label),
            escape(&window_title(window)),
        );
    }
}

fn label_colour(f: &str) -> &'static str {
    match f {
        "kill" => "#b0282a",
        "pause" => "#8a6400",
        "restart" => "#0f7c88",
        "lose-unfsynced" => "#8e0152",
        "power-loss" => "#40004b",
        "disk-full" => "#a63603",
        "disk-error" => "#543005",
        "slow-disk" => "#2c5f8a",
        _ => "#444",
    }
}

/// Every send as a point at its invocation, as high as it took to complete: `ok` blue, `fail`
/// orange, `info` purple; lost sends as red crosses (and a tick on the time axis); fault
/// windows shaded and labelled.
pub fn latency_chart(scan: &HistoryScan, faults: &Faults, axis: &TimeAxis) -> String {
    let label_band = LABEL_LANES as f64 * LABEL_LANE_HEIGHT + 6.0;
    let top_y = label_band;
    let bottom_y = top_y + 280.0;
    let height = bottom_y + 40.0;
    let mut svg = String::with_capacity(64 * 1024);
    open_svg(&mut svg, height, "send latency over time");
    let all_points = scan.ok_points.iter().chain(&scan.problem_points);
    let (min_us, max_us) = all_points
        .clone()
        .map(|point| point.latency_us)
        .chain(scan.lost.iter().map(|lost| lost.latency_us.max(1)))
        .fold((u64::MAX, 0), |(low, high), micros| {
            (low.min(micros), high.max(micros))
        });
    let scale = if max_us == 0 {
        LogScale::covering(1_000, 100_000, top_y, bottom_y)
    } else {
        LogScale::covering(min_us, max_us, top_y, bottom_y)
    };
    for decade in scale.low_decade..=scale.high_decade {
        let micros = 10u64.saturating_pow(decade.max(0) as u32);
        let y = scale.y(micros);
        let _ = write!(
            svg,
            r#"<line x1="{MARGIN_LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{COLOUR_GRID}"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"#,
            CHART_WIDTH - MARGIN_RIGHT,
            MARGIN_LEFT - 6.0,
            y + 4.0,
            decade_label(decade)
        );
    }
    axis.draw(&mut svg, top_y, bottom_y, true);
    shade_faults(&mut svg, faults, axis, top_y, bottom_y);
    label_faults(&mut svg, faults, axis, top_y);
    let _ = write!(
        svg,
        r#"<line x1="{MARGIN_LEFT}" y1="{top_y:.1}" x2="{MARGIN_LEFT}" y2="{bottom_y:.1}" stroke="{COLOUR_AXIS}"/><text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle" class="axis-title">latency (log scale)</text>"#,
        (top_y + bottom_y) / 2.0
    );
    draw_points(&mut svg, &scan.ok_points, axis, &scale, COLOUR_OK, 3.0, 0.5);
    let (fails, infos): (Vec<SendPoint>, Vec<SendPoint>) = scan
        .problem_points
        .iter()
        .partition(|point| point.outcome == Outcome::Fail);
    draw_points(&mut svg, &infos, axis, &scale, COLOUR_INFO, 4.2, 0.85);
    draw_points(&mut svg, &fails, axis, &scale, COLOUR_FAIL, 4.2, 0.85);
    mark_client_crashes(&mut svg, &scan.client_crashes, axis, top_y, bottom_y);
    if !scan.lost.is_empty() {
        let _ = write!(
            svg,
            r#"<path stroke="{COLOUR_LOST}" stroke-width="2" fill="none" d=""#
        );
        for lost in &scan.lost {
            let x = axis.x(lost.invoked_ns);
            let y = scale.y(lost.latency_us.max(1));
            let _ = write!(
                svg,
                "M{:.1} {:.1}l9 9m0 -9l-9 9M{x:.1} {bottom_y:.1}v-7",
                x - 4.5,
                y - 4.5
            );
        }
        svg.push_str(r#""/>"#);
    }
    svg.push_str("</svg>");
    svg
}

/// `100 µs`, `1 ms`, `10 s`: a decade of microseconds as a tick label.
fn decade_label(decade: i32) -> String {
    match decade {
        ..=2 => format!("{} µs", 10u64.pow(decade.max(0) as u32)),
        3..=5 => format!("{} ms", 10u64.pow((decade - 3) as u32)),
        _ => format!("{} s", 10u64.saturating_pow((decade - 6) as u32)),
    }
}

/// Points as zero-length round-capped path segments: one path per colour keeps the page small.
fn draw_points(
    svg: &mut String,
    points: &[SendPoint],
    axis: &TimeAxis,
    scale: &LogScale,
    colour: &str,
    diameter: f64,
    opacity: f64,
) {
    if points.is_empty() {
        return;
    }
    let _ = write!(
        svg,
        r#"<path stroke="{colour}" stroke-opacity="{opacity}" stroke-width="{diameter}" stroke-linecap="round" fill="none" d=""#
    );
    for point in points {
        let _ = write!(
            svg,
            "M{:.1} {:.1}h0",
            axis.x(point.time_ns),
            scale.y(point.latency_us)
        );
    }
    svg.push_str(r#""/>"#);
}

/// Send completions per second, stacked ok / fail / info, with the fault windows shaded.
pub fn throughput_chart(scan: &HistoryScan, faults: &Faults, axis: &TimeAxis) -> String {
    let top_y = 10.0;
    let bottom_y = 190.0;
    let height = bottom_y + 40.0;
    let mut svg = String::with_capacity(32 * 1024);
    open_svg(&mut svg, height, "sends per second");
    let first_second = axis.start_ns / 1_000_000_000;
    let last_second = axis.end_ns.div_ceil(1_000_000_000);
    let span_s = (last_second - first_second).max(1);
    let bin_s = span_s.div_ceil(THROUGHPUT_BARS_MAX).max(1);
    let mut bins: BTreeMap<u64, [u64; 3]> = BTreeMap::new();
    for (second, counts) in scan.per_second.iter().enumerate() {
        let bin = (second as u64).saturating_sub(first_second) / bin_s;
        let entry = bins.entry(bin).or_default();
        for (total, count) in entry.iter_mut().zip(counts) {
            *total += count;
        }
    }
    let peak = bins
        .values()
        .map(|counts| counts.iter().sum::<u64>() as f64 / bin_s as f64)
        .fold(0.0, f64::max);
    let (step, top) = linear_ticks(peak);
    let y = |rate: f64| bottom_y - rate / top * (bottom_y - top_y);
    let mut tick = 0.0;
    while tick <= top + step / 2.0 {
        let _ = write!(
            svg,
            r#"<line x1="{MARGIN_LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{COLOUR_GRID}"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"#,
            y(tick),
            CHART_WIDTH - MARGIN_RIGHT,
            y(tick),
            MARGIN_LEFT - 6.0,
            y(tick) + 4.0,
            format_rate(tick),
        );
        tick += step;
    }
    axis.draw(&mut svg, top_y, bottom_y, true);
    let _ = write!(
        svg,
        r#"<line x1="{MARGIN_LEFT}" y1="{top_y:.1}" x2="{MARGIN_LEFT}" y2="{bottom_y:.1}" stroke="{COLOUR_AXIS}"/><text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle" class="axis-title">sends / s{}</text>"#,
        (top_y + bottom_y) / 2.0,
        if bin_s > 1 {
            format!(" ({bin_s} s bins)")
        } else {
            String::new()
        }
    );
    for (bin, counts) in &bins {
        let start_ns = (first_second + bin * bin_s) * 1_000_000_000;
        let end_ns = start_ns + bin_s * 1_000_000_000;
        let x = axis.x(start_ns);
        let width = (axis.x(end_ns) - x - 0.6).max(0.6);
        let mut base = 0.0;
        for (count, colour) in counts.iter().zip([COLOUR_OK, COLOUR_FAIL, COLOUR_INFO]) {
            if *count == 0 {
                continue;
            }
            let rate = *count as f64 / bin_s as f64;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{width:.1}" height="{:.1}" fill="{colour}"><title>{}: {} sends/s</title></rect>"#,
                y(base + rate),
                y(base) - y(base + rate),
                format_seconds(start_ns as f64 / 1e9, bin_s as f64),
                format_rate(rate)
            );
            base += rate;
        }
    }
    // Over the bars, so a window shows even where the cluster kept up.
    shade_faults(&mut svg, faults, axis, top_y, bottom_y);
    mark_client_crashes(&mut svg, &scan.client_crashes, axis, top_y, bottom_y);
    svg.push_str("</svg>");
    svg
}

/// A step giving 4 to 8 ticks up to at least `peak`, and the top of the axis.
fn linear_ticks(peak: f64) -> (f64, f64) {
    if peak <= 0.0 {
        return (1.0, 4.0);
    }
    let magnitude = 10f64.powf(peak.log10().floor());
    let step = [0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|factor| factor * magnitude)
        .find(|step| peak / step <= 6.0)
        .unwrap_or(10.0 * magnitude);
    (step, (peak / step).ceil().max(1.0) * step)
}

fn format_rate(rate: f64) -> String {
    if rate >= 10.0 || rate == rate.round() {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

/// One lane per node: when it was down (killed, stopped), frozen (paused) or restarting, and
/// (in the lower half) whom it could not hear during a network partition; and, if any client
/// worker crashed, a lane of client crashes.
pub fn fault_lanes_chart(faults: &Faults, crashes: &[ClientCrashPoint], axis: &TimeAxis) -> String {
    let mut nodes: Vec<&str> = faults
        .windows
        .iter()
        .map(|window| window.node.as_str())
        .collect();
    nodes.sort_by_key(|node| node_order(node));
    nodes.dedup();
    let lane_height = 22.0;
    let top_y = 4.0;
    let lanes = nodes.len() + usize::from(!crashes.is_empty());
    let bottom_y = top_y + lane_height * lanes.max(1) as f64;
    let height = bottom_y + 22.0;
    let mut svg = String::new();
    open_svg(&mut svg, height, "fault windows per node");
    axis.draw(&mut svg, top_y, bottom_y, false);
    for (lane, node) in nodes.iter().enumerate() {
        let y = top_y + lane as f64 * lane_height;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="lane-label">{}</text>"#,
            MARGIN_LEFT - 6.0,
            y + 15.0,
            escape(node)
        );
        for window in faults.windows.iter().filter(|window| window.node == *node) {
            let x = axis.x(window.start_ns);
            let width = (axis.x(window.end_ns) - x).max(2.0);
            // A partition takes the lower half of the lane, so that a crash of the same node
            // during it stays visible above.
            let (bar_y, bar_height) = if window.part_of.is_some() {
                (y + lane_height / 2.0, lane_height / 2.0 - 2.0)
            } else {
                (y + 3.0, lane_height - 6.0)
            };
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{bar_y:.1}" width="{width:.1}" height="{bar_height:.1}" rx="3" fill="{}" fill-opacity="0.75" class="fault-{}"><title>{}</title></rect>"#,
                fault_colour(&window.f),
                escape(&window.f),
                escape(&window_title(window)),
            );
            let text = if window.open_at_end {
                format!("{} (never healed)", window.lane_text())
            } else {
                window.lane_text()
            };
            if width > text.chars().count() as f64 * LABEL_CHAR_WIDTH + 6.0 {
                let _ = write!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" class="bar-label">{}</text>"#,
                    x + 4.0,
                    bar_y + bar_height / 2.0 + 4.0,
                    escape(&text)
                );
            }
        }
    }
    if !crashes.is_empty() {
        let y = top_y + nodes.len() as f64 * lane_height;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="lane-label">client crashes</text>"#,
            MARGIN_LEFT - 6.0,
            y + 15.0,
        );
        for crash in crashes {
            let x = axis.x(crash.time_ns);
            let _ = write!(
                svg,
                r#"<path class="client-crash" d="M{:.1} {:.1}l10 10m0 -10l-10 10" stroke="{COLOUR_CLIENT_CRASH}" stroke-width="2.5"><title>{}</title></path>"#,
                x - 5.0,
                y + 6.0,
                escape(&crash_title(crash)),
            );
        }
    }
    shade_faults(
        &mut svg,
        &Faults {
            windows: Vec::new(),
            markers: faults.markers.clone(),
        },
        axis,
        top_y,
        bottom_y,
    );
    svg.push_str("</svg>");
    svg
}

/// `coordinator`, then `broker-1`, `broker-2`, ..., `broker-10` in numeric order, then the rest.
fn node_order(node: &str) -> (u8, u64, String) {
    if let Some(number) = node
        .strip_prefix("broker-")
        .and_then(|number| number.parse::<u64>().ok())
    {
        return (1, number, String::new());
    }
    let rank = if node.starts_with("coordinator") {
        0
    } else {
        2
    };
    (rank, 0, node.to_string())
}

/// One lane per partition, coloured by its leader, hatched while the ISR is smaller than the
/// largest seen, dark red while there is no leader.
pub fn leadership_chart(rows: &Leadership, faults: &Faults, axis: &TimeAxis) -> String {
    let lane_height = 24.0;
    let top_y = 4.0;
    let bottom_y = top_y + lane_height * rows.len().max(1) as f64;
    let height = bottom_y + 22.0;
    let mut svg = String::new();
    open_svg(&mut svg, height, "partition leaders over time");
    svg.push_str(r#"<defs><pattern id="shrunk" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="rgba(255,255,255,0.55)"/></pattern></defs>"#);
    axis.draw(&mut svg, top_y, bottom_y, false);
    for (lane, ((topic, partition), segments)) in rows.iter().enumerate() {
        let y = top_y + lane as f64 * lane_height;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="lane-label">{}-{partition}</text>"#,
            MARGIN_LEFT - 6.0,
            y + 16.0,
            escape(topic)
        );
        let full_isr = segments
            .iter()
            .map(|segment| segment.isr.len())
            .max()
            .unwrap_or(0);
        for segment in segments {
            let end_ns = segment.end_ns.unwrap_or(axis.end_ns);
            let x = axis.x(segment.start_ns);
            let width = (axis.x(end_ns) - x).max(1.0);
            let leader = if segment.leader < 0 {
                "no leader".to_string()
            } else {
                format!("leader {}", segment.leader)
            };
            let isr: Vec<String> = segment.isr.iter().map(i32::to_string).collect();
            let title = format!(
                "{topic}-{partition}: {leader}, ISR [{}] from {} to {}",
                isr.join(","),
                format_time_ns(segment.start_ns),
                format_time_ns(end_ns)
            );
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{width:.1}" height="{:.1}" fill="{}"><title>{}</title></rect>"#,
                y + 3.0,
                lane_height - 6.0,
                broker_colour(segment.leader),
                escape(&title)
            );
            if segment.isr.len() < full_isr {
                let _ = write!(
                    svg,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{width:.1}" height="{:.1}" fill="url(#shrunk)"/>"#,
                    y + 3.0,
                    lane_height - 6.0,
                );
            }
            let text = if segment.leader < 0 {
                "none".to_string()
            } else if width > 70.0 {
                format!("{} · ISR {}", segment.leader, segment.isr.len())
            } else {
                segment.leader.to_string()
            };
            if width > text.chars().count() as f64 * LABEL_CHAR_WIDTH + 6.0 {
                let _ = write!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" class="bar-label">{}</text>"#,
                    x + 4.0,
                    y + 16.0,
                    escape(&text)
                );
            }
        }
    }
    // Fault windows as outlines only, so the leaders' colours stay readable.
    for window in faults.distinct_windows() {
        let x = axis.x(window.start_ns);
        let width = (axis.x(window.end_ns) - x).max(1.5);
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{top_y:.1}" width="{width:.1}" height="{:.1}" fill="none" stroke="{}" stroke-width="1.5" stroke-dasharray="4 2"><title>{}</title></rect>"#,
            bottom_y - top_y,
            fault_colour(&window.f),
            escape(&window_title(window)),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_cover_the_peak() {
        assert_eq!(linear_ticks(283.0), (50.0, 300.0));
        assert_eq!(linear_ticks(0.0), (1.0, 4.0));
        let (step, top) = linear_ticks(7.0);
        assert!(top >= 7.0 && top / step <= 8.0);
    }

    #[test]
    fn decades_read_as_round_durations() {
        let labels: Vec<String> = (1..=7).map(decade_label).collect();
        assert_eq!(
            labels,
            ["10 µs", "100 µs", "1 ms", "10 ms", "100 ms", "1 s", "10 s"]
        );
    }

    #[test]
    fn brokers_sort_numerically_after_the_coordinator() {
        let mut nodes = vec!["broker-10", "broker-2", "coordinator", "zk"];
        nodes.sort_by_key(|node| node_order(node));
        assert_eq!(nodes, vec!["coordinator", "broker-2", "broker-10", "zk"]);
    }
}
