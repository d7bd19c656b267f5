//! Version negotiation (KIP-35, KIP-511): a client asks ApiVersions first, then speaks, per
//! API, the highest version both it and the broker serve.
//!
//! A broker that does not serve the ApiVersions version asked answers UNSUPPORTED_VERSION with
//! a v0 body listing its ranges; [`ApiVersions::retry_version`] reads that answer so the client
//! can ask again at a version the broker serves.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, StrBytes};

/// The ApiVersions version a client asks first: what librdkafka asks, so every broker that
/// librdkafka works with serves it.
pub const API_VERSIONS_VERSION: i16 = 3;
/// Kafka's UNSUPPORTED_VERSION error code.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// The ApiVersions request a client sends, naming its software.
pub fn api_versions_request(software_name: &str, software_version: &str) -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_string(software_name.to_string()))
        .with_client_software_version(StrBytes::from_string(software_version.to_string()))
}

/// The versions a broker serves, per API key, as its ApiVersions answer listed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiVersions {
    ranges: BTreeMap<i16, (i16, i16)>,
}

impl ApiVersions {
    pub fn from_response(response: &ApiVersionsResponse) -> Self {
        ApiVersions {
            ranges: response
                .api_keys
                .iter()
                .map(|api| (api.api_key, (api.min_version, api.max_version)))
                .collect(),
        }
    }

    /// Whether the broker serves `api` at all.
    pub fn supports(&self, api: ApiKey) -> bool {
        self.ranges.contains_key(&(api as i16))
    }

    /// The broker's (min, max) for `api`.
    pub fn range(&self, api: ApiKey) -> Option<(i16, i16)> {
        self.ranges.get(&(api as i16)).copied()
    }

    /// The highest version of `api` that the broker serves and we speak: ours are those
    /// `kafka-protocol` can encode, at most `ours_max`. `None` when the ranges do not meet.
    pub fn choose(&self, api: ApiKey, ours_max: i16) -> Option<i16> {
        let (broker_min, broker_max) = self.range(api)?;
        let codec = api.valid_versions();
        let version = broker_max.min(ours_max).min(codec.max);
        (version >= broker_min && version >= codec.min).then_some(version)
    }

    /// When the answer to ApiVersions at `asked` is a refusal (UNSUPPORTED_VERSION, with the
    /// broker's ranges in a v0 body), the ApiVersions version to ask instead.
    pub fn retry_version(asked: i16, answer: &Bytes) -> Option<i16> {
        let refusal = ApiVersionsResponse::decode(&mut answer.clone(), 0).ok()?;
        if refusal.error_code != UNSUPPORTED_VERSION {
            return None;
        }
        let versions = ApiVersions::from_response(&refusal);
        let retry = versions.choose(ApiKey::ApiVersions, API_VERSIONS_VERSION)?;
        (retry != asked).then_some(retry)
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::protocol::Encodable;

    use super::*;

    fn listing(ranges: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
        ApiVersionsResponse::default().with_api_keys(
            ranges
                .iter()
                .map(|(api, min, max)| {
                    ApiVersion::default()
                        .with_api_key(*api as i16)
                        .with_min_version(*min)
                        .with_max_version(*max)
                })
                .collect(),
        )
    }

    #[test]
    fn the_highest_common_version_is_chosen() {
        let versions = ApiVersions::from_response(&listing(&[
            (ApiKey::Metadata, 0, 9),
            (ApiKey::Fetch, 4, 17),
            (ApiKey::Produce, 9, 11),
        ]));
        assert_eq!(versions.choose(ApiKey::Metadata, 12), Some(9));
        assert_eq!(versions.choose(ApiKey::Fetch, 12), Some(12));
        // The broker's floor is above ours.
        assert_eq!(versions.choose(ApiKey::Produce, 8), None);
        // Not listed at all.
        assert!(!versions.supports(ApiKey::ElectLeaders));
        assert_eq!(versions.choose(ApiKey::ElectLeaders, 2), None);
        // Never below what kafka-protocol encodes (Fetch starts at v4 there).
        let old = ApiVersions::from_response(&listing(&[(ApiKey::Fetch, 0, 3)]));
        assert_eq!(old.choose(ApiKey::Fetch, 12), None);
    }

    #[test]
    fn a_refusal_names_the_version_to_retry() {
        let refusal = listing(&[(ApiKey::ApiVersions, 0, 2)]).with_error_code(UNSUPPORTED_VERSION);
        let mut body = BytesMut::new();
        refusal.encode(&mut body, 0).expect("encodes");
        assert_eq!(ApiVersions::retry_version(3, &body.freeze()), Some(2));
        let fine = listing(&[(ApiKey::ApiVersions, 0, 3)]);
        let mut body = BytesMut::new();
        fine.encode(&mut body, 0).expect("encodes");
        assert_eq!(ApiVersions::retry_version(3, &body.freeze()), None);
    }
}
