//! Reading a workload spec: parsed strictly from TOML, then validated for what TOML's types
//! cannot say (sizes, names, targets, labels, references between steps), with the error's line
//! located in the text so that it names the file, the line and the field.

use std::path::Path;
use std::time::Duration;

use super::target::Target;
use super::{
    Fault, HARNESS_PRODUCER_KEYS, NemesisSpec, StepSpec, Strictness, Topology, WorkloadError,
    WorkloadSpec,
};

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
        if let Some(command) = &self.clients.command
            && command.split_whitespace().next().is_none()
        {
            return Err(invalid("clients.command", "is empty".into()));
        }
        if let Some(key) = self
            .clients
            .producer_config
            .keys()
            .find(|key| HARNESS_PRODUCER_KEYS.contains(&key.as_str()))
        {
            return Err(invalid(
                &format!("clients.producer_config.{key}"),
                "is set by the harness (from the [clients] fields, or always): set those instead"
                    .into(),
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
        if self.clients.idempotence && !["all", "-1"].contains(&self.clients.acks.as_str()) {
            return Err(invalid(
                "clients.idempotence",
                format!(
                    "an idempotent producer needs acks = \"all\", not `{}`",
                    self.clients.acks
                ),
            ));
        }
        if let Some(group) = &self.clients.group {
            let field = |name: &str| format!("clients.group.{name}");
            if self.clients.consumers == 0 {
                return Err(invalid(
                    "clients.consumers",
                    "a consumer group needs at least one consumer".into(),
                ));
            }
            if group.id.is_empty() {
                return Err(invalid(&field("id"), "is empty".into()));
            }
            if group.heartbeat_interval_ms == 0
                || group.heartbeat_interval_ms >= group.session_timeout_ms
            {
                return Err(invalid(
                    &field("heartbeat_interval_ms"),
                    "must be more than 0 and less than session_timeout_ms".into(),
                ));
            }
            if group.max_poll_interval_ms < group.session_timeout_ms {
                return Err(invalid(
                    &field("max_poll_interval_ms"),
                    "must be at least session_timeout_ms (librdkafka's rule)".into(),
                ));
            }
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
                    self.validate_step_shape(step)
                        .map_err(|(name, message)| invalid(field(name), message))?;
                    let named = [
                        ("target", Some(step.target.as_str())),
                        ("from", step.from.as_deref()),
                    ];
                    for (name, text) in named {
                        let Some(text) = text.filter(|text| !text.is_empty()) else {
                            continue;
                        };
                        let target =
                            Target::parse(text).map_err(|message| invalid(field(name), message))?;
                        target
                            .check_against(brokers)
                            .map_err(|message| invalid(field(name), message))?;
                        self.check_group_target(&target)
                            .map_err(|message| invalid(field(name), message))?;
                        if let Some(label) = target
                            .labels()
                            .into_iter()
                            .find(|label| !labels.contains(label))
                        {
                            return Err(invalid(
                                field(name),
                                format!("no earlier step has label `{label}`"),
                            ));
                        }
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
                    check_disk_settings(step)
                        .map_err(|(name, message)| invalid(field(name), message))?;
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
                topologies,
                fsync_delay,
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
                            "`{}` is not a fault (use kill, pause, stop, partition, \
                             lose-unfsynced, power-loss, disk-full, disk-error or slow-disk)",
                            fault.name()
                        ),
                    ));
                }
                if !topologies.is_empty() && !faults.contains(&Fault::Partition) {
                    return Err(invalid(
                        "nemesis.topologies".into(),
                        "shape `partition` faults, and `faults` has none".into(),
                    ));
                }
                for (index, topology) in topologies.iter().enumerate() {
                    self.check_topology_fits(*topology).map_err(|message| {
                        invalid(format!("nemesis.topologies[{index}]"), message)
                    })?;
                }
                let slow_disk = faults.contains(&Fault::SlowDisk);
                if slow_disk != fsync_delay.is_some() {
                    return Err(invalid(
                        "nemesis.fsync_delay".into(),
                        "is needed exactly when `slow-disk` is among the faults".into(),
                    ));
                }
                if let Some(delay) = fsync_delay {
                    check_fsync_delay(*delay)
                        .map_err(|message| invalid("nemesis.fsync_delay".into(), message))?;
                }
                if targets.is_empty() {
                    return Err(invalid("nemesis.targets".into(), "is empty".into()));
                }
                for (index, text) in targets.iter().enumerate() {
                    let target = Target::parse(text)
                        .map_err(|message| invalid(format!("nemesis.targets[{index}]"), message))?;
                    if !target.labels().is_empty() {
                        return Err(invalid(
                            format!("nemesis.targets[{index}]"),
                            "labels are for scripted steps".into(),
                        ));
                    }
                    target
                        .check_against(brokers)
                        .map_err(|message| invalid(format!("nemesis.targets[{index}]"), message))?;
                    self.check_group_target(&target)
                        .map_err(|message| invalid(format!("nemesis.targets[{index}]"), message))?;
                }
                Ok(())
            }
        }
    }
}

impl WorkloadSpec {
    /// Refuses group targets in a workload without a consumer group.
    fn check_group_target(&self, target: &Target) -> Result<(), String> {
        if target.needs_group() && self.clients.group.is_none() {
            return Err("only a workload with a consumer group ([clients.group]) has one".into());
        }
        Ok(())
    }
}

/// The longest fsync delay a slow-disk window may have.
const FSYNC_DELAY_MAX: Duration = Duration::from_secs(60);

/// A step's `tear`, `errors` and `fsync_delay` belong to its fault; the error names the field.
fn check_disk_settings(step: &StepSpec) -> Result<(), (&'static str, String)> {
    let name = step.fault.name();
    if step.tear && !matches!(step.fault, Fault::LoseUnfsynced | Fault::PowerLoss) {
        return Err((
            "tear",
            format!("only tears the last write of lose-unfsynced or power-loss, not `{name}`"),
        ));
    }
    if step.errors.is_some() && step.fault != Fault::DiskError {
        return Err(("errors", format!("is for disk-error, not `{name}`")));
    }
    match (step.fault, step.fsync_delay) {
        (Fault::SlowDisk, None) => Err((
            "fsync_delay",
            "slow-disk needs `fsync_delay` (e.g. \"1s\")".into(),
        )),
        (Fault::SlowDisk, Some(delay)) => check_fsync_delay(delay).map_err(|m| ("fsync_delay", m)),
        (_, Some(_)) => Err(("fsync_delay", format!("is for slow-disk, not `{name}`"))),
        (_, None) => Ok(()),
    }
}

fn check_fsync_delay(delay: Duration) -> Result<(), String> {
    if delay.is_zero() || delay > FSYNC_DELAY_MAX {
        return Err(format!(
            "must be more than 0 and at most {}",
            humantime::format_duration(FSYNC_DELAY_MAX)
        ));
    }
    Ok(())
}

impl WorkloadSpec {
    /// Which fields a step of its fault takes: a target for every fault but `heal` and the
    /// partitions that choose their own sides; a topology and `from` for partitions only.
    /// The error names the field.
    fn validate_step_shape(&self, step: &StepSpec) -> Result<(), (&'static str, String)> {
        let fault = step.fault.name();
        if step.fault != Fault::Partition {
            if step.topology.is_some() {
                return Err((
                    "topology",
                    format!("only a `partition` has one, not `{fault}`"),
                ));
            }
            if step.from.is_some() {
                return Err(("from", format!("only a `partition` has one, not `{fault}`")));
            }
        }
        let takes_target = match step.fault {
            Fault::Heal => false,
            Fault::Partition => {
                let topology = step.topology.unwrap_or(Topology::Isolate);
                self.check_topology_fits(topology)
                    .map_err(|message| ("topology", message))?;
                if step.from.is_some() && !topology.takes_target() {
                    return Err((
                        "from",
                        format!("a `{}` partition chooses its own sides", topology.name()),
                    ));
                }
                topology.takes_target()
            }
            _ => true,
        };
        match (takes_target, step.target.is_empty()) {
            (true, true) => Err(("target", format!("`{fault}` needs a target"))),
            (false, false) => Err((
                "target",
                match step.topology {
                    Some(topology) if step.fault == Fault::Partition => format!(
                        "a `{}` partition chooses its own sides: it takes no target",
                        topology.name()
                    ),
                    _ => format!("`{fault}` takes no target"),
                },
            )),
            _ => Ok(()),
        }
    }

    /// Refuses a topology this cluster has too few nodes for (the coordinator counts).
    fn check_topology_fits(&self, topology: Topology) -> Result<(), String> {
        let nodes = self.node_count();
        if nodes < topology.nodes_needed() {
            return Err(format!(
                "a `{}` partition needs at least {} nodes (the coordinator and the brokers); \
                 this cluster has {nodes}",
                topology.name(),
                topology.nodes_needed()
            ));
        }
        Ok(())
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
