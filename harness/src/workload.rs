//! Workload specifications: one TOML file per workload (`workloads/*.toml`), parsed strictly
//! (unknown fields are errors naming the file, line and field) and validated before anything
//! starts. A spec says what cluster to start, which topic to create, which clients to run, which
//! faults to inject, for how long, and what the checker is expected to find.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::target::Target;

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
    /// librdkafka `retries`; absent means librdkafka's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default)]
    pub idempotence: bool,
    #[serde(default)]
    pub linger_ms: u64,
    /// librdkafka `message.timeout.ms` (delivery timeout).
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    /// librdkafka `request.timeout.ms`.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Number of distinct keys (`k0`..); keys pick partitions.
    #[serde(default = "default_keys")]
    pub keys: u32,
    /// How long the final read may take before a partition is reported incomplete.
    #[serde(default = "default_final_read_timeout_ms")]
    pub final_read_timeout_ms: u64,
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
    /// `fault_duration`.
    Random {
        #[serde(with = "duration_text")]
        interval: Duration,
        #[serde(with = "duration_text")]
        fault_duration: Duration,
        faults: Vec<Fault>,
        targets: Vec<String>,
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
    /// `all-brokers`, a node name (`broker-2`), a broker id (`2`), or `label:NAME`.
    pub target: String,
    /// Partition for `leader` / `followers` (default 0).
    #[serde(default)]
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
        }
    }

    /// The fault that undoes this one, if any.
    pub fn heal(self) -> Option<Fault> {
        match self {
            Fault::Kill | Fault::Stop => Some(Fault::Start),
            Fault::Pause => Some(Fault::Resume),
            Fault::Resume | Fault::Start | Fault::Restart => None,
        }
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
    /// Parses and validates `text`, naming `path` in every error.
    pub fn parse(text: &str, path: &Path) -> Result<Self, WorkloadError> {
        let spec: WorkloadSpec = toml::from_str(text).map_err(|error| WorkloadError::Parse {
            path: path.to_path_buf(),
            message: error.to_string().trim_end().to_string(),
        })?;
        spec.validate(path).map_err(|error| match error {
            WorkloadError::Invalid {
                path,
                line: None,
                field,
                message,
            } => WorkloadError::Invalid {
                path,
                line: locate(text, &field),
                field,
                message,
            },
            other => other,
        })?;
        Ok(spec)
    }

    /// Reads, parses and validates a workload file.
    pub fn load(path: &Path) -> Result<Self, WorkloadError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorkloadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The TOML text of this spec (what a run saves as `workload.toml`).
    pub fn to_toml(&self) -> Result<String, WorkloadError> {
        toml::to_string(self).map_err(|error| WorkloadError::Write {
            path: PathBuf::from("workload.toml"),
            message: error.to_string(),
        })
    }

    /// Checks what TOML's types cannot: sizes, names and references.
    pub fn validate(&self, path: &Path) -> Result<(), WorkloadError> {
        let invalid = |field: &str, message: String| WorkloadError::Invalid {
            path: path.to_path_buf(),
            line: None,
            field: field.to_string(),
            message,
        };
        if self.duration.is_zero() {
            return Err(invalid("duration", "must be more than 0".into()));
        }
        if self.cluster.brokers == 0 || self.cluster.brokers > 9 {
            return Err(invalid(
                "cluster.brokers",
                format!("{} is not between 1 and 9", self.cluster.brokers),
            ));
        }
        if self.topic.partitions == 0 || self.topic.partitions > 1000 {
            return Err(invalid(
                "topic.partitions",
                format!("{} is not between 1 and 1000", self.topic.partitions),
            ));
        }
        if self.topic.replication_factor == 0
            || self.topic.replication_factor > self.cluster.brokers
        {
            return Err(invalid(
                "topic.replication_factor",
                format!(
                    "{} must be between 1 and the number of brokers ({})",
                    self.topic.replication_factor, self.cluster.brokers
                ),
            ));
        }
        if self.topic.name.is_empty()
            || !self
                .topic
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(invalid(
                "topic.name",
                format!("`{}` is not a valid topic name", self.topic.name),
            ));
        }
        if !["all", "-1", "0", "1"].contains(&self.clients.acks.as_str()) {
            return Err(invalid(
                "clients.acks",
                format!("`{}` is not one of all, -1, 0, 1", self.clients.acks),
            ));
        }
        if self.clients.max_in_flight == 0 || self.clients.max_in_flight > 100_000 {
            return Err(invalid(
                "clients.max_in_flight",
                "must be between 1 and 100000".into(),
            ));
        }
        if self.clients.keys == 0 {
            return Err(invalid("clients.keys", "must be at least 1".into()));
        }
        if self.clients.producers + self.clients.consumers > 1000 {
            return Err(invalid(
                "clients",
                "at most 1000 producers and consumers".into(),
            ));
        }
        if self.expect.duplicates == Strictness::Strict {
            return Err(invalid(
                "expect.duplicates",
                "must be \"none\" or \"allowed\"".into(),
            ));
        }
        if self.expect.order == Strictness::None {
            return Err(invalid(
                "expect.order",
                "must be \"strict\" or \"allowed\"".into(),
            ));
        }
        self.validate_nemesis(path)
    }

    fn validate_nemesis(&self, path: &Path) -> Result<(), WorkloadError> {
        let invalid = |field: String, message: String| WorkloadError::Invalid {
            path: path.to_path_buf(),
            line: None,
            field,
            message,
        };
        let brokers = self.cluster.brokers;
        match &self.nemesis {
            NemesisSpec::None => Ok(()),
            NemesisSpec::Scripted { steps } => {
                let mut labels: Vec<&str> = Vec::new();
                for (index, step) in steps.iter().enumerate() {
                    let field = |name: &str| format!("nemesis.steps[{index}].{name}");
                    let target = Target::parse(&step.target)
                        .map_err(|message| invalid(field("target"), message))?;
                    target
                        .check_against(brokers)
                        .map_err(|message| invalid(field("target"), message))?;
                    if let Some(label) = target.label()
                        && !labels.contains(&label)
                    {
                        return Err(invalid(
                            field("target"),
                            format!("no earlier step has label `{label}`"),
                        ));
                    }
                    if step.partition < 0 || step.partition as u32 >= self.topic.partitions {
                        return Err(invalid(
                            field("partition"),
                            format!(
                                "{} is not a partition of the topic (0..{})",
                                step.partition, self.topic.partitions
                            ),
                        ));
                    }
                    if step.within.is_some() && step.when.is_none() {
                        return Err(invalid(
                            field("within"),
                            "only bounds the wait of a step with `when`".into(),
                        ));
                    }
                    if step.heal_after.is_some() && step.fault.heal().is_none() {
                        return Err(invalid(
                            field("heal_after"),
                            format!("`{}` has nothing to heal", step.fault.name()),
                        ));
                    }
                    if let Some(label) = &step.label {
                        labels.push(label);
                    }
                }
                Ok(())
            }
            NemesisSpec::Random {
                interval,
                fault_duration,
                faults,
                targets,
            } => {
                if interval.is_zero() || fault_duration >= interval {
                    return Err(invalid(
                        "nemesis.fault_duration".into(),
                        "must be shorter than nemesis.interval, which must be more than 0".into(),
                    ));
                }
                if faults.is_empty() {
                    return Err(invalid("nemesis.faults".into(), "is empty".into()));
                }
                if let Some(fault) = faults.iter().find(|fault| fault.heal().is_none()) {
                    return Err(invalid(
                        "nemesis.faults".into(),
                        format!(
                            "`{}` is not a fault (use kill, pause or stop)",
                            fault.name()
                        ),
                    ));
                }
                if targets.is_empty() {
                    return Err(invalid("nemesis.targets".into(), "is empty".into()));
                }
                for (index, text) in targets.iter().enumerate() {
                    let target = Target::parse(text)
                        .map_err(|message| invalid(format!("nemesis.targets[{index}]"), message))?;
                    if target.label().is_some() {
                        return Err(invalid(
                            format!("nemesis.targets[{index}]"),
                            "labels are for scripted steps".into(),
                        ));
                    }
                    target
                        .check_against(brokers)
                        .map_err(|message| invalid(format!("nemesis.targets[{index}]"), message))?;
                }
                Ok(())
            }
        }
    }
}

/// The 1-based line of `field` (`topic.replication_factor`, `nemesis.steps[1].target`) in a
/// workload's text: the line of its key after its table's header (for `steps[N].key`, the N-th
/// such line), else the header's line. A best effort, for error messages.
fn locate(text: &str, field: &str) -> Option<usize> {
    let parts: Vec<&str> = field.split('.').collect();
    let table = parts.first()?;
    let (key, _) = split_index(parts.last()?);
    let nth = if parts.len() >= 3 {
        split_index(parts[1]).1.unwrap_or(0)
    } else {
        0
    };
    let header_line = format!("[{table}]");
    let header = text.lines().position(|line| line.trim() == header_line);
    let start = header.unwrap_or(0);
    text.lines()
        .enumerate()
        .skip(start)
        .filter(|(_, line)| has_key(line, key))
        .nth(nth)
        .map(|(number, _)| number)
        .or(header)
        .map(|number| number + 1)
}

/// `steps[2]` -> (`steps`, Some(2)); `target` -> (`target`, None).
fn split_index(part: &str) -> (&str, Option<usize>) {
    match part.split_once('[') {
        Some((name, rest)) => (name, rest.strip_suffix(']').and_then(|n| n.parse().ok())),
        None => (part, None),
    }
}

/// Whether `line` assigns `key` (`key = ...`, also inside an inline table).
fn has_key(line: &str, key: &str) -> bool {
    line.match_indices(key).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + key.len()..].trim_start();
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && after.starts_with('=')
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
description = "kill the leader"
duration = "20s"

[cluster]
brokers = 3
session_timeout_ms = 1500
broker_configs = { "replica.lag.time.max.ms" = "1000" }

[topic]
name = "t"
partitions = 3
replication_factor = 3
configs = { "min.insync.replicas" = "2" }

[clients]
producers = 2
consumers = 1
rate = 100

[nemesis]
kind = "scripted"
steps = [
  { at = "3s", fault = "kill", target = "leader", partition = 1, heal_after = "2s", label = "old" },
  { at = "9s", fault = "pause", target = "label:old" },
]

[expect]
lost = "none"
"#;

    #[test]
    fn a_good_file_parses_with_defaults() {
        let spec = WorkloadSpec::parse(GOOD, Path::new("good.toml")).expect("parses");
        assert_eq!(spec.duration, Duration::from_secs(20));
        assert_eq!(spec.clients.acks, "all");
        assert_eq!(spec.expect.duplicates, Strictness::Allowed);
        let NemesisSpec::Scripted { steps } = &spec.nemesis else {
            panic!("scripted: {:?}", spec.nemesis)
        };
        assert_eq!(steps[0].heal_after, Some(Duration::from_secs(2)));
        assert_eq!(steps[1].target, "label:old");
    }

    #[test]
    fn a_spec_survives_a_round_trip_through_toml() {
        let spec = WorkloadSpec::parse(GOOD, Path::new("good.toml")).expect("parses");
        let text = spec.to_toml().expect("serialises");
        let again = WorkloadSpec::parse(&text, Path::new("again.toml")).expect("re-parses");
        assert_eq!(spec, again);
    }

    #[test]
    fn an_unknown_field_names_the_file_the_line_and_the_field() {
        let bad = GOOD.replace("rate = 100", "rate = 100\nspeed = 3");
        let error = WorkloadSpec::parse(&bad, Path::new("workloads/bad.toml"))
            .expect_err("unknown field")
            .to_string();
        assert!(error.contains("workloads/bad.toml"), "{error}");
        assert!(error.contains("speed"), "{error}");
        let line = bad
            .lines()
            .position(|line| line.starts_with("speed"))
            .expect("line")
            + 1;
        assert!(error.contains(&format!("line {line}")), "{error}");
    }

    #[test]
    fn a_bad_duration_is_named() {
        let bad = GOOD.replace("duration = \"20s\"", "duration = \"soon\"");
        let error = WorkloadSpec::parse(&bad, Path::new("w.toml"))
            .expect_err("bad duration")
            .to_string();
        assert!(error.contains("soon"), "{error}");
    }

    #[test]
    fn a_replication_factor_above_the_broker_count_is_refused() {
        let bad = GOOD.replace("replication_factor = 3", "replication_factor = 4");
        let error = WorkloadSpec::parse(&bad, Path::new("w.toml"))
            .expect_err("rf 4 of 3")
            .to_string();
        assert!(error.contains("topic.replication_factor"), "{error}");
        let line = bad
            .lines()
            .position(|line| line.starts_with("replication_factor"))
            .expect("line")
            + 1;
        assert!(error.contains(&format!("line {line}")), "{error}");
    }

    #[test]
    fn a_label_must_be_defined_by_an_earlier_step() {
        let bad = GOOD.replace("label:old", "label:new");
        let error = WorkloadSpec::parse(&bad, Path::new("w.toml"))
            .expect_err("unknown label")
            .to_string();
        assert!(error.contains("nemesis.steps[1].target"), "{error}");
        let line = bad
            .lines()
            .position(|line| line.contains("label:new"))
            .expect("line")
            + 1;
        assert!(error.contains(&format!("line {line}")), "{error}");
    }

    #[test]
    fn aimed_steps_and_an_availability_bound_parse() {
        let aimed = GOOD
            .replace(
                r#"{ at = "9s", fault = "pause", target = "label:old" },"#,
                r#"{ at = "9s", fault = "kill", target = "coordinator", when = "isr-shrunk", within = "5s" },
  { at = "10s", fault = "kill", target = "except:old" },"#,
            )
            .replace(r#"lost = "none""#, "lost = \"none\"\nunavailable_max = \"8s\"");
        let spec = WorkloadSpec::parse(&aimed, Path::new("aimed.toml")).expect("parses");
        let NemesisSpec::Scripted { steps } = &spec.nemesis else {
            panic!("scripted")
        };
        assert_eq!(steps[1].when, Some(Condition::IsrShrunk));
        assert_eq!(steps[1].within, Some(Duration::from_secs(5)));
        assert_eq!(spec.expect.unavailable_max, Some(Duration::from_secs(8)));
        let again = WorkloadSpec::parse(&spec.to_toml().expect("toml"), Path::new("again.toml"))
            .expect("round trip");
        assert_eq!(spec, again);
        let unbounded_wait = aimed.replace(r#"when = "isr-shrunk", "#, "");
        let error = WorkloadSpec::parse(&unbounded_wait, Path::new("w.toml"))
            .expect_err("within without when")
            .to_string();
        assert!(error.contains("nemesis.steps[1].within"), "{error}");
        let unknown_label = aimed.replace("except:old", "except:new");
        let error = WorkloadSpec::parse(&unknown_label, Path::new("w.toml"))
            .expect_err("unknown label")
            .to_string();
        assert!(error.contains("no earlier step has label `new`"), "{error}");
    }

    #[test]
    fn a_broker_target_must_exist() {
        let bad = GOOD.replace("target = \"leader\"", "target = \"broker-7\"");
        let error = WorkloadSpec::parse(&bad, Path::new("w.toml"))
            .expect_err("no broker 7")
            .to_string();
        assert!(error.contains("broker-7"), "{error}");
    }

    #[test]
    fn every_shipped_workload_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads");
        let workloads = list(&dir).expect("workloads dir");
        assert!(workloads.len() >= 9, "{} workloads", workloads.len());
        for (name, spec) in workloads {
            spec.unwrap_or_else(|error| panic!("{name}: {error}"));
        }
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads");
        let error = resolve("no-such-workload", &dir)
            .expect_err("unknown")
            .to_string();
        assert!(error.contains("no-such-workload"), "{error}");
        assert!(error.contains("single-broker-smoke"), "{error}");
    }
}
