//! The ZooKeeper-protocol coordinator (`kchaos coordinator --port 2181 --data-dir DIR`).

use std::process::ExitCode;

/// Arguments (not yet defined).
#[derive(Debug, clap::Args)]
pub struct CoordinatorArgs {}

/// Not built yet: fails with a clear message.
pub fn run(_args: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`run` is not built yet")
}

pub mod shell;
