//! The cluster (Jepsen's DB): a coordinator and N brokers, each a child process with its own
//! data directory, config file and log file in the run directory, on free loopback ports.
//!
//! The harness knows nothing of how these processes are built: it takes their command lines as
//! templates with placeholders (`{port}`, `{data_dir}`, `{config}`, `{id}`, `{name}`,
//! `{coordinator}`), so the same cluster can be our `kchaos broker` or Apache Kafka, our
//! `kchaos coordinator` or Apache ZooKeeper. Each broker gets a Kafka `server.properties`; the
//! coordinator gets a ZooKeeper `zoo.cfg` (which our coordinator may ignore).
//!
//! Every node is a [`NodeProcess`] (its own process group, killed if we die), and every pid ever
//! started is appended to `pids.log` in the run directory, so a test can check that none is left.
//! For network partitions every node can run in a network namespace of its own (the `netfault`
//! crate; [`config::Layout::network`]): it is spawned into it, the same way, and listens on its
//! namespace's address.
//!
//! # Layout
//! - this file: [`Cluster`], the nodes' lifecycle (start, kill, pause, resume, stop, heal).
//! - [`config`]: rendering it first ([`Cluster::prepare`]): ports, config files, data
//!   directories and command lines from [`config::CommandTemplates`].
//! - [`process`]: one child process that can never outlive us (process group, PDEATHSIG).
//! - [`ports`]: free loopback ports.
//! - [`metadata`]: live brokers, controller, leaders and ISRs, from a raw Metadata request.
//! - [`topic`]: creating the workload's topic through the admin API.
//! - [`group_coordinator`]: the broker coordinating a consumer group (FindCoordinator).

pub mod config;
pub mod group_coordinator;
pub mod metadata;
pub mod ports;
pub mod process;
pub mod topic;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use self::process::{NodeProcess, ProcessError};

/// The name of the coordinator node.
pub const COORDINATOR: &str = "coordinator";

/// The node name of a broker id.
pub fn broker_name(id: i32) -> String {
    format!("broker-{id}")
}

/// What can go wrong with the cluster's processes and files.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{what} {path}: {source}")]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no free ports: {0}")]
    Ports(std::io::Error),
    #[error("the {which} command template is empty")]
    EmptyTemplate { which: &'static str },
    #[error("unknown placeholder `{{{placeholder}}}` in the {which} command template")]
    UnknownPlaceholder {
        which: &'static str,
        placeholder: String,
    },
    #[error("{given} ports given for {expected} nodes")]
    PortCount { expected: usize, given: usize },
    #[error("no node named `{0}`")]
    UnknownNode(String),
    #[error("the nodes' network: {0}")]
    Network(String),
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// Whether a node is running, frozen or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    Running,
    Paused,
    Down,
}

/// One node: how to start it and its process when it runs.
#[derive(Debug)]
struct Node {
    program: PathBuf,
    args: Vec<String>,
    log_path: PathBuf,
    /// Its `{data_dir}`.
    data_dir: PathBuf,
    /// The node's own network namespace, when the cluster has a network of its own.
    namespace: Option<netfault::NamespaceFd>,
    process: Option<NodeProcess>,
    paused: bool,
}

/// A started (or startable) cluster. Dropping it kills every node.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    nodes: BTreeMap<String, Node>,
    coordinator_address: String,
    broker_addresses: BTreeMap<i32, String>,
    /// A namespace per node, for network partitions ([`config::Layout::network`]).
    network: Option<Arc<netfault::Network>>,
}

impl Cluster {
    /// The nodes' own network, when they run in network namespaces (for partitions).
    pub fn network(&self) -> Option<&Arc<netfault::Network>> {
        self.network.as_ref()
    }

    /// Hands over the cluster's network (to tear it down once the nodes are stopped).
    pub fn detach_network(&mut self) -> Option<Arc<netfault::Network>> {
        self.network.take()
    }

    /// `host:port` of the coordinator.
    pub fn coordinator_address(&self) -> &str {
        &self.coordinator_address
    }

    /// `host:port` of every broker, by id.
    pub fn broker_addresses(&self) -> Vec<String> {
        self.broker_addresses.values().cloned().collect()
    }

    /// The `bootstrap.servers` list of every broker.
    pub fn bootstrap_servers(&self) -> String {
        self.broker_addresses().join(",")
    }

    /// Every broker id, up or down.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.broker_addresses.keys().copied().collect()
    }

    /// Every node name (the coordinator and the brokers).
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// Where a node's stdout and stderr go.
    pub fn log_path(&self, name: &str) -> Result<PathBuf, ClusterError> {
        Ok(self.node(name)?.log_path.clone())
    }

    /// `name`'s data directory (its `{data_dir}`).
    pub fn data_dir(&self, name: &str) -> Result<PathBuf, ClusterError> {
        Ok(self.node(name)?.data_dir.clone())
    }

    /// The pid of `name`'s process while it has one (running or frozen).
    pub fn pid(&self, name: &str) -> Result<Option<u32>, ClusterError> {
        Ok(self.node(name)?.process.as_ref().map(NodeProcess::pid))
    }

    /// Whether `name` runs, is frozen, or is down. Reaps a node that exited by itself.
    pub fn status(&mut self, name: &str) -> Result<NodeStatus, ClusterError> {
        let node = self.node_mut(name)?;
        let running = match node.process.as_mut() {
            Some(process) => process.is_running()?,
            None => false,
        };
        if !running {
            node.process = None;
            node.paused = false;
            return Ok(NodeStatus::Down);
        }
        Ok(if node.paused {
            NodeStatus::Paused
        } else {
            NodeStatus::Running
        })
    }

    /// Starts the coordinator, then every broker.
    pub fn start_all(&mut self) -> Result<(), ClusterError> {
        for name in self.node_names() {
            self.start(&name)?;
        }
        Ok(())
    }

    /// Starts `name` if it is down; a running node is left alone. Returns whether it started.
    pub fn start(&mut self, name: &str) -> Result<bool, ClusterError> {
        if self.status(name)? != NodeStatus::Down {
            return Ok(false);
        }
        let pid_log = self.dir.join("pids.log");
        let node = self.node_mut(name)?;
        // Plain log files: most loggers leave out colour codes with NO_COLOR set.
        let envs = [("NO_COLOR".to_string(), "1".to_string())];
        let process = NodeProcess::spawn_in(
            name,
            &node.program,
            &node.args,
            &envs,
            &node.log_path,
            node.namespace.as_ref(),
        )?;
        let pid = process.pid();
        node.process = Some(process);
        node.paused = false;
        append_line(&pid_log, &format!("{name} {pid}"))?;
        tracing::debug!("started {name} (pid {pid})");
        Ok(true)
    }

    /// SIGKILL. A node that is down stays down.
    pub fn kill(&mut self, name: &str) -> Result<(), ClusterError> {
        let node = self.node_mut(name)?;
        if let Some(mut process) = node.process.take() {
            process.kill()?;
        }
        node.paused = false;
        Ok(())
    }

    /// SIGSTOP.
    pub fn pause(&mut self, name: &str) -> Result<(), ClusterError> {
        if self.status(name)? == NodeStatus::Down {
            return Ok(());
        }
        let node = self.node_mut(name)?;
        if let Some(process) = node.process.as_mut() {
            process.pause()?;
            node.paused = true;
        }
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self, name: &str) -> Result<(), ClusterError> {
        let node = self.node_mut(name)?;
        if let Some(process) = node.process.as_mut() {
            process.resume()?;
        }
        node.paused = false;
        Ok(())
    }

    /// SIGTERM (resuming a frozen node first), SIGKILL after `grace`. Returns true if it stopped
    /// by itself.
    pub fn stop(&mut self, name: &str, grace: Duration) -> Result<bool, ClusterError> {
        let node = self.node_mut(name)?;
        let clean = match node.process.take() {
            Some(mut process) => process.terminate(grace)?,
            None => true,
        };
        node.paused = false;
        Ok(clean)
    }

    /// Resumes every frozen node and starts every node that is down; returns what it did.
    pub fn heal_all(&mut self) -> Result<Vec<(String, &'static str)>, ClusterError> {
        let mut healed = Vec::new();
        for name in self.node_names() {
            match self.status(&name)? {
                NodeStatus::Running => {}
                NodeStatus::Paused => {
                    self.resume(&name)?;
                    healed.push((name, "resume"));
                }
                NodeStatus::Down => {
                    self.start(&name)?;
                    healed.push((name, "start"));
                }
            }
        }
        Ok(healed)
    }

    /// Stops every broker, then the coordinator (SIGTERM, SIGKILL after `grace`).
    pub fn stop_all(&mut self, grace: Duration) -> Result<(), ClusterError> {
        let mut names = self.node_names();
        // Brokers first: they talk to the coordinator while they shut down.
        names.sort_by_key(|name| name == COORDINATOR);
        for name in names {
            self.stop(&name, grace)?;
        }
        Ok(())
    }

    fn node(&self, name: &str) -> Result<&Node, ClusterError> {
        self.nodes
            .get(name)
            .ok_or_else(|| ClusterError::UnknownNode(name.to_string()))
    }

    fn node_mut(&mut self, name: &str) -> Result<&mut Node, ClusterError> {
        self.nodes
            .get_mut(name)
            .ok_or_else(|| ClusterError::UnknownNode(name.to_string()))
    }
}

fn append_line(path: &Path, line: &str) -> Result<(), ClusterError> {
    let error = |source| ClusterError::File {
        what: "cannot append to",
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(error)?;
    writeln!(file, "{line}").map_err(error)
}

/// The pids in a run directory's `pids.log`, with their node names.
pub fn read_pid_log(dir: &Path) -> std::io::Result<Vec<(String, u32)>> {
    let text = std::fs::read_to_string(dir.join("pids.log"))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (name, pid) = line.split_once(' ')?;
            Some((name.to_string(), pid.trim().parse().ok()?))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::config::{ClusterConfig, CommandTemplates, Layout};
    use super::*;

    /// A cluster of `sleep` processes: the nemesis and the lifecycle without a broker.
    fn sleepers(dir: &Path) -> Cluster {
        let sleeper = ["/bin/sh", "-c", "echo {name} on {port}; exec sleep 60"]
            .map(String::from)
            .to_vec();
        Cluster::prepare(&ClusterConfig {
            dir: dir.to_path_buf(),
            brokers: 3,
            session_timeout_ms: 1000,
            broker_configs: BTreeMap::from([("min.insync.replicas".into(), "2".into())]),
            templates: CommandTemplates {
                coordinator: sleeper.clone(),
                broker: sleeper,
            },
        })
        .expect("prepare")
    }

    #[test]
    fn configs_name_the_broker_its_port_and_the_coordinator() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = sleepers(dir.path());
        let properties = std::fs::read_to_string(dir.path().join("broker-2/server.properties"))
            .expect("server.properties");
        assert!(properties.contains("broker.id=2\n"), "{properties}");
        assert!(
            properties.contains("min.insync.replicas=2\n"),
            "{properties}"
        );
        assert!(
            properties.contains(&format!(
                "zookeeper.connect={}\n",
                cluster.coordinator_address()
            )),
            "{properties}"
        );
        let address = &cluster.broker_addresses()[1];
        assert!(
            properties.contains(&format!("listeners=PLAINTEXT://{address}\n")),
            "{properties}"
        );
        assert_eq!(cluster.broker_ids(), vec![1, 2, 3]);
    }

    #[test]
    fn nodes_start_die_freeze_and_heal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cluster = sleepers(dir.path());
        cluster.start_all().expect("start");
        for name in cluster.node_names() {
            assert_eq!(cluster.status(&name).expect("status"), NodeStatus::Running);
        }
        cluster.kill("broker-1").expect("kill");
        cluster.pause("broker-2").expect("pause");
        cluster
            .stop("coordinator", Duration::from_secs(5))
            .expect("stop");
        assert_eq!(cluster.status("broker-1").expect("s"), NodeStatus::Down);
        assert_eq!(cluster.status("broker-2").expect("s"), NodeStatus::Paused);
        let healed = cluster.heal_all().expect("heal");
        assert_eq!(
            healed,
            vec![
                ("broker-1".to_string(), "start"),
                ("broker-2".to_string(), "resume"),
                ("coordinator".to_string(), "start"),
            ]
        );
        let pids = read_pid_log(dir.path()).expect("pids.log");
        assert_eq!(pids.len(), 6, "{pids:?}");
        crate::wait::wait_for(
            "broker-3 log",
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                std::fs::read_to_string(dir.path().join("broker-3.log"))
                    .ok()
                    .filter(|text| text.contains("broker-3 on"))
            },
        )
        .expect("placeholders were filled");
        cluster.stop_all(Duration::from_secs(5)).expect("stop all");
        for name in cluster.node_names() {
            assert_eq!(cluster.status(&name).expect("status"), NodeStatus::Down);
        }
    }

    #[test]
    fn a_layout_chooses_ports_and_flat_config_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sleeper = vec!["/bin/true".to_string()];
        let config = ClusterConfig {
            dir: dir.path().to_path_buf(),
            brokers: 2,
            session_timeout_ms: 1000,
            broker_configs: BTreeMap::new(),
            templates: CommandTemplates {
                coordinator: sleeper.clone(),
                broker: sleeper,
            },
        };
        let layout = Layout {
            ports: Some(vec![2181, 9092, 9093]),
            flat_broker_configs: true,
            network: None,
        };
        let cluster = Cluster::prepare_with_layout(&config, &layout).expect("prepare");
        assert_eq!(cluster.coordinator_address(), "127.0.0.1:2181");
        assert_eq!(cluster.bootstrap_servers(), "127.0.0.1:9092,127.0.0.1:9093");
        let properties = std::fs::read_to_string(dir.path().join("server-2.properties"))
            .expect("server-2.properties");
        assert!(properties.contains("broker.id=2\n"), "{properties}");
        assert!(
            properties.contains("listeners=PLAINTEXT://127.0.0.1:9093\n"),
            "{properties}"
        );
        let too_few = Layout {
            ports: Some(vec![2181]),
            flat_broker_configs: false,
            network: None,
        };
        let error = Cluster::prepare_with_layout(&config, &too_few).expect_err("too few ports");
        assert!(
            error.to_string().contains("1 ports given for 3 nodes"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_placeholder_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = Cluster::prepare(&ClusterConfig {
            dir: dir.path().to_path_buf(),
            brokers: 1,
            session_timeout_ms: 1000,
            broker_configs: BTreeMap::new(),
            templates: CommandTemplates {
                coordinator: vec!["x".into(), "{nonsense}".into()],
                broker: vec!["x".into()],
            },
        })
        .expect_err("unknown placeholder")
        .to_string();
        assert!(error.contains("{nonsense}"), "{error}");
    }
}
