//! Creating and deleting topics: name and argument checks, replica assignment over the live
//! brokers, the coordinator writes, and the local replicas. Used by CreateTopics,
//! DeleteTopics and Metadata's auto-creation.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use std::sync::Arc;

use super::context::Broker;
use super::metadata_sync;
use super::partition::LeaderAndIsr;
use super::zk::{TopicRecord, ZkClientError};

/// Why a topic could not be created or deleted, with its Kafka error.
#[derive(Debug, thiserror::Error)]
pub enum TopicAdminError {
    #[error("invalid topic name `{name}`: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("number of partitions must be at least 1, got {0}")]
    InvalidPartitions(i32),
    #[error("Replication factor: {requested} larger than available brokers: {live_brokers}.")]
    InvalidReplicationFactor { requested: i32, live_brokers: usize },
    #[error("topic `{0}` already exists")]
    Exists(String),
    #[error("topic `{0}` does not exist")]
    Unknown(String),
    #[error("topic deletion is disabled (delete.topic.enable=false)")]
    DeletionDisabled,
    #[error(transparent)]
    InvalidConfig(#[from] super::topic_config::InvalidConfig),
    #[error(transparent)]
    Coordinator(ZkClientError),
    #[error("cannot open the partition log: {0}")]
    Storage(#[from] std::io::Error),
}

impl From<ZkClientError> for TopicAdminError {
    fn from(error: ZkClientError) -> Self {
        match error {
            ZkClientError::TopicExists(name) => TopicAdminError::Exists(name),
            other => TopicAdminError::Coordinator(other),
        }
    }
}

impl TopicAdminError {
    /// The Kafka error for a CreateTopics/DeleteTopics result.
    pub fn response_error(&self) -> ResponseError {
        match self {
            TopicAdminError::InvalidName { .. } => ResponseError::InvalidTopicException,
            TopicAdminError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            TopicAdminError::InvalidReplicationFactor { .. } => {
                ResponseError::InvalidReplicationFactor
            }
            TopicAdminError::Exists(_) => ResponseError::TopicAlreadyExists,
            TopicAdminError::Unknown(_) => ResponseError::UnknownTopicOrPartition,
            TopicAdminError::DeletionDisabled => ResponseError::TopicDeletionDisabled,
            TopicAdminError::InvalidConfig(_) => ResponseError::InvalidConfig,
            TopicAdminError::Coordinator(_) | TopicAdminError::Storage(_) => {
                ResponseError::UnknownServerError
            }
        }
    }
}

/// Kafka's rule: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), TopicAdminError> {
    let invalid = |reason| {
        Err(TopicAdminError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name == "." || name == ".." {
        return invalid("`.` and `..` are not allowed");
    }
    if name.len() > 249 {
        return invalid("longer than 249 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return invalid("only ASCII letters, digits, `.`, `_` and `-` are allowed");
    }
    Ok(())
}

/// Round-robin assignment like Kafka's (without racks): partition p's replicas start at broker
/// index (p mod n) and take the next `replication_factor` brokers.
pub fn assign_replicas(
    partitions: i32,
    replication_factor: usize,
    live_brokers: &[i32],
) -> BTreeMap<i32, Vec<i32>> {
    let count = live_brokers.len().max(1);
    (0..partitions)
        .map(|partition| {
            let first = partition as usize % count;
            let replicas = (0..replication_factor)
                .filter_map(|i| live_brokers.get((first + i) % count).copied())
                .collect();
            (partition, replicas)
        })
        .collect()
}

/// Creates a topic (`partitions`/`replication_factor` of -1 mean the broker defaults) and
/// this broker's replicas of it.
pub async fn create_topic(
    broker: &Arc<Broker>,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    config: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<TopicRecord, TopicAdminError> {
    validate_topic_name(name)?;
    let config = config
        .into_iter()
        .map(|(key, value)| super::topic_config::validate(&key, &value).map(|value| (key, value)))
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    let partitions = if partitions == -1 {
        broker.config.num_partitions
    } else {
        partitions
    };
    let replication_factor = if replication_factor == -1 {
        i32::from(broker.config.default_replication_factor)
    } else {
        replication_factor
    };
    if partitions < 1 {
        return Err(TopicAdminError::InvalidPartitions(partitions));
    }
    let _guard = broker.topic_admin.lock().await;
    let live: Vec<i32> = broker
        .coordinator
        .live_brokers()
        .await?
        .into_keys()
        .collect();
    if replication_factor < 1 || replication_factor as usize > live.len() {
        tracing::info!(
            "Replication factor: {replication_factor} larger than available brokers: {}.",
            live.len()
        );
        return Err(TopicAdminError::InvalidReplicationFactor {
            requested: replication_factor,
            live_brokers: live.len(),
        });
    }
    if broker.metadata.contains_topic(name) {
        return Err(TopicAdminError::Exists(name.to_string()));
    }
    let assignment = assign_replicas(partitions, replication_factor as usize, &live);
    let record = TopicRecord {
        name: name.to_string(),
        partitions: assignment
            .into_iter()
            .map(|(partition, replicas)| {
                let state = LeaderAndIsr {
                    leader: replicas.first().copied().unwrap_or(-1),
                    leader_epoch: 0,
                    isr: replicas.clone(),
                    replicas,
                    elr: Vec::new(),
                    controller_epoch: -1,
                    zk_version: 0,
                };
                (partition, state)
            })
            .collect(),
        config,
    };
    if validate_only {
        return Ok(record);
    }
    let controller_epoch = broker.coordinator.create_topic(&record).await?;
    let mut record = record;
    for state in record.partitions.values_mut() {
        state.controller_epoch = controller_epoch;
    }
    metadata_sync::apply_topic(broker, &record);
    tracing::info!(
        "created topic {name} with {partitions} partitions, replication factor {replication_factor}"
    );
    Ok(record)
}

/// Deletes a topic everywhere this broker can: the coordinator and local replicas.
pub async fn delete_topic(broker: &Broker, name: &str) -> Result<(), TopicAdminError> {
    if !broker.config.delete_topic_enable {
        return Err(TopicAdminError::DeletionDisabled);
    }
    let _guard = broker.topic_admin.lock().await;
    if broker.coordinator.topic(name).await?.is_none() && !broker.metadata.contains_topic(name) {
        return Err(TopicAdminError::Unknown(name.to_string()));
    }
    broker.coordinator.delete_topic(name).await?;
    broker.metadata.remove_topic(name);
    broker.replicas.delete_topic(name)?;
    tracing::info!("deleted topic {name}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafkas_rule() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        for bad in ["", ".", "..", "a b", "a/b", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn assignment_spreads_leaders_round_robin() {
        let assignment = assign_replicas(3, 3, &[1, 2, 3]);
        assert_eq!(assignment[&0], vec![1, 2, 3]);
        assert_eq!(assignment[&1], vec![2, 3, 1]);
        assert_eq!(assignment[&2], vec![3, 1, 2]);
        assert_eq!(assign_replicas(2, 1, &[5])[&1], vec![5]);
    }
}
