//! DescribeConfigs: a topic's effective configs (its overrides, else the broker's values) and
//! the broker's own settings, as `kafka-configs --describe` shows them.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::config::BrokerConfig;
use crate::broker::context::Broker;
use crate::broker::topic_config;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// Config sources (KIP-226).
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

/// Topic-level keys and the broker setting each defaults to.
fn topic_defaults(config: &BrokerConfig) -> Vec<(&'static str, String)> {
    vec![
        (
            "min.insync.replicas",
            config.min_insync_replicas.to_string(),
        ),
        (
            "unclean.leader.election.enable",
            config.unclean_leader_election_enable.to_string(),
        ),
        ("max.message.bytes", config.message_max_bytes.to_string()),
        ("segment.bytes", config.log_segment_bytes.to_string()),
        (
            "flush.messages",
            config.log_flush_interval_messages.to_string(),
        ),
        ("cleanup.policy", "delete".to_string()),
    ]
}

fn broker_settings(config: &BrokerConfig) -> Vec<(&'static str, String)> {
    vec![
        ("broker.id", config.broker_id.to_string()),
        ("zookeeper.connect", config.zookeeper_connect.clone()),
        (
            "zookeeper.session.timeout.ms",
            config.zookeeper_session_timeout_ms.to_string(),
        ),
        ("num.partitions", config.num_partitions.to_string()),
        (
            "default.replication.factor",
            config.default_replication_factor.to_string(),
        ),
        (
            "min.insync.replicas",
            config.min_insync_replicas.to_string(),
        ),
        ("message.max.bytes", config.message_max_bytes.to_string()),
        ("log.segment.bytes", config.log_segment_bytes.to_string()),
        (
            "log.flush.interval.messages",
            config.log_flush_interval_messages.to_string(),
        ),
        (
            "replica.lag.time.max.ms",
            config.replica_lag_time_max_ms.to_string(),
        ),
        (
            "unclean.leader.election.enable",
            config.unclean_leader_election_enable.to_string(),
        ),
        (
            "auto.create.topics.enable",
            config.auto_create_topics_enable.to_string(),
        ),
    ]
}

fn entry(name: &str, value: String, source: i8) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value)))
        .with_read_only(source == STATIC_BROKER_CONFIG)
        .with_config_source(source)
}

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let wanted = |name: &str| {
                // Null (or, leniently, empty) means every key.
                resource.configuration_keys.as_ref().is_none_or(|keys| {
                    keys.is_empty() || keys.iter().any(|key| key.as_str() == name)
                })
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match resource.resource_type {
                TOPIC => {
                    let Some(topic) = broker.metadata.topic(&resource.resource_name) else {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let mut configs: Vec<_> = topic
                        .config
                        .iter()
                        .filter(|(name, _)| wanted(name))
                        .map(|(name, value)| entry(name, value.clone(), DYNAMIC_TOPIC_CONFIG))
                        .collect();
                    let from_broker = topic_defaults(&broker.config);
                    for (name, value) in &from_broker {
                        if wanted(name) && !topic.config.contains_key(*name) {
                            configs.push(entry(name, value.clone(), STATIC_BROKER_CONFIG));
                        }
                    }
                    for (name, value) in topic_config::kafka_defaults() {
                        let covered = topic.config.contains_key(name)
                            || from_broker.iter().any(|(key, _)| *key == name);
                        if wanted(name) && !covered {
                            configs.push(entry(name, value.to_string(), DEFAULT_CONFIG));
                        }
                    }
                    result.with_configs(configs)
                }
                BROKER
                    if resource.resource_name.is_empty()
                        || resource.resource_name.as_str() == broker.id().to_string() =>
                {
                    let configs = broker_settings(&broker.config)
                        .into_iter()
                        .filter(|(name, _)| wanted(name))
                        .map(|(name, value)| entry(name, value, STATIC_BROKER_CONFIG))
                        .collect();
                    result.with_configs(configs)
                }
                _ => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "only TOPIC and this broker's BROKER resources can be described",
                    ))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
