//! Kafka's JSON at those paths (broker registration, replica assignment, partition state,
//! controller, topic config), the fields and versions Apache Kafka writes, and [`TopicRecord`]:
//! everything the coordinator holds about one topic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ZkClientError;
use crate::broker::partition::LeaderAndIsr;

/// `/brokers/ids/<id>`, Kafka's JSON (version 5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub listener_security_protocol_map: BTreeMap<String, String>,
    pub endpoints: Vec<String>,
    pub jmx_port: i32,
    pub features: BTreeMap<String, serde_json::Value>,
    pub host: String,
    pub timestamp: String,
    pub port: i32,
    pub version: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
}

impl BrokerRegistration {
    /// The registration of a PLAINTEXT endpoint at `host:port`.
    pub fn new(host: &str, port: u16, rack: Option<String>) -> Self {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis());
        BrokerRegistration {
            listener_security_protocol_map: [("PLAINTEXT".to_string(), "PLAINTEXT".to_string())]
                .into_iter()
                .collect(),
            endpoints: vec![format!("PLAINTEXT://{host}:{port}")],
            jmx_port: -1,
            features: BTreeMap::new(),
            host: host.to_string(),
            timestamp: timestamp.to_string(),
            port: i32::from(port),
            version: 5,
            rack,
        }
    }
}

/// `/brokers/topics/<t>`: the replica assignment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicAssignment {
    #[serde(default = "one")]
    pub version: i32,
    pub partitions: BTreeMap<String, Vec<i32>>,
}

fn one() -> i32 {
    1
}

/// `/brokers/topics/<t>/partitions/<p>/state`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionStateJson {
    pub controller_epoch: i32,
    pub leader: i32,
    #[serde(default = "one")]
    pub version: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    /// KIP-966's eligible leader replicas (`broker::elr`); absent when empty, so that the
    /// JSON is Kafka's own unless the feature is on.
    #[serde(
        default,
        rename = "eligible_leader_replicas",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub elr: Vec<i32>,
}

/// `/controller`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ControllerJson {
    pub version: i32,
    pub brokerid: i32,
    pub timestamp: String,
}

/// `/config/topics/<t>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct TopicConfigJson {
    #[serde(default = "one")]
    pub version: i32,
    pub config: BTreeMap<String, String>,
}

/// Everything the coordinator holds about one topic.
#[derive(Debug, Clone)]
pub struct TopicRecord {
    pub name: String,
    pub partitions: BTreeMap<i32, LeaderAndIsr>,
    pub config: BTreeMap<String, String>,
}

pub(super) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs (strings, numbers, maps with string keys) cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

pub(super) fn from_json<T: for<'de> Deserialize<'de>>(
    path: &str,
    data: &[u8],
) -> Result<T, ZkClientError> {
    serde_json::from_slice(data).map_err(|error| ZkClientError::BadData {
        path: path.to_string(),
        reason: error.to_string(),
    })
}
