//! `kchaos selftest`: proof that the harness catches real replication bugs. It switches on each
//! planted bug of the catalogue (`src/planted/catalogue.rs`), one per run, and runs the
//! workloads the catalogue says should catch it against a cluster started from this very binary
//! with the bug turned on (the broker's `kchaos.planted.bugs` property, or the coordinator's
//! `--planted-bugs` flag); the checker must find an anomaly that makes the run invalid.
//!
//! - `--quick` (the default, for CI): each bug against its first workload; seeds in turn until
//!   one catches it.
//! - `--full` (the nightly): each bug against every workload it names, every seed; and one
//!   control run per workload with no bug, which must pass (or a catch could be a false alarm).
//!
//! It writes `store/selftest/<timestamp>/`: each run's directory and report under `runs/`,
//! `selftest.json`, `index.html` (the matrix) and `results.xml` (JUnit); and exits 0 when every
//! testable bug was caught (and every control passed), 1 naming the bugs that escaped, 2 when it
//! could not run at all. Only a build with the `planted-bugs` feature has the bugs; any other
//! says how to get one.
//!
//! # Layout
//! - [`record`]: what it found, as plain data (`selftest.json`), and the figures.
//! - [`matrix`]: `index.html` and `results.xml`.
//! - `runner` (planted build only): the plan and the runs.

pub mod matrix;
pub mod record;
#[cfg(feature = "planted-bugs")]
mod runner;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use record::{Selftest, format_ms};

/// Arguments of `kchaos selftest`.
#[derive(Debug, clap::Args)]
pub struct SelftestArgs {
    /// Each bug against its first workload, seeds in turn until one catches it (the default).
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// Each bug against every workload it names with every seed, plus a control run of each
    /// workload with no bug.
    #[arg(long)]
    pub full: bool,
    /// Only these planted bugs (repeat the flag; default: the whole catalogue).
    #[arg(long = "bug", value_name = "NAME")]
    pub bugs: Vec<String>,
    /// How many seeds (1..=N): quick tries them in turn, full runs them all [default: quick 4,
    /// full 3].
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Control runs (every workload used, no bug, seed 1) in quick mode too.
    #[arg(long)]
    pub controls: bool,
    /// Where to write: <store>/selftest/<timestamp>/.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Where workload names are looked up.
    #[arg(long, env = "KCHAOS_WORKLOADS")]
    pub workloads: Option<PathBuf>,
}

/// The mode's name, its seeds and whether control runs are made.
fn mode(args: &SelftestArgs) -> (&'static str, Vec<u64>, bool) {
    let (name, default_seeds, controls) = if args.full {
        ("full", 3, true)
    } else {
        ("quick", 4, args.controls)
    };
    let seeds = (1..=args.seeds.unwrap_or(default_seeds).max(1)).collect();
    (name, seeds, controls)
}

/// `kchaos selftest`.
pub fn run(args: SelftestArgs) -> anyhow::Result<ExitCode> {
    let (mode, seeds, controls) = mode(&args);
    let dir = args
        .store
        .join("selftest")
        .join(harness::run::store::timestamp(std::time::SystemTime::now()));
    let workloads = super::workload::workloads_dir(args.workloads.as_deref());
    let selftest = execute(&args, mode, seeds, controls, &dir, &workloads)?;
    write(&selftest, &dir, &args.store)?;
    print_summary(&selftest, &dir);
    Ok(if selftest.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(feature = "planted-bugs")]
fn execute(
    args: &SelftestArgs,
    mode: &str,
    seeds: Vec<u64>,
    controls: bool,
    dir: &Path,
    workloads: &Path,
) -> anyhow::Result<Selftest> {
    runner::execute(&args.bugs, mode, seeds, controls, dir, workloads)
}

#[cfg(not(feature = "planted-bugs"))]
fn execute(
    _args: &SelftestArgs,
    _mode: &str,
    _seeds: Vec<u64>,
    _controls: bool,
    _dir: &Path,
    _workloads: &Path,
) -> anyhow::Result<Selftest> {
    anyhow::bail!(
        "kchaos selftest needs the planted bugs, and this kchaos was built without them (a \
         default build contains none): build it with the `planted-bugs` feature, e.g. `cargo \
         run --release --features planted-bugs -- selftest` (`cargo build --features \
         planted-bugs` puts it in target/debug/kchaos)"
    )
}

/// `selftest.json`, `index.html`, `results.xml`, and the `latest` link beside the selftests.
fn write(selftest: &Selftest, dir: &Path, store: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(selftest).context("encoding selftest.json")?;
    for (file, text) in [
        ("selftest.json", json + "\n"),
        ("index.html", matrix::render(selftest)),
        ("results.xml", matrix::junit(selftest)),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let latest = store.join("selftest").join("latest");
    if let Some(name) = dir.file_name() {
        let _ = std::fs::remove_file(&latest);
        if let Err(error) = std::os::unix::fs::symlink(name, &latest) {
            eprintln!("warning: cannot link {}: {error}", latest.display());
        }
    }
    Ok(())
}

fn print_summary(selftest: &Selftest, dir: &Path) {
    let figures = &selftest.figures;
    println!(
        "selftest ({}): caught {}/{} planted bugs; time to detection median {}, worst {}; {} \
         awaiting a fault family; controls passed {}/{}",
        selftest.mode,
        figures.caught,
        figures.testable,
        figures
            .median_time_to_detection_ms
            .map_or("—".into(), format_ms),
        figures
            .worst_time_to_detection_ms
            .map_or("—".into(), format_ms),
        figures.awaiting,
        figures.controls_passed,
        figures.controls
    );
    for name in selftest.missed() {
        println!("MISSED: planted bug {name} was not caught by any of its runs");
    }
    for run in selftest.failed_controls() {
        println!(
            "CONTROL FAILED: {} seed {} with no planted bug: {} ({})",
            run.workload,
            run.seed,
            run.verdict.name(),
            run.reasons.join("; ")
        );
    }
    if selftest.interrupted {
        println!("interrupted: the selftest was cut short");
    }
    println!("matrix: {}", dir.join("index.html").display());
}
