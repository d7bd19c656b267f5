//! `kchaos topics`: create, describe, list and delete topics over the Kafka protocol, like kafka-topics.

use std::process::ExitCode;

/// Arguments (not yet defined).
#[derive(Debug, clap::Args)]
pub struct TopicsArgs {}

/// Not built yet: fails with a clear message.
pub fn run(_args: TopicsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`run` is not built yet")
}
