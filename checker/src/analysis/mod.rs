//! The checker's single pass: [`Analysis`] is fed the history one line at a time
//! ([`Analysis::feed`]) and keeps only per-value and per-offset state; [`Analysis::finish`]
//! then walks the values once to find what needs the final read (lost, unexpected,
//! aborted-read, indeterminate-*, poll-skip, divergent acknowledgements) and builds the
//! [`Results`]. Definitions: docs/checker.md.
//!
//! This module owns the state and the dispatch of each line; the work is split by what it
//! looks at:
//! - `sends`: sends and their acknowledgements (`reordered`, the send side of every value).
//! - `reads`: polls, assignments and final reads (`duplicated`, `divergent`,
//!   `nonmonotonic-poll`, candidates for `poll-skip`).
//! - `groups`: consumer groups — members, rebalances and commits (`nonmonotonic-commit`,
//!   `unconsumed`, and reads judged per assignment).
//! - `verdict`: the end-of-run checks that need the final read, and the [`Results`].

mod groups;
mod reads;
mod sends;
mod verdict;

use std::collections::{BTreeMap, HashSet, VecDeque};

use history::line::{Line, OpName, ValueText};
use history::reader::Item;
use history::{OpType, Process};

use crate::availability::Availability;
use crate::figures::{OperationFiguresBuilder, Timeline, Unavailability};
use crate::results::{
    AnomalyKind, CLIENT_CRASHES_LISTED_MAX, ClientCrash, EXAMPLES_PER_ANOMALY, Example,
    Expectations, Malformed,
};
use crate::values::{FastMap, FastSet, OffsetTable, ValueId, ValueIds, ValueNames, ValueTable};

/// The process number recorded for operations of the nemesis where a client was expected.
const NEMESIS_AS_CLIENT: u64 = u64::MAX;
/// The same for the harness's own events.
const HARNESS_AS_CLIENT: u64 = u64::MAX - 1;

/// Counts one anomaly, keeps its first examples and the time of its earliest operation.
#[derive(Default)]
struct AnomalyLog {
    count: u64,
    first_ns: Option<u64>,
    examples: Vec<Example>,
}

impl AnomalyLog {
    /// Counts one instance, shown by an operation at `time_ns` (if known); builds its example
    /// only if it will be kept.
    fn add(&mut self, time_ns: Option<u64>, example: impl FnOnce() -> Example) {
        self.count += 1;
        if let Some(time_ns) = time_ns {
            self.first_ns = Some(self.first_ns.map_or(time_ns, |first| first.min(time_ns)));
        }
        if self.examples.len() < EXAMPLES_PER_ANOMALY {
            self.examples.push(example());
        }
    }
}

/// How far the final read of one partition got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FinalReadState {
    Invoked,
    Complete,
    Incomplete,
    Failed,
}

/// How far a consumer has read one partition in its current assignment.
#[derive(Clone, Copy)]
struct ForwardRead {
    partition: i32,
    /// The last offset read, or (`from_commit`) the offset before the committed one the
    /// consumer started from.
    last_offset: i64,
    from_commit: bool,
}

/// A consumer jumped forward over offsets; whether they exist is known only after the final read.
struct SkipCandidate {
    consumer: u64,
    partition: i32,
    previous_offset: i64,
    /// The jump is from the committed offset the consumer started from (`previous_offset` + 1).
    from_commit: bool,
    offset: i64,
    value: ValueId,
    index: u64,
    time_ns: u64,
}

/// An acknowledged send of one producer to one partition, for `reordered`: the highest offset
/// acknowledged so far (and its value) as of this completion's line.
#[derive(Clone, Copy)]
struct AckMark {
    completed_line: u64,
    max_offset: i64,
    max_offset_value: ValueId,
}

/// Where a read came from.
#[derive(Clone, Copy)]
enum Reader {
    Consumer(u64),
    FinalRead,
}

/// The state of one check.
pub struct Analysis {
    expectations: Expectations,
    /// Interns values when the reader thread did not.
    ids: ValueIds,
    names: ValueNames,
    values: ValueTable,
    offsets: OffsetTable,
    /// 1-based number of the line being fed.
    line_number: u64,
    /// `time_ns` of the line being applied.
    line_time_ns: u64,
    operations: u64,
    malformed: Option<Malformed>,
    anomalies: BTreeMap<AnomalyKind, AnomalyLog>,
    divergent_positions: HashSet<(i32, i64)>,
    /// Per consumer: the last offset it read, per partition, since its last assign.
    forward_reads: FastMap<u64, Vec<ForwardRead>>,
    groups: groups::Groups,
    skip_candidates: Vec<SkipCandidate>,
    final_reads: BTreeMap<i32, FinalReadState>,
    final_offsets: FastMap<i32, Vec<i64>>,
    final_records: u64,
    partitions_seen: FastSet<i32>,
    /// The partition last added to `partitions_seen` (records come in runs of one partition).
    last_partition_seen: Option<i32>,
    acks_by_producer_partition: FastMap<(u64, i32), VecDeque<AckMark>>,
    /// Per producer, its send invocations in order (line, value), completed ones dropped from
    /// the front lazily: the oldest pending one says which marks can still matter.
    invokes_by_producer: FastMap<u64, VecDeque<(u64, ValueId)>>,
    figures: OperationFiguresBuilder,
    unavailability: Unavailability,
    availability: Availability,
    timeline: Timeline,
    records_polled: u64,
    client_crashes: Vec<ClientCrash>,
    client_crash_count: u64,
}

impl Analysis {
    pub fn new(expectations: &Expectations) -> Self {
        Self {
            expectations: *expectations,
            ids: ValueIds::default(),
            names: ValueNames::default(),
            values: ValueTable::default(),
            offsets: OffsetTable::default(),
            line_number: 0,
            line_time_ns: 0,
            operations: 0,
            malformed: None,
            anomalies: BTreeMap::new(),
            divergent_positions: HashSet::new(),
            forward_reads: FastMap::default(),
            groups: groups::Groups::default(),
            skip_candidates: Vec::new(),
            final_reads: BTreeMap::new(),
            final_offsets: FastMap::default(),
            final_records: 0,
            partitions_seen: FastSet::default(),
            last_partition_seen: None,
            acks_by_producer_partition: FastMap::default(),
            invokes_by_producer: FastMap::default(),
            figures: OperationFiguresBuilder::default(),
            unavailability: Unavailability::default(),
            availability: Availability::new(
                expectations
                    .unavailable_max_ms
                    .map(|ms| ms.saturating_mul(1_000_000)),
            ),
            timeline: Timeline::default(),
            records_polled: 0,
            client_crashes: Vec::new(),
            client_crash_count: 0,
        }
    }

    /// Records that the history could not be read (line 0) or that a line is malformed.
    pub fn malformed_at(&mut self, line: u64, reason: String) {
        match &mut self.malformed {
            Some(malformed) => malformed.count += 1,
            None => {
                self.malformed = Some(Malformed {
                    line,
                    reason,
                    count: 1,
                })
            }
        }
    }

    fn malformed(&mut self, reason: String) {
        self.malformed_at(self.line_number, reason);
    }

    fn anomaly(&mut self, kind: AnomalyKind) -> &mut AnomalyLog {
        self.anomalies.entry(kind).or_default()
    }

    /// Feeds one line of the history, as read and parsed by the pipeline.
    pub fn feed(&mut self, item: &Item) {
        match item {
            Item::Line(line, value_error) => {
                self.line_number += 1;
                self.register_interned(line);
                self.apply(line, value_error.as_deref());
            }
            Item::Blank => self.line_number += 1,
            Item::Malformed(reason) | Item::Cut(reason) => {
                self.line_number += 1;
                self.malformed(reason.clone());
            }
            Item::Unreadable(reason) => self.malformed_at(0, reason.clone()),
        }
    }

    /// Applies one parsed operation; `value_error` says its value could not be read.
    fn apply(&mut self, line: &Line<'_>, value_error: Option<&str>) {
        self.operations += 1;
        self.line_time_ns = line.time_ns;
        self.figures.observe_time(line.time_ns);
        let interpreted = !matches!(line.f, OpName::Other(_));
        if interpreted && let Some(reason) = value_error {
            self.malformed(format!(
                "the value of a {} {}: {reason}",
                line.f.as_str(),
                type_name(line.op_type)
            ));
            return;
        }
        match &line.f {
            OpName::Send => self.send(line),
            OpName::Poll => self.poll(line),
            OpName::Assign => self.assign(line),
            OpName::FinalRead => self.final_read(line),
            OpName::Subscribe => self.subscribe(line),
            OpName::Revoke => self.revoke(line),
            OpName::Commit => self.commit(line),
            OpName::Other(_) if line.process == Process::Nemesis => self.nemesis(line),
            OpName::Other(_) if line.process == Process::Harness => self.harness_event(line),
            OpName::Other(f) => {
                let index = self.figures.type_index(f);
                self.figures
                    .record_by_process(index, line.process, line.op_type, line.time_ns);
            }
        }
    }

    fn saw_partition(&mut self, partition: i32) {
        if self.last_partition_seen != Some(partition) {
            self.partitions_seen.insert(partition);
            self.last_partition_seen = Some(partition);
        }
    }

    /// Takes note of the values the reader thread saw for the first time in this line, whatever
    /// becomes of the line here, so that value ids mean the same on both threads.
    fn register_interned(&mut self, line: &Line<'_>) {
        let records = line
            .value
            .records
            .iter()
            .flatten()
            .map(|(_, _, value)| value);
        for value in line.value.value.iter().chain(records) {
            if let ValueText::Interned {
                name: Some(name), ..
            } = value
            {
                self.values.push();
                self.names.push(name.clone());
            }
        }
    }

    /// The id of a value: interned already by the reader thread (and registered), or here (one
    /// thread). One analysis gets all its values one way or the other, so the ids agree.
    fn intern(&mut self, value: &ValueText<'_>) -> Option<ValueId> {
        let interned = match value {
            ValueText::Interned { id, .. } => Some((*id, None)),
            _ => self.ids.intern(value),
        };
        match interned {
            Some((id, name)) => {
                if let Some(name) = name {
                    self.values.push();
                    self.names.push(name);
                }
                Some(id)
            }
            None => {
                self.malformed(format!(
                    "more than {} distinct values",
                    crate::values::MAX_VALUES
                ));
                None
            }
        }
    }

    fn nemesis(&mut self, line: &Line<'_>) {
        let index = self.figures.type_index(line.f.as_str());
        self.figures
            .record_by_process(index, line.process, line.op_type, line.time_ns);
        self.unavailability.nemesis(
            line.index,
            line.time_ns,
            line.op_type,
            line.f.as_str(),
            line.value.node.as_deref(),
            line.value.why.as_deref(),
            line.value.partition,
        );
    }
}

impl Analysis {
    /// An event of the harness itself. A client crash is listed; its in-flight operations are
    /// ordinary `info` completions of the crashed process (indeterminate, never lost), and its
    /// successor is a new process, so nothing else changes. Other events are only counted.
    fn harness_event(&mut self, line: &Line<'_>) {
        if line.f.as_str() != "client-crash" {
            return;
        }
        self.client_crash_count += 1;
        if self.client_crashes.len() < CLIENT_CRASHES_LISTED_MAX {
            self.client_crashes.push(ClientCrash {
                index: line.index,
                time_ns: line.time_ns,
                process: line.value.client_process,
                cause: line.value.cause.as_deref().unwrap_or("unknown").to_string(),
            });
        }
    }
}

fn type_name(op_type: OpType) -> &'static str {
    match op_type {
        OpType::Invoke => "invoke",
        OpType::Ok => "ok",
        OpType::Fail => "fail",
        OpType::Info => "info",
    }
}

fn client_number(process: Process) -> u64 {
    match process {
        Process::Client(number) => number,
        Process::Nemesis => NEMESIS_AS_CLIENT,
        Process::Harness => HARNESS_AS_CLIENT,
    }
}
