//! The checker's single pass: [`Analysis`] is fed the history one line at a time
//! ([`Analysis::feed`]) and keeps only per-value and per-offset state; [`Analysis::finish`]
//! then walks the values once to find what needs the final read (lost, unexpected,
//! aborted-read, indeterminate-*, poll-skip, divergent acknowledgements) and builds the
//! [`Results`]. Definitions: docs/checker.md.

use std::collections::{BTreeMap, HashSet, VecDeque};

use super::availability::Availability;
use super::figures::{self, OperationFiguresBuilder, Timeline, Unavailability};
use super::parse::{Fields, Line, OpName, ValueText};
use super::pipeline::Item;
use super::results::{
    Anomaly, AnomalyKind, Detection, EXAMPLES_PER_ANOMALY, Example, Expectations, FinalReadSummary,
    HEALS, LostExpectation, Malformed, Outcome, Results, Totals, Validity,
};
use super::values::{
    FastMap, FastSet, NO_PARTITION, OffsetTable, SendOutcome, Slot, ValueId, ValueIds, ValueInfo,
    ValueNames, ValueTable,
};
use crate::history::{OpType, Process};

/// The process number recorded for operations of the nemesis where a client was expected.
const NEMESIS_AS_CLIENT: u64 = u64::MAX;

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

/// A consumer jumped forward over offsets; whether they exist is known only after the final read.
struct SkipCandidate {
    consumer: u64,
    partition: i32,
    previous_offset: i64,
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
    forward_reads: FastMap<u64, Vec<(i32, i64)>>,
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
            Item::Malformed(reason) => {
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
            OpName::Other(_) if line.process == Process::Nemesis => self.nemesis(line),
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
                    super::values::MAX_VALUES
                ));
                None
            }
        }
    }

    fn send(&mut self, line: &Line<'_>) {
        self.unavailability.send_seen(line.time_ns);
        self.availability.send_seen(line.time_ns);
        let Some(value) = &line.value.value else {
            self.malformed(format!(
                "a send {} without value.value",
                type_name(line.op_type)
            ));
            return;
        };
        if line.op_type == OpType::Invoke {
            self.send_invoke(line, value);
        } else {
            self.send_completion(line, value);
        }
    }

    fn send_invoke(&mut self, line: &Line<'_>, value: &ValueText<'_>) {
        let Some(id) = self.intern(value) else {
            return;
        };
        let line_number = self.line_number;
        let Some(info) = self.values.send_mut(id) else {
            return;
        };
        if info.outcome != SendOutcome::NotInvoked {
            let value = self.names.text(id);
            self.malformed(format!(
                "value \"{value}\" is sent twice (values must be unique in a run)"
            ));
            return;
        }
        info.outcome = SendOutcome::Pending;
        info.producer = client_number(line.process);
        info.invoke_line = line_number;
        self.invokes_by_producer
            .entry(info.producer)
            .or_default()
            .push_back((line_number, id));
        info.invoke_ns = line.time_ns;
        self.figures
            .record_matched(figures::SEND, OpType::Invoke, line.time_ns, None);
    }

    fn send_completion(&mut self, line: &Line<'_>, value: &ValueText<'_>) {
        let Some(id) = self.intern(value) else {
            return;
        };
        let pending = self
            .values
            .send(id)
            .is_some_and(|info| info.outcome == SendOutcome::Pending);
        if !pending {
            self.malformed(format!(
                "a send {} of value \"{}\", which has no pending invoke",
                type_name(line.op_type),
                self.names.text(id)
            ));
            return;
        }
        let fields = &line.value;
        if line.op_type == OpType::Ok && (fields.partition.is_none() || fields.offset.is_none()) {
            let value = self.names.text(id);
            self.malformed(format!(
                "a send ok of value \"{value}\" without partition and offset"
            ));
            return;
        }
        if let Some(partition) = fields.partition {
            if let Some(read) = self.values.read_mut(id) {
                read.send_partition = partition;
            }
            self.saw_partition(partition);
            self.availability
                .send_completed(partition, line.time_ns, line.op_type == OpType::Ok);
        }
        let Some(info) = self.values.send_mut(id) else {
            return;
        };
        info.outcome = match line.op_type {
            OpType::Ok => SendOutcome::Ok,
            OpType::Fail => SendOutcome::Fail,
            _ => SendOutcome::Info,
        };
        info.completed_ns = line.time_ns;
        info.completed_index = line.index;
        if let Some(offset) = fields.offset {
            info.send_offset = offset;
        }
        let invoke_ns = info.invoke_ns;
        self.figures
            .record_matched(figures::SEND, line.op_type, line.time_ns, Some(invoke_ns));
        self.timeline.send_completed(line.time_ns, line.op_type);
        if line.op_type != OpType::Ok {
            let producer = self.values.send(id).map_or(0, |info| info.producer);
            self.oldest_pending_invoke(producer);
        }
        if let (OpType::Ok, Some(partition), Some(offset)) =
            (line.op_type, fields.partition, fields.offset)
        {
            self.unavailability.send_ok(line.time_ns);
            self.check_order(id, partition, offset);
        }
    }

    /// `reordered`: an earlier acknowledged send of the same producer to the same partition,
    /// completed before this one was invoked, at a higher offset.
    fn check_order(&mut self, id: ValueId, partition: i32, offset: i64) {
        let Some(info) = self.values.get(id) else {
            return;
        };
        let marks = self
            .acks_by_producer_partition
            .entry((info.producer, partition))
            .or_default();
        let before_invoke = marks_before(marks, info.invoke_line);
        let earlier = before_invoke
            .checked_sub(1)
            .and_then(|position| marks.get(position))
            .filter(|mark| mark.max_offset > offset)
            .copied();
        let mark = match marks.back() {
            Some(last) if last.max_offset >= offset => AckMark {
                completed_line: self.line_number,
                ..*last
            },
            _ => AckMark {
                completed_line: self.line_number,
                max_offset: offset,
                max_offset_value: id,
            },
        };
        marks.push_back(mark);
        self.forget_old_marks(info.producer, partition);
        if let Some(earlier) = earlier {
            let value = self.names.text(id);
            let earlier_value = self.names.text(earlier.max_offset_value);
            let at = Some(info.invoke_ns);
            self.anomaly(AnomalyKind::Reordered).add(at, || Example {
                explanation: format!(
                    "producer {} sent {earlier_value} (acknowledged at offset {}) before invoking \
                     {value}, which was acknowledged at the lower offset {offset} of partition \
                     {partition}",
                    info.producer, earlier.max_offset
                ),
                value: Some(value),
                partition: Some(partition),
                offset: Some(offset),
                process: Some(info.producer),
                acknowledged_ns: Some(info.completed_ns),
                index: Some(info.completed_index),
                earlier_value: Some(earlier_value),
                earlier_offset: Some(earlier.max_offset),
                ..Example::default()
            });
        }
    }

    /// The line of the producer's oldest send still pending (`u64::MAX`: none), dropping
    /// completed ones from the front of its queue.
    fn oldest_pending_invoke(&mut self, producer: u64) -> u64 {
        let Some(invokes) = self.invokes_by_producer.get_mut(&producer) else {
            return u64::MAX;
        };
        while let Some((_, id)) = invokes.front()
            && self
                .values
                .send(*id)
                .is_none_or(|info| info.outcome != SendOutcome::Pending)
        {
            invokes.pop_front();
        }
        invokes.front().map_or(u64::MAX, |(line, _)| *line)
    }

    /// Drops the acknowledgement marks of (producer, partition) that no pending send of the
    /// producer can ask about: all but the last one completed before its oldest pending invoke.
    fn forget_old_marks(&mut self, producer: u64, partition: i32) {
        let oldest_pending = self.oldest_pending_invoke(producer);
        if let Some(marks) = self
            .acks_by_producer_partition
            .get_mut(&(producer, partition))
        {
            while marks
                .get(1)
                .is_some_and(|next| next.completed_line < oldest_pending)
            {
                marks.pop_front();
            }
        }
    }

    fn poll(&mut self, line: &Line<'_>) {
        self.figures
            .record_by_process(figures::POLL, line.process, line.op_type, line.time_ns);
        if line.op_type != OpType::Ok {
            return;
        }
        let Some(records) = &line.value.records else {
            self.malformed("a poll ok without records".to_string());
            return;
        };
        let consumer = client_number(line.process);
        // The consumer's positions are looked up once per poll, not once per record.
        let mut positions = self.forward_reads.remove(&consumer).unwrap_or_default();
        for (partition, offset, value) in records {
            self.records_polled += 1;
            let Some(id) = self.intern(value) else {
                break;
            };
            self.saw_partition(*partition);
            self.read(
                *partition,
                *offset,
                id,
                Reader::Consumer(consumer),
                line.index,
            );
            self.read_forward(
                &mut positions,
                consumer,
                *partition,
                *offset,
                id,
                line.index,
            );
        }
        self.forward_reads.insert(consumer, positions);
    }

    /// `nonmonotonic-poll` now, `poll-skip` candidates for after the final read.
    fn read_forward(
        &mut self,
        positions: &mut Vec<(i32, i64)>,
        consumer: u64,
        partition: i32,
        offset: i64,
        id: ValueId,
        index: u64,
    ) {
        let previous = match positions.iter_mut().find(|(p, _)| *p == partition) {
            Some((_, last)) => Some(std::mem::replace(last, offset)),
            None => {
                positions.push((partition, offset));
                None
            }
        };
        let Some(previous_offset) = previous else {
            return;
        };
        if offset <= previous_offset {
            let value = self.names.text(id);
            let time_ns = self.line_time_ns;
            let at = Some(time_ns);
            self.anomaly(AnomalyKind::NonmonotonicPoll)
                .add(at, || Example {
                    explanation: format!(
                        "consumer {consumer} read offset {offset} of partition {partition} after \
                     offset {previous_offset}, without a seek"
                    ),
                    value: Some(value),
                    partition: Some(partition),
                    offset: Some(offset),
                    consumer: Some(consumer),
                    index: Some(index),
                    previous_offset: Some(previous_offset),
                    ..Example::default()
                });
        } else if offset > previous_offset.saturating_add(1) {
            self.skip_candidates.push(SkipCandidate {
                consumer,
                partition,
                previous_offset,
                offset,
                value: id,
                index,
                time_ns: self.line_time_ns,
            });
        }
    }

    fn assign(&mut self, line: &Line<'_>) {
        self.figures
            .record_by_process(figures::ASSIGN, line.process, line.op_type, line.time_ns);
        self.forward_reads.remove(&client_number(line.process));
        if let Some(positions) = &line.value.positions {
            self.partitions_seen
                .extend(positions.iter().map(|(partition, _)| *partition));
        }
    }

    fn final_read(&mut self, line: &Line<'_>) {
        self.figures.record_by_process(
            figures::FINAL_READ,
            line.process,
            line.op_type,
            line.time_ns,
        );
        let Some(partition) = line.value.partition else {
            self.malformed(format!(
                "a final-read {} without a partition",
                type_name(line.op_type)
            ));
            return;
        };
        self.saw_partition(partition);
        let state = self
            .final_reads
            .entry(partition)
            .or_insert(FinalReadState::Invoked);
        let new_state = match line.op_type {
            OpType::Invoke => return,
            OpType::Ok if line.value.complete == Some(true) => FinalReadState::Complete,
            OpType::Ok => FinalReadState::Incomplete,
            OpType::Fail | OpType::Info => FinalReadState::Failed,
        };
        if *state != FinalReadState::Complete {
            *state = new_state;
        }
        if line.op_type == OpType::Ok {
            self.final_read_records(&line.value, line.index);
        }
    }

    fn final_read_records(&mut self, fields: &Fields<'_>, index: u64) {
        let Some(records) = &fields.records else {
            self.malformed("a final-read ok without records".to_string());
            return;
        };
        for (partition, offset, value) in records {
            self.final_records += 1;
            let Some(id) = self.intern(value) else {
                return;
            };
            self.saw_partition(*partition);
            if let Some(info) = self.values.read_mut(id)
                && (info.final_partition == NO_PARTITION || info.send_partition == *partition)
            {
                info.final_partition = *partition;
            }
            self.final_offsets
                .entry(*partition)
                .or_default()
                .push(*offset);
            self.read(*partition, *offset, id, Reader::FinalRead, index);
        }
    }

    /// Any read of a value at (partition, offset): `duplicated` and `divergent`.
    fn read(&mut self, partition: i32, offset: i64, id: ValueId, reader: Reader, index: u64) {
        let Some(info) = self.values.read_mut(id) else {
            return;
        };
        if !info.read {
            info.read = true;
            info.first_read_partition = partition;
            info.first_read_offset = offset;
        } else if !info.duplicated
            && (info.first_read_partition, info.first_read_offset) != (partition, offset)
        {
            info.duplicated = true;
            let Some(info) = self.values.get(id) else {
                return;
            };
            let value = self.names.text(id);
            let time_ns = self.line_time_ns;
            let at = Some(time_ns);
            self.anomaly(AnomalyKind::Duplicated).add(at, || Example {
                explanation: format!(
                    "{value} was read at partition {} offset {} and at partition {partition} \
                     offset {offset}",
                    info.first_read_partition, info.first_read_offset
                ),
                value: Some(value),
                partition: Some(partition),
                offset: Some(offset),
                process: sent_by(&info),
                acknowledged_ns: acknowledged_at(&info),
                consumer: consumer_of(reader),
                index: Some(index),
                offsets: vec![info.first_read_offset, offset],
                ..Example::default()
            });
        }
        let slot = Slot {
            value: id,
            from_final_read: matches!(reader, Reader::FinalRead),
        };
        if let Some(previous) = self.offsets.put(partition, offset, slot)
            && previous.value != id
            && self.divergent_positions.insert((partition, offset))
        {
            let values = vec![self.names.text(previous.value), self.names.text(id)];
            let time_ns = self.line_time_ns;
            let at = Some(time_ns);
            self.anomaly(AnomalyKind::Divergent).add(at, || Example {
                explanation: format!(
                    "partition {partition} offset {offset} was read with two values: {} and {}",
                    values[0], values[1]
                ),
                partition: Some(partition),
                offset: Some(offset),
                consumer: consumer_of(reader),
                index: Some(index),
                values,
                ..Example::default()
            });
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
        );
    }

    /// The verdict, once the whole history has been fed.
    pub fn finish(mut self) -> Results {
        let final_read = self.final_read_summary();
        let complete_partitions: HashSet<i32> = final_read.complete.iter().copied().collect();
        let all_complete = final_read.is_complete() && !self.final_reads.is_empty();
        let mut totals = Totals {
            operations: self.operations,
            values: self.values.len() as u64,
            records_polled: self.records_polled,
            duration_ns: self.figures.duration_ns(),
            ..Totals::default()
        };
        let mut never_completed = 0;
        for id in 0..self.values.len() {
            let Ok(id) = ValueId::try_from(id) else {
                continue;
            };
            let Some(info) = self.values.get(id) else {
                continue;
            };
            match info.outcome {
                SendOutcome::NotInvoked => self.check_unexpected(id, &info),
                SendOutcome::Ok => {
                    totals.sends_ok += 1;
                    if complete_partitions.contains(&info.send_partition) {
                        self.check_acknowledged(id, &info);
                    } else {
                        totals.sends_ok_unchecked += 1;
                    }
                }
                SendOutcome::Fail => {
                    totals.sends_fail += 1;
                    self.check_aborted_read(id, &info);
                }
                SendOutcome::Info | SendOutcome::Pending => {
                    totals.sends_info += 1;
                    if info.outcome == SendOutcome::Pending {
                        never_completed += 1;
                    }
                    let judged = if info.send_partition == NO_PARTITION {
                        all_complete
                    } else {
                        complete_partitions.contains(&info.send_partition)
                    };
                    self.check_indeterminate(id, &info, judged);
                }
            }
        }
        self.figures
            .add_never_completed(figures::SEND, never_completed);
        self.check_poll_skips();
        self.check_availability();
        self.results(final_read, totals)
    }

    fn final_read_summary(&mut self) -> FinalReadSummary {
        let mut summary = FinalReadSummary {
            records: self.final_records,
            ..FinalReadSummary::default()
        };
        let mut partitions: Vec<i32> = self.partitions_seen.iter().copied().collect();
        partitions.sort_unstable();
        for partition in &partitions {
            match self.final_reads.get(partition) {
                Some(FinalReadState::Complete) => summary.complete.push(*partition),
                Some(FinalReadState::Incomplete) => summary.incomplete.push(*partition),
                Some(FinalReadState::Failed) => summary.failed.push(*partition),
                Some(FinalReadState::Invoked) | None => summary.missing.push(*partition),
            }
        }
        summary
    }

    fn check_unexpected(&mut self, id: ValueId, info: &ValueInfo) {
        if !info.read {
            return;
        }
        let value = self.names.text(id);
        self.anomaly(AnomalyKind::Unexpected).add(None, || Example {
            explanation: format!(
                "{value} was read at partition {} offset {} but no send of it was invoked",
                info.first_read_partition, info.first_read_offset
            ),
            value: Some(value),
            partition: Some(info.first_read_partition),
            offset: Some(info.first_read_offset),
            ..Example::default()
        });
    }

    fn check_aborted_read(&mut self, id: ValueId, info: &ValueInfo) {
        if !info.read {
            return;
        }
        let value = self.names.text(id);
        let at = Some(info.invoke_ns);
        self.anomaly(AnomalyKind::AbortedRead).add(at, || Example {
            explanation: format!(
                "the send of {value} failed, yet it was read at partition {} offset {}",
                info.first_read_partition, info.first_read_offset
            ),
            value: Some(value),
            partition: Some(info.first_read_partition),
            offset: Some(info.first_read_offset),
            process: Some(info.producer),
            index: Some(info.completed_index),
            ..Example::default()
        });
    }

    /// `lost` and `divergent` (the acknowledged offset holds another value in the final read).
    fn check_acknowledged(&mut self, id: ValueId, info: &ValueInfo) {
        let (partition, offset) = (info.send_partition, info.send_offset);
        if info.final_partition != partition {
            let value = self.names.text(id);
            let at = Some(info.invoke_ns);
            self.anomaly(AnomalyKind::Lost).add(at, || Example {
                explanation: format!(
                    "{value} was acknowledged at partition {partition} offset {offset} but is \
                     not in the final read of partition {partition}"
                ),
                value: Some(value),
                partition: Some(partition),
                offset: Some(offset),
                process: Some(info.producer),
                acknowledged_ns: Some(info.completed_ns),
                index: Some(info.completed_index),
                ..Example::default()
            });
        }
        if let Some(slot) = self.offsets.get(partition, offset)
            && slot.from_final_read
            && slot.value != id
            && self.divergent_positions.insert((partition, offset))
        {
            let value = self.names.text(id);
            let found = self.names.text(slot.value);
            let at = Some(info.invoke_ns);
            self.anomaly(AnomalyKind::Divergent).add(at, || Example {
                explanation: format!(
                    "{value} was acknowledged at partition {partition} offset {offset}, where \
                     the final read found {found}"
                ),
                value: Some(value.clone()),
                partition: Some(partition),
                offset: Some(offset),
                process: Some(info.producer),
                acknowledged_ns: Some(info.completed_ns),
                index: Some(info.completed_index),
                values: vec![value, found],
                ..Example::default()
            });
        }
    }

    fn check_indeterminate(&mut self, id: ValueId, info: &ValueInfo, judged: bool) {
        let recovered = info.final_partition != NO_PARTITION;
        if !recovered && !judged {
            return;
        }
        let kind = if recovered {
            AnomalyKind::IndeterminateRecovered
        } else {
            AnomalyKind::IndeterminateLost
        };
        let value = self.names.text(id);
        self.anomaly(kind).add(Some(info.invoke_ns), || Example {
            explanation: if recovered {
                format!(
                    "the send of {value} was indeterminate; the final read found it in \
                     partition {}",
                    info.final_partition
                )
            } else {
                format!("the send of {value} was indeterminate; the final read does not have it")
            },
            value: Some(value),
            partition: (info.final_partition != NO_PARTITION)
                .then_some(info.final_partition)
                .or((info.send_partition != NO_PARTITION).then_some(info.send_partition)),
            process: Some(info.producer),
            index: (info.outcome == SendOutcome::Info).then_some(info.completed_index),
            ..Example::default()
        });
    }

    /// `poll-skip`: a forward jump over offsets that the final read shows exist.
    fn check_poll_skips(&mut self) {
        for offsets in self.final_offsets.values_mut() {
            offsets.sort_unstable();
            offsets.dedup();
        }
        let candidates = std::mem::take(&mut self.skip_candidates);
        for candidate in candidates {
            let Some(offsets) = self.final_offsets.get(&candidate.partition) else {
                continue;
            };
            let after_previous =
                offsets.partition_point(|offset| *offset <= candidate.previous_offset);
            let before_next = offsets.partition_point(|offset| *offset < candidate.offset);
            let skipped = before_next.saturating_sub(after_previous) as u64;
            if skipped == 0 {
                continue;
            }
            let value = self.names.text(candidate.value);
            let at = Some(candidate.time_ns);
            self.anomaly(AnomalyKind::PollSkip).add(at, || Example {
                explanation: format!(
                    "consumer {} jumped from offset {} to {} of partition {}, over {skipped} \
                     offsets that the final read has",
                    candidate.consumer,
                    candidate.previous_offset,
                    candidate.offset,
                    candidate.partition
                ),
                value: Some(value),
                partition: Some(candidate.partition),
                offset: Some(candidate.offset),
                consumer: Some(candidate.consumer),
                index: Some(candidate.index),
                previous_offset: Some(candidate.previous_offset),
                skipped: Some(skipped),
                ..Example::default()
            });
        }
    }

    /// `unavailable`: stretches longer than the workload's `unavailable_max`.
    fn check_availability(&mut self) {
        let Some(bound_ms) = self.expectations.unavailable_max_ms else {
            return;
        };
        let stretches = std::mem::take(&mut self.availability).finish();
        let bound_ns = bound_ms.saturating_mul(1_000_000);
        for stretch in stretches {
            let seconds = |ns: u64| ns as f64 / 1e9;
            self.anomaly(AnomalyKind::Unavailable).add(
                Some(stretch.start_ns.saturating_add(bound_ns)),
                || Example {
                    explanation: format!(
                        "partition {} acknowledged no send for {:.1} s (from {:.1} s to {:.1} s \
                         into the run) while sends to it were made; the workload allows {:.1} s",
                        stretch.partition,
                        seconds(stretch.length_ns()),
                        seconds(stretch.start_ns),
                        seconds(stretch.end_ns),
                        seconds(bound_ns)
                    ),
                    partition: Some(stretch.partition),
                    start_ns: Some(stretch.start_ns),
                    end_ns: Some(stretch.end_ns),
                    ..Example::default()
                },
            );
        }
    }

    fn results(mut self, final_read: FinalReadSummary, totals: Totals) -> Results {
        let expectations = self.expectations;
        let mut valid = Validity::True;
        let mut reasons = Vec::new();
        let mut invalid_besides_loss = false;
        let mut anomalies = BTreeMap::new();
        let mut anomaly_types = Vec::new();
        let mut first_invalid: Option<(u64, AnomalyKind)> = None;
        for kind in AnomalyKind::ALL {
            let log = self.anomalies.remove(&kind).unwrap_or_default();
            let invalid = kind.is_invalid(&expectations);
            if log.count > 0 {
                anomaly_types.push(kind.name().to_string());
                if invalid {
                    valid = Validity::False;
                    reasons.push(format!("{}: {}", kind.name(), log.count));
                    invalid_besides_loss |= !kind.is_part_of_loss();
                    if let Some(first_ns) = log.first_ns
                        && first_invalid.is_none_or(|(earliest, _)| first_ns < earliest)
                    {
                        first_invalid = Some((first_ns, kind));
                    }
                }
            }
            anomalies.insert(
                kind.name().to_string(),
                Anomaly {
                    count: log.count,
                    invalid: invalid && log.count > 0,
                    first_ns: log.first_ns,
                    examples: log.examples,
                },
            );
        }
        if self.final_reads.is_empty() {
            valid = valid.merge(Validity::Unknown);
            reasons.push("the history has no final read".to_string());
        } else if !final_read.is_complete() {
            valid = valid.merge(Validity::Unknown);
            reasons.push(format!(
                "final read not complete: missing {:?}, incomplete {:?}, failed {:?}",
                final_read.missing, final_read.incomplete, final_read.failed
            ));
        }
        if let Some(malformed) = &self.malformed {
            // A history we could not read entirely can be judged neither true nor false.
            valid = Validity::Unknown;
            reasons.push(format!(
                "malformed history: line {}: {} ({} malformed lines)",
                malformed.line, malformed.reason, malformed.count
            ));
        }
        let lost = anomalies
            .get(AnomalyKind::Lost.name())
            .map_or(0, |a| a.count);
        let loss_expectation_met = match expectations.lost {
            LostExpectation::None => valid == Validity::True,
            LostExpectation::Some => lost > 0 && !invalid_besides_loss && self.malformed.is_none(),
        };
        if expectations.lost == LostExpectation::Some && lost == 0 {
            reasons.push("the workload expects lost writes and none were found".to_string());
        }
        let outcome = Outcome::decide(&expectations, loss_expectation_met, totals.sends_ok);
        if outcome == Outcome::ProvesNothing {
            reasons.push("no send was acknowledged: the run proves nothing about loss".to_string());
        }
        let matches_expectation = outcome.passed();
        let faults = self.unavailability.finish();
        let detection = first_invalid.map(|(first_anomaly_ns, kind)| {
            let first_fault_ns = faults
                .iter()
                .filter(|fault| !HEALS.contains(&fault.f.as_str()))
                .map(|fault| fault.time_ns)
                .min();
            Detection {
                first_fault_ns,
                first_anomaly: kind.name().to_string(),
                first_anomaly_ns,
                time_to_detection_us: first_fault_ns
                    .map(|fault_ns| first_anomaly_ns.saturating_sub(fault_ns) / 1_000),
            }
        });
        Results {
            valid,
            expectations,
            matches_expectation,
            reasons,
            malformed: self.malformed,
            final_read,
            anomaly_types,
            anomalies,
            totals,
            operations: self.figures.finish(),
            faults,
            timeline: self.timeline.finish(),
            detection,
        }
    }
}

/// How many marks completed before `line`. Sends are short compared to the run, so this looks
/// back from the end a little before falling back to a binary search (which would miss the
/// cache on every step of a long vector).
fn marks_before(marks: &VecDeque<AckMark>, line: u64) -> usize {
    const LOOK_BACK: usize = 16;
    for (back, mark) in marks.iter().rev().take(LOOK_BACK).enumerate() {
        if mark.completed_line < line {
            return marks.len() - back;
        }
    }
    if marks.len() <= LOOK_BACK {
        return 0;
    }
    marks.partition_point(|mark| mark.completed_line < line)
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
    }
}

fn sent_by(info: &ValueInfo) -> Option<u64> {
    (info.outcome != SendOutcome::NotInvoked).then_some(info.producer)
}

fn acknowledged_at(info: &ValueInfo) -> Option<u64> {
    (info.outcome == SendOutcome::Ok).then_some(info.completed_ns)
}

fn consumer_of(reader: Reader) -> Option<u64> {
    match reader {
        Reader::Consumer(consumer) => Some(consumer),
        Reader::FinalRead => None,
    }
}
