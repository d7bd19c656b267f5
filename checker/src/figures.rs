//! The figures beside the verdict: per operation type counts and latency (hdrhistogram),
//! unavailability after each nemesis operation, and a per-second timeline of send completions.
//! Fed one operation at a time, in history order.

use std::collections::{BTreeMap, VecDeque};

use hdrhistogram::Histogram;
use history::{OpType, Process};

use super::results::{FaultFigures, LatencyMicros, OperationFigures, SecondCounts};
use super::values::FastMap;

/// Latencies are recorded between 1 µs and one hour, 3 significant digits.
const LATENCY_MAX_US: u64 = 3_600_000_000;
/// The timeline covers at most this many seconds (about 11 days).
const TIMELINE_MAX_SECONDS: u64 = 1_000_000;
/// At most this many pending invocations are remembered per (process, operation type).
const PENDING_PER_PROCESS_MAX: usize = 4096;

/// Counts and latency of one operation type.
struct OperationStats {
    name: String,
    invoked: u64,
    completions_without_invoke: u64,
    ok: u64,
    fail: u64,
    info: u64,
    latency_us: Option<Histogram<u64>>,
}

impl OperationStats {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            invoked: 0,
            completions_without_invoke: 0,
            ok: 0,
            fail: 0,
            info: 0,
            latency_us: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).ok(),
        }
    }
}

/// Indexes of the operation types the checker interprets (registered first).
pub const SEND: usize = 0;
pub const POLL: usize = 1;
pub const ASSIGN: usize = 2;
pub const FINAL_READ: usize = 3;

/// Per operation type figures. Operation types are few, so they live in a small vector.
pub struct OperationFiguresBuilder {
    types: Vec<OperationStats>,
    /// Invocation times of operations other than sends, per (process, type index), oldest first.
    pending: FastMap<(Process, usize), VecDeque<u64>>,
    first_ns: Option<u64>,
    last_ns: u64,
}

impl Default for OperationFiguresBuilder {
    fn default() -> Self {
        Self {
            types: ["send", "poll", "assign", "final-read"]
                .into_iter()
                .map(OperationStats::new)
                .collect(),
            pending: FastMap::default(),
            first_ns: None,
            last_ns: 0,
        }
    }
}

impl OperationFiguresBuilder {
    /// The index of an operation type, registering it if new.
    pub fn type_index(&mut self, f: &str) -> usize {
        if let Some(index) = self.types.iter().position(|stats| stats.name == f) {
            return index;
        }
        self.types.push(OperationStats::new(f));
        self.types.len() - 1
    }

    /// Notes the time of any operation (for the run's duration).
    pub fn observe_time(&mut self, time_ns: u64) {
        if self.first_ns.is_none() {
            self.first_ns = Some(time_ns);
        }
        self.last_ns = self.last_ns.max(time_ns);
    }

    /// Records an operation whose invocation the caller matches itself (sends, matched by
    /// value): `invoke_ns` is the matched invocation's time, if any.
    pub fn record_matched(
        &mut self,
        index: usize,
        op_type: OpType,
        time_ns: u64,
        invoke_ns: Option<u64>,
    ) {
        self.count(index, op_type, time_ns, invoke_ns);
    }

    /// Records an operation matched to its invocation by process, oldest pending first.
    pub fn record_by_process(
        &mut self,
        index: usize,
        process: Process,
        op_type: OpType,
        time_ns: u64,
    ) {
        if op_type == OpType::Invoke {
            let pending = self.pending.entry((process, index)).or_default();
            if pending.len() < PENDING_PER_PROCESS_MAX {
                pending.push_back(time_ns);
            }
            self.count(index, op_type, time_ns, None);
            return;
        }
        let invoke_ns = self
            .pending
            .get_mut(&(process, index))
            .and_then(VecDeque::pop_front);
        self.count(index, op_type, time_ns, invoke_ns);
    }

    fn count(&mut self, index: usize, op_type: OpType, time_ns: u64, invoke_ns: Option<u64>) {
        let Some(stats) = self.types.get_mut(index) else {
            return;
        };
        match op_type {
            OpType::Invoke => {
                stats.invoked += 1;
                return;
            }
            OpType::Ok => stats.ok += 1,
            OpType::Fail => stats.fail += 1,
            OpType::Info => stats.info += 1,
        }
        match invoke_ns {
            None => stats.completions_without_invoke += 1,
            Some(invoke_ns) if op_type == OpType::Ok => {
                if let Some(histogram) = &mut stats.latency_us {
                    let micros = time_ns.saturating_sub(invoke_ns) / 1_000;
                    histogram.saturating_record(micros.max(1));
                }
            }
            Some(_) => {}
        }
    }

    /// Adds `count` invocations of `f` that never completed (counted as `info`).
    pub fn add_never_completed(&mut self, index: usize, count: u64) {
        if let Some(stats) = self.types.get_mut(index) {
            stats.info += count;
        }
    }

    /// The run's duration: last operation time minus first.
    pub fn duration_ns(&self) -> u64 {
        self.last_ns
            .saturating_sub(self.first_ns.unwrap_or(self.last_ns))
    }

    /// The figures, with pending non-send invocations counted as `info`.
    pub fn finish(mut self) -> BTreeMap<String, OperationFigures> {
        let never_completed: Vec<(usize, u64)> = self
            .pending
            .iter()
            .map(|((_, index), pending)| (*index, pending.len() as u64))
            .collect();
        for (index, count) in never_completed {
            if let Some(stats) = self.types.get_mut(index) {
                stats.info += count;
            }
        }
        let seconds = self.duration_ns() as f64 / 1e9;
        self.types
            .into_iter()
            .filter(|stats| stats.invoked + stats.completions_without_invoke > 0)
            .map(|stats| {
                let latency_us = stats
                    .latency_us
                    .as_ref()
                    .filter(|histogram| !histogram.is_empty())
                    .map(|histogram| LatencyMicros {
                        p50: histogram.value_at_quantile(0.50),
                        p90: histogram.value_at_quantile(0.90),
                        p99: histogram.value_at_quantile(0.99),
                        p99_9: histogram.value_at_quantile(0.999),
                        max: histogram.max(),
                    })
                    .unwrap_or_default();
                let figures = OperationFigures {
                    count: stats.invoked + stats.completions_without_invoke,
                    ok: stats.ok,
                    fail: stats.fail,
                    info: stats.info,
                    latency_us,
                    ok_per_second: if seconds > 0.0 {
                        stats.ok as f64 / seconds
                    } else {
                        0.0
                    },
                };
                (stats.name, figures)
            })
            .collect()
    }
}

/// One fault's window, while it is open.
struct OpenWindow {
    figures: FaultFigures,
    /// The later of the window's start and the last `ok` send in it.
    last_ok_or_start_ns: u64,
}

/// Unavailability after each nemesis operation: the time to the first `ok` send and the
/// longest stretch without one, until the next nemesis operation or the last send of the run.
#[derive(Default)]
pub struct Unavailability {
    closed: Vec<FaultFigures>,
    open: Option<OpenWindow>,
    /// Nemesis invocations not yet completed, by operation type.
    pending_nemesis: Vec<String>,
    last_send_ns: u64,
}

impl Unavailability {
    /// A nemesis operation. Its invocation opens a window; its completion only does when no
    /// invocation was seen. One aimed at a topic `partition` counts that partition's sends only.
    #[allow(clippy::too_many_arguments)]
    pub fn nemesis(
        &mut self,
        index: u64,
        time_ns: u64,
        op_type: OpType,
        f: &str,
        node: Option<&str>,
        why: Option<&str>,
        partition: Option<i32>,
    ) {
        if op_type != OpType::Invoke {
            if let Some(position) = self.pending_nemesis.iter().position(|pending| pending == f) {
                self.pending_nemesis.swap_remove(position);
                return;
            }
        } else if self.pending_nemesis.len() < PENDING_PER_PROCESS_MAX {
            self.pending_nemesis.push(f.to_string());
        }
        self.close(time_ns);
        self.open = Some(OpenWindow {
            figures: FaultFigures {
                index,
                time_ns,
                f: f.to_string(),
                node: node.map(str::to_string),
                why: why.map(str::to_string),
                partition,
                window_end_ns: time_ns,
                time_to_first_ok_send_us: None,
                longest_without_ok_send_us: 0,
            },
            last_ok_or_start_ns: time_ns,
        });
    }

    /// Any send operation (invoke or completion): the windows end at the last one.
    pub fn send_seen(&mut self, time_ns: u64) {
        self.last_send_ns = self.last_send_ns.max(time_ns);
    }

    /// An `ok` send completion to `partition`.
    pub fn send_ok(&mut self, time_ns: u64, partition: i32) {
        self.send_seen(time_ns);
        let Some(window) = &mut self.open else {
            return;
        };
        if window
            .figures
            .partition
            .is_some_and(|aimed_at| aimed_at != partition)
        {
            return;
        }
        let figures = &mut window.figures;
        if figures.time_to_first_ok_send_us.is_none() {
            figures.time_to_first_ok_send_us =
                Some(time_ns.saturating_sub(figures.time_ns) / 1_000);
        }
        let stretch_us = time_ns.saturating_sub(window.last_ok_or_start_ns) / 1_000;
        figures.longest_without_ok_send_us = figures.longest_without_ok_send_us.max(stretch_us);
        window.last_ok_or_start_ns = window.last_ok_or_start_ns.max(time_ns);
    }

    fn close(&mut self, end_ns: u64) {
        if let Some(window) = self.open.take() {
            let mut figures = window.figures;
            let end_ns = end_ns.max(figures.time_ns);
            figures.window_end_ns = end_ns;
            let trailing_us = end_ns.saturating_sub(window.last_ok_or_start_ns) / 1_000;
            figures.longest_without_ok_send_us =
                figures.longest_without_ok_send_us.max(trailing_us);
            self.closed.push(figures);
        }
    }

    /// The windows; the last one ends at the last send of the run.
    pub fn finish(mut self) -> Vec<FaultFigures> {
        let end_ns = self.last_send_ns;
        self.close(end_ns);
        self.closed
    }
}

/// Send completions per second.
#[derive(Default)]
pub struct Timeline {
    seconds: Vec<[u64; 3]>,
}

impl Timeline {
    pub fn send_completed(&mut self, time_ns: u64, op_type: OpType) {
        let column = match op_type {
            OpType::Ok => 0,
            OpType::Fail => 1,
            OpType::Info => 2,
            OpType::Invoke => return,
        };
        let second = time_ns / 1_000_000_000;
        if second >= TIMELINE_MAX_SECONDS {
            return;
        }
        let Ok(second) = usize::try_from(second) else {
            return;
        };
        if second >= self.seconds.len() {
            self.seconds.resize(second + 1, [0; 3]);
        }
        self.seconds[second][column] += 1;
    }

    pub fn finish(self) -> Vec<SecondCounts> {
        self.seconds
            .into_iter()
            .enumerate()
            .map(|(second, [ok, fail, info])| SecondCounts {
                second: second as u64,
                ok,
                fail,
                info,
            })
            .collect()
    }
}
