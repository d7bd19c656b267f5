//! IncrementalAlterConfigs (KIP-339): SET, DELETE, APPEND and SUBTRACT on a topic's overrides,
//! all or nothing per resource; stored at `/config/topics/<t>` for every broker to apply.

use std::sync::Arc;

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
use super::alter_configs::alter_topic;
use crate::broker::context::Broker;
use crate::broker::topic_config;

pub fn handle(
    broker: &Arc<Broker>,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> Outcome<IncrementalAlterConfigsResponse> {
    let broker = Arc::clone(broker);
    Outcome::Later(Box::pin(async move {
        let mut responses = Vec::with_capacity(request.resources.len());
        for resource in request.resources {
            let operations: Vec<(String, i8, Option<String>)> = resource
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect();
            let (code, message) = alter_topic(
                &broker,
                resource.resource_type,
                &resource.resource_name,
                request.validate_only,
                |config| {
                    for (key, operation, value) in &operations {
                        topic_config::apply_operation(config, key, *operation, value.as_deref())?;
                    }
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
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    }))
}
