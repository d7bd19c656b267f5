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
//!
//! # Layout
//! - this file: [`Cluster`], the nodes' lifecycle (start, kill, pause, resume, stop, heal).
//! - [`process`]: one child process that can never outlive us (process group, PDEATHSIG).
//! - [`ports`]: free loopback ports.
//! - [`metadata`]: live brokers, controller, leaders and ISRs, from a raw Metadata request.
//! - [`topic`]: creating the workload's topic through the admin API.

pub mod metadata;
pub mod ports;
pub mod process;
pub mod topic;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use self::ports::free_loopback_ports;
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
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// The command lines that start a coordinator and a broker, with placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplates {
    /// e.g. `[exe, "coordinator", "--port", "{port}", "--data-dir", "{data_dir}"]`.
    pub coordinator: Vec<String>,
    /// e.g. `[exe, "broker", "--config", "{config}"]`.
    pub broker: Vec<String>,
}

impl CommandTemplates {
    /// Apache ZooKeeper from Debian's `zookeeper` package as the coordinator.
    pub fn apache_zookeeper_coordinator() -> Vec<String> {
        [
            "java",
            "-Xmx256m",
            "-cp",
            "/usr/share/java/*:/etc/zookeeper/conf",
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            "{config}",
        ]
        .map(String::from)
        .to_vec()
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The run directory: node directories, configs, logs and `pids.log` go here.
    pub dir: PathBuf,
    pub brokers: u32,
    /// `zookeeper.session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// Extra `server.properties` lines for every broker.
    pub broker_configs: BTreeMap<String, String>,
    pub templates: CommandTemplates,
}

/// Where the nodes listen and where broker configs are written, when the caller chooses (as
/// `kchaos cluster up` does); the default is free loopback ports and
/// `DIR/broker-N/server.properties`.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The coordinator's port, then one port per broker.
    pub ports: Option<Vec<u16>>,
    /// Broker N's config at `DIR/server-N.properties`, as in the lab (docs/lab.md).
    pub flat_broker_configs: bool,
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
}

impl Cluster {
    /// Chooses ports, writes every node's config file and creates its data directory. Starts
    /// nothing.
    pub fn prepare(config: &ClusterConfig) -> Result<Self, ClusterError> {
        Self::prepare_with_layout(config, &Layout::default())
    }

    /// [`Cluster::prepare`] with the ports and config file names of `layout`.
    pub fn prepare_with_layout(
        config: &ClusterConfig,
        layout: &Layout,
    ) -> Result<Self, ClusterError> {
        create_dir(&config.dir)?;
        let expected = config.brokers as usize + 1;
        let ports = match &layout.ports {
            Some(ports) if ports.len() != expected => {
                return Err(ClusterError::PortCount {
                    expected,
                    given: ports.len(),
                });
            }
            Some(ports) => ports.clone(),
            None => free_loopback_ports(expected).map_err(ClusterError::Ports)?,
        };
        let coordinator_port = ports[0];
        let coordinator_address = format!("127.0.0.1:{coordinator_port}");
        let mut nodes = BTreeMap::new();

        let coordinator_dir = config.dir.join(COORDINATOR);
        let coordinator_data = coordinator_dir.join("data");
        create_dir(&coordinator_data)?;
        let coordinator_config = coordinator_dir.join("zoo.cfg");
        write_file(
            &coordinator_config,
            &zoo_cfg(coordinator_port, &coordinator_data),
        )?;
        let values = Placeholders {
            port: coordinator_port,
            data_dir: &coordinator_data,
            config: &coordinator_config,
            id: 0,
            name: COORDINATOR,
            coordinator: &coordinator_address,
        };
        nodes.insert(
            COORDINATOR.to_string(),
            Node::from_template(
                "coordinator",
                &config.templates.coordinator,
                &values,
                config.dir.join("coordinator.log"),
            )?,
        );

        let mut broker_addresses = BTreeMap::new();
        for (index, port) in ports[1..].iter().enumerate() {
            let id = index as i32 + 1;
            let name = broker_name(id);
            let broker_dir = config.dir.join(&name);
            let data_dir = broker_dir.join("data");
            create_dir(&data_dir)?;
            let config_path = if layout.flat_broker_configs {
                config.dir.join(format!("server-{id}.properties"))
            } else {
                broker_dir.join("server.properties")
            };
            write_file(
                &config_path,
                &server_properties(id, *port, &data_dir, &coordinator_address, config),
            )?;
            let values = Placeholders {
                port: *port,
                data_dir: &data_dir,
                config: &config_path,
                id,
                name: &name,
                coordinator: &coordinator_address,
            };
            nodes.insert(
                name.clone(),
                Node::from_template(
                    "broker",
                    &config.templates.broker,
                    &values,
                    config.dir.join(format!("{name}.log")),
                )?,
            );
            broker_addresses.insert(id, format!("127.0.0.1:{port}"));
        }
        Ok(Cluster {
            dir: config.dir.clone(),
            nodes,
            coordinator_address,
            broker_addresses,
        })
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
        let process = NodeProcess::spawn(name, &node.program, &node.args, &envs, &node.log_path)?;
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

/// The values a template's placeholders stand for, for one node.
struct Placeholders<'a> {
    port: u16,
    data_dir: &'a Path,
    config: &'a Path,
    id: i32,
    name: &'a str,
    coordinator: &'a str,
}

impl Node {
    fn from_template(
        which: &'static str,
        template: &[String],
        values: &Placeholders<'_>,
        log_path: PathBuf,
    ) -> Result<Self, ClusterError> {
        let mut words = template
            .iter()
            .map(|word| fill(which, word, values))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter();
        let program = words.next().ok_or(ClusterError::EmptyTemplate { which })?;
        Ok(Node {
            program: PathBuf::from(program),
            args: words.collect(),
            log_path,
            process: None,
            paused: false,
        })
    }
}

/// Replaces every `{placeholder}` in `word`.
fn fill(
    which: &'static str,
    word: &str,
    values: &Placeholders<'_>,
) -> Result<String, ClusterError> {
    let mut filled = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(open) = rest.find('{') {
        filled.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            filled.push_str(&rest[open..]);
            return Ok(filled);
        };
        let placeholder = &after[..close];
        let value = match placeholder {
            "port" => values.port.to_string(),
            "data_dir" => values.data_dir.display().to_string(),
            "config" => values.config.display().to_string(),
            "id" => values.id.to_string(),
            "name" => values.name.to_string(),
            "coordinator" => values.coordinator.to_string(),
            other => {
                return Err(ClusterError::UnknownPlaceholder {
                    which,
                    placeholder: other.to_string(),
                });
            }
        };
        filled.push_str(&value);
        rest = &after[close + 1..];
    }
    filled.push_str(rest);
    Ok(filled)
}

/// A Kafka `server.properties` for broker `id`.
fn server_properties(
    id: i32,
    port: u16,
    data_dir: &Path,
    coordinator: &str,
    config: &ClusterConfig,
) -> String {
    let mut properties = BTreeMap::from([
        ("broker.id".to_string(), id.to_string()),
        (
            "listeners".to_string(),
            format!("PLAINTEXT://127.0.0.1:{port}"),
        ),
        (
            "advertised.listeners".to_string(),
            format!("PLAINTEXT://127.0.0.1:{port}"),
        ),
        ("log.dirs".to_string(), data_dir.display().to_string()),
        ("zookeeper.connect".to_string(), coordinator.to_string()),
        (
            "zookeeper.session.timeout.ms".to_string(),
            config.session_timeout_ms.to_string(),
        ),
    ]);
    for (key, value) in &config.broker_configs {
        properties.insert(key.clone(), value.clone());
    }
    let mut text = format!("# broker {id}, written by the kchaos harness\n");
    for (key, value) in properties {
        text.push_str(&format!("{key}={value}\n"));
    }
    text
}

/// A ZooKeeper `zoo.cfg` for a standalone server with short ticks.
fn zoo_cfg(port: u16, data_dir: &Path) -> String {
    format!(
        "# written by the kchaos harness\n\
         tickTime=100\n\
         dataDir={}\n\
         clientPort={port}\n\
         clientPortAddress=127.0.0.1\n\
         maxSessionTimeout=60000\n\
         admin.enableServer=false\n\
         4lw.commands.whitelist=*\n",
        data_dir.display()
    )
}

fn create_dir(path: &Path) -> Result<(), ClusterError> {
    std::fs::create_dir_all(path).map_err(|source| ClusterError::File {
        what: "cannot create directory",
        path: path.to_path_buf(),
        source,
    })
}

fn write_file(path: &Path, text: &str) -> Result<(), ClusterError> {
    std::fs::write(path, text).map_err(|source| ClusterError::File {
        what: "cannot write",
        path: path.to_path_buf(),
        source,
    })
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
