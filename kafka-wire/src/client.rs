//! An async connection to one broker: one request at a time, each bounded by the connection's
//! timeout so that a paused or dead broker never hangs the caller.
//!
//! [`Client::connect`] only connects (a broker talking to its own kind knows the versions);
//! [`Client::negotiate`] (or [`Client::connect_negotiated`]) asks ApiVersions so that
//! [`Client::request`] can pick, per API, the highest version both sides speak.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::protocol::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::frame::{self, FrameBounds};
use crate::message::{self, CodecError};
use crate::versions::{self, API_VERSIONS_VERSION, ApiVersions};
use crate::{Options, WireError};

/// The most a read reserves ahead of the bytes that arrived (a large frame's buffer grows
/// with its bytes, never sized by its announcement alone).
const READ_CHUNK_BYTES: usize = 1024 * 1024;

/// One open connection.
pub struct Client {
    address: String,
    socket: TcpStream,
    options: Options,
    bounds: FrameBounds,
    next_correlation_id: i32,
    buffer: BytesMut,
    /// What the broker serves, once asked.
    versions: Option<ApiVersions>,
}

impl Client {
    /// Connects to `address` (`host:port`) within the options' timeout.
    pub async fn connect(address: &str, options: &Options) -> Result<Self, WireError> {
        let connect_error = |source| WireError::Connect {
            peer: address.to_string(),
            source,
        };
        let socket = match tokio::time::timeout(options.timeout, TcpStream::connect(address)).await
        {
            Ok(Ok(socket)) => socket,
            Ok(Err(source)) => return Err(connect_error(source)),
            Err(_) => return Err(connect_error(std::io::ErrorKind::TimedOut.into())),
        };
        // Requests are small and answered one at a time: do not let Nagle hold them back.
        let _ = socket.set_nodelay(true);
        Ok(Client {
            address: address.to_string(),
            socket,
            bounds: options.response_bounds(),
            options: options.clone(),
            next_correlation_id: 0,
            buffer: BytesMut::with_capacity(64 * 1024),
            versions: None,
        })
    }

    /// Connects and asks ApiVersions.
    pub async fn connect_negotiated(address: &str, options: &Options) -> Result<Self, WireError> {
        let mut client = Client::connect(address, options).await?;
        client.negotiate().await?;
        Ok(client)
    }

    /// `host:port` of the broker.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Asks the broker which versions it serves (once more, at the version it names, when it
    /// refuses ours).
    pub async fn negotiate(&mut self) -> Result<&ApiVersions, WireError> {
        let request =
            versions::api_versions_request(&self.options.client_id, env!("CARGO_PKG_VERSION"));
        let mut version = API_VERSIONS_VERSION;
        let mut retried = false;
        let response = loop {
            let (correlation_id, answer) = self.exchange(version, &request).await?;
            let decoded = message::decode_response::<ApiVersionsRequest>(
                version,
                correlation_id,
                answer.clone(),
                false,
            );
            let refused = match &decoded {
                Ok(response) => response.error_code == versions::UNSUPPORTED_VERSION,
                Err(_) => true,
            };
            let retry = match refused {
                // The refusal's body is v0, after a v0 response header (a correlation id).
                true if !retried => ApiVersions::retry_version(version, &answer.slice(4..)),
                _ => None,
            };
            match (retry, decoded) {
                (Some(next), _) => {
                    version = next;
                    retried = true;
                }
                (None, Ok(response)) => break response,
                (None, Err(error)) => return Err(self.codec_error(error)),
            }
        };
        Ok(self.versions.insert(ApiVersions::from_response(&response)))
    }

    /// What the broker serves (`None` before [`Client::negotiate`]).
    pub fn versions(&self) -> Option<&ApiVersions> {
        self.versions.as_ref()
    }

    /// Whether the broker lists `api` (false before [`Client::negotiate`]).
    pub fn supports(&self, api: ApiKey) -> bool {
        self.versions.as_ref().is_some_and(|v| v.supports(api))
    }

    /// The version of `Req` to send: the highest both sides speak, at most `ours_max`.
    pub fn version<Req: Request>(&self, ours_max: i16) -> Result<i16, WireError> {
        let api = message::api_key::<Req>().map_err(|error| self.codec_error(error))?;
        self.versions
            .as_ref()
            .and_then(|versions| versions.choose(api, ours_max))
            .ok_or_else(|| WireError::Unsupported {
                peer: self.address.clone(),
                api,
            })
    }

    /// Sends `request` at the highest version both sides speak (at most `ours_max`) and
    /// reads its answer; returns the version used with it.
    pub async fn request<Req: Request>(
        &mut self,
        ours_max: i16,
        request: &Req,
    ) -> Result<(i16, Req::Response), WireError> {
        let version = self.version::<Req>(ours_max)?;
        Ok((version, self.call(version, request).await?))
    }

    /// Sends `request` at `version` and reads its answer.
    pub async fn call<Req: Request>(
        &mut self,
        version: i16,
        request: &Req,
    ) -> Result<Req::Response, WireError> {
        let (correlation_id, answer) = self.exchange(version, request).await?;
        message::decode_response::<Req>(
            version,
            correlation_id,
            answer,
            self.options.refuse_trailing_bytes,
        )
        .map_err(|error| self.codec_error(error))
    }

    /// Writes one request and reads one frame back, within the timeout.
    async fn exchange<Req: Request>(
        &mut self,
        version: i16,
        request: &Req,
    ) -> Result<(i32, Bytes), WireError> {
        let api = message::api_key::<Req>().map_err(|error| self.codec_error(error))?;
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = message::encode_request(
            version,
            correlation_id,
            Some(&self.options.client_id),
            request,
        )
        .map_err(|error| self.codec_error(error))?;
        let timeout = self.options.timeout;
        let exchange = async {
            self.socket
                .write_all(&frame)
                .await
                .map_err(|source| self.io_error(source))?;
            self.read_frame().await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => Ok((correlation_id, answer?)),
            Err(_) => Err(WireError::Timeout {
                peer: self.address.clone(),
                what: format!("the answer to {api:?} v{version}"),
                timeout_ms: timeout.as_millis(),
            }),
        }
    }

    async fn read_frame(&mut self) -> Result<Bytes, WireError> {
        loop {
            let frame_error = |source| WireError::Frame {
                peer: self.address.clone(),
                source,
            };
            if let Some(frame) =
                frame::split_frame(&mut self.buffer, self.bounds).map_err(frame_error)?
            {
                return Ok(frame);
            }
            let missing = frame::missing_bytes(&self.buffer, self.bounds).map_err(frame_error)?;
            self.buffer.reserve(missing.min(READ_CHUNK_BYTES));
            let read = self
                .socket
                .read_buf(&mut self.buffer)
                .await
                .map_err(|source| self.io_error(source))?;
            if read == 0 {
                return Err(WireError::Closed {
                    peer: self.address.clone(),
                });
            }
        }
    }

    fn codec_error(&self, source: CodecError) -> WireError {
        WireError::Codec {
            peer: self.address.clone(),
            source,
        }
    }

    fn io_error(&self, source: std::io::Error) -> WireError {
        WireError::Io {
            peer: self.address.clone(),
            source,
        }
    }
}
