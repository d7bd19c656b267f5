//! JoinGroup: joins a member to its group (or starts its rebalance) and answers when the
//! rebalance completes — the new generation, the protocol, the leader, and for the leader every
//! member's metadata. v4+ first hands a new member its id with MEMBER_ID_REQUIRED; v5+ carry
//! group.instance.id (static membership); v9 may tell a rejoining static leader to skip the
//! assignment. The session timeout must lie within `group.min.session.timeout.ms` and
//! `group.max.session.timeout.ms` (else INVALID_SESSION_TIMEOUT).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
use crate::broker::context::Broker;
use crate::broker::group::machine::JoinOutcome;
use crate::broker::group::messages::{JoinRequest, JoinResult, Protocol};

/// The host Kafka reports for a member; the connection's address does not reach handlers.
const CLIENT_HOST: &str = "/unknown";

pub fn handle(
    broker: &Arc<Broker>,
    request: JoinGroupRequest,
    version: i16,
    client_id: &str,
) -> Outcome<JoinGroupResponse> {
    let group_id = request.group_id.0.to_string();
    let member_id = request.member_id.to_string();
    let limits = broker.config.group_coordinator;
    let reply = |result: JoinResult| Outcome::Now(response(result, version));
    if group_id.is_empty() {
        return reply(JoinResult::error(&member_id, ResponseError::InvalidGroupId));
    }
    let session_timeout_ms = request.session_timeout_ms;
    if !(limits.group_min_session_timeout_ms..=limits.group_max_session_timeout_ms)
        .contains(&session_timeout_ms)
    {
        return reply(JoinResult::error(
            &member_id,
            ResponseError::InvalidSessionTimeout,
        ));
    }
    let join = JoinRequest {
        member_id: member_id.clone(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
        client_id: client_id.to_string(),
        client_host: CLIENT_HOST.to_string(),
        // v0 has no rebalance timeout: the session timeout is used.
        rebalance_timeout_ms: if request.rebalance_timeout_ms < 0 {
            session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        session_timeout_ms,
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|protocol| Protocol {
                name: protocol.name.to_string(),
                metadata: protocol.metadata,
            })
            .collect(),
    };
    if let Some(reason) = request.reason {
        tracing::debug!("JoinGroup of {member_id} in {group_id}: {reason}");
    }
    // A group is created by a member without an id; one with an id must know the group.
    let create = member_id.is_empty();
    let outcome =
        broker
            .groups
            .with_group(&broker.group_host(), &group_id, create, |group, now| {
                group.join(join, now)
            });
    match outcome {
        Err(error) => reply(JoinResult::error(&member_id, error)),
        Ok(None) => reply(JoinResult::error(
            &member_id,
            ResponseError::UnknownMemberId,
        )),
        Ok(Some(JoinOutcome::Reply(result))) => reply(result),
        Ok(Some(JoinOutcome::Parked(parked))) => Outcome::Later(Box::pin(async move {
            let result = parked
                .await
                .unwrap_or_else(|_| JoinResult::error(&member_id, ResponseError::NotCoordinator));
            response(result, version)
        })),
    }
}

fn response(result: JoinResult, version: i16) -> JoinGroupResponse {
    let members = result
        .members
        .into_iter()
        .map(|member| {
            JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(member.member_id))
                .with_group_instance_id(
                    member
                        .group_instance_id
                        .filter(|_| version >= 5)
                        .map(StrBytes::from_string),
                )
                .with_metadata(member.metadata)
        })
        .collect();
    // The protocol name is nullable from v7 on; before, "" stands for none.
    let protocol_name = match result.protocol_name {
        Some(name) => Some(StrBytes::from_string(name)),
        None if version < 7 => Some(StrBytes::default()),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(result.error.map_or(0, |error| error.code()))
        .with_generation_id(result.generation_id)
        .with_protocol_type(result.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(protocol_name)
        .with_leader(StrBytes::from_string(result.leader_id))
        .with_skip_assignment(result.skip_assignment && version >= 9)
        .with_member_id(StrBytes::from_string(result.member_id))
        .with_members(members)
}
