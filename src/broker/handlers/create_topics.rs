//! CreateTopics: create each topic (name, partitions, replication factor, configs) through
//! the coordinator, with one result per topic. A request that asks for more than
//! [`MAX_PARTITIONS_PER_CREATE_REQUEST`] partitions in total (Kafka's controller limit) creates
//! nothing, validate_only or not: every topic gets INVALID_PARTITIONS and says why.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
#[cfg(doc)]
use crate::broker::config::MAX_PARTITIONS_PER_CREATE_REQUEST;
use crate::broker::context::Broker;
use crate::broker::topic_admin;

pub fn handle(
    broker: &Arc<Broker>,
    request: CreateTopicsRequest,
    version: i16,
) -> Outcome<CreateTopicsResponse> {
    let requested = requested_partitions(&request, broker.config.num_partitions);
    let most = broker.config.max_partitions_per_create_request;
    if requested > most {
        tracing::info!("refusing CreateTopics for {requested} partitions (at most {most})");
        return Outcome::Now(too_many_partitions(request, requested, most, version));
    }
    let broker = Arc::clone(broker);
    Outcome::Later(Box::pin(async move {
        let mut results = Vec::with_capacity(request.topics.len());
        for topic in request.topics {
            let config: BTreeMap<String, String> = topic
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            let result = if topic.assignments.is_empty() {
                topic_admin::create_topic(
                    &broker,
                    &topic.name.0,
                    topic.num_partitions,
                    i32::from(topic.replication_factor),
                    config,
                    request.validate_only,
                )
                .await
            } else {
                Err(topic_admin::TopicAdminError::InvalidReplicationFactor {
                    requested: -1,
                    live_brokers: 0,
                })
            };
            results.push(match result {
                Ok(record) => CreatableTopicResult::default()
                    .with_name(topic.name)
                    .with_num_partitions(record.partitions.len() as i32)
                    .with_replication_factor(
                        record
                            .partitions
                            .values()
                            .next()
                            .map_or(0, |state| state.replicas.len() as i16),
                    ),
                Err(error) => {
                    tracing::info!("cannot create topic {}: {error}", topic.name.0);
                    CreatableTopicResult::default()
                        .with_name(topic.name)
                        .with_error_code(error.response_error().code())
                        .with_error_message(Some(StrBytes::from_string(error.to_string())))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                }
            });
        }
        response(results, version)
    }))
}

/// Partitions the request asks for in total, as Kafka counts them: `num_partitions`, the
/// broker's `num.partitions` for -1, or the number of manual assignments.
fn requested_partitions(request: &CreateTopicsRequest, default_partitions: i32) -> u64 {
    request
        .topics
        .iter()
        .map(|topic| {
            if !topic.assignments.is_empty() {
                topic.assignments.len() as u64
            } else if topic.num_partitions == -1 {
                u64::try_from(default_partitions).unwrap_or(0)
            } else {
                u64::try_from(topic.num_partitions).unwrap_or(0)
            }
        })
        .fold(0u64, u64::saturating_add)
}

/// Every topic refused with INVALID_PARTITIONS.
fn too_many_partitions(
    request: CreateTopicsRequest,
    requested: u64,
    most: u64,
    version: i16,
) -> CreateTopicsResponse {
    let message = format!(
        "Excessively large number of partitions per request: {requested} requested, at most \
         {most}."
    );
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            CreatableTopicResult::default()
                .with_name(topic.name)
                .with_error_code(ResponseError::InvalidPartitions.code())
                .with_error_message(Some(StrBytes::from_string(message.clone())))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
        })
        .collect();
    response(results, version)
}

fn response(mut results: Vec<CreatableTopicResult>, version: i16) -> CreateTopicsResponse {
    if version < 5 {
        // num_partitions and replication_factor exist from v5 on.
        for result in &mut results {
            result.num_partitions = -1;
            result.replication_factor = -1;
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}
