//! The clients, Jepsen's processes: rdkafka workers that perform operations on the cluster and
//! record each as an `invoke` and one completion (`ok`, `fail`, or `info` when unknown). They
//! see the cluster only through a `bootstrap.servers` list.
//!
//! # Layout
//! - [`producer`]: `send`, unique values at a rate or as fast as the in-flight bound allows.
//! - [`consumer`]: `poll` (and `assign`) of every partition, on a thread of its own.
//! - [`group_consumer`]: a consumer group member: `subscribe`, `poll`, `commit`, and the
//!   rebalances (`revoke`, `assign`) as they happen.
//! - [`group_members`]: the group's members in named slots the nemesis can kill and pause.
//! - [`final_read`]: the read after the heal that decides loss, every partition in full.
//! - [`client_context`]: the quiet rdkafka context they share.
//!
//! A client worker of another process (the worker protocol) will live here too.

pub mod client_context;
pub mod consumer;
pub mod final_read;
pub mod group_consumer;
pub mod group_members;
pub mod producer;
