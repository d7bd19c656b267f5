//! Rendering a cluster before anything starts: choosing ports, writing each node's config (a
//! Kafka `server.properties` per broker, a ZooKeeper `zoo.cfg` for the coordinator), creating
//! its data directory, and filling the command templates' placeholders (`{port}`,
//! `{data_dir}`, `{config}`, `{id}`, `{name}`, `{coordinator}`) into each node's command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ports::free_loopback_ports;
use super::{COORDINATOR, Cluster, ClusterError, Node, broker_name};

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
            data_dir: values.data_dir.to_path_buf(),
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
