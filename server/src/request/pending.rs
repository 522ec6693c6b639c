//! The view of the tree that write validation sees: the applied tree plus every change
//! that is proposed but not applied yet (ZooKeeper's outstandingChanges). Without it,
//! two pipelined creates of the same path would both pass validation.

use std::collections::VecDeque;
use std::sync::Arc;

use paddock_proto::Acl;

use crate::hashing::FastMap;
use crate::tree::{DataTree, NodeKind};

/// What validation needs to know about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub kind: NodeKind,
    pub num_children: i32,
    pub acl: Arc<[Acl]>,
    /// Last-modified time, for the TTL reaper.
    pub mtime: i64,
}

/// A path's state after the changes not yet applied: `None` means deleted.
type Change = Option<NodeView>;

/// A changed path: shared by the map's key and the order queue (one allocation).
pub type ChangedPath = Arc<str>;

/// Proposed-but-unapplied changes, each tagged with the zxid that will make it real.
#[derive(Debug, Default)]
pub struct PendingChanges {
    changes: FastMap<ChangedPath, (i64, Change)>,
    /// Every recorded change in proposal order (zxids only grow), so that `applied`
    /// forgets from the front instead of scanning the map: with many writes in flight
    /// the scan cost grew with their number on every commit.
    order: VecDeque<(i64, ChangedPath)>,
}

impl PendingChanges {
    /// The node as validation must see it.
    pub fn view(&self, tree: &DataTree, p: &str) -> Option<NodeView> {
        if let Some((_, change)) = self.changes.get(p) {
            return change.clone();
        }
        tree.get(p).map(|n| {
            let stat = n.persisted();
            NodeView {
                version: stat.version,
                cversion: stat.cversion,
                aversion: stat.aversion,
                kind: NodeKind::from_owner(stat.ephemeral_owner),
                num_children: n.num_children(),
                acl: n.acl().clone(),
                mtime: stat.mtime,
            }
        })
    }

    /// Records the changes of a txn that was just proposed with `zxid`.
    pub fn record(&mut self, zxid: i64, changes: impl IntoIterator<Item = (ChangedPath, Change)>) {
        for (p, change) in changes {
            self.order.push_back((zxid, p.clone()));
            self.changes.insert(p, (zxid, change));
        }
    }

    /// Forgets changes that the tree now reflects (everything up to `zxid` applied).
    /// A path changed again by a later txn keeps that later change.
    pub fn applied(&mut self, zxid: i64) {
        while let Some((z, _)) = self.order.front()
            && *z <= zxid
        {
            let Some((z, p)) = self.order.pop_front() else {
                break;
            };
            if self.changes.get(&p).is_some_and(|(latest, _)| *latest == z) {
                self.changes.remove(&p);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// A scratch layer over [`PendingChanges`] for validating one request (several ops for
/// a multi): changes land here first and are recorded only if the whole request passes.
pub struct Scratch<'a> {
    tree: &'a DataTree,
    pending: &'a PendingChanges,
    /// Each changed path once, in first-change order, with its latest change.
    changes: Vec<(ChangedPath, Change)>,
    /// Path → position in `changes`, built only once a multi has changed more than
    /// [`SCAN_MAX`] paths: a single op changes one or two, and a scan of those costs
    /// less than hashing (and needs no table, nor the random key a new one draws).
    index: Option<FastMap<ChangedPath, usize>>,
}

/// The most changed paths looked up by a scan.
const SCAN_MAX: usize = 8;

impl<'a> Scratch<'a> {
    pub fn new(tree: &'a DataTree, pending: &'a PendingChanges) -> Scratch<'a> {
        Scratch {
            tree,
            pending,
            changes: Vec::new(),
            index: None,
        }
    }

    pub fn view(&self, p: &str) -> Option<NodeView> {
        match self.position(p) {
            Some(i) => self.changes[i].1.clone(),
            None => self.pending.view(self.tree, p),
        }
    }

    pub fn set(&mut self, p: &str, change: Change) {
        if let Some(i) = self.position(p) {
            self.changes[i].1 = change;
            return;
        }
        let p: ChangedPath = Arc::from(p);
        self.changes.push((p.clone(), change));
        let n = self.changes.len();
        if n <= SCAN_MAX {
            return;
        }
        match &mut self.index {
            Some(index) => {
                index.insert(p, n - 1);
            }
            None => {
                let positions = self.changes.iter().enumerate();
                self.index = Some(positions.map(|(i, (p, _))| (p.clone(), i)).collect());
            }
        }
    }

    /// `acl` as a shared list (the tree's copy when a node uses it already).
    pub fn shared_acl(&self, acl: &[Acl]) -> Arc<[Acl]> {
        self.tree.shared_acl(acl)
    }

    /// The accumulated changes, ready for [`PendingChanges::record`].
    pub fn into_changes(self) -> Vec<(ChangedPath, Change)> {
        self.changes
    }

    fn position(&self, p: &str) -> Option<usize> {
        match &self.index {
            None => self.changes.iter().position(|(q, _)| **q == *p),
            Some(index) => index.get(p).copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(version: i32) -> Change {
        Some(NodeView {
            version,
            cversion: 0,
            aversion: 0,
            kind: NodeKind::Persistent,
            num_children: 0,
            acl: Arc::from(Vec::new()),
            mtime: 0,
        })
    }

    #[test]
    fn a_change_is_forgotten_once_its_txn_is_applied_and_not_before() {
        let tree = DataTree::new();
        let mut pending = PendingChanges::default();
        pending.record(5, [(Arc::from("/a"), view(1)), (Arc::from("/b"), None)]);
        pending.record(6, [(Arc::from("/a"), view(2))]);
        pending.record(7, [(Arc::from("/c"), view(0))]);

        pending.applied(4);
        assert_eq!(pending.len(), 3);
        assert_eq!(pending.view(&tree, "/b"), None);

        // /a was changed again by txn 6: applying 5 leaves that change in place.
        pending.applied(5);
        assert_eq!(pending.len(), 2);
        assert_eq!(pending.view(&tree, "/a").map(|v| v.version), Some(2));

        pending.applied(7);
        assert!(pending.is_empty());
        assert_eq!(pending.view(&tree, "/a"), None, "the tree has no /a");
    }

    #[test]
    fn a_scratch_layer_keeps_the_last_change_of_a_path_in_first_change_order() {
        let tree = DataTree::new();
        let pending = PendingChanges::default();
        let mut scratch = Scratch::new(&tree, &pending);
        scratch.set("/x", view(1));
        scratch.set("/y", None);
        scratch.set("/x", view(3));
        assert_eq!(scratch.view("/x").map(|v| v.version), Some(3));
        let changes = scratch.into_changes();
        let paths: Vec<&str> = changes.iter().map(|(p, _)| &**p).collect();
        assert_eq!(paths, ["/x", "/y"]);
        assert_eq!(changes[0].1.as_ref().map(|v| v.version), Some(3));
    }

    #[test]
    fn a_scratch_layer_finds_its_changes_past_the_scan_limit() {
        let tree = DataTree::new();
        let pending = PendingChanges::default();
        let mut scratch = Scratch::new(&tree, &pending);
        let paths: Vec<String> = (0..3 * SCAN_MAX).map(|i| format!("/n{i}")).collect();
        for (i, p) in paths.iter().enumerate() {
            scratch.set(p, view(i as i32));
        }
        // Every path changed again, found whether it was set before or after the index.
        for (i, p) in paths.iter().enumerate() {
            assert_eq!(scratch.view(p).map(|v| v.version), Some(i as i32), "{p}");
            scratch.set(p, view(100 + i as i32));
        }
        assert_eq!(scratch.view("/elsewhere"), None);
        let changes = scratch.into_changes();
        assert_eq!(changes.len(), paths.len(), "each path once");
        for (i, (p, change)) in changes.iter().enumerate() {
            assert_eq!(&**p, paths[i]);
            assert_eq!(change.as_ref().map(|v| v.version), Some(100 + i as i32));
        }
    }
}
