//! LeaveGroup: members leave (a consumer closing) and the rest rebalance at once instead of
//! waiting for the session timeout. v0-2 name one member (its result is the top-level error);
//! v3+ a list, by member id or, for static members, by group.instance.id.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
use crate::broker::context::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: LeaveGroupRequest,
    version: i16,
) -> Outcome<LeaveGroupResponse> {
    let group_id = request.group_id.0.to_string();
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|member| {
                if let Some(reason) = &member.reason {
                    tracing::debug!("{} leaves {group_id}: {reason}", member.member_id);
                }
                (
                    member.member_id.to_string(),
                    member.group_instance_id.as_ref().map(|id| id.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let results = if group_id.is_empty() {
        Err(ResponseError::InvalidGroupId)
    } else {
        match broker
            .groups
            .with_group(&broker.group_host(), &group_id, false, |group, now| {
                group.leave(&leaving, now)
            }) {
            Ok(Some(results)) => results,
            Ok(None) => Ok(vec![Some(ResponseError::UnknownMemberId); leaving.len()]),
            Err(error) => Err(error),
        }
    };
    let response = LeaveGroupResponse::default();
    let code = |error: Option<ResponseError>| error.map_or(0, |e| e.code());
    Outcome::Now(match results {
        Err(error) => response.with_error_code(error.code()),
        Ok(results) if version < 3 => {
            response.with_error_code(code(results.first().copied().flatten()))
        }
        Ok(results) => response.with_members(
            leaving
                .into_iter()
                .zip(results)
                .map(|((member_id, instance), error)| {
                    MemberResponse::default()
                        .with_member_id(StrBytes::from_string(member_id))
                        .with_group_instance_id(instance.map(StrBytes::from_string))
                        .with_error_code(code(error))
                })
                .collect(),
        ),
    })
}
