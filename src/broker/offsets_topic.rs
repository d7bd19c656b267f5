//! `__consumer_offsets`, the internal topic that stores groups and committed offsets: created on
//! first need (FindCoordinator, or a Metadata request that names it), as Kafka does, with
//! `offsets.topic.num.partitions` partitions, `offsets.topic.replication.factor` replicas (not
//! fewer: with too few live brokers the creation fails and FindCoordinator answers
//! COORDINATOR_NOT_AVAILABLE until enough are up) and Kafka's topic configs for it
//! (`cleanup.policy=compact`, `segment.bytes` = `offsets.topic.segment.bytes`; compaction itself
//! is not implemented by this broker's log, which keeps every record).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kafka_protocol::error::ResponseError;

use super::group::GROUP_METADATA_TOPIC;
use crate::broker::context::Broker;
use crate::broker::topic_admin::{self, TopicAdminError};
use crate::broker::zk::TopicRecord;

/// The topic configs Kafka gives `__consumer_offsets`.
fn topic_configs(broker: &Broker) -> BTreeMap<String, String> {
    let segment_bytes = broker
        .config
        .group_coordinator
        .offsets_topic_segment_bytes
        .min(i32::MAX as u64);
    BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".to_string(), segment_bytes.to_string()),
    ])
}

/// The live-broker count last reported as too small (so the refusal is logged once per count,
/// not on every FindCoordinator a client retries).
static REPORTED_LIVE_BROKERS: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The topic as this broker knows it, created first if it does not exist yet.
pub async fn ensure(broker: &Arc<Broker>) -> Result<TopicRecord, TopicAdminError> {
    if let Some(record) = broker.metadata.topic(GROUP_METADATA_TOPIC) {
        return Ok(record);
    }
    let config = broker.config.group_coordinator;
    let required = i32::from(config.offsets_topic_replication_factor);
    let live = broker.metadata.live_broker_ids().len();
    if (live as i32) < required {
        if REPORTED_LIVE_BROKERS.swap(live, Ordering::Relaxed) != live {
            tracing::info!(
                "Number of alive brokers '{live}' does not meet the required replication factor \
                 '{required}' for the offsets topic (configured via \
                 'offsets.topic.replication.factor'). This error can be ignored if the cluster is \
                 starting up and not all brokers are up yet."
            );
        }
        return Err(TopicAdminError::InvalidReplicationFactor {
            requested: required,
            live_brokers: live,
        });
    }
    let created = topic_admin::create_topic(
        broker,
        GROUP_METADATA_TOPIC,
        config.offsets_topic_num_partitions,
        i32::from(config.offsets_topic_replication_factor),
        topic_configs(broker),
        false,
    )
    .await;
    match created {
        Ok(record) => Ok(record),
        // Another broker created it first: the watch brings it here shortly.
        Err(TopicAdminError::Exists(name)) => broker
            .metadata
            .topic(GROUP_METADATA_TOPIC)
            .ok_or(TopicAdminError::Exists(name)),
        Err(error) => Err(error),
    }
}

/// The broker leading `group_id`'s partition (its coordinator), creating the topic first if
/// needed. COORDINATOR_NOT_AVAILABLE when the topic cannot be created or the partition has no
/// live leader.
pub async fn coordinator_of(
    broker: &Arc<Broker>,
    group_id: &str,
) -> Result<crate::broker::metadata_cache::BrokerEndpoint, ResponseError> {
    let record = ensure(broker).await.map_err(|error| {
        tracing::debug!("cannot create {GROUP_METADATA_TOPIC}: {error}");
        ResponseError::CoordinatorNotAvailable
    })?;
    let count = record.partitions.len() as i32;
    let partition = super::group::placement::partition_for(group_id, count);
    let leader = record
        .partitions
        .get(&partition)
        .map(|state| state.leader)
        .filter(|leader| *leader >= 0)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    broker
        .metadata
        .brokers()
        .into_iter()
        .find(|endpoint| endpoint.broker_id == leader)
        .ok_or(ResponseError::CoordinatorNotAvailable)
}
