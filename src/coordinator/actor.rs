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

use super::database::{Applied, Database, Refused};
use super::jute::Writer;
use super::protocol::{
    self, ConnectRequest, Create, ErrorCode, EventType, MultiOp, MultiResult, Request, SetWatches,
    Stat,
};
use super::session::{ConnectionId, Sessions};
use super::snapshot;
use super::storage::StorageError;
use super::tree::{Outcome, TreeOp, Trigger, is_valid_path};
use super::txn::{Mutation, PASSWORD_BYTES};
use super::wal::Wal;
use super::watch::{WatchKind, Watches};

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
        if let Err(refused) = self.execute(Mutation::CloseSession { session_id }) {
            error!("cannot close session {session_id:#x}: {refused:?}");
        }
        if let Some(connection) = self.sessions.remove(session_id) {
            self.outputs.push((connection, Output::Close));
        }
        self.watches.remove_session(session_id);
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
            Request::Delete { path, version } => {
                let mutation = Mutation::Tree(TreeOp::Delete { path, version });
                let result = self.execute(mutation);
                self.reply_single(connection, xid, result, |_, _| {});
            }
            Request::SetData {
                path,
                data,
                version,
            } => {
                let mutation = Mutation::Tree(TreeOp::SetData {
                    path,
                    data,
                    version,
                });
                let result = self.execute(mutation);
                self.reply_single(connection, xid, result, |outcome, writer| {
                    if let Outcome::DataSet { stat } = outcome {
                        stat.encode(writer);
                    }
                });
            }
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
            Request::GetEphemerals { prefix } => {
                let ephemerals: Vec<String> = self
                    .database
                    .tree
                    .ephemerals_of(session_id)
                    .into_iter()
                    .filter(|path| path.starts_with(&prefix))
                    .collect();
                self.reply(connection, xid, ErrorCode::Ok, |writer| {
                    writer.strings(&ephemerals);
                });
            }
            read => self.read(connection, session_id, xid, read),
        }
    }

    fn reply_single(
        &mut self,
        connection: ConnectionId,
        xid: i32,
        result: Result<Applied, Refused>,
        body: impl FnOnce(&Outcome, &mut Writer),
    ) {
        match result {
            Ok(Applied::Single(outcome)) => self.reply(connection, xid, ErrorCode::Ok, |writer| {
                body(&outcome, writer)
            }),
            Ok(_) => self.reply(connection, xid, ErrorCode::Ok, |_| {}),
            Err(Refused::Single(error) | Refused::Multi(_, error)) => {
                self.reply(connection, xid, error, |_| {})
            }
        }
    }

    fn create_op(session_id: i64, create: &Create) -> Result<TreeOp, ErrorCode> {
        let flags = create.flags.ok_or(ErrorCode::BadArguments)?;
        if !create.has_acl {
            return Err(ErrorCode::InvalidAcl);
        }
        Ok(TreeOp::Create {
            path: create.path.clone(),
            data: create.data.clone(),
            ephemeral_owner: if flags.ephemeral { session_id } else { 0 },
            sequential: flags.sequential,
        })
    }

    fn create(&mut self, connection: ConnectionId, session_id: i64, xid: i32, create: Create) {
        let result = match Self::create_op(session_id, &create) {
            Ok(op) => self.execute(Mutation::Tree(op)),
            Err(error) => Err(Refused::Single(error)),
        };
        self.reply_single(connection, xid, result, |outcome, writer| {
            if let Outcome::Created { path, stat } = outcome {
                writer.string(path);
                if create.with_stat {
                    stat.encode(writer);
                }
            }
        });
    }

    fn multi(&mut self, connection: ConnectionId, session_id: i64, xid: i32, ops: Vec<MultiOp>) {
        let mut tree_ops = Vec::with_capacity(ops.len());
        let mut refused = None;
        for (index, op) in ops.iter().enumerate() {
            let tree_op = match op {
                MultiOp::Create(create) => Self::create_op(session_id, create),
                MultiOp::Delete { path, version } => Ok(TreeOp::Delete {
                    path: path.clone(),
                    version: *version,
                }),
                MultiOp::SetData {
                    path,
                    data,
                    version,
                } => Ok(TreeOp::SetData {
                    path: path.clone(),
                    data: data.clone(),
                    version: *version,
                }),
                MultiOp::Check { path, version } => Ok(TreeOp::Check {
                    path: path.clone(),
                    version: *version,
                }),
            };
            match tree_op {
                Ok(tree_op) => tree_ops.push(tree_op),
                Err(error) => {
                    refused = Some(Refused::Multi(index, error));
                    break;
                }
            }
        }
        let result = match refused {
            Some(refused) => Err(refused),
            None if tree_ops.is_empty() => Ok(Applied::Multi(Vec::new())),
            None => self.execute(Mutation::Multi(tree_ops)),
        };
        let results: Vec<MultiResult> = match result {
            Ok(Applied::Multi(outcomes)) => outcomes
                .into_iter()
                .zip(&ops)
                .map(|(outcome, op)| match outcome {
                    Outcome::Created { path, stat } => MultiResult::Create {
                        path,
                        stat: matches!(op, MultiOp::Create(create) if create.with_stat)
                            .then_some(stat),
                    },
                    Outcome::Deleted => MultiResult::Delete,
                    Outcome::DataSet { stat } => MultiResult::SetData { stat },
                    Outcome::Checked => MultiResult::Check,
                })
                .collect(),
            Ok(_) => Vec::new(),
            Err(refused) => {
                let (failed, error) = match refused {
                    Refused::Multi(failed, error) => (failed, error),
                    Refused::Single(error) => (0, error),
                };
                (0..ops.len())
                    .map(|index| {
                        MultiResult::Error(match index.cmp(&failed) {
                            std::cmp::Ordering::Less => ErrorCode::Ok,
                            std::cmp::Ordering::Equal => error,
                            std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                        })
                    })
                    .collect()
            }
        };
        self.reply(connection, xid, ErrorCode::Ok, |writer| {
            protocol::encode_multi_results(writer, &results)
        });
    }

    fn read(&mut self, connection: ConnectionId, session_id: i64, xid: i32, request: Request) {
        let path = match &request {
            Request::Exists { path, .. }
            | Request::GetData { path, .. }
            | Request::GetChildren { path, .. }
            | Request::GetAcl { path }
            | Request::Sync { path }
            | Request::GetAllChildrenNumber { path }
            | Request::RemoveWatches { path, .. }
            | Request::AddWatch { path, .. } => path.clone(),
            _ => return,
        };
        if !is_valid_path(&path) {
            self.reply(connection, xid, ErrorCode::BadArguments, |_| {});
            return;
        }
        let node = self.database.tree.get(&path).cloned();
        match (request, node) {
            (Request::Exists { watch, .. }, node) => {
                if watch {
                    self.watches.add(session_id, WatchKind::Data, &path);
                }
                match node {
                    Some(node) => {
                        self.reply(connection, xid, ErrorCode::Ok, |w| node.stat().encode(w))
                    }
                    None => self.reply(connection, xid, ErrorCode::NoNode, |_| {}),
                }
            }
            (Request::GetData { watch, .. }, Some(node)) => {
                if watch {
                    self.watches.add(session_id, WatchKind::Data, &path);
                }
                self.reply(connection, xid, ErrorCode::Ok, |writer| {
                    writer.buffer(&node.data);
                    node.stat().encode(writer);
                });
            }
            (
                Request::GetChildren {
                    watch, with_stat, ..
                },
                Some(node),
            ) => {
                if watch {
                    self.watches.add(session_id, WatchKind::Child, &path);
                }
                let children: Vec<&String> = node.children.iter().collect();
                self.reply(connection, xid, ErrorCode::Ok, |writer| {
                    writer.strings(&children);
                    if with_stat {
                        node.stat().encode(writer);
                    }
                });
            }
            (Request::GetAcl { .. }, Some(node)) => {
                self.reply(connection, xid, ErrorCode::Ok, |writer| {
                    // Every node is open to everyone: world:anyone with all permissions.
                    writer.i32(1).i32(31).string("world").string("anyone");
                    node.stat().encode(writer);
                });
            }
            (Request::Sync { .. }, _) => {
                self.reply(connection, xid, ErrorCode::Ok, |writer| {
                    writer.string(&path);
                });
            }
            (Request::GetAllChildrenNumber { .. }, Some(_)) => {
                let count = self.count_descendants(&path);
                self.reply(connection, xid, ErrorCode::Ok, |writer| {
                    writer.i32(count);
                });
            }
            (Request::RemoveWatches { kind, .. }, _) => {
                let removed = self
                    .watches
                    .remove(session_id, &path, WatchKind::removed_by(kind));
                let error = if removed {
                    ErrorCode::Ok
                } else {
                    ErrorCode::NoWatcher
                };
                self.reply(connection, xid, error, |_| {});
            }
            (Request::AddWatch { mode, .. }, _) => {
                let kind = match mode {
                    0 => WatchKind::Persistent,
                    1 => WatchKind::PersistentRecursive,
                    _ => {
                        self.reply(connection, xid, ErrorCode::BadArguments, |_| {});
                        return;
                    }
                };
                self.watches.add(session_id, kind, &path);
                // ZooKeeper answers with an ErrorResponse of 0.
                self.reply(connection, xid, ErrorCode::Ok, |writer| {
                    writer.i32(0);
                });
            }
            (_, _) => self.reply(connection, xid, ErrorCode::NoNode, |_| {}),
        }
    }

    fn count_descendants(&self, path: &str) -> i32 {
        let mut count = 0;
        let mut pending = vec![path.to_string()];
        while let Some(current) = pending.pop() {
            if let Some(node) = self.database.tree.get(&current) {
                for child in &node.children {
                    count += 1;
                    pending.push(if current == "/" {
                        format!("/{child}")
                    } else {
                        format!("{current}/{child}")
                    });
                }
            }
        }
        count
    }

    /// Restores a reconnecting client's watches; a change it missed fires at once.
    fn set_watches(&mut self, session_id: i64, watches: SetWatches) {
        let zxid = self.database.zxid;
        let relative_zxid = watches.relative_zxid;
        for path in &watches.data {
            match self.database.tree.get(path).map(|node| node.stat()) {
                None => self.notify(session_id, zxid, EventType::NodeDeleted, path),
                Some(Stat { mzxid, .. }) if mzxid > relative_zxid => {
                    self.notify(session_id, zxid, EventType::NodeDataChanged, path)
                }
                Some(_) => self.watches.add(session_id, WatchKind::Data, path),
            }
        }
        for path in &watches.exist {
            match self.database.tree.get(path) {
                Some(_) => self.notify(session_id, zxid, EventType::NodeCreated, path),
                None => self.watches.add(session_id, WatchKind::Data, path),
            }
        }
        for path in &watches.persistent {
            self.watches.add(session_id, WatchKind::Persistent, path);
        }
        for path in &watches.persistent_recursive {
            self.watches
                .add(session_id, WatchKind::PersistentRecursive, path);
        }
        for path in &watches.child {
            match self.database.tree.get(path).map(|node| node.stat()) {
                None => self.notify(session_id, zxid, EventType::NodeDeleted, path),
                Some(Stat { pzxid, .. }) if pzxid > relative_zxid => {
                    self.notify(session_id, zxid, EventType::NodeChildrenChanged, path)
                }
                Some(_) => self.watches.add(session_id, WatchKind::Child, path),
            }
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
