//! Metadata: live brokers with their advertised endpoints, the controller, and each topic's
//! partitions (leader, leader epoch, replicas, ISR, offline replicas); `__consumer_offsets` is
//! marked internal. Unknown topics are created when both the request and
//! `auto.create.topics.enable` allow it (`__consumer_offsets` with the group coordinator's
//! settings).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::context::Broker;
use crate::broker::group::GROUP_METADATA_TOPIC;
use crate::broker::offsets_topic;
use crate::broker::topic_admin::{self, TopicAdminError};
use crate::broker::zk::TopicRecord;

/// The cluster id every broker reports.
pub const CLUSTER_ID: &str = "kchaos-cluster";

pub async fn handle(
    broker: &Arc<Broker>,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let requested: Option<Vec<String>> = match request.topics {
        // v0: an empty list means all topics.
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(
            topics
                .into_iter()
                .filter_map(|topic| topic.name.map(|name| name.0.to_string()))
                .collect(),
        ),
        _ => None,
    };
    let allow_auto_create = (version < 4 || request.allow_auto_topic_creation)
        && broker.config.auto_create_topics_enable;
    let topics = match requested {
        None => broker
            .metadata
            .topics()
            .iter()
            .map(|record| describe_topic(broker, record, version))
            .collect(),
        Some(names) => {
            let mut topics = Vec::with_capacity(names.len());
            for name in names {
                topics.push(lookup_or_create(broker, &name, allow_auto_create, version).await);
            }
            topics
        }
    };
    let brokers = broker
        .metadata
        .brokers()
        .into_iter()
        .map(|endpoint| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(endpoint.broker_id))
                .with_host(StrBytes::from_string(endpoint.host))
                .with_port(endpoint.port)
                .with_rack(
                    endpoint
                        .rack
                        .filter(|_| version >= 1)
                        .map(StrBytes::from_string),
                )
        })
        .collect();
    let controller_id = match broker.metadata.controller_id() {
        -1 => broker.id(),
        id => id,
    };
    let response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(topics);
    let response = if version >= 1 {
        response.with_controller_id(BrokerId(controller_id))
    } else {
        response
    };
    if version >= 2 {
        response.with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
    } else {
        response
    }
}

async fn lookup_or_create(
    broker: &Arc<Broker>,
    name: &str,
    allow_auto_create: bool,
    version: i16,
) -> MetadataResponseTopic {
    if let Some(record) = broker.metadata.topic(name) {
        return describe_topic(broker, &record, version);
    }
    if !allow_auto_create {
        return topic_error(name, ResponseError::UnknownTopicOrPartition);
    }
    let created = if name == GROUP_METADATA_TOPIC {
        // Internal: created with the group coordinator's settings, as Kafka does.
        offsets_topic::ensure(broker).await
    } else {
        topic_admin::create_topic(broker, name, -1, -1, BTreeMap::new(), false).await
    };
    match created {
        Ok(record) => describe_topic(broker, &record, version),
        // Another request created it first.
        Err(TopicAdminError::Exists(_)) => match broker.metadata.topic(name) {
            Some(record) => describe_topic(broker, &record, version),
            None => topic_error(name, ResponseError::LeaderNotAvailable),
        },
        Err(error) => {
            tracing::warn!("cannot auto-create topic {name}: {error}");
            topic_error(name, error.response_error())
        }
    }
}

fn topic_error(name: &str, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_error_code(error.code())
}

fn describe_topic(broker: &Broker, record: &TopicRecord, version: i16) -> MetadataResponseTopic {
    let live: Vec<i32> = broker
        .metadata
        .brokers()
        .iter()
        .map(|endpoint| endpoint.broker_id)
        .collect();
    let partitions = record
        .partitions
        .iter()
        .map(|(index, state)| {
            let error = if state.leader < 0 {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            let ids = |brokers: &[i32]| brokers.iter().copied().map(BrokerId).collect::<Vec<_>>();
            let offline: Vec<i32> = state
                .replicas
                .iter()
                .copied()
                .filter(|replica| !live.contains(replica))
                .collect();
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(*index)
                .with_leader_id(BrokerId(state.leader))
                .with_replica_nodes(ids(&state.replicas))
                .with_isr_nodes(ids(&state.isr))
                .with_offline_replicas(if version >= 5 {
                    ids(&offline)
                } else {
                    Vec::new()
                })
                .with_leader_epoch(if version >= 7 { state.leader_epoch } else { -1 })
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(record.name.clone()))))
        .with_is_internal(version >= 1 && record.name == GROUP_METADATA_TOPIC)
        .with_partitions(partitions)
}
