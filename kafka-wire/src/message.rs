//! One request or response to and from bytes, without I/O: the request header at the header
//! version the API and version call for (ApiVersions answers always carry a v0 response
//! header — `kafka-protocol` knows each message's), the size prefix, the correlation id checked
//! on the way back, and bytes left after a decoded body noticed.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::frame::{self, SIZE_PREFIX_BYTES};

/// A message that cannot be encoded, or an answer that does not decode as what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode {what}: {reason}")]
    Encode { what: String, reason: String },
    #[error("cannot decode {what}: {reason}")]
    Decode { what: String, reason: String },
    #[error("{what} does not fit in a frame: {source}")]
    TooLarge {
        what: String,
        source: frame::FrameError,
    },
    #[error("response correlation id {got}, expected {expected}")]
    Correlation { got: i32, expected: i32 },
    #[error("{left} bytes left after {what}")]
    TrailingBytes { what: String, left: usize },
    #[error("API key {0} is not one kafka-protocol knows")]
    UnknownApiKey(i16),
}

/// The API a request type belongs to.
pub fn api_key<Req: Request>() -> Result<ApiKey, CodecError> {
    ApiKey::try_from(Req::KEY).map_err(|()| CodecError::UnknownApiKey(Req::KEY))
}

/// `Metadata v12 request`, `Fetch v4 response`: how errors name a message.
fn describe(api: ApiKey, version: i16, kind: &str) -> String {
    format!("{api:?} v{version} {kind}")
}

/// A request header; `client_id` `None` is a null client id.
pub fn request_header(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|id| StrBytes::from_string(id.to_string())))
}

/// A request frame: size prefix, header, body.
pub fn encode_request<Req: Request>(
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    request: &Req,
) -> Result<BytesMut, CodecError> {
    encode(request_frame::<Req>(
        version,
        correlation_id,
        client_id,
        request,
        true,
    )?)
}

/// A request without its size prefix: what a broker's dispatcher is handed (fuzz seeds).
pub fn encode_request_body<Req: Request>(
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    request: &Req,
) -> Result<BytesMut, CodecError> {
    encode(request_frame::<Req>(
        version,
        correlation_id,
        client_id,
        request,
        false,
    )?)
}

/// What [`encode`] writes: a header and a body at their versions.
struct Parts<'a, H, B> {
    what: String,
    header: H,
    header_version: i16,
    body: &'a B,
    version: i16,
    prefixed: bool,
}

fn request_frame<'a, Req: Request>(
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    request: &'a Req,
    prefixed: bool,
) -> Result<Parts<'a, RequestHeader, Req>, CodecError> {
    let api = api_key::<Req>()?;
    Ok(Parts {
        what: describe(api, version, "request"),
        header: request_header(api, version, correlation_id, client_id),
        header_version: Req::header_version(version),
        body: request,
        version,
        prefixed,
    })
}

fn encode<H: Encodable, B: Encodable>(parts: Parts<'_, H, B>) -> Result<BytesMut, CodecError> {
    let encode_error = |error: anyhow::Error| CodecError::Encode {
        what: parts.what.clone(),
        reason: error.to_string(),
    };
    let size = parts
        .header
        .compute_size(parts.header_version)
        .map_err(encode_error)?
        + parts
            .body
            .compute_size(parts.version)
            .map_err(encode_error)?;
    let mut frame = BytesMut::with_capacity(SIZE_PREFIX_BYTES + size);
    if parts.prefixed {
        frame::put_size(&mut frame, size).map_err(|source| CodecError::TooLarge {
            what: parts.what.clone(),
            source,
        })?;
    }
    parts
        .header
        .encode(&mut frame, parts.header_version)
        .map_err(encode_error)?;
    parts
        .body
        .encode(&mut frame, parts.version)
        .map_err(encode_error)?;
    Ok(frame)
}

/// A response frame as a broker writes it: size prefix, header, body.
pub fn encode_response<Resp: Encodable + HeaderVersion>(
    version: i16,
    correlation_id: i32,
    response: &Resp,
) -> Result<BytesMut, CodecError> {
    let type_name = std::any::type_name::<Resp>();
    let name = type_name.rsplit("::").next().unwrap_or(type_name);
    encode(Parts {
        what: format!("{name} v{version}"),
        header: ResponseHeader::default().with_correlation_id(correlation_id),
        header_version: Resp::header_version(version),
        body: response,
        version,
        prefixed: true,
    })
}

/// Decodes the answer to a `Req` at `version` (a frame without its size prefix), checking
/// that it answers `correlation_id`.
pub fn decode_response<Req: Request>(
    version: i16,
    correlation_id: i32,
    mut frame: Bytes,
    refuse_trailing_bytes: bool,
) -> Result<Req::Response, CodecError> {
    let what = describe(api_key::<Req>()?, version, "response");
    let decode_error = |error: anyhow::Error| CodecError::Decode {
        what: what.clone(),
        reason: error.to_string(),
    };
    let header = ResponseHeader::decode(&mut frame, Req::Response::header_version(version))
        .map_err(decode_error)?;
    if header.correlation_id != correlation_id {
        return Err(CodecError::Correlation {
            got: header.correlation_id,
            expected: correlation_id,
        });
    }
    let response = Req::Response::decode(&mut frame, version).map_err(decode_error)?;
    if refuse_trailing_bytes && frame.has_remaining() {
        return Err(CodecError::TrailingBytes {
            what,
            left: frame.remaining(),
        });
    }
    Ok(response)
}

/// The correlation id at the front of a response frame (without its size prefix).
pub fn response_correlation_id(frame: &[u8]) -> Option<i32> {
    frame.first_chunk::<4>().map(|id| i32::from_be_bytes(*id))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest, MetadataResponse};
    use kafka_protocol::protocol::decode_request_header_from_buffer;

    use super::*;
    use crate::frame::FrameBounds;

    fn unframe(mut frame: BytesMut) -> Bytes {
        frame::split_frame(&mut frame, FrameBounds::response(1 << 20))
            .expect("in bounds")
            .expect("whole")
    }

    #[test]
    fn a_request_carries_the_header_its_version_calls_for() {
        let request = MetadataRequest::default().with_topics(None);
        for version in [0, 9, 12] {
            let mut frame = encode_request(version, 7, Some("test"), &request).expect("encodes");
            let size = i32::from_be_bytes(*frame.first_chunk::<4>().expect("prefix"));
            assert_eq!(size as usize, frame.len() - 4);
            let mut body = frame.split_off(4).freeze();
            let header = decode_request_header_from_buffer(&mut body).expect("header");
            assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
            assert_eq!(header.request_api_version, version);
            assert_eq!(header.correlation_id, 7);
            assert_eq!(header.client_id.as_deref(), Some("test"));
            assert_eq!(
                MetadataRequest::decode(&mut body, version).expect("body"),
                request
            );
        }
        let body = encode_request_body(3, 1, None, &ApiVersionsRequest::default()).expect("body");
        let framed = encode_request(3, 1, None, &ApiVersionsRequest::default()).expect("frame");
        assert_eq!(&framed[4..], &body[..]);
    }

    #[test]
    fn a_response_round_trips_and_its_correlation_id_is_checked() {
        let response = MetadataResponse::default().with_throttle_time_ms(5);
        for version in [3, 12] {
            let frame = encode_response(version, 9, &response).expect("encodes");
            let body = unframe(frame);
            assert_eq!(response_correlation_id(&body), Some(9));
            let decoded = decode_response::<MetadataRequest>(version, 9, body.clone(), true)
                .expect("decodes");
            assert_eq!(decoded, response);
            assert!(matches!(
                decode_response::<MetadataRequest>(version, 10, body, true),
                Err(CodecError::Correlation {
                    got: 9,
                    expected: 10
                })
            ));
        }
    }

    #[test]
    fn trailing_bytes_are_refused_only_when_asked() {
        let mut frame = encode_response(12, 1, &MetadataResponse::default()).expect("encodes");
        frame.extend_from_slice(b"xx");
        let size = frame.len() - 4;
        frame[..4].copy_from_slice(&(size as i32).to_be_bytes());
        let body = unframe(frame);
        assert!(decode_response::<MetadataRequest>(12, 1, body.clone(), false).is_ok());
        assert!(matches!(
            decode_response::<MetadataRequest>(12, 1, body, true),
            Err(CodecError::TrailingBytes { left: 2, .. })
        ));
    }

    #[test]
    fn a_field_the_version_lacks_is_an_encode_error() {
        let request = MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false);
        assert!(matches!(
            encode_request(3, 1, None, &request),
            Err(CodecError::Encode { .. })
        ));
    }
}
