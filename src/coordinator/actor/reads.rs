//! The read requests of the actor (exists, getData, getChildren, multiRead, getACL, sync,
//! counts) and the watch registrations that ride on them: one-shot, persistent, checked,
//! removed, or restored by setWatches after a reconnect.

use super::Actor;
use crate::coordinator::protocol::{
    self, ErrorCode, EventType, ReadOp, ReadResult, Request, SetWatches, Stat,
};
use crate::coordinator::session::ConnectionId;
use crate::coordinator::tree::is_valid_path;
use crate::coordinator::watch::WatchKind;

impl Actor {
    /// getEphemerals: the caller's own ephemeral nodes under a prefix.
    pub(super) fn get_ephemerals(
        &mut self,
        connection: ConnectionId,
        session_id: i64,
        xid: i32,
        prefix: &str,
    ) {
        let ephemerals: Vec<String> = self
            .database
            .tree
            .ephemerals_of(session_id)
            .into_iter()
            .filter(|path| path.starts_with(prefix))
            .collect();
        self.reply(connection, xid, ErrorCode::Ok, |writer| {
            writer.strings(&ephemerals);
        });
    }

    /// multiRead: every read answers on its own (data, children or an error).
    pub(super) fn multi_read(
        &mut self,
        connection: ConnectionId,
        session_id: i64,
        xid: i32,
        ops: Vec<ReadOp>,
    ) {
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let (path, watch, kind) = match &op {
                ReadOp::GetData { path, watch } => (path, *watch, WatchKind::Data),
                ReadOp::GetChildren { path, watch } => (path, *watch, WatchKind::Child),
            };
            let node = is_valid_path(path)
                .then(|| self.database.tree.get(path))
                .flatten();
            let result = match (node, &op) {
                (None, _) if !is_valid_path(path) => ReadResult::Error(ErrorCode::BadArguments),
                (None, _) => ReadResult::Error(ErrorCode::NoNode),
                (Some(node), ReadOp::GetData { .. }) => ReadResult::Data {
                    data: node.data.clone(),
                    stat: node.stat(),
                },
                (Some(node), ReadOp::GetChildren { .. }) => {
                    ReadResult::Children(node.children.iter().cloned().collect())
                }
            };
            if watch && !matches!(result, ReadResult::Error(_)) {
                self.watches.add(session_id, kind, path);
            }
            results.push(result);
        }
        self.reply(connection, xid, ErrorCode::Ok, |writer| {
            protocol::encode_read_results(writer, &results)
        });
    }

    pub(super) fn read(
        &mut self,
        connection: ConnectionId,
        session_id: i64,
        xid: i32,
        request: Request,
    ) {
        let path = match &request {
            Request::Exists { path, .. }
            | Request::GetData { path, .. }
            | Request::GetChildren { path, .. }
            | Request::GetAcl { path }
            | Request::Sync { path }
            | Request::GetAllChildrenNumber { path }
            | Request::RemoveWatches { path, .. }
            | Request::AddWatch { path, .. }
            | Request::CheckWatches { path, .. } => path.clone(),
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
            (Request::CheckWatches { kind, .. }, _) => {
                let held = self
                    .watches
                    .holds(session_id, &path, WatchKind::removed_by(kind));
                let error = if held {
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
    pub(super) fn set_watches(&mut self, session_id: i64, watches: SetWatches) {
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
}
