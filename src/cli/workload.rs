//! `kchaos workload`, `kchaos list` and `kchaos check`: the CLI edge of the `harness` crate.
//! It fills the harness's command templates with this very binary (`kchaos broker ...`,
//! `kchaos coordinator ...`), so the harness itself knows nothing of our broker.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use checker::Outcome;
use harness::clients::launch::ClientTemplates;
use harness::cluster::config::CommandTemplates;
use harness::run::summary::summary;
use harness::run::{RunOptions, expectations};
use harness::workload::{self, ClientLibrary, WorkloadSpec};

/// Arguments of `kchaos workload`.
#[derive(Debug, clap::Args)]
pub struct WorkloadArgs {
    /// A workload name (see `kchaos list`) or a path to a workload .toml file.
    pub workload: String,
    /// Length of the fault phase, overriding the workload's (e.g. 30s, 2m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Seed of every random choice (saved with the run); random when absent.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Sends per second per producer, overriding the workload's (0 = as fast as possible).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Where runs are stored: <store>/<workload>/<timestamp>/ and <store>/latest.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Where workload names are looked up.
    #[arg(long, env = "KCHAOS_WORKLOADS")]
    pub workloads: Option<PathBuf>,
    /// The coordinator to run: ours, or Apache ZooKeeper (Debian's `zookeeper` package).
    #[arg(long, value_enum, default_value_t = CoordinatorKind::Kchaos)]
    pub coordinator: CoordinatorKind,
    /// Start brokers with this command instead of `kchaos broker` (words separated by spaces;
    /// placeholders {config}, {host}, {port}, {data_dir}, {id}, {name}, {coordinator}): e.g.
    /// Apache Kafka's `kafka-server-start.sh {config}`.
    #[arg(long)]
    pub broker_command: Option<String>,
    /// Start the coordinator with this command instead (placeholders {config} (a zoo.cfg),
    /// {host}, {port}, {data_dir}).
    #[arg(long, conflicts_with = "coordinator")]
    pub coordinator_command: Option<String>,
    /// The client library of every producer and consumer, overriding the workload's
    /// `[clients] library`: rdkafka or confluent-kafka-python.
    #[arg(long, value_parser = parse_client_library)]
    pub client_library: Option<ClientLibrary>,
    /// Start client workers with this command instead (words separated by spaces; placeholders
    /// {process} and {role}): a worker of any library that speaks docs/client-protocol.md.
    #[arg(long)]
    pub client_command: Option<String>,
    /// No live progress line.
    #[arg(long)]
    pub no_progress: bool,
}

fn parse_client_library(name: &str) -> Result<ClientLibrary, String> {
    ClientLibrary::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = ClientLibrary::ALL
            .iter()
            .map(|library| library.name())
            .collect();
        format!(
            "unknown client library `{name}` (known: {})",
            known.join(", ")
        )
    })
}

/// Which coordinator a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CoordinatorKind {
    /// `kchaos coordinator`.
    Kchaos,
    /// Apache ZooKeeper's `ZooKeeperServerMain` (java).
    Zookeeper,
}

/// Arguments of `kchaos list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Where the workloads are.
    #[arg(long, env = "KCHAOS_WORKLOADS")]
    pub workloads: Option<PathBuf>,
}

/// Arguments of `kchaos check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// A run directory (store/<workload>/<timestamp>, or store/latest).
    pub run_dir: PathBuf,
}

/// `kchaos workload`: run, check, summarise. Exit 0 if the result matches the workload's
/// expectation, 1 if not, 2 if the run could not be carried out.
pub fn run(args: WorkloadArgs) -> anyhow::Result<ExitCode> {
    let dir = workloads_dir(args.workloads.as_deref());
    let path = workload::resolve(&args.workload, &dir)?;
    let mut spec = WorkloadSpec::load(&path)?;
    if let Some(duration) = args.duration {
        anyhow::ensure!(!duration.is_zero(), "--duration must be more than 0");
        spec.duration = duration;
    }
    if let Some(rate) = args.rate {
        spec.clients.rate = rate;
    }
    if let Some(library) = args.client_library {
        spec.clients.library = library;
        spec.clients.command = None;
    }
    // Seeds stay below 2^63: the run saves its seed in workload.toml, and TOML integers are i64.
    let seed = args
        .seed
        .or(spec.seed)
        .unwrap_or_else(|| rand::random::<u64>() >> 1);
    anyhow::ensure!(
        i64::try_from(seed).is_ok(),
        "--seed {seed} is too large: seeds go up to {} (they are saved in workload.toml, whose integers are 64-bit signed)",
        i64::MAX
    );
    spec.seed = Some(seed);
    let name = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("workload")
        .to_string();
    let store = args.store.clone();
    let options = RunOptions {
        name: name.clone(),
        spec: spec.clone(),
        store: args.store,
        templates: templates(
            args.coordinator,
            args.coordinator_command.as_deref(),
            args.broker_command.as_deref(),
        )?,
        clients: client_templates(args.client_command.as_deref())?,
        progress: !args.no_progress && std::io::stderr().is_terminal(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime
        .block_on(harness::run::run(options))
        .with_context(|| format!("workload {name} (seed {seed})"))?;
    println!("{name} (seed {seed})");
    println!("{}", summary(&outcome.results, &outcome.dir));
    for caveat in outcome.caveats() {
        println!("note: {caveat}");
    }
    write_reports(&outcome.dir, Some(&store));
    Ok(exit_code(outcome.outcome()))
}

/// `kchaos list`: the shipped workloads with their descriptions.
pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let dir = workloads_dir(args.workloads.as_deref());
    let workloads = workload::list(&dir)?;
    let width = workloads
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    let mut all_good = true;
    for (name, spec) in workloads {
        match spec {
            Ok(spec) => println!("{name:width$}  {}", spec.description),
            Err(error) => {
                all_good = false;
                println!("{name:width$}  (broken: {error})");
            }
        }
    }
    Ok(if all_good {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// `kchaos check RUN_DIR`: re-check a stored history and rewrite its results.json.
pub fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.run_dir;
    let spec = WorkloadSpec::load(&dir.join("workload.toml"))
        .with_context(|| format!("{} is not a run directory", dir.display()))?;
    let history = dir.join("history.jsonl");
    anyhow::ensure!(history.is_file(), "{} has no history", dir.display());
    let results = checker::check_history_file(&history, &expectations(&spec));
    let results_path = dir.join("results.json");
    results
        .write_json(&results_path)
        .with_context(|| format!("writing {}", results_path.display()))?;
    println!("{}", summary(&results, dir));
    write_reports(dir, None);
    Ok(exit_code(results.outcome()))
}

/// Writes the run's report.html and results.xml, and the store's index.html when a store is
/// given. The verdict is already decided: a report that cannot be written is a warning, not a
/// different exit code.
fn write_reports(run_dir: &Path, store: Option<&Path>) {
    match reports::write_run(run_dir) {
        Ok(written) => {
            if let Some(report) = written.first() {
                println!("report: {}", report.display());
            }
        }
        Err(error) => eprintln!("warning: no report for {}: {error}", run_dir.display()),
    }
    if let Some(store) = store
        && let Err(error) = reports::write_index(store)
    {
        eprintln!("warning: no index for {}: {error}", store.display());
    }
}

/// The exit code of a checked run: the one pass rule's ([`Outcome::decide`]).
fn exit_code(outcome: Outcome) -> ExitCode {
    ExitCode::from(outcome.exit_code())
}

/// `--workloads`, else `./workloads`, else the source tree's.
pub(crate) fn workloads_dir(given: Option<&Path>) -> PathBuf {
    if let Some(dir) = given {
        return dir.to_path_buf();
    }
    let here = PathBuf::from("workloads");
    if here.is_dir() {
        return here;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/workloads"))
}

/// This binary as the rdkafka worker (`kchaos client`), and `--client-command` if given.
pub(crate) fn client_templates(client_command: Option<&str>) -> anyhow::Result<ClientTemplates> {
    let exe = std::env::current_exe().context("finding the kchaos binary")?;
    let command = match client_command {
        Some(command) => {
            let words: Vec<String> = command.split_whitespace().map(String::from).collect();
            anyhow::ensure!(!words.is_empty(), "--client-command is empty");
            Some(words)
        }
        None => None,
    };
    Ok(ClientTemplates {
        rdkafka: vec![exe.display().to_string(), "client".into()],
        command,
    })
}

/// This binary as the broker, and the chosen coordinator, unless commands are given.
pub(crate) fn templates(
    coordinator: CoordinatorKind,
    coordinator_command: Option<&str>,
    broker_command: Option<&str>,
) -> anyhow::Result<CommandTemplates> {
    let words = |command: &str, flag: &str| {
        let words: Vec<String> = command.split_whitespace().map(String::from).collect();
        anyhow::ensure!(!words.is_empty(), "{flag} is empty");
        Ok(words)
    };
    let exe = std::env::current_exe().context("finding the kchaos binary")?;
    let exe = exe.display().to_string();
    let broker = match broker_command {
        Some(command) => words(command, "--broker-command")?,
        None => [exe.as_str(), "broker", "--config", "{config}"]
            .map(String::from)
            .to_vec(),
    };
    if let Some(command) = coordinator_command {
        return Ok(CommandTemplates {
            coordinator: words(command, "--coordinator-command")?,
            broker,
        });
    }
    let coordinator = match coordinator {
        CoordinatorKind::Kchaos => [
            exe.as_str(),
            "coordinator",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--data-dir",
            "{data_dir}",
            "--tick-time-ms",
            "100",
            "--max-session-timeout-ms",
            "60000",
        ]
        .map(String::from)
        .to_vec(),
        CoordinatorKind::Zookeeper => CommandTemplates::apache_zookeeper_coordinator(),
    };
    Ok(CommandTemplates {
        coordinator,
        broker,
    })
}
