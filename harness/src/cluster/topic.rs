//! Creating the workload's topic with a Kafka `CreateTopics` request (a `kafka_wire` client):
//! sent to the controller when the metadata names one, else to each broker in turn (Kafka
//! answers NOT_CONTROLLER from the others), retried until the cluster accepts it or a deadline
//! passes. An existing topic is fine.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_wire::{Client, Options};

use crate::cluster::metadata;

/// The newest CreateTopics version we speak.
const CREATE_TOPICS_VERSION_MAX: i16 = 7;
/// Kafka's TOPIC_ALREADY_EXISTS.
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// How long one attempt at one broker may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// The topic could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create topic {topic}: {reason}")]
pub struct TopicError {
    pub topic: String,
    pub reason: String,
}

/// What the topic should be.
#[derive(Debug, Clone)]
pub struct NewTopic<'a> {
    pub name: &'a str,
    pub partitions: u32,
    pub replication_factor: u32,
    pub configs: &'a BTreeMap<String, String>,
}

/// Creates `topic` through one of `addresses`, retrying until `timeout`.
pub async fn create_topic(
    addresses: &[String],
    topic: &NewTopic<'_>,
    timeout: Duration,
) -> Result<(), TopicError> {
    let deadline = Instant::now() + timeout;
    let mut last_error = String::from("no attempt");
    while Instant::now() < deadline {
        let controller = metadata::fetch(addresses, None, ATTEMPT_TIMEOUT)
            .await
            .ok()
            .and_then(|metadata| {
                let id = metadata.controller_id?;
                metadata.broker_addresses.get(&id).cloned()
            });
        let order: Vec<&String> = controller
            .iter()
            .chain(addresses.iter().filter(|a| Some(*a) != controller.as_ref()))
            .collect();
        for address in order {
            match tokio::time::timeout(ATTEMPT_TIMEOUT, create_at(address, topic)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(reason)) => last_error = format!("{address}: {reason}"),
                Err(_) => last_error = format!("{address}: no answer"),
            }
        }
        tracing::debug!("creating topic {}: {last_error}; again", topic.name);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(TopicError {
        topic: topic.name.to_string(),
        reason: format!(
            "still failing after {} ms: {last_error}",
            timeout.as_millis()
        ),
    })
}

async fn create_at(address: &str, topic: &NewTopic<'_>) -> Result<(), String> {
    let options = Options::new(metadata::KAFKA_CLIENT_ID, ATTEMPT_TIMEOUT);
    let mut connection = Client::connect_negotiated(address, &options)
        .await
        .map_err(|e| e.to_string())?;
    let configs = topic
        .configs
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.name.to_string())))
                .with_num_partitions(topic.partitions as i32)
                .with_replication_factor(topic.replication_factor as i16)
                .with_configs(configs),
        ])
        .with_timeout_ms(ATTEMPT_TIMEOUT.as_millis() as i32);
    let (_version, response) = connection
        .request(CREATE_TOPICS_VERSION_MAX, &request)
        .await
        .map_err(|e| e.to_string())?;
    let result = response
        .topics
        .first()
        .ok_or_else(|| "an answer without the topic".to_string())?;
    match result.error_code {
        0 | TOPIC_ALREADY_EXISTS => Ok(()),
        code => Err(format!(
            "error {code}{}",
            result
                .error_message
                .as_ref()
                .map(|message| format!(" ({message})"))
                .unwrap_or_default()
        )),
    }
}
