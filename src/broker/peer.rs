//! A connection from this broker to another one (the replica fetcher's link to a leader):
//! one request at a time, size-prefixed frames, each request and response bounded by a
//! timeout so that a paused or dead peer never hangs the caller.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Responses larger than this are refused (a fetch is bounded by `replica.fetch.max.bytes`
/// per partition; this is a sanity bound).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Why a request to a peer broker failed; the caller drops the connection and retries.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot connect to broker {broker_id} at {address}: {source}")]
    Connect {
        broker_id: i32,
        address: String,
        source: std::io::Error,
    },
    #[error("I/O error talking to broker {broker_id}: {source}")]
    Io {
        broker_id: i32,
        source: std::io::Error,
    },
    #[error("broker {broker_id} did not answer within {timeout_ms} ms")]
    Timeout { broker_id: i32, timeout_ms: u128 },
    #[error("cannot encode or decode a message for broker {broker_id}: {reason}")]
    Codec { broker_id: i32, reason: String },
    #[error("response correlation id {got} from broker {broker_id}, expected {expected}")]
    Correlation {
        broker_id: i32,
        got: i32,
        expected: i32,
    },
}

/// One open connection to broker `broker_id`.
pub struct PeerConnection {
    broker_id: i32,
    client_id: StrBytes,
    socket: TcpStream,
    next_correlation_id: i32,
    buffer: BytesMut,
}

impl PeerConnection {
    /// Connects to `host:port`, at most `timeout`.
    pub async fn connect(
        broker_id: i32,
        host: &str,
        port: i32,
        client_id: String,
        timeout: Duration,
    ) -> Result<Self, PeerError> {
        let address = format!("{host}:{port}");
        let connect_error = |source| PeerError::Connect {
            broker_id,
            address: address.clone(),
            source,
        };
        let socket = match tokio::time::timeout(timeout, TcpStream::connect(&address)).await {
            Ok(Ok(socket)) => socket,
            Ok(Err(source)) => return Err(connect_error(source)),
            Err(_) => return Err(connect_error(std::io::ErrorKind::TimedOut.into())),
        };
        let _ = socket.set_nodelay(true);
        Ok(PeerConnection {
            broker_id,
            client_id: StrBytes::from_string(client_id),
            socket,
            next_correlation_id: 0,
            buffer: BytesMut::with_capacity(64 * 1024),
        })
    }

    /// Sends `request` as `api_key` version `version` and waits, at most `timeout`, for its
    /// response.
    pub async fn send<Req, Resp>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let broker_id = self.broker_id;
        let codec = |error: anyhow::Error| PeerError::Codec {
            broker_id,
            reason: error.to_string(),
        };
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let header_version = Req::header_version(version);
        let size = header.compute_size(header_version).map_err(codec)?
            + request.compute_size(version).map_err(codec)?;
        let mut frame = BytesMut::with_capacity(4 + size);
        frame.put_i32(size as i32);
        header.encode(&mut frame, header_version).map_err(codec)?;
        request.encode(&mut frame, version).map_err(codec)?;
        let exchange = async {
            self.socket.write_all(&frame).await?;
            self.read_frame().await
        };
        let mut body = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(body)) => body,
            Ok(Err(source)) => return Err(PeerError::Io { broker_id, source }),
            Err(_) => {
                return Err(PeerError::Timeout {
                    broker_id,
                    timeout_ms: timeout.as_millis(),
                });
            }
        };
        let response_header =
            ResponseHeader::decode(&mut body, Resp::header_version(version)).map_err(codec)?;
        if response_header.correlation_id != correlation_id {
            return Err(PeerError::Correlation {
                broker_id,
                got: response_header.correlation_id,
                expected: correlation_id,
            });
        }
        Resp::decode(&mut body, version).map_err(codec)
    }

    async fn read_frame(&mut self) -> std::io::Result<bytes::Bytes> {
        loop {
            if self.buffer.len() >= 4 {
                let size = i32::from_be_bytes([
                    self.buffer[0],
                    self.buffer[1],
                    self.buffer[2],
                    self.buffer[3],
                ]);
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > MAX_RESPONSE_BYTES {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("response of {size} bytes is too large"),
                    ));
                }
                if self.buffer.len() >= 4 + size {
                    self.buffer.advance(4);
                    return Ok(self.buffer.split_to(size).freeze());
                }
                self.buffer.reserve(4 + size - self.buffer.len());
            }
            if self.socket.read_buf(&mut self.buffer).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}
