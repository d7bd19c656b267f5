//! `kchaos cluster`: the 3-broker lab by hand (docs/lab.md). `cluster up` starts a coordinator
//! and brokers in the foreground and steers them from its console (stdin); from a second shell,
//! `cluster status`, `cluster down` and `cluster kill|stop|start|pause|resume NODE` ask the
//! running `cluster up` of the same `--dir` through its control socket.
//!
//! # Layout
//! - `up`: the foreground process: layout on disk, start, banner, the loop that obeys.
//! - `console`: the commands (`kill 2`, `status`, ...), parsed and carried out.
//! - `control`: the control socket `DIR/cluster-up.sock`, its server side and its client.
//! - `registration`: which brokers this cluster's processes registered, read from the
//!   coordinator (a registration left by an earlier process does not count).

mod console;
mod control;
mod registration;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::topics::parse_key_value;
use super::workload::CoordinatorKind;

/// The directory every `kchaos cluster` command uses unless `--dir` says otherwise.
const DEFAULT_DIR: &str = "kchaos-cluster";

/// Arguments of `kchaos cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// What `kchaos cluster` does.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Start a coordinator and brokers in the foreground until Ctrl-C, `cluster down` or SIGTERM.
    #[command(after_help = console::UP_HELP)]
    Up(UpArgs),
    /// Show each node of the running `cluster up` (status, pid, address, registration) and the
    /// controller. Exit 1 when no `cluster up` runs in the directory.
    Status(SecondShellArgs),
    /// Stop the running `cluster up`: brokers first (SIGTERM, a controlled shutdown), then the
    /// coordinator. Exit 1 when there is nothing to stop.
    Down(SecondShellArgs),
    /// SIGKILL one node (a broker id, `broker-N`, or `coordinator`).
    Kill(NodeArgs),
    /// SIGTERM one node (controlled shutdown), SIGKILL after 15 s.
    Stop(NodeArgs),
    /// Start one node that is down, with its old config and data.
    Start(NodeArgs),
    /// SIGSTOP one node: it keeps its sockets open but answers nothing.
    Pause(NodeArgs),
    /// SIGCONT one paused node.
    Resume(NodeArgs),
}

/// Arguments of `kchaos cluster up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Number of brokers (broker.id 1..N).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub brokers: u32,
    /// Where configs, data, logs and the control socket go (reused if it exists: the cluster
    /// keeps its data).
    #[arg(long, default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// Port of broker 1; broker N listens on base-port + N - 1.
    #[arg(long, default_value_t = 9092)]
    pub base_port: u16,
    /// Port of the coordinator.
    #[arg(long, default_value_t = 2181)]
    pub coordinator_port: u16,
    /// zookeeper.session.timeout.ms of every broker.
    #[arg(long, default_value_t = 6000)]
    pub session_timeout_ms: u64,
    /// An extra server.properties line for every broker, key=value (repeatable), e.g.
    /// unclean.leader.election.enable=true.
    #[arg(long = "broker-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub broker_configs: Vec<(String, String)>,
    /// The coordinator to run: ours, or Apache ZooKeeper (Debian's `zookeeper` package).
    #[arg(long, value_enum, default_value_t = CoordinatorKind::Kchaos)]
    pub coordinator: CoordinatorKind,
    /// How long the brokers may take to register (e.g. 60s).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub start_timeout: Duration,
}

/// Arguments of the commands that ask a running `cluster up` from another shell.
#[derive(Debug, clap::Args)]
pub struct SecondShellArgs {
    /// The directory of the running `kchaos cluster up` (its --dir).
    #[arg(long, default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
}

/// Arguments of `kchaos cluster kill|stop|start|pause|resume`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// A broker id (`2`), a broker's name (`broker-2`) or `coordinator`.
    pub node: String,
    #[command(flatten)]
    pub shell: SecondShellArgs,
}

/// Dispatches `kchaos cluster ...`.
pub fn run(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    let (shell, line) = match args.command {
        ClusterCommand::Up(args) => return up::up(args),
        ClusterCommand::Status(shell) => (shell, "status".to_string()),
        ClusterCommand::Down(shell) => (shell, "down".to_string()),
        ClusterCommand::Kill(node) => (node.shell, format!("kill {}", node.node)),
        ClusterCommand::Stop(node) => (node.shell, format!("stop {}", node.node)),
        ClusterCommand::Start(node) => (node.shell, format!("start {}", node.node)),
        ClusterCommand::Pause(node) => (node.shell, format!("pause {}", node.node)),
        ClusterCommand::Resume(node) => (node.shell, format!("resume {}", node.node)),
    };
    control::ask(&shell.dir, &line)
}
