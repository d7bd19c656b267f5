//! `kchaos report RUN_DIR`: writes a stored run's HTML report through the `reports` crate.

use std::process::ExitCode;

/// Arguments (not yet defined).
#[derive(Debug, clap::Args)]
pub struct ReportArgs {}

/// Not built yet: fails with a clear message.
pub fn run(_args: ReportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`run` is not built yet")
}
