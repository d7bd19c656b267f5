//! kchaos: the system under test (a Kafka-protocol broker and a ZooKeeper-protocol coordinator)
//! and the command line that drives the `harness` and `reports` crates.
//!
//! # Layout
//! - [`coordinator`]: our ZooKeeper: znode tree, sessions and ephemerals, watches, write-ahead
//!   log and snapshots, and a server speaking ZooKeeper's jute client protocol.
//! - [`broker`]: the Kafka-protocol broker: listener, one handler per Kafka API, partition logs,
//!   replica manager (ISR, high watermark), replica fetcher, controller, metadata cache, config.
//! - [`client`]: `kchaos client`, the rdkafka client worker the harness starts for every
//!   producer and consumer (docs/client-protocol.md).
//! - [`cli`]: the user-facing subcommands that are not daemons (workload, list, check, report,
//!   cluster, topics, configs, elect).
//! - [`bench`]: `kchaos bench ...`, the benchmarks anyone can rerun.
//! - [`planted`]: the planted bugs of `kchaos selftest` (only in a `planted-bugs` build; a
//!   default build keeps the refusal of their switches).
//!
//! Every subcommand's entry point returns `anyhow::Result<ExitCode>`: an `Err` means the command
//! could not be carried out and exits with code 2 after printing the error chain.

pub mod bench;
pub mod broker;
pub mod cli;
pub mod client;
pub mod coordinator;
pub mod lock;
pub mod planted;
