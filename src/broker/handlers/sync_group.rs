//! SyncGroup: the leader of a new generation sends the assignment (the broker only relays
//! it), every member receives its own once the leader's plan is stored in
//! `__consumer_offsets`. While the coordinator is loading, REBALANCE_IN_PROGRESS (Kafka's
//! choice: the member rejoins without looking for the coordinator again). v5 adds the protocol
//! type and name, checked against the group's (INCONSISTENT_GROUP_PROTOCOL).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
use crate::broker::context::Broker;
use crate::broker::group::machine::SyncOutcome;
use crate::broker::group::messages::SyncResult;

pub fn handle(
    broker: &Arc<Broker>,
    request: SyncGroupRequest,
    version: i16,
) -> Outcome<SyncGroupResponse> {
    let group_id = request.group_id.0.to_string();
    let reply = |result: SyncResult| Outcome::Now(response(result, version));
    if group_id.is_empty() {
        return reply(SyncResult::error(ResponseError::InvalidGroupId));
    }
    let member_id = request.member_id.to_string();
    let instance = request.group_instance_id.map(|id| id.to_string());
    let protocol_type = request.protocol_type.map(|t| t.to_string());
    let protocol_name = request.protocol_name.map(|n| n.to_string());
    let assignments: Vec<(String, Bytes)> = request
        .assignments
        .into_iter()
        .map(|assignment| (assignment.member_id.to_string(), assignment.assignment))
        .collect();
    let outcome = broker
        .groups
        .with_group(&broker.group_host(), &group_id, false, |group, now| {
            group.sync(
                &member_id,
                instance.as_deref(),
                request.generation_id,
                protocol_type.as_deref(),
                protocol_name.as_deref(),
                assignments,
                now,
            )
        });
    match outcome {
        Err(ResponseError::CoordinatorLoadInProgress) => {
            reply(SyncResult::error(ResponseError::RebalanceInProgress))
        }
        Err(error) => reply(SyncResult::error(error)),
        Ok(None) => reply(SyncResult::error(ResponseError::UnknownMemberId)),
        Ok(Some(SyncOutcome::Reply(result))) => reply(result),
        Ok(Some(SyncOutcome::Parked(parked))) => Outcome::Later(Box::pin(async move {
            let result = parked
                .await
                .unwrap_or_else(|_| SyncResult::error(ResponseError::NotCoordinator));
            response(result, version)
        })),
    }
}

fn response(result: SyncResult, version: i16) -> SyncGroupResponse {
    let response = SyncGroupResponse::default()
        .with_error_code(result.error.map_or(0, |error| error.code()))
        .with_assignment(result.assignment);
    if version >= 5 {
        response
            .with_protocol_type(result.protocol_type.map(StrBytes::from_string))
            .with_protocol_name(result.protocol_name.map(StrBytes::from_string))
    } else {
        response
    }
}
