//! `kchaos cluster up`: a coordinator and brokers started by hand, as in the seed notes —
//! broker.id 1..N on ports 9092.., one readable `server-N.properties` each and the log dirs under
//! DIR — in the foreground until Ctrl-C or SIGTERM, when it stops everything. The processes are
//! the harness's [`Cluster`] (each a `NodeProcess`: if this command is killed, even by SIGKILL,
//! the kernel kills them too).
//!
//! While it runs, lines typed at it steer single nodes, for the seed's experiments by hand:
//! `kill 2` (SIGKILL), `stop 2` (SIGTERM), `start 2`, `pause 2` (SIGSTOP), `resume 2`, `status`
//! (a node is a broker id, `broker-2`, or `coordinator`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use harness::cluster::{COORDINATOR, Cluster, ClusterConfig, Layout, NodeStatus};
use tokio::signal::unix::{SignalKind, signal};

use super::topics::parse_key_value;
use super::workload::{CoordinatorKind, templates};

/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// How often the nodes are checked while the cluster runs.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Arguments of `kchaos cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// What `kchaos cluster` does.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Start a coordinator and brokers and keep them running until Ctrl-C.
    Up(UpArgs),
}

/// Arguments of `kchaos cluster up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Number of brokers (broker.id 1..N).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub brokers: u32,
    /// Where configs, data and logs go (reused if it exists: the cluster keeps its data).
    #[arg(long, default_value = "kchaos-cluster")]
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

/// Dispatches `kchaos cluster ...`.
pub fn run(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ClusterCommand::Up(args) => up(args),
    }
}

/// Starts the cluster, waits for every broker, then stays until a signal; exit 0 after a clean
/// stop.
fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let ports = ports(&args)?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let config = ClusterConfig {
        dir: dir.clone(),
        brokers: args.brokers,
        session_timeout_ms: args.session_timeout_ms,
        broker_configs: args
            .broker_configs
            .iter()
            .cloned()
            .collect::<BTreeMap<_, _>>(),
        templates: templates(args.coordinator, None, None)?,
    };
    let layout = Layout {
        ports: Some(ports.clone()),
        flat_broker_configs: true,
    };
    let mut cluster =
        Cluster::prepare_with_layout(&config, &layout).context("preparing the cluster")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(run_cluster(&mut cluster, &dir, &args, &ports));
    println!("stopping the cluster");
    let stopped = cluster.stop_all(STOP_GRACE).context("stopping the cluster");
    outcome?;
    stopped?;
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The ports, checked free: the coordinator's, then one per broker.
fn ports(args: &UpArgs) -> anyhow::Result<Vec<u16>> {
    let last = u32::from(args.base_port) + args.brokers - 1;
    anyhow::ensure!(
        last <= u32::from(u16::MAX),
        "--base-port {} leaves no room for {} brokers",
        args.base_port,
        args.brokers
    );
    let mut ports = vec![args.coordinator_port];
    ports.extend((0..args.brokers).map(|index| args.base_port + index as u16));
    for (index, port) in ports.iter().enumerate() {
        anyhow::ensure!(
            !ports[..index].contains(port),
            "port {port} is both the coordinator's and a broker's"
        );
        let flag = if index == 0 {
            "--coordinator-port"
        } else {
            "--base-port"
        };
        TcpListener::bind((Ipv4Addr::LOCALHOST, *port))
            .with_context(|| format!("port {port} is not free (choose another with {flag})"))?;
    }
    Ok(ports)
}

async fn run_cluster(
    cluster: &mut Cluster,
    dir: &Path,
    args: &UpArgs,
    ports: &[u16],
) -> anyhow::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;

    cluster.start(COORDINATOR)?;
    let coordinator = cluster.coordinator_address().to_string();
    harness::wait::wait_for_async(
        "the coordinator to listen",
        args.start_timeout,
        Duration::from_millis(50),
        || async { tokio::net::TcpStream::connect(&coordinator).await.ok() },
    )
    .await
    .with_context(|| {
        format!(
            "the coordinator did not start (see {})",
            dir.join("coordinator.log").display()
        )
    })?;
    cluster.start_all()?;

    let pids: BTreeMap<String, u32> = harness::cluster::read_pid_log(dir)
        .context("reading pids.log")?
        .into_iter()
        .collect();
    let pid = |name: &str| pids.get(name).map_or("?".to_string(), u32::to_string);
    println!(
        "coordinator  pid {:<7}  {coordinator}  log {}",
        pid(COORDINATOR),
        cluster.log_path(COORDINATOR)?.display()
    );
    let addresses = cluster.broker_addresses();
    for (id, address) in cluster.broker_ids().into_iter().zip(&addresses) {
        let name = harness::target::broker_name(id);
        println!(
            "broker {id:<4}  pid {:<7}  {address}  config {}  log {}  data {}",
            pid(&name),
            dir.join(format!("server-{id}.properties")).display(),
            cluster.log_path(&name)?.display(),
            dir.join(&name).join("data").display()
        );
    }
    let bootstrap = cluster.bootstrap_servers();
    println!("Bootstrap servers: {bootstrap}");

    let wanted = ports.len() - 1;
    let metadata = tokio::select! {
        metadata = brokers_registered(cluster, &addresses, wanted, args.start_timeout) => metadata?,
        _ = interrupt.recv() => return Ok(()),
        _ = terminate.recv() => return Ok(()),
        _ = hangup.recv() => return Ok(()),
    };
    let controller = metadata
        .controller_id
        .map_or("none yet".to_string(), |id| format!("broker {id}"));
    println!(
        "Cluster up: {wanted} broker{} registered, controller {controller}. Ctrl-C stops it. \
         Type `kill N`, `stop N`, `start N`, `pause N`, `resume N` or `status` to steer a node.",
        if wanted == 1 { "" } else { "s" }
    );

    let mut controls = read_controls();
    let mut down: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            _ = interrupt.recv() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            _ = hangup.recv() => return Ok(()),
            line = controls.recv() => match line {
                Some(line) => {
                    obey(cluster, dir, &line)?;
                    // What the command stopped is not news.
                    down.clear();
                    for name in cluster.node_names() {
                        if cluster.status(&name)? == NodeStatus::Down {
                            down.push(name);
                        }
                    }
                }
                // stdin closed (or none): keep running until a signal.
                None => controls = idle_controls(),
            },
            _ = tokio::time::sleep(WATCH_INTERVAL) => {}
        }
        for name in cluster.node_names() {
            let is_down = cluster.status(&name)? == NodeStatus::Down;
            let known = down.contains(&name);
            if is_down && !known {
                println!("{name} exited (see {})", cluster.log_path(&name)?.display());
                down.push(name);
            } else if !is_down && known {
                down.retain(|other| other != &name);
            }
        }
    }
}

/// Waits until the metadata lists `wanted` brokers, failing early when a node exits.
async fn brokers_registered(
    cluster: &mut Cluster,
    addresses: &[String],
    wanted: usize,
    timeout: Duration,
) -> anyhow::Result<harness::metadata::ClusterMetadata> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        for name in cluster.node_names() {
            if cluster.status(&name)? == NodeStatus::Down {
                anyhow::bail!(
                    "{name} exited while starting (see {})",
                    cluster.log_path(&name)?.display()
                );
            }
        }
        if let Ok(metadata) =
            harness::metadata::fetch(addresses, None, Duration::from_secs(2)).await
            && metadata.brokers.len() >= wanted
        {
            return Ok(metadata);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not every broker registered within {} ms",
            timeout.as_millis()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Lines from stdin, read on a thread of their own (a blocking read there never holds up the
/// runtime); the channel closes at end of input.
fn read_controls() -> tokio::sync::mpsc::Receiver<String> {
    let (lines, receiver) = tokio::sync::mpsc::channel(16);
    let spawned = std::thread::Builder::new()
        .name("cluster-up-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if lines.blocking_send(line).is_err() {
                    break;
                }
            }
        });
    if let Err(error) = spawned {
        tracing::warn!("not reading commands from stdin: {error}");
    }
    receiver
}

/// A channel that never yields: what is left once stdin is closed.
fn idle_controls() -> tokio::sync::mpsc::Receiver<String> {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    std::mem::forget(sender);
    receiver
}

/// What a typed line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Control {
    Kill(String),
    Stop(String),
    Start(String),
    Pause(String),
    Resume(String),
    Status,
}

/// `kill 2`, `stop broker-2`, `start coordinator`, `status`, ...
fn parse_control(line: &str) -> Result<Option<Control>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let node = |word: &str| {
        if word == COORDINATOR || word.starts_with("broker-") {
            word.to_string()
        } else {
            format!("broker-{word}")
        }
    };
    Ok(Some(match words.as_slice() {
        [] => return Ok(None),
        ["status"] => Control::Status,
        ["kill", name] => Control::Kill(node(name)),
        ["stop", name] => Control::Stop(node(name)),
        ["start", name] => Control::Start(node(name)),
        ["pause", name] => Control::Pause(node(name)),
        ["resume", name] => Control::Resume(node(name)),
        _ => {
            return Err(format!(
                "unknown command `{}`: kill N, stop N, start N, pause N, resume N, status",
                line.trim()
            ));
        }
    }))
}

/// Carries out one typed line; a mistyped line is answered, not fatal.
fn obey(cluster: &mut Cluster, dir: &Path, line: &str) -> anyhow::Result<()> {
    let control = match parse_control(line) {
        Ok(Some(control)) => control,
        Ok(None) => return Ok(()),
        Err(message) => {
            println!("{message}");
            return Ok(());
        }
    };
    let name = match &control {
        Control::Status => None,
        Control::Kill(name)
        | Control::Stop(name)
        | Control::Start(name)
        | Control::Pause(name)
        | Control::Resume(name) => Some(name.clone()),
    };
    if let Some(name) = &name
        && !cluster.node_names().contains(name)
    {
        println!("no node named {name}");
        return Ok(());
    }
    match control {
        Control::Status => {}
        Control::Kill(name) => {
            cluster.kill(&name)?;
            println!("{name} killed (SIGKILL)");
        }
        Control::Stop(name) => {
            let clean = cluster.stop(&name, STOP_GRACE)?;
            let how = if clean {
                "stopped"
            } else {
                "killed after the grace period"
            };
            println!("{name} {how}");
        }
        Control::Start(name) => {
            if cluster.start(&name)? {
                println!("{name} started");
            } else {
                println!("{name} is already running");
            }
        }
        Control::Pause(name) => {
            cluster.pause(&name)?;
            println!("{name} paused (SIGSTOP)");
        }
        Control::Resume(name) => {
            cluster.resume(&name)?;
            println!("{name} resumed (SIGCONT)");
        }
    }
    print_status(cluster, dir)
}

/// One line per node: name, status, pid.
fn print_status(cluster: &mut Cluster, dir: &Path) -> anyhow::Result<()> {
    let pids: BTreeMap<String, u32> = harness::cluster::read_pid_log(dir)
        .context("reading pids.log")?
        .into_iter()
        .collect();
    for name in cluster.node_names() {
        let status = match cluster.status(&name)? {
            NodeStatus::Running => "running",
            NodeStatus::Paused => "paused",
            NodeStatus::Down => "down",
        };
        let pid = match (status, pids.get(&name)) {
            ("down", _) | (_, None) => String::new(),
            (_, Some(pid)) => format!(" (pid {pid})"),
        };
        println!("status: {name} {status}{pid}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_lines_name_nodes_by_id_or_name() {
        assert_eq!(
            parse_control("kill 2"),
            Ok(Some(Control::Kill("broker-2".into())))
        );
        assert_eq!(
            parse_control(" start  broker-3 "),
            Ok(Some(Control::Start("broker-3".into())))
        );
        assert_eq!(
            parse_control("stop coordinator"),
            Ok(Some(Control::Stop("coordinator".into())))
        );
        assert_eq!(parse_control("status"), Ok(Some(Control::Status)));
        assert_eq!(parse_control("  "), Ok(None));
        assert!(parse_control("explode 2").is_err());
        assert!(parse_control("kill").is_err());
    }
}
