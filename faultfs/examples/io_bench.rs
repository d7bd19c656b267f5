//! The raw cost of the fault filesystem: appends, and appends each followed by `fdatasync`, on
//! a plain directory and on faultfs (1 and 2 dispatch threads), by `--writers` threads at once
//! (one file each). Prints MB/s or fsyncs/s and the ratio faultfs/plain, measured in one run.
//!
//! ```sh
//! cargo run --release -p faultfs --example io_bench -- [--writers 2] [--megabytes 256] [--fsyncs 2000]
//! ```
#![allow(clippy::print_stdout)]

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use faultfs::{FaultFs, MountOptions};

const WRITE_BYTES: usize = 4096;

struct Args {
    writers: usize,
    megabytes: usize,
    fsyncs: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        writers: 2,
        megabytes: 256,
        fsyncs: 2000,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let value: usize = raw
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .parse()
            .map_err(|error| format!("{flag}: {error}"))?;
        match flag.as_str() {
            "--writers" => args.writers = value.max(1),
            "--megabytes" => args.megabytes = value,
            "--fsyncs" => args.fsyncs = value,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// Runs `work(file)` in one thread per writer, each on its own file in `dir`; returns seconds.
fn timed(dir: &Path, writers: usize, work: impl Fn(&mut File) + Sync) -> Result<f64, String> {
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|writer| {
                let path = dir.join(format!("writer-{writer}"));
                let work = &work;
                scope.spawn(move || -> Result<(), String> {
                    let mut file = File::create(&path).map_err(|e| e.to_string())?;
                    work(&mut file);
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| "a writer panicked".to_string())??;
        }
        Ok::<(), String>(())
    })?;
    Ok(started.elapsed().as_secs_f64())
}

/// (appends MB/s, fdatasyncs/s) in `dir`.
fn measure(args: &Args, dir: &Path) -> Result<(f64, f64), String> {
    let block = vec![7u8; WRITE_BYTES];
    let writes = args.megabytes * 1024 * 1024 / WRITE_BYTES / args.writers;
    let seconds = timed(dir, args.writers, |file| {
        for _ in 0..writes {
            file.write_all(&block).expect("append");
        }
    })?;
    let megabytes = (writes * args.writers * WRITE_BYTES) as f64 / 1e6;
    let fsyncs = args.fsyncs / args.writers;
    let sync_seconds = timed(dir, args.writers, |file| {
        for _ in 0..fsyncs {
            file.write_all(&block).expect("append");
            file.sync_data().expect("fdatasync");
        }
    })?;
    Ok((
        megabytes / seconds,
        (fsyncs * args.writers) as f64 / sync_seconds,
    ))
}

fn run(args: &Args) -> Result<(), String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let plain: PathBuf = scratch.path().join("plain");
    std::fs::create_dir(&plain).map_err(|e| e.to_string())?;
    let (plain_append, plain_sync) = measure(args, &plain)?;
    println!(
        "plain dir:            {plain_append:>8.0} MB/s appends, {plain_sync:>7.0} fdatasync/s ({} writer(s), 4 KiB writes)",
        args.writers
    );
    for threads in [1, 2] {
        let backing = scratch.path().join(format!("backing-{threads}"));
        let mount_point = scratch.path().join(format!("mnt-{threads}"));
        for dir in [&backing, &mount_point] {
            std::fs::create_dir(dir).map_err(|e| e.to_string())?;
        }
        let options = MountOptions {
            dispatch_threads: threads,
            ..MountOptions::default()
        };
        let tag = format!("io-bench-{}-{threads}", std::process::id());
        let disk = FaultFs::mount_with(&backing, &mount_point, &tag, &options)
            .map_err(|e| e.to_string())?;
        let measured = measure(args, &mount_point);
        disk.unmount().map_err(|e| e.to_string())?;
        let (append, sync) = measured?;
        println!(
            "faultfs, {threads} thread(s): {append:>8.0} MB/s appends, {sync:>7.0} fdatasync/s; ratio to plain {:.2} and {:.2}",
            append / plain_append.max(1e-9),
            sync / plain_sync.max(1e-9)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(|args| run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("io_bench: {error}");
            ExitCode::from(2)
        }
    }
}
