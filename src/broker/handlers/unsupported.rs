//! APIs (and versions) this broker does not serve (transactions, SASL, FindCoordinator v5+,
//! ...): where the request decodes and its response has a top-level error, answer
//! UNSUPPORTED_VERSION so the client gets a clear error instead of a dropped connection;
//! otherwise close the connection.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{self as m, ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

use super::{Outcome, Reply, reply};
use crate::broker::context::Broker;

const UNSUPPORTED: i16 = ResponseError::UnsupportedVersion.code();

pub fn handle(
    _broker: &Arc<Broker>,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    mut body: Bytes,
) -> anyhow::Result<Reply> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id);
    let range = api_key.valid_versions();
    let (min, max) = (range.min, range.max);
    if !(min..=max).contains(&version) {
        anyhow::bail!("{api_key:?} v{version} is outside the protocol's versions {min}..={max}");
    }
    tracing::info!("answering unsupported API {api_key:?} v{version} with UNSUPPORTED_VERSION");
    match api_key {
        ApiKey::FindCoordinator => {
            let request = m::FindCoordinatorRequest::decode(&mut body, version)?;
            let mut keys = request.coordinator_keys;
            if keys.is_empty() {
                keys.push(request.key);
            }
            let coordinators = keys
                .into_iter()
                .map(|key| {
                    m::find_coordinator_response::Coordinator::default()
                        .with_key(key)
                        .with_node_id(m::BrokerId(-1))
                        .with_error_code(UNSUPPORTED)
                })
                .collect();
            // v0-3 answer in top-level fields, v4+ per coordinator key.
            let response = if version < 4 {
                m::FindCoordinatorResponse::default()
                    .with_error_code(UNSUPPORTED)
                    .with_node_id(m::BrokerId(-1))
            } else {
                m::FindCoordinatorResponse::default().with_coordinators(coordinators)
            };
            reply(Outcome::Now(response), &header)
        }
        ApiKey::JoinGroup => reply(
            Outcome::Now(m::JoinGroupResponse::default().with_error_code(UNSUPPORTED)),
            &header,
        ),
        ApiKey::SyncGroup => reply(
            Outcome::Now(m::SyncGroupResponse::default().with_error_code(UNSUPPORTED)),
            &header,
        ),
        ApiKey::Heartbeat => reply(
            Outcome::Now(m::HeartbeatResponse::default().with_error_code(UNSUPPORTED)),
            &header,
        ),
        ApiKey::LeaveGroup => reply(
            Outcome::Now(m::LeaveGroupResponse::default().with_error_code(UNSUPPORTED)),
            &header,
        ),
        ApiKey::ListGroups => reply(
            Outcome::Now(m::ListGroupsResponse::default().with_error_code(UNSUPPORTED)),
            &header,
        ),
        ApiKey::SaslHandshake => reply(
            Outcome::Now(m::SaslHandshakeResponse::default().with_error_code(UNSUPPORTED)),
            &header,
        ),
        ApiKey::OffsetFetch if (2..8).contains(&version) => reply(
            Outcome::Now(m::OffsetFetchResponse::default().with_error_code(UNSUPPORTED)),
            &header,
        ),
        other => anyhow::bail!("{other:?} v{version} is not supported by this broker"),
    }
}
