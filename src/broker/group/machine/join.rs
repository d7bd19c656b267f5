//! JoinGroup: new members (asked to rejoin with their id first), known members, static members
//! replacing their previous instance, the group's protocol, and the membership checks every
//! request makes.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::{Group, GroupWrite, JoinOutcome, NEW_MEMBER_JOIN_TIMEOUT_MS, random_uuid};
use crate::broker::group::clock::Now;
use crate::broker::group::member::Member;
use crate::broker::group::messages::{JoinRequest, JoinResult, JoinedMember, Protocol, SyncResult};
use crate::broker::group::state::GroupState;

impl Group {
    // ---------------------------------------------------------------- JoinGroup

    /// A JoinGroup (the coordinator and session timeout were checked by the caller).
    pub fn join(&mut self, request: JoinRequest, now: Now) -> JoinOutcome {
        let outcome = if !self.accepts_joining_member(&request.member_id) {
            if let Some(mut member) = self.members.remove(&request.member_id) {
                member.answer_join(JoinResult::error("", ResponseError::GroupMaxSizeReached));
                self.forget_member(&member);
            }
            JoinOutcome::Reply(JoinResult::error("", ResponseError::GroupMaxSizeReached))
        } else if request.member_id.is_empty() {
            self.join_new_member(request, now)
        } else {
            self.join_current_member(request, now)
        };
        if self.state == GroupState::PreparingRebalance {
            self.try_complete_join(now);
        }
        outcome
    }

    fn accepts_joining_member(&self, member_id: &str) -> bool {
        let max = self.config.group_max_size;
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(Member::is_awaiting_join)
                    || self.awaiting_join_count() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max
            }
        }
    }

    fn join_new_member(&mut self, request: JoinRequest, now: Now) -> JoinOutcome {
        if self.state == GroupState::Dead {
            return JoinOutcome::Reply(JoinResult::error(
                "",
                ResponseError::CoordinatorNotAvailable,
            ));
        }
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            return JoinOutcome::Reply(JoinResult::error(
                "",
                ResponseError::InconsistentGroupProtocol,
            ));
        }
        let prefix = request
            .group_instance_id
            .clone()
            .unwrap_or_else(|| request.client_id.clone());
        let member_id = format!("{prefix}-{}", random_uuid());
        if let Some(instance) = request.group_instance_id.clone() {
            return match self.static_members.get(&instance).cloned() {
                Some(old_member_id) => {
                    self.replace_static_member(request, &old_member_id, &member_id, now)
                }
                None => self.add_member_and_rebalance(request, member_id, now),
            };
        }
        if request.require_known_member_id {
            tracing::info!(
                "Dynamic member with unknown member id joins group {} in {} state. Created a new \
                 member id {member_id} and request the member to rejoin with this id.",
                self.group_id,
                self.state.name()
            );
            self.pending_members.insert(
                member_id.clone(),
                now.plus_ms(i64::from(request.session_timeout_ms)),
            );
            return JoinOutcome::Reply(JoinResult::error(
                &member_id,
                ResponseError::MemberIdRequired,
            ));
        }
        self.add_member_and_rebalance(request, member_id, now)
    }

    fn join_current_member(&mut self, request: JoinRequest, now: Now) -> JoinOutcome {
        let member_id = request.member_id.clone();
        if self.state == GroupState::Dead {
            return JoinOutcome::Reply(JoinResult::error(
                &member_id,
                ResponseError::CoordinatorNotAvailable,
            ));
        }
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            return JoinOutcome::Reply(JoinResult::error(
                &member_id,
                ResponseError::InconsistentGroupProtocol,
            ));
        }
        if self.pending_members.remove(&member_id).is_some() {
            tracing::info!(
                "Pending dynamic member with id {member_id} joins group {} in {} state. Adding to \
                 the group now.",
                self.group_id,
                self.state.name()
            );
            return self.add_member_and_rebalance(request, member_id, now);
        }
        if let Some(error) =
            self.validate_current_member(&member_id, request.group_instance_id.as_deref())
        {
            return JoinOutcome::Reply(JoinResult::error(&member_id, error));
        }
        let matches = self
            .members
            .get(&member_id)
            .is_some_and(|member| member.matches(&request.protocols));
        let is_leader = self.leader_id.as_deref() == Some(member_id.as_str());
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(request, now),
            GroupState::CompletingRebalance if matches => {
                // It lost the JoinGroup response: the current generation again.
                JoinOutcome::Reply(self.join_result(&member_id, is_leader))
            }
            GroupState::CompletingRebalance => self.update_member_and_rebalance(request, now),
            GroupState::Stable if is_leader || !matches => {
                // The leader rejoining triggers a rebalance (it may have seen metadata change).
                self.update_member_and_rebalance(request, now)
            }
            GroupState::Stable => JoinOutcome::Reply(self.join_result(&member_id, false)),
            GroupState::Empty | GroupState::Dead => JoinOutcome::Reply(JoinResult::error(
                &member_id,
                ResponseError::UnknownMemberId,
            )),
        }
    }

    /// The current generation as `member_id` sees it (with every member's metadata for the
    /// leader).
    pub(super) fn join_result(&self, member_id: &str, with_members: bool) -> JoinResult {
        JoinResult {
            error: None,
            member_id: member_id.to_string(),
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone().unwrap_or_default(),
            skip_assignment: false,
            members: if with_members {
                self.current_member_metadata()
            } else {
                Vec::new()
            },
        }
    }

    fn current_member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|member| JoinedMember {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                metadata: member.metadata(&protocol),
            })
            .collect()
    }

    fn add_member_and_rebalance(
        &mut self,
        request: JoinRequest,
        member_id: String,
        now: Now,
    ) -> JoinOutcome {
        let (waiter, parked) = oneshot::channel();
        if self.state == GroupState::PreparingRebalance && self.generation_id == 0 {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.clone());
        }
        if let Some(instance) = &request.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        tracing::info!(
            "[GroupCoordinator] Member {member_id} (client {}, instance {:?}) joins group {} in \
             {} state",
            request.client_id,
            request.group_instance_id,
            self.group_id,
            self.state.name()
        );
        self.members.insert(
            member_id.clone(),
            Member {
                member_id: member_id.clone(),
                group_instance_id: request.group_instance_id,
                client_id: request.client_id,
                client_host: request.client_host,
                rebalance_timeout_ms: request.rebalance_timeout_ms,
                session_timeout_ms: request.session_timeout_ms,
                protocols: request.protocols,
                assignment: Bytes::new(),
                awaiting_join: Some(waiter),
                awaiting_sync: None,
                is_new: true,
                heartbeat_deadline: Some(now.plus_ms(NEW_MEMBER_JOIN_TIMEOUT_MS)),
            },
        );
        self.maybe_prepare_rebalance(&format!("adding new member {member_id}"), now);
        JoinOutcome::Parked(parked)
    }

    fn update_member_and_rebalance(&mut self, request: JoinRequest, now: Now) -> JoinOutcome {
        let (waiter, parked) = oneshot::channel();
        let Some(member) = self.members.get_mut(&request.member_id) else {
            return JoinOutcome::Reply(JoinResult::error(
                &request.member_id,
                ResponseError::UnknownMemberId,
            ));
        };
        member.protocols = request.protocols;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.session_timeout_ms = request.session_timeout_ms;
        // A retried JoinGroup replaces the previous one, which is told to rejoin.
        member.answer_join(JoinResult::error(
            &request.member_id,
            ResponseError::RebalanceInProgress,
        ));
        member.awaiting_join = Some(waiter);
        self.maybe_prepare_rebalance(&format!("member {} rejoining", request.member_id), now);
        JoinOutcome::Parked(parked)
    }

    /// A static member (known group.instance.id) joins without its member id: it replaces its
    /// previous incarnation, which is fenced. A stable group keeps its assignment.
    fn replace_static_member(
        &mut self,
        request: JoinRequest,
        old_member_id: &str,
        new_member_id: &str,
        now: Now,
    ) -> JoinOutcome {
        let Some(mut member) = self.members.remove(old_member_id) else {
            return self.add_member_and_rebalance(request, new_member_id.to_string(), now);
        };
        tracing::info!(
            "Static member with groupInstanceId={:?} and unknown member id joins group {} in {} \
             state. Replacing previously mapped member {old_member_id} with {new_member_id}.",
            request.group_instance_id,
            self.group_id,
            self.state.name()
        );
        member.answer_join(JoinResult::error(
            old_member_id,
            ResponseError::FencedInstanceId,
        ));
        member.answer_sync(SyncResult::error(ResponseError::FencedInstanceId));
        let previous_leader = self.leader_id.clone().unwrap_or_default();
        member.member_id = new_member_id.to_string();
        member.protocols = request.protocols;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.session_timeout_ms = request.session_timeout_ms;
        member.heartbeat_deadline = Some(now.plus_ms(i64::from(request.session_timeout_ms)));
        self.members.insert(new_member_id.to_string(), member);
        if let Some(instance) = &request.group_instance_id {
            self.static_members
                .insert(instance.clone(), new_member_id.to_string());
        }
        if self.leader_id.as_deref() == Some(old_member_id) {
            self.leader_id = Some(new_member_id.to_string());
        }
        if self.pending_sync_members.remove(old_member_id) {
            self.pending_sync_members.insert(new_member_id.to_string());
        }
        match self.state {
            GroupState::Stable if self.select_protocol() == self.protocol_name => {
                // Keep the assignment: store the new member id, answer with the current
                // generation. Before JoinGroup v9 the previous leader id is returned so that a
                // rejoining leader does not run a pointless assignment; from v9 it is told to
                // skip it.
                self.writes.push(GroupWrite::Metadata {
                    value: self.to_record(),
                });
                let is_leader = self.leader_id.as_deref() == Some(new_member_id);
                let mut result = self.join_result(new_member_id, false);
                if request.supports_skip_assignment {
                    result.skip_assignment = is_leader;
                    if is_leader {
                        result.members = self.current_member_metadata();
                    }
                } else {
                    result.leader_id = previous_leader;
                }
                JoinOutcome::Reply(result)
            }
            _ => {
                let (waiter, parked) = oneshot::channel();
                if let Some(member) = self.members.get_mut(new_member_id) {
                    member.awaiting_join = Some(waiter);
                }
                if self.state == GroupState::CompletingRebalance {
                    self.prepare_rebalance(
                        &format!("static member {new_member_id} replaced {old_member_id}"),
                        now,
                    );
                } else {
                    self.maybe_prepare_rebalance(
                        &format!("static member {new_member_id} changed protocols"),
                        now,
                    );
                }
                JoinOutcome::Parked(parked)
            }
        }
    }

    /// Kafka's `supportsProtocols`: the first member sets the protocol type; later ones must
    /// share it and a protocol every member supports.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|protocol| {
                self.members
                    .values()
                    .all(|member| member.supports(&protocol.name))
            })
    }

    /// The protocol every member supports that most members prefer (ties: the first by name).
    pub(super) fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.values().all(|member| member.supports(name)))
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(vote) = member.vote(&candidates) {
                *votes.entry(vote).or_default() += 1;
            }
        }
        let most = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, count)| *count == most)
            .map(|(name, _)| name.to_string())
    }

    /// Kafka's `validateCurrentMember`: a static member's id must be the one its instance id
    /// maps to (else FENCED_INSTANCE_ID); the member must exist.
    pub(super) fn validate_current_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Option<ResponseError> {
        if let Some(instance) = group_instance_id {
            return match self.static_members.get(instance) {
                Some(current) if current != member_id => Some(ResponseError::FencedInstanceId),
                Some(_) => None,
                None => Some(ResponseError::UnknownMemberId),
            };
        }
        (!self.members.contains_key(member_id)).then_some(ResponseError::UnknownMemberId)
    }

    /// A SyncGroup's or Heartbeat's first checks: the group is alive, the member is current
    /// (`validate_current_member`), and of the group's generation.
    pub(super) fn validate_member_of_generation(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Option<ResponseError> {
        if self.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(error) = self.validate_current_member(member_id, group_instance_id) {
            return Some(error);
        }
        (generation_id != self.generation_id).then_some(ResponseError::IllegalGeneration)
    }
}
