//! The `kchaos` binary: one clap command line for the daemons (`broker`, `coordinator`,
//! `client`), the harness (`workload`, `list`, `check`, `report`, `cluster`, `selftest`,
//! `cleanup`), the admin tools
//! (`topics`, `configs`, `elect`, `coord`) and the benchmarks (`bench`). Each subcommand lives
//! in the module that owns it; this file only parses and dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kchaos::{bench, broker, cli, client, coordinator};

#[derive(Parser)]
#[command(name = "kchaos", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workload (a name from `kchaos list` or a path to a .toml file) and check its history.
    Workload(cli::workload::WorkloadArgs),
    /// List the shipped workloads with a one-line description each.
    List(cli::workload::ListArgs),
    /// Re-check the history of a stored run and rewrite its results.json.
    Check(cli::workload::CheckArgs),
    /// Write the HTML report of a stored run.
    Report(cli::report::ReportArgs),
    /// The 3-broker lab by hand: `cluster up`, and `status`, `down`, `kill N`... from another
    /// shell (docs/lab.md).
    Cluster(cli::cluster::ClusterArgs),
    /// Run one Kafka-protocol broker (`--config server.properties`).
    Broker(broker::BrokerArgs),
    /// Run the ZooKeeper-protocol coordinator.
    Coordinator(coordinator::CoordinatorArgs),
    /// Run one rdkafka client worker, steered by the harness through JSON lines on stdin and
    /// stdout (docs/client-protocol.md).
    Client(client::ClientArgs),
    /// Create, describe, list and delete topics (like kafka-topics).
    Topics(cli::topics::TopicsArgs),
    /// Describe and alter topic configs (like kafka-configs).
    Configs(cli::configs::ConfigsArgs),
    /// Run preferred or unclean leader election (like kafka-leader-election).
    Elect(cli::elect::ElectArgs),
    /// A shell for the coordinator (like zookeeper-shell): `kchaos coord 127.0.0.1:2181 ls /`.
    Coord(coordinator::shell::ShellArgs),
    /// Benchmarks: coordinator, produce, clients, checker, fuzz, consume.
    Bench(bench::BenchArgs),
    /// Remove what killed runs left on this machine (network namespaces, ...); `--dry-run`
    /// only lists it.
    Cleanup(cli::cleanup::CleanupArgs),
    /// Switch on each planted bug in turn and check that the workloads catch it (needs a build
    /// with `--features planted-bugs`).
    Selftest(cli::selftest::SelftestArgs),
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Workload(args) => cli::workload::run(args),
        Command::List(args) => cli::workload::list(args),
        Command::Check(args) => cli::workload::check(args),
        Command::Report(args) => cli::report::run(args),
        Command::Cluster(args) => cli::cluster::run(args),
        Command::Broker(args) => broker::run(args),
        Command::Coordinator(args) => coordinator::run(args),
        Command::Client(args) => client::run(args),
        Command::Topics(args) => cli::topics::run(args),
        Command::Configs(args) => cli::configs::run(args),
        Command::Elect(args) => cli::elect::run(args),
        Command::Coord(args) => coordinator::shell::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Selftest(args) => cli::selftest::run(args),
        Command::Cleanup(args) => cli::cleanup::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr, one line per event, filtered by `RUST_LOG` (default: `info` for kchaos,
/// `warn` for the ZooKeeper client library, which logs every session state change at info, and
/// `error` for `fuser`, which logs every unmount of a fault filesystem and warns of every
/// FUSE call a fault filesystem leaves to the kernel's default, such as extended attributes).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,zookeeper_client=warn,fuser=error")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
