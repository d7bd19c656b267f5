//! `kchaos coord SERVER [command]`: a zookeeper-shell for any ZooKeeper-protocol server.

use std::process::ExitCode;

/// Arguments (not yet defined).
#[derive(Debug, clap::Args)]
pub struct ShellArgs {}

/// Not built yet: fails with a clear message.
pub fn run(_args: ShellArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`run` is not built yet")
}
