//! `kchaos configs`: describe and alter topic configs over the Kafka protocol, like kafka-configs.

use std::process::ExitCode;

/// Arguments (not yet defined).
#[derive(Debug, clap::Args)]
pub struct ConfigsArgs {}

/// Not built yet: fails with a clear message.
pub fn run(_args: ConfigsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`run` is not built yet")
}
