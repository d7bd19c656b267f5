//! Topic-level config keys: which keys exist, what values each accepts, and applying an
//! IncrementalAlterConfigs operation to a topic's overrides. Pure functions; the handlers
//! store the result at `/config/topics/<t>` and every broker's watch picks it up.
//!
//! The keys, types and bounds are Kafka's (`LogConfig`/`TopicConfig`); errors read like
//! Kafka's `ConfigException` messages and map to INVALID_CONFIG.

use std::collections::BTreeMap;

/// What a config value must look like.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Boolean,
    /// A 32-bit integer at least this.
    Int(i64),
    /// A 64-bit integer at least this.
    Long(i64),
    /// A number in [0, 1].
    Ratio,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A comma-separated list, each item one of these.
    ListOf(&'static [&'static str]),
}

/// Every topic config key Kafka knows, with its kind and Kafka's default value.
const TOPIC_KEYS: &[(&str, Kind, &str)] = &[
    (
        "cleanup.policy",
        Kind::ListOf(&["delete", "compact"]),
        "delete",
    ),
    (
        "compression.type",
        Kind::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        "producer",
    ),
    ("delete.retention.ms", Kind::Long(0), "86400000"),
    ("file.delete.delay.ms", Kind::Long(0), "60000"),
    ("flush.messages", Kind::Long(1), "9223372036854775807"),
    ("flush.ms", Kind::Long(0), "9223372036854775807"),
    ("index.interval.bytes", Kind::Int(0), "4096"),
    ("local.retention.bytes", Kind::Long(-2), "-2"),
    ("local.retention.ms", Kind::Long(-2), "-2"),
    (
        "max.compaction.lag.ms",
        Kind::Long(1),
        "9223372036854775807",
    ),
    ("max.message.bytes", Kind::Int(0), "1048588"),
    ("message.downconversion.enable", Kind::Boolean, "true"),
    (
        "message.timestamp.type",
        Kind::OneOf(&["CreateTime", "LogAppendTime"]),
        "CreateTime",
    ),
    (
        "message.timestamp.difference.max.ms",
        Kind::Long(0),
        "9223372036854775807",
    ),
    (
        "message.timestamp.after.max.ms",
        Kind::Long(0),
        "9223372036854775807",
    ),
    (
        "message.timestamp.before.max.ms",
        Kind::Long(0),
        "9223372036854775807",
    ),
    ("min.cleanable.dirty.ratio", Kind::Ratio, "0.5"),
    ("min.compaction.lag.ms", Kind::Long(0), "0"),
    ("min.insync.replicas", Kind::Int(1), "1"),
    ("preallocate", Kind::Boolean, "false"),
    ("remote.storage.enable", Kind::Boolean, "false"),
    ("retention.bytes", Kind::Long(i64::MIN), "-1"),
    ("retention.ms", Kind::Long(-1), "604800000"),
    ("segment.bytes", Kind::Int(14), "1073741824"),
    ("segment.index.bytes", Kind::Int(4), "10485760"),
    ("segment.jitter.ms", Kind::Long(0), "0"),
    ("segment.ms", Kind::Long(1), "604800000"),
    ("unclean.leader.election.enable", Kind::Boolean, "false"),
];

/// IncrementalAlterConfigs operations (KIP-339).
pub const OP_SET: i8 = 0;
pub const OP_DELETE: i8 = 1;
pub const OP_APPEND: i8 = 2;
pub const OP_SUBTRACT: i8 = 3;

/// A rejected change; Kafka answers INVALID_CONFIG with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidConfig(pub String);

fn kind_of(key: &str) -> Option<Kind> {
    TOPIC_KEYS
        .iter()
        .find(|(name, _, _)| *name == key)
        .map(|(_, kind, _)| *kind)
}

/// Every topic config key with Kafka's default value, by name.
pub fn kafka_defaults() -> impl Iterator<Item = (&'static str, &'static str)> {
    TOPIC_KEYS
        .iter()
        .map(|(name, _, default)| (*name, *default))
}

/// Whether `key` is a topic config.
pub fn is_topic_key(key: &str) -> bool {
    kind_of(key).is_some()
}

fn invalid_value(key: &str, value: &str, why: &str) -> InvalidConfig {
    InvalidConfig(format!(
        "Invalid value {value} for configuration {key}: {why}"
    ))
}

/// Checks one key and value; returns the value as stored (trimmed, booleans lower-cased).
pub fn validate(key: &str, value: &str) -> Result<String, InvalidConfig> {
    let Some(kind) = kind_of(key) else {
        return Err(InvalidConfig(format!("Unknown topic config name: {key}")));
    };
    let trimmed = value.trim();
    match kind {
        Kind::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            lower @ ("true" | "false") => Ok(lower.to_string()),
            _ => Err(invalid_value(
                key,
                value,
                "Expected value to be either true or false",
            )),
        },
        Kind::Int(min) | Kind::Long(min) => {
            let number = match kind {
                Kind::Int(_) => trimmed.parse::<i32>().map(i64::from).ok(),
                _ => trimmed.parse::<i64>().ok(),
            };
            let type_name = if matches!(kind, Kind::Int(_)) {
                "INT"
            } else {
                "LONG"
            };
            match number {
                None => Err(invalid_value(
                    key,
                    value,
                    &format!("Not a number of type {type_name}"),
                )),
                Some(n) if n < min => Err(invalid_value(
                    key,
                    value,
                    &format!("Value must be at least {min}"),
                )),
                Some(_) => Ok(trimmed.to_string()),
            }
        }
        Kind::Ratio => match trimmed.parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(trimmed.to_string()),
            Ok(_) => Err(invalid_value(
                key,
                value,
                "Value must be no more than 1 and at least 0",
            )),
            Err(_) => Err(invalid_value(key, value, "Not a number of type DOUBLE")),
        },
        Kind::OneOf(allowed) => {
            if allowed.contains(&trimmed) {
                Ok(trimmed.to_string())
            } else {
                Err(invalid_value(
                    key,
                    value,
                    &format!("String must be one of: {}", allowed.join(", ")),
                ))
            }
        }
        Kind::ListOf(allowed) => {
            let items: Vec<&str> = list_items(trimmed);
            match items.iter().find(|item| !allowed.contains(item)) {
                Some(_) => Err(invalid_value(
                    key,
                    value,
                    &format!("String must be one of: {}", allowed.join(", ")),
                )),
                None => Ok(items.join(",")),
            }
        }
    }
}

fn list_items(text: &str) -> Vec<&str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

/// Applies one IncrementalAlterConfigs operation to `config` (a topic's overrides).
pub fn apply_operation(
    config: &mut BTreeMap<String, String>,
    key: &str,
    operation: i8,
    value: Option<&str>,
) -> Result<(), InvalidConfig> {
    let Some(kind) = kind_of(key) else {
        return Err(InvalidConfig(format!("Unknown topic config name: {key}")));
    };
    match operation {
        OP_SET => {
            let value = value.ok_or_else(|| {
                InvalidConfig(format!("Null value not supported for topic configs: {key}"))
            })?;
            config.insert(key.to_string(), validate(key, value)?);
        }
        OP_DELETE => {
            config.remove(key);
        }
        OP_APPEND | OP_SUBTRACT => {
            if !matches!(kind, Kind::ListOf(_)) {
                let name = if operation == OP_APPEND {
                    "append"
                } else {
                    "subtract"
                };
                return Err(InvalidConfig(format!(
                    "Config value {name} is not allowed for config key: {key}"
                )));
            }
            let current = config.get(key).cloned().unwrap_or_default();
            let mut items: Vec<String> =
                list_items(&current).into_iter().map(String::from).collect();
            for item in list_items(value.unwrap_or_default()) {
                if operation == OP_APPEND {
                    if !items.iter().any(|existing| existing == item) {
                        items.push(item.to_string());
                    }
                } else {
                    items.retain(|existing| existing != item);
                }
            }
            if items.is_empty() {
                config.remove(key);
            } else {
                config.insert(key.to_string(), validate(key, &items.join(","))?);
            }
        }
        other => {
            return Err(InvalidConfig(format!(
                "Unknown config operation {other} for config key: {key}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        assert_eq!(
            validate("no.such.config", "1").unwrap_err().0,
            "Unknown topic config name: no.such.config"
        );
        assert_eq!(
            validate("min.insync.replicas", "many").unwrap_err().0,
            "Invalid value many for configuration min.insync.replicas: Not a number of type INT"
        );
        assert!(validate("min.insync.replicas", "0").is_err());
        assert!(validate("unclean.leader.election.enable", "yes").is_err());
        assert_eq!(
            validate("unclean.leader.election.enable", "TRUE").as_deref(),
            Ok("true")
        );
        assert_eq!(validate("retention.ms", "-1").as_deref(), Ok("-1"));
        assert!(validate("cleanup.policy", "delete,shred").is_err());
    }

    #[test]
    fn operations_set_delete_append_subtract() {
        let mut config = BTreeMap::new();
        apply_operation(&mut config, "retention.ms", OP_SET, Some("5000")).unwrap();
        assert_eq!(config["retention.ms"], "5000");
        apply_operation(&mut config, "retention.ms", OP_DELETE, None).unwrap();
        assert!(config.is_empty());
        apply_operation(&mut config, "cleanup.policy", OP_APPEND, Some("delete")).unwrap();
        apply_operation(&mut config, "cleanup.policy", OP_APPEND, Some("compact")).unwrap();
        assert_eq!(config["cleanup.policy"], "delete,compact");
        apply_operation(&mut config, "cleanup.policy", OP_SUBTRACT, Some("delete")).unwrap();
        assert_eq!(config["cleanup.policy"], "compact");
        assert!(apply_operation(&mut config, "retention.ms", OP_APPEND, Some("1")).is_err());
    }
}
