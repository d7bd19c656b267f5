//! Live cluster metadata — brokers, controller, and each partition's leader, replicas and ISR —
//! read with a Kafka `Metadata` request (a `kafka_wire` client), because rdkafka does
//! not expose the controller id. Any Kafka-protocol broker answers it.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::{
    MetadataRequest, MetadataResponse, TopicName, metadata_request::MetadataRequestTopic,
};
use kafka_protocol::protocol::StrBytes;
use kafka_wire::{Client, Options, WireError};

/// The newest Metadata version we speak.
const METADATA_VERSION_MAX: i16 = 12;
/// How the harness names itself to brokers (the request header's `client_id`).
pub(crate) const KAFKA_CLIENT_ID: &str = "kchaos";
/// How long connecting and each request/answer of [`fetch_from`] may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Why metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(transparent)]
    Connection(#[from] WireError),
    #[error("{address} did not answer within {timeout_ms} ms")]
    Timeout { address: String, timeout_ms: u128 },
    #[error("no bootstrap server answered: {0}")]
    NoneAnswered(String),
}

/// One partition's state as the metadata shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: i32,
    /// `None` when the leader is -1 (no leader).
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// A snapshot of the cluster's metadata for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterMetadata {
    /// Ids of the live brokers, sorted.
    pub brokers: Vec<i32>,
    /// `host:port` of each live broker, by id.
    pub broker_addresses: BTreeMap<i32, String>,
    pub controller_id: Option<i32>,
    /// The topic's partitions, sorted by partition (empty if the topic is unknown).
    pub partitions: Vec<PartitionState>,
}

impl ClusterMetadata {
    /// The state of `partition`, if the topic has it.
    pub fn partition(&self, partition: i32) -> Option<&PartitionState> {
        self.partitions.iter().find(|p| p.partition == partition)
    }

    /// Whether every one of `count` partitions has a leader.
    pub fn all_partitions_led(&self, count: u32) -> bool {
        self.partitions.len() == count as usize
            && self.partitions.iter().all(|p| p.leader.is_some())
    }

    /// Whether every one of `count` partitions has a leader and a full ISR.
    pub fn all_partitions_fully_replicated(&self, count: u32) -> bool {
        self.all_partitions_led(count)
            && self
                .partitions
                .iter()
                .all(|p| p.isr.len() >= p.replicas.len())
    }

    /// One line for a person: live brokers, controller, and each partition's leader, ISR and
    /// replicas (what a wait that timed out last saw).
    pub fn describe(&self) -> String {
        let partitions: Vec<String> = self
            .partitions
            .iter()
            .map(|p| {
                let leader = p.leader.map_or("none".to_string(), |id| id.to_string());
                format!(
                    "{}: leader {leader}, isr {:?} of replicas {:?}",
                    p.partition, p.isr, p.replicas
                )
            })
            .collect();
        let controller = self
            .controller_id
            .map_or("none".to_string(), |id| id.to_string());
        format!(
            "brokers {:?}, controller {controller}, partitions [{}]",
            self.brokers,
            partitions.join("; ")
        )
    }
}

/// Asks each of `addresses` in turn for the metadata of `topic` (or only brokers and controller
/// when `topic` is `None`); the first answer wins.
pub async fn fetch(
    addresses: &[String],
    topic: Option<&str>,
    timeout: Duration,
) -> Result<ClusterMetadata, MetadataError> {
    let mut errors = Vec::new();
    for address in addresses {
        match tokio::time::timeout(timeout, fetch_from(address, topic)).await {
            Ok(Ok(metadata)) => return Ok(metadata),
            Ok(Err(error)) => errors.push(error.to_string()),
            Err(_) => errors.push(
                MetadataError::Timeout {
                    address: address.clone(),
                    timeout_ms: timeout.as_millis(),
                }
                .to_string(),
            ),
        }
    }
    Err(MetadataError::NoneAnswered(errors.join("; ")))
}

/// Asks every one of `addresses` at once and merges their answers: each partition as the
/// broker that knows the newest leader epoch sees it. A deposed leader that has not heard of its
/// deposition (a zombie cut off from the coordinator) still names itself leader; the brokers
/// that know better win. Brokers, controller and addresses are the first answer's.
pub async fn fetch_freshest(
    addresses: &[String],
    topic: Option<&str>,
    timeout: Duration,
) -> Result<ClusterMetadata, MetadataError> {
    let answers = futures::future::join_all(addresses.iter().map(|address| async move {
        match tokio::time::timeout(timeout, fetch_from(address, topic)).await {
            Ok(answer) => answer,
            Err(_) => Err(MetadataError::Timeout {
                address: address.clone(),
                timeout_ms: timeout.as_millis(),
            }),
        }
    }))
    .await;
    let mut errors = Vec::new();
    let mut merged: Option<ClusterMetadata> = None;
    for answer in answers {
        match answer {
            Ok(metadata) => match merged.as_mut() {
                None => merged = Some(metadata),
                Some(merged) => merged.take_fresher(metadata),
            },
            Err(error) => errors.push(error.to_string()),
        }
    }
    merged.ok_or_else(|| MetadataError::NoneAnswered(errors.join("; ")))
}

impl ClusterMetadata {
    /// Takes from `other` every partition it knows at a newer leader epoch.
    fn take_fresher(&mut self, other: ClusterMetadata) {
        for state in other.partitions {
            match self
                .partitions
                .iter_mut()
                .find(|known| known.partition == state.partition)
            {
                Some(known) if known.leader_epoch < state.leader_epoch => *known = state,
                Some(_) => {}
                None => self.partitions.push(state),
            }
        }
        self.partitions.sort_by_key(|state| state.partition);
    }
}

/// One broker's answer.
pub async fn fetch_from(
    address: &str,
    topic: Option<&str>,
) -> Result<ClusterMetadata, MetadataError> {
    let options = Options::new(KAFKA_CLIENT_ID, CONNECTION_TIMEOUT);
    let mut connection = Client::connect_negotiated(address, &options).await?;
    let topics = topic.map(|name| {
        vec![
            MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.to_string())))),
        ]
    });
    let request = MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(false);
    let (_version, response) = connection.request(METADATA_VERSION_MAX, &request).await?;
    Ok(convert(&response))
}

fn convert(response: &MetadataResponse) -> ClusterMetadata {
    let broker_addresses: BTreeMap<i32, String> = response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    let brokers: Vec<i32> = broker_addresses.keys().copied().collect();
    let controller = response.controller_id.0;
    let mut partitions: Vec<PartitionState> = response
        .topics
        .iter()
        .filter(|topic| topic.error_code == 0)
        .flat_map(|topic| topic.partitions.iter())
        .map(|partition| PartitionState {
            partition: partition.partition_index,
            leader: (partition.leader_id.0 >= 0).then_some(partition.leader_id.0),
            leader_epoch: partition.leader_epoch,
            replicas: partition.replica_nodes.iter().map(|id| id.0).collect(),
            isr: partition.isr_nodes.iter().map(|id| id.0).collect(),
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    ClusterMetadata {
        brokers,
        broker_addresses,
        controller_id: (controller >= 0).then_some(controller),
        partitions,
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::BrokerId;

    #[test]
    fn the_newest_leader_epoch_wins_a_merge() {
        let state = |partition: i32, leader: i32, leader_epoch: i32| PartitionState {
            partition,
            leader: Some(leader),
            leader_epoch,
            replicas: vec![1, 2, 3],
            isr: vec![leader],
        };
        let mut zombie = ClusterMetadata {
            partitions: vec![state(0, 1, 4), state(1, 2, 7)],
            ..ClusterMetadata::default()
        };
        let informed = ClusterMetadata {
            partitions: vec![state(0, 2, 5), state(1, 3, 6), state(2, 3, 1)],
            ..ClusterMetadata::default()
        };
        zombie.take_fresher(informed);
        assert_eq!(
            zombie.partitions,
            vec![state(0, 2, 5), state(1, 2, 7), state(2, 3, 1)]
        );
    }
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };

    use super::*;

    #[test]
    fn no_leader_and_no_controller_are_none_and_partitions_are_sorted() {
        let partition = |index: i32, leader: i32| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(leader))
                .with_replica_nodes(vec![BrokerId(2), BrokerId(1)])
                .with_isr_nodes(vec![BrokerId(2)])
        };
        let response = MetadataResponse::default()
            .with_controller_id(BrokerId(-1))
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(2))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(9093),
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(9092),
            ])
            .with_topics(vec![
                MetadataResponseTopic::default()
                    .with_partitions(vec![partition(1, -1), partition(0, 2)]),
            ]);
        let metadata = convert(&response);
        assert_eq!(metadata.brokers, vec![1, 2]);
        assert_eq!(metadata.broker_addresses[&2], "127.0.0.1:9093");
        assert_eq!(metadata.controller_id, None);
        assert_eq!(metadata.partitions[0].partition, 0);
        assert_eq!(metadata.partitions[0].leader, Some(2));
        assert_eq!(metadata.partition(1).map(|p| p.leader), Some(None));
        assert!(!metadata.all_partitions_led(2));
        assert!(!metadata.all_partitions_fully_replicated(2));
    }
}
