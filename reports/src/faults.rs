//! Fault windows from the nemesis operations of a history: a fault to a node's process
//! (`kill`, `pause`, `stop`, and `lose-unfsynced` and `power-loss`, which kill it) opens a
//! window on its node that the node's heal (`resume`, `start`, `restart`, or a `heal` of
//! everything) closes, or that runs to the end of the run; a fault to its disk (`disk-full`,
//! `disk-error`, `slow-disk`) opens a window beside it that `heal-disk` or a `heal` closes. A
//! `restart` of a running node is a window of its own, from its invocation to its completion.
//! Operations that failed, or that heal nothing, become markers.

use std::collections::BTreeMap;

use crate::history_scan::NemesisOp;

/// A node that was down or frozen from `start_ns` to `end_ns`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    pub start_ns: u64,
    pub end_ns: u64,
    /// Still open when the history ended.
    pub open_at_end: bool,
    /// The fault: `kill`, `pause`, `stop`, `restart`, `lose-unfsynced`, `power-loss`,
    /// `disk-full`, `disk-error` or `slow-disk`.
    pub f: String,
    pub node: String,
    pub why: Option<String>,
    /// What closed it: `resume`, `start`, `restart`, `heal`.
    pub healed_by: Option<String>,
}

impl FaultWindow {
    /// `kill broker-2`.
    pub fn label(&self) -> String {
        format!("{} {}", self.f, self.node)
    }
}

/// A nemesis operation that opened no window: a heal of everything, a failed fault, a start of
/// a node that was up.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultMarker {
    pub time_ns: u64,
    pub label: String,
    pub detail: String,
}

/// The windows (by start time) and markers of a history's nemesis operations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub windows: Vec<FaultWindow>,
    pub markers: Vec<FaultMarker>,
}

/// One nemesis operation, invocation and completion paired.
struct Event<'a> {
    f: &'a str,
    node: Option<&'a str>,
    why: Option<&'a str>,
    error: Option<&'a str>,
    start_ns: u64,
    end_ns: u64,
}

/// Builds the windows; open ones end at `run_end_ns`.
pub fn fault_windows(ops: &[NemesisOp], run_end_ns: u64) -> Faults {
    let mut faults = Faults::default();
    let mut open: BTreeMap<String, FaultWindow> = BTreeMap::new();
    for event in pair(ops, run_end_ns) {
        let node = match (event.node, event.error) {
            (Some(node), None) => node,
            (node, error) => {
                faults.markers.push(FaultMarker {
                    time_ns: event.start_ns,
                    label: format!("{} {} failed", event.f, node.unwrap_or("?")),
                    detail: error.or(event.why).unwrap_or("no node").to_string(),
                });
                continue;
            }
        };
        match event.f {
            "kill" | "pause" | "stop" | "lose-unfsynced" | "power-loss" | "disk-full"
            | "disk-error" | "slow-disk" => {
                open.entry(window_key(event.f, node))
                    .or_insert_with(|| FaultWindow {
                        start_ns: event.start_ns,
                        end_ns: run_end_ns,
                        open_at_end: true,
                        f: event.f.to_string(),
                        node: node.to_string(),
                        why: event.why.map(str::to_string),
                        healed_by: None,
                    });
            }
            "heal-disk" => match open.remove(&window_key(event.f, node)) {
                Some(window) => faults.windows.push(close(window, event.end_ns, event.f)),
                None => faults.markers.push(FaultMarker {
                    time_ns: event.end_ns,
                    label: format!("heal-disk {node}"),
                    detail: "the disk had no fault".to_string(),
                }),
            },
            "resume" | "start" | "restart" => match open.remove(node) {
                Some(window) => faults.windows.push(close(window, event.end_ns, event.f)),
                None if event.f == "restart" => faults.windows.push(FaultWindow {
                    start_ns: event.start_ns,
                    end_ns: event.end_ns,
                    open_at_end: false,
                    f: "restart".to_string(),
                    node: node.to_string(),
                    why: event.why.map(str::to_string),
                    healed_by: None,
                }),
                None => faults.markers.push(FaultMarker {
                    time_ns: event.end_ns,
                    label: format!("{} {node}", event.f),
                    detail: "the node was not down".to_string(),
                }),
            },
            "heal" => {
                for (_, window) in std::mem::take(&mut open) {
                    faults.windows.push(close(window, event.end_ns, "heal"));
                }
                faults.markers.push(FaultMarker {
                    time_ns: event.end_ns,
                    label: "heal".to_string(),
                    detail: event.why.unwrap_or("heal every node").to_string(),
                });
            }
            other => faults.markers.push(FaultMarker {
                time_ns: event.start_ns,
                label: format!("{other} {node}"),
                detail: event.why.unwrap_or("").to_string(),
            }),
        }
    }
    faults.windows.extend(open.into_values());
    faults
        .windows
        .sort_by_key(|window| (window.start_ns, window.node.clone()));
    faults
}

/// Where a fault's window is kept while open: a node's process and its disk each have one.
fn window_key(f: &str, node: &str) -> String {
    match f {
        "disk-full" | "disk-error" | "slow-disk" | "heal-disk" => format!("{node} disk"),
        _ => node.to_string(),
    }
}

fn close(mut window: FaultWindow, end_ns: u64, healed_by: &str) -> FaultWindow {
    window.end_ns = end_ns.max(window.start_ns);
    window.open_at_end = false;
    window.healed_by = Some(healed_by.to_string());
    window
}

/// Pairs each invocation with the next completion of the same operation; a completion without
/// an invocation is an event of its own, an invocation without a completion lasts to the end.
fn pair(ops: &[NemesisOp], run_end_ns: u64) -> Vec<Event<'_>> {
    let mut events: Vec<(usize, Event<'_>)> = Vec::new();
    let mut pending: Vec<(usize, &NemesisOp)> = Vec::new();
    for (position, op) in ops.iter().enumerate() {
        if op.invoke {
            pending.push((position, op));
            continue;
        }
        let invoked = pending
            .iter()
            .position(|(_, invoke)| invoke.f == op.f && invoke.node == op.node)
            .map(|found| pending.remove(found));
        let (position, start_ns) = match invoked {
            Some((position, invoke)) => (position, invoke.time_ns),
            None => (position, op.time_ns),
        };
        events.push((
            position,
            Event {
                f: &op.f,
                node: op.node.as_deref(),
                why: op.why.as_deref(),
                error: op.error.as_deref(),
                start_ns,
                end_ns: op.time_ns,
            },
        ));
    }
    for (position, invoke) in pending {
        events.push((
            position,
            Event {
                f: &invoke.f,
                node: invoke.node.as_deref(),
                why: invoke.why.as_deref(),
                error: None,
                start_ns: invoke.time_ns,
                end_ns: run_end_ns,
            },
        ));
    }
    events.sort_by_key(|(position, _)| *position);
    events.into_iter().map(|(_, event)| event).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(time_ns: u64, invoke: bool, f: &str, node: &str) -> NemesisOp {
        NemesisOp {
            time_ns,
            invoke,
            f: f.to_string(),
            node: Some(node.to_string()),
            why: None,
            error: None,
        }
    }

    #[test]
    fn a_kill_runs_to_its_start_and_a_pause_to_the_end() {
        let ops = vec![
            op(10, true, "kill", "broker-2"),
            op(12, false, "kill", "broker-2"),
            op(20, true, "pause", "broker-1"),
            op(21, false, "pause", "broker-1"),
            op(30, true, "start", "broker-2"),
            op(35, false, "start", "broker-2"),
        ];
        let faults = fault_windows(&ops, 100);
        assert_eq!(faults.windows.len(), 2);
        assert_eq!(faults.windows[0].label(), "kill broker-2");
        assert_eq!(
            (faults.windows[0].start_ns, faults.windows[0].end_ns),
            (10, 35)
        );
        assert_eq!(faults.windows[0].healed_by.as_deref(), Some("start"));
        assert_eq!(
            (faults.windows[1].start_ns, faults.windows[1].end_ns),
            (20, 100)
        );
        assert!(faults.windows[1].open_at_end);
    }

    #[test]
    fn heal_closes_everything_and_failures_are_markers() {
        let mut failed = op(5, false, "kill", "broker-3");
        failed.error = Some("no such node".to_string());
        let ops = vec![
            op(1, true, "kill", "broker-1"),
            op(2, false, "kill", "broker-1"),
            op(4, true, "kill", "broker-3"),
            failed,
            op(8, true, "heal", "all"),
            op(9, false, "heal", "all"),
            op(10, true, "restart", "broker-2"),
            op(15, false, "restart", "broker-2"),
        ];
        let faults = fault_windows(&ops, 50);
        let windows: Vec<(String, u64, u64)> = faults
            .windows
            .iter()
            .map(|window| (window.label(), window.start_ns, window.end_ns))
            .collect();
        assert_eq!(
            windows,
            vec![
                ("kill broker-1".to_string(), 1, 9),
                ("restart broker-2".to_string(), 10, 15)
            ]
        );
        let labels: Vec<&str> = faults
            .markers
            .iter()
            .map(|marker| marker.label.as_str())
            .collect();
        assert_eq!(labels, vec!["kill broker-3 failed", "heal"]);
    }

    #[test]
    fn disk_windows_sit_beside_process_windows() {
        let ops = vec![
            op(1, true, "slow-disk", "broker-1"),
            op(2, false, "slow-disk", "broker-1"),
            op(3, true, "power-loss", "broker-1"),
            op(3, true, "power-loss", "broker-2"),
            op(4, false, "power-loss", "broker-1"),
            op(4, false, "power-loss", "broker-2"),
            op(6, true, "heal-disk", "broker-1"),
            op(7, false, "heal-disk", "broker-1"),
            op(8, true, "start", "broker-1"),
            op(9, false, "start", "broker-1"),
            op(10, true, "disk-full", "broker-3"),
            op(11, false, "disk-full", "broker-3"),
        ];
        let faults = fault_windows(&ops, 50);
        let windows: Vec<(String, u64, u64, Option<&str>)> = faults
            .windows
            .iter()
            .map(|window| {
                (
                    window.label(),
                    window.start_ns,
                    window.end_ns,
                    window.healed_by.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            windows,
            vec![
                ("slow-disk broker-1".to_string(), 1, 7, Some("heal-disk")),
                ("power-loss broker-1".to_string(), 3, 9, Some("start")),
                ("power-loss broker-2".to_string(), 3, 50, None),
                ("disk-full broker-3".to_string(), 10, 50, None),
            ]
        );
    }
}
