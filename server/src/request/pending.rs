//! The view of the tree that write validation sees: the applied tree plus every change
//! that is proposed but not applied yet (ZooKeeper's outstandingChanges). Without it,
//! two pipelined creates of the same path would both pass validation.

use std::collections::HashMap;
use std::sync::Arc;

use paddock_proto::Acl;

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

/// Proposed-but-unapplied changes, each tagged with the zxid that will make it real.
#[derive(Debug, Default)]
pub struct PendingChanges {
    changes: HashMap<String, (i64, Change)>,
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
    pub fn record(&mut self, zxid: i64, changes: impl IntoIterator<Item = (String, Change)>) {
        for (p, change) in changes {
            self.changes.insert(p, (zxid, change));
        }
    }

    /// Forgets changes that the tree now reflects (everything up to `zxid` applied).
    pub fn applied(&mut self, zxid: i64) {
        if !self.changes.is_empty() {
            self.changes.retain(|_, (z, _)| *z > zxid);
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
    layer: HashMap<String, Change>,
    order: Vec<String>,
}

impl<'a> Scratch<'a> {
    pub fn new(tree: &'a DataTree, pending: &'a PendingChanges) -> Scratch<'a> {
        Scratch {
            tree,
            pending,
            layer: HashMap::new(),
            order: Vec::new(),
        }
    }

    pub fn view(&self, p: &str) -> Option<NodeView> {
        match self.layer.get(p) {
            Some(change) => change.clone(),
            None => self.pending.view(self.tree, p),
        }
    }

    pub fn set(&mut self, p: &str, change: Change) {
        if self.layer.insert(p.to_string(), change).is_none() {
            self.order.push(p.to_string());
        }
    }

    /// The accumulated changes, ready for [`PendingChanges::record`].
    pub fn into_changes(mut self) -> Vec<(String, Change)> {
        self.order
            .drain(..)
            .filter_map(|p| self.layer.remove(&p).map(|c| (p, c)))
            .collect()
    }
}
