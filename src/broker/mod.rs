//! The Kafka-protocol broker (`kchaos broker --config server.properties`).

use std::process::ExitCode;

/// Arguments (not yet defined).
#[derive(Debug, clap::Args)]
pub struct BrokerArgs {}

/// Not built yet: fails with a clear message.
pub fn run(_args: BrokerArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`run` is not built yet")
}
