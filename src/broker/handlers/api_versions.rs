//! ApiVersions: the APIs and version ranges this broker serves. Its response header is always
//! v0; a version we do not know gets UNSUPPORTED_VERSION with our ranges in a v0 body (KIP-511).

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::SUPPORTED;

/// Our ranges.
fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

pub fn handle(_request: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// The reply to an ApiVersions request of a version we do not support.
pub fn unsupported_version(correlation_id: i32) -> anyhow::Result<BytesMut> {
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    super::encode(correlation_id, 0, &response)
}
