//! `kchaos bench fuzz`: a structure-aware fuzzer that runs on the stable toolchain. Valid
//! requests for every API and version the broker answers and valid ZooKeeper frames for the
//! coordinator are mutated (and some inputs are random bytes), then handed to a real broker and
//! a real coordinator actor running in this process — the decoders and the handlers behind
//! them. It reports executions per second and crashes: a panic (caught, its input saved) or an
//! abort (its input saved by a signal handler before the process dies).
//!
//! Every input is a pure function of `--seed` and its index, so a run is reproducible, and a
//! saved input replays alone (`--replay FILE`). Inputs that ever crashed live on as regression
//! files in `tests/fuzz-regressions/`, replayed by `tests/broker_fuzz.rs`.
//!
//! # Layout
//! - [`kafka_seeds`], [`jute_seeds`]: the valid requests and frames mutated
//!   ([`kafka_group_seeds`]: those of the consumer-group APIs).
//! - [`mutate`]: the mutations and the per-input generator.
//! - [`kafka_target`]: the in-process coordinator and broker, and one dispatch.
//! - [`jute_target`]: the in-process coordinator actor fed jute frames.
//! - [`crash`]: panic capture, the abort handler, saved inputs.

pub mod crash;
pub mod jute_seeds;
pub mod jute_target;
pub mod kafka_group_seeds;
pub mod kafka_seeds;
pub mod kafka_target;
pub mod mutate;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::FutureExt;
use tokio::task::JoinHandle;

use crash::{Crash, CurrentInput};
use jute_target::JuteTarget;
use kafka_target::{Dispatched, KafkaTarget};
use mutate::{InputKind, Mutator};

/// Deferred answers (fetches waiting for data, acks=all produces...) running at once.
const DEFERRED_MAX: usize = 256;
/// A deferred answer not ready after this long is abandoned (a long-poll with a fuzzed wait).
const DEFERRED_TIMEOUT: Duration = Duration::from_secs(1);

/// Arguments of `kchaos bench fuzz`.
#[derive(Debug, clap::Args)]
pub struct FuzzBenchArgs {
    /// Inputs to run.
    #[arg(long, default_value_t = 10_000_000)]
    pub inputs: u64,
    /// The run's seed: the same seed gives the same inputs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where crashing inputs are saved.
    #[arg(long, default_value = "store/fuzz-crashes")]
    pub crash_dir: PathBuf,
    /// Where the target's scratch directory goes (default: /dev/shm if present, else the
    /// system's temporary directory).
    #[arg(long)]
    pub data_parent: Option<PathBuf>,
    /// Replays saved inputs instead (a name containing `jute-connect` is a handshake stream,
    /// `jute` a client's stream, anything else a Kafka request frame without its size prefix).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub replay: Vec<PathBuf>,
}

/// What a run does.
#[derive(Debug, Clone)]
pub struct FuzzOptions {
    pub inputs: u64,
    pub seed: u64,
    pub crash_dir: PathBuf,
    pub data_parent: PathBuf,
    /// Print a progress line every few seconds.
    pub progress: bool,
}

/// Counts of one kind of input.
#[derive(Debug, Default, Clone, Copy)]
pub struct KindCounts {
    pub executed: u64,
    /// Answered (a response, or none for acks=0; for jute: every frame answered).
    pub answered: u64,
    /// Refused: the connection would be closed (a request that does not decode).
    pub refused: u64,
    /// A deferred answer abandoned after [`DEFERRED_TIMEOUT`], or a jute reply not received.
    pub abandoned: u64,
}

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct FuzzReport {
    pub inputs: u64,
    pub elapsed: Duration,
    pub by_kind: BTreeMap<InputKind, KindCounts>,
    /// Kafka inputs answered, by API key code.
    pub answered_by_api: BTreeMap<i16, u64>,
    /// Error-level log events of the targets, by the first words of their message.
    pub errors_logged: BTreeMap<String, u64>,
    pub crashes: Vec<Crash>,
}

impl FuzzReport {
    pub fn executions_per_second(&self) -> f64 {
        self.inputs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `kchaos bench fuzz`: exit code 0 with no crash, 1 with crashes.
pub fn run(args: FuzzBenchArgs) -> anyhow::Result<ExitCode> {
    let data_parent = args.data_parent.unwrap_or_else(default_data_parent);
    let report = if args.replay.is_empty() {
        println!(
            "kchaos bench fuzz: seed {}, {} inputs, target data under {}, crashes to {}",
            args.seed,
            args.inputs,
            data_parent.display(),
            args.crash_dir.display()
        );
        run_fuzz(&FuzzOptions {
            inputs: args.inputs,
            seed: args.seed,
            crash_dir: args.crash_dir,
            data_parent,
            progress: true,
        })?
    } else {
        replay(&args.replay, &args.crash_dir, &data_parent)?
    };
    print_report(&report);
    Ok(if report.crashes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// /dev/shm when there is one (the target fsyncs), else the system's temporary directory.
pub fn default_data_parent() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Generates and runs `options.inputs` inputs.
pub fn run_fuzz(options: &FuzzOptions) -> anyhow::Result<FuzzReport> {
    let mutator = Mutator::new(kafka_seeds::all()?, jute_seeds::all());
    let inputs = (0..options.inputs).map(|index| {
        let mut input = Vec::new();
        let kind = mutator.generate(options.seed, index, &mut input);
        (index, kind, input)
    });
    execute_all(
        inputs,
        options.seed,
        &options.crash_dir,
        &options.data_parent,
        options.progress,
    )
}

/// Runs saved inputs (regression files), the kind told by each file's name.
pub fn replay(
    files: &[PathBuf],
    crash_dir: &Path,
    data_parent: &Path,
) -> anyhow::Result<FuzzReport> {
    let mut inputs = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        inputs.push((index as u64, kind_of_file(file), bytes));
    }
    execute_all(inputs.into_iter(), 0, crash_dir, data_parent, false)
}

/// The kind of a saved input, from its file name.
pub fn kind_of_file(file: &Path) -> InputKind {
    let name = file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.contains("jute-connect") {
        InputKind::JuteConnect
    } else if name.contains("jute") {
        InputKind::JuteRequest
    } else {
        InputKind::KafkaMutated
    }
}

/// A deferred answer still running, with its input (to save should it panic).
struct Deferred {
    index: u64,
    kind: InputKind,
    input: Vec<u8>,
    started: Instant,
    task: JoinHandle<Result<(), String>>,
}

fn execute_all(
    inputs: impl Iterator<Item = (u64, InputKind, Vec<u8>)>,
    seed: u64,
    crash_dir: &Path,
    data_parent: &Path,
    progress: bool,
) -> anyhow::Result<FuzzReport> {
    std::fs::create_dir_all(crash_dir)
        .with_context(|| format!("cannot create {}", crash_dir.display()))?;
    crash::install_abort_handler(crash_dir)?;
    std::fs::create_dir_all(data_parent)?;
    let scratch = tempfile::Builder::new()
        .prefix("kchaos-fuzz-")
        .tempdir_in(data_parent)
        .with_context(|| {
            format!(
                "cannot make a scratch directory in {}",
                data_parent.display()
            )
        })?;
    let quiet = quiet_subscriber();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // The handlers log every refusal; a fuzz run would drown in them.
            std::mem::forget(tracing::dispatcher::set_default(&quiet_subscriber()));
        })
        .build()
        .context("starting the tokio runtime")?;
    let _panics = crash::PanicCapture::install();
    let _quiet = tracing::dispatcher::set_default(&quiet);
    runtime.block_on(async {
        let mut run = Run {
            kafka: KafkaTarget::start(scratch.path()).await?,
            jute: JuteTarget::start(scratch.path()).await?,
            deferred: VecDeque::new(),
            report: FuzzReport::default(),
            seed,
            crash_dir: crash_dir.to_path_buf(),
            kafka_inputs: 0,
        };
        let started = Instant::now();
        let mut last_progress = started;
        for (index, kind, input) in inputs {
            run.execute(index, kind, input, scratch.path()).await?;
            if progress && last_progress.elapsed() >= Duration::from_secs(5) {
                last_progress = Instant::now();
                println!(
                    "  {:>10} inputs, {:>8.0} execs/s, {} crashes",
                    run.report.inputs,
                    run.report.inputs as f64 / started.elapsed().as_secs_f64(),
                    run.report.crashes.len()
                );
            }
        }
        run.settle_all().await?;
        run.report.elapsed = started.elapsed();
        run.report.errors_logged = error_log::take();
        let Run {
            kafka,
            mut jute,
            mut report,
            ..
        } = run;
        if let Err(died) = jute.stop().await {
            report.crashes.push(crash::save(
                crash_dir,
                seed,
                report.inputs,
                "jute-actor",
                &[],
                &died.0,
            )?);
        }
        kafka.shutdown().await;
        Ok(report)
    })
}

/// The state of a run.
struct Run {
    kafka: KafkaTarget,
    jute: JuteTarget,
    deferred: VecDeque<Deferred>,
    report: FuzzReport,
    seed: u64,
    crash_dir: PathBuf,
    kafka_inputs: u64,
}

impl Run {
    async fn execute(
        &mut self,
        index: u64,
        kind: InputKind,
        input: Vec<u8>,
        scratch: &Path,
    ) -> anyhow::Result<()> {
        self.report.inputs += 1;
        self.counts(kind).executed += 1;
        if kind.is_kafka() {
            self.execute_kafka(index, kind, input).await
        } else {
            self.execute_jute(index, kind, input, scratch).await
        }
    }

    async fn execute_kafka(
        &mut self,
        index: u64,
        kind: InputKind,
        input: Vec<u8>,
    ) -> anyhow::Result<()> {
        let dispatched = {
            let _current = CurrentInput::set(&input);
            self.kafka.dispatch(&input).await
        };
        match dispatched {
            Dispatched::Answered => self.answered(kind, &input),
            Dispatched::Refused(_) => self.counts(kind).refused += 1,
            Dispatched::Panicked(message) => self.crash(index, kind, &input, &message)?,
            Dispatched::Deferred(task) => {
                self.deferred.push_back(Deferred {
                    index,
                    kind,
                    input,
                    started: Instant::now(),
                    task,
                });
                self.settle_finished()?;
                while self.deferred.len() >= DEFERRED_MAX {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    self.settle_finished()?;
                }
            }
        }
        self.kafka_inputs += 1;
        if self
            .kafka_inputs
            .is_multiple_of(kafka_target::TOPIC_RESET_INPUTS)
            || self.kafka.partitions() > kafka_target::PARTITIONS_MAX
        {
            self.settle_all().await?;
            self.kafka.reset_topics().await?;
        }
        Ok(())
    }

    async fn execute_jute(
        &mut self,
        index: u64,
        kind: InputKind,
        input: Vec<u8>,
        scratch: &Path,
    ) -> anyhow::Result<()> {
        let outcome = {
            let _current = CurrentInput::set(&input);
            self.jute
                .execute(&input, kind == InputKind::JuteConnect)
                .await
        };
        match outcome {
            Ok(outcome) => {
                let counts = self.counts(kind);
                if outcome.refused {
                    counts.refused += 1;
                } else if outcome.unanswered > 0 {
                    counts.abandoned += 1;
                } else {
                    counts.answered += 1;
                }
            }
            Err(died) => {
                self.crash(index, kind, &input, &died.0)?;
                let generation = scratch.join(format!("jute-restart-{index}"));
                self.jute = JuteTarget::start(&generation).await?;
            }
        }
        Ok(())
    }

    fn answered(&mut self, kind: InputKind, input: &[u8]) {
        self.counts(kind).answered += 1;
        if let Some(api) = input.first_chunk::<2>() {
            *self
                .report
                .answered_by_api
                .entry(i16::from_be_bytes(*api))
                .or_default() += 1;
        }
    }

    /// Collects the deferred answers that finished and abandons those past their deadline.
    fn settle_finished(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        let mut still_running = VecDeque::with_capacity(self.deferred.len());
        while let Some(deferred) = self.deferred.pop_front() {
            if deferred.task.is_finished() {
                let outcome = deferred.task.now_or_never();
                self.settle(deferred.index, deferred.kind, &deferred.input, outcome)?;
            } else if now >= deferred.started + DEFERRED_TIMEOUT {
                deferred.task.abort();
                self.counts(deferred.kind).abandoned += 1;
            } else {
                still_running.push_back(deferred);
            }
        }
        self.deferred = still_running;
        Ok(())
    }

    fn settle(
        &mut self,
        index: u64,
        kind: InputKind,
        input: &[u8],
        outcome: Option<Result<Result<(), String>, tokio::task::JoinError>>,
    ) -> anyhow::Result<()> {
        match outcome {
            Some(Ok(Ok(()))) => self.answered(kind, input),
            Some(Ok(Err(message))) => self.crash(index, kind, input, &message)?,
            Some(Err(join_error)) => self.crash(index, kind, input, &join_error.to_string())?,
            None => self.counts(kind).abandoned += 1,
        }
        Ok(())
    }

    /// Waits for every deferred answer (or its deadline).
    async fn settle_all(&mut self) -> anyhow::Result<()> {
        self.settle_finished()?;
        while !self.deferred.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.settle_finished()?;
        }
        Ok(())
    }

    fn crash(
        &mut self,
        index: u64,
        kind: InputKind,
        input: &[u8],
        message: &str,
    ) -> anyhow::Result<()> {
        let recorded = crash::take_panic_messages();
        let message = if recorded.is_empty() {
            message.to_string()
        } else {
            format!("{message}\n{}", recorded.join("\n"))
        };
        println!("CRASH on input {index} ({}): {message}", kind.name());
        let saved = crash::save(
            &self.crash_dir,
            self.seed,
            index,
            kind.name(),
            input,
            &message,
        )?;
        self.report.crashes.push(saved);
        Ok(())
    }

    fn counts(&mut self, kind: InputKind) -> &mut KindCounts {
        self.report.by_kind.entry(kind).or_default()
    }
}

/// No log lines (a fuzzed broker logs one refusal after another); error events are counted
/// and their first distinct messages kept for the report.
fn quiet_subscriber() -> tracing::Dispatch {
    use tracing_subscriber::layer::SubscriberExt;
    tracing::Dispatch::new(tracing_subscriber::registry().with(error_log::ErrorCounter))
}

/// Counts error-level events.
mod error_log {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    static ERRORS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    /// Distinct messages kept (by their first words).
    const DISTINCT_MAX: usize = 32;

    pub struct ErrorCounter;

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorCounter {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _context: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if *event.metadata().level() != tracing::Level::ERROR {
                return;
            }
            let mut message = Message(String::new());
            event.record(&mut message);
            // Numbers differ from one event to the next: keep the words.
            let key: String = message
                .0
                .split_whitespace()
                .take(6)
                .collect::<Vec<_>>()
                .join(" ");
            if let Ok(mut errors) = ERRORS.lock() {
                let distinct = errors.len();
                match errors.get_mut(&key) {
                    Some(count) => *count += 1,
                    None if distinct < DISTINCT_MAX => {
                        errors.insert(key, 1);
                    }
                    None => *errors.entry("(others)".into()).or_default() += 1,
                }
            }
        }
    }

    struct Message(String);

    impl tracing::field::Visit for Message {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    /// The error events counted since the last call, by message.
    pub fn take() -> BTreeMap<String, u64> {
        ERRORS
            .lock()
            .map(|mut errors| std::mem::take(&mut *errors))
            .unwrap_or_default()
    }
}

fn print_report(report: &FuzzReport) {
    println!(
        "{:<14} {:>10} {:>10} {:>10} {:>10}",
        "input kind", "executed", "answered", "refused", "abandoned"
    );
    for (kind, counts) in &report.by_kind {
        println!(
            "{:<14} {:>10} {:>10} {:>10} {:>10}",
            kind.name(),
            counts.executed,
            counts.answered,
            counts.refused,
            counts.abandoned
        );
    }
    let apis: Vec<String> = report
        .answered_by_api
        .iter()
        .filter_map(|(code, count)| {
            kafka_protocol::messages::ApiKey::try_from(*code)
                .ok()
                .map(|api| format!("{api:?} {count}"))
        })
        .collect();
    println!("Kafka inputs answered by API: {}", apis.join(", "));
    for (message, count) in &report.errors_logged {
        println!("error logged {count} times: {message}");
    }
    for crash in &report.crashes {
        println!(
            "crash: input {} ({}) saved to {}: {}",
            crash.index,
            crash.kind,
            crash.saved_to.display(),
            crash.message.lines().next().unwrap_or_default()
        );
    }
    println!(
        "{} inputs in {:.1} s: {:.0} execs/s, {} crashes",
        report.inputs,
        report.elapsed.as_secs_f64(),
        report.executions_per_second(),
        report.crashes.len()
    );
}
