//! Watch registrations per connection and the fan-out of tree changes to them.
//!
//! Kinds: one-shot data watches (set by getData, and by exists — also on a missing node),
//! one-shot child watches (getChildren), and persistent / persistent-recursive watches
//! (addWatch) that stay until removed. A connection hears of one change once, however
//! many of its watches match.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::hashing::{FastMap, FastSet};

use paddock_proto::{EventType, WatcherType};

use crate::path;
use crate::tree::WatchTrigger;

/// Identifies a client connection (watches belong to connections, as in ZooKeeper).
pub type ConnId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKind {
    Data,
    Child,
    Persistent,
    PersistentRecursive,
}

impl WatchKind {
    pub const ALL: [WatchKind; 4] = [
        WatchKind::Data,
        WatchKind::Child,
        WatchKind::Persistent,
        WatchKind::PersistentRecursive,
    ];

    /// Whether a removeWatches/checkWatches type names this kind.
    fn matches(self, t: WatcherType) -> bool {
        matches!(
            (t, self),
            (WatcherType::Any, _)
                | (WatcherType::Data, WatchKind::Data)
                | (WatcherType::Children, WatchKind::Child)
                | (WatcherType::Persistent, WatchKind::Persistent)
                | (
                    WatcherType::PersistentRecursive,
                    WatchKind::PersistentRecursive
                )
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A watched path: one allocation shared by the table's key, every connection's
/// registration of it and the notifications of one change.
pub type WatchedPath = Arc<str>;

/// A notification to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub conn: ConnId,
    pub event: EventType,
    pub path: WatchedPath,
}

#[derive(Debug, Default)]
pub struct WatchManager {
    /// Per kind: path → connections.
    tables: [FastMap<WatchedPath, FastSet<ConnId>>; 4],
    /// Connection → its (kind, path) registrations, for cleanup and the wchc report. A
    /// connection's set stays (empty) until the connection closes, so that re-arming a
    /// one-shot watch after each event does not allocate it again.
    by_conn: FastMap<ConnId, BTreeSet<(WatchKind, WatchedPath)>>,
}

impl WatchManager {
    pub fn add(&mut self, conn: ConnId, kind: WatchKind, p: &str) {
        // addWatch replaces a connection's other persistent mode on the same path, as in
        // ZooKeeper: a path is watched persistently or recursively, not both.
        match kind {
            WatchKind::Persistent => {
                self.drop_one(conn, WatchKind::PersistentRecursive, p);
            }
            WatchKind::PersistentRecursive => {
                self.drop_one(conn, WatchKind::Persistent, p);
            }
            _ => {}
        }
        let table = &mut self.tables[kind.index()];
        let key = match table.get_key_value(p) {
            Some((key, _)) => key.clone(),
            None => WatchedPath::from(p),
        };
        if table.entry(key.clone()).or_default().insert(conn) {
            self.by_conn.entry(conn).or_default().insert((kind, key));
        }
    }

    fn drop_one(&mut self, conn: ConnId, kind: WatchKind, p: &str) -> bool {
        let table = &mut self.tables[kind.index()];
        let Some((key, set)) = table.get_key_value(p) else {
            return false;
        };
        if !set.contains(&conn) {
            return false;
        }
        let key = key.clone();
        if let Some(set) = table.get_mut(p) {
            set.remove(&conn);
            if set.is_empty() {
                table.remove(p);
            }
        }
        if let Some(regs) = self.by_conn.get_mut(&conn) {
            regs.remove(&(kind, key));
        }
        true
    }

    /// Removes the connection's watches of the given type on `p`; false if there were none.
    pub fn remove(&mut self, conn: ConnId, t: WatcherType, p: &str) -> bool {
        let mut any = false;
        for kind in WatchKind::ALL {
            if kind.matches(t) {
                any |= self.drop_one(conn, kind, p);
            }
        }
        any
    }

    /// Whether the connection has a watch of the given type on `p`.
    pub fn has(&self, conn: ConnId, t: WatcherType, p: &str) -> bool {
        WatchKind::ALL.iter().any(|k| {
            k.matches(t)
                && self.tables[k.index()]
                    .get(p)
                    .is_some_and(|s| s.contains(&conn))
        })
    }

    /// Forgets every watch of a closed connection.
    pub fn remove_conn(&mut self, conn: ConnId) {
        if let Some(regs) = self.by_conn.remove(&conn) {
            for (kind, p) in regs {
                let table = &mut self.tables[kind.index()];
                if let Some(set) = table.get_mut(&p) {
                    set.remove(&conn);
                    if set.is_empty() {
                        table.remove(&p);
                    }
                }
            }
        }
    }

    /// Fires the watches a change triggers, appending the notifications to `out`, one
    /// per connection, in connection order.
    pub fn trigger(&mut self, t: &WatchTrigger, out: &mut Vec<Notification>) {
        let mut told: Vec<ConnId> = Vec::new();
        let mut path: Option<WatchedPath> = None;
        let one_shot: &[WatchKind] = match t.event {
            EventType::NodeCreated | EventType::NodeDataChanged => &[WatchKind::Data],
            EventType::NodeDeleted => &[WatchKind::Data, WatchKind::Child],
            EventType::NodeChildrenChanged => &[WatchKind::Child],
            _ => &[],
        };
        for kind in one_shot {
            if let Some((key, conns)) = self.tables[kind.index()].remove_entry(&*t.path) {
                let registration = (*kind, key);
                for conn in conns {
                    if let Some(regs) = self.by_conn.get_mut(&conn) {
                        regs.remove(&registration);
                    }
                    told.push(conn);
                }
                path = Some(registration.1);
            }
        }
        if let Some((key, conns)) =
            self.tables[WatchKind::Persistent.index()].get_key_value(&*t.path)
        {
            told.extend(conns.iter().copied());
            path.get_or_insert_with(|| key.clone());
        }
        // Recursive watches hear of node events anywhere below them, never of child-list changes.
        let recursive = &self.tables[WatchKind::PersistentRecursive.index()];
        if t.event != EventType::NodeChildrenChanged && !recursive.is_empty() {
            for ancestor in path::self_and_ancestors(&t.path) {
                if let Some(conns) = recursive.get(ancestor) {
                    told.extend(conns.iter().copied());
                }
            }
        }
        if told.is_empty() {
            return;
        }
        told.sort_unstable();
        told.dedup();
        let path = path.unwrap_or_else(|| WatchedPath::from(&*t.path));
        out.extend(told.into_iter().map(|conn| Notification {
            conn,
            event: t.event,
            path: path.clone(),
        }));
    }

    /// Total registrations.
    pub fn count(&self) -> usize {
        self.tables
            .iter()
            .map(|t| t.values().map(FastSet::len).sum::<usize>())
            .sum()
    }

    /// Distinct watched paths.
    pub fn path_count(&self) -> usize {
        self.tables.iter().map(FastMap::len).sum()
    }

    /// Connections holding at least one watch.
    pub fn connection_count(&self) -> usize {
        self.by_conn
            .values()
            .filter(|regs| !regs.is_empty())
            .count()
    }

    /// Connection → watched paths (wchc).
    pub fn by_connection(&self) -> Vec<(ConnId, Vec<String>)> {
        let mut out: Vec<(ConnId, Vec<String>)> = self
            .by_conn
            .iter()
            .filter(|(_, regs)| !regs.is_empty())
            .map(|(c, regs)| {
                let mut paths: Vec<String> = regs.iter().map(|(_, p)| p.to_string()).collect();
                paths.dedup();
                (*c, paths)
            })
            .collect();
        out.sort();
        out
    }

    /// Path → watching connections (wchp).
    pub fn by_path(&self) -> Vec<(String, Vec<ConnId>)> {
        let mut map: BTreeMap<&str, BTreeSet<ConnId>> = BTreeMap::new();
        for table in &self.tables {
            for (p, conns) in table {
                map.entry(p).or_default().extend(conns.iter().copied());
            }
        }
        map.into_iter()
            .map(|(p, c)| (p.to_string(), c.into_iter().collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(w: &mut WatchManager, p: &str, event: EventType) -> Vec<(ConnId, EventType)> {
        let mut out = Vec::new();
        w.trigger(
            &WatchTrigger {
                path: p.into(),
                event,
            },
            &mut out,
        );
        out.into_iter().map(|n| (n.conn, n.event)).collect()
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut w = WatchManager::default();
        w.add(1, WatchKind::Data, "/a");
        w.add(2, WatchKind::Child, "/a");
        assert_eq!(
            fire(&mut w, "/a", EventType::NodeDataChanged),
            vec![(1, EventType::NodeDataChanged)]
        );
        assert!(fire(&mut w, "/a", EventType::NodeDataChanged).is_empty());
        assert_eq!(
            fire(&mut w, "/a", EventType::NodeChildrenChanged),
            vec![(2, EventType::NodeChildrenChanged)]
        );
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn delete_tells_a_connection_once_even_with_both_kinds() {
        let mut w = WatchManager::default();
        w.add(1, WatchKind::Data, "/a");
        w.add(1, WatchKind::Child, "/a");
        w.add(1, WatchKind::Persistent, "/a");
        assert_eq!(
            fire(&mut w, "/a", EventType::NodeDeleted),
            vec![(1, EventType::NodeDeleted)]
        );
        // The persistent watch survives.
        assert_eq!(
            fire(&mut w, "/a", EventType::NodeCreated),
            vec![(1, EventType::NodeCreated)]
        );
        assert_eq!(w.count(), 1);
    }

    #[test]
    fn recursive_watches_see_descendants_but_not_child_list_changes() {
        let mut w = WatchManager::default();
        w.add(7, WatchKind::PersistentRecursive, "/r");
        assert_eq!(
            fire(&mut w, "/r/x/y", EventType::NodeCreated),
            vec![(7, EventType::NodeCreated)]
        );
        assert!(fire(&mut w, "/r", EventType::NodeChildrenChanged).is_empty());
        assert!(fire(&mut w, "/rx", EventType::NodeCreated).is_empty());
        assert_eq!(fire(&mut w, "/r/x", EventType::NodeDataChanged).len(), 1);
    }

    #[test]
    fn add_watch_replaces_the_other_persistent_mode() {
        let mut w = WatchManager::default();
        w.add(1, WatchKind::Persistent, "/pw");
        w.add(1, WatchKind::PersistentRecursive, "/pw");
        // Recursive watches never hear child-list changes; the persistent one is gone.
        assert!(fire(&mut w, "/pw", EventType::NodeChildrenChanged).is_empty());
        assert_eq!(fire(&mut w, "/pw/a", EventType::NodeCreated).len(), 1);
        w.add(1, WatchKind::Persistent, "/pw");
        assert!(fire(&mut w, "/pw/a", EventType::NodeCreated).is_empty());
        assert_eq!(w.count(), 1);
    }

    #[test]
    fn remove_and_check_by_type() {
        let mut w = WatchManager::default();
        w.add(1, WatchKind::Data, "/a");
        w.add(1, WatchKind::Child, "/a");
        assert!(w.has(1, WatcherType::Data, "/a"));
        assert!(!w.has(1, WatcherType::Persistent, "/a"));
        assert!(w.remove(1, WatcherType::Children, "/a"));
        assert!(!w.remove(1, WatcherType::Children, "/a"));
        assert!(w.has(1, WatcherType::Any, "/a"));
        w.remove_conn(1);
        assert_eq!(w.count(), 0);
        assert!(w.by_connection().is_empty());
    }
}
