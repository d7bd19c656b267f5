//! The Kafka-protocol broker (`kchaos broker --config server.properties`).
//!
//! # Layout
//! - [`config`]: `server.properties` parsing, Kafka's keys and defaults.
//! - [`server`]: start (listener, coordinator session, log recovery, registration), accept
//!   loop, shutdown on SIGTERM or when the log directory fails.
//! - [`connection`]: frames in, pipelined responses out in request order.
//! - [`connection_limits`]: what connections share: how many, idle time, request memory.
//! - [`handlers`]: one file per Kafka API, all of the same shape.
//! - [`log`]: batches, segments, offset index, leader-epoch cache, partition log; the log
//!   directory's failure (KIP-112) and its clean-shutdown marker.
//! - [`directory`]: durable directory entries (fsync of directories), for logs and snapshots.
//! - [`partition`]: one replica's state: leader epoch, ISR, log end, high watermark, waiters.
//! - [`producer_ids`]: the idempotent producer's ids (InitProducerId), in blocks reserved in
//!   the coordinator; [`producer_expiration`]: the periodic task forgetting idle producers
//!   (the per-partition producer state lives with the log: `log::producer_state`).
//! - [`replica_manager`]: the replicas hosted here; role changes are applied there.
//! - [`replica_fetcher`]: follower-pull replication, one fetcher per leader broker, with
//!   KIP-101 truncation (its connections to leaders are `kafka_wire` clients).
//! - [`isr`]: leaders shrink and expand their ISR (compare-and-set in the coordinator).
//! - [`controller`]: controller election and leader election for partitions that lost theirs.
//! - [`election`]: preferred/unclean election and auto-rebalance decisions (pure).
//! - [`elr`]: KIP-966's eligible leader replicas (pure): the ELR an ISR change leaves, the
//!   election from it, a broker back from an unclean shutdown.
//! - [`elector`]: carries them out on the controller (ElectLeaders, auto rebalance).
//! - [`group`]: consumer groups (the group coordinator, on `__consumer_offsets` leaders).
//! - [`offsets_topic`]: creating `__consumer_offsets`; which broker coordinates a group.
//! - [`metadata_sync`]: coordinator watches -> metadata cache and role changes.
//! - [`metadata_cache`]: brokers and topics, for Metadata.
//! - [`topic_admin`]: creating and deleting topics.
//! - [`topic_config`]: topic config keys, their valid values, alter operations.
//! - [`zk`]: the coordinator's paths and JSON, registration.
//! - [`context`]: the state handlers share.

pub mod config;
pub mod connection;
pub mod connection_limits;
pub mod context;
pub mod controller;
pub mod directory;
pub mod election;
pub mod elector;
pub mod elr;
pub mod group;
pub mod handlers;
pub mod isr;
pub mod log;
pub mod metadata_cache;
pub mod metadata_sync;
pub mod offsets_topic;
pub mod partition;
pub mod producer_expiration;
pub mod producer_ids;

pub mod replica_fetcher;
pub mod replica_manager;
pub mod server;
pub mod topic_admin;
pub mod topic_config;
pub mod zk;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use config::BrokerConfig;

/// `kchaos broker --config server.properties [--override key=value ...]`.
#[derive(Debug, clap::Args)]
pub struct BrokerArgs {
    /// The broker's `server.properties` (Kafka's format and keys).
    #[arg(long)]
    pub config: PathBuf,
    /// Overrides a setting of the file, like kafka-server-start's `--override key=value`.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// Runs one broker until SIGTERM; a bad config is an error (exit code 2).
pub fn run(args: BrokerArgs) -> anyhow::Result<ExitCode> {
    let mut text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read config file {}", args.config.display()))?;
    for setting in &args.overrides {
        if !setting.contains('=') {
            anyhow::bail!("--override `{setting}` is not KEY=VALUE");
        }
        text.push('\n');
        text.push_str(setting);
    }
    let parsed = BrokerConfig::parse(&text)
        .with_context(|| format!("invalid config {}", args.config.display()))?;
    for warning in &parsed.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(names) = &parsed.config.planted_bugs {
        crate::planted::switch_on(names, crate::planted::Component::Broker)
            .with_context(|| format!("invalid config {}", args.config.display()))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("broker")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(server::run(parsed.config))?;
    Ok(ExitCode::SUCCESS)
}
