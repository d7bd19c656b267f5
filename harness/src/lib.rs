//! The harness drives any Kafka-protocol cluster, in Jepsen's terms: it starts and signals the
//! processes of the system under test (the cluster, Jepsen's DB), injects faults (the nemesis),
//! runs producers and consumers as worker processes of any client library (the clients),
//! records every operation (through the `history` crate's writer) and has the `checker` crate
//! judge it. It knows nothing of the kchaos broker or coordinator: it talks to a cluster only
//! through the Kafka protocol and signals.
//!
//! # Layout
//! - [`cluster`]: the system under test — its processes (each a [`cluster::process`] that can
//!   never outlive us, on [`cluster::ports`]), their configs, start and stop; and what the
//!   cluster says about itself ([`cluster::metadata`]) and its topic ([`cluster::topic`]).
//! - [`nemesis`]: faults: targets resolved at fault time, the seeded schedule, and one file per
//!   fault family (signals, network partitions, and disk faults on fault filesystems).
//! - [`cleanup`]: what killed runs left on the host (network namespaces, ...), found and removed.
//! - [`clients`]: the clients that make the history, each a worker process speaking the worker
//!   protocol (docs/client-protocol.md): producer, consumer, final read, and crash handling.
//! - [`workload`]: workload specs (TOML), parsed strictly and validated, and the fault and
//!   target vocabulary they use.
//! - [`recorder`]: the history writer plus the live counters, shared by clients and nemesis.
//! - [`run`]: one run, phase by phase (setup, faults, heal, final read, check, teardown), with
//!   its store directory, progress line, leadership samples and summary.
//! - [`wait`]: waiting for a condition with a deadline instead of sleeping.
//! - [`lock`]: the one poison-tolerant mutex lock.
//!
//! Dependencies point one way: `run` -> `nemesis`, `clients`, `cluster`, `workload`,
//! `recorder`; `nemesis` -> `cluster`, `workload`, `recorder`; `clients` -> `recorder`; `cluster`
//! and `workload` -> nothing of the harness but `wait` and `lock`
//! (they speak Kafka through the workspace's one wire client, the `kafka-wire` crate).

pub mod cleanup;
pub mod clients;
pub mod cluster;
pub mod lock;
pub mod nemesis;
pub mod recorder;
pub mod run;
pub mod wait;
pub mod workload;
