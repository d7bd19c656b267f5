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
//! - [`checker`]: the history in, the verdict (results.json) out.

pub mod checker;
pub mod history;
pub mod ports;
pub mod process;
pub mod wait;
