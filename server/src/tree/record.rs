//! One znode in one shared allocation: its path, its persisted Stat, its ACL's id, its
//! child count and its data.
//!
//! Layout (little-endian): flags (u8), path length (LEB128), path, ACL id (LEB128),
//! czxid, ctime, then only the fields that the flags say differ from their usual value, then
//! the data. A node that was created and never changed (the bulk of a large tree) stores
//! czxid and ctime alone: mzxid, mtime and pzxid equal them, the versions and the owner
//! are 0, and it has no children. The path comes first so that the map's key comparison
//! reads it without decoding anything else.

use std::cell::RefCell;
use std::sync::Arc;

use paddock_proto::{DecodeError, Reader, StatPersisted};

use super::hamt::Keyed;

/// The data is null (not merely empty).
const NULL_DATA: u8 = 1;
/// mzxid and mtime are stored (they differ from czxid and ctime).
const MODIFIED: u8 = 1 << 1;
/// pzxid is stored (it differs from czxid).
const PZXID: u8 = 1 << 2;
/// version, cversion and aversion are stored (one of them is not 0).
const VERSIONS: u8 = 1 << 3;
/// ephemeralOwner is stored (not 0).
const OWNER: u8 = 1 << 4;
/// The child count is stored (not 0).
const CHILDREN: u8 = 1 << 5;

/// The length of the fixed fields (czxid, ctime) and the stored optional ones, by flags.
const HEADER_LEN: [usize; 64] = {
    let mut table = [0; 64];
    let mut flags = 0;
    while flags < 64 {
        let f = flags as u8;
        table[flags] = 16
            + stored(f, MODIFIED, 16)
            + stored(f, PZXID, 8)
            + stored(f, VERSIONS, 12)
            + stored(f, OWNER, 8)
            + stored(f, CHILDREN, 4);
        flags += 1;
    }
    table
};

const fn stored(flags: u8, flag: u8, bytes: usize) -> usize {
    if flags & flag != 0 { bytes } else { 0 }
}

/// The longest header after the path: ACL id, czxid, ctime, mzxid, mtime, pzxid, three
/// versions, owner, child count.
const MAX_HEADER: usize = 5 + 8 * 5 + 4 * 3 + 8 + 4;
/// The longest LEB128 encoding of a u32.
const MAX_VARINT: usize = 5;

thread_local! {
    /// Where shared bytes are assembled (the core thread makes nearly all of them).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A scratch buffer grown past this by a large node is let go rather than kept.
const SCRATCH_KEPT: usize = 64 * 1024;

/// Shared bytes that `build` writes: assembled in a reused buffer, then copied once into
/// their own allocation. (Collecting pieces straight into an `Arc<[u8]>` copies byte by
/// byte, about 2,000 instructions for a record of 150 bytes by bench/instructions.sh;
/// building a Vec first costs a second allocation.) `build` must not call it again.
pub(super) fn shared_bytes(build: impl FnOnce(&mut Vec<u8>)) -> Arc<[u8]> {
    SCRATCH.with_borrow_mut(|buf| {
        buf.clear();
        build(buf);
        let bytes = Arc::from(&buf[..]);
        if buf.capacity() > SCRATCH_KEPT {
            *buf = Vec::new();
        }
        bytes
    })
}

/// A znode's fields, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    pub stat: StatPersisted,
    pub acl: u32,
    pub num_children: u32,
}

#[derive(Clone, PartialEq, Eq)]
pub struct NodeRecord(Arc<[u8]>);

impl std::fmt::Debug for NodeRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRecord")
            .field("path", &String::from_utf8_lossy(self.key()))
            .field("fields", &self.fields())
            .field("data", &self.data().map(|d| d.len()))
            .finish()
    }
}

impl Keyed for NodeRecord {
    fn key(&self) -> &[u8] {
        let (start, end) = self.path_range();
        &self.0[start..end]
    }
}

impl NodeRecord {
    pub fn new(path: &str, data: Option<&[u8]>, fields: &Fields) -> NodeRecord {
        NodeRecord::build(path.as_bytes(), data, fields)
    }

    fn build(path: &[u8], data: Option<&[u8]>, fields: &Fields) -> NodeRecord {
        let s = &fields.stat;
        let mut flags = 0;
        let mut header = [0u8; MAX_HEADER];
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            header[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        let mut acl = [0u8; MAX_VARINT];
        let acl_len = put_varint(&mut acl, fields.acl);
        put(&acl[..acl_len]);
        put(&s.czxid.to_le_bytes());
        put(&s.ctime.to_le_bytes());
        if s.mzxid != s.czxid || s.mtime != s.ctime {
            flags |= MODIFIED;
            put(&s.mzxid.to_le_bytes());
            put(&s.mtime.to_le_bytes());
        }
        if s.pzxid != s.czxid {
            flags |= PZXID;
            put(&s.pzxid.to_le_bytes());
        }
        if (s.version, s.cversion, s.aversion) != (0, 0, 0) {
            flags |= VERSIONS;
            put(&s.version.to_le_bytes());
            put(&s.cversion.to_le_bytes());
            put(&s.aversion.to_le_bytes());
        }
        if s.ephemeral_owner != 0 {
            flags |= OWNER;
            put(&s.ephemeral_owner.to_le_bytes());
        }
        if fields.num_children != 0 {
            flags |= CHILDREN;
            put(&fields.num_children.to_le_bytes());
        }
        if data.is_none() {
            flags |= NULL_DATA;
        }
        // Paths are bounded by the request frame, far below 4 GiB.
        let mut path_len = [0u8; MAX_VARINT];
        let path_len_bytes = put_varint(&mut path_len, path.len() as u32);
        let path_len = &path_len[..path_len_bytes];
        NodeRecord(shared_bytes(|buf| {
            buf.push(flags);
            buf.extend_from_slice(path_len);
            buf.extend_from_slice(path);
            buf.extend_from_slice(&header[..len]);
            buf.extend_from_slice(data.unwrap_or_default());
        }))
    }

    fn flags(&self) -> u8 {
        self.0[0]
    }

    fn path_range(&self) -> (usize, usize) {
        let (len, start) = varint(&self.0, 1);
        (start, start + len as usize)
    }

    /// The ACL id, and where the header after the path starts (at the ACL id), where its
    /// fixed fields start and where it ends (where the data starts).
    fn header(&self) -> (u32, usize, usize) {
        let flags = self.flags();
        let (acl, fixed) = varint(&self.0, self.path_range().1);
        (acl, fixed, fixed + HEADER_LEN[usize::from(flags & 0x3f)])
    }

    /// `None` for null data.
    pub fn data(&self) -> Option<&[u8]> {
        if self.flags() & NULL_DATA != 0 {
            return None;
        }
        Some(&self.0[self.header().2..])
    }

    pub fn acl(&self) -> u32 {
        self.header().0
    }

    pub fn fields(&self) -> Fields {
        self.decode().0
    }

    /// The fields and the data, decoding the header once.
    pub fn decode(&self) -> (Fields, Option<&[u8]>) {
        let flags = self.flags();
        let (acl, fixed, data_start) = self.header();
        let data = (flags & NULL_DATA == 0).then(|| &self.0[data_start..]);
        let (stat, num_children) = decode_fixed(flags, &self.0[fixed..data_start]);
        let fields = Fields {
            stat,
            acl,
            num_children,
        };
        (fields, data)
    }

    /// Writes the node as a compact snapshot holds it after the path (see
    /// `tree::snapshot`): the flags, the header from the ACL id on as it is here, then
    /// the data's length (LEB128) and the data, both left out when the data is null.
    pub(super) fn write_compact(&self, out: &mut Vec<u8>) {
        let (_, _, data_start) = self.header();
        out.push(self.flags());
        out.extend_from_slice(&self.0[self.path_range().1..data_start]);
        if let Some(data) = self.data() {
            // Data is bounded by the request frame, far below 4 GiB.
            push_varint(out, data.len() as u32);
            out.extend_from_slice(data);
        }
    }

    /// Reads what [`write_compact`](Self::write_compact) wrote: the fields (with the ACL
    /// id as the snapshot numbers it) and the data, borrowed from the input.
    pub(super) fn read_compact<'a>(
        r: &mut Reader<'a>,
    ) -> Result<(Fields, Option<&'a [u8]>), DecodeError> {
        let flags = r.read_bytes(1, "node flags")?[0];
        if flags > 0x3f {
            return Err(DecodeError::BadValue {
                what: "node flags",
                value: flags.into(),
            });
        }
        let acl = r.read_varint_u32("node ACL id")?;
        let fixed = r.read_bytes(HEADER_LEN[usize::from(flags)], "node stat")?;
        let (stat, num_children) = decode_fixed(flags, fixed);
        let data = match flags & NULL_DATA {
            0 => {
                let len = r.read_varint_u32("node data length")?;
                Some(r.read_bytes(len as usize, "node data")?)
            }
            _ => None,
        };
        let fields = Fields {
            stat,
            acl,
            num_children,
        };
        Ok((fields, data))
    }

    /// The same node with other fields.
    pub fn with_fields(&self, fields: &Fields) -> NodeRecord {
        NodeRecord::build(self.key(), self.data(), fields)
    }

    /// The same node with other data and fields.
    pub fn with_data(&self, data: Option<&[u8]>, fields: &Fields) -> NodeRecord {
        NodeRecord::build(self.key(), data, fields)
    }

    /// Bytes this record takes on the heap, without the allocator's own overhead.
    pub fn heap_bytes(&self) -> usize {
        // Arc's two counts, then the bytes.
        16 + self.0.len()
    }
}

/// The Stat and the child count in `b`: czxid and ctime, then the fields that `flags`
/// says are stored (`b` is `HEADER_LEN[flags]` bytes long).
fn decode_fixed(flags: u8, b: &[u8]) -> (StatPersisted, u32) {
    let czxid = i64_at(b, 0);
    let ctime = i64_at(b, 8);
    let mut at = 16;
    let mut next_i64 = |stored: bool, default: i64| {
        if !stored {
            return default;
        }
        at += 8;
        i64_at(b, at - 8)
    };
    let mzxid = next_i64(flags & MODIFIED != 0, czxid);
    let mtime = next_i64(flags & MODIFIED != 0, ctime);
    let pzxid = next_i64(flags & PZXID != 0, czxid);
    let mut versions = [0i32; 3];
    if flags & VERSIONS != 0 {
        for v in &mut versions {
            *v = u32_at(b, at) as i32;
            at += 4;
        }
    }
    let ephemeral_owner = if flags & OWNER != 0 {
        at += 8;
        i64_at(b, at - 8)
    } else {
        0
    };
    let num_children = if flags & CHILDREN != 0 {
        u32_at(b, at)
    } else {
        0
    };
    let [version, cversion, aversion] = versions;
    let stat = StatPersisted {
        czxid,
        mzxid,
        ctime,
        mtime,
        version,
        cversion,
        aversion,
        ephemeral_owner,
        pzxid,
    };
    (stat, num_children)
}

/// Writes `value` as LEB128 into `out`; the bytes written.
/// Appends `value` in LEB128 (what [`put_varint`] writes) to `out`.
pub(super) fn push_varint(out: &mut Vec<u8>, value: u32) {
    let mut bytes = [0u8; MAX_VARINT];
    let n = put_varint(&mut bytes, value);
    out.extend_from_slice(&bytes[..n]);
}

fn put_varint(out: &mut [u8; MAX_VARINT], mut value: u32) -> usize {
    let mut n = 0;
    while value >= 0x80 {
        out[n] = (value as u8 & 0x7f) | 0x80;
        value >>= 7;
        n += 1;
    }
    out[n] = value as u8;
    n + 1
}

/// The LEB128 value at `at`, and where it ends.
fn varint(b: &[u8], mut at: usize) -> (u32, usize) {
    let mut value = 0u32;
    let mut shift = 0;
    loop {
        let byte = b[at];
        at += 1;
        value |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 || shift >= 28 {
            return (value, at);
        }
        shift += 7;
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut le = [0u8; 4];
    le.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(le)
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut le = [0u8; 8];
    le.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(le)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn stat() -> impl Strategy<Value = StatPersisted> {
        // Each field either equals its usual value or is arbitrary, so every flag
        // combination comes up.
        let zxid = prop_oneof![Just(7i64), any::<i64>()];
        let time = prop_oneof![Just(1_000i64), any::<i64>()];
        let small = prop_oneof![Just(0i32), any::<i32>()];
        let owner = prop_oneof![Just(0i64), any::<i64>()];
        (
            (zxid.clone(), zxid.clone(), time.clone(), time),
            (small.clone(), small.clone(), small),
            (owner, zxid),
        )
            .prop_map(|(changes, versions, (owner, pzxid))| {
                let mut stat = StatPersisted {
                    ephemeral_owner: owner,
                    pzxid,
                    ..StatPersisted::default()
                };
                (stat.czxid, stat.mzxid, stat.ctime, stat.mtime) = changes;
                (stat.version, stat.cversion, stat.aversion) = versions;
                stat
            })
    }

    proptest! {
        #[test]
        fn every_field_comes_back_as_it_went_in(
            path in "/[a-zé0-9/]{0,40}|/[a-z]{120,300}",
            data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            stat in stat(),
            acl in any::<u32>(),
            num_children in prop_oneof![Just(0u32), any::<u32>()],
        ) {
            let fields = Fields { stat, acl, num_children };
            let record = NodeRecord::new(&path, data.as_deref(), &fields);
            prop_assert_eq!(record.key(), path.as_bytes());
            prop_assert_eq!(record.data(), data.as_deref());
            prop_assert_eq!(record.acl(), acl);
            prop_assert_eq!(record.fields(), fields.clone());
            let changed = Fields { num_children: num_children.wrapping_add(1), ..fields };
            let again = record.with_fields(&changed);
            prop_assert_eq!(again.key(), path.as_bytes());
            prop_assert_eq!(again.data(), data.as_deref());
            prop_assert_eq!(again.fields(), changed);
        }
    }

    #[test]
    fn an_untouched_node_stores_only_its_creation() {
        let stat = StatPersisted {
            czxid: 5,
            mzxid: 5,
            ctime: 9,
            mtime: 9,
            pzxid: 5,
            ..StatPersisted::default()
        };
        let fields = Fields {
            stat,
            acl: 0,
            num_children: 0,
        };
        let record = NodeRecord::new("/a/n0001", Some(&[1; 100]), &fields);
        // flags, path length, path, ACL id, czxid, ctime, data.
        assert_eq!(record.heap_bytes(), 16 + 1 + 1 + 8 + 1 + 16 + 100);
        assert_eq!(record.data().map(<[u8]>::len), Some(100));
    }
}
