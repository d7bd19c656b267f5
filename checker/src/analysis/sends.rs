//! Sends and their acknowledgements: the send side of every value (invoked, completed how,
//! acknowledged where), and `reordered` (an earlier acknowledged send of the same producer to
//! the same partition at a higher offset), with the bounded bookkeeping it needs.

use std::collections::VecDeque;

use history::OpType;
use history::line::{Line, ValueText};

use super::{AckMark, Analysis, client_number, type_name};
use crate::figures;
use crate::results::{AnomalyKind, Example};
use crate::values::{SendOutcome, ValueId};

impl Analysis {
    pub(super) fn send(&mut self, line: &Line<'_>) {
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
        if let (OpType::Ok, Some(partition)) = (line.op_type, fields.partition) {
            self.unavailability.send_ok(line.time_ns, partition);
            // A negative offset is an acknowledgement whose offset the client does not know
            // (librdkafka's -1001 for a request implicitly acknowledged by a later one's
            // success): it orders nothing.
            if let Some(offset) = fields.offset.filter(|offset| *offset >= 0) {
                self.check_order(id, partition, offset);
            }
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
