//! `kchaos cluster up`: a coordinator and brokers started by hand — broker.id 1..N on ports
//! 9092.., one readable `server-N.properties` each and the log dirs under DIR — in the foreground
//! until Ctrl-C, SIGTERM or `kchaos cluster down`, when it stops everything (brokers first). The
//! processes are the harness's [`Cluster`] (each a `NodeProcess`: if this command is killed,
//! even by SIGKILL, the kernel kills them too).
//!
//! It prints its own pid and every node's, then waits until every broker has registered — its
//! own registration, not one an earlier process left behind — and answers console commands from
//! stdin and from the control socket until it is told to stop.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use harness::cluster::config::{ClusterConfig, Layout};
use harness::cluster::{COORDINATOR, Cluster, NodeStatus};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::UpArgs;
use super::console::{Flow, Lab, STOP_GRACE, obey, say};
use super::control::{self, Request};
use super::registration::Registry;
use crate::cli::workload::templates;

/// How often the nodes are checked while the cluster runs.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// How often the registrations are read while the brokers start.
const REGISTRATION_POLL: Duration = Duration::from_millis(200);

/// Why the cluster stops.
enum Ending {
    /// Ctrl-C, SIGTERM or SIGHUP.
    Signal,
    /// `down`, typed or from a second shell (which waits for the answer).
    Down(Option<UnixStream>),
}

/// Starts the cluster, waits for every broker, then stays until told to stop; exit 0 after a
/// clean stop.
pub fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    // One `cluster up` per directory: this also says so when another one holds the ports.
    let mut socket = control::claim(&dir)?;
    let ports = ports(&args)?;
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
        network: None,
    };
    let cluster =
        Cluster::prepare_with_layout(&config, &layout).context("preparing the cluster")?;
    let registry = Registry::new(cluster.coordinator_address());
    let mut lab = Lab {
        cluster,
        dir: dir.clone(),
        started_ms: BTreeMap::new(),
        registry,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(async {
        let requests = socket.serve()?;
        let outcome = run_lab(&mut lab, &args, ports.len() - 1, requests).await;
        lab.registry.disconnect().await;
        outcome
    });
    let (outcome, mut asker) = match outcome {
        Ok(Ending::Down(asker)) => (Ok(()), asker),
        Ok(Ending::Signal) => (Ok(()), None),
        Err(error) => (Err(error), None),
    };
    let mut tell = |line: &str| {
        println!("{line}");
        if let Some(asker) = asker.as_mut() {
            say(asker, line);
        }
    };
    tell("stopping the cluster");
    let stopped = stop_all(&mut lab.cluster, &mut tell);
    if stopped.is_ok() {
        tell("stopped");
    }
    drop(socket);
    outcome?;
    stopped?;
    Ok(ExitCode::SUCCESS)
}

/// Stops every broker (a controlled shutdown each), then the coordinator, saying each.
fn stop_all(cluster: &mut Cluster, tell: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
    let mut names = cluster.node_names();
    // Brokers first: they talk to the coordinator while they shut down.
    names.sort_by_key(|name| name == COORDINATOR);
    for name in names {
        if cluster.status(&name)? == NodeStatus::Down {
            continue;
        }
        let clean = cluster
            .stop(&name, STOP_GRACE)
            .with_context(|| format!("stopping {name}"))?;
        tell(&if clean {
            format!("{name} stopped")
        } else {
            format!("{name} killed after {} s", STOP_GRACE.as_secs())
        });
    }
    Ok(())
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

/// Starts the nodes, prints the banner, then obeys until a signal or `down`.
async fn run_lab(
    lab: &mut Lab,
    args: &UpArgs,
    brokers: usize,
    mut requests: mpsc::Receiver<Request>,
) -> anyhow::Result<Ending> {
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    let dir = lab.dir.clone();
    println!(
        "kchaos cluster up: pid {}, directory {}",
        std::process::id(),
        dir.display()
    );

    lab.start(COORDINATOR)?;
    let coordinator = lab.cluster.coordinator_address().to_string();
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
    for name in lab.cluster.node_names() {
        lab.start(&name)?;
    }
    print_nodes(lab)?;

    let controller = tokio::select! {
        controller = brokers_registered(lab, brokers, args.start_timeout) => controller?,
        _ = interrupt.recv() => return Ok(Ending::Signal),
        _ = terminate.recv() => return Ok(Ending::Signal),
        _ = hangup.recv() => return Ok(Ending::Signal),
    };
    let controller = controller.map_or("none yet".to_string(), |id| format!("broker {id}"));
    println!(
        "Cluster up: {brokers} broker{} registered, controller {controller}. Ctrl-C or \
         `kchaos cluster down --dir {}` stops it.",
        if brokers == 1 { "" } else { "s" },
        dir.display()
    );
    let mut console = match console_lines() {
        Some(lines) => {
            if std::io::stdin().is_terminal() {
                println!(
                    "Console: type `kill N`, `stop N`, `start N`, `pause N`, `resume N`, `status` \
                     or `down` (N: a broker id or `coordinator`)."
                );
            }
            lines
        }
        None => {
            println!("{}", console_off(&dir, "it runs in the background"));
            idle_lines()
        }
    };

    let mut down: Vec<String> = Vec::new();
    loop {
        let flow = tokio::select! {
            _ = interrupt.recv() => return Ok(Ending::Signal),
            _ = terminate.recv() => return Ok(Ending::Signal),
            _ = hangup.recv() => return Ok(Ending::Signal),
            line = console.recv() => match line {
                Some(line) => {
                    let flow = obey(lab, &line, &mut std::io::stdout()).await?;
                    if flow == Flow::Down {
                        return Ok(Ending::Down(None));
                    }
                    true
                }
                None => {
                    println!("{}", console_off(&dir, "stdin is closed"));
                    console = idle_lines();
                    false
                }
            },
            request = requests.recv() => match request {
                Some(Request { line, mut reply }) => {
                    if obey(lab, &line, &mut reply).await? == Flow::Down {
                        return Ok(Ending::Down(Some(reply)));
                    }
                    true
                }
                None => false,
            },
            _ = tokio::time::sleep(WATCH_INTERVAL) => false,
        };
        if flow {
            // What a command stopped is not news.
            down.clear();
            for name in lab.cluster.node_names() {
                if lab.cluster.status(&name)? == NodeStatus::Down {
                    down.push(name);
                }
            }
        }
        for name in lab.cluster.node_names() {
            let is_down = lab.cluster.status(&name)? == NodeStatus::Down;
            let known = down.contains(&name);
            if is_down && !known {
                println!(
                    "{name} exited (see {})",
                    lab.cluster.log_path(&name)?.display()
                );
                down.push(name);
            } else if !is_down && known {
                down.retain(|other| other != &name);
            }
        }
    }
}

/// The banner's node lines: pid, address, config, log and data of each.
fn print_nodes(lab: &mut Lab) -> anyhow::Result<()> {
    let pid = |cluster: &Cluster, name: &str| -> anyhow::Result<String> {
        Ok(cluster
            .pid(name)?
            .map_or("?".to_string(), |pid| pid.to_string()))
    };
    let cluster = &lab.cluster;
    println!(
        "coordinator  pid {:<7}  {}  log {}",
        pid(cluster, COORDINATOR)?,
        cluster.coordinator_address(),
        cluster.log_path(COORDINATOR)?.display()
    );
    for (id, address) in cluster
        .broker_ids()
        .into_iter()
        .zip(cluster.broker_addresses())
    {
        let name = harness::cluster::broker_name(id);
        println!(
            "broker {id:<4}  pid {:<7}  {address}  config {}  log {}  data {}",
            pid(cluster, &name)?,
            lab.dir.join(format!("server-{id}.properties")).display(),
            cluster.log_path(&name)?.display(),
            lab.dir.join(&name).join("data").display()
        );
    }
    println!("Bootstrap servers: {}", cluster.bootstrap_servers());
    std::io::stdout().flush().context("writing the banner")
}

/// Waits until every broker of this cluster runs and has registered itself — a registration
/// created before the broker was started is an earlier process's and does not count — and the
/// brokers' metadata lists them all. Fails early when a node exits. Returns the controller, if
/// one is registered by this cluster.
async fn brokers_registered(
    lab: &mut Lab,
    wanted: usize,
    timeout: Duration,
) -> anyhow::Result<Option<i32>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let addresses = lab.cluster.broker_addresses();
    let mut told_of_leftovers = false;
    loop {
        let last_error;
        for name in lab.cluster.node_names() {
            if lab.cluster.status(&name)? == NodeStatus::Down {
                anyhow::bail!(
                    "{name} exited while starting (see {})",
                    lab.cluster.log_path(&name)?.display()
                );
            }
        }
        let started = lab.brokers_started_ms()?;
        match lab.registry.read(&started).await {
            Ok(registrations) => {
                if !registrations.leftover.is_empty() && !told_of_leftovers {
                    told_of_leftovers = true;
                    println!(
                        "waiting for broker{} {:?}: an earlier process's registration is still in \
                         the coordinator until its session expires",
                        if registrations.leftover.len() == 1 {
                            ""
                        } else {
                            "s"
                        },
                        registrations.leftover
                    );
                }
                if registrations.fresh.len() >= wanted {
                    match harness::cluster::metadata::fetch(
                        &addresses,
                        None,
                        Duration::from_secs(2),
                    )
                    .await
                    {
                        Ok(metadata) if metadata.brokers.len() >= wanted => {
                            return Ok(registrations.controller);
                        }
                        Ok(metadata) => {
                            last_error =
                                format!("the metadata lists brokers {:?}", metadata.brokers);
                        }
                        Err(error) => last_error = format!("metadata: {error}"),
                    }
                } else {
                    last_error = format!("registered: {:?}", registrations.fresh);
                }
            }
            Err(error) => last_error = error,
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not every broker registered within {} ms ({last_error})",
            timeout.as_millis()
        );
        tokio::time::sleep(REGISTRATION_POLL).await;
    }
}

/// What `cluster up` says once when its console is off.
fn console_off(dir: &Path, why: &str) -> String {
    format!(
        "The console is off ({why}). From another shell: `kchaos cluster status --dir {dir}`, \
         `kchaos cluster kill|stop|start|pause|resume NODE --dir {dir}`, `kchaos cluster down \
         --dir {dir}`.",
        dir = dir.display()
    )
}

/// Console lines from stdin, read on a thread of their own (a blocking read there never holds up
/// the runtime); the channel closes at end of input. `None` when this process is a background
/// job of a terminal: reading the terminal would stop it (SIGTTIN).
fn console_lines() -> Option<mpsc::Receiver<String>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal()
        && let Ok(foreground) = nix::unistd::tcgetpgrp(&stdin)
        && foreground != nix::unistd::getpgrp()
    {
        return None;
    }
    let (lines, receiver) = mpsc::channel(16);
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
    Some(receiver)
}

/// A channel that never yields: what is left once stdin is closed.
fn idle_lines() -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel(1);
    std::mem::forget(sender);
    receiver
}
