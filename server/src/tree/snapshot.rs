//! Tree snapshots. A snapshot is taken from an O(1) clone of the persistent node map, so
//! it is an exact image of the tree at one zxid (not a fuzzy one) and the serialization
//! runs on a background thread while the server keeps applying transactions.
//!
//! Payload layout (jute primitives): format version, last zxid, session count, then
//! (id, timeout) per session, node count, then per node in pre-order (parents first):
//! path, data, ACL list, StatPersisted. The storage layer adds the header and checksum.
//!
//! Format versions:
//! * 1: data is a buffer; a null node's data would be written as empty.
//! * 2: the same layout, but data may be null (length -1), as in ZooKeeper's own
//!   snapshots, and loads as null.
//!
//! A snapshot is written as version 2 only when some node's data is null; otherwise it
//! is version 1, byte for byte what builds from before null data was kept wrote and
//! read, so they can still load it (after a downgrade, or as a SNAP sync from a newer
//! leader in a mixed ensemble during a rolling upgrade). Both versions load here.

use std::collections::BTreeMap;

use paddock_proto::{Acl, DecodeError, Jute, JuteWrite, Reader, StatPersisted};
use thiserror::Error;

use std::sync::Arc;

use super::acl::FrozenAcls;
use super::children::Children;
use super::hamt::{Hamt, Keyed};
use super::record::{Fields, NodeRecord};
use super::{ChildList, DataTree, NodeKind, SessionEntry};
use crate::path;

/// Data is a plain buffer (null is never written).
const FORMAT_V1: i32 = 1;
/// Data may be null (length -1).
const FORMAT_V2_NULL_DATA: i32 = 2;

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

    /// Rebuilds a tree from a snapshot payload.
    pub fn from_snapshot(bytes: &[u8]) -> Result<DataTree, SnapshotError> {
        let mut r = Reader::new(bytes);
        let version = r.read_i32()?;
        if version != FORMAT_V1 && version != FORMAT_V2_NULL_DATA {
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
        let count = r.read_i64()?;
        let mut loader = Loader::default();
        for _ in 0..count.max(0) {
            let p = r.read_ustr()?;
            let data = if version == FORMAT_V1 {
                Some(r.read_buffer_ref()?)
            } else {
                r.read_nullable_buffer_ref()?
            };
            let acl = loader.acl(&mut tree, &mut r)?;
            let stat = StatPersisted::read(&mut r)?;
            loader.add(&mut tree, p, data, acl, stat)?;
        }
        loader.finish(&mut tree)?;
        r.finish()?;
        Ok(tree)
    }
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
    path: &'a str,
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

    fn add(
        &mut self,
        tree: &mut DataTree,
        p: &'a str,
        data: Option<&'a [u8]>,
        acl: u32,
        stat: StatPersisted,
    ) -> Result<(), SnapshotError> {
        if p != "/" {
            let parent = path::parent(p);
            while self.open.last().is_some_and(|open| open.path != parent) {
                self.close(tree);
            }
            match self.open.last_mut() {
                Some(open) => open.names.push(path::basename(p).as_bytes()),
                None => {
                    self.move_collected(tree)?;
                    if !tree.link_child(p, |_| {}) {
                        tree.acls.release(acl);
                        return Err(SnapshotError::Orphan(p.to_string()));
                    }
                }
            }
        }
        tree.data_size += (p.len() + data.map_or(0, <[u8]>::len)) as u64;
        tree.index(p, NodeKind::from_owner(stat.ephemeral_owner));
        let fields = Fields {
            stat,
            acl,
            num_children: 0,
        };
        let record = NodeRecord::new(p, data, &fields);
        let index = if self.linking {
            if tree.nodes.insert(record).is_some() {
                return Err(SnapshotError::Duplicate(p.to_string()));
            }
            None
        } else {
            self.collected.push(record);
            Some(self.collected.len() - 1)
        };
        self.open.push(OpenNode {
            path: p,
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
            path: p,
            index,
            names,
        }) = self.open.pop()
        else {
            return;
        };
        if names.is_empty() {
            return;
        }
        let count = names.len() as u32;
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
            parent: Arc::from(p.as_bytes()),
            names: list,
        });
        let counted = |record: &NodeRecord| {
            let mut fields = record.fields();
            fields.num_children = count;
            record.with_fields(&fields)
        };
        match index {
            Some(i) => self.collected[i] = counted(&self.collected[i]),
            None => {
                if let Some(record) = tree.nodes.get(p.as_bytes()) {
                    let record = counted(record);
                    tree.nodes.insert(record);
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

    /// Serializes the frozen tree.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.nodes.len() * 96);
        // Patched to version 2 below if a node's data turns out to be null.
        out.put_i32(FORMAT_V1);
        let mut null_data = false;
        out.put_i64(self.last_zxid);
        out.put_i32(self.sessions.len() as i32);
        for (id, entry) in &self.sessions {
            out.put_i64(*id);
            out.put_i32(entry.timeout_ms);
        }
        out.put_i64(self.nodes.len() as i64);
        // Pre-order walk from the root so a loader always sees a parent before its children.
        let mut stack: Vec<String> = vec!["/".to_string()];
        while let Some(p) = stack.pop() {
            let Some(node) = self.nodes.get(p.as_bytes()) else {
                continue;
            };
            let fields = node.fields();
            out.put_ustring(&p);
            out.put_nullable_buffer(node.data());
            null_data |= node.data().is_none();
            out.put_vec(self.acls.list(fields.acl));
            fields.stat.write(&mut out);
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
        if null_data {
            out[..4].copy_from_slice(&FORMAT_V2_NULL_DATA.to_be_bytes());
        }
        out
    }
}
