//! Watch registrations per path and session: one-shot data watches (set by exists and getData)
//! and child watches (set by getChildren), consumed when they fire; and persistent watches
//! (addWatch), which stay: a persistent one sees every event at its path, a recursive one sees
//! created, deleted and changed events at its path and below. A trigger returns the sessions to
//! notify, each once, as ZooKeeper's WatchManager does.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::protocol::EventType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKind {
    Data,
    Child,
    Persistent,
    PersistentRecursive,
}

impl WatchKind {
    /// The kinds a `removeWatches` of ZooKeeper's `WatcherType` code removes.
    pub fn removed_by(watcher_type: i32) -> &'static [WatchKind] {
        match watcher_type {
            1 => &[WatchKind::Child],
            2 => &[WatchKind::Data],
            4 => &[WatchKind::Persistent],
            5 => &[WatchKind::PersistentRecursive],
            _ => &[
                WatchKind::Data,
                WatchKind::Child,
                WatchKind::Persistent,
                WatchKind::PersistentRecursive,
            ],
        }
    }
}

#[derive(Debug, Default)]
pub struct Watches {
    data: HashMap<String, HashSet<i64>>,
    child: HashMap<String, HashSet<i64>>,
    persistent: HashMap<String, HashSet<i64>>,
    recursive: HashMap<String, HashSet<i64>>,
    by_session: HashMap<i64, HashSet<(WatchKind, String)>>,
}

impl Watches {
    fn table(&mut self, kind: WatchKind) -> &mut HashMap<String, HashSet<i64>> {
        match kind {
            WatchKind::Data => &mut self.data,
            WatchKind::Child => &mut self.child,
            WatchKind::Persistent => &mut self.persistent,
            WatchKind::PersistentRecursive => &mut self.recursive,
        }
    }

    pub fn add(&mut self, session_id: i64, kind: WatchKind, path: &str) {
        self.table(kind)
            .entry(path.to_string())
            .or_default()
            .insert(session_id);
        self.by_session
            .entry(session_id)
            .or_default()
            .insert((kind, path.to_string()));
    }

    fn take(&mut self, kind: WatchKind, path: &str) -> HashSet<i64> {
        let sessions = self.table(kind).remove(path).unwrap_or_default();
        for session_id in &sessions {
            if let Some(registered) = self.by_session.get_mut(session_id) {
                registered.remove(&(kind, path.to_string()));
                if registered.is_empty() {
                    self.by_session.remove(session_id);
                }
            }
        }
        sessions
    }

    /// The sessions to notify of `event` at `path`, in id order; one-shot watches are consumed.
    pub fn trigger(&mut self, path: &str, event: EventType) -> Vec<i64> {
        let mut sessions = BTreeSet::new();
        if let Some(watching) = self.persistent.get(path) {
            sessions.extend(watching.iter().copied());
        }
        if event != EventType::NodeChildrenChanged && !self.recursive.is_empty() {
            let mut ancestor = Some(path);
            while let Some(current) = ancestor {
                if let Some(watching) = self.recursive.get(current) {
                    sessions.extend(watching.iter().copied());
                }
                ancestor = (current != "/").then(|| super::tree::parent_of(current));
            }
        }
        match event {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                sessions.extend(self.take(WatchKind::Data, path));
            }
            EventType::NodeChildrenChanged => {
                sessions.extend(self.take(WatchKind::Child, path));
            }
            EventType::NodeDeleted => {
                sessions.extend(self.take(WatchKind::Data, path));
                sessions.extend(self.take(WatchKind::Child, path));
            }
        }
        sessions.into_iter().collect()
    }

    /// Removes the session's watches of `kinds` at `path`; true if there was one.
    pub fn remove(&mut self, session_id: i64, path: &str, kinds: &[WatchKind]) -> bool {
        let mut removed = false;
        for kind in kinds {
            if let Some(sessions) = self.table(*kind).get_mut(path) {
                removed |= sessions.remove(&session_id);
                if sessions.is_empty() {
                    self.table(*kind).remove(path);
                }
            }
            if let Some(registered) = self.by_session.get_mut(&session_id) {
                registered.remove(&(*kind, path.to_string()));
            }
        }
        removed
    }

    /// Whether the session holds a watch of one of `kinds` at `path`.
    pub fn holds(&self, session_id: i64, path: &str, kinds: &[WatchKind]) -> bool {
        self.by_session.get(&session_id).is_some_and(|registered| {
            kinds
                .iter()
                .any(|kind| registered.contains(&(*kind, path.to_string())))
        })
    }

    /// Forgets every watch of a session (its connection closed; it re-sets them on reconnect).
    pub fn remove_session(&mut self, session_id: i64) {
        let Some(registered) = self.by_session.remove(&session_id) else {
            return;
        };
        for (kind, path) in registered {
            if let Some(sessions) = self.table(kind).get_mut(&path) {
                sessions.remove(&session_id);
                if sessions.is_empty() {
                    self.table(kind).remove(&path);
                }
            }
        }
    }

    /// Number of (session, kind, path) registrations.
    pub fn len(&self) -> usize {
        self.by_session.values().map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_session.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_fire_once() {
        let mut watches = Watches::default();
        watches.add(1, WatchKind::Data, "/a");
        watches.add(2, WatchKind::Data, "/a");
        assert_eq!(
            watches.trigger("/a", EventType::NodeDataChanged),
            vec![1, 2]
        );
        assert!(watches.trigger("/a", EventType::NodeDataChanged).is_empty());
        assert!(watches.is_empty());
    }

    #[test]
    fn delete_fires_data_and_child_watches_once_per_session() {
        let mut watches = Watches::default();
        watches.add(1, WatchKind::Data, "/a");
        watches.add(1, WatchKind::Child, "/a");
        watches.add(2, WatchKind::Child, "/a");
        assert_eq!(watches.trigger("/a", EventType::NodeDeleted), vec![1, 2]);
        assert!(watches.is_empty());
    }

    #[test]
    fn children_changed_does_not_fire_data_watches() {
        let mut watches = Watches::default();
        watches.add(1, WatchKind::Data, "/a");
        assert!(
            watches
                .trigger("/a", EventType::NodeChildrenChanged)
                .is_empty()
        );
        assert_eq!(watches.len(), 1);
    }

    #[test]
    fn persistent_watches_stay_and_recursive_ones_see_descendants() {
        let mut watches = Watches::default();
        watches.add(1, WatchKind::Persistent, "/a");
        watches.add(2, WatchKind::PersistentRecursive, "/a");
        watches.add(3, WatchKind::PersistentRecursive, "/");
        assert_eq!(
            watches.trigger("/a", EventType::NodeDataChanged),
            vec![1, 2, 3]
        );
        assert_eq!(
            watches.trigger("/a", EventType::NodeDataChanged),
            vec![1, 2, 3]
        );
        assert_eq!(
            watches.trigger("/a/b/c", EventType::NodeCreated),
            vec![2, 3]
        );
        // Recursive watches do not report children changes; persistent ones do.
        assert_eq!(
            watches.trigger("/a", EventType::NodeChildrenChanged),
            vec![1]
        );
        assert!(watches.remove(2, "/a", WatchKind::removed_by(3)));
        assert_eq!(watches.trigger("/a/b", EventType::NodeDeleted), vec![3]);
    }

    #[test]
    fn holds_answers_check_watches() {
        let mut watches = Watches::default();
        watches.add(1, WatchKind::Child, "/a");
        assert!(watches.holds(1, "/a", WatchKind::removed_by(1)));
        assert!(watches.holds(1, "/a", WatchKind::removed_by(3)));
        assert!(!watches.holds(1, "/a", WatchKind::removed_by(2)));
        assert!(!watches.holds(2, "/a", WatchKind::removed_by(3)));
    }

    #[test]
    fn removing_a_session_forgets_its_watches() {
        let mut watches = Watches::default();
        watches.add(1, WatchKind::Data, "/a");
        watches.add(1, WatchKind::Child, "/b");
        watches.add(2, WatchKind::Data, "/a");
        watches.remove_session(1);
        assert_eq!(watches.trigger("/a", EventType::NodeCreated), vec![2]);
        assert!(
            watches
                .trigger("/b", EventType::NodeChildrenChanged)
                .is_empty()
        );
        assert!(!watches.remove(2, "/a", &[WatchKind::Data]));
    }
}
