//! The single owner of the coordinator's state. It runs on its own thread, takes commands
//! (connects, requests, disconnects, ticks) from one bounded queue in batches, applies them in
//! order, appends the batch's transactions to the log and fsyncs once (group commit), and only
//! then releases the batch's replies and watch events, so nobody ever sees a change that a crash
//! could take back. Session expiry is checked on every tick.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::coordinator::database::{Applied, Database, Refused};
use crate::coordinator::jute::Writer;
use crate::coordinator::protocol::{self, ConnectRequest, ErrorCode, EventType, Request};
use crate::coordinator::session::{ConnectionId, Sessions};
use crate::coordinator::snapshot;
use crate::coordinator::storage::StorageError;
use crate::coordinator::tree::Trigger;
use crate::coordinator::txn::{Mutation, PASSWORD_BYTES};
use crate::coordinator::wal::Wal;
use crate::coordinator::watch::Watches;
#[cfg(feature = "planted-bugs")]
use crate::planted::{self, PlantedBug};

mod reads;
mod writes;

/// Most commands handled between two fsyncs.
const MAX_BATCH: usize = 4096;

/// What connections and timers tell the actor.
#[derive(Debug)]
pub enum Command {
    /// A connection's first frame. `outbox` carries frames back; dropping it closes the socket.
    Connect {
        connection: ConnectionId,
        peer: SocketAddr,
        request: ConnectRequest,
        outbox: mpsc::Sender<Vec<u8>>,
    },
    Request {
        connection: ConnectionId,
        xid: i32,
        request: Request,
    },
    Disconnected {
        connection: ConnectionId,
    },
    Tick,
    Shutdown,
}

/// Limits and places the actor works with.
#[derive(Debug, Clone)]
pub struct ActorConfig {
    pub data_dir: PathBuf,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub snapshot_count: u64,
}

/// The actor stopped because the disk failed: acknowledging more would break durability.
#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    #[error("write-ahead log: {0}")]
    Log(#[source] std::io::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
}

#[derive(Debug)]
struct Connection {
    session_id: i64,
    peer: SocketAddr,
    outbox: mpsc::Sender<Vec<u8>>,
}

#[derive(Debug)]
enum Output {
    Frame(Vec<u8>),
    Close,
}

pub struct Actor {
    config: ActorConfig,
    database: Database,
    wal: Wal,
    sessions: Sessions,
    watches: Watches,
    connections: HashMap<ConnectionId, Connection>,
    outputs: Vec<(ConnectionId, Output)>,
    since_snapshot: u64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

impl Actor {
    pub fn new(config: ActorConfig, database: Database, wal: Wal) -> Actor {
        let recovered = database
            .sessions
            .iter()
            .map(|(session_id, record)| (*session_id, record.timeout_ms));
        let sessions = Sessions::new(recovered, Instant::now(), now_ms());
        Actor {
            config,
            database,
            wal,
            sessions,
            watches: Watches::default(),
            connections: HashMap::new(),
            outputs: Vec::new(),
            since_snapshot: 0,
        }
    }

    /// Serves commands until `Shutdown` or until every sender is gone.
    pub fn run(mut self, mut commands: mpsc::Receiver<Command>) -> Result<(), ActorError> {
        let mut stopping = false;
        while !stopping {
            let Some(first) = commands.blocking_recv() else {
                break;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            for command in batch {
                match command {
                    Command::Shutdown => stopping = true,
                    command => self.handle(command),
                }
            }
            #[cfg(feature = "planted-bugs")] // planted bug: ack-before-wal-fsync
            if planted::is_active(PlantedBug::AckBeforeWalFsync) {
                self.dispatch();
            }
            self.wal.sync().map_err(ActorError::Log)?;
            self.dispatch();
            self.maybe_snapshot()?;
        }
        self.wal.sync().map_err(ActorError::Log)?;
        info!("coordinator stopped at zxid {:#x}", self.database.zxid);
        Ok(())
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Connect {
                connection,
                peer,
                request,
                outbox,
            } => self.connect(connection, peer, request, outbox),
            Command::Request {
                connection,
                xid,
                request,
            } => {
                let Some(session_id) = self
                    .connections
                    .get(&connection)
                    .map(|connection| connection.session_id)
                    .filter(|session_id| self.sessions.is_live(*session_id))
                else {
                    return;
                };
                self.sessions.touch(session_id, Instant::now());
                self.request(connection, session_id, xid, request);
            }
            Command::Disconnected { connection } => self.disconnected(connection),
            Command::Tick => self.expire_sessions(),
            Command::Shutdown => {}
        }
    }

    fn send(&mut self, connection: ConnectionId, frame: Vec<u8>) {
        self.outputs.push((connection, Output::Frame(frame)));
    }

    fn reply(
        &mut self,
        connection: ConnectionId,
        xid: i32,
        error: ErrorCode,
        body: impl FnOnce(&mut Writer),
    ) {
        let frame = protocol::reply_frame(xid, self.database.zxid, error, body);
        self.send(connection, frame);
    }

    fn connect(
        &mut self,
        connection: ConnectionId,
        peer: SocketAddr,
        request: ConnectRequest,
        outbox: mpsc::Sender<Vec<u8>>,
    ) {
        if request.last_zxid_seen > self.database.zxid {
            error!(
                "refusing session request from {peer}: it has seen zxid {:#x}, our last zxid is {:#x}",
                request.last_zxid_seen, self.database.zxid
            );
            return;
        }
        let now = Instant::now();
        if request.session_id == 0 {
            let timeout_ms = request.timeout_ms.clamp(
                self.config.min_session_timeout_ms,
                self.config.max_session_timeout_ms,
            );
            let session_id = self.sessions.next_id();
            let password: [u8; PASSWORD_BYTES] = rand::random();
            let mutation = Mutation::CreateSession {
                session_id,
                timeout_ms,
                password,
            };
            if let Err(refused) = self.execute(mutation) {
                error!("cannot create session {session_id:#x}: {refused:?}");
                return;
            }
            self.sessions.open(session_id, timeout_ms, now, connection);
            self.connections.insert(
                connection,
                Connection {
                    session_id,
                    peer,
                    outbox,
                },
            );
            info!("session {session_id:#x} opened for {peer} with timeout {timeout_ms} ms");
            let frame = protocol::connect_response_frame(timeout_ms, session_id, &password);
            self.send(connection, frame);
            return;
        }
        let session_id = request.session_id;
        let known = self
            .database
            .sessions
            .get(&session_id)
            .filter(|record| record.password[..] == request.password[..])
            .copied();
        self.connections.insert(
            connection,
            Connection {
                session_id: if known.is_some() { session_id } else { 0 },
                peer,
                outbox,
            },
        );
        match known {
            Some(record) if self.sessions.is_live(session_id) => {
                if let Some(old) = self.sessions.attach(session_id, connection, now) {
                    self.watches.remove_session(session_id);
                    self.outputs.push((old, Output::Close));
                }
                info!("session {session_id:#x} reconnected from {peer}");
                let frame = protocol::connect_response_frame(
                    record.timeout_ms,
                    session_id,
                    &record.password,
                );
                self.send(connection, frame);
            }
            _ => {
                info!("session {session_id:#x} from {peer} is expired or unknown");
                let frame = protocol::connect_response_frame(0, 0, &[0; PASSWORD_BYTES]);
                self.send(connection, frame);
                self.outputs.push((connection, Output::Close));
            }
        }
    }

    fn disconnected(&mut self, connection: ConnectionId) {
        let Some(closed) = self.connections.remove(&connection) else {
            return;
        };
        if self.sessions.detach(closed.session_id, connection) {
            self.watches.remove_session(closed.session_id);
            info!(
                "connection from {} closed; session {:#x} lives until its timeout",
                closed.peer, closed.session_id
            );
        }
    }

    fn expire_sessions(&mut self) {
        for session_id in self.sessions.expired(Instant::now()) {
            info!("session {session_id:#x} expired");
            self.end_session(session_id);
        }
    }

    /// Deletes the session's ephemerals (durably), forgets its watches and closes its connection.
    fn end_session(&mut self, session_id: i64) {
        #[cfg(feature = "planted-bugs")]
        // planted bugs: ephemerals-outlive-session, expiry-deletions-not-notified
        if self.planted_end_session(session_id) {
            return;
        }
        if let Err(refused) = self.execute(Mutation::CloseSession { session_id }) {
            error!("cannot close session {session_id:#x}: {refused:?}");
        }
        if let Some(connection) = self.sessions.remove(session_id) {
            self.outputs.push((connection, Output::Close));
        }
        self.watches.remove_session(session_id);
    }

    /// The planted bugs of session expiry: the session ends but its ephemerals stay
    /// (`ephemerals-outlive-session`), or they go without a notification to anyone who watches
    /// them (`expiry-deletions-not-notified`). Returns whether one of them ended the session.
    #[cfg(feature = "planted-bugs")]
    fn planted_end_session(&mut self, session_id: i64) -> bool {
        if planted::is_active(PlantedBug::ExpiryDeletionsNotNotified) {
            let close = Mutation::CloseSession { session_id };
            if let Ok((_, txn)) = self.database.execute(now_ms(), close, &mut Vec::new()) {
                self.wal.append(&txn.encode());
                self.since_snapshot += 1;
            }
        } else if !planted::is_active(PlantedBug::EphemeralsOutliveSession) {
            return false;
        }
        if let Some(connection) = self.sessions.remove(session_id) {
            self.outputs.push((connection, Output::Close));
        }
        self.watches.remove_session(session_id);
        true
    }

    /// Executes a mutation: on success its transaction is logged (synced at the end of the batch)
    /// and the watch events it triggers are queued before the caller's reply.
    fn execute(&mut self, mutation: Mutation) -> Result<Applied, Refused> {
        let mut triggers = Vec::new();
        let (applied, txn) = self.database.execute(now_ms(), mutation, &mut triggers)?;
        self.wal.append(&txn.encode());
        self.since_snapshot += 1;
        self.fire(txn.zxid, &triggers);
        Ok(applied)
    }

    fn fire(&mut self, zxid: i64, triggers: &[Trigger]) {
        for trigger in triggers {
            for session_id in self.watches.trigger(&trigger.path, trigger.event) {
                self.notify(session_id, zxid, trigger.event, &trigger.path);
            }
        }
    }

    fn notify(&mut self, session_id: i64, zxid: i64, event: EventType, path: &str) {
        if let Some(connection) = self.sessions.connection_of(session_id) {
            self.send(connection, protocol::notification_frame(zxid, event, path));
        }
    }

    fn request(&mut self, connection: ConnectionId, session_id: i64, xid: i32, request: Request) {
        match request {
            Request::Ping | Request::Auth => self.reply(connection, xid, ErrorCode::Ok, |_| {}),
            Request::Create(create) => self.create(connection, session_id, xid, create),
            Request::Delete { path, version } => self.delete(connection, xid, path, version),
            Request::SetData {
                path,
                data,
                version,
            } => self.set_data(connection, xid, path, data, version),
            Request::Multi(ops) => self.multi(connection, session_id, xid, ops),
            Request::CloseSession => {
                info!("session {session_id:#x} closed by its client");
                if let Err(refused) = self.execute(Mutation::CloseSession { session_id }) {
                    error!("cannot close session {session_id:#x}: {refused:?}");
                }
                self.reply(connection, xid, ErrorCode::Ok, |_| {});
                self.sessions.remove(session_id);
                self.watches.remove_session(session_id);
                self.outputs.push((connection, Output::Close));
            }
            Request::SetWatches(watches) => {
                self.set_watches(session_id, watches);
                self.reply(connection, xid, ErrorCode::Ok, |_| {});
            }
            Request::Unimplemented { op_code } => {
                warn!("session {session_id:#x} sent op code {op_code}, which we do not implement");
                self.reply(connection, xid, ErrorCode::Unimplemented, |_| {});
            }
            Request::MultiRead(ops) => self.multi_read(connection, session_id, xid, ops),
            Request::GetEphemerals { prefix } => {
                self.get_ephemerals(connection, session_id, xid, &prefix)
            }
            read => self.read(connection, session_id, xid, read),
        }
    }

    /// Sends the batch's frames in order; a connection that cannot keep up is closed (its client
    /// reconnects and restores its watches with setWatches, so no event is lost).
    fn dispatch(&mut self) {
        let outputs = std::mem::take(&mut self.outputs);
        for (connection, output) in outputs {
            match output {
                Output::Frame(frame) => {
                    let Some(open) = self.connections.get(&connection) else {
                        continue;
                    };
                    if let Err(error) = open.outbox.try_send(frame) {
                        if matches!(error, mpsc::error::TrySendError::Full(_)) {
                            warn!(
                                "closing connection from {}: it does not read its replies",
                                open.peer
                            );
                        }
                        self.disconnected(connection);
                    }
                }
                Output::Close => {
                    if let Some(closed) = self.connections.remove(&connection) {
                        self.sessions.detach(closed.session_id, connection);
                    }
                }
            }
        }
    }

    fn maybe_snapshot(&mut self) -> Result<(), ActorError> {
        if self.since_snapshot < self.config.snapshot_count {
            return Ok(());
        }
        let started = Instant::now();
        let path = snapshot::write(&self.config.data_dir, &self.database)?;
        self.wal
            .rotate(self.database.zxid + 1)
            .map_err(ActorError::Log)?;
        self.since_snapshot = 0;
        info!(
            "snapshot {} written in {} ms ({} znodes, {} sessions)",
            path.display(),
            started.elapsed().as_millis(),
            self.database.tree.len(),
            self.sessions.len()
        );
        Ok(())
    }
}
