//! Reads: polls, assignments and final reads. Every read of a value at (partition, offset) is
//! checked at once for `duplicated` and `divergent`; a consumer reading one partition forward
//! for `nonmonotonic-poll`, and its forward jumps kept as `poll-skip` candidates for the end.

use history::OpType;
use history::line::{Fields, Line};

use super::{
    Analysis, FinalReadState, ForwardRead, Reader, SkipCandidate, client_number, type_name,
};
use crate::figures;
use crate::results::{AnomalyKind, Example};
use crate::values::{NO_PARTITION, SendOutcome, Slot, ValueId, ValueInfo};

impl Analysis {
    pub(super) fn poll(&mut self, line: &Line<'_>) {
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
        let group = self.groups.group_of(consumer);
        // The consumer's positions are looked up once per poll, not once per record.
        let mut positions = self.forward_reads.remove(&consumer).unwrap_or_default();
        for (partition, offset, value) in records {
            self.records_polled += 1;
            let Some(id) = self.intern(value) else {
                break;
            };
            if let Some(group) = group {
                self.groups.consumed(group, id);
            }
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
        positions: &mut Vec<ForwardRead>,
        consumer: u64,
        partition: i32,
        offset: i64,
        id: ValueId,
        index: u64,
    ) {
        let previous = match positions
            .iter_mut()
            .find(|read| read.partition == partition)
        {
            Some(read) => {
                let previous = (read.last_offset, read.from_commit);
                read.last_offset = offset;
                read.from_commit = false;
                Some(previous)
            }
            None => {
                positions.push(ForwardRead {
                    partition,
                    last_offset: offset,
                    from_commit: false,
                });
                None
            }
        };
        let Some((previous_offset, from_commit)) = previous else {
            return;
        };
        if offset <= previous_offset {
            let value = self.names.text(id);
            let time_ns = self.line_time_ns;
            let at = Some(time_ns);
            let after = if from_commit {
                format!(
                    "right after starting at the group's committed offset {}",
                    previous_offset.saturating_add(1)
                )
            } else {
                format!("after offset {previous_offset}, without a seek")
            };
            self.anomaly(AnomalyKind::NonmonotonicPoll)
                .add(at, || Example {
                    explanation: format!(
                        "consumer {consumer} read offset {offset} of partition {partition} {after}"
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
                from_commit,
                offset,
                value: id,
                index,
                time_ns: self.line_time_ns,
            });
        }
    }

    pub(super) fn assign(&mut self, line: &Line<'_>) {
        self.figures
            .record_by_process(figures::ASSIGN, line.process, line.op_type, line.time_ns);
        if let Some(group) = &line.value.group {
            self.group_assign(line, &group.clone());
            return;
        }
        self.forward_reads.remove(&client_number(line.process));
        if let Some(positions) = &line.value.positions {
            self.partitions_seen
                .extend(positions.iter().map(|(partition, _)| *partition));
        }
    }

    pub(super) fn final_read(&mut self, line: &Line<'_>) {
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
