//! `kchaos elect`: preferred and unclean leader election over the Kafka protocol, like kafka-leader-election.

use std::process::ExitCode;

/// Arguments (not yet defined).
#[derive(Debug, clap::Args)]
pub struct ElectArgs {}

/// Not built yet: fails with a clear message.
pub fn run(_args: ElectArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`run` is not built yet")
}
