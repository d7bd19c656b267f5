//! One run of a workload, in phases: setup (run directory, history, cluster, topic), the fault
//! phase (producers, consumers and the nemesis for the workload's duration, or until Ctrl-C),
//! heal, final read, check, teardown. Whatever happens after the history is open, the history is
//! closed and the cluster stopped; a Ctrl-C ends the fault phase early and the run still heals,
//! reads, checks and writes its results.
//!
//! # Layout
//! - this file: [`run`] and its phases.
//! - [`error`]: [`RunError`], why a run could not be carried out.
//! - [`setup`]: bringing the cluster up, and keeping it whole after the heal.
//! - [`leadership`]: leader and ISR of each partition sampled during a run (`leadership.jsonl`).
//! - [`store`]: run directories and the `latest` link.
//! - [`progress`]: the live progress line.
//! - [`summary`]: the lines a person reads at the end.

pub mod error;
pub mod leadership;
pub mod progress;
pub mod setup;
pub mod store;
pub mod summary;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checker::{self, Expectations, Results};
use history::HistoryWriter;
use tokio::sync::watch;

pub use self::error::RunError;
use self::progress::Progress;
use self::setup::{LEADERS_AFTER_HEAL_TIMEOUT, keep_healed, start_cluster, wait_for_metadata};
use crate::clients::consumer::run_consumer;
use crate::clients::final_read::{PartitionRead, final_read};
use crate::clients::producer::{ProducerSettings, run_producer};
use crate::cluster::Cluster;
use crate::cluster::config::{ClusterConfig, CommandTemplates};
use crate::lock::lock;
use crate::nemesis::Nemesis;
use crate::nemesis::disk::{self, DiskFaultError, Disks};
use crate::nemesis::schedule;
use crate::recorder::{CountersSnapshot, Recorder};
use crate::workload::{ClusterSpec, LostExpectation, Strictness, WorkloadSpec};

/// Grace for SIGTERM at teardown.
const TEARDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often live metadata is sampled for the leadership timeline (`leadership.jsonl`).
const LEADERSHIP_SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The workload's name: the store directory's name.
    pub name: String,
    /// The spec, with command-line overrides applied and `seed` set.
    pub spec: WorkloadSpec,
    /// The store root (`store/`).
    pub store: PathBuf,
    pub templates: CommandTemplates,
    /// Show the live progress line (when stderr is a terminal).
    pub progress: bool,
}

/// What a run found.
#[derive(Debug)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub results: Results,
    pub counters: CountersSnapshot,
    pub final_read: Vec<PartitionRead>,
    /// Whether a Ctrl-C (or SIGTERM) ended the fault phase early.
    pub interrupted: bool,
}

impl RunOutcome {
    /// Why the run proves less than its verdict says, if it does. (A run in which no send was
    /// acknowledged fails: that is the pass rule's, [`checker::Outcome::decide`].)
    pub fn caveats(&self) -> Vec<String> {
        let mut caveats = Vec::new();
        if self.interrupted {
            caveats.push("interrupted: the fault phase was cut short".to_string());
        }
        caveats
    }

    /// Whether the run passes: the one pass rule, [`Results::outcome`].
    pub fn outcome(&self) -> checker::Outcome {
        self.results.outcome()
    }
}

/// The checker's expectations from the workload's `[expect]`, and from its clients: with
/// producers, at least one send must be acknowledged.
pub fn expectations(spec: &WorkloadSpec) -> Expectations {
    let expect = &spec.expect;
    let strictness = |value: Strictness| match value {
        Strictness::None | Strictness::Strict => checker::Strictness::Strict,
        Strictness::Allowed => checker::Strictness::Allowed,
    };
    Expectations {
        lost: match expect.lost {
            LostExpectation::None => checker::LostExpectation::None,
            LostExpectation::Some => checker::LostExpectation::Some,
        },
        duplicates: strictness(expect.duplicates),
        order: strictness(expect.order),
        unavailable_max_ms: expect
            .unavailable_max
            .map(|bound| u64::try_from(bound.as_millis()).unwrap_or(u64::MAX)),
        acknowledged_sends: if spec.clients.producers > 0 {
            checker::AcknowledgedSendsExpectation::Some
        } else {
            checker::AcknowledgedSendsExpectation::Any
        },
    }
}

/// Runs a workload from setup to teardown.
pub async fn run(options: RunOptions) -> Result<RunOutcome, RunError> {
    let spec = &options.spec;
    let seed = spec.seed.unwrap_or(0);
    let with_disks = spec.nemesis.has_disk_faults();
    if with_disks {
        disk::check_available().map_err(DiskFaultError::from)?;
    }
    // What a killed run left mounted goes first (live runs' mounts are left alone).
    match disk::remove_stale_disks() {
        Ok(removed) => {
            for mount in removed {
                tracing::info!(
                    "removed the fault filesystem {} a killed run left at {}",
                    mount.tag,
                    mount.mount_point.display()
                );
            }
        }
        Err(error) => tracing::warn!("looking for stale fault filesystems: {error}"),
    }
    let dir = store::create_run_dir(&options.store, &options.name)?;
    let workload_path = dir.join("workload.toml");
    std::fs::write(&workload_path, spec.to_toml()?).map_err(|source| RunError::Write {
        path: workload_path,
        source,
    })?;
    let history_path = dir.join("history.jsonl");
    let recorder = Recorder::new(HistoryWriter::create(&history_path)?);
    let interrupts = watch_interrupts();
    let progress = Progress::start(recorder.clone(), options.progress);
    progress.println(&format!("kchaos: {} -> {}", options.name, dir.display()));

    let cluster = Cluster::prepare(&ClusterConfig {
        dir: dir.clone(),
        brokers: spec.cluster.brokers,
        session_timeout_ms: spec.cluster.session_timeout_ms,
        broker_configs: broker_configs(&spec.cluster),
        templates: options.templates.clone(),
    })?;
    let addresses = cluster.broker_addresses();
    let bootstrap = cluster.bootstrap_servers();
    write_run_facts(&dir, &options, seed, &cluster)?;
    // Declared before the cluster's handle, so that on an early return the nodes die (the
    // cluster is dropped) before their disks are unmounted.
    let disks = if with_disks {
        Some(Arc::new(Disks::mount(&cluster)?))
    } else {
        None
    };
    let cluster = Arc::new(Mutex::new(cluster));
    let (stop_sampling, sampling_stopped) = watch::channel(false);
    let sampler = tokio::spawn(leadership::sample_leadership(
        addresses.clone(),
        spec.topic.name.clone(),
        dir.join("leadership.jsonl"),
        LEADERSHIP_SAMPLE_INTERVAL,
        recorder.clone(),
        sampling_stopped,
    ));

    let outcome = async {
        let mut setup_interrupts = interrupts.clone();
        tokio::select! {
            started = start_cluster(&cluster, spec, &addresses) => started?,
            _ = setup_interrupts.wait_for(|count| *count > 0) => {
                return Err(RunError::Setup("interrupted during setup".into()));
            }
        }
        progress.set_phase("faults");
        let interrupted = fault_phase(
            spec,
            seed,
            &cluster,
            disks.clone(),
            &recorder,
            &bootstrap,
            interrupts.clone(),
        )
        .await?;
        progress.set_phase("final read");
        let reads = read_everything(spec, &addresses, &bootstrap, &recorder).await?;
        Ok::<_, RunError>((interrupted, reads))
    }
    .await;

    let _ = stop_sampling.send(true);
    match sampler.await {
        Ok(Ok(_lines)) => {}
        Ok(Err(error)) => tracing::warn!("leadership sampling: {error}"),
        Err(error) => tracing::warn!("leadership sampling: {error}"),
    }
    progress.set_phase("teardown");
    let closed = recorder.close();
    let teardown = {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || lock(&cluster).stop_all(TEARDOWN_GRACE)).await
    };
    if let Some(disks) = disks
        && let Ok(disks) = Arc::try_unwrap(disks)
        && let Err(error) = disks.unmount()
    {
        tracing::warn!("unmounting the fault filesystems: {error}");
    }
    let (interrupted, final_read) = outcome?;
    closed?;
    if let Some(error) = recorder.first_error() {
        return Err(RunError::Setup(format!(
            "the history could not be written: {error}"
        )));
    }
    teardown
        .map_err(|error| RunError::Task(error.to_string()))?
        .map_err(RunError::from)?;

    progress.set_phase("check");
    let results = checker::check_history_file(&history_path, &expectations(spec));
    let results_path = dir.join("results.json");
    results
        .write_json(&results_path)
        .map_err(|source| RunError::Write {
            path: results_path,
            source,
        })?;
    progress.finish();
    Ok(RunOutcome {
        dir,
        results,
        counters: recorder.counters(),
        final_read,
        interrupted,
    })
}

/// `run.json`: what is needed to read or repeat the run besides the workload — the seed, the
/// command templates, the nodes' addresses and log files, when it started.
fn write_run_facts(
    dir: &std::path::Path,
    options: &RunOptions,
    seed: u64,
    cluster: &Cluster,
) -> Result<(), RunError> {
    let logs: serde_json::Map<String, serde_json::Value> = cluster
        .node_names()
        .into_iter()
        .filter_map(|name| {
            let path = cluster.log_path(&name).ok()?;
            let file = path.file_name()?.to_string_lossy().into_owned();
            Some((name, serde_json::Value::String(file)))
        })
        .collect();
    let facts = serde_json::json!({
        "workload": options.name,
        "seed": seed,
        "started": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        "coordinator_command": options.templates.coordinator,
        "broker_command": options.templates.broker,
        "coordinator": cluster.coordinator_address(),
        "bootstrap_servers": cluster.bootstrap_servers(),
        "logs": logs,
    });
    let path = dir.join("run.json");
    let text = serde_json::to_string_pretty(&facts).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(|source| RunError::Write { path, source })
}

/// Producers, consumers and the nemesis, for the workload's duration or until interrupted;
/// then the heal and the producers' drain. Returns whether it was interrupted.
async fn fault_phase(
    spec: &WorkloadSpec,
    seed: u64,
    cluster: &Arc<Mutex<Cluster>>,
    disks: Option<Arc<Disks>>,
    recorder: &Recorder,
    bootstrap: &str,
    mut interrupts: watch::Receiver<u32>,
) -> Result<bool, RunError> {
    let (stop_faults, faults_stopped) = watch::channel(false);
    let (stop_consumers, consumers_stopped) = watch::channel(false);
    let producers = spec.clients.producers as u64;
    let consumers = spec.clients.consumers as u64;

    let settings = ProducerSettings {
        bootstrap_servers: bootstrap.to_string(),
        topic: spec.topic.name.clone(),
        acks: spec.clients.acks.clone(),
        retries: spec.clients.retries,
        idempotence: spec.clients.idempotence,
        linger_ms: spec.clients.linger_ms,
        message_timeout_ms: spec.clients.message_timeout_ms,
        request_timeout_ms: spec.clients.request_timeout_ms,
        rate: spec.clients.rate,
        max_in_flight: spec.clients.max_in_flight,
        keys: spec.clients.keys,
    };
    let producer_tasks: Vec<_> = (1..=producers)
        .map(|process| {
            tokio::spawn(run_producer(
                process,
                settings.clone(),
                recorder.clone(),
                faults_stopped.clone(),
            ))
        })
        .collect();
    let consumer_threads: Vec<_> = (producers + 1..=producers + consumers)
        .map(|process| {
            let bootstrap = bootstrap.to_string();
            let topic = spec.topic.name.clone();
            let partitions = spec.topic.partitions;
            let recorder = recorder.clone();
            let stop = consumers_stopped.clone();
            std::thread::Builder::new()
                .name(format!("consumer-{process}"))
                .spawn(move || {
                    run_consumer(process, &bootstrap, &topic, partitions, &recorder, &stop)
                })
        })
        .collect::<Result<_, _>>()
        .map_err(|error| RunError::Task(error.to_string()))?;

    let nemesis = Nemesis::new(Arc::clone(cluster), recorder.clone()).with_disks(disks);
    let timeline = schedule::plan(&spec.nemesis, spec.topic.partitions, spec.duration, seed)
        .map_err(RunError::Setup)?;
    let nemesis_task = {
        let nemesis = nemesis.clone();
        let topic = spec.topic.name.clone();
        let stop = faults_stopped.clone();
        tokio::spawn(async move {
            nemesis
                .run_schedule(&timeline, &topic, seed.wrapping_add(1), stop)
                .await
        })
    };

    let interrupted = tokio::select! {
        _ = tokio::time::sleep(spec.duration) => false,
        _ = interrupts.wait_for(|count| *count > 0) => true,
    };
    let _ = stop_faults.send(true);
    nemesis_task
        .await
        .map_err(|error| RunError::Task(error.to_string()))?;
    if let Err(error) = nemesis.heal_all("end of the fault phase").await {
        tracing::warn!("heal: {error}");
    }
    keep_healed(&nemesis, cluster, spec).await;
    for task in producer_tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(RunError::Setup(error.to_string())),
            Err(error) => return Err(RunError::Task(error.to_string())),
        }
    }
    let _ = stop_consumers.send(true);
    for thread in consumer_threads {
        let joined = tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|error| RunError::Task(error.to_string()))?;
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!("{error}"),
            Err(_) => return Err(RunError::Task("a consumer thread panicked".into())),
        }
    }
    Ok(interrupted)
}

/// Waits for every partition to have a leader, then reads every partition completely.
async fn read_everything(
    spec: &WorkloadSpec,
    addresses: &[String],
    bootstrap: &str,
    recorder: &Recorder,
) -> Result<Vec<PartitionRead>, RunError> {
    let partitions = spec.topic.partitions;
    if let Err(error) = wait_for_metadata(
        addresses,
        Some(&spec.topic.name),
        "a leader for every partition after the heal",
        LEADERS_AFTER_HEAL_TIMEOUT,
        None,
        |metadata| metadata.all_partitions_led(partitions),
    )
    .await
    {
        // The final read will find what it can; partitions it cannot read are unknown.
        tracing::warn!("{error}");
    }
    let process = u64::from(spec.clients.producers + spec.clients.consumers) + 1;
    let bootstrap = bootstrap.to_string();
    let topic = spec.topic.name.clone();
    let timeout = Duration::from_millis(spec.clients.final_read_timeout_ms);
    let recorder = recorder.clone();
    tokio::task::spawn_blocking(move || {
        final_read(process, &bootstrap, &topic, partitions, timeout, &recorder)
    })
    .await
    .map_err(|error| RunError::Task(error.to_string()))
}

/// Counts Ctrl-C / SIGTERM from the start of the run: the first ends the current phase early
/// (setup fails, the fault phase ends and the run still heals, reads and checks); the second
/// exits at once (the kernel then kills every node: PR_SET_PDEATHSIG).
fn watch_interrupts() -> watch::Receiver<u32> {
    let (count, receiver) = watch::channel(0u32);
    tokio::spawn(async move {
        interrupt().await;
        let _ = count.send(1);
        eprintln!(
            "interrupted: healing, reading and checking what ran (interrupt again to quit now)"
        );
        interrupt().await;
        eprintln!("interrupted twice: quitting; the nodes die with us");
        std::process::exit(2);
    });
    receiver
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupt() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// `workload.toml` of a stored run, read back for `kchaos check`.
pub fn load_run_spec(dir: &std::path::Path) -> Result<WorkloadSpec, RunError> {
    Ok(WorkloadSpec::load(&dir.join("workload.toml"))?)
}

/// The workload's `server.properties` lines over the harness's defaults for a test cluster: a
/// small `__consumer_offsets` (librdkafka looks for its group's coordinator even when it only
/// assigns partitions, and Kafka's 50 partitions at replication factor 3 would be created
/// mid-run on a few brokers; with one broker Kafka's default factor 3 could never be met).
fn broker_configs(cluster: &ClusterSpec) -> BTreeMap<String, String> {
    let mut configs = BTreeMap::from([
        ("offsets.topic.num.partitions".to_string(), "3".to_string()),
        (
            "offsets.topic.replication.factor".to_string(),
            cluster.brokers.min(3).to_string(),
        ),
    ]);
    configs.extend(cluster.broker_configs.clone());
    configs
}
