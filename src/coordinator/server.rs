//! The TCP side: a listener, one task per connection that frames bytes into requests for the
//! actor and writes the actor's frames back, a ticker that drives session expiry, and a clean
//! shutdown passed in from outside. A malformed or oversized frame closes only its connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tracing::{error, info, warn};

use super::actor::{Actor, ActorError, Command};
use super::jute;
use super::protocol::{ConnectRequest, Request};
use super::session::ConnectionId;

/// Commands queued for the actor before connections wait.
const COMMAND_QUEUE: usize = 8192;
/// Frames queued for one connection before it counts as not reading.
const OUTBOX_FRAMES: usize = 16384;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 4096;

/// How the server frames and times things.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub tick: Duration,
    pub max_frame_bytes: usize,
}

/// Serves until `shutdown` resolves or the actor stops (a disk error). Returns the actor's end.
pub async fn serve(
    listener: TcpListener,
    actor: Actor,
    limits: ServerLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ActorError> {
    let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
    let mut actor_task = tokio::task::spawn_blocking(move || actor.run(inbox));
    let ticker = tokio::spawn(tick(commands.clone(), limits.tick));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let next_connection = AtomicU64::new(1);
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            () = &mut shutdown => break None,
            ended = &mut actor_task => break Some(ended),
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        warn!("accept failed: {error}");
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    warn!("refusing connection from {peer}: {MAX_CONNECTIONS} connections open");
                    continue;
                };
                let connection = next_connection.fetch_add(1, Ordering::Relaxed);
                let commands = commands.clone();
                tokio::spawn(async move {
                    serve_connection(stream, peer, connection, commands, limits.max_frame_bytes).await;
                    drop(slot);
                });
            }
        }
    };
    ticker.abort();
    let ended = match outcome {
        Some(ended) => ended,
        None => {
            info!("shutting down");
            // If the actor is already gone there is nobody to tell.
            let _ = commands.send(Command::Shutdown).await;
            drop(commands);
            actor_task.await
        }
    };
    match ended {
        Ok(result) => result,
        Err(join_error) => {
            error!("the coordinator's state thread failed: {join_error}");
            Err(ActorError::Log(std::io::Error::other(
                join_error.to_string(),
            )))
        }
    }
}

async fn tick(commands: mpsc::Sender<Command>, period: Duration) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if commands.send(Command::Tick).await.is_err() {
            return;
        }
    }
}

/// Why a connection ended.
enum End {
    ClientClosed,
    ServerClosed,
    Failed(String),
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    connection: ConnectionId,
    commands: mpsc::Sender<Command>,
    max_frame_bytes: usize,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (outbox, mut replies) = mpsc::channel::<Vec<u8>>(OUTBOX_FRAMES);
    // Held until the connect request hands it to the actor.
    let mut outbox = Some(outbox);
    let mut buffer = BytesMut::with_capacity(64 * 1024);
    let end = 'serve: loop {
        if outbox.is_some() && buffer.starts_with(b"ruok") {
            // ZooKeeper's four-letter health check, in place of a connect request.
            let _ = writer.write_all(b"imok").await;
            break End::ServerClosed;
        }
        loop {
            let payload_bytes = match jute::frame_length(&buffer, max_frame_bytes) {
                Ok(Some(payload_bytes)) => payload_bytes,
                Ok(None) => break,
                Err(error) => break 'serve End::Failed(error.to_string()),
            };
            let frame = buffer.split_to(4 + payload_bytes);
            let payload = &frame[4..];
            let command = match outbox.take() {
                Some(outbox) => match ConnectRequest::decode(payload) {
                    Ok(request) => Command::Connect {
                        connection,
                        peer,
                        request,
                        outbox,
                    },
                    Err(error) => {
                        break 'serve End::Failed(format!("malformed connect request: {error}"));
                    }
                },
                None => match Request::decode(payload) {
                    Ok((xid, request)) => Command::Request {
                        connection,
                        xid,
                        request,
                    },
                    Err(error) => break 'serve End::Failed(format!("malformed request: {error}")),
                },
            };
            if commands.send(command).await.is_err() {
                break 'serve End::ServerClosed;
            }
        }
        tokio::select! {
            read = reader.read_buf(&mut buffer) => match read {
                Ok(0) if buffer.is_empty() => break End::ClientClosed,
                Ok(0) => break End::Failed(format!("stream ended inside a frame ({} bytes)", buffer.len())),
                Ok(_) => {}
                Err(error) => break End::Failed(format!("read: {error}")),
            },
            reply = replies.recv() => match reply {
                Some(frame) => {
                    if let Err(error) = writer.write_all(&frame).await {
                        break End::Failed(format!("write: {error}"));
                    }
                }
                None => break End::ServerClosed,
            },
        }
    };
    match end {
        End::ClientClosed | End::ServerClosed => {}
        End::Failed(reason) => error!("closing connection from {peer}: {reason}"),
    }
    if outbox.is_none() {
        // Nobody may be listening any more when the server is stopping.
        let _ = commands.send(Command::Disconnected { connection }).await;
    }
    let _ = writer.shutdown().await;
}
