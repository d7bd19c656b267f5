//! `kchaos cluster up`: a coordinator and brokers started by hand, as in the seed notes.

use std::process::ExitCode;

/// Arguments (not yet defined).
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {}

/// Not built yet: fails with a clear message.
pub fn run(_args: ClusterArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`run` is not built yet")
}
