//! Workload specifications: one TOML file per workload (`workloads/*.toml`), parsed strictly
//! (unknown fields are errors naming the file, line and field) and validated before anything
//! starts. A spec says what cluster to start, which topic to create, which clients to run, which
//! faults to inject, for how long, and what the checker is expected to find.
//!
//! # Layout
//! - this file: the spec types, including the fault vocabulary ([`Fault`], [`Condition`]), and
//!   finding workload files ([`resolve`], [`list`]).
//! - `validate.rs`: reading a spec ([`WorkloadSpec::load`], [`WorkloadSpec::parse`]): strict
//!   TOML, validation, and locating an error's line.
//! - [`target`]: the grammar of fault targets.
//! - `disk.rs`: the settings of disk faults ([`DiskFaultSettings`], [`DiskErrors`]), and which
//!   faults and specs touch disks.

mod disk;
pub mod target;
#[cfg(test)]
mod tests;
mod validate;

pub use disk::{DiskErrors, DiskFaultSettings};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What can be wrong with a workload file.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("cannot read workload file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad workload file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("bad workload file {path}{}: {field}: {message}", line.map(|line| format!(" line {line}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        /// 1-based, when the field could be found in the text.
        line: Option<usize>,
        field: String,
        message: String,
    },
    #[error("unknown workload `{name}`: no file {path} (known: {known})")]
    Unknown {
        name: String,
        path: PathBuf,
        known: String,
    },
    #[error("cannot write workload file {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// A whole workload, as written in its TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// One line for `kchaos list`.
    pub description: String,
    /// How long the fault phase lasts (e.g. "30s").
    #[serde(with = "duration_text")]
    pub duration: Duration,
    /// The seed of every random choice; `--seed` overrides it; a run always saves the one it used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    pub cluster: ClusterSpec,
    pub topic: TopicSpec,
    pub clients: ClientsSpec,
    #[serde(default)]
    pub nemesis: NemesisSpec,
    pub expect: ExpectSpec,
}

/// The cluster to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Number of brokers, with ids 1..=brokers.
    pub brokers: u32,
    /// `zookeeper.session.timeout.ms` of every broker.
    pub session_timeout_ms: u64,
    /// Extra `server.properties` lines for every broker (`"replica.lag.time.max.ms" = "1000"`).
    #[serde(default)]
    pub broker_configs: BTreeMap<String, String>,
}

/// The topic every client uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    /// Topic-level configs (`"min.insync.replicas" = "2"`).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// The producer config keys the harness sets itself (`clients::producer`), which a workload's
/// `producer_config` may not override.
pub const HARNESS_PRODUCER_KEYS: [&str; 14] = [
    "bootstrap.servers",
    "client.id",
    "acks",
    "enable.idempotence",
    "linger.ms",
    "batch.size",
    "delivery.timeout.ms",
    "request.timeout.ms",
    "retries",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "socket.connection.setup.timeout.ms",
];

/// The producers and consumers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientsSpec {
    pub producers: u32,
    pub consumers: u32,
    /// `acks`: "all", "1" or "0".
    #[serde(default = "default_acks")]
    pub acks: String,
    /// Sends per second per producer; 0 means as fast as the in-flight bound allows.
    #[serde(default)]
    pub rate: u32,
    /// Sends one producer may have unacknowledged at a time.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// The producer's `retries`; absent means the library's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default)]
    pub idempotence: bool,
    #[serde(default)]
    pub linger_ms: u64,
    /// The producer's `batch.size` in bytes (a batch holds at least one record, so a small
    /// value makes every record a batch of its own); absent means the library's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// More producer config, passed to every producer worker as is (Kafka's names, or the
    /// library's own: `topic.metadata.refresh.interval.ms`), over the worker's own settings. Keys
    /// the harness sets from the fields above are refused here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub producer_config: BTreeMap<String, String>,
    /// The producer's delivery timeout (`delivery.timeout.ms`, librdkafka's `message.timeout.ms`).
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    /// The producer's `request.timeout.ms`.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Number of distinct keys (`k0`..); keys pick partitions.
    #[serde(default = "default_keys")]
    pub keys: u32,
    /// How long the final read may take before a partition is reported incomplete.
    #[serde(default = "default_final_read_timeout_ms")]
    pub final_read_timeout_ms: u64,
    /// The Kafka client library every client worker uses.
    #[serde(default)]
    pub library: ClientLibrary,
    /// The command of a worker for any other library (docs/client-protocol.md): words separated
    /// by spaces, placeholders `{process}` and `{role}`; it takes the place of `library`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// With this table the consumers are members of one consumer group (`subscribe`, commits,
    /// rebalances); without it each consumer assigns itself every partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupSpec>,
}

/// The client libraries whose workers ship with kchaos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientLibrary {
    /// librdkafka through the `rdkafka` crate: `kchaos client`.
    #[default]
    Rdkafka,
    /// confluent-kafka's Python client (librdkafka underneath): clients/python/kchaos_worker.py.
    ConfluentKafkaPython,
}

impl ClientLibrary {
    pub fn name(self) -> &'static str {
        match self {
            ClientLibrary::Rdkafka => "rdkafka",
            ClientLibrary::ConfluentKafkaPython => "confluent-kafka-python",
        }
    }

    /// Every shipped library, for error messages and `--client-library`.
    pub const ALL: [ClientLibrary; 2] =
        [ClientLibrary::Rdkafka, ClientLibrary::ConfluentKafkaPython];

    /// The library named `name`, if one ships.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|library| library.name() == name)
    }
}

/// Consumers in subscribe mode: members of one consumer group that commit what they read
/// (librdkafka's settings, Kafka's names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// `group.id`.
    #[serde(default = "default_group_id")]
    pub id: String,
    /// `session.timeout.ms`: a member that stops heartbeating is dropped after this long (the
    /// brokers' `group.min.session.timeout.ms` must allow it).
    #[serde(default = "default_group_session_timeout_ms")]
    pub session_timeout_ms: u64,
    /// `heartbeat.interval.ms`.
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// `max.poll.interval.ms`: a member that does not poll this long leaves the group.
    #[serde(default = "default_max_poll_interval_ms")]
    pub max_poll_interval_ms: u64,
    /// After the fault phase, how long the members may take to consume and commit everything
    /// acknowledged before they are stopped.
    #[serde(default = "default_catch_up_timeout_ms")]
    pub catch_up_timeout_ms: u64,
}

fn default_group_id() -> String {
    "kchaos".into()
}
fn default_group_session_timeout_ms() -> u64 {
    45_000
}
fn default_heartbeat_interval_ms() -> u64 {
    3_000
}
fn default_max_poll_interval_ms() -> u64 {
    300_000
}
fn default_catch_up_timeout_ms() -> u64 {
    30_000
}

fn default_acks() -> String {
    "all".into()
}
fn default_max_in_flight() -> u32 {
    64
}
fn default_message_timeout_ms() -> u64 {
    10_000
}
fn default_request_timeout_ms() -> u64 {
    3_000
}
fn default_keys() -> u32 {
    64
}
fn default_final_read_timeout_ms() -> u64 {
    30_000
}

/// Which faults to inject and when.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "kebab-case")]
pub enum NemesisSpec {
    /// No faults.
    #[default]
    None,
    /// Scripted steps: at time T do F to target X (and optionally heal after a while).
    Scripted { steps: Vec<StepSpec> },
    /// Every `interval`, one fault from `faults` at one target from `targets`, healed after
    /// `fault_duration`. A `partition` drawn takes one of `topologies` (default: every topology
    /// the cluster has nodes enough for); `isolate` and `one-way` take the drawn target.
    Random {
        #[serde(with = "duration_text")]
        interval: Duration,
        #[serde(with = "duration_text")]
        fault_duration: Duration,
        faults: Vec<Fault>,
        targets: Vec<String>,
        /// For `slow-disk` among `faults`: how late every fsync takes effect and answers.
        #[serde(
            default,
            with = "optional_duration_text",
            skip_serializing_if = "Option::is_none"
        )]
        fsync_delay: Option<Duration>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        topologies: Vec<Topology>,
    },
}

/// One scripted step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Time since the start of the fault phase.
    #[serde(with = "duration_text")]
    pub at: Duration,
    pub fault: Fault,
    /// `leader`, `followers`, `controller`, `random`, `coordinator`, `majority`, `minority`,
    /// `all-brokers`, a node name (`broker-2`), a broker id (`2`), or `label:NAME`. Absent for
    /// `heal` and for the `halves`, `bridge` and `ring` partitions, which choose their own sides.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// For `partition`: the grudge's shape, resolved when the step runs (default `isolate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<Topology>,
    /// For an `isolate` or `one-way` partition: cut the target off from these nodes only (a
    /// target word, e.g. `coordinator` or `followers`); absent: from every other node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Partition for `leader` / `followers` (default 0, not written out: a step without a
    /// per-partition target, a `halves` partition, would otherwise show `partition = 0`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub partition: i32,
    /// Undo the fault (start what was killed or stopped, resume what was paused) this long after.
    #[serde(
        default,
        with = "optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub heal_after: Option<Duration>,
    /// Remember the nodes this step hit, so that a later step can target `label:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// From `at` on, wait until the step's partition shows this in live metadata, then strike
    /// (a fault aimed at the moment that matters: "right after the ISR shrinks"). The rest of
    /// the timeline (its own heal and the later steps) moves by the time it waited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// Give up waiting for `when` after this long (the step is then recorded as not done);
    /// absent: wait until the end of the fault phase.
    #[serde(
        default,
        with = "optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub within: Option<Duration>,
    /// `lose-unfsynced` and `power-loss`: also keep a sector-aligned prefix of the last write
    /// no fsync made durable (its length drawn from the seed), as a write torn by the crash.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tear: bool,
    /// `disk-error`: which calls fail with EIO (default `reads-and-writes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<DiskErrors>,
    /// `slow-disk`: how late every fsync takes effect and answers (e.g. "1s").
    #[serde(
        default,
        with = "optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub fsync_delay: Option<Duration>,
}

/// What a scripted step can wait for, as any Kafka-protocol cluster's Metadata shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// The partition's ISR is smaller than its replica list.
    IsrShrunk,
    /// The partition's ISR holds every replica.
    IsrFull,
    /// The partition's leader differs from the one it had when the wait began (or it has none).
    LeaderChanged,
}

impl Condition {
    pub fn name(self) -> &'static str {
        match self {
            Condition::IsrShrunk => "isr-shrunk",
            Condition::IsrFull => "isr-full",
            Condition::LeaderChanged => "leader-changed",
        }
    }
}

/// A fault the nemesis can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL: a crash.
    Kill,
    /// SIGSTOP: a freeze (sockets stay open).
    Pause,
    /// SIGCONT.
    Resume,
    /// SIGTERM: a clean stop.
    Stop,
    /// Start a node that is down.
    Start,
    /// SIGTERM, then start again.
    Restart,
    /// SIGKILL, and everything the node never fsync'd is gone from its disk (its page cache
    /// with it): a power loss of one node. Needs a fault filesystem (the harness mounts one
    /// over every node's data directory when a workload has disk faults).
    LoseUnfsynced,
    /// `lose-unfsynced` of every target at the same instant: all are killed before any
    /// loses its un-fsync'd data.
    PowerLoss,
    /// ENOSPC on writes and creates until healed.
    DiskFull,
    /// EIO on reads, writes or both until healed.
    DiskError,
    /// fsync delayed (taking effect late) until healed.
    SlowDisk,
    /// Closes the node's disk-full, disk-error and slow-disk windows.
    HealDisk,
    /// A network partition (a grudge of the step's [`Topology`]): nodes drop each other's
    /// packets. Needs root; the nodes then run in network namespaces of their own.
    Partition,
    /// Heal the network: every node hears every node again.
    Heal,
}

/// The shape of a network partition, in Jepsen's words. Which nodes end up on which side is
/// decided when the fault happens (targets from live metadata, random sides from the seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// The target and the others (or the step's `from`) cannot hear each other.
    Isolate,
    /// The target hears nothing from the others (or from `from`), which still hear it.
    OneWay,
    /// A random minority and majority of every node, cut apart.
    Halves,
    /// Random halves, but one node of the majority keeps hearing and being heard by both.
    Bridge,
    /// Majorities ring: every node hears a majority, no two the same one (4 nodes or more).
    Ring,
}

impl Topology {
    /// Every topology, in the order a random schedule lists them.
    pub const ALL: [Topology; 5] = [
        Topology::Isolate,
        Topology::OneWay,
        Topology::Halves,
        Topology::Bridge,
        Topology::Ring,
    ];

    /// The name in workload files and the history.
    pub fn name(self) -> &'static str {
        match self {
            Topology::Isolate => "isolate",
            Topology::OneWay => "one-way",
            Topology::Halves => "halves",
            Topology::Bridge => "bridge",
            Topology::Ring => "ring",
        }
    }

    /// Whether the topology cuts a target off (`isolate`, `one-way`), rather than choosing
    /// its sides itself.
    pub fn takes_target(self) -> bool {
        matches!(self, Topology::Isolate | Topology::OneWay)
    }

    /// The fewest nodes (the coordinator included) it can be built on.
    pub fn nodes_needed(self) -> usize {
        match self {
            Topology::Isolate | Topology::OneWay | Topology::Halves => 2,
            Topology::Bridge => 3,
            Topology::Ring => 4,
        }
    }
}

impl Fault {
    /// The name written in the history's `f`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Resume => "resume",
            Fault::Stop => "stop",
            Fault::Start => "start",
            Fault::Restart => "restart",
            Fault::LoseUnfsynced => "lose-unfsynced",
            Fault::PowerLoss => "power-loss",
            Fault::DiskFull => "disk-full",
            Fault::DiskError => "disk-error",
            Fault::SlowDisk => "slow-disk",
            Fault::HealDisk => "heal-disk",
            Fault::Partition => "partition",
            Fault::Heal => "heal",
        }
    }

    /// The fault that undoes this one, if any.
    pub fn heal(self) -> Option<Fault> {
        match self {
            Fault::Kill | Fault::Stop | Fault::LoseUnfsynced | Fault::PowerLoss => {
                Some(Fault::Start)
            }
            Fault::Pause => Some(Fault::Resume),
            Fault::DiskFull | Fault::DiskError | Fault::SlowDisk => Some(Fault::HealDisk),
            Fault::Partition => Some(Fault::Heal),
            Fault::Resume | Fault::Start | Fault::Restart | Fault::HealDisk | Fault::Heal => None,
        }
    }

    /// Whether it is a network fault (the nodes then need namespaces of their own).
    pub fn is_network(self) -> bool {
        matches!(self, Fault::Partition | Fault::Heal)
    }
}

/// What the checker should find for the run to count as passing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    pub lost: LostExpectation,
    #[serde(default = "default_duplicates")]
    pub duplicates: Strictness,
    #[serde(default = "default_order")]
    pub order: Strictness,
    /// The longest a partition may acknowledge no send while sends to it are made (the
    /// `unavailable` anomaly), e.g. "10s"; absent: availability is not judged.
    #[serde(
        default,
        with = "optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub unavailable_max: Option<Duration>,
}

fn default_duplicates() -> Strictness {
    Strictness::Allowed
}
fn default_order() -> Strictness {
    Strictness::Allowed
}

/// `lost = "none"` (any loss is invalid) or `"some"` (the run passes only if loss is found).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LostExpectation {
    None,
    Some,
}

/// For duplicates: "none" or "allowed"; for order: "strict" or "allowed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strictness {
    None,
    Strict,
    Allowed,
}

impl WorkloadSpec {
    /// Whether any of its faults is a network fault: then every node runs in a network
    /// namespace of its own (which needs root); otherwise nodes share the host's loopback.
    pub fn needs_network(&self) -> bool {
        match &self.nemesis {
            NemesisSpec::None => false,
            NemesisSpec::Scripted { steps } => steps.iter().any(|step| step.fault.is_network()),
            NemesisSpec::Random { faults, .. } => faults.iter().any(|fault| fault.is_network()),
        }
    }

    /// The number of nodes: the coordinator and the brokers.
    pub fn node_count(&self) -> usize {
        self.cluster.brokers as usize + 1
    }

    /// The TOML text of this spec (what a run saves as `workload.toml`).
    pub fn to_toml(&self) -> Result<String, WorkloadError> {
        toml::to_string(self).map_err(|error| WorkloadError::Write {
            path: PathBuf::from("workload.toml"),
            message: error.to_string(),
        })
    }
}

/// Where a workload named on the command line lives: a path to a `.toml` file as is, or a name
/// looked up as `<dir>/<name>.toml`.
pub fn resolve(name_or_path: &str, dir: &Path) -> Result<PathBuf, WorkloadError> {
    let as_path = Path::new(name_or_path);
    if name_or_path.ends_with(".toml") || name_or_path.contains('/') {
        return Ok(as_path.to_path_buf());
    }
    let path = dir.join(format!("{name_or_path}.toml"));
    if path.is_file() {
        return Ok(path);
    }
    let known = list(dir)
        .map(|entries| {
            entries
                .into_iter()
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    Err(WorkloadError::Unknown {
        name: name_or_path.to_string(),
        path,
        known,
    })
}

/// A workload's name with its parsed spec or the error that stops it.
pub type ListedWorkload = (String, Result<WorkloadSpec, WorkloadError>);

/// The workloads in `dir`, by name, with their parsed spec or the error that stops them.
pub fn list(dir: &Path) -> Result<Vec<ListedWorkload>, WorkloadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| WorkloadError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut workloads: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .filter_map(|path| {
            let name = path.file_stem()?.to_str()?.to_string();
            Some((name, WorkloadSpec::load(&path)))
        })
        .collect();
    workloads.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(workloads)
}

/// Durations as human text in TOML ("30s", "1500ms").
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*duration).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|error| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration like \"30s\" or \"500ms\": {error}"
            ))
        })
    }
}

/// An optional [`duration_text`].
mod optional_duration_text {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => super::duration_text::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::duration_text::deserialize(deserializer).map(Some)
    }
}

/// Whether a step's partition is the default one (serde's `skip_serializing_if`).
fn is_zero(partition: &i32) -> bool {
    *partition == 0
}
