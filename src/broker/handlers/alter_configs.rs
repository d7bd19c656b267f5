//! AlterConfigs: replace a topic's whole set of overrides (`/config/topics/<t>`), validated
//! key by key; every broker's watch applies it without a restart. Also the shared
//! read-change-store step that IncrementalAlterConfigs uses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
use crate::broker::context::Broker;
use crate::broker::topic_config::{self, InvalidConfig};

/// How long an answer waits for this broker's metadata to show the change.
const APPLY_WAIT: Duration = Duration::from_secs(5);
const APPLY_POLL: Duration = Duration::from_millis(10);

/// The TOPIC resource type.
pub const TOPIC: i8 = 2;

/// A resource's error code and message (`(0, None)`: done).
pub type ResourceResult = (i16, Option<String>);

/// Reads the overrides of `topic`, applies `change`, validates and (unless `validate_only`)
/// stores them. Serialised on this broker by the topic-admin lock.
pub async fn alter_topic(
    broker: &Broker,
    resource_type: i8,
    topic: &str,
    validate_only: bool,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), InvalidConfig>,
) -> ResourceResult {
    if resource_type != TOPIC {
        return (
            ResponseError::InvalidRequest.code(),
            Some(format!(
                "resource type {resource_type} cannot be altered here: only TOPIC (2) configs are \
                 dynamic on this broker"
            )),
        );
    }
    let admin = broker.topic_admin.lock().await;
    let stored = async {
        if broker.coordinator.topic_assignment(topic).await?.is_none() {
            return Ok(None);
        }
        broker.coordinator.topic_config(topic).await.map(Some)
    };
    let mut config = match stored.await {
        Ok(Some(config)) => config,
        Ok(None) => {
            return (
                ResponseError::UnknownTopicOrPartition.code(),
                Some(format!("Topic {topic} does not exist.")),
            );
        }
        Err(error) => {
            return (
                ResponseError::UnknownServerError.code(),
                Some(error.to_string()),
            );
        }
    };
    if let Err(InvalidConfig(message)) = change(&mut config) {
        tracing::info!("Invalid config value for resource topic {topic}: {message}");
        return (ResponseError::InvalidConfig.code(), Some(message));
    }
    if validate_only {
        return (0, None);
    }
    if let Err(error) = broker.coordinator.set_topic_config(topic, &config).await {
        return (
            ResponseError::UnknownServerError.code(),
            Some(error.to_string()),
        );
    }
    tracing::info!("Updated the config of topic {topic}: {config:?}");
    drop(admin);
    // Answer once this broker's own watch has applied it, so that a DescribeConfigs that
    // follows on this broker sees the change (other brokers follow within their watch delay).
    let deadline = tokio::time::Instant::now() + APPLY_WAIT;
    while broker
        .metadata
        .topic(topic)
        .is_some_and(|record| record.config != config)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(APPLY_POLL).await;
    }
    (0, None)
}

pub fn handle(
    broker: &Arc<Broker>,
    request: AlterConfigsRequest,
    _version: i16,
) -> Outcome<AlterConfigsResponse> {
    let broker = Arc::clone(broker);
    Outcome::Later(Box::pin(async move {
        let mut responses = Vec::with_capacity(request.resources.len());
        for resource in request.resources {
            let wanted: Vec<(String, Option<String>)> = resource
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            let (code, message) = alter_topic(
                &broker,
                resource.resource_type,
                &resource.resource_name,
                request.validate_only,
                |config| {
                    let mut replaced = BTreeMap::new();
                    for (key, value) in wanted {
                        let value = value.ok_or_else(|| {
                            InvalidConfig(format!(
                                "Null value not supported for topic configs: {key}"
                            ))
                        })?;
                        replaced.insert(key.clone(), topic_config::validate(&key, &value)?);
                    }
                    *config = replaced;
                    Ok(())
                },
            )
            .await;
            responses.push(
                AlterConfigsResourceResponse::default()
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_string))
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name),
            );
        }
        AlterConfigsResponse::default().with_responses(responses)
    }))
}
