//! The end of the run: one walk over the values for what needs the final read (`lost`,
//! `unexpected`, `aborted-read`, `indeterminate-*`, divergent acknowledgements), the
//! `poll-skip` candidates against the final read's offsets, `unavailable`, and the [`Results`]
//! with the verdict and the pass rule.

use std::collections::{BTreeMap, HashSet};

use super::{Analysis, FinalReadState};
use crate::figures;
use crate::results::{
    Anomaly, AnomalyKind, Detection, Example, FinalReadSummary, HEALS, LostExpectation, Outcome,
    Results, Totals, Validity,
};
use crate::values::{NO_PARTITION, SendOutcome, ValueId, ValueInfo};

impl Analysis {
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
            client_crashes: self.client_crash_count,
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
                        if self.groups.any() && info.final_partition == info.send_partition {
                            self.check_unconsumed(id, info.send_partition, info.send_offset);
                        }
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
            let from = if candidate.from_commit {
                format!(
                    "started at the group's committed offset {} of partition {} and first read \
                     offset {}",
                    candidate.previous_offset.saturating_add(1),
                    candidate.partition,
                    candidate.offset
                )
            } else {
                format!(
                    "jumped from offset {} to {} of partition {}",
                    candidate.previous_offset, candidate.offset, candidate.partition
                )
            };
            self.anomaly(AnomalyKind::PollSkip).add(at, || Example {
                explanation: format!(
                    "consumer {} {from}, over {skipped} offsets that the final read has",
                    candidate.consumer,
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
            client_crashes: self.client_crashes,
        }
    }
}
