//! `kchaos bench produce`: rdkafka producer and consumer throughput against our broker.

use std::process::ExitCode;

/// Arguments of `kchaos bench produce` (not yet defined).
#[derive(Debug, clap::Args)]
pub struct ProduceBenchArgs {}

/// Not built yet: fails with a clear message.
pub fn run(_args: ProduceBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`bench produce` is not built yet")
}
