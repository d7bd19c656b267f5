//! A blocking connection over `std::net::TcpStream`, for tests that check answers field by
//! field: any API at any version `kafka-protocol` encodes, [`Client::send`] and
//! [`Client::receive`] split so a test can pipeline requests or hold a long poll open, and the
//! raw stream at hand for tests that send what no client would.

use std::io::{Read, Write};
use std::marker::PhantomData;
use std::net::TcpStream;

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::Request;

use crate::frame::{self, FrameBounds};
use crate::message::{self, CodecError};
use crate::{Options, WireError};

/// The most a read reserves ahead of the bytes that arrived.
const READ_CHUNK_BYTES: usize = 1024 * 1024;

/// A request written and not yet answered: what [`Client::receive`] needs to read its answer.
#[must_use = "the answer stays on the stream until received"]
pub struct Pending<Req> {
    version: i16,
    correlation_id: i32,
    request: PhantomData<fn() -> Req>,
}

impl<Req> Pending<Req> {
    pub fn correlation_id(&self) -> i32 {
        self.correlation_id
    }
}

/// One open connection; reads wait at most the options' timeout.
pub struct Client {
    address: String,
    stream: TcpStream,
    options: Options,
    bounds: FrameBounds,
    next_correlation_id: i32,
}

impl Client {
    pub fn connect(address: &str, options: &Options) -> Result<Self, WireError> {
        let connect_error = |source| WireError::Connect {
            peer: address.to_string(),
            source,
        };
        let stream = TcpStream::connect(address).map_err(connect_error)?;
        stream
            .set_read_timeout(Some(options.timeout))
            .and_then(|()| stream.set_write_timeout(Some(options.timeout)))
            .map_err(connect_error)?;
        Ok(Client {
            address: address.to_string(),
            stream,
            bounds: options.response_bounds(),
            options: options.clone(),
            next_correlation_id: 0,
        })
    }

    /// The socket, for tests that write raw bytes or watch the broker close it.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Sends `request` at `version` and reads its answer.
    pub fn call<Req: Request>(
        &mut self,
        version: i16,
        request: &Req,
    ) -> Result<Req::Response, WireError> {
        let pending = self.send(version, request)?;
        self.receive(pending)
    }

    /// Writes `request` at `version`; its answer is read by [`Client::receive`].
    pub fn send<Req: Request>(
        &mut self,
        version: i16,
        request: &Req,
    ) -> Result<Pending<Req>, WireError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = message::encode_request(
            version,
            correlation_id,
            Some(&self.options.client_id),
            request,
        )
        .map_err(|error| self.codec_error(error))?;
        self.stream
            .write_all(&frame)
            .map_err(|source| self.io_error(source))?;
        Ok(Pending {
            version,
            correlation_id,
            request: PhantomData,
        })
    }

    /// Reads the answer to `pending` (answers come in request order).
    pub fn receive<Req: Request>(
        &mut self,
        pending: Pending<Req>,
    ) -> Result<Req::Response, WireError> {
        let frame = self.read_frame()?;
        message::decode_response::<Req>(
            pending.version,
            pending.correlation_id,
            frame,
            self.options.refuse_trailing_bytes,
        )
        .map_err(|error| self.codec_error(error))
    }

    /// Reads one whole frame (without its size prefix).
    pub fn read_frame(&mut self) -> Result<Bytes, WireError> {
        let peer = self.address.clone();
        read_frame(&mut self.stream, self.bounds).map_err(|error| match error {
            ReadError::Frame(source) => WireError::Frame { peer, source },
            ReadError::Closed => WireError::Closed { peer },
            ReadError::TimedOut => WireError::Timeout {
                peer,
                what: "an answer".to_string(),
                timeout_ms: self.options.timeout.as_millis(),
            },
            ReadError::Io(source) => WireError::Io { peer, source },
        })
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

/// Why [`read_frame`] returned no frame.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Frame(frame::FrameError),
    #[error("the peer closed the connection")]
    Closed,
    #[error("the read timed out")]
    TimedOut,
    #[error(transparent)]
    Io(std::io::Error),
}

/// Reads one whole frame (without its size prefix) from `stream`: for tests that hold a raw
/// socket. Its buffer grows with the bytes that arrive, never sized by the prefix alone.
pub fn read_frame(stream: &mut impl Read, bounds: FrameBounds) -> Result<Bytes, ReadError> {
    let mut buffer = BytesMut::new();
    loop {
        if let Some(frame) = frame::split_frame(&mut buffer, bounds).map_err(ReadError::Frame)? {
            return Ok(frame);
        }
        let missing = frame::missing_bytes(&buffer, bounds).map_err(ReadError::Frame)?;
        let start = buffer.len();
        buffer.resize(start + missing.min(READ_CHUNK_BYTES), 0);
        match stream.read(&mut buffer[start..]) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(read) => buffer.truncate(start + read),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => buffer.truncate(start),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ReadError::TimedOut);
            }
            Err(error) => return Err(ReadError::Io(error)),
        }
    }
}
