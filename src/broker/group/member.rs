//! One member of a group: who it is, its timeouts and protocols, its current assignment, the
//! JoinGroup or SyncGroup it has parked, and when it must heartbeat next.

use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::messages::{JoinResult, Protocol, SyncResult};

/// A member of a group.
#[derive(Debug)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// A JoinGroup waiting for the rebalance to complete.
    pub awaiting_join: Option<oneshot::Sender<JoinResult>>,
    /// A SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<oneshot::Sender<SyncResult>>,
    /// Joined in the current rebalance and not yet given a generation: such a member may be
    /// dropped while its JoinGroup is parked (Kafka's 5-minute new-member join timeout).
    pub is_new: bool,
    /// Removed from the group unless it heartbeats (or commits) before this; `None` while it
    /// waits inside a rebalance, where waiting counts as heartbeating.
    pub heartbeat_deadline: Option<Instant>,
}

impl Member {
    /// Whether `protocols` are exactly this member's (names, order and metadata).
    pub fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// Whether the member supports `protocol`.
    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// The member's metadata for `protocol` (empty if it does not support it).
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// The member's preferred protocol among `candidates`.
    pub fn vote<'a>(&'a self, candidates: &[&str]) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Answers a parked JoinGroup, if any (the requester may be gone: that is fine).
    pub fn answer_join(&mut self, result: JoinResult) -> bool {
        match self.awaiting_join.take() {
            Some(waiter) => {
                let _ = waiter.send(result);
                true
            }
            None => false,
        }
    }

    /// Answers a parked SyncGroup, if any.
    pub fn answer_sync(&mut self, result: SyncResult) -> bool {
        match self.awaiting_sync.take() {
            Some(waiter) => {
                let _ = waiter.send(result);
                true
            }
            None => false,
        }
    }

    pub fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }

    pub fn is_awaiting_sync(&self) -> bool {
        self.awaiting_sync.is_some()
    }
}
