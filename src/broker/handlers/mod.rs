//! Request dispatch: decode the header, check the API and version, call the one handler for
//! that API, encode its response. Every handler has the same shape:
//! `handle(broker, request, version) -> Outcome<Response>`.
//!
//! Supported versions are the `kafka-protocol` crate's, capped where a newer version would
//! need topic ids (Produce 13, Fetch 13+, Metadata 13) which the broker does not assign yet.

pub mod alter_configs;
pub mod api_versions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_configs;
pub mod describe_groups;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;
pub mod unsupported;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use super::context::Broker;

/// A response future that runs on its own task.
pub type Deferred<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a handler gives back.
pub enum Outcome<R> {
    /// The response, ready now.
    Now(R),
    /// The response once something happens (the high watermark moves, data arrives).
    Later(Deferred<R>),
    /// No response at all (a Produce with acks=0).
    Nothing,
}

/// An encoded response frame (size prefix included), now or later; `None` means no response.
pub enum Reply {
    Now(Option<BytesMut>),
    Later(Deferred<Option<BytesMut>>),
}

/// The APIs and versions this broker serves.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::InitProducerId, 0, 5),
];

/// The supported version range of `api_key`, if it is served.
pub fn supported_versions(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|(_, min, max)| (*min, *max))
}

/// Decodes one request frame (without its size prefix) and runs its handler.
pub async fn dispatch(broker: &Arc<Broker>, mut frame: Bytes) -> anyhow::Result<Reply> {
    if frame.len() < 8 {
        bail!("request of {} bytes is shorter than a header", frame.len());
    }
    let api_key_code = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api_key) = ApiKey::try_from(api_key_code) else {
        bail!("unknown API key {api_key_code}");
    };
    let supported =
        supported_versions(api_key).is_some_and(|(min, max)| (min..=max).contains(&version));
    if api_key == ApiKey::ApiVersions && !supported {
        // KIP-511: answer with our ranges in a v0 body so the client can pick a version.
        return Ok(Reply::Now(Some(api_versions::unsupported_version(
            correlation_id,
        )?)));
    }
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .with_context(|| format!("cannot decode the {api_key:?} v{version} request header"))?;
    if !supported {
        return unsupported::handle(broker, api_key, version, correlation_id, frame);
    }
    tracing::trace!("{api_key:?} v{version} from {:?}", header.client_id);
    use kafka_protocol::messages as m;
    match api_key {
        ApiKey::ApiVersions => run::<m::ApiVersionsRequest, _, _>(frame, &header, |request| {
            api_versions::handle(request, version)
        }),
        ApiKey::Metadata => {
            let request = decode::<m::MetadataRequest>(frame, &header)?;
            let response = metadata::handle(broker, request, version).await;
            reply(Outcome::Now(response), &header)
        }
        ApiKey::Produce => {
            let request = decode::<m::ProduceRequest>(frame, &header)?;
            reply(produce::handle(broker, request, version), &header)
        }
        ApiKey::Fetch => {
            let request = decode::<m::FetchRequest>(frame, &header)?;
            reply(fetch::handle(broker, request, version), &header)
        }
        ApiKey::ListOffsets => run::<m::ListOffsetsRequest, _, _>(frame, &header, |request| {
            list_offsets::handle(broker, request, version)
        }),
        ApiKey::CreateTopics => {
            let request = decode::<m::CreateTopicsRequest>(frame, &header)?;
            reply(create_topics::handle(broker, request, version), &header)
        }
        ApiKey::DeleteTopics => {
            let request = decode::<m::DeleteTopicsRequest>(frame, &header)?;
            reply(delete_topics::handle(broker, request, version), &header)
        }
        ApiKey::DescribeConfigs => {
            run::<m::DescribeConfigsRequest, _, _>(frame, &header, |request| {
                describe_configs::handle(broker, request, version)
            })
        }
        ApiKey::OffsetForLeaderEpoch => {
            run::<m::OffsetForLeaderEpochRequest, _, _>(frame, &header, |request| {
                offset_for_leader_epoch::handle(broker, request, version)
            })
        }
        ApiKey::AlterConfigs => {
            let request = decode::<m::AlterConfigsRequest>(frame, &header)?;
            reply(alter_configs::handle(broker, request, version), &header)
        }
        ApiKey::IncrementalAlterConfigs => {
            let request = decode::<m::IncrementalAlterConfigsRequest>(frame, &header)?;
            reply(
                incremental_alter_configs::handle(broker, request, version),
                &header,
            )
        }
        ApiKey::ElectLeaders => {
            let request = decode::<m::ElectLeadersRequest>(frame, &header)?;
            reply(elect_leaders::handle(broker, request, version), &header)
        }
        ApiKey::FindCoordinator => {
            let request = decode::<m::FindCoordinatorRequest>(frame, &header)?;
            reply(find_coordinator::handle(broker, request, version), &header)
        }
        ApiKey::JoinGroup => {
            let request = decode::<m::JoinGroupRequest>(frame, &header)?;
            let client_id = header.client_id.as_deref().unwrap_or_default();
            reply(
                join_group::handle(broker, request, version, client_id),
                &header,
            )
        }
        ApiKey::SyncGroup => {
            let request = decode::<m::SyncGroupRequest>(frame, &header)?;
            reply(sync_group::handle(broker, request, version), &header)
        }
        ApiKey::Heartbeat => {
            let request = decode::<m::HeartbeatRequest>(frame, &header)?;
            reply(heartbeat::handle(broker, request, version), &header)
        }
        ApiKey::LeaveGroup => {
            let request = decode::<m::LeaveGroupRequest>(frame, &header)?;
            reply(leave_group::handle(broker, request, version), &header)
        }
        ApiKey::OffsetCommit => {
            let request = decode::<m::OffsetCommitRequest>(frame, &header)?;
            reply(offset_commit::handle(broker, request, version), &header)
        }
        ApiKey::OffsetFetch => {
            let request = decode::<m::OffsetFetchRequest>(frame, &header)?;
            reply(offset_fetch::handle(broker, request, version), &header)
        }
        ApiKey::ListGroups => {
            let request = decode::<m::ListGroupsRequest>(frame, &header)?;
            reply(list_groups::handle(broker, request, version), &header)
        }
        ApiKey::DescribeGroups => {
            let request = decode::<m::DescribeGroupsRequest>(frame, &header)?;
            reply(describe_groups::handle(broker, request, version), &header)
        }
        ApiKey::InitProducerId => {
            let request = decode::<m::InitProducerIdRequest>(frame, &header)?;
            reply(init_producer_id::handle(broker, request, version), &header)
        }
        other => bail!("{other:?} is listed as supported but has no handler"),
    }
}

/// Decodes a request body; the whole frame must be used.
fn decode<T: Decodable>(mut body: Bytes, header: &RequestHeader) -> anyhow::Result<T> {
    T::decode(&mut body, header.request_api_version).with_context(|| {
        format!(
            "cannot decode {} v{}",
            std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("request"),
            header.request_api_version
        )
    })
}

/// Decode, handle synchronously, encode.
fn run<T, R, F>(body: Bytes, header: &RequestHeader, handler: F) -> anyhow::Result<Reply>
where
    T: Decodable,
    R: Encodable + HeaderVersion + Send + 'static,
    F: FnOnce(T) -> R,
{
    let request = decode::<T>(body, header)?;
    reply(Outcome::Now(handler(request)), header)
}

/// Turns a handler's outcome into an encoded reply.
pub fn reply<R>(outcome: Outcome<R>, header: &RequestHeader) -> anyhow::Result<Reply>
where
    R: Encodable + HeaderVersion + Send + 'static,
{
    let correlation_id = header.correlation_id;
    let version = header.request_api_version;
    Ok(match outcome {
        Outcome::Now(response) => Reply::Now(Some(
            encode(correlation_id, version, &response).context("cannot encode the response")?,
        )),
        Outcome::Nothing => Reply::Now(None),
        Outcome::Later(future) => Reply::Later(Box::pin(async move {
            let response = future.await;
            match encode(correlation_id, version, &response) {
                Ok(frame) => Some(frame),
                Err(error) => {
                    tracing::error!("cannot encode a response: {error:#}");
                    None
                }
            }
        })),
    })
}

/// A response frame: size, header, body (`kafka_wire`'s response codec).
pub fn encode<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &R,
) -> anyhow::Result<BytesMut> {
    Ok(kafka_wire::message::encode_response(
        version,
        correlation_id,
        response,
    )?)
}
