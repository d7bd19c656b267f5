//! The drawing vocabulary shared by the charts: the page-wide time axis (every chart of a
//! report uses the same one, so a fault lines up with what it did), nice tick steps, log
//! scales, number formats and the colours.

use std::fmt::Write;

/// Width of every chart, in SVG units (the page scales it to the window).
pub const CHART_WIDTH: f64 = 1160.0;
/// Left margin for the y-axis labels.
pub const MARGIN_LEFT: f64 = 86.0;
/// Right margin.
pub const MARGIN_RIGHT: f64 = 14.0;

pub const COLOUR_OK: &str = "#4c78a8";
pub const COLOUR_FAIL: &str = "#f58518";
pub const COLOUR_INFO: &str = "#9467bd";
pub const COLOUR_LOST: &str = "#d62728";
/// Client worker crashes.
pub const COLOUR_CLIENT_CRASH: &str = "#111";
pub const COLOUR_AXIS: &str = "#666";
pub const COLOUR_GRID: &str = "#e4e4e4";

/// The fill of a fault window, by fault.
pub fn fault_colour(f: &str) -> &'static str {
    match f {
        "kill" => "#e45756",
        "pause" => "#e6a800",
        "stop" => "#8c8c8c",
        "restart" => "#17becf",
        "partition" => "#7b61c4",
        "lose-unfsynced" => "#c51b7d",
        "power-loss" => "#762a83",
        "disk-full" => "#fd8d3c",
        "disk-error" => "#a6611a",
        "slow-disk" => "#74add1",
        _ => "#bbbbbb",
    }
}

/// A broker's colour in the leadership timeline; no leader is dark red.
pub fn broker_colour(broker: i32) -> &'static str {
    const PALETTE: [&str; 8] = [
        "#4c78a8", "#54a24b", "#b279a2", "#eeca3b", "#72b7b2", "#ff9da6", "#9d755d", "#bab0ac",
    ];
    if broker < 0 {
        return "#7a0f12";
    }
    PALETTE[(broker as usize).wrapping_sub(1) % PALETTE.len()]
}

/// Maps run time (ns since the history started) to x.
#[derive(Debug, Clone, Copy)]
pub struct TimeAxis {
    pub start_ns: u64,
    pub end_ns: u64,
}

impl TimeAxis {
    /// An axis over `[start_ns, end_ns]`, at least one millisecond long.
    pub fn new(start_ns: u64, end_ns: u64) -> Self {
        TimeAxis {
            start_ns,
            end_ns: end_ns.max(start_ns.saturating_add(1_000_000)),
        }
    }

    pub fn plot_width() -> f64 {
        CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    }

    /// x of `time_ns`, clamped to the plot.
    pub fn x(&self, time_ns: u64) -> f64 {
        let span = (self.end_ns - self.start_ns) as f64;
        let offset = time_ns.clamp(self.start_ns, self.end_ns) - self.start_ns;
        MARGIN_LEFT + offset as f64 / span * Self::plot_width()
    }

    /// Tick times (ns) and their labels: a nice step giving at most about 12 ticks.
    pub fn ticks(&self) -> Vec<(u64, String)> {
        let span_s = (self.end_ns - self.start_ns) as f64 / 1e9;
        let steps_s = [
            0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
            60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0, 86400.0,
        ];
        let step_s = steps_s
            .iter()
            .copied()
            .find(|step| span_s / step <= 12.0)
            .unwrap_or(86400.0 * (span_s / 86400.0 / 12.0).ceil().max(1.0));
        let step_ns = (step_s * 1e9) as u64;
        let first = self.start_ns.div_ceil(step_ns) * step_ns;
        (0..=64)
            .map(|tick| first + tick * step_ns)
            .take_while(|time_ns| *time_ns <= self.end_ns)
            .map(|time_ns| (time_ns, format_seconds(time_ns as f64 / 1e9, step_s)))
            .collect()
    }

    /// Vertical grid lines and tick labels below `bottom_y`, from `top_y`.
    pub fn draw(&self, svg: &mut String, top_y: f64, bottom_y: f64, with_title: bool) {
        for (time_ns, label) in self.ticks() {
            let x = self.x(time_ns);
            let _ = write!(
                svg,
                r#"<line x1="{x:.1}" y1="{top_y:.1}" x2="{x:.1}" y2="{bottom_y:.1}" stroke="{COLOUR_GRID}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" class="tick">{label}</text>"#,
                bottom_y + 14.0
            );
        }
        let _ = write!(
            svg,
            r#"<line x1="{MARGIN_LEFT}" y1="{bottom_y:.1}" x2="{:.1}" y2="{bottom_y:.1}" stroke="{COLOUR_AXIS}"/>"#,
            CHART_WIDTH - MARGIN_RIGHT
        );
        if with_title {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis-title">time since the run started</text>"#,
                MARGIN_LEFT + Self::plot_width() / 2.0,
                bottom_y + 30.0
            );
        }
    }
}

/// `12 s`, `1.5 s`, `2 min`, `1 h 30 min`, precise enough for a tick `step_s` apart.
pub fn format_seconds(seconds: f64, step_s: f64) -> String {
    if step_s >= 60.0 && seconds >= 60.0 {
        let minutes = (seconds / 60.0).round() as u64;
        if minutes >= 60 {
            return match minutes % 60 {
                0 => format!("{} h", minutes / 60),
                rest => format!("{} h {rest} min", minutes / 60),
            };
        }
        return format!("{minutes} min");
    }
    let decimals = if step_s >= 1.0 {
        0
    } else if step_s >= 0.1 {
        1
    } else if step_s >= 0.01 {
        2
    } else {
        3
    };
    format!("{seconds:.decimals$} s")
}

/// A run time for tables: `12.345 s`.
pub fn format_time_ns(time_ns: u64) -> String {
    format!("{:.3} s", time_ns as f64 / 1e9)
}

/// A duration in microseconds for people: `850 µs`, `12.3 ms`, `4.2 s`.
pub fn format_micros(micros: u64) -> String {
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        let millis = micros as f64 / 1e3;
        if millis < 10.0 {
            format!("{millis:.2} ms")
        } else if millis < 100.0 {
            format!("{millis:.1} ms")
        } else {
            format!("{millis:.0} ms")
        }
    } else {
        format!("{:.2} s", micros as f64 / 1e6)
    }
}

/// A log10 scale over whole decades of microseconds, mapped to `[bottom_y, top_y]`.
#[derive(Debug, Clone, Copy)]
pub struct LogScale {
    pub low_decade: i32,
    pub high_decade: i32,
    pub top_y: f64,
    pub bottom_y: f64,
}

impl LogScale {
    /// Whole decades around `[min_us, max_us]`, at least three, the largest value below the top.
    pub fn covering(min_us: u64, max_us: u64, top_y: f64, bottom_y: f64) -> Self {
        let high_decade = (max_us.max(1) as f64).log10().floor() as i32 + 1;
        let mut low_decade = (min_us.max(1) as f64).log10().floor() as i32;
        if low_decade > high_decade - 3 {
            low_decade = (high_decade - 3).max(0);
        }
        LogScale {
            low_decade,
            high_decade,
            top_y,
            bottom_y,
        }
    }

    pub fn y(&self, micros: u64) -> f64 {
        let position = ((micros.max(1) as f64).log10() - f64::from(self.low_decade))
            / f64::from(self.high_decade - self.low_decade);
        self.bottom_y - position.clamp(0.0, 1.0) * (self.bottom_y - self.top_y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside() {
        let axis = TimeAxis::new(0, 30_000_000_000);
        let ticks = axis.ticks();
        assert_eq!(ticks.first().map(|(_, label)| label.as_str()), Some("0 s"));
        assert_eq!(ticks.get(1).map(|(_, label)| label.as_str()), Some("5 s"));
        assert!(ticks.len() <= 13);
        assert!((axis.x(30_000_000_000) - (CHART_WIDTH - MARGIN_RIGHT)).abs() < 1e-6);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_micros(850), "850 µs");
        assert_eq!(format_micros(12_345), "12.3 ms");
        assert_eq!(format_micros(4_200_000), "4.20 s");
        assert_eq!(format_seconds(5400.0, 900.0), "1 h 30 min");
    }

    #[test]
    fn log_scale_spans_whole_decades() {
        let scale = LogScale::covering(350, 2_500_000, 0.0, 100.0);
        assert_eq!((scale.low_decade, scale.high_decade), (2, 7));
        let timeouts = LogScale::covering(10_000_000, 10_200_000, 0.0, 100.0);
        assert_eq!((timeouts.low_decade, timeouts.high_decade), (5, 8));
        assert!((scale.y(100) - 100.0).abs() < 1e-9);
        assert!(scale.y(10_000_000).abs() < 1e-9);
    }
}
