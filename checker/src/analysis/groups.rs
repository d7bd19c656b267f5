//! Consumer groups: members (`subscribe`), what a rebalance gives and takes (`assign` with a
//! `group`, `revoke`), commits (`commit`), and the two anomalies only groups can show:
//!
//! - `nonmonotonic-commit`: a group's committed offset of a partition that goes backwards. The
//!   committed offset is a register per (group, partition): an acknowledged `commit` writes it,
//!   and a member's `assign` reads it (the offsets the member fetched, and starts from). A write
//!   or a read of a value below the one the last acknowledged write (or read) before it left —
//!   "before": completed before the operation was invoked — is the anomaly. A committed offset
//!   that disappears (an assignment finds none after a commit was acknowledged) is one too.
//! - `unconsumed`: an acknowledged send, present in the complete final read of its partition,
//!   that no poll of any member of a group returned (checked per group, at the end).
//!
//! Reads judged per assignment (Jepsen's rule): a rebalance resets a member's forward reading
//! of the partitions it gives or takes, so re-reading from the last commit after a rebalance is
//! not `nonmonotonic-poll`, and a jump to where another member committed is not `poll-skip`.
//! Within an assignment, a member's first read of a partition is judged against the committed
//! offset it started from.

use history::OpType;
use history::line::Line;

use super::{Analysis, ForwardRead, client_number};
use crate::results::{AnomalyKind, Example};
use crate::values::{FastMap, ValueId};

/// Groups a history may have (one bit each in the per-value consumption mask).
pub(super) const GROUPS_MAX: usize = 64;

/// One observation of a (group, partition)'s committed offset: a commit acknowledged, or the
/// offset an assignment fetched. `None` offset: the assignment found no committed offset.
#[derive(Clone, Copy)]
struct CommittedAt {
    /// The line of the commit's completion or of the assignment's `ok`.
    line: u64,
    offset: Option<i64>,
    /// History index and time of that line, for examples.
    index: u64,
}

/// What the analysis knows of consumer groups.
#[derive(Default)]
pub(super) struct Groups {
    /// Group names, by index.
    names: Vec<String>,
    /// The group of each client process that subscribed.
    member_of: FastMap<u64, u8>,
    /// Per value id: bit `g` when a member of group `g` polled it (empty without groups).
    consumed: Vec<u64>,
    /// Per (group, partition): the committed offset's observations, in line order.
    committed: FastMap<(u8, i32), Vec<CommittedAt>>,
    /// Per process: the line of its pending `commit` invoke and of its pending group `assign`
    /// invoke.
    pending_commit: FastMap<u64, u64>,
    pending_assign: FastMap<u64, u64>,
}

impl Groups {
    /// Whether the history has any group member.
    pub(super) fn any(&self) -> bool {
        !self.names.is_empty()
    }

    /// The group's index, registering it; `None` past [`GROUPS_MAX`] groups.
    fn index(&mut self, name: &str) -> Option<u8> {
        if let Some(index) = self.names.iter().position(|known| known == name) {
            return u8::try_from(index).ok();
        }
        if self.names.len() >= GROUPS_MAX {
            return None;
        }
        self.names.push(name.to_string());
        u8::try_from(self.names.len() - 1).ok()
    }

    /// The group `consumer` is a member of, if it subscribed.
    pub(super) fn group_of(&self, consumer: u64) -> Option<u8> {
        self.member_of.get(&consumer).copied()
    }

    /// Notes that a member of `group` polled value `id`.
    pub(super) fn consumed(&mut self, group: u8, id: ValueId) {
        let index = id as usize;
        if self.consumed.len() <= index {
            self.consumed.resize(index + 1, 0);
        }
        self.consumed[index] |= 1 << group;
    }

    /// The groups (by name) no member of which polled value `id`.
    pub(super) fn not_consumed_by(&self, id: ValueId) -> impl Iterator<Item = &str> {
        let mask = self.consumed.get(id as usize).copied().unwrap_or(0);
        self.names
            .iter()
            .enumerate()
            .filter(move |(group, _)| mask & (1 << group) == 0)
            .map(|(_, name)| name.as_str())
    }

    /// The last observation of (group, partition) made before `line`.
    fn last_before(&self, group: u8, partition: i32, line: u64) -> Option<CommittedAt> {
        let observations = self.committed.get(&(group, partition))?;
        let before = observations.partition_point(|seen| seen.line < line);
        before
            .checked_sub(1)
            .and_then(|position| observations.get(position))
            .copied()
    }

    fn observe(&mut self, group: u8, partition: i32, seen: CommittedAt) {
        self.committed
            .entry((group, partition))
            .or_default()
            .push(seen);
    }
}

impl Analysis {
    pub(super) fn subscribe(&mut self, line: &Line<'_>) {
        let index = self.figures.type_index("subscribe");
        self.figures
            .record_by_process(index, line.process, line.op_type, line.time_ns);
        let Some(group) = line.value.group.as_deref() else {
            self.malformed("a subscribe without a group".to_string());
            return;
        };
        match self.groups.index(group) {
            Some(group) => {
                self.groups
                    .member_of
                    .insert(client_number(line.process), group);
            }
            None => self.malformed(format!("more than {GROUPS_MAX} consumer groups")),
        }
    }

    /// A group member's `assign`: the partitions a rebalance gave it, and the committed offsets
    /// it starts from.
    pub(super) fn group_assign(&mut self, line: &Line<'_>, group: &str) {
        let consumer = client_number(line.process);
        let Some(partitions) = &line.value.partitions else {
            self.malformed("a group assign without partitions".to_string());
            return;
        };
        self.partitions_seen.extend(partitions.iter().copied());
        let Some(group) = self.groups.index(group) else {
            self.malformed(format!("more than {GROUPS_MAX} consumer groups"));
            return;
        };
        match line.op_type {
            OpType::Invoke => {
                self.groups
                    .pending_assign
                    .insert(consumer, self.line_number);
                self.forget_forward_reads(consumer, partitions);
            }
            OpType::Ok => {
                let invoked = self
                    .groups
                    .pending_assign
                    .remove(&consumer)
                    .unwrap_or(self.line_number);
                self.forget_forward_reads(consumer, partitions);
                // Without `committed` the member could not fetch them: nothing to judge.
                let Some(committed) = &line.value.committed else {
                    return;
                };
                let mut reads = self.forward_reads.remove(&consumer).unwrap_or_default();
                for partition in partitions {
                    let offset = committed
                        .iter()
                        .find(|(p, _)| p == partition)
                        .map(|(_, offset)| *offset);
                    self.check_committed_read(
                        group, *partition, offset, invoked, consumer, line.index,
                    );
                    if let Some(offset) = offset {
                        reads.push(ForwardRead {
                            partition: *partition,
                            last_offset: offset.saturating_sub(1),
                            from_commit: true,
                        });
                    }
                }
                self.forward_reads.insert(consumer, reads);
            }
            OpType::Fail | OpType::Info => {
                self.groups.pending_assign.remove(&consumer);
            }
        }
    }

    /// `revoke`: a rebalance took `partitions` away; reading them later is judged afresh.
    pub(super) fn revoke(&mut self, line: &Line<'_>) {
        let index = self.figures.type_index("revoke");
        self.figures
            .record_by_process(index, line.process, line.op_type, line.time_ns);
        let Some(partitions) = &line.value.partitions else {
            self.malformed("a revoke without partitions".to_string());
            return;
        };
        self.forget_forward_reads(client_number(line.process), partitions);
    }

    /// `commit`: on its acknowledgement, each offset is checked against the group's last
    /// committed offset of that partition before the commit was invoked.
    pub(super) fn commit(&mut self, line: &Line<'_>) {
        let index = self.figures.type_index("commit");
        self.figures
            .record_by_process(index, line.process, line.op_type, line.time_ns);
        let consumer = client_number(line.process);
        if line.op_type == OpType::Invoke {
            self.groups
                .pending_commit
                .insert(consumer, self.line_number);
            return;
        }
        let invoked = self.groups.pending_commit.remove(&consumer);
        if line.op_type != OpType::Ok {
            return;
        }
        let (Some(group), Some(offsets)) = (line.value.group.as_deref(), &line.value.offsets)
        else {
            self.malformed("a commit ok without group and offsets".to_string());
            return;
        };
        let Some(group) = self.groups.index(group) else {
            self.malformed(format!("more than {GROUPS_MAX} consumer groups"));
            return;
        };
        let invoked = invoked.unwrap_or(self.line_number);
        for (partition, offset) in offsets {
            self.saw_partition(*partition);
            if let Some(last) = self.groups.last_before(group, *partition, invoked)
                && last.offset.is_some_and(|last_offset| *offset < last_offset)
            {
                let group_name = self.groups.names[group as usize].clone();
                let last_offset = last.offset.unwrap_or(-1);
                let at = Some(self.line_time_ns);
                self.anomaly(AnomalyKind::NonmonotonicCommit)
                    .add(at, || Example {
                        explanation: format!(
                            "consumer {consumer} committed offset {offset} of partition \
                             {partition} for group {group_name}, below the offset {last_offset} \
                             the group had committed before (history index {})",
                            last.index
                        ),
                        partition: Some(*partition),
                        offset: Some(*offset),
                        consumer: Some(consumer),
                        index: Some(line.index),
                        previous_offset: Some(last_offset),
                        group: Some(group_name),
                        ..Example::default()
                    });
            }
            self.groups.observe(
                group,
                *partition,
                CommittedAt {
                    line: self.line_number,
                    offset: Some(*offset),
                    index: line.index,
                },
            );
        }
    }

    /// An assignment's fetched committed offset (`None`: none) against the last one before the
    /// assignment was invoked; then it is the group's committed offset.
    fn check_committed_read(
        &mut self,
        group: u8,
        partition: i32,
        offset: Option<i64>,
        invoked: u64,
        consumer: u64,
        index: u64,
    ) {
        if let Some(last) = self.groups.last_before(group, partition, invoked)
            && let Some(last_offset) = last.offset
            && offset.is_none_or(|offset| offset < last_offset)
        {
            let group_name = self.groups.names[group as usize].clone();
            let found = offset.map_or("no committed offset".to_string(), |offset| {
                format!("committed offset {offset}")
            });
            let at = Some(self.line_time_ns);
            self.anomaly(AnomalyKind::NonmonotonicCommit)
                .add(at, || Example {
                    explanation: format!(
                        "consumer {consumer} was assigned partition {partition} of group \
                         {group_name} and found {found}, though the group had committed \
                         {last_offset} before (history index {})",
                        last.index
                    ),
                    partition: Some(partition),
                    offset,
                    consumer: Some(consumer),
                    index: Some(index),
                    previous_offset: Some(last_offset),
                    group: Some(group_name),
                    ..Example::default()
                });
        }
        self.groups.observe(
            group,
            partition,
            CommittedAt {
                line: self.line_number,
                offset,
                index,
            },
        );
    }

    /// Forgets how far `consumer` had read `partitions`: its next read of them starts afresh.
    fn forget_forward_reads(&mut self, consumer: u64, partitions: &[i32]) {
        if let Some(reads) = self.forward_reads.get_mut(&consumer) {
            reads.retain(|read| !partitions.contains(&read.partition));
        }
    }

    /// `unconsumed`: acknowledged sends in the final read that no member of a group polled.
    pub(super) fn check_unconsumed(&mut self, id: ValueId, partition: i32, offset: i64) {
        let missing: Vec<String> = self
            .groups
            .not_consumed_by(id)
            .map(str::to_string)
            .collect();
        for group in missing {
            let value = self.names.text(id);
            let info = self.values.get(id);
            let at = info.map(|info| info.invoke_ns);
            self.anomaly(AnomalyKind::Unconsumed).add(at, || Example {
                explanation: format!(
                    "{value} was acknowledged at partition {partition} offset {offset} and is in \
                     the final read, but no member of group {group} consumed it"
                ),
                value: Some(value),
                partition: Some(partition),
                offset: Some(offset),
                process: info.map(|info| info.producer),
                acknowledged_ns: info.map(|info| info.completed_ns),
                group: Some(group),
                ..Example::default()
            });
        }
    }
}
