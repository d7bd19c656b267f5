//! CreateTopics: create each topic (name, partitions, replication factor, configs) through
//! the coordinator, with one result per topic.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
use crate::broker::context::Broker;
use crate::broker::topic_admin;

pub fn handle(
    broker: &Arc<Broker>,
    request: CreateTopicsRequest,
    version: i16,
) -> Outcome<CreateTopicsResponse> {
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
        if version < 5 {
            // num_partitions and replication_factor exist from v5 on.
            for result in &mut results {
                result.num_partitions = -1;
                result.replication_factor = -1;
            }
        }
        CreateTopicsResponse::default().with_topics(results)
    }))
}
