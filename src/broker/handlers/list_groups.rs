//! ListGroups: the groups this broker coordinates (clients ask every broker), with their
//! protocol type, and from v4 their state (filterable, case-insensitively), from v5 their type
//! (all are "classic"). COORDINATOR_LOAD_IN_PROGRESS while a shard is still loading.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
use crate::broker::context::Broker;

/// The type of every group here (KIP-848's name for the classic protocol).
const CLASSIC: &str = "classic";

pub fn handle(
    broker: &Arc<Broker>,
    request: ListGroupsRequest,
    version: i16,
) -> Outcome<ListGroupsResponse> {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|state| state.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|kind| kind.to_lowercase())
        .collect();
    let mut loading = false;
    let mut listed = Vec::new();
    for shard in broker.groups.shards() {
        let Ok(mut active) = shard.lock_active() else {
            loading |= shard.is_loading();
            continue;
        };
        for (group_id, group) in active.groups().iter() {
            let state = group.state().name();
            if !states.is_empty() && !states.contains(&state.to_lowercase()) {
                continue;
            }
            if !types.is_empty() && !types.iter().any(|kind| kind == CLASSIC) {
                continue;
            }
            let entry = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(group_id.clone())))
                .with_protocol_type(StrBytes::from_string(
                    group.protocol_type().unwrap_or_default().to_string(),
                ));
            let entry = if version >= 4 {
                entry.with_group_state(StrBytes::from_static_str(state))
            } else {
                entry
            };
            listed.push(if version >= 5 {
                entry.with_group_type(StrBytes::from_static_str(CLASSIC))
            } else {
                entry
            });
        }
    }
    let error = if loading {
        ResponseError::CoordinatorLoadInProgress.code()
    } else {
        0
    };
    Outcome::Now(
        ListGroupsResponse::default()
            .with_error_code(error)
            .with_groups(listed),
    )
}
