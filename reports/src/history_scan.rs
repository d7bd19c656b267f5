//! One streaming pass over `history.jsonl` (the `history` crate's reader) that keeps only what
//! the page draws: send latencies as points (every `fail` and `info`, and a bounded, evenly
//! spread sample of the `ok` ones), sends per second, the nemesis operations, and, per partition, the acknowledged sends and
//! those of them missing from a complete final read (lost), with when each was acknowledged.
//! Memory is bounded by the number of distinct acknowledged sends (a 64-bit hash each), not by
//! the length of the history.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::Path;

use history::line::{Line, OpName, ValueText};
use history::reader::{HistoryReader, Item};
use history::{OpType, Process};

use crate::error::ReportError;

/// `ok` points kept for the latency plot, at most.
pub const OK_POINTS_MAX: usize = 8_000;
/// `fail` and `info` points kept, at most (all of them in any sane run).
pub const PROBLEM_POINTS_MAX: usize = 50_000;
/// Lost sends remembered with their time, at most (all are counted).
pub const LOST_POINTS_MAX: usize = 20_000;
/// Nemesis operations kept, at most.
pub const NEMESIS_OPS_MAX: usize = 20_000;
/// Consumer group assignments kept, at most (all are counted).
pub const GROUP_ASSIGNS_MAX: usize = 2_000;
/// Distinct (completion, error) pairs of failed and indeterminate sends kept, at most.
pub const SEND_ERRORS_MAX: usize = 200;
/// Client crashes kept, at most (all are counted).
pub const CLIENT_CRASHES_MAX: usize = 10_000;
/// Seconds of per-second counts kept (about 11 days).
const SECONDS_MAX: u64 = 1_000_000;
/// Send invocations waiting for their completion, at most.
const PENDING_SENDS_MAX: usize = 1_000_000;
/// Columns of the `ok` point grid, at most: the plot is about 1100 pixels wide.
const GRID_COLUMNS_MAX: u64 = 550;
/// Rows of the `ok` point grid per decade of latency.
const GRID_ROWS_PER_DECADE: f64 = 24.0;

/// How a send completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail,
    Info,
}

/// One send, as drawn (as Jepsen's latency plots do): when it was invoked and how long it took
/// to complete.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendPoint {
    /// The invocation's time.
    pub time_ns: u64,
    pub latency_us: u64,
    pub outcome: Outcome,
}

/// One nemesis operation (invocation or completion).
#[derive(Debug, Clone, PartialEq)]
pub struct NemesisOp {
    pub time_ns: u64,
    pub invoke: bool,
    pub f: String,
    pub node: Option<String>,
    pub why: Option<String>,
    pub error: Option<String>,
    /// A `partition`'s grudge: node -> the nodes it hears nothing from.
    pub grudge: Option<history::Grudge>,
    /// A `partition`'s topology.
    pub topology: Option<String>,
    /// What a `heal` heals (`network`), when not everything.
    pub what: Option<String>,
}

/// A client worker that crashed (a `client-crash` event of the harness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCrashPoint {
    pub time_ns: u64,
    /// The crashed client's process number.
    pub process: Option<u64>,
    pub cause: String,
}

impl ClientCrashPoint {
    /// `client 4`.
    pub fn client(&self) -> String {
        match self.process {
            Some(process) => format!("client {process}"),
            None => "a client".to_string(),
        }
    }
}

/// How often sends completed `fail` or `info` with one error, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendErrorFigures {
    pub count: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// A consumer group member given partitions by a rebalance (a group `assign` ok).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAssign {
    pub time_ns: u64,
    pub process: u64,
    pub group: String,
    pub partitions: Vec<i32>,
    /// The committed offsets it started from, if it could fetch them.
    pub committed: Option<Vec<(i32, i64)>>,
}

/// What the consumer groups of a run did, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFigures {
    /// Processes that subscribed.
    pub members: u64,
    /// Group assignments (rebalances as each member saw them), in history order (up to
    /// [`GROUP_ASSIGNS_MAX`]).
    pub assigns: Vec<GroupAssign>,
    pub assigns_total: u64,
    pub revokes: u64,
    /// Commit completions: ok, fail, info.
    pub commits: [u64; 3],
}

/// An acknowledged send that the complete final read of its partition did not contain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LostSend {
    pub partition: i32,
    pub invoked_ns: u64,
    pub acknowledged_ns: u64,
    pub latency_us: u64,
}

/// What the final read of one partition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FinalRead {
    /// No final read of this partition in the history.
    #[default]
    Missing,
    /// The deadline passed before the whole range was read (loss not checked).
    Incomplete,
    Complete {
        records: u64,
    },
}

/// Per partition figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PartitionFigures {
    pub acknowledged: u64,
    pub lost: u64,
    pub final_read: FinalRead,
}

/// Everything the page needs from the history.
#[derive(Debug, Default)]
pub struct HistoryScan {
    pub operations: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// A sample of the `ok` sends, spread over time and latency.
    pub ok_points: Vec<SendPoint>,
    /// Every `fail` and `info` send with a known latency (up to [`PROBLEM_POINTS_MAX`]).
    pub problem_points: Vec<SendPoint>,
    /// Send completions: ok, fail, info.
    pub sends_ok: u64,
    pub sends_fail: u64,
    pub sends_info: u64,
    /// Send invocations that never completed.
    pub sends_never_completed: u64,
    /// The errors clients saw: failed (`fail`) and indeterminate (`info`) sends by
    /// (`"fail"` | `"info"`, error), up to [`SEND_ERRORS_MAX`] pairs.
    pub send_errors: BTreeMap<(&'static str, String), SendErrorFigures>,
    /// Send completions per second of the run: `[ok, fail, info]`.
    pub per_second: Vec<[u64; 3]>,
    pub nemesis: Vec<NemesisOp>,
    /// Client worker crashes, in history order (up to [`CLIENT_CRASHES_MAX`]).
    pub client_crashes: Vec<ClientCrashPoint>,
    pub client_crashes_total: u64,
    /// Lost sends in acknowledgement order (up to [`LOST_POINTS_MAX`]).
    pub lost: Vec<LostSend>,
    pub lost_total: u64,
    pub partitions: BTreeMap<i32, PartitionFigures>,
    /// Consumer groups (all zero without).
    pub groups: GroupFigures,
    /// The file ended in the middle of a line (a run that died while writing).
    pub truncated_last_line: bool,
}

/// Scans the history at `path`.
pub fn scan_history_file(path: &Path) -> Result<HistoryScan, ReportError> {
    let file = std::fs::File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ReportError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            ReportError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    scan_history(file, path)
}

/// Scans a history read from `reader`; `path` names it in errors. A malformed line is an error
/// naming its line number, except a last line cut short without its newline, which is skipped.
pub fn scan_history<R: Read>(reader: R, path: &Path) -> Result<HistoryScan, ReportError> {
    let mut scanner = Scanner::default();
    for (index, item) in HistoryReader::new(reader).enumerate() {
        let line_number = index as u64 + 1;
        match item {
            // A value the reader could not read leaves its fields empty: nothing to draw.
            Item::Line(line, _) => scanner.feed(&line),
            Item::Blank => {}
            Item::Cut(_) => {
                scanner.scan.truncated_last_line = true;
                break;
            }
            Item::Malformed(reason) => {
                return Err(ReportError::MalformedLine {
                    path: path.to_path_buf(),
                    line: line_number,
                    reason,
                });
            }
            Item::Unreadable(reason) => {
                return Err(ReportError::Read {
                    path: path.to_path_buf(),
                    source: std::io::Error::other(reason),
                });
            }
        }
    }
    Ok(scanner.finish())
}

/// An acknowledged send not yet found in a final read.
struct Acknowledged {
    partition: i32,
    invoked_ns: u64,
    acknowledged_ns: u64,
    latency_us: u64,
}

#[derive(Default)]
struct Scanner {
    scan: HistoryScan,
    seen_any: bool,
    /// Send invocation times by value.
    pending_sends: HashMap<ValueText<'static>, u64>,
    ok_grid: PointGrid,
    /// Acknowledged sends by value hash.
    acknowledged: HashMap<u64, Acknowledged>,
    complete_partitions: BTreeSet<i32>,
}

impl Scanner {
    fn feed(&mut self, op: &Line<'static>) {
        self.scan.operations += 1;
        if !self.seen_any {
            self.scan.first_ns = op.time_ns;
            self.seen_any = true;
        }
        self.scan.first_ns = self.scan.first_ns.min(op.time_ns);
        self.scan.last_ns = self.scan.last_ns.max(op.time_ns);
        match (&op.process, &op.f) {
            (Process::Nemesis, _) => self.nemesis(op),
            (Process::Harness, OpName::Other(f)) if f == "client-crash" => self.client_crash(op),
            (Process::Client(_), OpName::Send) => self.send(op),
            (Process::Client(_), OpName::FinalRead) if op.op_type == OpType::Ok => {
                self.final_read(op)
            }
            (Process::Client(process), _) => self.group(*process, op),
            (Process::Harness, _) => {}
        }
    }

    /// Consumer group operations: members, assignments, revocations, commits.
    fn group(&mut self, process: u64, op: &Line<'static>) {
        let groups = &mut self.scan.groups;
        match (&op.f, op.op_type) {
            (OpName::Subscribe, OpType::Invoke) => groups.members += 1,
            (OpName::Revoke, OpType::Ok) => groups.revokes += 1,
            (OpName::Commit, OpType::Ok) => groups.commits[0] += 1,
            (OpName::Commit, OpType::Fail) => groups.commits[1] += 1,
            (OpName::Commit, OpType::Info) => groups.commits[2] += 1,
            (OpName::Assign, OpType::Ok) => {
                let (Some(group), Some(partitions)) = (&op.value.group, &op.value.partitions)
                else {
                    return;
                };
                groups.assigns_total += 1;
                if groups.assigns.len() < GROUP_ASSIGNS_MAX {
                    groups.assigns.push(GroupAssign {
                        time_ns: op.time_ns,
                        process,
                        group: group.to_string(),
                        partitions: partitions.clone(),
                        committed: op.value.committed.clone(),
                    });
                }
            }
            _ => {}
        }
    }

    fn nemesis(&mut self, op: &Line<'static>) {
        if self.scan.nemesis.len() >= NEMESIS_OPS_MAX {
            return;
        }
        let text = |field: &Option<history::Text<'_>>| field.as_deref().map(str::to_string);
        self.scan.nemesis.push(NemesisOp {
            time_ns: op.time_ns,
            invoke: op.op_type == OpType::Invoke,
            f: op.f.as_str().to_string(),
            node: text(&op.value.node),
            why: text(&op.value.why),
            error: text(&op.value.error),
            grudge: op.value.grudge.clone(),
            topology: text(&op.value.topology),
            what: text(&op.value.what),
        });
    }

    fn client_crash(&mut self, op: &Line<'static>) {
        self.scan.client_crashes_total += 1;
        if self.scan.client_crashes.len() < CLIENT_CRASHES_MAX {
            self.scan.client_crashes.push(ClientCrashPoint {
                time_ns: op.time_ns,
                process: op.value.client_process,
                cause: op.value.cause.as_deref().unwrap_or("unknown").to_string(),
            });
        }
    }

    fn send(&mut self, op: &Line<'static>) {
        let Some(value) = &op.value.value else {
            return;
        };
        let partition = op.value.partition;
        if op.op_type == OpType::Invoke {
            if self.pending_sends.len() < PENDING_SENDS_MAX {
                self.pending_sends.insert(value.clone(), op.time_ns);
            }
            return;
        }
        let invoke_ns = self.pending_sends.remove(value);
        let latency_us =
            invoke_ns.map(|invoke_ns| (op.time_ns.saturating_sub(invoke_ns) / 1_000).max(1));
        let outcome = match op.op_type {
            OpType::Ok => Outcome::Ok,
            OpType::Fail => Outcome::Fail,
            _ => Outcome::Info,
        };
        let column = match outcome {
            Outcome::Ok => 0,
            Outcome::Fail => 1,
            Outcome::Info => 2,
        };
        match outcome {
            Outcome::Ok => self.scan.sends_ok += 1,
            Outcome::Fail => self.scan.sends_fail += 1,
            Outcome::Info => self.scan.sends_info += 1,
        }
        if outcome != Outcome::Ok {
            self.send_error(outcome, op);
        }
        let second = op.time_ns / 1_000_000_000;
        if second < SECONDS_MAX {
            let second = second as usize;
            if second >= self.scan.per_second.len() {
                self.scan.per_second.resize(second + 1, [0; 3]);
            }
            self.scan.per_second[second][column] += 1;
        }
        if let (Some(latency_us), Some(invoke_ns)) = (latency_us, invoke_ns) {
            let point = SendPoint {
                time_ns: invoke_ns,
                latency_us,
                outcome,
            };
            if outcome == Outcome::Ok {
                self.ok_grid.add(point);
            } else if self.scan.problem_points.len() < PROBLEM_POINTS_MAX {
                self.scan.problem_points.push(point);
            }
        }
        if let (Outcome::Ok, Some(partition)) = (outcome, partition) {
            self.scan
                .partitions
                .entry(partition)
                .or_default()
                .acknowledged += 1;
            self.acknowledged.insert(
                value_hash(value),
                Acknowledged {
                    partition,
                    invoked_ns: invoke_ns.unwrap_or(op.time_ns),
                    acknowledged_ns: op.time_ns,
                    latency_us: latency_us.unwrap_or(0),
                },
            );
        }
    }

    fn send_error(&mut self, outcome: Outcome, op: &Line<'static>) {
        let completion = if outcome == Outcome::Fail {
            "fail"
        } else {
            "info"
        };
        let error = op
            .value
            .error
            .as_deref()
            .unwrap_or("(no error given)")
            .to_string();
        let errors = &mut self.scan.send_errors;
        let key = (completion, error);
        if let Some(figures) = errors.get_mut(&key) {
            figures.count += 1;
            figures.first_ns = figures.first_ns.min(op.time_ns);
            figures.last_ns = figures.last_ns.max(op.time_ns);
        } else if errors.len() < SEND_ERRORS_MAX {
            errors.insert(
                key,
                SendErrorFigures {
                    count: 1,
                    first_ns: op.time_ns,
                    last_ns: op.time_ns,
                },
            );
        }
    }

    fn final_read(&mut self, op: &Line<'static>) {
        let Some(partition) = op.value.partition else {
            return;
        };
        let complete = op.value.complete == Some(true);
        let records = op.value.records.as_deref().unwrap_or_default();
        let figures = self.scan.partitions.entry(partition).or_default();
        if !complete {
            if figures.final_read == FinalRead::Missing {
                figures.final_read = FinalRead::Incomplete;
            }
            return;
        }
        let count = records.len() as u64;
        figures.final_read = match figures.final_read {
            FinalRead::Complete { records } => FinalRead::Complete {
                records: records + count,
            },
            _ => FinalRead::Complete { records: count },
        };
        self.complete_partitions.insert(partition);
        for (_, _, value) in records {
            let hash = value_hash(value);
            if self
                .acknowledged
                .get(&hash)
                .is_some_and(|acknowledged| acknowledged.partition == partition)
            {
                self.acknowledged.remove(&hash);
            }
        }
    }

    fn finish(mut self) -> HistoryScan {
        let mut lost: Vec<LostSend> = self
            .acknowledged
            .values()
            .filter(|acknowledged| self.complete_partitions.contains(&acknowledged.partition))
            .map(|acknowledged| LostSend {
                partition: acknowledged.partition,
                invoked_ns: acknowledged.invoked_ns,
                acknowledged_ns: acknowledged.acknowledged_ns,
                latency_us: acknowledged.latency_us,
            })
            .collect();
        lost.sort_by_key(|send| (send.acknowledged_ns, send.partition));
        for send in &lost {
            self.scan.partitions.entry(send.partition).or_default().lost += 1;
        }
        self.scan.lost_total = lost.len() as u64;
        lost.truncate(LOST_POINTS_MAX);
        self.scan.lost = lost;
        self.scan.sends_never_completed = self.pending_sends.len() as u64;
        self.scan.ok_points = self.ok_grid.into_points();
        self.scan
    }
}

/// A stable 64-bit hash of a message value (SipHash with fixed keys).
fn value_hash(value: &ValueText<'_>) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Keeps one `ok` point per cell of a time x log(latency) grid, so the sample shows every
/// region the full set covers. The time columns widen (doubling) as the run goes on, so there
/// are never more than [`GRID_COLUMNS_MAX`] of them, nor more than [`OK_POINTS_MAX`] points.
struct PointGrid {
    column_ns: u64,
    cells: HashMap<(u64, i32), SendPoint>,
}

impl Default for PointGrid {
    fn default() -> Self {
        PointGrid {
            column_ns: 1_000_000,
            cells: HashMap::new(),
        }
    }
}

impl PointGrid {
    fn add(&mut self, point: SendPoint) {
        while point.time_ns / self.column_ns >= GRID_COLUMNS_MAX {
            self.widen();
        }
        self.cells.entry(self.cell(&point)).or_insert(point);
        while self.cells.len() > OK_POINTS_MAX {
            self.widen();
        }
    }

    fn cell(&self, point: &SendPoint) -> (u64, i32) {
        let row = ((point.latency_us.max(1) as f64).log10() * GRID_ROWS_PER_DECADE).floor();
        (point.time_ns / self.column_ns, row as i32)
    }

    /// Doubles the column width, keeping the earliest point of each merged cell.
    fn widen(&mut self) {
        self.column_ns = self.column_ns.saturating_mul(2);
        let mut points: Vec<SendPoint> = self.cells.drain().map(|(_, point)| point).collect();
        points.sort_by_key(|point| point.time_ns);
        for point in points {
            let cell = self.cell(&point);
            self.cells.entry(cell).or_insert(point);
        }
    }

    fn into_points(self) -> Vec<SendPoint> {
        let mut points: Vec<SendPoint> = self.cells.into_values().collect();
        points.sort_by_key(|point| point.time_ns);
        points
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scan(text: &str) -> Result<HistoryScan, ReportError> {
        scan_history(text.as_bytes(), Path::new("history.jsonl"))
    }

    #[test]
    fn the_errors_clients_saw_are_counted_by_completion_and_error() {
        let line = |index: u64, time_ms: u64, kind: &str, value: &str, error: Option<&str>| {
            let error = error.map_or(String::new(), |e| format!(r#","error":"{e}""#));
            format!(
                r#"{{"index":{index},"time_ns":{},"process":1,"type":"{kind}","f":"send","value":{{"key":"k","value":"{value}"{error}}}}}"#,
                time_ms * 1_000_000
            ) + "\n"
        };
        let history = [
            line(0, 1, "invoke", "1-1", None),
            line(1, 2, "fail", "1-1", Some("KAFKA_STORAGE_ERROR")),
            line(2, 3, "invoke", "1-2", None),
            line(3, 9, "fail", "1-2", Some("KAFKA_STORAGE_ERROR")),
            line(4, 10, "invoke", "1-3", None),
            line(5, 12, "info", "1-3", Some("MSG_TIMED_OUT")),
            line(6, 13, "invoke", "1-4", None),
            line(7, 14, "ok", "1-4", None),
        ]
        .concat();
        let scan = scan(&history).unwrap();
        let storage = scan.send_errors[&("fail", "KAFKA_STORAGE_ERROR".to_string())];
        assert_eq!(
            (storage.count, storage.first_ns, storage.last_ns),
            (2, 2_000_000, 9_000_000)
        );
        assert_eq!(
            scan.send_errors[&("info", "MSG_TIMED_OUT".to_string())].count,
            1
        );
        assert_eq!(scan.send_errors.len(), 2);
    }

    #[test]
    fn sends_are_points_at_their_invocation_and_loss_is_per_partition() {
        let history = concat!(
            r#"{"index":0,"time_ns":1000000,"process":1,"type":"invoke","f":"send","value":{"key":"k","value":"1-1"}}"#,
            "\n",
            r#"{"index":1,"time_ns":1500000,"process":2,"type":"invoke","f":"send","value":{"key":"k","value":"2-1"}}"#,
            "\n",
            r#"{"index":2,"time_ns":4000000,"process":1,"type":"ok","f":"send","value":{"key":"k","value":"1-1","partition":0,"offset":0}}"#,
            "\n",
            r#"{"index":3,"time_ns":5000000,"process":2,"type":"ok","f":"send","value":{"key":"k","value":"2-1","partition":1,"offset":0}}"#,
            "\n",
            r#"{"index":4,"time_ns":6000000,"process":7,"type":"ok","f":"poll","value":{"records":[[0,0,"1-1"]]}}"#,
            "\n",
            r#"{"index":5,"time_ns":7000000,"process":9,"type":"ok","f":"final-read","value":{"partition":0,"records":[[0,0,"1-1"],[0,1,"never sent"]],"complete":true}}"#,
            "\n",
            r#"{"index":6,"time_ns":8000000,"process":9,"type":"ok","f":"final-read","value":{"partition":1,"records":[],"complete":true}}"#,
            "\n",
            r#"{"index":7,"time_ns":9000000,"process":9,"type":"ok","f":"final-re"#,
        );
        let scan = scan(history).unwrap();
        assert!(scan.truncated_last_line);
        assert_eq!(scan.operations, 7);
        assert_eq!(scan.sends_ok, 2);
        assert_eq!(
            scan.ok_points[0],
            SendPoint {
                time_ns: 1_000_000,
                latency_us: 3_000,
                outcome: Outcome::Ok
            }
        );
        assert_eq!(scan.lost_total, 1);
        assert_eq!(scan.lost[0].partition, 1);
        assert_eq!(scan.lost[0].acknowledged_ns, 5_000_000);
        assert_eq!(
            scan.partitions[&0].final_read,
            FinalRead::Complete { records: 2 }
        );
        assert_eq!(
            (scan.partitions[&1].acknowledged, scan.partitions[&1].lost),
            (1, 1)
        );
    }

    #[test]
    fn a_malformed_line_in_the_middle_is_an_error_naming_it() {
        let history = "{\"index\":0,\"time_ns\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"poll\",\"value\":{}}\n\n{\"index\":1,\"process\":\"someone\"}\n{}\n";
        let error = scan(history).unwrap_err();
        assert!(
            matches!(error, ReportError::MalformedLine { line: 3, .. }),
            "{error}"
        );
    }

    #[test]
    fn the_ok_sample_stays_bounded() {
        let mut grid = PointGrid::default();
        for send in 0..200_000u64 {
            grid.add(SendPoint {
                time_ns: send * 1_000_000,
                latency_us: 100 + (send * 7919) % 1_000_000,
                outcome: Outcome::Ok,
            });
        }
        let points = grid.into_points();
        assert!(
            points.len() <= OK_POINTS_MAX && points.len() > 1_000,
            "{}",
            points.len()
        );
        assert!(
            points
                .windows(2)
                .all(|pair| pair[0].time_ns <= pair[1].time_ns)
        );
    }
}
