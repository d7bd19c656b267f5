//! FindCoordinator: the broker leading a group's `__consumer_offsets` partition, creating the
//! topic on first use; COORDINATOR_NOT_AVAILABLE while it cannot be created (too few live
//! brokers for `offsets.topic.replication.factor`) or the partition has no live leader.
//! v0-3 answer one key in top-level fields, v4 a list of keys. Transaction coordinators
//! (key type 1) are not served: INVALID_REQUEST.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
use crate::broker::context::Broker;
use crate::broker::offsets_topic;

/// `key_type` of a consumer group.
const GROUP_KEY_TYPE: i8 = 0;

pub fn handle(
    broker: &Arc<Broker>,
    request: FindCoordinatorRequest,
    version: i16,
) -> Outcome<FindCoordinatorResponse> {
    let broker = Arc::clone(broker);
    Outcome::Later(Box::pin(async move {
        let keys = if version >= 4 {
            request.coordinator_keys
        } else {
            vec![request.key]
        };
        let mut coordinators = Vec::with_capacity(keys.len());
        for key in keys {
            coordinators.push(find_one(&broker, key, request.key_type).await);
        }
        if version >= 4 {
            return FindCoordinatorResponse::default().with_coordinators(coordinators);
        }
        let Some(found) = coordinators.pop() else {
            return FindCoordinatorResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code());
        };
        let response = FindCoordinatorResponse::default()
            .with_error_code(found.error_code)
            .with_node_id(found.node_id)
            .with_host(found.host)
            .with_port(found.port);
        if version >= 1 {
            response.with_error_message(found.error_message)
        } else {
            response
        }
    }))
}

async fn find_one(broker: &Arc<Broker>, key: StrBytes, key_type: i8) -> Coordinator {
    let answer = Coordinator::default()
        .with_key(key.clone())
        .with_node_id(BrokerId(-1))
        .with_host(StrBytes::from_static_str(""))
        .with_port(-1);
    if key_type != GROUP_KEY_TYPE {
        return answer
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(StrBytes::from_string(format!(
                "coordinator key type {key_type} is not supported (only groups, type 0)"
            ))));
    }
    match offsets_topic::coordinator_of(broker, &key).await {
        Ok(endpoint) => answer
            .with_node_id(BrokerId(endpoint.broker_id))
            .with_host(StrBytes::from_string(endpoint.host))
            .with_port(endpoint.port),
        Err(error) => answer
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "The coordinator is not available.",
            ))),
    }
}
