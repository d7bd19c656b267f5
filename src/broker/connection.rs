//! One client connection: reads size-prefixed request frames (a cheap "is a whole frame here"
//! check, then the parse), dispatches each in arrival order, and writes the responses in that
//! same order even though later ones may be ready first (pipelining).
//!
//! A frame larger than `socket.request.max.bytes`, an unknown API key or a request that does
//! not decode closes this connection (logged); other connections and stored data are
//! untouched. A frame larger than [`SMALL_FRAME_BYTES`] is read only once the shared request
//! pool (`queued.max.request.bytes`) grants its size, and its buffer grows with the bytes that
//! arrive (see [`super::connection_limits`]). A connection that sends nothing and awaits no
//! response for `connections.max.idle.ms` is closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_wire::frame::{self, FrameBounds, FrameError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinHandle;

use super::connection_limits::{ConnectionLimits, SMALL_FRAME_BYTES};
use super::context::Broker;
use super::handlers::{self, Reply};

/// Requests read but not yet answered, per connection (back-pressure on pipelining clients).
const MAX_IN_FLIGHT: usize = 128;
/// The buffer a connection starts with.
const INITIAL_BUFFER_BYTES: usize = 4 * 1024;

/// Why a connection was closed by us.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("frame of {size} bytes exceeds socket.request.max.bytes {max}")]
    FrameTooLarge { size: i64, max: usize },
    #[error("frame of {0} bytes is too short for a request header")]
    FrameTooShort(i64),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("idle for connections.max.idle.ms ({} ms)", .0.as_millis())]
    Idle(Duration),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A whole request frame (without its size prefix) and the pool reservation it was read under,
/// released when the request has been handled.
struct Frame {
    bytes: Bytes,
    reservation: Option<OwnedSemaphorePermit>,
}

/// The reading side: a socket and its buffer.
struct FrameReader {
    socket: OwnedReadHalf,
    buffer: BytesMut,
    limits: Arc<ConnectionLimits>,
    /// The pool's grant for the large frame being received.
    reservation: Option<OwnedSemaphorePermit>,
    /// Responses queued but not yet written: the connection is not idle while there are some.
    unanswered: Arc<AtomicUsize>,
}

impl FrameReader {
    /// The next whole frame; `Ok(None)` on a clean end of stream.
    async fn read_frame(&mut self) -> Result<Option<Frame>, ConnectionError> {
        loop {
            let announced = self.announced_size()?;
            if let Some(size) = announced {
                if self.buffer.len() >= 4 + size {
                    return Ok(Some(self.split_frame(size)));
                }
                if 4 + size > SMALL_FRAME_BYTES && self.reservation.is_none() {
                    self.reserve(size).await?;
                }
            }
            // Small frames may be read ahead (pipelining); a large one is read to its end only,
            // its buffer doubling as its bytes arrive (never sized by the announcement alone).
            let allowed = match announced {
                Some(size) if 4 + size > SMALL_FRAME_BYTES => {
                    let missing = 4 + size - self.buffer.len();
                    self.buffer
                        .reserve(missing.min(self.buffer.len().max(SMALL_FRAME_BYTES)));
                    missing
                }
                _ => SMALL_FRAME_BYTES.saturating_sub(self.buffer.len()).max(1),
            };
            let unanswered = Arc::clone(&self.unanswered);
            let mut window = (&mut self.buffer).limit(allowed);
            let read = idle_bounded(
                self.limits.idle_timeout,
                &unanswered,
                self.socket.read_buf(&mut window),
            )
            .await??;
            if read == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(ConnectionError::Truncated)
                };
            }
        }
    }

    /// The size the buffered frame announces, once its 4-byte prefix is here (`kafka_wire`'s
    /// check, against `socket.request.max.bytes`).
    fn announced_size(&self) -> Result<Option<usize>, ConnectionError> {
        let bounds = FrameBounds::request(self.limits.max_frame_bytes);
        frame::announced_size(&self.buffer, bounds).map_err(|error| match error {
            FrameError::TooShort { size, .. } => ConnectionError::FrameTooShort(size),
            FrameError::TooLarge { size, max } => ConnectionError::FrameTooLarge { size, max },
        })
    }

    /// Waits until the pool grants a large frame's size.
    async fn reserve(&mut self, size: usize) -> Result<(), ConnectionError> {
        if let Some(pool) = &self.limits.request_memory {
            let permits = u32::try_from(size).unwrap_or(u32::MAX);
            let pool = Arc::clone(pool);
            let granted = idle_bounded(
                self.limits.idle_timeout,
                &self.unanswered,
                pool.acquire_many_owned(permits),
            )
            .await?;
            // The pool is never closed.
            self.reservation = granted.ok();
        }
        Ok(())
    }

    /// Splits off the frame at the front (whose whole `size` bytes are buffered).
    fn split_frame(&mut self, size: usize) -> Frame {
        let mut frame = self.buffer.split_to(4 + size);
        let _prefix = frame.split_to(4);
        if self.buffer.capacity() > 2 * SMALL_FRAME_BYTES && self.buffer.len() < SMALL_FRAME_BYTES {
            // Do not keep a large frame's allocation as this connection's buffer.
            let mut fresh = BytesMut::with_capacity(INITIAL_BUFFER_BYTES.max(self.buffer.len()));
            fresh.extend_from_slice(&self.buffer);
            self.buffer = fresh;
        }
        Frame {
            bytes: frame.freeze(),
            reservation: self.reservation.take(),
        }
    }
}

/// Runs `step`, failing with [`ConnectionError::Idle`] once `idle` passes without it finishing
/// while no response is awaited (`unanswered` is zero).
async fn idle_bounded<T>(
    idle: Duration,
    unanswered: &AtomicUsize,
    step: impl std::future::Future<Output = T>,
) -> Result<T, ConnectionError> {
    tokio::pin!(step);
    loop {
        match tokio::time::timeout(idle, &mut step).await {
            Ok(done) => return Ok(done),
            Err(_) if unanswered.load(Ordering::Acquire) > 0 => continue,
            Err(_) => return Err(ConnectionError::Idle(idle)),
        }
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
    limits: Arc<ConnectionLimits>,
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
    let unanswered = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write_responses(write_half, queue, Arc::clone(&unanswered)));
    let mut reader = FrameReader {
        socket: read_half,
        buffer: BytesMut::with_capacity(INITIAL_BUFFER_BYTES),
        limits,
        reservation: None,
        unanswered,
    };
    let outcome = tokio::select! {
        outcome = read_requests(&mut reader, &broker, responses) => outcome,
        _ = shutdown.wait_for(|stop| *stop) => Ok(()),
    };
    match outcome {
        Ok(()) => tracing::debug!("{peer}: connection closed"),
        Err(error @ ConnectionError::Idle(_)) => {
            tracing::info!("{peer}: closing connection: {error}")
        }
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
        let pending = match handlers::dispatch(broker, frame.bytes).await {
            Ok(Reply::Now(response)) => Pending::Ready(response),
            Ok(Reply::Later(future)) => Pending::Running(tokio::spawn(future)),
            Err(error) => return Err(ConnectionError::BadRequest(format!("{error:#}"))),
        };
        // The request is handled: its bytes go back to the pool.
        drop(frame.reservation);
        reader.unanswered.fetch_add(1, Ordering::AcqRel);
        if responses.send(pending).await.is_err() {
            // The writer stopped: the client is gone.
            break;
        }
    }
    Ok(())
}

async fn write_responses(
    mut socket: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Pending>,
    unanswered: Arc<AtomicUsize>,
) {
    while let Some(pending) = queue.recv().await {
        let _answered = Answered(&unanswered);
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

/// Counts a queued response as answered when dropped (written, skipped or abandoned).
struct Answered<'a>(&'a AtomicUsize);

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
