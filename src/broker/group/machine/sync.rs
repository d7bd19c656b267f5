//! SyncGroup: the leader's assignment is written to `__consumer_offsets` and handed to the
//! members only once that write is replicated; a failed write sends the group back to rejoin.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::{Group, GroupWrite, SyncOutcome};
use crate::broker::group::clock::Now;
use crate::broker::group::messages::SyncResult;
use crate::broker::group::state::GroupState;

impl Group {
    // --------------------------------------------------------------- SyncGroup

    /// A SyncGroup. `assignments` is the leader's plan (ignored from followers).
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Now,
    ) -> SyncOutcome {
        if let Some(error) = self.validate_sync(
            member_id,
            group_instance_id,
            generation_id,
            protocol_type,
            protocol_name,
        ) {
            return SyncOutcome::Reply(SyncResult::error(error));
        }
        match self.state {
            GroupState::Empty => {
                SyncOutcome::Reply(SyncResult::error(ResponseError::UnknownMemberId))
            }
            GroupState::PreparingRebalance => {
                SyncOutcome::Reply(SyncResult::error(ResponseError::RebalanceInProgress))
            }
            GroupState::CompletingRebalance => {
                let (waiter, parked) = oneshot::channel();
                if let Some(member) = self.members.get_mut(member_id) {
                    member.answer_sync(SyncResult::error(ResponseError::RebalanceInProgress));
                    member.awaiting_sync = Some(waiter);
                }
                self.remove_pending_sync_member(member_id);
                if self.leader_id.as_deref() == Some(member_id) {
                    tracing::info!(
                        "[GroupCoordinator] Assignment received from leader {member_id} for group \
                         {} for generation {}. The group has {} members.",
                        self.group_id,
                        self.generation_id,
                        self.members.len()
                    );
                    let plan: BTreeMap<String, Bytes> = assignments.into_iter().collect();
                    for member in self.members.values_mut() {
                        member.assignment =
                            plan.get(&member.member_id).cloned().unwrap_or_default();
                    }
                    self.writes.push(GroupWrite::Assignment {
                        generation: self.generation_id,
                        value: self.to_record(),
                    });
                }
                SyncOutcome::Parked(parked)
            }
            GroupState::Stable => {
                self.remove_pending_sync_member(member_id);
                let Some(member) = self.members.get_mut(member_id) else {
                    return SyncOutcome::Reply(SyncResult::error(ResponseError::UnknownMemberId));
                };
                member.heartbeat_deadline = Some(now.plus_ms(i64::from(member.session_timeout_ms)));
                SyncOutcome::Reply(SyncResult {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                })
            }
            GroupState::Dead => {
                SyncOutcome::Reply(SyncResult::error(ResponseError::CoordinatorNotAvailable))
            }
        }
    }

    fn validate_sync(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
    ) -> Option<ResponseError> {
        if let Some(error) =
            self.validate_member_of_generation(member_id, group_instance_id, generation_id)
        {
            return Some(error);
        }
        let mismatch = |asked: Option<&str>, ours: &Option<String>| {
            asked.is_some_and(|asked| ours.as_deref() != Some(asked))
        };
        if mismatch(protocol_type, &self.protocol_type)
            || mismatch(protocol_name, &self.protocol_name)
        {
            return Some(ResponseError::InconsistentGroupProtocol);
        }
        None
    }

    fn remove_pending_sync_member(&mut self, member_id: &str) {
        self.pending_sync_members.remove(member_id);
        if self.pending_sync_members.is_empty() {
            self.sync_deadline = None;
        }
    }

    /// The leader's assignment for `generation` was written (or not): on success every parked
    /// SyncGroup gets its member's assignment and the group is Stable; on failure they get the
    /// error and the group rebalances. Ignored if the group moved on meanwhile.
    pub fn assignment_stored(
        &mut self,
        generation: i32,
        result: Result<(), ResponseError>,
        now: Now,
    ) {
        if self.state != GroupState::CompletingRebalance || generation != self.generation_id {
            return;
        }
        match result {
            Ok(()) => {
                self.propagate_assignment(None, now);
                self.transition(GroupState::Stable, now);
            }
            Err(error) => {
                tracing::warn!(
                    "[GroupCoordinator] Cannot store the assignment of group {} generation \
                     {generation}: {error:?}",
                    self.group_id
                );
                self.reset_and_propagate_assignment_error(error, now);
                self.maybe_prepare_rebalance(
                    &format!("error {error:?} when storing the group assignment"),
                    now,
                );
            }
        }
    }

    pub(super) fn reset_and_propagate_assignment_error(&mut self, error: ResponseError, now: Now) {
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
        }
        self.propagate_assignment(Some(error), now);
    }

    fn propagate_assignment(&mut self, error: Option<ResponseError>, now: Now) {
        let (protocol_type, protocol_name) = match error {
            None => (self.protocol_type.clone(), self.protocol_name.clone()),
            Some(_) => (None, None),
        };
        for member in self.members.values_mut() {
            let answered = member.answer_sync(SyncResult {
                error,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                assignment: member.assignment.clone(),
            });
            if answered {
                member.heartbeat_deadline = Some(now.plus_ms(i64::from(member.session_timeout_ms)));
            }
        }
    }
}
