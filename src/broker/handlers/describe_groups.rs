//! DescribeGroups: each group's state, protocol type, chosen protocol and members (client id,
//! host, and — once Stable — their metadata and assignment), as `kafka-consumer-groups
//! --describe` shows them. A group this broker does not coordinate gets NOT_COORDINATOR (or
//! COORDINATOR_LOAD_IN_PROGRESS); one nobody knows is "Dead" without an error before v6, and
//! GROUP_ID_NOT_FOUND from v6.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
use crate::broker::context::Broker;
use crate::broker::group::state::GroupState;

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeGroupsRequest,
    version: i16,
) -> Outcome<DescribeGroupsResponse> {
    let groups = request
        .groups
        .into_iter()
        .map(|group_id| describe(broker, group_id, version))
        .collect();
    Outcome::Now(DescribeGroupsResponse::default().with_groups(groups))
}

fn describe(broker: &Arc<Broker>, group_id: GroupId, version: i16) -> DescribedGroup {
    let id = group_id.0.to_string();
    let answer = DescribedGroup::default().with_group_id(group_id);
    let summary = broker
        .groups
        .with_group(&broker.group_host(), &id, false, |group, _| group.summary());
    match summary {
        Err(error) => answer.with_error_code(error.code()),
        Ok(None) if version >= 6 => answer
            .with_error_code(ResponseError::GroupIdNotFound.code())
            .with_error_message(Some(StrBytes::from_string(format!(
                "Group {id} not found."
            ))))
            .with_group_state(StrBytes::from_static_str(GroupState::Dead.name())),
        Ok(None) => answer.with_group_state(StrBytes::from_static_str(GroupState::Dead.name())),
        Ok(Some(summary)) => answer
            .with_group_state(StrBytes::from_static_str(summary.state.name()))
            .with_protocol_type(StrBytes::from_string(summary.protocol_type))
            .with_protocol_data(StrBytes::from_string(summary.protocol_name))
            .with_members(
                summary
                    .members
                    .into_iter()
                    .map(|member| {
                        DescribedGroupMember::default()
                            .with_member_id(StrBytes::from_string(member.member_id))
                            .with_group_instance_id(
                                member
                                    .group_instance_id
                                    .filter(|_| version >= 4)
                                    .map(StrBytes::from_string),
                            )
                            .with_client_id(StrBytes::from_string(member.client_id))
                            .with_client_host(StrBytes::from_string(member.client_host))
                            .with_member_metadata(member.metadata)
                            .with_member_assignment(member.assignment)
                    })
                    .collect(),
            ),
    }
}
