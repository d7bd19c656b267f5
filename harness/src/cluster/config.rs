//! Rendering a cluster before anything starts: choosing addresses and ports, writing each
//! node's config (a Kafka `server.properties` per broker, a ZooKeeper `zoo.cfg` for the
//! coordinator), creating its data directory, and filling the command templates' placeholders
//! (`{host}`, `{port}`, `{data_dir}`, `{config}`, `{id}`, `{name}`, `{coordinator}`) into each
//! node's command line.
//!
//! Without a network of its own, every node listens on 127.0.0.1 on a free port. With one (a
//! [`Layout::network`]: a namespace per node, for network partitions), each node listens on
//! its namespace's address at the usual port (the coordinator at 2181, every broker at 9092),
//! is started inside its namespace, and is reached there from the root namespace.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use netfault::{NamespaceFd, Network};

use super::ports::free_loopback_ports;
use super::{COORDINATOR, Cluster, ClusterError, Node, broker_name};

/// The coordinator's port inside its own network namespace (ZooKeeper's default).
pub const NAMESPACE_COORDINATOR_PORT: u16 = 2181;
/// Every broker's port inside its own network namespace (Kafka's default).
pub const NAMESPACE_BROKER_PORT: u16 = 9092;

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
    /// A network namespace per node (its nodes named `coordinator`, `broker-1`, ...): each node
    /// listens on its namespace's address and is started inside it.
    pub network: Option<Arc<Network>>,
}

/// Where one node listens and which network namespace it runs in.
struct Placement {
    host: IpAddr,
    port: u16,
    namespace: Option<NamespaceFd>,
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
        let mut placements = placements(config, layout)?.into_iter();
        let coordinator_placement = placements.next().ok_or(ClusterError::PortCount {
            expected: 1,
            given: 0,
        })?;
        let coordinator_port = coordinator_placement.port;
        let coordinator_address = socket_address(coordinator_placement.host, coordinator_port);
        let mut nodes = BTreeMap::new();

        let coordinator_dir = config.dir.join(COORDINATOR);
        let coordinator_data = coordinator_dir.join("data");
        create_dir(&coordinator_data)?;
        let coordinator_config = coordinator_dir.join("zoo.cfg");
        write_file(
            &coordinator_config,
            &zoo_cfg(
                coordinator_placement.host,
                coordinator_port,
                &coordinator_data,
            ),
        )?;
        let coordinator_host = coordinator_placement.host.to_string();
        let values = Placeholders {
            host: &coordinator_host,
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
                coordinator_placement.namespace,
            )?,
        );

        let mut broker_addresses = BTreeMap::new();
        for (index, placement) in placements.enumerate() {
            let port = &placement.port;
            let host = placement.host.to_string();
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
            let listener = socket_address(placement.host, *port);
            write_file(
                &config_path,
                &server_properties(id, &listener, &data_dir, &coordinator_address, config),
            )?;
            let values = Placeholders {
                host: &host,
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
                    placement.namespace,
                )?,
            );
            broker_addresses.insert(id, listener);
        }
        Ok(Cluster {
            dir: config.dir.clone(),
            nodes,
            coordinator_address,
            broker_addresses,
            network: layout.network.clone(),
        })
    }
}

/// Each node's address, port and namespace: the coordinator's, then every broker's.
fn placements(config: &ClusterConfig, layout: &Layout) -> Result<Vec<Placement>, ClusterError> {
    let expected = config.brokers as usize + 1;
    let names: Vec<String> = std::iter::once(COORDINATOR.to_string())
        .chain((1..=config.brokers as i32).map(broker_name))
        .collect();
    let ports = match &layout.ports {
        Some(ports) if ports.len() != expected => {
            return Err(ClusterError::PortCount {
                expected,
                given: ports.len(),
            });
        }
        Some(ports) => ports.clone(),
        None if layout.network.is_some() => std::iter::once(NAMESPACE_COORDINATOR_PORT)
            .chain(std::iter::repeat_n(
                NAMESPACE_BROKER_PORT,
                config.brokers as usize,
            ))
            .collect(),
        None => free_loopback_ports(expected).map_err(ClusterError::Ports)?,
    };
    names
        .iter()
        .zip(ports)
        .map(|(name, port)| match &layout.network {
            Some(network) => {
                let node = network
                    .node(name)
                    .map_err(|error| ClusterError::Network(error.to_string()))?;
                Ok(Placement {
                    host: IpAddr::V4(node.address()),
                    port,
                    namespace: Some(node.namespace().clone()),
                })
            }
            None => Ok(Placement {
                host: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port,
                namespace: None,
            }),
        })
        .collect()
}

fn socket_address(host: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(host, port).to_string()
}

/// The values a template's placeholders stand for, for one node.
struct Placeholders<'a> {
    host: &'a str,
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
        namespace: Option<NamespaceFd>,
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
            data_dir: values.data_dir.to_path_buf(),
            namespace,
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
            "host" => values.host.to_string(),
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
    listener: &str,
    data_dir: &Path,
    coordinator: &str,
    config: &ClusterConfig,
) -> String {
    let mut properties = BTreeMap::from([
        ("broker.id".to_string(), id.to_string()),
        ("listeners".to_string(), format!("PLAINTEXT://{listener}")),
        (
            "advertised.listeners".to_string(),
            format!("PLAINTEXT://{listener}"),
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
fn zoo_cfg(host: IpAddr, port: u16, data_dir: &Path) -> String {
    format!(
        "# written by the kchaos harness\n\
         tickTime=100\n\
         dataDir={}\n\
         clientPort={port}\n\
         clientPortAddress={host}\n\
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
