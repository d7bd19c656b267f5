//! `kchaos bench checker`: check a generated 10M-operation history; ops/s and peak RSS.

use std::process::ExitCode;

/// Arguments of `kchaos bench checker` (not yet defined).
#[derive(Debug, clap::Args)]
pub struct CheckerBenchArgs {}

/// Not built yet: fails with a clear message.
pub fn run(_args: CheckerBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`bench checker` is not built yet")
}
