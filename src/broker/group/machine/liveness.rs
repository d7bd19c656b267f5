//! What keeps a member in its group and what removes it: heartbeats, LeaveGroup, and the
//! group's deadlines (each member's session, each pending member's, the join and pending-sync
//! timers) that [`Group::expire`] acts on.

use std::time::Instant;

use kafka_protocol::error::ResponseError;

use super::{Group, JoinTimer, MAX_EXPIRY_ROUNDS};
use crate::broker::group::clock::Now;
use crate::broker::group::member::Member;
use crate::broker::group::messages::{JoinResult, SyncResult};
use crate::broker::group::state::GroupState;

impl Group {
    // --------------------------------------------------------------- Heartbeat

    /// A Heartbeat: `None` is success.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now: Now,
    ) -> Option<ResponseError> {
        if let Some(error) =
            self.validate_member_of_generation(member_id, group_instance_id, generation_id)
        {
            return Some(error);
        }
        match self.state {
            GroupState::Empty => Some(ResponseError::UnknownMemberId),
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.heartbeat_received(member_id, now);
                None
            }
            GroupState::PreparingRebalance => {
                self.heartbeat_received(member_id, now);
                Some(ResponseError::RebalanceInProgress)
            }
            GroupState::Dead => Some(ResponseError::CoordinatorNotAvailable),
        }
    }

    pub(super) fn heartbeat_received(&mut self, member_id: &str, now: Now) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.heartbeat_deadline = Some(now.plus_ms(i64::from(member.session_timeout_ms)));
        }
    }

    // -------------------------------------------------------------- LeaveGroup

    /// A LeaveGroup of `members` (member id, or an empty one with a group.instance.id): one
    /// result per member, or a group-level error.
    pub fn leave(
        &mut self,
        members: &[(String, Option<String>)],
        now: Now,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        Ok(members
            .iter()
            .map(|(member_id, instance)| self.leave_one(member_id, instance.as_deref(), now))
            .collect())
    }

    fn leave_one(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        now: Now,
    ) -> Option<ResponseError> {
        if member_id.is_empty() {
            // Administrative removal by group.instance.id.
            let current = group_instance_id.and_then(|instance| self.static_members.get(instance));
            return match current.cloned() {
                Some(current) => {
                    self.remove_member_and_update_group(&current, "removed by instance id", now);
                    None
                }
                None => Some(ResponseError::UnknownMemberId),
            };
        }
        if self.pending_members.remove(member_id).is_some() {
            if self.state == GroupState::PreparingRebalance {
                self.try_complete_join(now);
            }
            return None;
        }
        if let Some(error) = self.validate_current_member(member_id, group_instance_id) {
            return Some(error);
        }
        tracing::info!(
            "[GroupCoordinator] Member {member_id} has left group {} through explicit \
             `LeaveGroup`",
            self.group_id
        );
        self.remove_member_and_update_group(member_id, "member left the group", now);
        None
    }

    /// Removes a member (left, or failed its session) and rebalances the rest.
    fn remove_member_and_update_group(&mut self, member_id: &str, reason: &str, now: Now) {
        let Some(mut member) = self.members.remove(member_id) else {
            return;
        };
        member.answer_join(JoinResult::error("", ResponseError::UnknownMemberId));
        member.answer_sync(SyncResult::error(ResponseError::UnknownMemberId));
        self.forget_member(&member);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(&format!("removing member {member_id}: {reason}"), now)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// The bookkeeping of a member already taken out of `members`.
    pub(super) fn forget_member(&mut self, member: &Member) {
        if let Some(instance) = &member.group_instance_id
            && self.static_members.get(instance) == Some(&member.member_id)
        {
            self.static_members.remove(instance);
        }
        if self.leader_id.as_deref() == Some(member.member_id.as_str()) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.pending_sync_members.remove(&member.member_id);
    }

    // ------------------------------------------------------------------ timers

    /// The earliest deadline of this group, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let members = self
            .members
            .values()
            .filter_map(|member| member.heartbeat_deadline);
        let pending = self.pending_members.values().copied();
        let join = self.join_timer.map(|timer| timer.at());
        let sync = self.sync_deadline.map(|(_, at)| at);
        members.chain(pending).chain(join).chain(sync).min()
    }

    /// Acts on every deadline that has passed at `now`: expired sessions, pending members that
    /// never joined, the end of the join phase, members that never synced.
    pub fn expire(&mut self, now: Now) {
        for _ in 0..MAX_EXPIRY_ROUNDS {
            if !self.expire_round(now) {
                return;
            }
        }
    }

    /// One pass over the due deadlines; false when nothing was due.
    fn expire_round(&mut self, now: Now) -> bool {
        let due = |at: Instant| at <= now.instant;
        let mut acted = false;
        let expired_pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, at)| due(**at))
            .map(|(id, _)| id.clone())
            .collect();
        for member_id in expired_pending {
            acted = true;
            tracing::info!(
                "[GroupCoordinator] Pending member {member_id} in group {} has been removed after \
                 session timeout expiration.",
                self.group_id
            );
            self.pending_members.remove(&member_id);
            if self.state == GroupState::PreparingRebalance {
                self.try_complete_join(now);
            }
        }
        let expired_members: Vec<String> = self
            .members
            .values()
            .filter(|member| member.heartbeat_deadline.is_some_and(due))
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in expired_members {
            acted = true;
            let Some(member) = self.members.get_mut(&member_id) else {
                continue;
            };
            if !member.is_new && (member.is_awaiting_join() || member.is_awaiting_sync()) {
                // Waiting inside a rebalance counts as heartbeating; the deadline is set again
                // when the rebalance answers it.
                member.heartbeat_deadline = None;
                continue;
            }
            tracing::info!(
                "[GroupCoordinator] Member {member_id} in group {} has failed, removing it from \
                 the group",
                self.group_id
            );
            self.remove_member_and_update_group(&member_id, "session timeout expired", now);
        }
        if let Some(timer) = self.join_timer
            && due(timer.at())
        {
            acted = true;
            match timer {
                JoinTimer::Initial {
                    delay_ms,
                    remaining_ms,
                    ..
                } if self.new_member_added && remaining_ms > 0 => {
                    self.new_member_added = false;
                    let delay = delay_ms.min(remaining_ms);
                    self.join_timer = Some(JoinTimer::Initial {
                        at: now.plus_ms(delay),
                        delay_ms,
                        remaining_ms: remaining_ms - delay,
                    });
                }
                _ => self.complete_join(now),
            }
        }
        if let Some((generation, at)) = self.sync_deadline
            && due(at)
        {
            acted = true;
            self.sync_deadline = None;
            let waiting_for = std::mem::take(&mut self.pending_sync_members);
            if generation == self.generation_id
                && matches!(
                    self.state,
                    GroupState::CompletingRebalance | GroupState::Stable
                )
                && !waiting_for.is_empty()
            {
                for member_id in &waiting_for {
                    if let Some(member) = self.members.remove(member_id) {
                        self.forget_member(&member);
                    }
                }
                self.prepare_rebalance(
                    &format!("removing {waiting_for:?} on pending sync request expiration"),
                    now,
                );
            }
        }
        acted
    }
}
