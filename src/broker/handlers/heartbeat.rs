//! Heartbeat: keeps a member's session alive; tells it to rejoin (REBALANCE_IN_PROGRESS) when a
//! rebalance is being prepared, or that it is no longer a member of this generation
//! (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID). While the coordinator is
//! loading the group it answers success blindly, as Kafka does.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::Outcome;
use crate::broker::context::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: HeartbeatRequest,
    _version: i16,
) -> Outcome<HeartbeatResponse> {
    let group_id = request.group_id.0.to_string();
    let error = if group_id.is_empty() {
        Some(ResponseError::InvalidGroupId)
    } else {
        let member_id = request.member_id.to_string();
        let instance = request.group_instance_id.map(|id| id.to_string());
        match broker
            .groups
            .with_group(&broker.group_host(), &group_id, false, |group, now| {
                group.heartbeat(&member_id, instance.as_deref(), request.generation_id, now)
            }) {
            Ok(Some(error)) => error,
            Ok(None) => Some(ResponseError::UnknownMemberId),
            Err(ResponseError::CoordinatorLoadInProgress) => None,
            Err(error) => Some(error),
        }
    };
    Outcome::Now(HeartbeatResponse::default().with_error_code(error.map_or(0, |e| e.code())))
}
