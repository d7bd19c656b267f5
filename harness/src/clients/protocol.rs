//! The client worker protocol (docs/client-protocol.md), version [`PROTOCOL_VERSION`]: JSON
//! lines on a worker's stdin (requests from the harness) and stdout (its hello, then replies).
//! These are the message types both sides use: the harness's [`super::worker`] and the rdkafka
//! worker (`kchaos client`). Other workers (the Python one) follow the document.
//!
//! ```text
//! worker:  {"type":"hello","protocol":1,"library":"librdkafka","library_version":"2.12.1","worker":"kchaos client 0.1.0"}
//! harness: {"id":1,"op":"open","process":4,"role":"producer","config":{"bootstrap.servers":"127.0.0.1:9092","acks":"all"}}
//! worker:  {"id":1,"type":"ok"}
//! harness: {"id":2,"op":"send","topic":"t","key":"k7","value":"4-1"}
//! worker:  {"id":2,"type":"ok","partition":1,"offset":40}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The protocol version this harness speaks. A worker announcing another one is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// The worker's first line, before it reads anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always `"hello"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The protocol version the worker speaks.
    pub protocol: u32,
    /// The Kafka client library under test, e.g. `librdkafka`, `confluent-kafka-python`.
    pub library: String,
    /// Its version, e.g. `2.12.1`.
    pub library_version: String,
    /// The worker program itself, e.g. `kchaos client 0.1.0` (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

impl Hello {
    pub fn new(library: &str, library_version: &str, worker: &str) -> Self {
        Hello {
            kind: "hello".into(),
            protocol: PROTOCOL_VERSION,
            library: library.into(),
            library_version: library_version.into(),
            worker: Some(worker.into()),
        }
    }

    /// `librdkafka 2.12.1`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.library, self.library_version)
    }
}

/// What a worker is for: it opens one producer or one consumer of its library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Producer,
    Consumer,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        }
    }
}

/// One request: an id the reply carries back (requests are pipelined: replies may come in any
/// order) and the operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub operation: Operation,
}

/// The operations, by `op`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Operation {
    /// Create the library's producer or consumer with `config` (Kafka's client config names,
    /// values as strings). Exactly once, first.
    Open {
        /// The history's process number of this worker (for its logs and client id).
        process: u64,
        role: Role,
        config: BTreeMap<String, String>,
    },
    /// Producer: send `value` (with `key`) to `topic`, to `partition` if given (else the
    /// library's partitioner chooses). Replies: `ok` with partition and offset; `fail` only when
    /// it certainly was not appended; `info` when unknown.
    Send {
        topic: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        value: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partition: Option<i32>,
    },
    /// Consumer: read these partitions of `topic` from these offsets (`[partition, offset]`),
    /// replacing any previous assignment. No group membership.
    Assign {
        topic: String,
        positions: Vec<(i32, i64)>,
    },
    /// Consumer: join the group of the `group.id` given at open and consume `topics`; the
    /// partitions come from rebalances (reported in poll replies).
    Subscribe { topics: Vec<String> },
    /// Consumer: gather records for up to `timeout_ms`, at most `max_records`.
    Poll { max_records: u32, timeout_ms: u64 },
    /// Consumer in a group: commit `offsets` (`[partition, offset]`, the next offset to read, as
    /// Kafka commits) of `topic`, or, without `offsets`, the consumer's current positions.
    Commit {
        topic: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offsets: Option<Vec<(i32, i64)>>,
    },
    /// Consumer: the partition's log start offset and high watermark, asked of the cluster.
    Watermarks {
        topic: String,
        partition: i32,
        timeout_ms: u64,
    },
    /// Consumer: read the whole partition, from its log start offset to its high watermark,
    /// trying again on trouble until `timeout_ms` has passed.
    FinalRead {
        topic: String,
        partition: i32,
        timeout_ms: u64,
    },
    /// Finish: a producer waits up to `timeout_ms` for what is in flight (answering each send),
    /// a consumer leaves its group; then the worker answers `ok` and exits with status 0.
    Close { timeout_ms: u64 },
}

impl Operation {
    /// The `op` name.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Open { .. } => "open",
            Operation::Send { .. } => "send",
            Operation::Assign { .. } => "assign",
            Operation::Subscribe { .. } => "subscribe",
            Operation::Poll { .. } => "poll",
            Operation::Commit { .. } => "commit",
            Operation::Watermarks { .. } => "watermarks",
            Operation::FinalRead { .. } => "final-read",
            Operation::Close { .. } => "close",
        }
    }
}

/// How a request ended, in Jepsen's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It happened.
    #[default]
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Unknown whether it happened.
    Info,
}

/// One reply. Which fields are set depends on the request (docs/client-protocol.md).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    #[serde(rename = "type")]
    pub outcome: Outcome,
    /// The library's own error name (`NOT_ENOUGH_REPLICAS`, `_MSG_TIMED_OUT`, ...), for `fail`
    /// and `info`, and for a poll that met trouble.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `send`: the partition (when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// `send` ok: the offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// `poll` and `final-read`: `[partition, offset, value]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<(i32, i64, String)>>,
    /// `poll`: the library stopped reading some partition (its offset is out of range, after a
    /// truncation) and waits to be told where to read (an `assign`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_lost: Option<bool>,
    /// `poll` after a `subscribe`: partitions the group gave or took since the last poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned: Option<Vec<i32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Vec<i32>>,
    /// `poll` after a `subscribe`: the group's rebalances since the last poll, in the order
    /// they happened, each after every record of this reply (the poll stops at a rebalance).
    /// Optional in version 1: a worker without it says only `assigned` and `revoked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalances: Option<Vec<Rebalance>>,
    /// `watermarks` and `final-read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_start_offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_watermark: Option<i64>,
    /// `final-read`: whether the whole range was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
}

/// One rebalance as a group member saw it: partitions taken (`revoked`), or given
/// (`assigned`) with the group's committed offsets the member fetched after the assignment and
/// reads from (`committed`: `[partition, offset]`; a partition without one is read from its
/// log start), or why they could not be fetched (`committed_error`: the member then reads from
/// wherever its library finds).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rebalance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Vec<i32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned: Option<Vec<i32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<Vec<(i32, i64)>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_error: Option<String>,
}

impl Rebalance {
    /// Partitions taken away.
    pub fn revoked(partitions: Vec<i32>) -> Self {
        Rebalance {
            revoked: Some(partitions),
            ..Rebalance::default()
        }
    }

    /// Partitions given, read from `committed` (or not, and why).
    pub fn assigned(partitions: Vec<i32>, committed: Result<Vec<(i32, i64)>, String>) -> Self {
        let (committed, committed_error) = match committed {
            Ok(committed) => (Some(committed), None),
            Err(error) => (None, Some(error)),
        };
        Rebalance {
            assigned: Some(partitions),
            committed,
            committed_error,
            ..Rebalance::default()
        }
    }
}

impl Outcome {
    /// The history's completion type.
    pub fn op_type(self) -> history::OpType {
        match self {
            Outcome::Ok => history::OpType::Ok,
            Outcome::Fail => history::OpType::Fail,
            Outcome::Info => history::OpType::Info,
        }
    }
}

/// Records as the history writes them: `[[partition, offset, "value"], ...]`.
pub fn records_json(records: Vec<(i32, i64, String)>) -> serde_json::Value {
    serde_json::Value::Array(
        records
            .into_iter()
            .map(|(partition, offset, value)| serde_json::json!([partition, offset, value]))
            .collect(),
    )
}

impl Reply {
    /// An `ok` with nothing more.
    pub fn ok(id: u64) -> Self {
        Reply {
            id,
            ..Reply::default()
        }
    }

    /// A `fail` or `info` with the error's name.
    pub fn error(id: u64, outcome: Outcome, error: impl Into<String>) -> Self {
        Reply {
            id,
            outcome,
            error: Some(error.into()),
            ..Reply::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn requests_are_flat_json_objects_with_id_and_op() {
        let request = Request {
            id: 2,
            operation: Operation::Send {
                topic: "t".into(),
                key: Some("k7".into()),
                value: "4-1".into(),
                partition: None,
            },
        };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(
            text,
            r#"{"id":2,"op":"send","topic":"t","key":"k7","value":"4-1"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), request);
        let final_read: Request = serde_json::from_str(
            r#"{"op":"final-read","id":9,"topic":"t","partition":0,"timeout_ms":30000}"#,
        )
        .unwrap();
        assert_eq!(final_read.operation.name(), "final-read");
        assert!(serde_json::from_str::<Request>(r#"{"id":1,"op":"dance"}"#).is_err());
    }

    #[test]
    fn replies_leave_out_what_they_do_not_carry() {
        let reply = Reply {
            partition: Some(1),
            offset: Some(40),
            ..Reply::ok(2)
        };
        let text = serde_json::to_string(&reply).unwrap();
        assert_eq!(text, r#"{"id":2,"type":"ok","partition":1,"offset":40}"#);
        let info: Reply =
            serde_json::from_str(r#"{"id":3,"type":"info","error":"_MSG_TIMED_OUT"}"#).unwrap();
        assert_eq!(info.outcome, Outcome::Info);
        assert_eq!(info.error.as_deref(), Some("_MSG_TIMED_OUT"));
    }

    #[test]
    fn rebalances_come_in_order_with_what_they_carry() {
        let reply: Reply = serde_json::from_str(
            r#"{"id":5,"type":"ok","records":[],"rebalances":[{"revoked":[0,1]},{"assigned":[2],"committed":[[2,41]]},{"assigned":[0],"committed_error":"_TIMED_OUT"}]}"#,
        )
        .unwrap();
        let rebalances = reply.rebalances.unwrap();
        assert_eq!(rebalances[0], Rebalance::revoked(vec![0, 1]));
        assert_eq!(
            rebalances[1],
            Rebalance::assigned(vec![2], Ok(vec![(2, 41)]))
        );
        assert_eq!(
            rebalances[2],
            Rebalance::assigned(vec![0], Err("_TIMED_OUT".into()))
        );
        let text = serde_json::to_string(&rebalances[1]).unwrap();
        assert_eq!(text, r#"{"assigned":[2],"committed":[[2,41]]}"#);
    }

    #[test]
    fn hello_names_library_and_protocol() {
        let hello = Hello::new("librdkafka", "2.12.1", "kchaos client");
        let text = serde_json::to_string(&hello).unwrap();
        assert!(
            text.starts_with(r#"{"type":"hello","protocol":1,"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Hello>(&text).unwrap(), hello);
        assert_eq!(hello.describe(), "librdkafka 2.12.1");
    }
}
