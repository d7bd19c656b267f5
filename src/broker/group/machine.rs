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
//!
//! # Layout
//! This file holds the group, its accessors, the commit checks, unloading and descriptions;
//! the protocol's steps are split out: [`join`], [`rebalance`], [`sync`], and [`liveness`]
//! (heartbeats, LeaveGroup, timers).

mod join;
mod liveness;
mod rebalance;
mod sync;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::clock::Now;
use super::config::GroupCoordinatorConfig;
use super::member::Member;
use super::messages::{JoinResult, Protocol, SyncResult};
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
