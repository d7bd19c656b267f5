//! Produce throughput against our brokers with their data on a plain directory and on faultfs,
//! measured in one run, as a ratio (acks=1 and acks=all).
//!
//! Each measurement is `kchaos bench produce --work-dir DIR --no-baseline` (a coordinator and
//! `--replication-factor` brokers of their own, one by default, then an rdkafka producer and
//! consumer); for faultfs, DIR is one fault filesystem mount (the coordinator's and every
//! broker's data on it). Rounds alternate plain and faultfs so that a load change on the
//! machine hits both; the ratio is of the medians.
//!
//! ```sh
//! cargo build --release && cargo run --release -p faultfs --example produce_bench -- \
//!     [--records 2000000] [--rounds 3] [--replication-factor 3] [--dispatch-threads 2] \
//!     [--kchaos target/release/kchaos]
//! ```
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use faultfs::{FaultFs, MountOptions};

struct Args {
    records: u64,
    rounds: usize,
    replication_factor: u32,
    dispatch_threads: usize,
    extra: Vec<String>,
    kchaos: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let exe = std::env::current_exe().map_err(|error| error.to_string())?;
    // target/<profile>/examples/produce_bench -> target/<profile>/kchaos
    let default_kchaos = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("kchaos"))
        .unwrap_or_else(|| PathBuf::from("kchaos"));
    let mut args = Args {
        // 300 000 records took 0.3 s a measurement here: too short to see past the noise.
        records: 2_000_000,
        rounds: 3,
        replication_factor: 1,
        dispatch_threads: 1,
        extra: Vec::new(),
        kchaos: default_kchaos,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let mut value = || raw.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--records" => {
                args.records = value()?.parse().map_err(|e| format!("--records: {e}"))?
            }
            "--rounds" => args.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--replication-factor" => {
                args.replication_factor = value()?
                    .parse()
                    .map_err(|e| format!("--replication-factor: {e}"))?
            }
            "--dispatch-threads" => {
                args.dispatch_threads = value()?
                    .parse()
                    .map_err(|e| format!("--dispatch-threads: {e}"))?
            }
            "--kchaos" => args.kchaos = PathBuf::from(value()?),
            "--extra" => args.extra.push(value()?),
            other => {
                return Err(format!(
                    "unknown argument {other}; use --records N --rounds N --replication-factor N \
                     --dispatch-threads N --kchaos PATH --extra ARG (passed to kchaos bench \
                     produce)"
                ));
            }
        }
    }
    if !args.kchaos.is_file() {
        return Err(format!(
            "{} does not exist: build it first (cargo build --release), or pass --kchaos PATH",
            args.kchaos.display()
        ));
    }
    Ok(args)
}

/// Runs `kchaos bench produce` with its data in `work_dir`; returns produce records/s.
fn produce_rate(args: &Args, acks: &str, work_dir: &Path) -> Result<f64, String> {
    let output = Command::new(&args.kchaos)
        .args(["bench", "produce", "--no-baseline", "--acks", acks])
        .arg("--records")
        .arg(args.records.to_string())
        .arg("--replication-factor")
        .arg(args.replication_factor.to_string())
        .arg("--work-dir")
        .arg(work_dir)
        .args(&args.extra)
        .output()
        .map_err(|error| format!("running {}: {error}", args.kchaos.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "kchaos bench produce failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // "produce: N records in S s: R records/s, M MB/s"
    stdout
        .lines()
        .find(|line| line.starts_with("produce: "))
        .and_then(|line| line.split(": ").nth(2))
        .and_then(|rate| rate.split(' ').next())
        .and_then(|rate| rate.parse().ok())
        .ok_or_else(|| format!("no produce rate in: {stdout}"))
}

fn measure(args: &Args, acks: &str, on_faultfs: bool, round: usize) -> Result<f64, String> {
    let scratch = tempfile::tempdir().map_err(|error| error.to_string())?;
    let work_dir = scratch.path().join("work");
    std::fs::create_dir(&work_dir).map_err(|error| error.to_string())?;
    if !on_faultfs {
        return produce_rate(args, acks, &work_dir);
    }
    let backing = scratch.path().join("backing");
    std::fs::create_dir(&backing).map_err(|error| error.to_string())?;
    let options = MountOptions {
        dispatch_threads: args.dispatch_threads,
        ..MountOptions::default()
    };
    let tag = format!("bench-{}-{acks}-{round}", std::process::id());
    let disk = FaultFs::mount_with(&backing, &work_dir, &tag, &options)
        .map_err(|error| error.to_string())?;
    let rate = produce_rate(args, acks, &work_dir);
    disk.unmount().map_err(|error| error.to_string())?;
    rate
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("produce_bench: {error}");
            return ExitCode::from(2);
        }
    };
    println!(
        "produce throughput, replication factor {} (as many brokers), {} records of 100 bytes, \
         {} round(s), faultfs with {} dispatch thread(s)",
        args.replication_factor, args.records, args.rounds, args.dispatch_threads
    );
    for acks in ["1", "all"] {
        let (mut plain, mut faulty) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            for on_faultfs in [false, true] {
                match measure(&args, acks, on_faultfs, round) {
                    Ok(rate) => {
                        let place = if on_faultfs { "faultfs" } else { "plain  " };
                        println!("  acks={acks:<3} {place} round {round}: {rate:>9.0} records/s");
                        if on_faultfs { &mut faulty } else { &mut plain }.push(rate);
                    }
                    Err(error) => {
                        eprintln!("produce_bench: {error}");
                        return ExitCode::from(2);
                    }
                }
            }
        }
        // The median resists the odd round that another process on the machine slowed down;
        // of an even count it is the mean of the middle two.
        let median = |rates: &mut Vec<f64>| {
            rates.sort_by(f64::total_cmp);
            let middle = rates.len() / 2;
            match rates.len() {
                0 => 0.0,
                count if count % 2 == 0 => (rates[middle - 1] + rates[middle]) / 2.0,
                _ => rates[middle],
            }
        };
        let (plain, faulty) = (median(&mut plain), median(&mut faulty));
        println!(
            "acks={acks}: median plain {plain:.0} records/s, faultfs {faulty:.0} records/s, ratio faultfs/plain {:.2}",
            faulty / plain.max(1e-9)
        );
    }
    ExitCode::SUCCESS
}
