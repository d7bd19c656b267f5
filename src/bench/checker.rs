//! `kchaos bench checker`: generate a realistic history (producers with several sends in
//! flight, consumers polling, nemesis faults, a final read of every partition), then check it
//! in a child process and report operations per second and the child's peak RSS (VmHWM), beside
//! the time it takes just to read the same file line by line (what `wc -l` does). The check is
//! measured with two threads (the default) and one; wall time and CPU time are both printed,
//! and the CPU time of each stage (read+parse, analysis) gives what two free cores would do,
//! since on a shared machine wall time mostly measures the neighbours.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, bail};
use checker::{Expectations, Reading, check_history_file_with, parse_history_file};
use history::{HistoryWriter, OpType, Process};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Arguments of `kchaos bench checker`.
#[derive(Debug, clap::Args)]
pub struct CheckerBenchArgs {
    /// Lines (operations) in the generated history.
    #[arg(long, default_value_t = 10_000_000)]
    pub operations: u64,
    /// Producer processes, each with up to 8 sends in flight.
    #[arg(long, default_value_t = 8)]
    pub producers: u64,
    /// Consumer processes.
    #[arg(long, default_value_t = 3)]
    pub consumers: u64,
    /// Partitions of the topic (one final-read line each).
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Seed of the generator (the same seed gives the same history).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the generated history here and keep it (default: a temporary directory).
    #[arg(long)]
    pub keep_history: Option<PathBuf>,
    /// Check this existing history instead (prints one machine-readable line; used for the
    /// child process, whose peak RSS is then the checker's alone).
    #[arg(long, hide = true)]
    pub check_only: Option<PathBuf>,
    /// With `--check-only`: read and analyze on one thread.
    #[arg(long, hide = true)]
    pub one_thread: bool,
    /// With `--check-only`: only read and parse (the first stage), do not check.
    #[arg(long, hide = true)]
    pub parse_only: bool,
}

/// Runs the benchmark (or, with `--check-only`, the measured child).
pub fn run(args: CheckerBenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.check_only {
        let reading = if args.one_thread {
            Reading::OneThread
        } else {
            Reading::TwoThreads
        };
        if args.parse_only {
            return parse_only(path);
        }
        return check_only(path, reading);
    }
    if args.operations < 100 || args.producers == 0 || args.consumers == 0 || args.partitions <= 0 {
        bail!("need --operations >= 100 and at least one producer, consumer and partition");
    }
    let dir = TempDir::create()?;
    let path = match &args.keep_history {
        Some(path) => path.clone(),
        None => dir.path.join("history.jsonl"),
    };

    let started = Instant::now();
    let generated = generate(&path, &args).context("generating the history")?;
    let generate_s = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "generated {} operations ({} sends, {} polls, {} faults; {:.1} MiB) in {generate_s:.1} s",
        generated.lines,
        generated.sends,
        generated.polls,
        generated.faults,
        bytes as f64 / (1 << 20) as f64
    );

    let started = Instant::now();
    let lines = count_lines(&path)?;
    let read_s = started.elapsed().as_secs_f64();
    println!(
        "read line by line:  {read_s:>7.3} s  {:>6.2} M lines/s  ({lines} lines)",
        lines as f64 / read_s / 1e6
    );

    let mut two_threads_cpu_s = 0.0;
    for (label, extra_argument) in [("two threads", None), ("one thread", Some("--one-thread"))] {
        let child = measure_check(&path, extra_argument)?;
        println!(
            "check ({label}): {:>7.3} s  {:>6.2} M ops/s    {:.2} CPU-s ({:.2} M ops per CPU-second), \
             peak RSS {:.1} MiB, valid {}, {:.1}x the plain read",
            child.seconds,
            child.operations as f64 / child.seconds / 1e6,
            child.cpu_seconds,
            child.operations as f64 / child.cpu_seconds.max(0.01) / 1e6,
            child.peak_rss_kib as f64 / 1024.0,
            child.valid,
            child.seconds / read_s
        );
        if extra_argument.is_none() {
            two_threads_cpu_s = child.cpu_seconds;
        }
    }
    // On a busy machine wall time says little; the CPU time of each stage says what two free
    // cores would do: the slower stage sets the pace. The reader thread's stage is measured
    // alone; the analysis thread had the rest of the two-thread run's CPU time.
    let parse = measure_check(&path, Some("--parse-only"))?;
    let analysis_cpu_s = (two_threads_cpu_s - parse.cpu_seconds).max(0.0);
    let slower_stage_s = parse.cpu_seconds.max(analysis_cpu_s).max(0.01);
    println!(
        "stages (CPU-s):     reader {:.2}, analysis {:.2} => with two free cores about \
         {:.2} M ops/s",
        parse.cpu_seconds,
        analysis_cpu_s,
        parse.operations as f64 / slower_stage_s / 1e6
    );
    Ok(ExitCode::SUCCESS)
}

/// The measured child for the first stage alone: read and parse, no check.
fn parse_only(path: &Path) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let lines = parse_history_file(path).context("reading the history")?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "seconds={seconds} cpu_seconds={} vmhwm_kib=0 valid=null operations={lines}",
        cpu_seconds()?
    );
    Ok(ExitCode::SUCCESS)
}

/// What the measured child reported.
struct ChildReport {
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_kib: u64,
    valid: String,
    operations: u64,
}

/// Checks `path` in a child process (so that its peak RSS is the checker's alone).
fn measure_check(path: &Path, extra_argument: Option<&str>) -> anyhow::Result<ChildReport> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["bench", "checker", "--check-only"]).arg(path);
    command.args(extra_argument);
    let output = command
        .output()
        .context("running the checker child process")?;
    if !output.status.success() {
        bail!(
            "the checker child failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| -> anyhow::Result<String> {
        report
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
            .with_context(|| format!("the checker child did not report {name}: {report}"))
    };
    Ok(ChildReport {
        seconds: field("seconds")?.parse()?,
        cpu_seconds: field("cpu_seconds")?.parse()?,
        peak_rss_kib: field("vmhwm_kib")?.parse()?,
        valid: field("valid")?,
        operations: field("operations")?.parse()?,
    })
}

/// A scratch directory removed on drop (the generated history is large).
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create() -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("kchaos-bench-checker-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The measured child: check, then print `seconds=... vmhwm_kib=... valid=... operations=...`.
fn check_only(path: &Path, reading: Reading) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let results = check_history_file_with(path, &Expectations::default(), reading);
    let seconds = started.elapsed().as_secs_f64();
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let vmhwm_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .context("no VmHWM in /proc/self/status")?;
    let cpu_seconds = cpu_seconds()?;
    let valid = serde_json::to_string(&results.valid)?;
    println!(
        "seconds={seconds} cpu_seconds={cpu_seconds} vmhwm_kib={vmhwm_kib} valid={valid} operations={}",
        results.totals.operations
    );
    if let Some(malformed) = &results.malformed {
        eprintln!("malformed: line {}: {}", malformed.line, malformed.reason);
    }
    Ok(ExitCode::SUCCESS)
}

/// User plus system CPU time of this process so far, from /proc/self/stat (in USER_HZ ticks,
/// 100 per second on Linux): the machine may be shared, so wall time alone misleads.
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no process name in /proc/self/stat")?;
    // After the name: state is field 3, utime field 14, stime field 15.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |position: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(position)
            .context("/proc/self/stat is too short")?
            .parse::<u64>()? as f64)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// Counts lines the way `wc -l` would, reusing one buffer.
fn count_lines(path: &Path) -> anyhow::Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut line = Vec::with_capacity(4096);
    let mut lines = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(lines);
        }
        lines += 1;
    }
}

/// What the generator wrote.
struct Generated {
    lines: u64,
    sends: u64,
    polls: u64,
    faults: u64,
}

/// A send in flight.
struct InFlight {
    sequence: u64,
    partition: i32,
}

/// Writes the generated lines through the history's one writer, at a made-up clock.
struct LineWriter {
    out: HistoryWriter,
    /// Lines written so far (the next index).
    index: u64,
    time_ns: u64,
}

impl LineWriter {
    fn line<V: Serialize>(
        &mut self,
        rng: &mut StdRng,
        process: Process,
        op_type: OpType,
        f: &str,
        value: &V,
    ) -> anyhow::Result<()> {
        self.time_ns += rng.random_range(1_000..40_000);
        self.index = self
            .out
            .record_at(self.time_ns, process, op_type, f, value)?
            + 1;
        Ok(())
    }
}

/// A produced value, `<producer>-<sequence>`, written as that string.
#[derive(Clone, Copy)]
struct ValueKey(u64, u64);

impl Serialize for ValueKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}-{}", self.0, self.1))
    }
}

/// A record key, `k<sequence>`.
#[derive(Clone, Copy)]
struct RecordKey(u64);

impl Serialize for RecordKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("k{}", self.0))
    }
}

/// The values of the generated operations, field for field as the harness writes them.
#[derive(Serialize)]
struct FaultValue {
    node: String,
    why: &'static str,
}

#[derive(Serialize)]
struct Nothing {}

#[derive(Serialize)]
struct Records {
    records: Vec<(usize, usize, ValueKey)>,
}

#[derive(Serialize)]
struct SendInvoke {
    key: RecordKey,
    value: ValueKey,
}

#[derive(Serialize)]
struct SendOk {
    key: RecordKey,
    value: ValueKey,
    partition: i32,
    offset: usize,
}

#[derive(Serialize)]
struct SendError {
    key: RecordKey,
    value: ValueKey,
    error: &'static str,
}

#[derive(Serialize)]
struct FinalReadInvoke {
    partition: usize,
}

#[derive(Serialize)]
struct FinalReadOk {
    partition: usize,
    log_start_offset: u64,
    high_watermark: usize,
    records: Vec<(usize, usize, ValueKey)>,
    complete: bool,
}

/// Generates a history of about `args.operations` lines. Sends: 96% ok, 1% fail, 3% info (half
/// of which were appended). Consumers poll their partitions in order; a kill and a restart
/// every tenth of the run; at the end a final read of every partition.
fn generate(path: &Path, args: &CheckerBenchArgs) -> anyhow::Result<Generated> {
    const IN_FLIGHT_MAX: usize = 8;
    const POLL_RECORDS_MAX: usize = 10;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut out = LineWriter {
        out: HistoryWriter::create(path)?,
        index: 0,
        time_ns: 0,
    };
    let partitions = usize::try_from(args.partitions)?;
    // The log of each partition: (producer, sequence) per offset.
    let mut logs: Vec<Vec<(u32, u32)>> = vec![Vec::new(); partitions];
    let mut in_flight: Vec<Vec<InFlight>> = (0..args.producers).map(|_| Vec::new()).collect();
    let mut next_sequence = vec![0u64; usize::try_from(args.producers)?];
    let mut consumer_positions = vec![vec![0usize; partitions]; usize::try_from(args.consumers)?];
    let (mut sends, mut polls, mut faults) = (0, 0, 0);
    let final_read_lines = 2 * args.partitions as u64;
    let fault_every = (args.operations / 10).max(1);
    let body_lines = args.operations.saturating_sub(final_read_lines);
    while out.index < body_lines {
        if out.index % fault_every == fault_every / 2 && out.index + 4 < body_lines {
            let node = rng.random_range(1..=3);
            for (f, op_type) in [
                ("kill", OpType::Invoke),
                ("kill", OpType::Info),
                ("restart", OpType::Invoke),
                ("restart", OpType::Info),
            ] {
                let value = FaultValue {
                    node: format!("broker-{node}"),
                    why: "bench",
                };
                out.line(&mut rng, Process::Nemesis, op_type, f, &value)?;
            }
            faults += 2;
            continue;
        }
        if rng.random_bool(0.1) {
            let consumer = rng.random_range(0..args.consumers as usize);
            let process = 1000 + consumer;
            let partition = rng.random_range(0..partitions);
            let from = consumer_positions[consumer][partition];
            let to = (from + POLL_RECORDS_MAX).min(logs[partition].len());
            consumer_positions[consumer][partition] = to;
            let records = logs[partition][from..to]
                .iter()
                .enumerate()
                .map(|(offset, (producer, sequence))| {
                    let value = ValueKey(u64::from(*producer), u64::from(*sequence));
                    (partition, from + offset, value)
                })
                .collect();
            let process = Process::Client(process as u64);
            out.line(&mut rng, process, OpType::Invoke, "poll", &Nothing {})?;
            out.line(&mut rng, process, OpType::Ok, "poll", &Records { records })?;
            polls += 1;
            continue;
        }
        let producer = rng.random_range(0..args.producers as usize);
        let flying = &mut in_flight[producer];
        if flying.len() < IN_FLIGHT_MAX && (flying.is_empty() || rng.random_bool(0.5)) {
            let sequence = next_sequence[producer];
            next_sequence[producer] += 1;
            let partition = rng.random_range(0..args.partitions);
            flying.push(InFlight {
                sequence,
                partition,
            });
            let value = SendInvoke {
                key: RecordKey(sequence),
                value: ValueKey(producer as u64, sequence),
            };
            out.line(
                &mut rng,
                Process::Client(producer as u64),
                OpType::Invoke,
                "send",
                &value,
            )?;
            sends += 1;
            continue;
        }
        let send = flying.remove(0);
        let sequence = send.sequence;
        let partition = send.partition;
        let log = &mut logs[usize::try_from(partition)?];
        let roll: f64 = rng.random();
        let value = (u32::try_from(producer)?, u32::try_from(sequence)?);
        let process = Process::Client(producer as u64);
        let key = RecordKey(sequence);
        let sent = ValueKey(producer as u64, sequence);
        let failed = |error| SendError {
            key,
            value: sent,
            error,
        };
        if roll < 0.96 {
            let offset = log.len();
            log.push(value);
            let value = SendOk {
                key,
                value: sent,
                partition,
                offset,
            };
            out.line(&mut rng, process, OpType::Ok, "send", &value)?;
        } else if roll < 0.97 {
            let value = failed("NOT_ENOUGH_REPLICAS");
            out.line(&mut rng, process, OpType::Fail, "send", &value)?;
        } else {
            if roll < 0.985 {
                log.push(value);
            }
            let value = failed("REQUEST_TIMED_OUT");
            out.line(&mut rng, process, OpType::Info, "send", &value)?;
        }
    }
    let final_reader = Process::Client(2000);
    for (partition, log) in logs.iter().enumerate() {
        let value = FinalReadInvoke { partition };
        out.line(&mut rng, final_reader, OpType::Invoke, "final-read", &value)?;
        let records = log
            .iter()
            .enumerate()
            .map(|(offset, (producer, sequence))| {
                (
                    partition,
                    offset,
                    ValueKey(u64::from(*producer), u64::from(*sequence)),
                )
            })
            .collect();
        let value = FinalReadOk {
            partition,
            log_start_offset: 0,
            high_watermark: log.len(),
            records,
            complete: true,
        };
        out.line(&mut rng, final_reader, OpType::Ok, "final-read", &value)?;
    }
    out.out.close()?;
    Ok(Generated {
        lines: out.index,
        sends,
        polls,
        faults,
    })
}
