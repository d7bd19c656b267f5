//! One consumer group's state machine (Kafka's classic protocol, `GroupCoordinator` and
//! `GroupMetadata`): membership, rebalances, generations, the leader, the assignment relay and
//! the membership checks of commits. Every decision is a plain method taking the moment it
//! happens ([`Now`]); nothing here does I/O or reads a clock, so it is unit-tested directly.
//!
//! Parked JoinGroups and SyncGroups are one-shot channels kept on their member and answered
//! when the rebalance moves on. Writes the coordinator must make to `__consumer_offsets` are
//! queued ([`Group::take_writes`]); the leader's assignment is propagated only once its write
//! is replicated ([`Group::assignment_stored`]).
//!
//! Timers are deadlines on the group — each member's heartbeat deadline, each pending member's
//! (MEMBER_ID_REQUIRED) deadline, the join timer (initial delay or rebalance timeout) and the
//! pending-sync timer — that [`Group::expire`] acts on and [`Group::next_deadline`] reports; there
//! is at most one per member plus two per group.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::clock::Now;
use super::config::GroupCoordinatorConfig;
use super::member::Member;
use super::messages::{JoinRequest, JoinResult, JoinedMember, Protocol, SyncResult};
use super::offsets::GroupOffsets;
use super::records::{GroupValue, MemberValue};
use super::state::GroupState;

/// How long a new member's JoinGroup may stay parked (Kafka's `NewMemberJoinTimeoutMs`).
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;
/// At most this many timer rounds in one [`Group::expire`] call (each round makes progress).
const MAX_EXPIRY_ROUNDS: usize = 64;

/// A JoinGroup's fate.
#[derive(Debug)]
pub enum JoinOutcome {
    Reply(JoinResult),
    /// Answered when the rebalance completes (or the member is removed, or the group unloaded).
    Parked(oneshot::Receiver<JoinResult>),
}

/// A SyncGroup's fate.
#[derive(Debug)]
pub enum SyncOutcome {
    Reply(SyncResult),
    /// Answered when the leader's assignment is stored (or the rebalance restarts).
    Parked(oneshot::Receiver<SyncResult>),
}

/// A write to `__consumer_offsets` the group needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupWrite {
    /// The leader's assignment for `generation`: report the outcome to
    /// [`Group::assignment_stored`].
    Assignment { generation: i32, value: GroupValue },
    /// The group's metadata (the group became empty, or a static member got a new id).
    Metadata { value: GroupValue },
}

/// The join timer: the first rebalance of an empty group waits `group.initial.rebalance.delay.ms`
/// (extended while new members keep coming, up to the rebalance timeout); later ones wait for
/// every member to rejoin, at most the rebalance timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinTimer {
    Initial {
        at: Instant,
        delay_ms: i64,
        remaining_ms: i64,
    },
    Rebalance {
        at: Instant,
    },
}

impl JoinTimer {
    fn at(&self) -> Instant {
        match self {
            JoinTimer::Initial { at, .. } | JoinTimer::Rebalance { at } => *at,
        }
    }
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberSummary>,
}

/// One group.
#[derive(Debug)]
pub struct Group {
    pub group_id: String,
    state: GroupState,
    /// Wall-clock ms of the last state change (stored; offsets of an empty consumer group
    /// expire `offsets.retention.minutes` after it).
    state_timestamp_ms: i64,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    generation_id: i32,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id -> member id.
    static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline to join with them.
    pending_members: BTreeMap<String, Instant>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pending_sync_members: BTreeSet<String>,
    sync_deadline: Option<(i32, Instant)>,
    /// A new member joined during the initial delay (which then extends).
    new_member_added: bool,
    join_timer: Option<JoinTimer>,
    writes: Vec<GroupWrite>,
    config: GroupCoordinatorConfig,
    pub offsets: GroupOffsets,
}

impl Group {
    /// A new, empty group.
    pub fn new(group_id: &str, config: GroupCoordinatorConfig, now: Now) -> Self {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            state_timestamp_ms: now.wall_ms,
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync_members: BTreeSet::new(),
            sync_deadline: None,
            new_member_added: false,
            join_timer: None,
            writes: Vec::new(),
            config,
            offsets: GroupOffsets::default(),
        }
    }

    /// A group as its metadata record stored it: `Stable` with its members (who must heartbeat
    /// within their session timeout from `now`), or `Empty`.
    pub fn from_record(
        group_id: &str,
        value: GroupValue,
        config: GroupCoordinatorConfig,
        now: Now,
    ) -> Self {
        let mut group = Group::new(group_id, config, now);
        group.generation_id = value.generation;
        group.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type);
        group.protocol_name = value.protocol.clone();
        group.state_timestamp_ms = if value.current_state_timestamp_ms >= 0 {
            value.current_state_timestamp_ms
        } else {
            now.wall_ms
        };
        let protocol = value.protocol.unwrap_or_default();
        for stored in value.members {
            let member = Member {
                member_id: stored.member_id.clone(),
                group_instance_id: stored.group_instance_id.clone(),
                client_id: stored.client_id,
                client_host: stored.client_host,
                rebalance_timeout_ms: stored.rebalance_timeout_ms,
                session_timeout_ms: stored.session_timeout_ms,
                protocols: vec![Protocol {
                    name: protocol.clone(),
                    metadata: stored.subscription,
                }],
                assignment: stored.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                heartbeat_deadline: Some(now.plus_ms(i64::from(stored.session_timeout_ms))),
            };
            if let Some(instance) = stored.group_instance_id {
                group
                    .static_members
                    .insert(instance, stored.member_id.clone());
            }
            group.members.insert(stored.member_id, member);
        }
        group.leader_id = value
            .leader
            .filter(|leader| group.members.contains_key(leader))
            .or_else(|| group.members.keys().next().cloned());
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn member_ids(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// The writes queued since the last call.
    pub fn take_writes(&mut self) -> Vec<GroupWrite> {
        std::mem::take(&mut self.writes)
    }

    /// An empty group without offsets or pending members can be forgotten.
    pub fn is_removable(&self) -> bool {
        self.state == GroupState::Empty
            && self.offsets.is_empty()
            && self.pending_members.is_empty()
    }

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
    fn join_result(&self, member_id: &str, with_members: bool) -> JoinResult {
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
    fn select_protocol(&self) -> Option<String> {
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
    fn validate_current_member(
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
    fn validate_member_of_generation(
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

    // ------------------------------------------------------------- rebalancing

    fn maybe_prepare_rebalance(&mut self, reason: &str, now: Now) {
        if self.state.can_rebalance() {
            self.prepare_rebalance(reason, now);
        }
    }

    fn prepare_rebalance(&mut self, reason: &str, now: Now) {
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

    fn awaiting_join_count(&self) -> usize {
        self.members
            .values()
            .filter(|member| member.is_awaiting_join())
            .count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.awaiting_join_count() == self.members.len() && self.pending_members.is_empty()
    }

    /// Completes the join phase early when everyone is in (never during the initial delay).
    fn try_complete_join(&mut self, now: Now) {
        if matches!(self.join_timer, Some(JoinTimer::Rebalance { .. }))
            && self.has_all_members_joined()
        {
            self.complete_join(now);
        }
    }

    /// Kafka's `onCompleteJoin`: drop dynamic members that did not rejoin, make sure the
    /// leader rejoined, start the next generation and answer every parked JoinGroup.
    fn complete_join(&mut self, now: Now) {
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

    fn reset_and_propagate_assignment_error(&mut self, error: ResponseError, now: Now) {
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

    fn heartbeat_received(&mut self, member_id: &str, now: Now) {
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
    fn forget_member(&mut self, member: &Member) {
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

    // ------------------------------------------------------------ OffsetCommit

    /// May this member commit offsets? Kafka's `validateOffsetCommit` and the state rules of
    /// `doCommitOffsets`: a commit without membership (generation -1, no member id) is allowed
    /// only for an empty group; members commit with their current generation, also while a
    /// rebalance is being prepared, but not while the next generation awaits its assignment.
    /// A commit counts as a heartbeat.
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now: Now,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            if let Some(error) = self.validate_current_member(member_id, group_instance_id) {
                return Err(error);
            }
            if generation_id != self.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
        } else if self.state != GroupState::Empty {
            return Err(ResponseError::UnknownMemberId);
        }
        match self.state {
            GroupState::CompletingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::Stable | GroupState::PreparingRebalance => {
                self.heartbeat_received(member_id, now);
                Ok(())
            }
            GroupState::Empty => Ok(()),
            GroupState::Dead => Err(ResponseError::CoordinatorNotAvailable),
        }
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

    // --------------------------------------------------------------- unloading

    /// The coordinator moved: answer every parked request with NOT_COORDINATOR (the clients
    /// find the new coordinator) and mark the group dead.
    pub fn unload(&mut self, now: Now) {
        for member in self.members.values_mut() {
            member.answer_join(JoinResult::error(
                &member.member_id,
                ResponseError::NotCoordinator,
            ));
            member.answer_sync(SyncResult::error(ResponseError::NotCoordinator));
        }
        self.join_timer = None;
        self.sync_deadline = None;
        self.transition(GroupState::Dead, now);
    }

    // ------------------------------------------------------------ descriptions

    /// The metadata record of the group as it is now.
    pub fn to_record(&self) -> GroupValue {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|member| MemberValue {
                    member_id: member.member_id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    rebalance_timeout_ms: member.rebalance_timeout_ms,
                    session_timeout_ms: member.session_timeout_ms,
                    subscription: member.metadata(&protocol),
                    assignment: member.assignment.clone(),
                })
                .collect(),
        }
    }

    /// What DescribeGroups shows: metadata and assignments only once the group is stable.
    pub fn summary(&self) -> GroupSummary {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupSummary {
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: self
                .members
                .values()
                .map(|member| MemberSummary {
                    member_id: member.member_id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    metadata: if stable {
                        member.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        member.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// When the group became what it is (wall-clock ms).
    pub fn state_timestamp_ms(&self) -> i64 {
        self.state_timestamp_ms
    }

    fn transition(&mut self, target: GroupState, now: Now) {
        debug_assert!(
            self.state.can_transition_to(target),
            "group {} cannot go from {:?} to {target:?}",
            self.group_id,
            self.state
        );
        self.state = target;
        self.state_timestamp_ms = now.wall_ms;
    }
}

/// A random (version 4) UUID, as Kafka appends to member ids.
fn random_uuid() -> String {
    // The version nibble is bits 76..80 (4: random), the variant bits 62..64 (binary 10).
    let random: u128 = rand::random();
    let bits = (random & !(0xFu128 << 76) & !(0x3u128 << 62)) | (0x4u128 << 76) | (0x2u128 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
