//! Rebalancing: preparing one, waiting (bounded by the rebalance timeout) for the members to
//! rejoin, then completing the join — a new generation and a leader among those who joined.

use kafka_protocol::error::ResponseError;

use super::{Group, GroupWrite, JoinTimer};
use crate::broker::group::clock::Now;
use crate::broker::group::member::Member;
use crate::broker::group::state::GroupState;

impl Group {
    // ------------------------------------------------------------- rebalancing

    pub(super) fn maybe_prepare_rebalance(&mut self, reason: &str, now: Now) {
        if self.state.can_rebalance() {
            self.prepare_rebalance(reason, now);
        }
    }

    pub(super) fn prepare_rebalance(&mut self, reason: &str, now: Now) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_assignment_error(ResponseError::RebalanceInProgress, now);
        }
        self.pending_sync_members.clear();
        self.sync_deadline = None;
        let rebalance_timeout_ms = i64::from(self.rebalance_timeout_ms());
        self.join_timer = Some(if self.state == GroupState::Empty {
            let delay_ms = i64::from(self.config.group_initial_rebalance_delay_ms);
            JoinTimer::Initial {
                at: now.plus_ms(delay_ms),
                delay_ms,
                remaining_ms: (rebalance_timeout_ms - delay_ms).max(0),
            }
        } else {
            JoinTimer::Rebalance {
                at: now.plus_ms(rebalance_timeout_ms),
            }
        });
        tracing::info!(
            "[GroupCoordinator] Preparing to rebalance group {} in state {} with old generation \
             {} (reason: {reason})",
            self.group_id,
            self.state.name(),
            self.generation_id
        );
        self.transition(GroupState::PreparingRebalance, now);
        // Kafka's `tryCompleteElseWatch`: a group whose members are all in (or gone) need not
        // wait for the timer.
        self.try_complete_join(now);
    }

    /// The largest rebalance timeout of the members.
    fn rebalance_timeout_ms(&self) -> i32 {
        self.members
            .values()
            .map(|member| member.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    pub(super) fn awaiting_join_count(&self) -> usize {
        self.members
            .values()
            .filter(|member| member.is_awaiting_join())
            .count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.awaiting_join_count() == self.members.len() && self.pending_members.is_empty()
    }

    /// Completes the join phase early when everyone is in (never during the initial delay).
    pub(super) fn try_complete_join(&mut self, now: Now) {
        if matches!(self.join_timer, Some(JoinTimer::Rebalance { .. }))
            && self.has_all_members_joined()
        {
            self.complete_join(now);
        }
    }

    /// Kafka's `onCompleteJoin`: drop dynamic members that did not rejoin, make sure the
    /// leader rejoined, start the next generation and answer every parked JoinGroup.
    pub(super) fn complete_join(&mut self, now: Now) {
        self.join_timer = None;
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|member| !member.is_awaiting_join() && member.group_instance_id.is_none())
            .map(|member| member.member_id.clone())
            .collect();
        if !gone.is_empty() {
            tracing::info!(
                "[GroupCoordinator] Group {} removed dynamic members who haven't joined: {gone:?}",
                self.group_id
            );
        }
        for member_id in gone {
            if let Some(member) = self.members.remove(&member_id) {
                self.forget_member(&member);
            }
        }
        if self.state == GroupState::Dead {
            return;
        }
        if !self.members.is_empty() && !self.elect_joined_leader() {
            tracing::error!(
                "[GroupCoordinator] Group {} could not complete rebalance because no members \
                 rejoined",
                self.group_id
            );
            self.join_timer = Some(JoinTimer::Rebalance {
                at: now.plus_ms(i64::from(self.rebalance_timeout_ms())),
            });
            return;
        }
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, now);
            tracing::info!(
                "[GroupCoordinator] Group {} with generation {} is now empty",
                self.group_id,
                self.generation_id
            );
            self.writes.push(GroupWrite::Metadata {
                value: self.to_record(),
            });
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, now);
        tracing::info!(
            "[GroupCoordinator] Stabilized group {} generation {} with {} members (leader {})",
            self.group_id,
            self.generation_id,
            self.members.len(),
            self.leader_id.as_deref().unwrap_or("none")
        );
        let leader = self.leader_id.clone();
        let member_ids: Vec<String> = self.members.keys().cloned().collect();
        for member_id in member_ids {
            let is_leader = leader.as_deref() == Some(member_id.as_str());
            let result = self.join_result(&member_id, is_leader);
            if let Some(member) = self.members.get_mut(&member_id) {
                member.answer_join(result);
                member.heartbeat_deadline = Some(now.plus_ms(i64::from(member.session_timeout_ms)));
                member.is_new = false;
            }
            self.pending_sync_members.insert(member_id);
        }
        self.sync_deadline = Some((
            self.generation_id,
            now.plus_ms(i64::from(self.rebalance_timeout_ms())),
        ));
    }

    /// Keeps the leader if it rejoined, else elects a member that did. False when none did.
    fn elect_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.clone() else {
            return false;
        };
        if self
            .members
            .get(&leader)
            .is_some_and(Member::is_awaiting_join)
        {
            return true;
        }
        match self
            .members
            .values()
            .find(|member| member.is_awaiting_join())
        {
            Some(member) => {
                self.leader_id = Some(member.member_id.clone());
                true
            }
            None => false,
        }
    }
}
