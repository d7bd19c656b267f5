//! `kchaos workload`, `kchaos list` and `kchaos check`: the CLI edge of the `harness` crate.

use std::process::ExitCode;

/// Arguments of `kchaos workload` (not yet defined).
#[derive(Debug, clap::Args)]
pub struct WorkloadArgs {}

/// Arguments of `kchaos list` (not yet defined).
#[derive(Debug, clap::Args)]
pub struct ListArgs {}

/// Arguments of `kchaos check` (not yet defined).
#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

/// Not built yet: fails with a clear message.
pub fn run(_args: WorkloadArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`workload` is not built yet")
}

/// Not built yet: fails with a clear message.
pub fn list(_args: ListArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`list` is not built yet")
}

/// Not built yet: fails with a clear message.
pub fn check(_args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`check` is not built yet")
}
