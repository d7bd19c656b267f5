//! `kchaos cleanup`: removes what killed runs left on this machine — every sweeper of
//! [`harness::cleanup::sweepers`] (the network namespaces, veths, bridges and nft tables of
//! network partitions today) — or, with `--dry-run`, only lists it. Live runs, in any process,
//! are never touched. Exit 0 when every sweeper did its job (a sweeper that cannot run here,
//! e.g. without root, is skipped and said so), 1 when something could not be removed.

use std::process::ExitCode;

use harness::cleanup::{SweepError, sweep, sweepers};

/// Arguments of `kchaos cleanup`.
#[derive(Debug, clap::Args)]
pub struct CleanupArgs {
    /// List what killed runs left, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `kchaos cleanup [--dry-run]`.
pub fn run(args: CleanupArgs) -> anyhow::Result<ExitCode> {
    let verb = if args.dry_run { "left" } else { "removed" };
    let mut failed = false;
    let mut total = 0;
    for swept in sweep(&sweepers(), args.dry_run) {
        match swept.outcome {
            Ok(leftovers) => {
                total += leftovers.len();
                for leftover in &leftovers {
                    println!("{}: {verb} {leftover}", swept.sweeper);
                }
                if leftovers.is_empty() {
                    println!("{}: nothing left by killed runs", swept.sweeper);
                }
            }
            Err(SweepError::Unavailable(why)) => {
                println!("{}: skipped: {why}", swept.sweeper);
            }
            Err(SweepError::Failed(why)) => {
                failed = true;
                println!("{}: FAILED: {why}", swept.sweeper);
            }
        }
    }
    println!(
        "{total} leftover(s) {}",
        if args.dry_run {
            "found (--dry-run: nothing removed)"
        } else {
            "removed"
        }
    );
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
