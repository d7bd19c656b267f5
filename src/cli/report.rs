//! `kchaos report RUN_DIR`: writes a stored run's HTML report (`report.html`) and, when it has
//! a `results.json`, its JUnit checks (`results.xml`), through the `reports` crate.
//! `kchaos report --index STORE_DIR` writes the store's `index.html` of every run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `kchaos report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A run directory (`store/<workload>/<timestamp>`, or `store/latest`).
    #[arg(required_unless_present = "index", conflicts_with = "index")]
    pub run_dir: Option<PathBuf>,
    /// Write STORE_DIR/index.html listing every run in the store, newest first.
    #[arg(long, value_name = "STORE_DIR")]
    pub index: Option<PathBuf>,
}

/// Writes the report (or the index) and prints where it went.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    if let Some(store_dir) = args.index {
        let path = reports::write_index(&store_dir)
            .with_context(|| format!("writing the index of {}", store_dir.display()))?;
        println!("{}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let Some(run_dir) = args.run_dir else {
        anyhow::bail!("give a run directory, or --index STORE_DIR");
    };
    let written = reports::write_run(&run_dir)
        .with_context(|| format!("writing the report of {}", run_dir.display()))?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
