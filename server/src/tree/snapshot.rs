//! Tree snapshots. A snapshot is taken from an O(1) clone of the persistent node map, so
//! it is an exact image of the tree at one zxid (not a fuzzy one) and the serialization
//! runs on a background thread while the server keeps applying transactions.
//!
//! Every format starts (jute primitives) with the format version, the last zxid, the
//! session count, then (id, timeout) per session. The storage layer adds the header and
//! checksum, and compresses files (not SNAP syncs) with LZ4. Nodes come in pre-order (parents first, each parent's children in order).
//!
//! Format versions:
//! * 1: node count, then per node: path, data, ACL list, StatPersisted, all jute. Data is
//!   a buffer; a null node's data would be written as empty.
//! * 2: the same layout, but data may be null (length -1), as in ZooKeeper's own
//!   snapshots, and loads as null.
//! * 3, compact: the ACL lists once (count, then id and jute ACL list per list), the node
//!   count, then per node:
//!
//!   ```text
//!   parent   LEB128  the length of the parent's path, with which the previous node's
//!                    path starts (0 for the root, which comes first)
//!   name     LEB128 length, then the bytes: the last component ("/" for the root)
//!   flags    u8      which Stat fields are stored, and null data (tree::record)
//!   ACL id   LEB128  an id of the table above
//!   stat     czxid and ctime, then only the fields the flags name (little-endian)
//!   data     LEB128 length, then the bytes; left out when the data is null
//!   ```
//!
//!   About 130 bytes for a node of 100 bytes of data, against about 225 in version 1:
//!   a name instead of the whole path, an id instead of the ACL list, the Stat fields
//!   that differ from a fresh node's instead of all of them. It is the node as the tree
//!   holds it in memory (tree::record), so writing one copies its header as it is.
//!
//! Snapshot files are written in version 3. A SNAP sync to a peer is sent in version 1
//! (or 2, only when some node's data is null), byte for byte what builds from before
//! versions 2 and 3 wrote and read, so a peer of an older build can still load it in a
//! mixed ensemble during a rolling upgrade. Every version loads here, so a data dir
//! written by an older build recovers; an older build cannot read a version 3 file
//! (it says so: "unsupported snapshot format version 3").

use std::collections::BTreeMap;

use paddock_proto::{Acl, DecodeError, Jute, JuteWrite, Reader, StatPersisted};
use thiserror::Error;

use std::sync::Arc;

use super::acl::FrozenAcls;
use super::children::Children;
use super::hamt::{Hamt, Keyed};
use super::record::{Fields, NodeRecord, push_varint};
use super::{ChildList, DataTree, NodeKind, SessionEntry};
use crate::hashing::FastMap;
use crate::path;

/// Data is a plain buffer (null is never written).
const FORMAT_V1: i32 = 1;
/// Data may be null (length -1).
const FORMAT_V2_NULL_DATA: i32 = 2;
/// Compact nodes (see the module docs).
const FORMAT_V3_COMPACT: i32 = 3;

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("snapshot payload is malformed: {0}")]
    Malformed(#[from] DecodeError),
    #[error("unsupported snapshot format version {0}")]
    Version(i32),
    #[error("snapshot node {0} comes before its parent")]
    Orphan(String),
    #[error("snapshot holds node {0} twice")]
    Duplicate(String),
}

/// A frozen image of the tree, cheap to take and safe to serialize on another thread.
#[derive(Clone)]
pub struct SnapshotView {
    nodes: Hamt<NodeRecord>,
    children: Hamt<ChildList>,
    acls: FrozenAcls,
    sessions: BTreeMap<i64, SessionEntry>,
    pub last_zxid: i64,
}

impl DataTree {
    /// Freezes the current state (O(1) for the nodes, O(sessions) for the session table).
    pub fn snapshot_view(&self) -> SnapshotView {
        SnapshotView {
            nodes: self.nodes.clone(),
            children: self.children.clone(),
            acls: self.acls.frozen(),
            sessions: self.sessions.clone(),
            last_zxid: self.last_zxid,
        }
    }

    /// Rebuilds a tree from a snapshot payload of any version.
    pub fn from_snapshot(bytes: &[u8]) -> Result<DataTree, SnapshotError> {
        let mut r = Reader::new(bytes);
        let version = r.read_i32()?;
        if !(FORMAT_V1..=FORMAT_V3_COMPACT).contains(&version) {
            return Err(SnapshotError::Version(version));
        }
        // The snapshot carries the system nodes itself.
        let mut tree = DataTree::empty();
        tree.last_zxid = r.read_i64()?;
        let sessions = r.read_i32()?;
        for _ in 0..sessions.max(0) {
            let id = r.read_i64()?;
            let timeout_ms = r.read_i32()?;
            tree.sessions.insert(id, SessionEntry { timeout_ms });
        }
        let mut loader = Loader::default();
        if version == FORMAT_V3_COMPACT {
            load_compact_nodes(&mut tree, &mut loader, &mut r)?;
        } else {
            let count = r.read_i64()?;
            for _ in 0..count.max(0) {
                let p = r.read_ustr()?;
                let data = if version == FORMAT_V1 {
                    Some(r.read_buffer_ref()?)
                } else {
                    r.read_nullable_buffer_ref()?
                };
                let acl = loader.acl(&mut tree, &mut r)?;
                let stat = StatPersisted::read(&mut r)?;
                let name = path::basename(p).as_bytes();
                let fields = Fields {
                    stat,
                    acl,
                    // Set when the node's children are all in (`close`).
                    num_children: 0,
                };
                loader.add(&mut tree, p, name, data, fields)?;
            }
        }
        loader.finish(&mut tree)?;
        r.finish()?;
        Ok(tree)
    }
}

/// Version 3's ACL table and nodes (see the module docs).
fn load_compact_nodes<'a>(
    tree: &mut DataTree,
    loader: &mut Loader<'a>,
    r: &mut Reader<'a>,
) -> Result<(), SnapshotError> {
    // The snapshot's ACL ids, mapped to the tree's. Each list is held once while the
    // nodes load, so that an id is never freed and reused between two nodes using it.
    let mut acls: FastMap<u32, u32> = FastMap::default();
    let lists = r.read_i32()?;
    for _ in 0..lists.max(0) {
        let id = r.read_i32()? as u32;
        let list: Vec<Acl> = r.read_vec()?;
        let ours = tree.acls.acquire(&list);
        if let Some(again) = acls.insert(id, ours) {
            tree.acls.release(again);
        }
    }
    let count = r.read_i64()?;
    let mut path = String::new();
    for _ in 0..count.max(0) {
        let prefix_at = r.position();
        let prefix = r.read_varint_u32("path prefix")? as usize;
        let name_len = r.read_varint_u32("node name length")? as usize;
        let name_at = r.position();
        let name = r.read_bytes(name_len, "node name")?;
        let name_str =
            std::str::from_utf8(name).map_err(|_| DecodeError::BadUtf8 { offset: name_at })?;
        // The prefix is the parent's path: the previous path up to one of its slashes,
        // all of it, or the root; the name is one whole component. The root comes
        // first, all name.
        let root = prefix == 0 && name_str == "/" && path.is_empty();
        let ancestor =
            prefix == 1 || prefix == path.len() || path.as_bytes().get(prefix) == Some(&b'/');
        let fits = prefix > 0
            && prefix <= path.len()
            && ancestor
            && !name.is_empty()
            && !name.contains(&b'/');
        if !root && !fits {
            return Err(SnapshotError::Malformed(DecodeError::BadValue {
                what: "snapshot path prefix",
                value: prefix_at as i64,
            }));
        }
        path.truncate(prefix);
        if prefix > 1 {
            path.push('/');
        }
        path.push_str(name_str);
        let (mut fields, data) = NodeRecord::read_compact(r)?;
        let Some(&acl) = acls.get(&fields.acl) else {
            return Err(SnapshotError::Malformed(DecodeError::BadValue {
                what: "snapshot ACL id",
                value: fields.acl.into(),
            }));
        };
        tree.acls.acquire_again(acl);
        fields.acl = acl;
        loader.add(tree, &path, name, data, fields)?;
    }
    for ours in acls.into_values() {
        tree.acls.release(ours);
    }
    Ok(())
}

/// Builds a tree from a snapshot's nodes, which come parents first in a depth-first walk
/// with each parent's children in order (as `serialize` writes them). The open path from
/// the root is kept on a stack, so a parent's child list is built once, in order, when
/// its last child is in, instead of being updated child by child; and the records are
/// collected and put in the path map at once at the end (`Hamt::from_entries`). A node
/// whose parent is not on the open path (a snapshot in another order) first moves what
/// was collected into the map, and it and the rest go through the ordinary linking.
/// Nothing of the input is copied but into the tree.
#[derive(Default)]
struct Loader<'a> {
    /// The nodes from the root to the last one loaded.
    open: Vec<OpenNode<'a>>,
    /// Records not yet in the map.
    collected: Vec<NodeRecord>,
    /// Records go into the map one by one from now on.
    linking: bool,
    /// The last ACL list read, as its bytes, and its id.
    last_acl: Option<(&'a [u8], u32)>,
}

/// A node whose children may still come.
struct OpenNode<'a> {
    /// Its record as first built (the path is its key).
    record: NodeRecord,
    /// Where its record is in `Loader::collected`, while it is there.
    index: Option<usize>,
    /// Its children's names so far.
    names: Vec<&'a [u8]>,
}

impl<'a> Loader<'a> {
    /// The id of the ACL list at the reader, read once for a run of nodes that share it.
    fn acl(&mut self, tree: &mut DataTree, r: &mut Reader<'a>) -> Result<u32, SnapshotError> {
        let start = r.position();
        skip_acl(r)?;
        let bytes = &r.whole()[start..r.position()];
        if let Some((last, id)) = self.last_acl
            && last == bytes
        {
            tree.acls.acquire_again(id);
            return Ok(id);
        }
        let acl: Vec<Acl> = Reader::new(bytes).read_vec()?;
        let id = tree.acls.acquire(&acl);
        self.last_acl = Some((bytes, id));
        Ok(id)
    }

    /// Adds node `p`, whose last component is `name`; its child count is set when its
    /// children are all in (`close`).
    fn add(
        &mut self,
        tree: &mut DataTree,
        p: &str,
        name: &'a [u8],
        data: Option<&'a [u8]>,
        fields: Fields,
    ) -> Result<(), SnapshotError> {
        if p != "/" {
            let parent = path::parent(p).as_bytes();
            while self
                .open
                .last()
                .is_some_and(|open| open.record.key() != parent)
            {
                self.close(tree);
            }
            match self.open.last_mut() {
                Some(open) => open.names.push(name),
                None => {
                    self.move_collected(tree)?;
                    if !tree.link_child(p, |_| {}) {
                        tree.acls.release(fields.acl);
                        return Err(SnapshotError::Orphan(p.to_string()));
                    }
                }
            }
        }
        tree.data_size += (p.len() + data.map_or(0, <[u8]>::len)) as u64;
        tree.index(p, NodeKind::from_owner(fields.stat.ephemeral_owner));
        let record = NodeRecord::new(p, data, &fields);
        let index = if self.linking {
            if tree.nodes.insert(record.clone()).is_some() {
                return Err(SnapshotError::Duplicate(p.to_string()));
            }
            None
        } else {
            self.collected.push(record.clone());
            Some(self.collected.len() - 1)
        };
        self.open.push(OpenNode {
            record,
            index,
            names: Vec::new(),
        });
        Ok(())
    }

    /// Puts the collected records in the map; later ones go in one by one.
    fn move_collected(&mut self, tree: &mut DataTree) -> Result<(), SnapshotError> {
        if self.linking {
            return Ok(());
        }
        self.linking = true;
        for open in &mut self.open {
            open.index = None;
        }
        let collected = std::mem::take(&mut self.collected);
        tree.nodes = Hamt::from_entries(collected).map_err(|twice| {
            SnapshotError::Duplicate(String::from_utf8_lossy(twice.key()).into_owned())
        })?;
        Ok(())
    }

    /// The last open node is complete: its child list and count go in.
    fn close(&mut self, tree: &mut DataTree) {
        let Some(OpenNode {
            record,
            index,
            names,
        }) = self.open.pop()
        else {
            return;
        };
        let count = names.len() as u32;
        if !names.is_empty() {
            let list = match Children::from_sorted(names.iter().copied()) {
                Some(list) => list,
                None => {
                    let mut list = Children::default();
                    for name in &names {
                        list.insert(name);
                    }
                    list
                }
            };
            tree.children.insert(ChildList {
                parent: Arc::from(record.key()),
                names: list,
            });
        }
        // A compact snapshot stores the count; the others do not (it starts at 0).
        let mut fields = record.fields();
        if fields.num_children == count {
            return;
        }
        fields.num_children = count;
        match index {
            Some(i) => self.collected[i] = self.collected[i].with_fields(&fields),
            None => {
                if let Some(current) = tree.nodes.get(record.key()) {
                    let counted = current.with_fields(&fields);
                    tree.nodes.insert(counted);
                }
            }
        }
    }

    fn finish(mut self, tree: &mut DataTree) -> Result<(), SnapshotError> {
        while !self.open.is_empty() {
            self.close(tree);
        }
        self.move_collected(tree)
    }
}

/// Moves the reader past one ACL list (count, then perms, scheme and id per entry)
/// without building it.
fn skip_acl(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    let count = r.read_i32()?;
    for _ in 0..count.max(0) {
        r.read_i32()?;
        r.read_ustr()?;
        r.read_ustr()?;
    }
    Ok(())
}

impl SnapshotView {
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Serializes the frozen tree for a peer (a SNAP sync): version 1, or 2 when some
    /// node's data is null, which builds of every age load.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.nodes.len() * 96);
        // Patched to version 2 below if a node's data turns out to be null.
        out.put_i32(FORMAT_V1);
        let mut null_data = false;
        self.put_sessions(&mut out);
        out.put_i64(self.nodes.len() as i64);
        self.walk(|p, node| {
            let fields = node.fields();
            out.put_ustring(p);
            out.put_nullable_buffer(node.data());
            null_data |= node.data().is_none();
            out.put_vec(self.acls.list(fields.acl));
            fields.stat.write(&mut out);
        });
        if null_data {
            out[..4].copy_from_slice(&FORMAT_V2_NULL_DATA.to_be_bytes());
        }
        out
    }

    /// Serializes the frozen tree for a snapshot file: version 3 (see the module docs).
    pub fn serialize_compact(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.nodes.len() * 64);
        // Writing to a Vec cannot fail.
        let _ = self.serialize_compact_into(&mut out);
        out
    }

    /// [`serialize_compact`](Self::serialize_compact) streamed to `sink` a megabyte at a
    /// time: a snapshot file is written without the whole payload in memory first.
    pub fn serialize_compact_into(&self, sink: &mut impl std::io::Write) -> std::io::Result<()> {
        const FLUSH_AT: usize = 1 << 20;
        let mut out = Vec::with_capacity(FLUSH_AT + 64 * 1024);
        out.put_i32(FORMAT_V3_COMPACT);
        self.put_sessions(&mut out);
        let lists: Vec<(u32, &[Acl])> = self.acls.iter().collect();
        out.put_i32(lists.len() as i32);
        for (id, list) in lists {
            out.put_i32(id as i32);
            out.put_vec(list);
        }
        out.put_i64(self.nodes.len() as i64);
        let mut failed = None;
        self.walk(|p, node| {
            if failed.is_some() {
                return;
            }
            // The parent's path starts the previous node's too: the walk is pre-order,
            // so the previous node is the parent or inside an elder sibling.
            let (prefix, name) = match p.rfind('/') {
                _ if p == "/" => (0, p),
                Some(0) => (1, &p[1..]),
                Some(slash) => (slash, &p[slash + 1..]),
                None => (0, p),
            };
            push_varint(&mut out, prefix as u32);
            push_varint(&mut out, name.len() as u32);
            out.extend_from_slice(name.as_bytes());
            node.write_compact(&mut out);
            if out.len() >= FLUSH_AT {
                failed = sink.write_all(&out).err();
                out.clear();
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        sink.write_all(&out)
    }

    fn put_sessions(&self, out: &mut Vec<u8>) {
        out.put_i64(self.last_zxid);
        out.put_i32(self.sessions.len() as i32);
        for (id, entry) in &self.sessions {
            out.put_i64(*id);
            out.put_i32(entry.timeout_ms);
        }
    }

    /// Calls `visit` with every node in pre-order from the root, each parent's children
    /// in order, so that a loader always sees a parent before its children.
    fn walk(&self, mut visit: impl FnMut(&str, &NodeRecord)) {
        let mut stack: Vec<String> = vec!["/".to_string()];
        while let Some(p) = stack.pop() {
            let Some(node) = self.nodes.get(p.as_bytes()) else {
                continue;
            };
            visit(&p, node);
            if let Some(list) = self.children.get(p.as_bytes()) {
                // Names come from paths, so they are UTF-8 (see DataTree::child_names).
                let names: Vec<&str> = list
                    .names
                    .iter()
                    .filter_map(|n| std::str::from_utf8(n).ok())
                    .collect();
                stack.extend(names.iter().rev().map(|c| path::join(&p, c)));
            }
        }
    }
}
