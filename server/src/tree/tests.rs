//! Tree semantics: Stat bookkeeping, sequential names, ephemerals, containers, TTLs,
//! validation against pending changes, and snapshot round trips.

use paddock_proto::{
    CreateRequest, Data, DeleteRequest, ErrorCode, EventType, MultiResult, OpCode, Request,
    SetDataRequest,
};

use super::*;
use crate::request::pending::PendingChanges;
use crate::request::prep::{self, WriteContext};
use crate::tree::acl::Credentials;
use crate::txn::{Txn, TxnOp};

/// A tree driven through the real validation path, applying each txn at once.
struct Harness {
    tree: DataTree,
    pending: PendingChanges,
    zxid: i64,
    creds: Credentials,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            tree: DataTree::new(),
            pending: PendingChanges::default(),
            zxid: 0,
            creds: Credentials::default(),
        }
    }

    fn ctx(&self, session: i64) -> WriteContext<'_> {
        WriteContext {
            session,
            creds: &self.creds,
            extended_types: true,
        }
    }

    fn run(&mut self, session: i64, req: Request) -> Result<ApplyResult, ErrorCode> {
        let prepared = match req {
            Request::Multi(ops) => {
                match prep::prepare_multi(&self.tree, &self.pending, &self.ctx(session), ops) {
                    Ok(p) => p,
                    Err(results) => return Ok(ApplyResult::Multi(results)),
                }
            }
            req => prep::prepare(&self.tree, &self.pending, &self.ctx(session), req)?,
        };
        Ok(self.apply(session, prepared.op))
    }

    fn apply(&mut self, session: i64, op: TxnOp) -> ApplyResult {
        self.zxid += 1;
        let txn = Txn {
            session,
            cxid: 0,
            zxid: self.zxid,
            time: 1000 + self.zxid,
            op,
        };
        let mut triggers = Vec::new();
        let result = self.tree.apply(&txn, &mut triggers);
        if let Err(e) = self.tree.check_consistency() {
            panic!("after {txn:?}: {e}");
        }
        result
    }

    fn create(&mut self, session: i64, path: &str, mode: CreateMode) -> Result<String, ErrorCode> {
        match self.run(session, create(path, mode))? {
            ApplyResult::Created { path, .. } => Ok(path),
            other => panic!("unexpected {other:?}"),
        }
    }
}

use paddock_proto::CreateMode;

fn create(path: &str, mode: CreateMode) -> Request {
    Request::Create2(CreateRequest {
        path: path.into(),
        data: b"d".to_vec().into(),
        acl: acl::open_acl(),
        flags: mode.code(),
    })
}

#[test]
fn stat_fields_follow_zookeeper() {
    let mut h = Harness::new();
    h.create(1, "/a", CreateMode::Persistent).unwrap();
    h.create(1, "/a/b", CreateMode::Persistent).unwrap();
    let a = h.tree.get("/a").unwrap().stat();
    assert_eq!(
        (a.czxid, a.mzxid, a.pzxid, a.cversion, a.num_children),
        (1, 1, 2, 1, 1)
    );
    h.run(
        1,
        Request::SetData(SetDataRequest {
            path: "/a".into(),
            data: b"xyz".to_vec().into(),
            version: 0,
        }),
    )
    .unwrap();
    let a = h.tree.get("/a").unwrap().stat();
    assert_eq!(
        (a.version, a.mzxid, a.data_length, a.mtime),
        (1, 3, 3, 1003)
    );
    h.run(
        1,
        Request::Delete(DeleteRequest {
            path: "/a/b".into(),
            version: -1,
        }),
    )
    .unwrap();
    let a = h.tree.get("/a").unwrap().stat();
    // A delete changes the parent's child list: cversion and pzxid move, as in ZooKeeper.
    assert_eq!((a.cversion, a.pzxid, a.num_children), (2, 4, 0));
}

#[test]
fn sequential_names_use_the_parent_cversion() {
    let mut h = Harness::new();
    h.create(1, "/q", CreateMode::Persistent).unwrap();
    assert_eq!(
        h.create(1, "/q/n-", CreateMode::PersistentSequential)
            .unwrap(),
        "/q/n-0000000000"
    );
    h.create(1, "/q/x", CreateMode::Persistent).unwrap();
    assert_eq!(
        h.create(1, "/q/n-", CreateMode::EphemeralSequential)
            .unwrap(),
        "/q/n-0000000002"
    );
    assert_eq!(
        h.create(1, "/q/", CreateMode::PersistentSequential)
            .unwrap(),
        "/q/0000000003"
    );
}

#[test]
fn errors_match_zookeeper() {
    let mut h = Harness::new();
    assert_eq!(
        h.create(1, "/x/y", CreateMode::Persistent),
        Err(ErrorCode::NoNode)
    );
    h.create(1, "/e", CreateMode::Ephemeral).unwrap();
    assert_eq!(
        h.create(1, "/e/c", CreateMode::Persistent),
        Err(ErrorCode::NoChildrenForEphemerals)
    );
    assert_eq!(
        h.create(1, "/e", CreateMode::Persistent),
        Err(ErrorCode::NodeExists)
    );
    assert_eq!(
        h.create(1, "bad", CreateMode::Persistent),
        Err(ErrorCode::BadArguments)
    );
    h.create(1, "/p", CreateMode::Persistent).unwrap();
    h.create(1, "/p/c", CreateMode::Persistent).unwrap();
    let del = |path: &str, version| {
        Request::Delete(DeleteRequest {
            path: path.into(),
            version,
        })
    };
    assert_eq!(h.run(1, del("/p", -1)), Err(ErrorCode::NotEmpty));
    assert_eq!(h.run(1, del("/p/c", 5)), Err(ErrorCode::BadVersion));
    assert_eq!(h.run(1, del("/", -1)), Err(ErrorCode::BadArguments));
    assert_eq!(
        h.run(1, del("/zookeeper", -1)),
        Err(ErrorCode::BadArguments)
    );
}

#[test]
fn pending_changes_make_pipelined_writes_validate_in_order() {
    let h = Harness::new();
    let mut pending = PendingChanges::default();
    let ctx = h.ctx(1);
    let first = prep::prepare(
        &h.tree,
        &pending,
        &ctx,
        create("/dup", CreateMode::Persistent),
    )
    .unwrap();
    pending.record(1, first.changes);
    // Not applied yet, but a second create of the same path must already fail.
    assert_eq!(
        prep::prepare(
            &h.tree,
            &pending,
            &ctx,
            create("/dup", CreateMode::Persistent)
        )
        .err(),
        Some(ErrorCode::NodeExists)
    );
    let child = prep::prepare(
        &h.tree,
        &pending,
        &ctx,
        create("/dup/c", CreateMode::Persistent),
    );
    assert!(child.is_ok(), "a child of a pending node validates");
    pending.applied(1);
    assert!(pending.is_empty());
}

#[test]
fn failed_multi_reports_per_op_results_and_changes_nothing() {
    let mut h = Harness::new();
    let before = h.tree.node_count();
    let result = h
        .run(
            1,
            Request::Multi(vec![
                create("/m1", CreateMode::Persistent),
                create("/m1", CreateMode::Persistent),
                create("/m2", CreateMode::Persistent),
            ]),
        )
        .unwrap();
    assert_eq!(
        result,
        ApplyResult::Multi(vec![
            MultiResult::Error(0),
            MultiResult::Error(ErrorCode::NodeExists.code()),
            MultiResult::Error(ErrorCode::RuntimeInconsistency.code()),
        ])
    );
    assert_eq!(h.tree.node_count(), before);
    let ok = h
        .run(
            1,
            Request::Multi(vec![
                create("/m1", CreateMode::Persistent),
                create("/m1/x", CreateMode::Persistent),
            ]),
        )
        .unwrap();
    assert!(matches!(ok, ApplyResult::Multi(ref r) if r.len() == 2));
    assert!(h.tree.contains("/m1/x"));
}

#[test]
fn closing_a_session_removes_exactly_its_ephemerals() {
    let mut h = Harness::new();
    h.apply(5, TxnOp::CreateSession { timeout_ms: 4000 });
    h.create(5, "/e1", CreateMode::Ephemeral).unwrap();
    h.create(5, "/e2", CreateMode::EphemeralSequential).unwrap();
    h.create(6, "/other", CreateMode::Ephemeral).unwrap();
    assert_eq!(h.tree.session_ephemerals(5).count(), 2);
    let close = prep::prepare_close(&h.tree, &h.pending, 5);
    let mut triggers = Vec::new();
    h.zxid += 1;
    let txn = Txn {
        session: 5,
        cxid: 0,
        zxid: h.zxid,
        time: 0,
        op: close.op,
    };
    h.tree.apply(&txn, &mut triggers);
    assert!(!h.tree.contains("/e1"));
    assert!(h.tree.contains("/other"));
    assert!(h.tree.sessions().is_empty());
    assert!(
        triggers
            .iter()
            .any(|t| t.path == "/e1" && t.event == EventType::NodeDeleted)
    );
}

#[test]
fn containers_and_ttls_are_reaped_only_when_due() {
    let mut h = Harness::new();
    let container = Request::CreateContainer(CreateRequest {
        path: "/c".into(),
        data: Data::default(),
        acl: acl::open_acl(),
        flags: CreateMode::Container.code(),
    });
    h.run(1, container).unwrap();
    assert_eq!(
        h.tree.get("/c").unwrap().persisted().ephemeral_owner,
        CONTAINER_OWNER
    );
    // Never had a child: stays.
    assert!(prep::prepare_reap(&h.tree, &h.pending, "/c", i64::MAX).is_none());
    h.create(1, "/c/k", CreateMode::Persistent).unwrap();
    assert!(prep::prepare_reap(&h.tree, &h.pending, "/c", i64::MAX).is_none());
    h.run(
        1,
        Request::Delete(DeleteRequest {
            path: "/c/k".into(),
            version: -1,
        }),
    )
    .unwrap();
    let reap =
        prep::prepare_reap(&h.tree, &h.pending, "/c", 0).expect("empty container that had a child");
    assert!(matches!(reap.op, TxnOp::Delete { reaped: true, .. }));

    let ttl = Request::CreateTtl(paddock_proto::CreateTtlRequest {
        path: "/t".into(),
        data: Data::default(),
        acl: acl::open_acl(),
        flags: CreateMode::PersistentWithTtl.code(),
        ttl: 100,
    });
    h.run(1, ttl).unwrap();
    let node = h.tree.get("/t").unwrap();
    assert_eq!(node.kind(), NodeKind::Ttl(100));
    let mtime = node.persisted().mtime;
    assert!(prep::prepare_reap(&h.tree, &h.pending, "/t", mtime + 100).is_none());
    assert!(prep::prepare_reap(&h.tree, &h.pending, "/t", mtime + 101).is_some());
}

#[test]
fn ttl_needs_extended_types_and_a_sane_ttl() {
    let h = Harness::new();
    let ttl = |ttl| {
        Request::CreateTtl(paddock_proto::CreateTtlRequest {
            path: "/t".into(),
            data: Data::default(),
            acl: acl::open_acl(),
            flags: CreateMode::PersistentWithTtl.code(),
            ttl,
        })
    };
    let off = WriteContext {
        session: 1,
        creds: &h.creds,
        extended_types: false,
    };
    assert_eq!(
        prep::prepare(&h.tree, &h.pending, &off, ttl(10)).err(),
        Some(ErrorCode::Unimplemented)
    );
    assert_eq!(
        prep::prepare(&h.tree, &h.pending, &h.ctx(1), ttl(0)).err(),
        Some(ErrorCode::BadArguments)
    );
    assert_eq!(
        prep::prepare(
            &h.tree,
            &h.pending,
            &h.ctx(1),
            create("/t", CreateMode::PersistentWithTtl)
        )
        .err(),
        Some(ErrorCode::BadArguments)
    );
}

#[test]
fn snapshot_round_trips_the_whole_state() {
    let mut h = Harness::new();
    h.apply(9, TxnOp::CreateSession { timeout_ms: 6000 });
    h.create(9, "/a", CreateMode::Persistent).unwrap();
    h.create(9, "/a/b", CreateMode::Ephemeral).unwrap();
    h.create(9, "/a/c-", CreateMode::PersistentSequential)
        .unwrap();
    let view = h.tree.snapshot_view();
    for bytes in [view.serialize(), view.serialize_compact()] {
        snapshot_loads_the_same_tree(&h, &bytes);
    }
}

/// Every node of `expected` is in `tree` with the same Stat, data, ACL and children.
fn assert_same_nodes(tree: &DataTree, expected: &DataTree) {
    let mut open = vec!["/".to_string()];
    let mut seen = 0;
    while let Some(p) = open.pop() {
        let (x, y) = (tree.get(&p).unwrap(), expected.get(&p).unwrap());
        assert_eq!(x.stat(), y.stat(), "{p}");
        assert_eq!((x.data(), x.acl()), (y.data(), y.acl()), "{p}");
        assert_eq!(x.children(), y.children(), "{p}");
        open.extend(y.children().iter().map(|c| crate::path::join(&p, c)));
        seen += 1;
    }
    assert_eq!(seen, expected.node_count());
}

fn snapshot_loads_the_same_tree(h: &Harness, bytes: &[u8]) {
    let loaded = DataTree::from_snapshot(bytes).unwrap();
    assert_eq!(loaded.node_count(), h.tree.node_count());
    assert_eq!(loaded.last_zxid(), h.tree.last_zxid());
    assert_eq!(loaded.sessions(), h.tree.sessions());
    assert_same_nodes(&loaded, &h.tree);
    assert_eq!(loaded.session_ephemerals(9).count(), 1);
    assert_eq!(
        loaded.approximate_data_size(),
        h.tree.approximate_data_size()
    );
    // Truncated payloads are errors, never panics.
    for cut in 0..bytes.len() {
        assert!(DataTree::from_snapshot(&bytes[..cut]).is_err());
    }
}

#[test]
fn descendant_count_and_create_ops_shape_replies() {
    let mut h = Harness::new();
    h.create(1, "/d", CreateMode::Persistent).unwrap();
    h.create(1, "/d/a", CreateMode::Persistent).unwrap();
    h.create(1, "/d/a/b", CreateMode::Persistent).unwrap();
    assert_eq!(h.tree.descendant_count("/d"), Some(2));
    let plain = Request::Create(CreateRequest {
        path: "/plain".into(),
        data: Data::default(),
        acl: acl::open_acl(),
        flags: 0,
    });
    assert!(matches!(
        h.run(1, plain),
        Ok(ApplyResult::Created {
            op: OpCode::Create,
            ..
        })
    ));
}

fn set_data(path: &str, data: Data) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data,
        version: -1,
    })
}

fn create_with(path: &str, data: Data) -> Request {
    Request::Create2(CreateRequest {
        path: path.into(),
        data,
        acl: acl::open_acl(),
        flags: 0,
    })
}

#[test]
fn null_data_stays_distinct_from_empty() {
    let mut h = Harness::new();
    h.run(1, create_with("/n", Data::NULL)).unwrap();
    h.run(1, create_with("/e", Data::default())).unwrap();
    let (n, e) = (h.tree.get("/n").unwrap(), h.tree.get("/e").unwrap());
    assert!(n.data().is_none());
    assert_eq!(n.stat().data_length, 0);
    assert_eq!(e.data(), Some(&b""[..]));
    // setData with null makes data null; with bytes, not null again.
    h.run(1, set_data("/e", Data::NULL)).unwrap();
    assert!(h.tree.get("/e").unwrap().data().is_none());
    h.run(1, set_data("/n", b"xy".to_vec().into())).unwrap();
    let n = h.tree.get("/n").unwrap();
    assert_eq!((n.bytes(), n.stat().data_length), (&b"xy"[..], 2));
    // Inside a multi too.
    let multi = Request::Multi(vec![
        create_with("/m", Data::NULL),
        set_data("/n", Data::NULL),
    ]);
    assert!(matches!(h.run(1, multi), Ok(ApplyResult::Multi(_))));
    assert!(h.tree.get("/m").unwrap().data().is_none());
    assert!(h.tree.get("/n").unwrap().data().is_none());
}

#[test]
fn snapshots_keep_null_data_as_version_2_and_stay_version_1_without_it() {
    let mut h = Harness::new();
    h.create(1, "/a", CreateMode::Persistent).unwrap();
    h.run(1, create_with("/e", Data::default())).unwrap();
    let v1 = h.tree.snapshot_view().serialize();
    assert_eq!(v1[..4], 1i32.to_be_bytes(), "no null data: version 1");
    h.run(1, create_with("/n", Data::NULL)).unwrap();
    let v2 = h.tree.snapshot_view().serialize();
    assert_eq!(v2[..4], 2i32.to_be_bytes(), "null data: version 2");
    let loaded = DataTree::from_snapshot(&v2).unwrap();
    assert!(loaded.get("/n").unwrap().data().is_none());
    assert_eq!(loaded.get("/e").unwrap().data(), Some(&b""[..]));
    assert_eq!(loaded.get("/a").unwrap().bytes(), b"d");
    assert_eq!(
        loaded.get("/n").unwrap().stat(),
        h.tree.get("/n").unwrap().stat()
    );
    // Once the null is gone, the next snapshot is version 1 again.
    h.run(1, set_data("/n", Data::default())).unwrap();
    assert_eq!(h.tree.snapshot_view().serialize()[..4], 1i32.to_be_bytes());
    let mut bad = v2.clone();
    for version in [0, 4] {
        bad[..4].copy_from_slice(&i32::to_be_bytes(version));
        assert!(matches!(
            DataTree::from_snapshot(&bad),
            Err(SnapshotError::Version(v)) if v == version
        ));
    }
}

#[test]
fn compact_snapshots_keep_every_field_in_about_half_the_bytes() {
    let mut h = Harness::new();
    h.apply(9, TxnOp::CreateSession { timeout_ms: 6000 });
    h.create(1, "/app", CreateMode::Persistent).unwrap();
    for i in 0..200 {
        let data = Data::from(vec![i as u8; 100]);
        h.run(1, create_with(&format!("/app/n{i:06}"), data))
            .unwrap();
    }
    // Nodes off the usual: null data, changed data and versions, an ephemeral owner, a
    // multi-byte name, an ACL of their own, and children under them.
    h.run(1, create_with("/app/n000007/null", Data::NULL))
        .unwrap();
    h.run(1, set_data("/app/n000003", b"changed".to_vec().into()))
        .unwrap();
    h.create(9, "/app/n000003/eph", CreateMode::Ephemeral)
        .unwrap();
    h.run(1, create_with("/é", Data::default())).unwrap();
    let restricted = Request::SetAcl(paddock_proto::SetAclRequest {
        path: "/app/n000005".into(),
        acl: vec![paddock_proto::Acl {
            perms: paddock_proto::perms::READ,
            id: paddock_proto::Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }],
        version: -1,
    });
    h.run(1, restricted).unwrap();
    let view = h.tree.snapshot_view();
    let (jute, compact) = (view.serialize(), view.serialize_compact());
    assert_eq!(compact[..4], 3i32.to_be_bytes());
    snapshot_loads_the_same_tree(&h, &compact);
    let loaded = DataTree::from_snapshot(&compact).unwrap();
    assert_eq!(loaded.check_consistency(), Ok(()));
    assert_eq!(loaded.acl_lists(), h.tree.acl_lists());
    // Loaded from either format, the tree writes the same version 1 bytes.
    assert_eq!(loaded.snapshot_view().serialize(), jute);
    // 100 bytes of data, a 12-byte path: about 25 bytes more per node instead of 100.
    let per_node = |bytes: &[u8]| bytes.len() / h.tree.node_count();
    assert!(
        per_node(&compact) <= 128,
        "compact: {} bytes per node",
        per_node(&compact)
    );
    assert!(
        per_node(&jute) >= 200,
        "jute: {} bytes per node",
        per_node(&jute)
    );
    // Cut anywhere, it is an error, never a panic.
    for cut in 0..compact.len() {
        assert!(
            DataTree::from_snapshot(&compact[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn a_malformed_compact_snapshot_is_refused_with_the_reason() {
    let mut h = Harness::new();
    h.create(1, "/a", CreateMode::Persistent).unwrap();
    h.create(1, "/a/b", CreateMode::Persistent).unwrap();
    let good = h.tree.snapshot_view().serialize_compact();
    let node_at = |path: &str| {
        let name = path.rsplit('/').next().unwrap_or_default().as_bytes();
        good.windows(name.len() + 1)
            .position(|w| w[0] as usize == name.len() && &w[1..] == name)
            .map(|i| i - 1)
            .unwrap()
    };
    let refused = |bytes: &[u8]| match DataTree::from_snapshot(bytes) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("loaded a malformed snapshot"),
    };
    // "/a/b" says its parent is 5 bytes long: no node before it has such a prefix.
    let mut bad = good.clone();
    bad[node_at("/a/b")] = 5;
    assert!(
        refused(&bad).contains("snapshot path prefix"),
        "{}",
        refused(&bad)
    );
    // Flags past the six the format knows.
    let mut bad = good.clone();
    bad[node_at("/a/b") + 3] = 0x40;
    assert!(refused(&bad).contains("node flags"), "{}", refused(&bad));
    // An ACL id the table does not hold.
    let mut bad = good.clone();
    bad[node_at("/a/b") + 4] = 9;
    assert!(
        refused(&bad).contains("snapshot ACL id"),
        "{}",
        refused(&bad)
    );
}

/// The payload of a snapshot written by the build before null data was kept (format
/// version 1), in hex: session 9, "/a" with data "d", "/e" with empty data, at zxid 3.
/// `server/tests/null_data.rs` starts a server on it too.
const OLD_SNAPSHOT_V1: &str = include_str!("../../tests/fixtures/snapshot-v1.hex");

#[test]
fn a_snapshot_written_before_null_data_was_kept_still_loads() {
    let hex: String = OLD_SNAPSHOT_V1.split_whitespace().collect();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let tree = DataTree::from_snapshot(&bytes).unwrap();
    assert_eq!(tree.last_zxid(), 3);
    assert_eq!(tree.sessions().len(), 1);
    assert_eq!(tree.get("/a").unwrap().bytes(), b"d");
    let e = tree.get("/e").unwrap();
    assert_eq!(e.data(), Some(&b""[..]), "empty stays empty, not null");
    assert_eq!((e.stat().czxid, e.stat().data_length), (3, 0));
    assert!(tree.get("/zookeeper/config").is_some());
    // Without null data, today's build writes the very same bytes.
    assert_eq!(tree.snapshot_view().serialize(), bytes);
}

/// A snapshot payload with `nodes` (path, data) in the given order, open ACLs.
fn snapshot_of(nodes: &[(&str, &[u8])]) -> Vec<u8> {
    use paddock_proto::{Jute, JuteWrite};
    let mut out = Vec::new();
    out.put_i32(1);
    out.put_i64(7);
    out.put_i32(0);
    out.put_i64(nodes.len() as i64);
    for (i, (p, data)) in nodes.iter().enumerate() {
        out.put_ustring(p);
        out.put_nullable_buffer(Some(data));
        out.put_vec(&acl::open_acl()[..]);
        StatPersisted {
            czxid: i as i64,
            mzxid: i as i64,
            pzxid: i as i64,
            ..StatPersisted::default()
        }
        .write(&mut out);
    }
    out
}

#[test]
fn a_snapshot_in_another_order_than_ours_loads_the_same_tree() {
    // Parents first, but not depth first, and children out of order.
    let nodes: [(&str, &[u8]); 7] = [
        ("/", b""),
        ("/b", b"1"),
        ("/a", b"2"),
        ("/b/y", b"3"),
        ("/a/x", b"4"),
        ("/b/c", b"5"),
        ("/a/x/deep", b"6"),
    ];
    let tree = DataTree::from_snapshot(&snapshot_of(&nodes)).unwrap();
    assert_eq!(tree.check_consistency(), Ok(()));
    assert_eq!(tree.children("/").unwrap(), ["a", "b"]);
    assert_eq!(tree.children("/b").unwrap(), ["c", "y"]);
    assert_eq!(tree.get("/a").unwrap().stat().num_children, 1);
    assert_eq!(tree.get("/a/x/deep").unwrap().bytes(), b"6");
    assert_eq!(tree.acl_lists(), 1);
    // An orphan, and a node listed twice, are refused.
    let orphan = snapshot_of(&[("/", b""), ("/a/x", b"")]);
    assert!(
        matches!(DataTree::from_snapshot(&orphan), Err(SnapshotError::Orphan(p)) if p == "/a/x")
    );
    let twice = snapshot_of(&[("/", b""), ("/a", b""), ("/a", b"")]);
    assert!(
        matches!(DataTree::from_snapshot(&twice), Err(SnapshotError::Duplicate(p)) if p == "/a")
    );
}

mod random_changes {
    use paddock_proto::{Acl, Id, SetAclRequest, perms};
    use proptest::prelude::*;

    use super::*;

    const PATHS: [&str; 6] = ["/a", "/a/b", "/a/c", "/a/b/x", "/b", "/b/é"];

    fn acl(perms: i32) -> Vec<Acl> {
        vec![Acl {
            perms,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }]
    }

    fn request() -> impl Strategy<Value = Request> {
        let path = proptest::sample::select(&PATHS[..]).prop_map(str::to_string);
        let data = prop_oneof![
            Just(Data::NULL),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Data::from),
        ];
        let perms = prop_oneof![Just(perms::ALL), Just(perms::ALL & !perms::DELETE)];
        prop_oneof![
            3 => (path.clone(), data.clone()).prop_map(|(p, d)| create_with(&p, d)),
            2 => path.clone().prop_map(|path| Request::Delete(DeleteRequest { path, version: -1 })),
            2 => (path.clone(), data).prop_map(|(p, d)| set_data(&p, d)),
            1 => (path, perms).prop_map(|(path, perms)| Request::SetAcl(SetAclRequest {
                path,
                acl: acl(perms),
                version: -1,
            })),
        ]
    }

    proptest! {
        /// Whatever a client does, the derived parts (child lists, counts, ACL ids) stay
        /// consistent (checked after every txn by the harness), and a snapshot in either
        /// format loads back into a tree that writes the very same snapshots.
        #[test]
        fn the_tree_stays_consistent_and_snapshots_round_trip(
            requests in proptest::collection::vec(request(), 0..60),
        ) {
            let mut h = Harness::new();
            for req in requests {
                let _ = h.run(1, req);
            }
            let view = h.tree.snapshot_view();
            let (jute, compact) = (view.serialize(), view.serialize_compact());
            for bytes in [&jute, &compact] {
                let loaded = DataTree::from_snapshot(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(loaded.check_consistency(), Ok(()));
                // Both write the same jute bytes (ACL ids, which compact snapshots hold,
                // may be numbered otherwise after a load).
                let again = loaded.snapshot_view();
                prop_assert_eq!(&again.serialize(), &jute);
                let compact_again = DataTree::from_snapshot(&again.serialize_compact())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&compact_again.snapshot_view().serialize(), &jute);
                prop_assert_eq!(loaded.acl_lists(), h.tree.acl_lists());
                for p in PATHS {
                    let (x, y) = (loaded.get(p), h.tree.get(p));
                    prop_assert_eq!(x.map(|n| n.stat()), y.map(|n| n.stat()));
                    prop_assert_eq!(x.map(|n| n.children()), y.map(|n| n.children()));
                }
            }
        }
    }
}

/// A sink that takes what it is given in writes of at most `chunk` bytes and fails once
/// it holds `fail_after` bytes.
struct Chunked {
    bytes: Vec<u8>,
    writes: usize,
    fail_after: usize,
}

impl std::io::Write for Chunked {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() >= self.fail_after {
            return Err(std::io::Error::other("disk full"));
        }
        self.writes += 1;
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_snapshot_streams_out_a_megabyte_at_a_time_and_stops_at_the_first_error() {
    let mut h = Harness::new();
    h.apply(9, TxnOp::CreateSession { timeout_ms: 6000 });
    h.create(1, "/s", CreateMode::Persistent).unwrap();
    // About 2.5 MB of payload.
    for i in 0..2_500 {
        let data = Data::from(vec![(i % 251) as u8; 1000]);
        h.run(1, create_with(&format!("/s/n{i:06}"), data)).unwrap();
    }
    let view = h.tree.snapshot_view();
    let mut sink = Chunked {
        bytes: Vec::new(),
        writes: 0,
        fail_after: usize::MAX,
    };
    view.serialize_compact_into(&mut sink).unwrap();
    assert!((3..=4).contains(&sink.writes), "{} writes", sink.writes);
    let loaded = DataTree::from_snapshot(&sink.bytes).unwrap();
    assert_eq!(loaded.node_count(), h.tree.node_count());
    assert_same_nodes(&loaded, &h.tree);

    let mut full = Chunked {
        bytes: Vec::new(),
        writes: 0,
        fail_after: 1,
    };
    let error = view.serialize_compact_into(&mut full).unwrap_err();
    assert_eq!(error.to_string(), "disk full");
    assert_eq!(full.writes, 1, "nothing more is written after the error");
}
