//! Which broker coordinates a consumer group right now, asked as clients ask: a Kafka
//! `FindCoordinator` request (a `kafka_wire` client), to each bootstrap address in turn. Any
//! Kafka-protocol broker answers it; the nemesis resolves the `group-coordinator` target with it
//! at fault time.

use std::time::Duration;

use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use kafka_wire::{Client, Options};

use crate::cluster::metadata::KAFKA_CLIENT_ID;

/// The newest FindCoordinator version we speak (v4 asks for several keys at once).
const FIND_COORDINATOR_VERSION_MAX: i16 = 4;

/// Why no coordinator was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no coordinator for group {group}: {reason}")]
pub struct GroupCoordinatorError {
    pub group: String,
    pub reason: String,
}

/// The id of the broker coordinating `group`: the first answer without error from `addresses`,
/// each asked within `timeout`.
pub async fn find_group_coordinator(
    addresses: &[String],
    group: &str,
    timeout: Duration,
) -> Result<i32, GroupCoordinatorError> {
    let mut reasons = Vec::new();
    for address in addresses {
        match tokio::time::timeout(timeout, ask(address, group, timeout)).await {
            Ok(Ok(id)) => return Ok(id),
            Ok(Err(reason)) => reasons.push(format!("{address}: {reason}")),
            Err(_) => reasons.push(format!(
                "{address}: no answer within {} ms",
                timeout.as_millis()
            )),
        }
    }
    Err(GroupCoordinatorError {
        group: group.to_string(),
        reason: reasons.join("; "),
    })
}

/// One broker's answer: the coordinator's id, or why not (Kafka's error name).
async fn ask(address: &str, group: &str, timeout: Duration) -> Result<i32, String> {
    let options = Options::new(KAFKA_CLIENT_ID, timeout);
    let mut client = Client::connect_negotiated(address, &options)
        .await
        .map_err(|error| error.to_string())?;
    let key = StrBytes::from_string(group.to_string());
    let version = client
        .version::<FindCoordinatorRequest>(FIND_COORDINATOR_VERSION_MAX)
        .map_err(|error| error.to_string())?;
    // v4 replaced the one `key` with a list of them.
    let request = if version >= 4 {
        FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
    } else {
        FindCoordinatorRequest::default().with_key(key)
    };
    let response = client
        .call(version, &request)
        .await
        .map_err(|error| error.to_string())?;
    let (error_code, node_id) = if version >= 4 {
        let coordinator = response
            .coordinators
            .first()
            .ok_or_else(|| "an answer without coordinators".to_string())?;
        (coordinator.error_code, coordinator.node_id.0)
    } else {
        (response.error_code, response.node_id.0)
    };
    if error_code != 0 {
        return Err(kafka_wire::names::error_name(error_code));
    }
    if node_id < 0 {
        return Err(format!("coordinator id {node_id}"));
    }
    Ok(node_id)
}
