//! The coordinator side of the fuzz target: the coordinator's actor (the single owner of its
//! tree, sessions and write-ahead log) running on its own thread in this process, fed the way a
//! connection feeds it: each input is a byte stream cut into frames with `jute::frame_length`,
//! each frame decoded with `ConnectRequest::decode` or `Request::decode`, and a decoded request
//! sent as a command on a connected session whose reply is awaited. A frame that does not decode
//! is what would close a real connection.
//!
//! State is bounded: the actor is replaced by a fresh one every [`ACTOR_RESET_INPUTS`] inputs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use super::jute_seeds::{SEED_PARENT, connect_frame};
use crate::coordinator::actor::{Actor, ActorConfig, Command};
use crate::coordinator::jute;
use crate::coordinator::protocol::{ConnectRequest, Request};
use crate::coordinator::session::ConnectionId;
use crate::coordinator::storage;

/// Inputs between two fresh actors.
pub const ACTOR_RESET_INPUTS: u64 = 100_000;
/// How long a request may wait for its reply before it counts as unanswered.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// Ticks (session expiry checks) are sent every this many inputs.
const TICK_EVERY_INPUTS: u64 = 1_000;
/// The frame limit the server applies (jute.maxbuffer).
const MAX_FRAME_BYTES: usize = crate::coordinator::DEFAULT_MAX_FRAME_BYTES;

/// What one jute input did.
#[derive(Debug, Default, Clone, Copy)]
pub struct JuteOutcome {
    /// Frames decoded and answered.
    pub answered: u64,
    /// A frame that did not decode or frame (the connection would be closed).
    pub refused: bool,
    /// Requests without a reply within [`REPLY_TIMEOUT`].
    pub unanswered: u64,
}

/// The actor thread died: a crash.
#[derive(Debug, thiserror::Error)]
#[error("the coordinator actor stopped: {0}")]
pub struct ActorDied(pub String);

/// A running actor and the fuzz client's connection to it.
pub struct JuteTarget {
    parent: PathBuf,
    generation: u64,
    commands: mpsc::Sender<Command>,
    actor: Option<std::thread::JoinHandle<String>>,
    next_connection: ConnectionId,
    connection: ConnectionId,
    replies: mpsc::Receiver<Vec<u8>>,
    inputs: u64,
}

impl JuteTarget {
    /// Starts an actor with its data under `parent`.
    pub async fn start(parent: &Path) -> anyhow::Result<Self> {
        let (commands, actor) = spawn_actor(&parent.join("jute-0"))?;
        let (placeholder, replies) = mpsc::channel(1);
        drop(placeholder);
        let mut target = JuteTarget {
            parent: parent.to_path_buf(),
            generation: 0,
            commands,
            actor: Some(actor),
            next_connection: 1,
            connection: 0,
            replies,
            inputs: 0,
        };
        target.connect().await?;
        target.create_seed_parent().await?;
        Ok(target)
    }

    /// Feeds one input: a handshake stream when `handshake`, else a connected client's stream.
    pub async fn execute(
        &mut self,
        input: &[u8],
        handshake: bool,
    ) -> Result<JuteOutcome, ActorDied> {
        self.inputs += 1;
        if self.inputs.is_multiple_of(ACTOR_RESET_INPUTS) {
            self.restart().await?;
        }
        if self.inputs.is_multiple_of(TICK_EVERY_INPUTS) {
            self.send(Command::Tick).await?;
        }
        let mut outcome = JuteOutcome::default();
        let mut rest = input;
        loop {
            let payload_bytes = match jute::frame_length(rest, MAX_FRAME_BYTES) {
                Ok(Some(payload_bytes)) => payload_bytes,
                // Incomplete: the server would wait for more bytes.
                Ok(None) => return Ok(outcome),
                Err(_) => {
                    outcome.refused = true;
                    return Ok(outcome);
                }
            };
            let payload = &rest[4..4 + payload_bytes];
            rest = &rest[4 + payload_bytes..];
            let answered = if handshake {
                match ConnectRequest::decode(payload) {
                    Ok(request) => self.handshake(request).await?,
                    Err(_) => None,
                }
            } else {
                match Request::decode(payload) {
                    Ok((xid, request)) => self.request(xid, request).await?,
                    Err(_) => None,
                }
            };
            match answered {
                Some(true) => outcome.answered += 1,
                Some(false) => outcome.unanswered += 1,
                None => {
                    outcome.refused = true;
                    return Ok(outcome);
                }
            }
        }
    }

    /// A handshake on a connection of its own, which then disconnects. `Some(answered)`.
    async fn handshake(&mut self, request: ConnectRequest) -> Result<Option<bool>, ActorDied> {
        let connection = self.next_connection();
        let (outbox, mut replies) = mpsc::channel(64);
        self.send(Command::Connect {
            connection,
            peer: peer(),
            request,
            outbox,
        })
        .await?;
        let answered = tokio::time::timeout(REPLY_TIMEOUT, replies.recv()).await;
        self.send(Command::Disconnected { connection }).await?;
        Ok(Some(answered.is_ok()))
    }

    /// A request on the fuzz client's session; its reply awaited. `Some(answered)`.
    async fn request(&mut self, xid: i32, request: Request) -> Result<Option<bool>, ActorDied> {
        self.send(Command::Request {
            connection: self.connection,
            xid,
            request,
        })
        .await?;
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.replies.recv()).await {
                Ok(Some(frame)) if reply_xid(&frame) == Some(xid) => return Ok(Some(true)),
                // A watch notification or an older reply.
                Ok(Some(_)) => continue,
                Ok(None) => {
                    // The actor closed the session (closeSession, expiry): a new one, as a
                    // client would open.
                    self.connect()
                        .await
                        .map_err(|e| ActorDied(format!("{e:#}")))?;
                    return Ok(Some(true));
                }
                Err(_) => return Ok(Some(false)),
            }
        }
    }

    /// Opens the fuzz client's session on a new connection.
    async fn connect(&mut self) -> anyhow::Result<()> {
        let connection = self.next_connection();
        let (outbox, mut replies) = mpsc::channel(16_384);
        let frame = connect_frame(0, 30_000);
        let request = ConnectRequest::decode(&frame[4..]).context("the connect seed")?;
        self.send(Command::Connect {
            connection,
            peer: peer(),
            request,
            outbox,
        })
        .await?;
        tokio::time::timeout(REPLY_TIMEOUT, replies.recv())
            .await
            .context("no answer to the fuzz client's connect")?
            .context("the fuzz client's connect was refused")?;
        self.connection = connection;
        self.replies = replies;
        Ok(())
    }

    async fn create_seed_parent(&mut self) -> anyhow::Result<()> {
        let mut writer = jute::Writer::new();
        writer
            .i32(1)
            .i32(crate::coordinator::protocol::op::CREATE)
            .string(SEED_PARENT)
            .buffer(b"")
            .i32(0)
            .i32(0);
        let (xid, request) =
            Request::decode(&writer.into_bytes()).context("the seed parent's create")?;
        self.request(xid, request).await?;
        Ok(())
    }

    /// Replaces the actor with a fresh one in a new directory (the old one is deleted).
    async fn restart(&mut self) -> Result<(), ActorDied> {
        self.stop().await?;
        let old = self.parent.join(format!("jute-{}", self.generation));
        let _ = std::fs::remove_dir_all(old);
        self.generation += 1;
        let dir = self.parent.join(format!("jute-{}", self.generation));
        let (commands, actor) = spawn_actor(&dir).map_err(|e| ActorDied(format!("{e:#}")))?;
        self.commands = commands;
        self.actor = Some(actor);
        self.connect()
            .await
            .map_err(|e| ActorDied(format!("{e:#}")))?;
        self.create_seed_parent()
            .await
            .map_err(|e| ActorDied(format!("{e:#}")))
    }

    /// Stops the actor; an actor that died on its own is a crash.
    pub async fn stop(&mut self) -> Result<(), ActorDied> {
        let _ = self.commands.send(Command::Shutdown).await;
        let Some(actor) = self.actor.take() else {
            return Ok(());
        };
        let ended = tokio::task::spawn_blocking(move || actor.join())
            .await
            .map_err(|e| ActorDied(e.to_string()))?;
        match ended {
            Ok(outcome) if outcome.is_empty() => Ok(()),
            Ok(outcome) => Err(ActorDied(outcome)),
            Err(payload) => Err(ActorDied(super::kafka_target::panic_message(&*payload))),
        }
    }

    async fn send(&mut self, command: Command) -> Result<(), ActorDied> {
        if self.commands.send(command).await.is_ok() {
            return Ok(());
        }
        let reason = match self.stop().await {
            Ok(()) => "it stopped taking commands".to_string(),
            Err(died) => died.0,
        };
        Err(ActorDied(reason))
    }

    fn next_connection(&mut self) -> ConnectionId {
        self.next_connection += 1;
        self.next_connection
    }
}

/// Starts an actor on a thread of its own; the thread's result is empty when it stopped
/// cleanly, else the reason.
fn spawn_actor(
    dir: &Path,
) -> anyhow::Result<(mpsc::Sender<Command>, std::thread::JoinHandle<String>)> {
    let (database, wal, _) =
        storage::recover(dir).with_context(|| format!("recovering {}", dir.display()))?;
    let actor = Actor::new(
        ActorConfig {
            data_dir: dir.to_path_buf(),
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 60_000,
            snapshot_count: 100_000,
        },
        database,
        wal,
    );
    let (commands, inbox) = mpsc::channel(1_024);
    let subscriber = super::quiet_subscriber();
    let thread = std::thread::Builder::new()
        .name("fuzz-actor".into())
        .spawn(move || {
            tracing::dispatcher::with_default(&subscriber, || match actor.run(inbox) {
                Ok(()) => String::new(),
                Err(error) => error.to_string(),
            })
        })
        .context("starting the actor thread")?;
    Ok((commands, thread))
}

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1))
}

/// The xid of a reply frame (after its length prefix).
fn reply_xid(frame: &[u8]) -> Option<i32> {
    let xid = frame.get(4..8)?;
    Some(i32::from_be_bytes([xid[0], xid[1], xid[2], xid[3]]))
}
