//! The znode tree: paths, data and stat, ephemeral owners. Pure and deterministic: a mutation
//! applied to the same tree with the same zxid and time gives the same tree, which is what lets
//! the write-ahead log be replayed. Every mutation returns the watch triggers it fires; a multi
//! either applies every op or none.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::protocol::{ErrorCode, EventType, Stat};
pub use super::write_op::NodeCreate;
use super::write_op::WriteOp;

/// One znode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub data: Vec<u8>,
    /// Stat without `data_length` and `num_children`, which [`Node::stat`] fills in.
    stat: Stat,
    pub children: BTreeSet<String>,
}

impl Node {
    fn new(data: Vec<u8>, stat: Stat) -> Node {
        Node {
            data,
            stat: Stat {
                data_length: 0,
                num_children: 0,
                ..stat
            },
            children: BTreeSet::new(),
        }
    }

    /// The full stat as the wire shows it. Like ZooKeeper, we count only child creations in the
    /// stored `cversion` (it numbers sequential children) and report creations plus deletions,
    /// which is `2 * creations - children`.
    pub fn stat(&self) -> Stat {
        let children = self.children.len() as i32;
        Stat {
            data_length: self.data.len() as i32,
            num_children: children,
            cversion: self.stat.cversion * 2 - children,
            ..self.stat
        }
    }

    /// The stat as stored (cversion counts child creations), for snapshots.
    pub fn stored_stat(&self) -> Stat {
        self.stat
    }
}

/// A change to the tree, with every choice already made (owner, sequential or not).
pub type TreeOp = WriteOp<NodeCreate>;

/// What a successful op did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created { path: String, stat: Stat },
    Deleted,
    DataSet { stat: Stat },
    Checked,
}

/// A watch trigger: `event` happened at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub path: String,
    pub event: EventType,
}

/// The tree, its ephemeral index and (during a multi) an undo journal.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: HashMap<String, Node>,
    ephemerals: HashMap<i64, BTreeSet<String>>,
    journal: Option<Journal>,
}

#[derive(Debug, Clone, Default)]
struct Journal {
    saved: HashSet<String>,
    originals: Vec<(String, Option<Node>)>,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

/// Whether `path` is a valid znode path (ZooKeeper's `PathUtils.validatePath`).
pub fn is_valid_path(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    if !path.starts_with('/') || path.ends_with('/') {
        return false;
    }
    path[1..].split('/').all(|component| {
        !component.is_empty()
            && component != "."
            && component != ".."
            && !component.chars().any(|c| {
                matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}')
            })
    })
}

/// The parent of a valid non-root path.
pub fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(index) => &path[..index],
    }
}

fn name_of(path: &str) -> &str {
    path.rfind('/').map_or(path, |index| &path[index + 1..])
}

impl Tree {
    /// A tree holding only the root.
    pub fn new() -> Tree {
        let mut nodes = HashMap::new();
        nodes.insert("/".to_string(), Node::new(Vec::new(), Stat::default()));
        Tree {
            nodes,
            ephemerals: HashMap::new(),
            journal: None,
        }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Number of znodes, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every node, parents before children (for snapshots).
    pub fn nodes_in_order(&self) -> Vec<(&str, &Node)> {
        let mut paths: Vec<&String> = self.nodes.keys().collect();
        paths.sort_by_key(|path| (path.matches('/').count(), path.as_str()));
        paths
            .into_iter()
            .filter_map(|path| self.nodes.get(path).map(|node| (path.as_str(), node)))
            .collect()
    }

    /// Restores a node read from a snapshot (parents first), with its stored stat. Children
    /// links are rebuilt.
    pub fn restore_node(&mut self, path: &str, data: Vec<u8>, stat: Stat) -> Result<(), String> {
        if path == "/" {
            self.nodes.insert("/".into(), Node::new(data, stat));
            return Ok(());
        }
        let parent = self
            .nodes
            .get_mut(parent_of(path))
            .ok_or_else(|| format!("snapshot node {path} comes before its parent"))?;
        parent.children.insert(name_of(path).to_string());
        if stat.ephemeral_owner != 0 {
            self.ephemerals
                .entry(stat.ephemeral_owner)
                .or_default()
                .insert(path.to_string());
        }
        self.nodes.insert(path.to_string(), Node::new(data, stat));
        Ok(())
    }

    /// The ephemeral nodes a session owns.
    pub fn ephemerals_of(&self, owner: i64) -> Vec<String> {
        self.ephemerals
            .get(&owner)
            .map(|paths| paths.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Applies one op; on error nothing changed.
    pub fn apply(
        &mut self,
        zxid: i64,
        time_ms: i64,
        op: &TreeOp,
        triggers: &mut Vec<Trigger>,
    ) -> Result<Outcome, ErrorCode> {
        match op {
            TreeOp::Create(NodeCreate {
                path,
                data,
                ephemeral_owner,
                sequential,
            }) => self.create(
                zxid,
                time_ms,
                path,
                data,
                *ephemeral_owner,
                *sequential,
                triggers,
            ),
            TreeOp::Delete { path, version } => self.delete(zxid, path, *version, triggers),
            TreeOp::SetData {
                path,
                data,
                version,
            } => self.set_data(zxid, time_ms, path, data, *version, triggers),
            TreeOp::Check { path, version } => {
                let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
                check_version(node, *version)?;
                Ok(Outcome::Checked)
            }
        }
    }

    /// Applies every op or none: on failure returns the index of the failed op and its error,
    /// and the tree is as it was.
    pub fn apply_multi(
        &mut self,
        zxid: i64,
        time_ms: i64,
        ops: &[TreeOp],
        triggers: &mut Vec<Trigger>,
    ) -> Result<Vec<Outcome>, (usize, ErrorCode)> {
        self.journal = Some(Journal::default());
        let mut outcomes = Vec::with_capacity(ops.len());
        let mut multi_triggers = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            match self.apply(zxid, time_ms, op, &mut multi_triggers) {
                Ok(outcome) => outcomes.push(outcome),
                Err(error) => {
                    self.roll_back();
                    return Err((index, error));
                }
            }
        }
        self.journal = None;
        triggers.append(&mut multi_triggers);
        Ok(outcomes)
    }

    /// Deletes every ephemeral node of `owner` (session close or expiry).
    pub fn close_session(&mut self, zxid: i64, owner: i64, triggers: &mut Vec<Trigger>) {
        for path in self.ephemerals_of(owner) {
            // An ephemeral node has no children, so this cannot fail.
            if let Err(error) = self.delete(zxid, &path, -1, triggers) {
                tracing::error!("deleting ephemeral {path} of session {owner:#x}: {error:?}");
            }
        }
        self.ephemerals.remove(&owner);
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        zxid: i64,
        time_ms: i64,
        path: &str,
        data: &[u8],
        ephemeral_owner: i64,
        sequential: bool,
        triggers: &mut Vec<Trigger>,
    ) -> Result<Outcome, ErrorCode> {
        let valid = if sequential {
            is_valid_path(&format!("{path}0"))
        } else {
            is_valid_path(path)
        };
        if !valid {
            return Err(ErrorCode::BadArguments);
        }
        if path == "/" {
            return Err(ErrorCode::NodeExists);
        }
        let parent_path = parent_of(path).to_string();
        let parent = self.nodes.get(&parent_path).ok_or(ErrorCode::NoNode)?;
        let path = if sequential {
            format!("{path}{:010}", parent.stat.cversion)
        } else {
            path.to_string()
        };
        if !is_valid_path(&path) || parent_of(&path) != parent_path {
            return Err(ErrorCode::BadArguments);
        }
        if self.nodes.contains_key(&path) {
            return Err(ErrorCode::NodeExists);
        }
        if parent.stat.ephemeral_owner != 0 {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        self.save(&parent_path);
        self.save(&path);
        if let Some(parent) = self.nodes.get_mut(&parent_path) {
            parent.children.insert(name_of(&path).to_string());
            parent.stat.cversion += 1;
            parent.stat.pzxid = zxid;
        }
        let stat = Stat {
            czxid: zxid,
            mzxid: zxid,
            ctime: time_ms,
            mtime: time_ms,
            pzxid: zxid,
            ephemeral_owner,
            ..Stat::default()
        };
        let node = Node::new(data.to_vec(), stat);
        let stat = node.stat();
        self.nodes.insert(path.clone(), node);
        if ephemeral_owner != 0 {
            self.ephemerals
                .entry(ephemeral_owner)
                .or_default()
                .insert(path.clone());
        }
        triggers.push(Trigger {
            path: path.clone(),
            event: EventType::NodeCreated,
        });
        triggers.push(Trigger {
            path: parent_path,
            event: EventType::NodeChildrenChanged,
        });
        Ok(Outcome::Created { path, stat })
    }

    fn delete(
        &mut self,
        zxid: i64,
        path: &str,
        version: i32,
        triggers: &mut Vec<Trigger>,
    ) -> Result<Outcome, ErrorCode> {
        if !is_valid_path(path) || path == "/" {
            return Err(ErrorCode::BadArguments);
        }
        let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
        check_version(node, version)?;
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        let parent_path = parent_of(path).to_string();
        self.save(path);
        self.save(&parent_path);
        if let Some(node) = self.nodes.remove(path) {
            self.forget_ephemeral(path, &node);
        }
        if let Some(parent) = self.nodes.get_mut(&parent_path) {
            // The reported cversion grows because the child count shrank (see Node::stat).
            parent.children.remove(name_of(path));
            parent.stat.pzxid = zxid;
        }
        triggers.push(Trigger {
            path: path.to_string(),
            event: EventType::NodeDeleted,
        });
        triggers.push(Trigger {
            path: parent_path,
            event: EventType::NodeChildrenChanged,
        });
        Ok(Outcome::Deleted)
    }

    fn set_data(
        &mut self,
        zxid: i64,
        time_ms: i64,
        path: &str,
        data: &[u8],
        version: i32,
        triggers: &mut Vec<Trigger>,
    ) -> Result<Outcome, ErrorCode> {
        let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
        check_version(node, version)?;
        self.save(path);
        let Some(node) = self.nodes.get_mut(path) else {
            return Err(ErrorCode::NoNode);
        };
        node.data = data.to_vec();
        node.stat.version += 1;
        node.stat.mzxid = zxid;
        node.stat.mtime = time_ms;
        let stat = node.stat();
        triggers.push(Trigger {
            path: path.to_string(),
            event: EventType::NodeDataChanged,
        });
        Ok(Outcome::DataSet { stat })
    }

    fn forget_ephemeral(&mut self, path: &str, node: &Node) {
        let owner = node.stat.ephemeral_owner;
        if owner == 0 {
            return;
        }
        if let Some(paths) = self.ephemerals.get_mut(&owner) {
            paths.remove(path);
            if paths.is_empty() {
                self.ephemerals.remove(&owner);
            }
        }
    }

    /// Records the state of `path` before its first change inside a multi.
    fn save(&mut self, path: &str) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        if journal.saved.insert(path.to_string()) {
            journal
                .originals
                .push((path.to_string(), self.nodes.get(path).cloned()));
        }
    }

    fn roll_back(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        for (path, original) in journal.originals.into_iter().rev() {
            if let Some(current) = self.nodes.remove(&path) {
                self.forget_ephemeral(&path, &current);
            }
            if let Some(node) = original {
                if node.stat.ephemeral_owner != 0 {
                    self.ephemerals
                        .entry(node.stat.ephemeral_owner)
                        .or_default()
                        .insert(path.clone());
                }
                self.nodes.insert(path, node);
            }
        }
    }
}

fn check_version(node: &Node, version: i32) -> Result<(), ErrorCode> {
    if version == -1 || version == node.stat.version {
        Ok(())
    } else {
        Err(ErrorCode::BadVersion)
    }
}

#[cfg(test)]
mod tests;
