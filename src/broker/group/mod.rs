//! Consumer groups, Kafka's classic protocol: the group coordinator.
//!
//! A group's coordinator is the leader of its `__consumer_offsets` partition
//! (`abs(hashCode(group.id)) % offsets.topic.num.partitions`); its membership, generations and
//! committed offsets are records in that partition, replicated like any topic's, so the
//! coordinator fails over with the partition's leadership: the new leader loads the partition,
//! the old one drops its state and answers NOT_COORDINATOR.
//!
//! # Layout
//! - [`config`]: the `group.*` and `offsets.*` settings and their Kafka defaults.
//! - [`placement`]: which partition a group maps to (Java's `String.hashCode`).
//! - [`host`]: what the groups need of their broker ([`host::GroupHost`]).
//! - [`state`]: the five group states and their legal transitions.
//! - [`messages`]: the state machine's inputs and results (JoinGroup, SyncGroup).
//! - [`member`]: one member, its parked requests and heartbeat deadline.
//! - [`machine`]: one group's state machine — joins, rebalances, syncs, heartbeats, leaves,
//!   commit checks, timers (pure, unit-tested).
//! - [`offsets`]: one group's committed offsets.
//! - [`clock`]: the moment a decision is made at.
//! - [`records`]: the key and value formats of `__consumer_offsets` (Kafka's schemas).
//! - [`loader`]: replaying a partition's records into groups.
//! - [`shard`]: one led partition: loading, unloading, replicated writes, timers.
//! - [`coordinator`]: this broker's shards, following leadership.

pub mod clock;
pub mod config;
pub mod coordinator;
pub mod host;
pub mod loader;
pub mod machine;
pub mod member;
pub mod messages;
pub mod offsets;
pub mod placement;
pub mod records;
pub mod shard;
pub mod state;

/// The internal topic of groups and committed offsets.
pub const GROUP_METADATA_TOPIC: &str = "__consumer_offsets";
