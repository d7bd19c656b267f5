//! One request/response connection to one broker over the Kafka protocol (`kafka-protocol`
//! codecs), for what rdkafka does not expose: the controller id, raw CreateTopics, the admin
//! tools. The broker's ApiVersions are read once at open so each request can pick the newest
//! version both sides speak. Every read and write is bounded by a timeout; a broker that does not
//! list an API gets a clear "unsupported" error.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What can go wrong on one connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("{address}: timed out after {timeout_ms} ms waiting for {what}")]
    Timeout {
        address: String,
        what: String,
        timeout_ms: u128,
    },
    #[error("i/o with {address}: {source}")]
    Io {
        address: String,
        source: std::io::Error,
    },
    #[error("bad answer from {address}: {message}")]
    Protocol { address: String, message: String },
    /// The broker does not list the API (or no version we speak).
    #[error("UNSUPPORTED_VERSION: the broker at {address} does not support {api:?}")]
    Unsupported { address: String, api: ApiKey },
}

/// The largest response we accept.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// The ApiVersions version we send (what librdkafka sends, so every broker has it).
const API_VERSIONS_VERSION: i16 = 3;
/// How we name ourselves to the broker.
const CLIENT_ID: &str = "kchaos";

/// A connection to one broker.
pub struct Connection {
    address: String,
    stream: TcpStream,
    correlation_id: i32,
    timeout: Duration,
    /// (api key, min, max) as the broker announced them.
    versions: Vec<(i16, i16, i16)>,
}

impl Connection {
    /// Connects to `address` and reads its ApiVersions.
    pub async fn open(address: &str, timeout: Duration) -> Result<Self, ConnectionError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| ConnectionError::Timeout {
                address: address.to_string(),
                what: "the connection".to_string(),
                timeout_ms: timeout.as_millis(),
            })?
            .map_err(|source| ConnectionError::Connect {
                address: address.to_string(),
                source,
            })?;
        let mut connection = Connection {
            address: address.to_string(),
            stream,
            correlation_id: 0,
            timeout,
            versions: Vec::new(),
        };
        let response: ApiVersionsResponse = connection
            .call(
                ApiKey::ApiVersions,
                API_VERSIONS_VERSION,
                &ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
                    .with_client_software_version(StrBytes::from_static_str(env!(
                        "CARGO_PKG_VERSION"
                    ))),
            )
            .await?;
        connection.versions = response
            .api_keys
            .iter()
            .map(|api| (api.api_key, api.min_version, api.max_version))
            .collect();
        Ok(connection)
    }

    /// `host:port` of this broker.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether the broker serves `key` at all.
    pub fn supports(&self, key: ApiKey) -> bool {
        self.versions.iter().any(|(api, _, _)| *api == key as i16)
    }

    /// The version of `key` to use: the broker's newest, at most `ours_max`.
    pub fn version(&self, key: ApiKey, ours_max: i16) -> Result<i16, ConnectionError> {
        let unsupported = || ConnectionError::Unsupported {
            address: self.address.clone(),
            api: key,
        };
        let (_, broker_min, broker_max) = self
            .versions
            .iter()
            .find(|(api, _, _)| *api == key as i16)
            .copied()
            .ok_or_else(unsupported)?;
        let version = broker_max.min(ours_max);
        if version < broker_min || version < key.valid_versions().min {
            return Err(unsupported());
        }
        Ok(version)
    }

    /// Sends `request` as `key` at the newest common version (at most `ours_max`) and reads the
    /// answer.
    pub async fn request<Req, Resp>(
        &mut self,
        key: ApiKey,
        ours_max: i16,
        request: &Req,
    ) -> Result<(i16, Resp), ConnectionError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let version = self.version(key, ours_max)?;
        let response = self.call(key, version, request).await?;
        Ok((version, response))
    }

    /// Sends one request at `version` and reads its answer, within the timeout.
    pub async fn call<Req, Resp>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, ConnectionError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(key, version, request)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectionError::Timeout {
                address: self.address.clone(),
                what: format!("the answer to {key:?}"),
                timeout_ms: timeout.as_millis(),
            }),
        }
    }

    async fn exchange<Req, Resp>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, ConnectionError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, Req::header_version(version))
            .map_err(|error| self.protocol_error(format!("encoding the header: {error}")))?;
        request
            .encode(&mut body, version)
            .map_err(|error| self.protocol_error(format!("encoding {key:?}: {error}")))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .await
            .map_err(|source| self.io_error(source))?;

        let length = self
            .stream
            .read_i32()
            .await
            .map_err(|source| self.io_error(source))?;
        if length < 0 || length as usize > MAX_RESPONSE_BYTES {
            return Err(self.protocol_error(format!("response length {length}")));
        }
        let mut buffer = vec![0u8; length as usize];
        self.stream
            .read_exact(&mut buffer)
            .await
            .map_err(|source| self.io_error(source))?;
        let mut bytes = bytes::Bytes::from(buffer);
        // ApiVersions answers always carry a v0 response header.
        let header_version = if key == ApiKey::ApiVersions {
            0
        } else {
            Resp::header_version(version)
        };
        let response_header = ResponseHeader::decode(&mut bytes, header_version)
            .map_err(|error| self.protocol_error(format!("decoding the header: {error}")))?;
        if response_header.correlation_id != self.correlation_id {
            return Err(self.protocol_error(format!(
                "correlation id {} for request {}",
                response_header.correlation_id, self.correlation_id
            )));
        }
        let response = Resp::decode(&mut bytes, version).map_err(|error| {
            self.protocol_error(format!("decoding {key:?} v{version}: {error}"))
        })?;
        if bytes.has_remaining() {
            tracing::debug!(
                "{} bytes left after {key:?} from {}",
                bytes.remaining(),
                self.address
            );
        }
        Ok(response)
    }

    fn protocol_error(&self, message: String) -> ConnectionError {
        ConnectionError::Protocol {
            address: self.address.clone(),
            message,
        }
    }

    fn io_error(&self, source: std::io::Error) -> ConnectionError {
        ConnectionError::Io {
            address: self.address.clone(),
            source,
        }
    }
}
