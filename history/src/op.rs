//! The operations of a history, in Jepsen's model: a client operation is an `invoke` followed by
//! exactly one completion, `ok` (it happened), `fail` (it certainly did not happen) or `info`
//! (unknown); faults are operations of the `nemesis`. [`Op`] is one line, owned, with its value
//! as any JSON (the streaming reader's [`Line`](crate::line::Line) is the fast, typed view).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Who performed an operation: a client process (a number, fresh after an indeterminate
/// operation, as in Jepsen), the nemesis, or the harness itself (events such as a client
/// worker's crash). JSON: a number, or the string `"nemesis"` or `"harness"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Client(u64),
    Nemesis,
    Harness,
}

impl fmt::Display for Process {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(id) => write!(formatter, "{id}"),
            Process::Nemesis => formatter.write_str("nemesis"),
            Process::Harness => formatter.write_str("harness"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(id) => serializer.serialize_u64(*id),
            Process::Nemesis => serializer.serialize_str("nemesis"),
            Process::Harness => serializer.serialize_str("harness"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ProcessVisitor;
        impl serde::de::Visitor<'_> for ProcessVisitor {
            type Value = Process;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a process number, \"nemesis\" or \"harness\"")
            }
            fn visit_u64<E: serde::de::Error>(self, id: u64) -> Result<Process, E> {
                Ok(Process::Client(id))
            }
            fn visit_i64<E: serde::de::Error>(self, id: i64) -> Result<Process, E> {
                u64::try_from(id)
                    .map(Process::Client)
                    .map_err(|_| E::custom(format!("negative process number {id}")))
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Process, E> {
                match name {
                    "nemesis" => Ok(Process::Nemesis),
                    "harness" => Ok(Process::Harness),
                    _ => Err(E::custom(format!(
                        "unknown process {name:?} (expected a number, \"nemesis\" or \"harness\")"
                    ))),
                }
            }
        }
        deserializer.deserialize_any(ProcessVisitor)
    }
}

/// The type of an operation: an invocation or one of its three possible completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The operation was started.
    Invoke,
    /// It happened.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Unknown whether it happened (a timeout, a broken connection, a fault).
    Info,
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history: 0, 1, 2, ... in the order written.
    pub index: u64,
    /// Nanoseconds since the writer was created (monotonic clock).
    pub time_ns: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// The function: `send`, `poll`, `assign`, `final-read`, `kill`, `pause`, ...
    pub f: String,
    pub value: serde_json::Value,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn process_json_is_a_number_or_nemesis() {
        assert_eq!(serde_json::to_string(&Process::Client(7)).unwrap(), "7");
        assert_eq!(
            serde_json::to_string(&Process::Nemesis).unwrap(),
            "\"nemesis\""
        );
        assert_eq!(
            serde_json::from_str::<Process>("7").unwrap(),
            Process::Client(7)
        );
        assert_eq!(
            serde_json::from_str::<Process>("\"harness\"").unwrap(),
            Process::Harness
        );
        assert_eq!(Process::Harness.to_string(), "harness");
        assert!(serde_json::from_str::<Process>("-1").is_err());
        assert!(serde_json::from_str::<Process>("\"client\"").is_err());
    }
}
