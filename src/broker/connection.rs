//! One client connection: reads size-prefixed request frames (a cheap "is a whole frame here"
//! check, then the parse), dispatches each in arrival order, and writes the responses in that
//! same order even though later ones may be ready first (pipelining).
//!
//! A frame larger than `socket.request.max.bytes`, an unknown API key or a request that does
//! not decode closes this connection (logged); other connections and stored data are
//! untouched.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::context::Broker;
use super::handlers::{self, Reply};

/// Requests read but not yet answered, per connection (back-pressure on pipelining clients).
const MAX_IN_FLIGHT: usize = 128;
/// The most buffer grown at a time for a frame still arriving.
const RESERVE_STEP_BYTES: usize = 4 * 1024 * 1024;

/// Why a connection was closed by us.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("frame of {size} bytes exceeds socket.request.max.bytes {max}")]
    FrameTooLarge { size: i64, max: usize },
    #[error("frame of {0} bytes is too short for a request header")]
    FrameTooShort(i64),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// The reading side: a socket and its buffer.
struct FrameReader {
    socket: OwnedReadHalf,
    buffer: BytesMut,
    max_frame_bytes: usize,
}

impl FrameReader {
    /// The next whole frame (without its size prefix); `Ok(None)` on a clean end of stream.
    async fn read_frame(&mut self) -> Result<Option<Bytes>, ConnectionError> {
        loop {
            if let Some(frame) = self.parse_frame()? {
                return Ok(Some(frame));
            }
            if self.socket.read_buf(&mut self.buffer).await? == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(ConnectionError::Truncated)
                };
            }
        }
    }

    /// Cheap check first: is a whole frame buffered? Then split it off.
    fn parse_frame(&mut self) -> Result<Option<Bytes>, ConnectionError> {
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let size = i64::from(i32::from_be_bytes([
            self.buffer[0],
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
        ]));
        if size < 8 {
            return Err(ConnectionError::FrameTooShort(size));
        }
        if size as u64 > self.max_frame_bytes as u64 {
            return Err(ConnectionError::FrameTooLarge {
                size,
                max: self.max_frame_bytes,
            });
        }
        let size = size as usize;
        if self.buffer.len() < 4 + size {
            // Grow towards the frame in steps, so a client that announces a large frame and
            // sends slowly does not pin its whole size at once.
            let missing = 4 + size - self.buffer.len();
            self.buffer.reserve(missing.min(RESERVE_STEP_BYTES));
            return Ok(None);
        }
        self.buffer.advance(4);
        Ok(Some(self.buffer.split_to(size).freeze()))
    }
}

/// A response slot, in request order.
enum Pending {
    Ready(Option<BytesMut>),
    Running(JoinHandle<Option<BytesMut>>),
}

/// Serves one connection until the client leaves, a bad request arrives, or `shutdown` fires.
pub async fn serve(
    socket: TcpStream,
    broker: Arc<Broker>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let peer = socket
        .peer_addr()
        .map_or_else(|_| "unknown peer".to_string(), |addr| addr.to_string());
    if let Err(error) = socket.set_nodelay(true) {
        tracing::debug!("{peer}: cannot set TCP_NODELAY: {error}");
    }
    let (read_half, write_half) = socket.into_split();
    let (responses, queue) = mpsc::channel(MAX_IN_FLIGHT);
    let writer = tokio::spawn(write_responses(write_half, queue));
    let mut reader = FrameReader {
        socket: read_half,
        buffer: BytesMut::with_capacity(64 * 1024),
        max_frame_bytes: broker.config.socket_request_max_bytes,
    };
    let outcome = tokio::select! {
        outcome = read_requests(&mut reader, &broker, responses) => outcome,
        _ = shutdown.wait_for(|stop| *stop) => Ok(()),
    };
    match outcome {
        Ok(()) => tracing::debug!("{peer}: connection closed"),
        Err(error) => tracing::warn!("{peer}: closing connection: {error}"),
    }
    // Responses already queued are still written, then the socket closes.
    let _ = writer.await;
}

async fn read_requests(
    reader: &mut FrameReader,
    broker: &Arc<Broker>,
    responses: mpsc::Sender<Pending>,
) -> Result<(), ConnectionError> {
    while let Some(frame) = reader.read_frame().await? {
        let pending = match handlers::dispatch(broker, frame).await {
            Ok(Reply::Now(response)) => Pending::Ready(response),
            Ok(Reply::Later(future)) => Pending::Running(tokio::spawn(future)),
            Err(error) => return Err(ConnectionError::BadRequest(format!("{error:#}"))),
        };
        if responses.send(pending).await.is_err() {
            // The writer stopped: the client is gone.
            break;
        }
    }
    Ok(())
}

async fn write_responses(mut socket: OwnedWriteHalf, mut queue: mpsc::Receiver<Pending>) {
    while let Some(pending) = queue.recv().await {
        let response = match pending {
            Pending::Ready(response) => response,
            Pending::Running(task) => match task.await {
                Ok(response) => response,
                Err(error) => {
                    tracing::error!("request handler failed: {error}");
                    break;
                }
            },
        };
        let Some(frame) = response else { continue };
        if let Err(error) = socket.write_all(&frame).await {
            tracing::debug!("cannot write response: {error}");
            break;
        }
    }
    let _ = socket.shutdown().await;
}
