//! The clients, Jepsen's processes: each producer and consumer is a worker process of its own
//! (any Kafka client library, speaking the worker protocol of docs/client-protocol.md on its
//! stdin and stdout), driven from here. The harness records every operation as an `invoke` and
//! one completion (`ok`, `fail`, or `info` when unknown); a worker that crashes leaves its
//! in-flight operations `info`, a `client-crash` event in the history, and a fresh worker, a new
//! process, in its place. Workers see the cluster only through a `bootstrap.servers` list.
//!
//! # Layout
//! - [`protocol`]: the protocol's messages (hello, requests, replies) and its version.
//! - [`worker`]: one worker process and our end of its pipes: pipelined requests, replies by
//!   id, death (exit, signal, broken pipe, silence) and its cause.
//! - [`launch`]: a run's workers: their command (library or template), process numbers, logs,
//!   pids and crash events.
//! - [`session`]: what the drivers see of a client ([`session::Session`],
//!   [`session::Launcher`]), and replacing a dead one.
//! - [`producer`]: `send`, unique values at a rate or as fast as the in-flight bound allows.
//! - [`consumer`]: `poll` (and `assign`) of every partition.
//! - [`group_member`]: a consumer group member: `subscribe`, `poll`, `commit`, and the
//!   rebalances (`revoke`, `assign` at the committed offsets) its worker reports.
//! - [`group_members`]: the group's members in named slots the nemesis can kill (SIGKILL),
//!   pause (SIGSTOP), stop and start.
//! - [`final_read`]: the read after the heal that decides loss, every partition in full.

pub mod consumer;
pub mod final_read;
pub mod group_member;
pub mod group_members;
pub mod launch;
pub mod producer;
pub mod protocol;
pub mod session;
pub mod worker;
