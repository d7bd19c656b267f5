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
//! - [`network`]: the nodes' own network namespaces, for a workload with network faults.
//! - [`disks`]: the nodes' fault filesystems, for a workload with disk faults.
//! - [`group`]: the consumer group's members, their catch-up at the end and their close.
//! - [`leadership`]: leader and ISR of each partition sampled during a run (`leadership.jsonl`).
//! - [`store`]: run directories and the `latest` link.
//! - [`progress`]: the live progress line.
//! - [`summary`]: the lines a person reads at the end.

pub mod disks;
pub mod error;
pub mod group;
pub mod leadership;
pub mod network;
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
use crate::clients::consumer::{ConsumerSettings, run_consumer};
use crate::clients::final_read::{PartitionRead, final_read};
use crate::clients::launch::{ClientTemplates, WorkerLauncher, worker_template};
use crate::clients::producer::{ProducerSettings, run_producer};
use crate::clients::protocol::{Hello, Role};
use crate::clients::session::{Launcher, Session};
use crate::cluster::Cluster;
use crate::cluster::config::{ClusterConfig, CommandTemplates, Layout};
use crate::lock::lock;
use crate::nemesis::Nemesis;
use crate::nemesis::disk::Disks;
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
    /// How client workers are started.
    pub clients: ClientTemplates,
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
    network::check(spec, &options.name)?;
    disks::check(spec)?;
    // What a killed run left mounted goes first (live runs' mounts are left alone).
    disks::sweep();
    let dir = store::create_run_dir(&options.store, &options.name)?;
    let run_id = format!(
        "{}/{}",
        options.name,
        dir.file_name().unwrap_or_default().to_string_lossy()
    );
    let clients_dir = dir.join("clients");
    std::fs::create_dir_all(&clients_dir).map_err(|source| RunError::Write {
        path: clients_dir.clone(),
        source,
    })?;
    let client_template = worker_template(&spec.clients, &options.clients, &clients_dir)
        .map_err(|error| RunError::Clients(error.to_string()))?;
    let network = network::create(spec, &run_id).await?;
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

    let cluster = Cluster::prepare_with_layout(
        &ClusterConfig {
            dir: dir.clone(),
            brokers: spec.cluster.brokers,
            session_timeout_ms: spec.cluster.session_timeout_ms,
            broker_configs: broker_configs(&spec.cluster),
            templates: options.templates.clone(),
        },
        &Layout {
            network,
            ..Layout::default()
        },
    )?;
    let addresses = cluster.broker_addresses();
    let bootstrap = cluster.bootstrap_servers();
    let launcher = Arc::new(
        WorkerLauncher::new(
            client_template.clone(),
            &clients_dir,
            &dir.join("pids.log"),
            recorder.clone(),
            u64::from(spec.clients.producers + spec.clients.consumers) + 1,
        )
        .map_err(|error| RunError::Clients(error.to_string()))?,
    );
    let facts = RunFacts {
        options: &options,
        seed,
        nodes: node_facts(&cluster),
        client_command: &client_template,
        started: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    };
    write_run_facts(&dir, &facts, None)?;
    // Declared before the cluster's handle, so that on an early return the nodes die (the
    // cluster is dropped) before their disks are unmounted.
    let disks = disks::mount(spec, &cluster)?;
    let cluster = Arc::new(Mutex::new(cluster));
    let (stop_sampling, sampling_stopped) = watch::channel(false);
    let sampler = tokio::spawn(leadership::sample_leadership(
        addresses.clone(),
        spec.topic.name.clone(),
        dir.join("leadership.jsonl"),
        LEADERSHIP_SAMPLE_INTERVAL,
        recorder.clone(),
        spec.needs_network(),
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
        progress.set_phase("clients");
        let sessions = tokio::select! {
            started = start_clients(spec, &bootstrap, &launcher) => started?,
            _ = setup_interrupts.wait_for(|count| *count > 0) => {
                return Err(RunError::Clients("interrupted while they started".into()));
            }
        };
        write_run_facts(&dir, &facts, launcher.hello().as_ref())?;
        progress.set_phase("faults");
        let interrupted = fault_phase(
            spec,
            seed,
            &cluster,
            disks.clone(),
            &recorder,
            (&bootstrap, sessions, &launcher),
            interrupts.clone(),
        )
        .await?;
        progress.set_phase("final read");
        let reads = read_everything(spec, &addresses, &bootstrap, &launcher, &recorder).await?;
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
    disks::unmount(disks);
    let detached = lock(&cluster).detach_network();
    if let Some(network) = detached
        && let Err(error) = network::teardown(network).await
    {
        // The next run with a network, or `kchaos cleanup`, removes what is left.
        tracing::error!("{error}");
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

/// What `run.json` says of a run.
struct RunFacts<'a> {
    options: &'a RunOptions,
    seed: u64,
    /// The nodes' addresses and log files ([`node_facts`]).
    nodes: serde_json::Value,
    client_command: &'a [String],
    started: String,
}

/// The coordinator's address, the bootstrap servers, each node's log file and, in a run with
/// partitions, the network.
fn node_facts(cluster: &Cluster) -> serde_json::Value {
    let logs: serde_json::Map<String, serde_json::Value> = cluster
        .node_names()
        .into_iter()
        .filter_map(|name| {
            let path = cluster.log_path(&name).ok()?;
            let file = path.file_name()?.to_string_lossy().into_owned();
            Some((name, serde_json::Value::String(file)))
        })
        .collect();
    let mut facts = serde_json::json!({
        "coordinator": cluster.coordinator_address(),
        "bootstrap_servers": cluster.bootstrap_servers(),
        "logs": logs,
    });
    if let Some(network) = cluster.network() {
        let nodes: serde_json::Map<String, serde_json::Value> = network
            .nodes()
            .iter()
            .map(|node| {
                (
                    node.name().to_string(),
                    serde_json::json!({
                        "address": node.address().to_string(),
                        "namespace": node.namespace_name(),
                    }),
                )
            })
            .collect();
        facts["network"] = serde_json::json!({
            "tag": network.tag().to_string(),
            "subnet": network.subnet().to_string(),
            "bridge": network.bridge_name(),
            "gateway": network.gateway().to_string(),
            "nodes": nodes,
        });
    }
    facts
}

/// `run.json`: what is needed to read or repeat the run besides the workload — the seed, the
/// command templates, the nodes' addresses and log files, the network of a run with
/// partitions, the client library (once a worker said hello), when it started.
fn write_run_facts(
    dir: &std::path::Path,
    facts: &RunFacts<'_>,
    hello: Option<&Hello>,
) -> Result<(), RunError> {
    let options = facts.options;
    let mut text = serde_json::json!({
        "workload": options.name,
        "seed": facts.seed,
        "started": facts.started,
        "coordinator_command": options.templates.coordinator,
        "broker_command": options.templates.broker,
        "client_command": facts.client_command,
        "clients": hello.map(|hello| serde_json::json!({
            "library": hello.library,
            "library_version": hello.library_version,
            "worker": hello.worker,
            "protocol": hello.protocol,
        })),
        "coordinator": facts.nodes["coordinator"],
        "bootstrap_servers": facts.nodes["bootstrap_servers"],
        "logs": facts.nodes["logs"],
    });
    if let Some(network) = facts.nodes.get("network") {
        text["network"] = network.clone();
    }
    let path = dir.join("run.json");
    let text = serde_json::to_string_pretty(&text).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(|source| RunError::Write { path, source })
}

/// The first worker of every producer and consumer, started together before the faults: a
/// worker that cannot start (a wrong command, a library missing) fails the run's setup.
struct StartedClients {
    producers: Vec<Arc<dyn Session>>,
    consumers: Vec<Arc<dyn Session>>,
}

async fn start_clients(
    spec: &WorkloadSpec,
    bootstrap: &str,
    launcher: &WorkerLauncher,
) -> Result<StartedClients, RunError> {
    let producers = spec.clients.producers as u64;
    let consumers = spec.clients.consumers as u64;
    let producer_settings = producer_settings(spec, bootstrap);
    let consumer_settings = consumer_settings(spec, bootstrap);
    let member_settings = spec
        .clients
        .group
        .as_ref()
        .map(|group| group::member_settings(spec, group, bootstrap));
    let starts = (1..=producers + consumers).map(|process| {
        let (role, config) = match (process <= producers, &member_settings) {
            (true, _) => (Role::Producer, producer_settings.config(process)),
            (false, Some(members)) => (Role::Consumer, members.config(process)),
            (false, None) => (
                Role::Consumer,
                consumer_settings.config(process, "consumer"),
            ),
        };
        launcher.start(process, role, config)
    });
    let mut started = futures::future::join_all(starts).await.into_iter();
    let mut take = |count: u64| -> Result<Vec<Arc<dyn Session>>, RunError> {
        (&mut started)
            .take(count as usize)
            .map(|session| session.map_err(RunError::Clients))
            .collect()
    };
    Ok(StartedClients {
        producers: take(producers)?,
        consumers: take(consumers)?,
    })
}

fn producer_settings(spec: &WorkloadSpec, bootstrap: &str) -> ProducerSettings {
    ProducerSettings {
        bootstrap_servers: bootstrap.to_string(),
        topic: spec.topic.name.clone(),
        acks: spec.clients.acks.clone(),
        retries: spec.clients.retries,
        idempotence: spec.clients.idempotence,
        linger_ms: spec.clients.linger_ms,
        batch_size: spec.clients.batch_size,
        extra_config: spec.clients.producer_config.clone(),
        message_timeout_ms: spec.clients.message_timeout_ms,
        request_timeout_ms: spec.clients.request_timeout_ms,
        rate: spec.clients.rate,
        max_in_flight: spec.clients.max_in_flight,
        keys: spec.clients.keys,
    }
}

fn consumer_settings(spec: &WorkloadSpec, bootstrap: &str) -> ConsumerSettings {
    ConsumerSettings {
        bootstrap_servers: bootstrap.to_string(),
        topic: spec.topic.name.clone(),
        partitions: spec.topic.partitions,
    }
}

/// Producers, consumers and the nemesis, for the workload's duration or until interrupted;
/// then the heal and the producers' drain. Returns whether it was interrupted.
async fn fault_phase(
    spec: &WorkloadSpec,
    seed: u64,
    cluster: &Arc<Mutex<Cluster>>,
    disks: Option<Arc<Disks>>,
    recorder: &Recorder,
    (bootstrap, sessions, launcher): (&str, StartedClients, &Arc<WorkerLauncher>),
    mut interrupts: watch::Receiver<u32>,
) -> Result<bool, RunError> {
    let (stop_faults, faults_stopped) = watch::channel(false);
    let (stop_consumers, consumers_stopped) = watch::channel(false);
    let launcher: Arc<dyn Launcher> = Arc::clone(launcher) as Arc<dyn Launcher>;
    let settings = producer_settings(spec, bootstrap);
    let producer_tasks: Vec<_> = sessions
        .producers
        .into_iter()
        .map(|session| {
            tokio::spawn(run_producer(
                session,
                settings.clone(),
                Arc::clone(&launcher),
                recorder.clone(),
                faults_stopped.clone(),
            ))
        })
        .collect();
    // With a group, the consumers are its members; without, each assigns itself every partition.
    let (member_sessions, assigning) = match &spec.clients.group {
        Some(_) => (sessions.consumers, Vec::new()),
        None => (Vec::new(), sessions.consumers),
    };
    let members = spec.clients.group.as_ref().map(|group| {
        group::start_members(
            spec,
            group,
            bootstrap,
            member_sessions,
            Arc::clone(&launcher),
            recorder,
        )
    });
    let consumer_tasks: Vec<_> = assigning
        .into_iter()
        .map(|session| {
            tokio::spawn(run_consumer(
                session,
                consumer_settings(spec, bootstrap),
                Arc::clone(&launcher),
                recorder.clone(),
                consumers_stopped.clone(),
            ))
        })
        .collect();

    let mut nemesis = Nemesis::new(Arc::clone(cluster), recorder.clone()).with_disks(disks);
    if let (Some(group), Some(members)) = (&spec.clients.group, &members) {
        nemesis = nemesis.with_group(
            &group.id,
            Arc::new(group::MemberFaults(Arc::clone(members))),
        );
    }
    let timeline = schedule::plan(
        &spec.nemesis,
        spec.topic.partitions,
        spec.node_count(),
        spec.duration,
        seed,
    )
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
        task.await
            .map_err(|error| RunError::Task(error.to_string()))?;
    }
    if let (Some(group), Some(members)) = (&spec.clients.group, members) {
        let addresses = lock(cluster).broker_addresses();
        group::catch_up_and_stop(members, group, spec, &addresses).await?;
    }
    let _ = stop_consumers.send(true);
    for task in consumer_tasks {
        task.await
            .map_err(|error| RunError::Task(error.to_string()))?;
    }
    Ok(interrupted)
}

/// Waits for every partition to have a leader, then reads every partition completely.
async fn read_everything(
    spec: &WorkloadSpec,
    addresses: &[String],
    bootstrap: &str,
    launcher: &Arc<WorkerLauncher>,
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
    let timeout = Duration::from_millis(spec.clients.final_read_timeout_ms);
    let launcher: Arc<dyn Launcher> = Arc::clone(launcher) as Arc<dyn Launcher>;
    Ok(final_read(
        launcher,
        &consumer_settings(spec, bootstrap),
        timeout,
        recorder,
    )
    .await)
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
