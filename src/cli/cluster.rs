//! `kchaos cluster up`: a coordinator and brokers started by hand, as in the seed notes —
//! broker.id 1..N on ports 9092.., one readable `server-N.properties` each and the log dirs under
//! DIR — in the foreground until Ctrl-C or SIGTERM, when it stops everything. The processes are
//! the harness's [`Cluster`] (each a `NodeProcess`: if this command is killed, even by SIGKILL,
//! the kernel kills them too).

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
        "Cluster up: {wanted} brokers registered, controller {controller}. Ctrl-C stops it. \
         A broker stopped by hand restarts with: kchaos broker --config {}",
        dir.join("server-N.properties").display()
    );

    let mut down: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            _ = interrupt.recv() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            _ = hangup.recv() => return Ok(()),
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
