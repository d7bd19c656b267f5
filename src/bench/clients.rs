//! `kchaos bench clients`: what running every client as a worker process costs, against the
//! same rdkafka client inside the orchestrator (how clients ran before they became workers).
//!
//! Starts a coordinator and three brokers, then runs `--producers` acks=all producers (replication
//! factor 3, min.insync.replicas=2) through the harness's own producer driver and recorder —
//! exactly as a workload does, history file included — for `--seconds` per phase: paced at
//! `--rate` sends/s each, then as fast as `--max-in-flight` sends in flight allow. Each phase runs
//! once in process and once through `kchaos client` workers, `--rounds` times alternating which
//! goes first, each on a fresh topic. Figures come from the phase's history (sends invoked after
//! `--warm-up-ms`): acknowledged sends per second and the send latency from invoke to ok
//! (p50, p99, max). Prints every phase, then per rate the median ratios workers / in-process.
//!
//! `cargo run --release -- bench clients [--phases paced,max] [--rounds 3]`

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use harness::clients::launch::WorkerLauncher;
use harness::clients::producer::{ProducerSettings, run_producer};
use harness::clients::protocol::Role;
use harness::clients::session::Launcher;
use harness::recorder::Recorder;
use history::line::{OpName, ValueText};
use history::reader::{HistoryReader, Item};
use history::{HistoryWriter, OpType};
use tokio::sync::watch;

use super::cluster::{BenchCluster, ClusterOptions, create_topic};
use crate::client::in_process::InProcessLauncher;

/// Arguments of `kchaos bench clients`.
#[derive(Debug, clap::Args)]
pub struct ClientsBenchArgs {
    /// Seconds each phase sends.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Producers of each phase.
    #[arg(long, default_value_t = 3)]
    pub producers: u32,
    /// Sends per second per producer of the paced phase.
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    /// Sends in flight per producer (the workloads' default).
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: u32,
    /// Partitions of each phase's topic.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Alternating rounds of each comparison.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Sends invoked in the first milliseconds of a phase (connections, metadata) are left out.
    #[arg(long, default_value_t = 1000)]
    pub warm_up_ms: u64,
    /// Which comparisons to run: `paced` (at --rate), `max` (as fast as --max-in-flight allows).
    #[arg(long, value_delimiter = ',', default_value = "paced,max")]
    pub phases: Vec<Phase>,
}

/// The two comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    Paced,
    Max,
}

/// Where the clients run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    InProcess,
    Workers,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::InProcess => "in-process",
            Mode::Workers => "workers",
        }
    }
}

/// What one phase measured.
#[derive(Debug, Clone, Copy)]
struct Figures {
    sends_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    acknowledged: u64,
    unacknowledged: u64,
}

/// Runs the benchmark.
pub fn run(args: ClientsBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.seconds * 1000 > args.warm_up_ms,
        "--seconds must be longer than --warm-up-ms"
    );
    anyhow::ensure!(args.producers > 0, "--producers must be at least 1");
    let exe = std::env::current_exe().context("cannot find our own executable")?;
    let cluster = BenchCluster::start(&ClusterOptions {
        binary: exe.clone(),
        brokers: 3,
        work_dir: None,
        zookeeper_connect: None,
        broker_config: "min.insync.replicas=2\n".into(),
        label: "clients".into(),
    })?;
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    println!(
        "bench clients: {} producers, acks=all, replication factor 3, min.insync.replicas=2, {} \
         partitions, {} s per phase ({} ms warm-up left out), {} rounds; brokers {}",
        args.producers,
        args.partitions,
        args.seconds,
        args.warm_up_ms,
        args.rounds,
        cluster.bootstrap
    );
    let rates: Vec<(u32, String)> = args
        .phases
        .iter()
        .map(|phase| match phase {
            Phase::Paced => (args.rate, format!("{}x{}/s", args.producers, args.rate)),
            Phase::Max => (0, "max rate".to_string()),
        })
        .collect();
    let mut summary = Vec::new();
    for (rate, label) in &rates {
        let mut measured: HashMap<&'static str, Vec<Figures>> = HashMap::new();
        for round in 0..args.rounds.max(1) {
            let order = if round % 2 == 0 {
                [Mode::InProcess, Mode::Workers]
            } else {
                [Mode::Workers, Mode::InProcess]
            };
            for mode in order {
                let topic = format!(
                    "bench-clients-{}-{}-{round}-{}",
                    std::process::id(),
                    if *rate == 0 { "max" } else { "paced" },
                    mode.name()
                );
                create_topic(&cluster.bootstrap, &topic, args.partitions, 3)?;
                let phase_dir = scratch.path().join(&topic);
                std::fs::create_dir_all(&phase_dir)?;
                let figures = runtime.block_on(phase(
                    &args,
                    mode,
                    *rate,
                    &cluster.bootstrap,
                    &topic,
                    &phase_dir,
                    &exe,
                ))?;
                println!(
                    "round {round}: {label:>10} {:>10}: {:>8.0} sends/s, p50 {:.2} ms, p99 {:.2} \
                     ms, max {:.1} ms ({} acknowledged, {} not)",
                    mode.name(),
                    figures.sends_per_second,
                    figures.p50_ms,
                    figures.p99_ms,
                    figures.max_ms,
                    figures.acknowledged,
                    figures.unacknowledged
                );
                measured.entry(mode.name()).or_default().push(figures);
            }
        }
        let median = |mode: Mode, pick: fn(&Figures) -> f64| {
            let mut values: Vec<f64> = measured
                .get(mode.name())
                .map(|all| all.iter().map(pick).collect())
                .unwrap_or_default();
            median(&mut values)
        };
        let rate_in = median(Mode::InProcess, |f| f.sends_per_second);
        let rate_workers = median(Mode::Workers, |f| f.sends_per_second);
        let p99_in = median(Mode::InProcess, |f| f.p99_ms);
        let p99_workers = median(Mode::Workers, |f| f.p99_ms);
        let p50_in = median(Mode::InProcess, |f| f.p50_ms);
        let p50_workers = median(Mode::Workers, |f| f.p50_ms);
        summary.push(format!(
            "{label}: throughput workers / in-process {:.2} ({rate_workers:.0} / {rate_in:.0} \
             sends/s); p50 {p50_workers:.2} ms vs {p50_in:.2} ms ({:+.2} ms); p99 \
             {p99_workers:.2} ms vs {p99_in:.2} ms ({:+.2} ms)",
            rate_workers / rate_in.max(1e-9),
            p50_workers - p50_in,
            p99_workers - p99_in,
        ));
    }
    println!("medians of {} rounds:", args.rounds.max(1));
    for line in summary {
        println!("  {line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The middle value (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        count if count % 2 == 1 => values[count / 2],
        count => (values[count / 2 - 1] + values[count / 2]) / 2.0,
    }
}

/// One phase: `args.producers` producers at `rate` (0: as fast as the in-flight bound allows)
/// on `topic`, their history in `dir`.
async fn phase(
    args: &ClientsBenchArgs,
    mode: Mode,
    rate: u32,
    bootstrap: &str,
    topic: &str,
    dir: &Path,
    exe: &Path,
) -> anyhow::Result<Figures> {
    let history_path = dir.join("history.jsonl");
    let recorder = Recorder::new(HistoryWriter::create(&history_path)?);
    let first_fresh = u64::from(args.producers) + 1;
    let launcher: Arc<dyn Launcher> = match mode {
        Mode::InProcess => Arc::new(InProcessLauncher::new(first_fresh)),
        Mode::Workers => Arc::new(WorkerLauncher::new(
            vec![exe.display().to_string(), "client".into()],
            &dir.join("clients"),
            &dir.join("pids.log"),
            recorder.clone(),
            first_fresh,
        )?),
    };
    let settings = ProducerSettings {
        bootstrap_servers: bootstrap.to_string(),
        topic: topic.to_string(),
        acks: "all".into(),
        retries: None,
        idempotence: false,
        linger_ms: 0,
        batch_size: None,
        extra_config: Default::default(),
        message_timeout_ms: 10_000,
        request_timeout_ms: 3_000,
        rate,
        max_in_flight: args.max_in_flight,
        keys: 64,
    };
    let starts = (1..=u64::from(args.producers))
        .map(|process| launcher.start(process, Role::Producer, settings.config(process)));
    let sessions = futures::future::join_all(starts)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, String>>()
        .map_err(|error| anyhow::anyhow!("a producer did not start: {error}"))?;
    let (stop, stopped) = watch::channel(false);
    let start_ns = recorder.elapsed_ns();
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|session| {
            tokio::spawn(run_producer(
                session,
                settings.clone(),
                Arc::clone(&launcher),
                recorder.clone(),
                stopped.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let stop_ns = recorder.elapsed_ns();
    let _ = stop.send(true);
    for task in tasks {
        task.await.context("a producer task failed")?;
    }
    recorder.close()?;
    figures(
        &history_path,
        start_ns + args.warm_up_ms * 1_000_000,
        stop_ns,
    )
}

/// Throughput and latency of the sends invoked in `[from_ns, to_ns)`: acknowledged ones per
/// second, and their latency from invoke to ok.
fn figures(path: &Path, from_ns: u64, to_ns: u64) -> anyhow::Result<Figures> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut invoked: HashMap<ValueText<'static>, u64> = HashMap::new();
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .context("cannot create the latency histogram")?;
    let mut unacknowledged = 0;
    for item in HistoryReader::new(file) {
        let Item::Line(line, _) = item else {
            continue;
        };
        if line.f != OpName::Send {
            continue;
        }
        let Some(value) = line.value.value else {
            continue;
        };
        if line.op_type == OpType::Invoke {
            if (from_ns..to_ns).contains(&line.time_ns) {
                invoked.insert(value, line.time_ns);
            }
            continue;
        }
        let Some(invoke_ns) = invoked.remove(&value) else {
            continue;
        };
        if line.op_type == OpType::Ok {
            let micros = line.time_ns.saturating_sub(invoke_ns) / 1_000;
            histogram
                .record(micros.max(1))
                .context("a latency out of the histogram's range")?;
        } else {
            unacknowledged += 1;
        }
    }
    let seconds = to_ns.saturating_sub(from_ns) as f64 / 1e9;
    let ms = |micros: u64| micros as f64 / 1000.0;
    Ok(Figures {
        sends_per_second: histogram.len() as f64 / seconds.max(1e-9),
        p50_ms: ms(histogram.value_at_quantile(0.50)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        max_ms: ms(histogram.max()),
        acknowledged: histogram.len(),
        unacknowledged: unacknowledged + invoked.len() as u64,
    })
}
