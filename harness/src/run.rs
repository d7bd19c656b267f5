//! One run of a workload, in phases: setup (run directory, history, cluster, topic), the fault
//! phase (producers, consumers and the nemesis for the workload's duration, or until Ctrl-C),
//! heal, final read, check, teardown. Whatever happens after the history is open, the history is
//! closed and the cluster stopped; a Ctrl-C ends the fault phase early and the run still heals,
//! reads, checks and writes its results.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::checker::{self, Expectations, Results};
use crate::cluster::{Cluster, ClusterConfig, ClusterError, CommandTemplates};
use crate::consumer::run_consumer;
use crate::final_read::{PartitionRead, final_read};
use crate::history::HistoryWriter;
use crate::metadata::{self, ClusterMetadata};
use crate::nemesis::Nemesis;
use crate::producer::{ProducerSettings, run_producer};
use crate::progress::Progress;
use crate::recorder::{CountersSnapshot, Recorder};
use crate::schedule;
use crate::store;
use crate::topic::{NewTopic, create_topic};
use crate::workload::{ExpectSpec, LostExpectation, Strictness, WorkloadSpec};

/// How long the coordinator may take to accept connections (a JVM ZooKeeper is slow).
const COORDINATOR_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the brokers may take to all appear in the metadata.
const BROKERS_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long topic creation and full replication of the topic may take.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the cluster may take to elect a leader for every partition after the heal.
const LEADERS_AFTER_HEAL_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times the heal restarts nodes that exited again.
const RESTARTS_AFTER_HEAL_MAX: u32 = 10;
/// Grace for SIGTERM at teardown.
const TEARDOWN_GRACE: Duration = Duration::from_secs(10);
/// One metadata request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a run could not be carried out (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Workload(#[from] crate::workload::WorkloadError),
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("the cluster did not come up: {0}")]
    Setup(String),
    #[error("a task of the run failed: {0}")]
    Task(String),
}

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
    /// Why the run proves less than its verdict says, if it does.
    pub fn caveats(&self, spec: &WorkloadSpec) -> Vec<String> {
        let mut caveats = Vec::new();
        if spec.clients.producers > 0 && self.counters.sends_ok == 0 {
            caveats.push("no send was acknowledged: the run proves nothing about loss".to_string());
        }
        if self.interrupted {
            caveats.push("interrupted: the fault phase was cut short".to_string());
        }
        caveats
    }

    /// Whether the run passes: the checker's result matches the workload's expectation, and at
    /// least one send was acknowledged (a run without any proves nothing).
    pub fn passed(&self, spec: &WorkloadSpec) -> bool {
        self.results.matches_expectation()
            && !(spec.clients.producers > 0 && self.counters.sends_ok == 0)
    }
}

/// The checker's expectations from the workload's `[expect]`.
pub fn expectations(expect: &ExpectSpec) -> Expectations {
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
    }
}

/// Runs a workload from setup to teardown.
pub async fn run(options: RunOptions) -> Result<RunOutcome, RunError> {
    let spec = &options.spec;
    let seed = spec.seed.unwrap_or(0);
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
        broker_configs: spec.cluster.broker_configs.clone(),
        templates: options.templates.clone(),
    })?;
    let addresses = cluster.broker_addresses();
    let bootstrap = cluster.bootstrap_servers();
    let cluster = Arc::new(Mutex::new(cluster));

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

    progress.set_phase("teardown");
    let closed = recorder.close();
    let teardown = {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || lock(&cluster).stop_all(TEARDOWN_GRACE)).await
    };
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
    let results = checker::check_history_file(&history_path, &expectations(&spec.expect));
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

/// Coordinator first (waiting until it accepts connections), then the brokers (waiting until
/// the metadata lists them all), then the topic (waiting until every partition is led and fully
/// replicated).
async fn start_cluster(
    cluster: &Arc<Mutex<Cluster>>,
    spec: &WorkloadSpec,
    addresses: &[String],
) -> Result<(), RunError> {
    let coordinator_address = {
        let mut cluster = lock(cluster);
        cluster.start(crate::cluster::COORDINATOR)?;
        cluster.coordinator_address().to_string()
    };
    let deadline = tokio::time::Instant::now() + COORDINATOR_START_TIMEOUT;
    while tokio::net::TcpStream::connect(&coordinator_address)
        .await
        .is_err()
    {
        check_nodes_alive(cluster, Some(crate::cluster::COORDINATOR))?;
        if tokio::time::Instant::now() >= deadline {
            return Err(RunError::Setup(format!(
                "the coordinator did not accept connections on {coordinator_address} within {} ms",
                COORDINATOR_START_TIMEOUT.as_millis()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let mut cluster = lock(cluster);
        for name in cluster.node_names() {
            cluster.start(&name)?;
        }
    }
    let expected = spec.cluster.brokers as usize;
    wait_for_metadata(
        addresses,
        None,
        &format!("all {expected} brokers in the metadata"),
        BROKERS_START_TIMEOUT,
        Some(cluster),
        |metadata| metadata.brokers.len() >= expected,
    )
    .await?;
    let topic = NewTopic {
        name: &spec.topic.name,
        partitions: spec.topic.partitions,
        replication_factor: spec.topic.replication_factor,
        configs: &spec.topic.configs,
    };
    create_topic(addresses, &topic, TOPIC_READY_TIMEOUT)
        .await
        .map_err(|error| RunError::Setup(error.to_string()))?;
    let partitions = spec.topic.partitions;
    wait_for_metadata(
        addresses,
        Some(&spec.topic.name),
        "every partition led with a full ISR",
        TOPIC_READY_TIMEOUT,
        Some(cluster),
        |metadata| metadata.all_partitions_fully_replicated(partitions),
    )
    .await?;
    Ok(())
}

/// Polls the metadata until `condition` holds. With `cluster`, a node that died meanwhile ends
/// the wait at once with the end of its log.
async fn wait_for_metadata(
    addresses: &[String],
    topic: Option<&str>,
    what: &str,
    timeout: Duration,
    cluster: Option<&Arc<Mutex<Cluster>>>,
    condition: impl Fn(&ClusterMetadata) -> bool,
) -> Result<ClusterMetadata, RunError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(cluster) = cluster {
            check_nodes_alive(cluster, None)?;
        }
        if let Ok(metadata) = metadata::fetch(addresses, topic, METADATA_TIMEOUT).await
            && condition(&metadata)
        {
            return Ok(metadata);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RunError::Setup(format!(
                "timed out after {} ms waiting for {what}",
                timeout.as_millis()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fails naming the first node that is down (of all, or only `only`), with the last lines of
/// its log.
fn check_nodes_alive(cluster: &Arc<Mutex<Cluster>>, only: Option<&str>) -> Result<(), RunError> {
    let mut cluster = lock(cluster);
    let names = match only {
        Some(name) => vec![name.to_string()],
        None => cluster.node_names(),
    };
    for name in names {
        if cluster.status(&name)? == crate::cluster::NodeStatus::Down {
            let log_path = cluster.log_path(&name)?;
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(10)..].join("\n  ");
            return Err(RunError::Setup(format!(
                "{name} exited during setup; the end of {}:\n  {tail}",
                log_path.display()
            )));
        }
    }
    Ok(())
}

/// Producers, consumers and the nemesis, for the workload's duration or until interrupted;
/// then the heal and the producers' drain. Returns whether it was interrupted.
async fn fault_phase(
    spec: &WorkloadSpec,
    seed: u64,
    cluster: &Arc<Mutex<Cluster>>,
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

    let nemesis = Nemesis::new(Arc::clone(cluster), recorder.clone());
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

/// After the heal, until every broker is in the metadata and every partition has a leader:
/// starts again any node that exited (a broker restarted before its old coordinator session
/// expired may refuse to start), a bounded number of times. Gives up quietly at the deadline:
/// the final read then reports what it could not read.
async fn keep_healed(nemesis: &Nemesis, cluster: &Arc<Mutex<Cluster>>, spec: &WorkloadSpec) {
    let addresses = lock(cluster).broker_addresses();
    let deadline = tokio::time::Instant::now() + LEADERS_AFTER_HEAL_TIMEOUT;
    let mut restarts = 0;
    loop {
        let down: Vec<String> = {
            let mut cluster = lock(cluster);
            cluster
                .node_names()
                .into_iter()
                .filter(|name| matches!(cluster.status(name), Ok(crate::cluster::NodeStatus::Down)))
                .collect()
        };
        for node in down {
            if restarts < RESTARTS_AFTER_HEAL_MAX {
                restarts += 1;
                let _ = nemesis
                    .inject(crate::workload::Fault::Start, &node, "heal: it had exited")
                    .await;
            }
        }
        if let Ok(metadata) =
            metadata::fetch(&addresses, Some(&spec.topic.name), METADATA_TIMEOUT).await
            && metadata.brokers.len() >= spec.cluster.brokers as usize
            && metadata.all_partitions_led(spec.topic.partitions)
        {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("the cluster did not recover fully after the heal");
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `workload.toml` of a stored run, read back for `kchaos check`.
pub fn load_run_spec(dir: &std::path::Path) -> Result<WorkloadSpec, RunError> {
    Ok(WorkloadSpec::load(&dir.join("workload.toml"))?)
}

/// A few lines for people: verdict, loss, unavailability, p99 latency, where the run is.
pub fn summary(results: &Results, dir: &std::path::Path) -> String {
    let verdict = match results.valid {
        checker::Validity::True => "valid",
        checker::Validity::False => "INVALID",
        checker::Validity::Unknown => "unknown",
    };
    let lost = results.count(checker::AnomalyKind::Lost);
    let unavailable_ms = results
        .faults
        .iter()
        .map(|fault| fault.longest_without_ok_send_us)
        .max()
        .unwrap_or(0)
        / 1000;
    let send = results.operations.get("send");
    let p99_ms = send.map_or(0.0, |figures| figures.latency_us.p99 as f64 / 1000.0);
    let (ok, fail, info) = send.map_or((0, 0, 0), |f| (f.ok, f.fail, f.info));
    let mut text = format!(
        "verdict: {verdict} ({} the expectation)\n\
         sends: {ok} ok, {fail} fail, {info} info; lost: {lost}\n\
         longest unavailability after a fault: {unavailable_ms} ms; send latency p99: {p99_ms:.1} ms\n",
        if results.matches_expectation() {
            "matches"
        } else {
            "does NOT match"
        }
    );
    let anomalies: Vec<String> = results
        .anomalies
        .iter()
        .filter(|(_, anomaly)| anomaly.count > 0)
        .map(|(name, anomaly)| format!("{name} {}", anomaly.count))
        .collect();
    if !anomalies.is_empty() {
        text.push_str(&format!("anomalies: {}\n", anomalies.join(", ")));
    }
    for reason in results.reasons.iter().take(5) {
        text.push_str(&format!("  {reason}\n"));
    }
    text.push_str(&format!("run: {}", dir.display()));
    text
}
