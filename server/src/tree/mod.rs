//! The data tree: znodes, their Stat, children, ACLs and the ephemeral, container and
//! TTL indexes, plus the replicated session table.
//!
//! The tree only changes by applying transactions (`apply.rs`), in zxid order, so every
//! replica that applies the same log holds the same tree. Nodes live in persistent
//! (structurally shared) maps: cloning the whole tree for a background snapshot is O(1)
//! and the request pipeline never pauses for it.

pub mod acl;
mod apply;
mod snapshot;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use imbl::{GenericHashMap, OrdSet};

use crate::hashing::Hasher;
use paddock_proto::{Acl, Stat, StatPersisted};

pub use apply::{ApplyResult, WatchTrigger};
pub use snapshot::{SnapshotError, SnapshotView};

use crate::path;

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

/// One znode.
#[derive(Debug, Clone)]
pub struct Node {
    /// `None` when the node was created or last set with null data: ZooKeeper keeps
    /// that distinct from empty data (getData answers null, dataLength is 0).
    pub data: Option<Arc<[u8]>>,
    pub acl: Arc<Vec<Acl>>,
    pub stat: StatPersisted,
    pub children: OrdSet<Arc<str>>,
}

impl Node {
    /// The Stat a client sees. As in ZooKeeper (DataNode.copyStat), the persisted
    /// cversion counts child creations only (it numbers sequential children), and the
    /// reported one counts creations and deletions: `2 * creations - numChildren`.
    /// Container and TTL nodes report ephemeralOwner 0; their marker stays internal.
    pub fn stat(&self) -> Stat {
        let num_children = self.children.len() as i32;
        let mut stat = Stat::from_persisted(&self.stat, self.bytes().len() as i32, num_children);
        stat.cversion = self
            .stat
            .cversion
            .wrapping_mul(2)
            .wrapping_sub(num_children);
        if matches!(self.kind(), NodeKind::Container | NodeKind::Ttl(_)) {
            stat.ephemeral_owner = 0;
        }
        stat
    }

    pub fn kind(&self) -> NodeKind {
        NodeKind::from_owner(self.stat.ephemeral_owner)
    }

    /// The data's bytes; empty for null data.
    pub fn bytes(&self) -> &[u8] {
        self.data.as_deref().unwrap_or_default()
    }
}

/// A replicated session: its id and negotiated timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEntry {
    pub timeout_ms: i32,
}

/// Every node by path, in a persistent map (an O(1) clone for snapshots).
type Nodes = GenericHashMap<Arc<str>, Node, Hasher, imbl::shared_ptr::DefaultSharedPtr>;

/// The whole replicated state.
#[derive(Debug, Clone)]
pub struct DataTree {
    nodes: Nodes,
    sessions: BTreeMap<i64, SessionEntry>,
    /// Session id → paths of its ephemerals (derived from `nodes`).
    ephemerals: HashMap<i64, BTreeSet<String>>,
    /// Paths of container and TTL nodes, the reaper's candidates (derived).
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    /// Approximate bytes of paths and data, as ZooKeeper's approximate_data_size.
    data_size: u64,
    last_zxid: i64,
    acl_cache: acl::AclCache,
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
        let mut tree = DataTree {
            nodes: Nodes::default(),
            sessions: BTreeMap::new(),
            ephemerals: HashMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            data_size: 0,
            last_zxid: 0,
            acl_cache: acl::AclCache::default(),
        };
        let open = tree.acl_cache.intern(acl::open_acl());
        let read_only = tree.acl_cache.intern(vec![Acl {
            perms: paddock_proto::perms::READ,
            id: paddock_proto::Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }]);
        for (p, acl) in [
            ("/", open.clone()),
            (SYSTEM_ROOT, open.clone()),
            (QUOTA_ROOT, open),
            (CONFIG_NODE, read_only),
        ] {
            tree.insert_raw(p, Some(Arc::from(&b""[..])), acl, StatPersisted::default());
        }
        tree
    }

    /// Inserts a node and links it to its parent, without touching any Stat
    /// (used to build system nodes and to load snapshots).
    fn insert_raw(
        &mut self,
        p: &str,
        data: Option<Arc<[u8]>>,
        acl: Arc<Vec<Acl>>,
        stat: StatPersisted,
    ) {
        if p != "/" {
            let name: Arc<str> = Arc::from(path::basename(p));
            if let Some(parent) = self.nodes.get_mut(path::parent(p)) {
                parent.children.insert(name);
            }
        }
        self.data_size += (p.len() + data.as_deref().map_or(0, <[u8]>::len)) as u64;
        self.index(p, NodeKind::from_owner(stat.ephemeral_owner));
        self.nodes.insert(
            Arc::from(p),
            Node {
                data,
                acl,
                stat,
                children: OrdSet::new(),
            },
        );
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
        if let Some(node) = self.nodes.get_mut(CONFIG_NODE)
            && node.bytes().is_empty()
        {
            node.data = Some(Arc::from(data));
            self.data_size += data.len() as u64;
        }
    }

    pub fn get(&self, p: &str) -> Option<&Node> {
        self.nodes.get(p)
    }

    pub fn contains(&self, p: &str) -> bool {
        self.nodes.contains_key(p)
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
        self.nodes
            .get(p)
            .map(|n| n.children.iter().map(|c| c.to_string()).collect())
    }

    /// The number of nodes below `p` (not counting `p`).
    pub fn descendant_count(&self, p: &str) -> Option<usize> {
        let node = self.nodes.get(p)?;
        let mut count = 0;
        let mut stack: Vec<String> = node.children.iter().map(|c| path::join(p, c)).collect();
        while let Some(child) = stack.pop() {
            count += 1;
            if let Some(n) = self.nodes.get(child.as_str()) {
                stack.extend(n.children.iter().map(|c| path::join(&child, c)));
            }
        }
        Some(count)
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

    pub fn ephemerals_by_session(&self) -> &HashMap<i64, BTreeSet<String>> {
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
