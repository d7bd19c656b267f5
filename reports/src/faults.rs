//! Fault windows from the nemesis operations of a history: a fault to a node's process
//! (`kill`, `pause`, `stop`, and `lose-unfsynced` and `power-loss`, which kill it) opens a
//! window on its node that the node's heal (`resume`, `start`, `restart`, or a `heal` of
//! everything) closes, or that runs to the end of the run; a fault to its disk (`disk-full`,
//! `disk-error`, `slow-disk`) opens a window beside it that `heal-disk` or a `heal` closes. A
//! `restart` of a running node is a window of its own, from its invocation to its completion. A `partition` opens a window on
//! every node its grudge makes deaf to others (who could not hear whom, per node), closed by
//! the next partition (which replaces the grudge) or a `heal` (of the network, or of
//! everything). Operations that failed, or that heal nothing, become markers.

use std::collections::BTreeMap;

use crate::history_scan::NemesisOp;

/// A node that was down or frozen from `start_ns` to `end_ns`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    pub start_ns: u64,
    pub end_ns: u64,
    /// Still open when the history ended.
    pub open_at_end: bool,
    /// The fault: `kill`, `pause`, `stop` or `restart`.
    pub f: String,
    pub node: String,
    pub why: Option<String>,
    /// What closed it: `resume`, `start`, `restart`, `heal`, `partition` (a new grudge).
    pub healed_by: Option<String>,
    /// For a `partition`: the whole partition it is one node's share of (`partition isolate
    /// broker-1`); the windows of one partition share it and their start.
    pub part_of: Option<String>,
    /// For a `partition`: the nodes this one heard nothing from.
    pub deaf_to: Vec<String>,
}

impl FaultWindow {
    /// `kill broker-2`, or the whole partition (`partition isolate broker-1`).
    pub fn label(&self) -> String {
        match &self.part_of {
            Some(partition) => partition.clone(),
            None => format!("{} {}", self.f, self.node),
        }
    }

    /// What its node's lane says: the fault, or for a partition whom it could not hear.
    pub fn lane_text(&self) -> String {
        if self.deaf_to.is_empty() {
            self.f.clone()
        } else {
            format!("hears nothing from {}", self.deaf_to.join(", "))
        }
    }
}

impl Faults {
    /// The windows with one per partition (its first node's): what the time axis of the other
    /// charts shades and labels.
    pub fn distinct_windows(&self) -> impl Iterator<Item = &FaultWindow> {
        let mut seen: Vec<(u64, &str)> = Vec::new();
        self.windows
            .iter()
            .filter(move |window| match &window.part_of {
                Some(partition) => {
                    let key = (window.start_ns, partition.as_str());
                    let first = !seen.contains(&key);
                    seen.push(key);
                    first
                }
                None => true,
            })
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
    grudge: Option<&'a history::Grudge>,
    topology: Option<&'a str>,
    what: Option<&'a str>,
    start_ns: u64,
    end_ns: u64,
}

/// Builds the windows; open ones end at `run_end_ns`.
pub fn fault_windows(ops: &[NemesisOp], run_end_ns: u64) -> Faults {
    let mut faults = Faults::default();
    let mut open: BTreeMap<String, FaultWindow> = BTreeMap::new();
    // The current partition's windows, by deaf node.
    let mut partitioned: BTreeMap<String, FaultWindow> = BTreeMap::new();
    for event in pair(ops, run_end_ns) {
        match (event.f, event.error) {
            ("partition", None) => {
                for (_, window) in std::mem::take(&mut partitioned) {
                    faults
                        .windows
                        .push(close(window, event.start_ns, "partition"));
                }
                partitioned = partition_windows(&event, run_end_ns);
                continue;
            }
            ("heal", None) if event.what == Some("network") || event.node == Some("all") => {
                for (_, window) in std::mem::take(&mut partitioned) {
                    faults.windows.push(close(window, event.end_ns, "heal"));
                }
                if event.what == Some("network") {
                    faults.markers.push(FaultMarker {
                        time_ns: event.end_ns,
                        label: "heal network".to_string(),
                        detail: event.why.unwrap_or("heal the network").to_string(),
                    });
                    continue;
                }
            }
            ("partition" | "heal", Some(error)) => {
                faults.markers.push(FaultMarker {
                    time_ns: event.start_ns,
                    label: format!("{} failed", event.f),
                    detail: error.to_string(),
                });
                continue;
            }
            _ => {}
        }
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
                        part_of: None,
                        deaf_to: Vec::new(),
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
                    part_of: None,
                    deaf_to: Vec::new(),
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
    faults.windows.extend(partitioned.into_values());
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

/// One window per node the partition's grudge makes deaf, open until closed.
fn partition_windows(event: &Event<'_>, run_end_ns: u64) -> BTreeMap<String, FaultWindow> {
    let part_of = format!(
        "partition {}{}",
        event.topology.unwrap_or("?"),
        event
            .node
            .map(|node| format!(" {node}"))
            .unwrap_or_default()
    );
    event
        .grudge
        .into_iter()
        .flatten()
        .filter(|(_, senders)| !senders.is_empty())
        .map(|(receiver, senders)| {
            let window = FaultWindow {
                start_ns: event.start_ns,
                end_ns: run_end_ns,
                open_at_end: true,
                f: "partition".to_string(),
                node: receiver.clone(),
                why: Some(match event.why {
                    Some(why) => format!(
                        "{receiver} hears nothing from {} ({part_of}: {why})",
                        senders.join(", ")
                    ),
                    None => format!(
                        "{receiver} hears nothing from {} ({part_of})",
                        senders.join(", ")
                    ),
                }),
                healed_by: None,
                part_of: Some(part_of.clone()),
                deaf_to: senders.clone(),
            };
            (receiver.clone(), window)
        })
        .collect()
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
                grudge: op.grudge.as_ref(),
                topology: op.topology.as_deref(),
                what: op.what.as_deref(),
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
                grudge: invoke.grudge.as_ref(),
                topology: invoke.topology.as_deref(),
                what: invoke.what.as_deref(),
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
            grudge: None,
            topology: None,
            what: None,
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

    fn partition(time_ns: u64, invoke: bool, grudge: &[(&str, &[&str])]) -> NemesisOp {
        let mut op = op(time_ns, invoke, "partition", "broker-1");
        op.topology = Some("isolate".to_string());
        op.why = Some("leader of t-0".to_string());
        op.grudge = Some(
            grudge
                .iter()
                .map(|(node, senders)| {
                    (
                        node.to_string(),
                        senders.iter().map(|sender| sender.to_string()).collect(),
                    )
                })
                .collect(),
        );
        op
    }

    #[test]
    fn a_partition_is_a_window_per_deaf_node_until_the_network_heals() {
        let isolate: &[(&str, &[&str])] = &[
            ("broker-1", &["broker-2", "coordinator"]),
            ("broker-2", &["broker-1"]),
            ("coordinator", &["broker-1"]),
        ];
        let mut heal_network = op(40, true, "heal", "");
        heal_network.node = None;
        heal_network.what = Some("network".to_string());
        let mut healed = heal_network.clone();
        healed.invoke = false;
        healed.time_ns = 42;
        let ops = vec![
            partition(10, true, isolate),
            partition(11, false, isolate),
            op(20, true, "kill", "broker-2"),
            op(21, false, "kill", "broker-2"),
            heal_network,
            healed,
        ];
        let faults = fault_windows(&ops, 100);
        let lanes: Vec<(String, String, u64, u64)> = faults
            .windows
            .iter()
            .map(|window| {
                (
                    window.node.clone(),
                    window.lane_text(),
                    window.start_ns,
                    window.end_ns,
                )
            })
            .collect();
        assert_eq!(
            lanes,
            vec![
                (
                    "broker-1".to_string(),
                    "hears nothing from broker-2, coordinator".to_string(),
                    10,
                    42
                ),
                (
                    "broker-2".to_string(),
                    "hears nothing from broker-1".to_string(),
                    10,
                    42
                ),
                (
                    "coordinator".to_string(),
                    "hears nothing from broker-1".to_string(),
                    10,
                    42
                ),
                ("broker-2".to_string(), "kill".to_string(), 20, 100),
            ]
        );
        assert_eq!(
            faults.windows[0].label(),
            "partition isolate broker-1",
            "the whole partition's name"
        );
        assert_eq!(faults.distinct_windows().count(), 2, "one per partition");
        assert_eq!(faults.markers[0].label, "heal network");
    }

    #[test]
    fn a_new_partition_replaces_the_grudge() {
        let first: &[(&str, &[&str])] = &[("broker-1", &["broker-2"])];
        let second: &[(&str, &[&str])] = &[("broker-3", &["broker-2"])];
        let ops = vec![
            partition(10, true, first),
            partition(11, false, first),
            partition(30, true, second),
            partition(31, false, second),
        ];
        let faults = fault_windows(&ops, 100);
        let spans: Vec<(&str, u64, u64, bool)> = faults
            .windows
            .iter()
            .map(|window| {
                (
                    window.node.as_str(),
                    window.start_ns,
                    window.end_ns,
                    window.open_at_end,
                )
            })
            .collect();
        assert_eq!(
            spans,
            vec![("broker-1", 10, 30, false), ("broker-3", 30, 100, true)]
        );
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
