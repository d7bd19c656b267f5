//! The harness drives any Kafka-protocol cluster: it starts and signals processes, injects
//! faults (the nemesis), runs rdkafka producers and consumers (the clients), records every
//! operation (the history) and judges it (the checker). It knows nothing of the kchaos broker
//! or coordinator: it talks to a cluster only through the Kafka protocol and signals.
//!
//! # Layout
//! - [`process`]: one child process that can never outlive us (process group, PDEATHSIG).
//! - [`ports`]: free loopback ports.
//! - [`wait`]: waiting for a condition with a deadline instead of sleeping.
//! - [`history`]: `history.jsonl`, its writer and reader.
//! - [`leadership`]: leader and ISR of each partition sampled during a run (`leadership.jsonl`).
//! - [`workload`]: workload specs (TOML), parsed strictly and validated.
//! - [`target`]: fault targets (`leader`, `controller`, `broker-2`, ...) and their resolution.
//! - [`metadata`]: live brokers, controller, leaders and ISRs, from a Metadata request
//!   (`kafka_wire`, the workspace's one Kafka wire client).
//! - [`cluster`]: the coordinator and brokers as child processes, their configs and logs.
//! - [`recorder`]: the history writer plus the live counters, shared by clients and nemesis.
//! - [`schedule`]: the nemesis's seeded timeline of faults.
//! - [`nemesis`]: faults by signal on named nodes, recorded in the history.
//! - [`checker`]: the history in, the verdict (results.json) out.
//! - [`producer`], [`consumer`], [`final_read`]: the rdkafka clients ([`client_context`]:
//!   their quiet logging).
//! - [`topic`]: creating the workload's topic through the admin API.
//! - [`store`]: run directories and the `latest` link.
//! - [`progress`]: the live progress line.
//! - [`run`]: one run, phase by phase (setup, faults, heal, final read, check, teardown).
//! - [`setup`]: bringing the cluster up, and keeping it whole after the heal.
//! - [`summary`]: the lines a person reads at the end.

pub mod checker;
pub mod client_context;
pub mod cluster;
pub mod consumer;
pub mod final_read;
pub mod history;
pub mod leadership;
pub mod metadata;
pub mod nemesis;
pub mod ports;
pub mod process;
pub mod producer;
pub mod progress;
pub mod recorder;
pub mod run;
pub mod schedule;
pub mod setup;
pub mod store;
pub mod summary;
pub mod target;
pub mod topic;
pub mod wait;
pub mod workload;
