//! The data tree: znodes, their Stat, children, ACLs and the ephemeral, container and
//! TTL indexes, plus the replicated session table.
//!
//! The tree only changes by applying transactions (`apply.rs`), in zxid order, so every
//! replica that applies the same log holds the same tree. Nodes live in persistent
//! (structurally shared) maps: cloning the whole tree for a background snapshot is O(1)
//! and the request pipeline never pauses for it.
//!
//! Memory is kept near what a node carries: a node is one allocation (`record.rs`: path,
//! a Stat that stores only what differs from a fresh node's, an ACL id, the data), the
//! path map holds one pointer per node (`hamt.rs`), and a parent's child names are packed
//! bytes (`children.rs`). `cargo run --release -p paddock-server --example tree_memory`
//! counts the bytes per znode.

pub mod acl;
mod apply;
mod children;
mod hamt;
mod record;
mod snapshot;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use paddock_proto::{Acl, Stat, StatPersisted};

pub use apply::{ApplyResult, WatchTrigger};
pub use snapshot::{SnapshotError, SnapshotView};

use crate::hashing::FastMap;
use crate::path;
use children::Children;
use hamt::{Hamt, Keyed};
use record::{Fields, NodeRecord};

/// The ephemeralOwner ZooKeeper gives container nodes (EphemeralType.CONTAINER).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// The top byte ZooKeeper sets in the ephemeralOwner of TTL nodes (EphemeralType.TTL).
pub const TTL_OWNER_MASK: i64 = 0xFF00_0000_0000_0000_u64 as i64;
/// The largest TTL that fits below the mask.
pub const MAX_TTL: i64 = 0x00FF_FFFF_FFFF;

/// What kind of node an ephemeralOwner value denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    Ephemeral(i64),
    Container,
    Ttl(i64),
}

impl NodeKind {
    pub fn from_owner(owner: i64) -> NodeKind {
        if owner == 0 {
            NodeKind::Persistent
        } else if owner == CONTAINER_OWNER {
            NodeKind::Container
        } else if owner & TTL_OWNER_MASK == TTL_OWNER_MASK {
            NodeKind::Ttl(owner & MAX_TTL)
        } else {
            NodeKind::Ephemeral(owner)
        }
    }

    pub fn owner(self) -> i64 {
        match self {
            NodeKind::Persistent => 0,
            NodeKind::Ephemeral(session) => session,
            NodeKind::Container => CONTAINER_OWNER,
            NodeKind::Ttl(ttl) => TTL_OWNER_MASK | (ttl & MAX_TTL),
        }
    }
}

/// The Stat clients see of the node `record` holds.
fn stat_of(record: &NodeRecord) -> Stat {
    let (fields, data) = record.decode();
    let num_children = fields.num_children as i32;
    let data_length = data.map_or(0, <[u8]>::len) as i32;
    let mut stat = Stat::from_persisted(&fields.stat, data_length, num_children);
    stat.cversion = fields
        .stat
        .cversion
        .wrapping_mul(2)
        .wrapping_sub(num_children);
    if matches!(
        NodeKind::from_owner(fields.stat.ephemeral_owner),
        NodeKind::Container | NodeKind::Ttl(_)
    ) {
        stat.ephemeral_owner = 0;
    }
    stat
}

/// One znode, as read from the tree.
#[derive(Clone, Copy)]
pub struct Node<'t> {
    record: &'t NodeRecord,
    tree: &'t DataTree,
}

impl<'t> Node<'t> {
    /// The Stat a client sees. As in ZooKeeper (DataNode.copyStat), the persisted
    /// cversion counts child creations only (it numbers sequential children), and the
    /// reported one counts creations and deletions: `2 * creations - numChildren`.
    /// Container and TTL nodes report ephemeralOwner 0; their marker stays internal.
    pub fn stat(&self) -> Stat {
        stat_of(self.record)
    }

    /// The Stat as snapshots store it.
    pub fn persisted(&self) -> StatPersisted {
        self.record.fields().stat
    }

    pub fn kind(&self) -> NodeKind {
        NodeKind::from_owner(self.persisted().ephemeral_owner)
    }

    /// `None` when the node was created or last set with null data: ZooKeeper keeps
    /// that distinct from empty data (getData answers null, dataLength is 0).
    pub fn data(&self) -> Option<&'t [u8]> {
        self.record.data()
    }

    /// The data's bytes; empty for null data.
    pub fn bytes(&self) -> &'t [u8] {
        self.record.data().unwrap_or_default()
    }

    pub fn acl(&self) -> &'t Arc<[Acl]> {
        self.tree.acls.list(self.record.acl())
    }

    pub fn num_children(&self) -> i32 {
        self.record.fields().num_children as i32
    }

    /// Children names, sorted.
    pub fn children(&self) -> Vec<String> {
        self.tree.child_names(self.record.key())
    }
}

/// Heap bytes by part (`DataTree::heap_usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapUsage {
    /// The nodes themselves: path, Stat, ACL id, data.
    pub records: usize,
    /// The map from path to node.
    pub path_map: usize,
    /// Parents' child names and the map that finds them.
    pub child_lists: usize,
}

/// A parent's child names, keyed by the parent's path. Only nodes with children have one.
#[derive(Debug, Clone)]
struct ChildList {
    parent: Arc<[u8]>,
    names: Children,
}

impl Keyed for ChildList {
    fn key(&self) -> &[u8] {
        &self.parent
    }
}

/// A replicated session: its id and negotiated timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEntry {
    pub timeout_ms: i32,
}

/// The whole replicated state.
#[derive(Clone)]
pub struct DataTree {
    /// Every node by path, in a persistent map (an O(1) clone for snapshots).
    nodes: Hamt<NodeRecord>,
    /// The child names of every node that has children, by the parent's path.
    children: Hamt<ChildList>,
    acls: acl::AclTable,
    sessions: BTreeMap<i64, SessionEntry>,
    /// Session id → paths of its ephemerals (derived from `nodes`).
    ephemerals: FastMap<i64, BTreeSet<String>>,
    /// Paths of container and TTL nodes, the reaper's candidates (derived).
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    /// Approximate bytes of paths and data, as ZooKeeper's approximate_data_size.
    data_size: u64,
    last_zxid: i64,
}

impl std::fmt::Debug for DataTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataTree")
            .field("nodes", &self.nodes.len())
            .field("sessions", &self.sessions.len())
            .field("last_zxid", &self.last_zxid)
            .finish_non_exhaustive()
    }
}

/// The `/zookeeper` system subtree.
pub const SYSTEM_ROOT: &str = "/zookeeper";
pub const CONFIG_NODE: &str = "/zookeeper/config";
pub const QUOTA_ROOT: &str = "/zookeeper/quota";

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// An empty tree with the root and the `/zookeeper` system nodes.
    pub fn new() -> DataTree {
        let mut tree = DataTree::empty();
        let read_only = vec![Acl {
            perms: paddock_proto::perms::READ,
            id: paddock_proto::Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }];
        for (p, acl) in [
            ("/", acl::open_acl()),
            (SYSTEM_ROOT, acl::open_acl()),
            (QUOTA_ROOT, acl::open_acl()),
            (CONFIG_NODE, read_only),
        ] {
            tree.insert_raw(p, Some(b""), &acl, StatPersisted::default());
        }
        tree
    }

    /// A tree without even a root (what a snapshot is loaded into).
    fn empty() -> DataTree {
        DataTree {
            nodes: Hamt::new(),
            children: Hamt::new(),
            acls: acl::AclTable::default(),
            sessions: BTreeMap::new(),
            ephemerals: FastMap::default(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            data_size: 0,
            last_zxid: 0,
        }
    }

    /// Inserts a node and links it to its parent, without touching any Stat but the
    /// parent's child count (used to build system nodes and to load snapshots).
    fn insert_raw(&mut self, p: &str, data: Option<&[u8]>, acl: &[Acl], stat: StatPersisted) {
        if p != "/" {
            self.link_child(p, |_| {});
        }
        self.data_size += (p.len() + data.map_or(0, <[u8]>::len)) as u64;
        self.index(p, NodeKind::from_owner(stat.ephemeral_owner));
        let fields = Fields {
            stat,
            acl: self.acls.acquire(acl),
            num_children: 0,
        };
        self.nodes.insert(NodeRecord::new(p, data, &fields));
    }

    /// Adds `p`'s name to its parent's children and counts it in the parent's record,
    /// letting `update` change the parent's Stat too. False if the parent is missing.
    fn link_child(&mut self, p: &str, update: impl FnOnce(&mut StatPersisted)) -> bool {
        let parent_path = path::parent(p);
        let counted = self.nodes.update(parent_path.as_bytes(), |parent| {
            let mut fields = parent.fields();
            fields.num_children += 1;
            update(&mut fields.stat);
            *parent = parent.with_fields(&fields);
        });
        if counted.is_none() {
            return false;
        }
        let name = path::basename(p).as_bytes();
        let listed = self
            .children
            .update(parent_path.as_bytes(), |list| list.names.insert(name));
        match listed {
            Some(_) => {}
            None => {
                let mut names = Children::default();
                names.insert(name);
                self.children.insert(ChildList {
                    parent: Arc::from(parent_path.as_bytes()),
                    names,
                });
            }
        }
        true
    }

    /// Removes `p`'s name from its parent's children and count, letting `update` change
    /// the parent's Stat too.
    fn unlink_child(&mut self, p: &str, update: impl FnOnce(&mut StatPersisted)) {
        let parent_path = path::parent(p);
        self.nodes.update(parent_path.as_bytes(), |parent| {
            let mut fields = parent.fields();
            fields.num_children = fields.num_children.saturating_sub(1);
            update(&mut fields.stat);
            *parent = parent.with_fields(&fields);
        });
        let key = parent_path.as_bytes();
        let name = path::basename(p).as_bytes();
        let emptied = self.children.update(key, |list| {
            list.names.remove(name);
            list.names.is_empty()
        });
        if emptied == Some(true) {
            self.children.remove(key);
        }
    }

    fn child_names(&self, parent: &[u8]) -> Vec<String> {
        let Some(list) = self.children.get(parent) else {
            return Vec::new();
        };
        // Names come from paths, which are strings; a name that were not UTF-8 could
        // only come from a corrupted record, and is left out rather than invented.
        list.names
            .iter()
            .filter_map(|n| std::str::from_utf8(n).ok())
            .map(str::to_string)
            .collect()
    }

    fn index(&mut self, p: &str, kind: NodeKind) {
        match kind {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(session) => {
                self.ephemerals
                    .entry(session)
                    .or_default()
                    .insert(p.to_string());
            }
            NodeKind::Container => {
                self.containers.insert(p.to_string());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(p.to_string());
            }
        }
    }

    fn unindex(&mut self, p: &str, kind: NodeKind) {
        match kind {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(session) => {
                if let Some(set) = self.ephemerals.get_mut(&session) {
                    set.remove(p);
                    if set.is_empty() {
                        self.ephemerals.remove(&session);
                    }
                }
            }
            NodeKind::Container => {
                self.containers.remove(p);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(p);
            }
        }
    }

    /// Sets /zookeeper/config's data outside the txn stream: the initial membership of
    /// an ensemble, identical on every member (they start from the same static config).
    pub fn seed_config(&mut self, data: &[u8]) {
        if let Some(node) = self.nodes.get(CONFIG_NODE.as_bytes())
            && node.data().unwrap_or_default().is_empty()
        {
            let record = node.with_data(Some(data), &node.fields());
            self.nodes.insert(record);
            self.data_size += data.len() as u64;
        }
    }

    pub fn get(&self, p: &str) -> Option<Node<'_>> {
        self.nodes
            .get(p.as_bytes())
            .map(|record| Node { record, tree: self })
    }

    pub fn contains(&self, p: &str) -> bool {
        self.nodes.contains_key(p.as_bytes())
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    pub fn approximate_data_size(&self) -> u64 {
        self.data_size
    }

    /// Children names of a node, sorted.
    pub fn children(&self, p: &str) -> Option<Vec<String>> {
        self.get(p).map(|n| n.children())
    }

    /// The number of nodes below `p` (not counting `p`).
    pub fn descendant_count(&self, p: &str) -> Option<usize> {
        let node = self.get(p)?;
        let mut count = 0;
        let mut stack: Vec<String> = node.children().iter().map(|c| path::join(p, c)).collect();
        while let Some(child) = stack.pop() {
            count += 1;
            if let Some(n) = self.get(&child) {
                stack.extend(n.children().iter().map(|c| path::join(&child, c)));
            }
        }
        Some(count)
    }

    /// Checks that the derived parts agree with the nodes: every node but the root is
    /// listed once by its parent, child counts match the lists, and every ACL id in use
    /// resolves. Tests and the simulator call it; it walks the whole tree.
    #[cfg(test)]
    pub fn check_consistency(&self) -> Result<(), String> {
        let mut listed = 0;
        for list in self.children.iter() {
            let parent = String::from_utf8_lossy(&list.parent);
            let record = self
                .nodes
                .get(&list.parent)
                .ok_or_else(|| format!("{parent} has a child list but is not a node"))?;
            let names: Vec<&[u8]> = list.names.iter().collect();
            if names.is_empty() || names.len() != record.fields().num_children as usize {
                return Err(format!(
                    "{parent} lists {} children and counts {}",
                    names.len(),
                    record.fields().num_children
                ));
            }
            for name in names {
                let child = path::join(&parent, &String::from_utf8_lossy(name));
                if !self.contains(&child) {
                    return Err(format!("{parent} lists {child}, which is not a node"));
                }
                listed += 1;
            }
        }
        if listed + 1 != self.nodes.len() {
            return Err(format!(
                "{listed} nodes are listed as children of {} nodes",
                self.nodes.len()
            ));
        }
        let mut ids = std::collections::BTreeSet::new();
        for record in self.nodes.iter() {
            let fields = record.fields();
            if fields.num_children > 0 && self.children.get(record.key()).is_none() {
                return Err(format!("{:?} counts children but lists none", record));
            }
            ids.insert(record.acl());
        }
        if ids.len() != self.acls.in_use() {
            return Err(format!(
                "{} ACL ids used, {} held",
                ids.len(),
                self.acls.in_use()
            ));
        }
        Ok(())
    }

    /// Where the tree's heap bytes are, without the allocator's overhead. Walks the
    /// whole tree.
    pub fn heap_usage(&self) -> HeapUsage {
        HeapUsage {
            records: self.nodes.iter().map(NodeRecord::heap_bytes).sum(),
            path_map: self.nodes.structure_bytes(),
            child_lists: self.children.structure_bytes()
                + self
                    .children
                    .iter()
                    .map(|l| 16 + l.parent.len() + l.names.heap_bytes())
                    .sum::<usize>(),
        }
    }

    /// Distinct ACL lists in use.
    pub fn acl_lists(&self) -> usize {
        self.acls.in_use()
    }

    /// `acl` as a shared list, the tree's own copy when a node uses it already.
    pub fn shared_acl(&self, acl: &[Acl]) -> Arc<[Acl]> {
        self.acls.shared(acl)
    }

    pub fn sessions(&self) -> &BTreeMap<i64, SessionEntry> {
        &self.sessions
    }

    pub fn session_ephemerals(&self, session: i64) -> impl Iterator<Item = &String> {
        self.ephemerals.get(&session).into_iter().flatten()
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(BTreeSet::len).sum()
    }

    pub fn ephemerals_by_session(&self) -> &FastMap<i64, BTreeSet<String>> {
        &self.ephemerals
    }

    pub fn containers(&self) -> &BTreeSet<String> {
        &self.containers
    }

    pub fn ttl_nodes(&self) -> &BTreeSet<String> {
        &self.ttls
    }
}

#[cfg(test)]
mod tests;
