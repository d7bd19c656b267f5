//! `kchaos bench coordinator`: acknowledged (fsync'd) writes per second and watch notification latency.

use std::process::ExitCode;

/// Arguments of `kchaos bench coordinator` (not yet defined).
#[derive(Debug, clap::Args)]
pub struct CoordinatorBenchArgs {}

/// Not built yet: fails with a clear message.
pub fn run(_args: CoordinatorBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`bench coordinator` is not built yet")
}
