//! The broker's configuration: Kafka's `server.properties` format, key names and defaults.
//!
//! Parsing is pure (text in, [`BrokerConfig`] out) so it is unit-tested here. An unknown key is
//! a warning (returned in [`ParsedConfig::warnings`], logged by the caller); a bad value is a
//! [`ConfigError`] naming the key and the value.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::group::config::GroupCoordinatorConfig;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid value `{value}` for `{key}`: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("missing required key `{key}`")]
    Missing { key: &'static str },
}

/// One `PLAINTEXT://host:port` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub listener_name: String,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// `PLAINTEXT://host:port`, as Kafka writes it in `/brokers/ids/<id>`.
    pub fn to_uri(&self) -> String {
        format!("{}://{}:{}", self.listener_name, self.host, self.port)
    }
}

/// Every setting the broker honours, with Kafka's defaults.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub broker_id: i32,
    pub listeners: Vec<Endpoint>,
    pub advertised_listeners: Vec<Endpoint>,
    pub log_dirs: Vec<PathBuf>,
    pub zookeeper_connect: String,
    pub zookeeper_session_timeout_ms: u64,
    pub zookeeper_connection_timeout_ms: u64,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub min_insync_replicas: i32,
    pub message_max_bytes: usize,
    pub log_segment_bytes: u64,
    pub log_index_interval_bytes: u64,
    pub log_flush_interval_messages: u64,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub replica_lag_time_max_ms: u64,
    pub replica_fetch_wait_max_ms: u64,
    pub replica_fetch_max_bytes: usize,
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    /// An idempotent producer idle this long is forgotten by the partitions it wrote to.
    pub producer_id_expiration_ms: u64,
    pub producer_id_expiration_check_interval_ms: u64,
    pub unclean_leader_election_enable: bool,
    /// KIP-966's eligible leader replicas (Kafka 4's `eligible.leader.replicas.version=1`; off
    /// by default, as in Kafka 4.0): replicas that left the ISR while it was below
    /// `min.insync.replicas` stay eligible for leadership, the high watermark advances only
    /// while the ISR has `min.insync.replicas` members, and a broker that comes back from an
    /// unclean shutdown is eligible again only once it has caught up (`broker::elr`).
    pub eligible_leader_replicas_enable: bool,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_seconds: u64,
    pub leader_imbalance_per_broker_percentage: u32,
    pub broker_rack: Option<String>,
    pub socket_request_max_bytes: usize,
    /// Connections served at once (Kafka's default, 2147483647, means "as many as the open-file
    /// limit allows"); further clients wait in the accept queue.
    pub max_connections: usize,
    /// A connection that sent nothing and awaits no response for this long is closed.
    pub connections_max_idle_ms: u64,
    /// Bytes of requests larger than a connection's small buffer that may be received at once,
    /// across all connections; `None` is unbounded (Kafka's -1).
    pub queued_max_request_bytes: Option<u64>,
    /// The most partitions one CreateTopics request may ask for in total. Kafka's controller
    /// limit is a constant, [`MAX_PARTITIONS_PER_CREATE_REQUEST`], not a config key, and so is
    /// it here; code may lower it (the fuzz bench does, so that no fuzzed request makes its
    /// broker open thousands of files).
    pub max_partitions_per_create_request: u64,
    /// `group.*` and `offsets.*`: the group coordinator.
    pub group_coordinator: GroupCoordinatorConfig,
    /// `kchaos.planted.bugs`: planted bugs to switch on (`kchaos selftest`; refused by a
    /// default build).
    pub planted_bugs: Option<String>,
}

/// Kafka's `MAX_PARTITIONS_PER_BATCH`: partitions one CreateTopics request may ask for.
pub const MAX_PARTITIONS_PER_CREATE_REQUEST: u64 = 10_000;

/// `queued.max.request.bytes` when unset: Kafka's default is -1 (unbounded); ours bounds the
/// memory hostile or slow clients can pin, yet always fits one `socket.request.max.bytes` frame.
pub const QUEUED_MAX_REQUEST_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;

/// A parsed configuration and the warnings (unknown keys) met on the way.
#[derive(Debug)]
pub struct ParsedConfig {
    pub config: BrokerConfig,
    pub warnings: Vec<String>,
}

/// Keys that Kafka users commonly set and that this broker accepts without acting on them.
const ACCEPTED_AND_IGNORED: &[&str] = &[
    "num.network.threads",
    "num.io.threads",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "num.recovery.threads.per.data.dir",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "log.retention.hours",
    "log.retention.bytes",
    "log.retention.check.interval.ms",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "controlled.shutdown.enable",
    "log.flush.interval.ms",
    "num.replica.fetchers",
    "log.index.size.max.bytes",
    "transactional.id.expiration.ms",
];

impl BrokerConfig {
    /// Reads and parses a `server.properties` file.
    pub fn load(path: &std::path::Path) -> Result<ParsedConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses the text of a `server.properties` file.
    pub fn parse(text: &str) -> Result<ParsedConfig, ConfigError> {
        let properties = parse_properties(text);
        let mut reader = Reader {
            properties,
            used: Vec::new(),
        };
        let listeners = reader.endpoints("listeners", "PLAINTEXT://127.0.0.1:9092")?;
        let advertised_listeners = match reader.raw("advertised.listeners") {
            Some(_) => reader.endpoints("advertised.listeners", "")?,
            None => listeners.clone(),
        };
        let log_dirs = match reader.raw("log.dirs") {
            Some(_) => reader.string("log.dirs", ""),
            None => reader.string("log.dir", "/tmp/kafka-logs"),
        };
        let log_dirs: Vec<PathBuf> = log_dirs
            .split(',')
            .map(str::trim)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .collect();
        if log_dirs.is_empty() {
            return Err(ConfigError::InvalidValue {
                key: "log.dirs".into(),
                value: String::new(),
                reason: "expected at least one directory".into(),
            });
        }
        let zookeeper_session_timeout_ms = reader.number("zookeeper.session.timeout.ms", 18000)?;
        let mut config = BrokerConfig {
            broker_id: reader.number("broker.id", -1)?,
            listeners,
            advertised_listeners,
            log_dirs,
            zookeeper_connect: reader.string("zookeeper.connect", ""),
            zookeeper_session_timeout_ms,
            zookeeper_connection_timeout_ms: reader.number(
                "zookeeper.connection.timeout.ms",
                zookeeper_session_timeout_ms,
            )?,
            num_partitions: reader.positive("num.partitions", 1)?,
            default_replication_factor: reader.positive("default.replication.factor", 1)?,
            min_insync_replicas: reader.positive("min.insync.replicas", 1)?,
            message_max_bytes: reader.positive("message.max.bytes", 1048588)?,
            log_segment_bytes: reader.positive("log.segment.bytes", 1024 * 1024 * 1024)?,
            log_index_interval_bytes: reader.positive("log.index.interval.bytes", 4096)?,
            log_flush_interval_messages: reader
                .positive("log.flush.interval.messages", i64::MAX as u64)?,
            auto_create_topics_enable: reader.boolean("auto.create.topics.enable", true)?,
            delete_topic_enable: reader.boolean("delete.topic.enable", true)?,
            replica_lag_time_max_ms: reader.positive("replica.lag.time.max.ms", 30000)?,
            replica_fetch_wait_max_ms: reader.positive("replica.fetch.wait.max.ms", 500)?,
            replica_fetch_max_bytes: reader.positive("replica.fetch.max.bytes", 1048576)?,
            replica_high_watermark_checkpoint_interval_ms: reader
                .positive("replica.high.watermark.checkpoint.interval.ms", 5000)?,
            producer_id_expiration_ms: reader.positive("producer.id.expiration.ms", 86_400_000)?,
            producer_id_expiration_check_interval_ms: reader
                .positive("producer.id.expiration.check.interval.ms", 600_000)?,
            unclean_leader_election_enable: reader
                .boolean("unclean.leader.election.enable", false)?,
            eligible_leader_replicas_enable: reader
                .boolean("eligible.leader.replicas.enable", false)?,
            auto_leader_rebalance_enable: reader.boolean("auto.leader.rebalance.enable", true)?,
            leader_imbalance_check_interval_seconds: reader
                .positive("leader.imbalance.check.interval.seconds", 300)?,
            leader_imbalance_per_broker_percentage: reader
                .number("leader.imbalance.per.broker.percentage", 10)?,
            broker_rack: reader.optional_string("broker.rack"),
            socket_request_max_bytes: reader.positive("socket.request.max.bytes", 104857600)?,
            planted_bugs: reader.optional_string(crate::planted::BROKER_PROPERTY),
            max_connections: reader.positive("max.connections", i32::MAX as usize)?,
            connections_max_idle_ms: reader.positive("connections.max.idle.ms", 600000)?,
            queued_max_request_bytes: None,
            max_partitions_per_create_request: MAX_PARTITIONS_PER_CREATE_REQUEST,
            group_coordinator: group_coordinator_config(&mut reader)?,
        };
        config.queued_max_request_bytes = match reader.raw("queued.max.request.bytes") {
            None => {
                Some(QUEUED_MAX_REQUEST_BYTES_DEFAULT.max(config.socket_request_max_bytes as u64))
            }
            Some("-1") => None,
            Some(value) => {
                let value = value.to_string();
                match value.parse::<u64>() {
                    Ok(bytes) if bytes >= config.socket_request_max_bytes as u64 => Some(bytes),
                    Ok(_) => {
                        return Err(invalid(
                            "queued.max.request.bytes",
                            &value,
                            "expected -1 or at least socket.request.max.bytes (a largest \
                             request must fit)",
                        ));
                    }
                    Err(_) => {
                        return Err(invalid(
                            "queued.max.request.bytes",
                            &value,
                            "expected -1 or a number of bytes",
                        ));
                    }
                }
            }
        };
        if config.broker_id < 0 {
            return Err(match reader.raw("broker.id") {
                Some(value) => ConfigError::InvalidValue {
                    key: "broker.id".into(),
                    value: value.to_string(),
                    reason: "expected a non-negative integer".into(),
                },
                None => ConfigError::Missing { key: "broker.id" },
            });
        }
        if config.zookeeper_connect.is_empty() {
            return Err(ConfigError::Missing {
                key: "zookeeper.connect",
            });
        }
        let warnings = reader
            .properties
            .keys()
            .filter(|key| {
                !reader.used.contains(key) && !ACCEPTED_AND_IGNORED.contains(&key.as_str())
            })
            .map(|key| format!("unknown config key `{key}` is ignored"))
            .collect();
        Ok(ParsedConfig { config, warnings })
    }

    /// The address to bind: the first listener.
    pub fn listener(&self) -> &Endpoint {
        // `endpoints` never returns an empty list.
        &self.listeners[0]
    }

    /// The address clients are told to use: the first advertised listener.
    pub fn advertised_listener(&self) -> &Endpoint {
        &self.advertised_listeners[0]
    }

    /// The directory partition logs go to (the first of `log.dirs`).
    pub fn log_dir(&self) -> &std::path::Path {
        &self.log_dirs[0]
    }
}

/// The group coordinator's keys, with Kafka's defaults.
fn group_coordinator_config(reader: &mut Reader) -> Result<GroupCoordinatorConfig, ConfigError> {
    let defaults = GroupCoordinatorConfig::default();
    let config = GroupCoordinatorConfig {
        offsets_topic_num_partitions: reader.positive(
            "offsets.topic.num.partitions",
            defaults.offsets_topic_num_partitions,
        )?,
        offsets_topic_replication_factor: reader.positive(
            "offsets.topic.replication.factor",
            defaults.offsets_topic_replication_factor,
        )?,
        offsets_topic_segment_bytes: reader.positive(
            "offsets.topic.segment.bytes",
            defaults.offsets_topic_segment_bytes,
        )?,
        offsets_commit_timeout_ms: reader.positive(
            "offsets.commit.timeout.ms",
            defaults.offsets_commit_timeout_ms,
        )?,
        offsets_retention_minutes: reader.positive(
            "offsets.retention.minutes",
            defaults.offsets_retention_minutes,
        )?,
        offsets_retention_check_interval_ms: reader.positive(
            "offsets.retention.check.interval.ms",
            defaults.offsets_retention_check_interval_ms,
        )?,
        offset_metadata_max_bytes: reader.number(
            "offset.metadata.max.bytes",
            defaults.offset_metadata_max_bytes,
        )?,
        group_min_session_timeout_ms: reader.positive(
            "group.min.session.timeout.ms",
            defaults.group_min_session_timeout_ms,
        )?,
        group_max_session_timeout_ms: reader.positive(
            "group.max.session.timeout.ms",
            defaults.group_max_session_timeout_ms,
        )?,
        group_initial_rebalance_delay_ms: reader.number(
            "group.initial.rebalance.delay.ms",
            defaults.group_initial_rebalance_delay_ms,
        )?,
        group_max_size: reader.positive("group.max.size", defaults.group_max_size)?,
    };
    if config.group_initial_rebalance_delay_ms < 0 {
        return Err(invalid(
            "group.initial.rebalance.delay.ms",
            &config.group_initial_rebalance_delay_ms.to_string(),
            "expected a number >= 0",
        ));
    }
    if config.group_min_session_timeout_ms > config.group_max_session_timeout_ms {
        return Err(invalid(
            "group.min.session.timeout.ms",
            &config.group_min_session_timeout_ms.to_string(),
            "must not exceed group.max.session.timeout.ms",
        ));
    }
    Ok(config)
}

/// `key=value` lines of a Java properties file (also `key: value` and `key value`); `#` and `!`
/// start comments; a trailing backslash continues a line. The last value of a key wins.
fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut properties = BTreeMap::new();
    let mut logical = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if logical.is_empty() && (line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            logical.push_str(continued);
            continue;
        }
        logical.push_str(line);
        let entry = std::mem::take(&mut logical);
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let split_at = entry.find(['=', ':', ' ', '\t']).unwrap_or(entry.len());
        let key = entry[..split_at].trim();
        let rest = entry[split_at..].trim_start();
        let value = rest
            .strip_prefix('=')
            .or_else(|| rest.strip_prefix(':'))
            .unwrap_or(rest)
            .trim();
        properties.insert(key.to_string(), value.to_string());
    }
    properties
}

/// Typed reads of the properties, remembering which keys were used.
struct Reader {
    properties: BTreeMap<String, String>,
    used: Vec<String>,
}

impl Reader {
    fn raw(&mut self, key: &str) -> Option<&str> {
        self.used.push(key.to_string());
        self.properties.get(key).map(String::as_str)
    }

    fn string(&mut self, key: &str, default: &str) -> String {
        self.raw(key).unwrap_or(default).to_string()
    }

    fn optional_string(&mut self, key: &str) -> Option<String> {
        self.raw(key)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    }

    fn number<T: std::str::FromStr>(&mut self, key: &str, default: T) -> Result<T, ConfigError> {
        match self.raw(key) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|_| invalid(key, value, "expected a number")),
        }
    }

    fn positive<T>(&mut self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + Default,
    {
        let value = self.number(key, default)?;
        if value <= T::default() {
            let raw = self.raw(key).unwrap_or_default().to_string();
            return Err(invalid(key, &raw, "expected a positive number"));
        }
        Ok(value)
    }

    fn boolean(&mut self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(key) {
            None => Ok(default),
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(invalid(key, value, "expected true or false")),
            },
        }
    }

    fn endpoints(&mut self, key: &str, default: &str) -> Result<Vec<Endpoint>, ConfigError> {
        let value = self.string(key, default);
        let endpoints = value
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| parse_endpoint(part).map_err(|reason| invalid(key, &value, reason)))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(invalid(key, &value, "expected PLAINTEXT://host:port"));
        }
        Ok(endpoints)
    }
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// `PLAINTEXT://host:port`; an empty host means 127.0.0.1 (we never bind all interfaces unasked).
fn parse_endpoint(text: &str) -> Result<Endpoint, &'static str> {
    let (listener_name, address) = text
        .split_once("://")
        .ok_or("expected LISTENER://host:port")?;
    if listener_name != "PLAINTEXT" {
        return Err("only PLAINTEXT listeners are supported");
    }
    let (host, port) = address
        .rsplit_once(':')
        .ok_or("expected LISTENER://host:port")?;
    let port = port
        .parse::<u16>()
        .map_err(|_| "the port is not a number in 0..65535")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    Ok(Endpoint {
        listener_name: listener_name.to_string(),
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests;
