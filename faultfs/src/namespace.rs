//! The inode table: which inode each name is (now and durably), where each inode's backing
//! object lives, and the durability rules for directory entries.
//!
//! Every inode the kernel knows (or that holds un-durable state) has a [`Node`]. A node has a
//! `place` (where its backing object is now: linked under a parent, parked in limbo because a
//! durable entry still names it, staged during a loss, or gone) and a `durable` link: the
//! entry that would name it after a loss. Hard links do not exist here, so an inode has at most
//! one current and one durable link. Entries the table does not know are, by construction,
//! durable and unchanged since the mount (a node is forgotten only when it is clean).
//!
//! `fsync` of a directory commits every link change touching it: for each node currently or
//! durably linked in that directory the durable link becomes the current one, and a node whose
//! durable link that takes over is committed too (a rename's replaced target). So the two halves
//! of a rename, and the replacement it did, become durable together, as a journaling
//! filesystem commits a rename atomically.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::{OsStr, OsString};

/// An inode number as the kernel sees it.
pub(crate) type Ino = u64;

/// The root directory's inode number (FUSE's fixed root).
pub(crate) const ROOT: Ino = 1;

/// A directory entry: a name in a parent directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Link {
    pub parent: Ino,
    pub name: OsString,
}

impl Link {
    pub fn new(parent: Ino, name: &OsStr) -> Self {
        Link {
            parent,
            name: name.to_os_string(),
        }
    }

    /// The first link of `parent` in the table's order (all its entries sort from here).
    fn first_of(parent: Ino) -> Self {
        Link {
            parent,
            name: OsString::new(),
        }
    }
}

/// What kind of object a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Directory,
    Symlink,
    /// FIFOs and sockets: entries only, no data.
    Other,
}

/// Where a node's backing object is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// The root directory: the backing directory itself.
    Root,
    /// Linked under `parent` as `name`.
    Linked(Link),
    /// Unlinked, but a durable entry still names it: parked in the limbo directory.
    Limbo,
    /// Moved to the stage directory while a loss rebuilds the tree.
    Staged,
    /// Unlinked and not durable anywhere, or dropped by a loss.
    Gone,
}

/// One inode.
#[derive(Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    pub place: Place,
    /// The entry that names it after a loss (`None`: no entry survives a loss).
    pub durable: Option<Link>,
    /// The kernel's lookup count (FUSE `forget` lowers it).
    pub lookups: u64,
    /// Open file and directory handles.
    pub open_handles: u32,
    /// Un-durable data changes (files only): `None` means the data is durable as it is.
    pub data: Option<crate::undo::DataUndo>,
}

impl Node {
    pub fn current(&self) -> Option<&Link> {
        match &self.place {
            Place::Linked(link) => Some(link),
            _ => None,
        }
    }

    /// Whether a loss would leave this node exactly as it is now.
    fn is_clean(&self) -> bool {
        self.data.is_none() && self.current() == self.durable.as_ref()
    }
}

/// All known inodes, indexed by their current and durable links.
#[derive(Debug)]
pub(crate) struct NodeTable {
    nodes: HashMap<Ino, Node>,
    current: BTreeMap<Link, Ino>,
    durable: BTreeMap<Link, Ino>,
    next_ino: Ino,
}

impl NodeTable {
    pub fn new() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                kind: Kind::Directory,
                place: Place::Root,
                durable: None,
                lookups: 1,
                open_handles: 0,
                data: None,
            },
        );
        NodeTable {
            nodes,
            current: BTreeMap::new(),
            durable: BTreeMap::new(),
            next_ino: ROOT + 1,
        }
    }

    pub fn get(&self, ino: Ino) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    pub fn get_mut(&mut self, ino: Ino) -> Option<&mut Node> {
        self.nodes.get_mut(&ino)
    }

    pub fn inos(&self) -> Vec<Ino> {
        self.nodes.keys().copied().collect()
    }

    /// The node currently linked as `name` in `parent`, if known.
    pub fn child(&self, parent: Ino, name: &OsStr) -> Option<Ino> {
        self.current.get(&Link::new(parent, name)).copied()
    }

    /// Records an entry found in the backing directory that the table did not know: it has
    /// been there, unchanged, since the mount (or the last loss), so it is durable.
    pub fn adopt(&mut self, parent: Ino, name: &OsStr, kind: Kind) -> Ino {
        let link = Link::new(parent, name);
        self.insert(Node {
            kind,
            place: Place::Linked(link.clone()),
            durable: Some(link),
            lookups: 0,
            open_handles: 0,
            data: None,
        })
    }

    /// Records an entry this filesystem just created: nothing of it is durable yet.
    pub fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        kind: Kind,
        data: Option<crate::undo::DataUndo>,
    ) -> Ino {
        self.insert(Node {
            kind,
            place: Place::Linked(Link::new(parent, name)),
            durable: None,
            lookups: 0,
            open_handles: 0,
            data,
        })
    }

    fn insert(&mut self, node: Node) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        if let Some(link) = node.current() {
            self.current.insert(link.clone(), ino);
        }
        if let Some(link) = &node.durable {
            self.durable.insert(link.clone(), ino);
        }
        self.nodes.insert(ino, node);
        ino
    }

    /// Moves a node to `place`, keeping the current-link index right.
    pub fn set_place(&mut self, ino: Ino, place: Place) {
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        if let Some(old) = node.current()
            && self.current.get(old) == Some(&ino)
        {
            self.current.remove(old);
        }
        node.place = place;
        if let Some(new) = node.current() {
            self.current.insert(new.clone(), ino);
        }
    }

    fn set_durable(&mut self, ino: Ino, durable: Option<Link>) {
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        if let Some(old) = &node.durable
            && self.durable.get(old) == Some(&ino)
        {
            self.durable.remove(old);
        }
        node.durable = durable;
        if let Some(new) = &node.durable {
            self.durable.insert(new.clone(), ino);
        }
    }

    /// `fsync` of directory `dir`: every link change into, out of or within it becomes durable.
    pub fn commit_directory(&mut self, dir: Ino) {
        let mut touched: Vec<Ino> = self.children(&self.current, dir);
        touched.extend(self.children(&self.durable, dir));
        let mut queue: VecDeque<Ino> = touched.into();
        while let Some(ino) = queue.pop_front() {
            let Some(node) = self.nodes.get(&ino) else {
                continue;
            };
            if node.current() == node.durable.as_ref() {
                continue;
            }
            let current = node.current().cloned();
            // The node whose durable entry this one takes over was replaced: commit it too.
            if let Some(link) = &current
                && let Some(&replaced) = self.durable.get(link)
                && replaced != ino
            {
                queue.push_back(replaced);
            }
            self.set_durable(ino, current);
        }
        for ino in self.inos() {
            self.forget_if_unused(ino);
        }
    }

    /// Every link change so far becomes durable (a journaling filesystem's commit).
    pub fn commit_all(&mut self) {
        for ino in self.inos() {
            let Some(node) = self.nodes.get(&ino) else {
                continue;
            };
            if node.current() != node.durable.as_ref() {
                let current = node.current().cloned();
                self.set_durable(ino, current);
            }
        }
        for ino in self.inos() {
            self.forget_if_unused(ino);
        }
    }

    fn children(&self, index: &BTreeMap<Link, Ino>, parent: Ino) -> Vec<Ino> {
        index
            .range(Link::first_of(parent)..Link::first_of(parent + 1))
            .map(|(_, &ino)| ino)
            .collect()
    }

    /// The nodes durably linked in `parent`, with their names, in name order.
    pub fn durable_children(&self, parent: Ino) -> Vec<(OsString, Ino)> {
        self.durable
            .range(Link::first_of(parent)..Link::first_of(parent + 1))
            .map(|(link, &ino)| (link.name.clone(), ino))
            .collect()
    }

    fn has_children(&self, ino: Ino) -> bool {
        let range = Link::first_of(ino)..Link::first_of(ino + 1);
        self.current.range(range.clone()).next().is_some()
            || self.durable.range(range).next().is_some()
    }

    /// Drops a node that the kernel no longer references and that holds nothing a loss would
    /// change (then, if it was the last thing pinning its parents, those too).
    pub fn forget_if_unused(&mut self, ino: Ino) {
        let mut next = Some(ino);
        while let Some(ino) = next.take() {
            let Some(node) = self.nodes.get(&ino) else {
                return;
            };
            let unused = ino != ROOT
                && node.lookups == 0
                && node.open_handles == 0
                && (node.is_clean() || (node.place == Place::Gone && node.durable.is_none()))
                && !self.has_children(ino);
            if !unused {
                return;
            }
            let parents = [node.current(), node.durable.as_ref()].map(|l| l.map(|l| l.parent));
            self.set_place(ino, Place::Gone);
            self.set_durable(ino, None);
            if let Some(node) = self.nodes.remove(&ino)
                && let Some(data) = node.data
            {
                data.discard();
            }
            next = parents.into_iter().flatten().next();
        }
    }

    /// The inodes a loss keeps: everything reachable from the root through durable links, in
    /// breadth-first order (every parent before its children).
    pub fn survivors(&self) -> Vec<Ino> {
        let mut order = vec![ROOT];
        let mut index = 0;
        while index < order.len() {
            let parent = order[index];
            order.extend(
                self.durable_children(parent)
                    .into_iter()
                    .map(|(_, ino)| ino),
            );
            index += 1;
        }
        order
    }

    /// How many parents lie between a node and the root now (0 for nodes not linked).
    pub fn current_depth(&self, ino: Ino) -> usize {
        let mut depth = 0;
        let mut at = ino;
        while let Some(link) = self.nodes.get(&at).and_then(Node::current) {
            depth += 1;
            at = link.parent;
        }
        depth
    }

    /// After a loss: the survivors are linked at their durable entries, everything else is
    /// gone. Returns the nodes dropped.
    pub fn settle_after_loss(&mut self, survivors: &[Ino]) -> Vec<Ino> {
        let keep: std::collections::HashSet<Ino> = survivors.iter().copied().collect();
        let mut dropped = Vec::new();
        self.current.clear();
        for (&ino, node) in self.nodes.iter_mut() {
            if let Some(data) = node.data.take() {
                data.discard();
            }
            if ino == ROOT {
                continue;
            }
            if keep.contains(&ino) {
                node.place = match &node.durable {
                    Some(link) => Place::Linked(link.clone()),
                    None => Place::Gone,
                };
            } else {
                node.place = Place::Gone;
                node.durable = None;
                dropped.push(ino);
            }
        }
        self.durable.clear();
        for (&ino, node) in &self.nodes {
            if let Some(link) = node.current() {
                self.current.insert(link.clone(), ino);
                self.durable.insert(link.clone(), ino);
            }
        }
        for ino in self.inos() {
            self.forget_if_unused(ino);
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn name(text: &str) -> &OsStr {
        OsStr::new(text)
    }

    fn pinned(table: &mut NodeTable, ino: Ino) -> Ino {
        table.get_mut(ino).unwrap().lookups = 1;
        ino
    }

    #[test]
    fn a_created_entry_is_durable_only_after_its_directory_is_synced() {
        let mut table = NodeTable::new();
        let file = table.create(ROOT, name("a"), Kind::File, None);
        pinned(&mut table, file);
        assert_eq!(table.survivors(), vec![ROOT]);
        table.commit_directory(ROOT);
        assert_eq!(table.survivors(), vec![ROOT, file]);
    }

    #[test]
    fn a_rename_over_a_durable_file_commits_the_replacement_too() {
        let mut table = NodeTable::new();
        let old = table_adopt(&mut table, "checkpoint");
        pinned(&mut table, old);
        let tmp = table.create(ROOT, name("checkpoint.tmp"), Kind::File, None);
        pinned(&mut table, tmp);
        // rename(tmp, checkpoint): the old file is displaced.
        table.set_place(old, Place::Limbo);
        table.set_place(tmp, Place::Linked(Link::new(ROOT, name("checkpoint"))));
        assert_eq!(table.survivors(), vec![ROOT, old], "before the dir fsync");
        table.commit_directory(ROOT);
        assert_eq!(table.survivors(), vec![ROOT, tmp]);
        assert_eq!(table.get(old).unwrap().durable, None);
    }

    #[test]
    fn a_rename_between_directories_commits_both_halves_from_either_side() {
        let mut table = NodeTable::new();
        let left = table_adopt(&mut table, "left");
        let right = table_adopt(&mut table, "right");
        pinned(&mut table, left);
        pinned(&mut table, right);
        let file = table.adopt(left, name("f"), Kind::File);
        pinned(&mut table, file);
        table.set_place(file, Place::Linked(Link::new(right, name("g"))));
        table.commit_directory(left);
        assert_eq!(
            table.get(file).unwrap().durable,
            Some(Link::new(right, name("g")))
        );
        assert!(table.survivors().contains(&file));
    }

    #[test]
    fn clean_unreferenced_nodes_are_forgotten_but_pinned_parents_stay() {
        let mut table = NodeTable::new();
        let dir = table.create(ROOT, name("d"), Kind::Directory, None);
        let file = table.create(dir, name("f"), Kind::File, None);
        // Neither is clean (not durable): both stay although the kernel forgot them.
        table.forget_if_unused(dir);
        table.forget_if_unused(file);
        assert!(table.get(dir).is_some() && table.get(file).is_some());
        table.commit_directory(ROOT);
        table.commit_directory(dir);
        assert!(table.get(file).is_none(), "clean, unreferenced: forgotten");
        assert!(
            table.get(dir).is_none(),
            "its last child went: forgotten too"
        );
    }

    #[test]
    fn commit_all_makes_every_link_change_durable() {
        let mut table = NodeTable::new();
        let old = table_adopt(&mut table, "checkpoint");
        pinned(&mut table, old);
        let dir = table.create(ROOT, name("d"), Kind::Directory, None);
        let tmp = table.create(dir, name("f"), Kind::File, None);
        pinned(&mut table, tmp);
        table.set_place(old, Place::Limbo);
        table.set_place(tmp, Place::Linked(Link::new(ROOT, name("checkpoint"))));
        table.commit_all();
        assert_eq!(table.survivors(), vec![ROOT, tmp]);
        assert!(
            table.get(dir).is_none(),
            "clean and unreferenced: forgotten"
        );
    }

    fn table_adopt(table: &mut NodeTable, entry: &str) -> Ino {
        table.adopt(ROOT, name(entry), Kind::Directory)
    }
}
