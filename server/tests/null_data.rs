//! Null znode data end to end on real processes: a node created or set with null data
//! (jute length -1) reads back as null, not as empty, after a restart (from the txn log
//! and from a snapshot), on every member of an ensemble (through proposals and through
//! a SNAP sync), and a data directory written before null data was kept still loads.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::ensemble::{Ensemble, call, close_session, open_acl, session_on};
use common::{RawConn, Server, eventually, run};
use paddock_proto::{
    CreateRequest, Data, ExistsRequest, GetDataRequest, OpCode, Request, Response, SetDataRequest,
};
use paddock_server::storage::{self, TxnLog, TxnLogOptions};
use paddock_server::tree::{DataTree, NodeKind};
use paddock_server::txn::{Txn, TxnOp};

const LIMIT: Duration = Duration::from_secs(30);

fn create(path: &str, data: Data) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data,
        acl: open_acl(),
        flags: 0,
    })
}

fn set(path: &str, data: Data) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data,
        version: -1,
    })
}

async fn write(conn: &mut RawConn, xid: i32, req: &Request) {
    let reply = call(conn, xid, req).await.expect("write answered");
    assert_eq!(reply.err(), 0, "{req:?}");
}

/// getData of `path`: its data and the Stat's dataLength.
async fn read(conn: &mut RawConn, xid: i32, path: &str) -> (Data, i32) {
    let req = Request::GetData(GetDataRequest {
        path: path.into(),
        watch: false,
    });
    let reply = call(conn, xid, &req).await.expect("getData answered");
    assert_eq!(reply.err(), 0, "getData {path}");
    match reply.decode(OpCode::GetData.code()) {
        Response::GetData(d) => (d.data, d.stat.data_length),
        other => panic!("getData {path}: {other:?}"),
    }
}

/// Whether every node of `expected` reads back as expected on `addr`.
async fn reads_as(addr: SocketAddr, expected: &[(&str, Data)]) -> Result<(), String> {
    let mut conn = session_on(addr, LIMIT).await;
    let mut wrong = Vec::new();
    for (k, (path, want)) in expected.iter().enumerate() {
        let (data, len) = read(&mut conn, 10 + k as i32, path).await;
        if data != *want || len != want.len() as i32 {
            wrong.push(format!(
                "{path}: {data:?} (dataLength {len}), expected {want:?}"
            ));
        }
    }
    close_session(&mut conn).await;
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{addr}: {wrong:?}"))
    }
}

/// How many snapshots `id` has sent to learners (SNAP syncs).
fn snapshots_sent(ens: &Ensemble, id: u64) -> usize {
    ens.member(id)
        .server
        .log()
        .matches("sending a snapshot")
        .count()
}

/// The zxids of the snapshots in `dir`.
fn snapshot_zxids(dir: &Path) -> Vec<u64> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    u64::from_str_radix(name.strip_prefix("snapshot.")?, 16).ok()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn null_data_survives_a_restart_from_the_log_and_from_a_snapshot() {
    run(async {
        // A snapshot every 10 txns: the first null node lands in one, the later ones
        // only in the log.
        let mut server = Server::builder().cfg("snapCount=10").start();
        let mut conn = session_on(server.addr(), LIMIT).await;
        write(&mut conn, 1, &create("/n1", Data::NULL)).await;
        write(&mut conn, 2, &create("/e1", Data::default())).await;
        write(&mut conn, 3, &create("/d1", b"x".to_vec().into())).await;
        let n1 = match call(
            &mut conn,
            4,
            &Request::Exists(ExistsRequest {
                path: "/n1".into(),
                watch: false,
            }),
        )
        .await
        .expect("exists answered")
        .decode(OpCode::Exists.code())
        {
            Response::Stat(stat) => stat.czxid as u64,
            other => panic!("exists: {other:?}"),
        };
        for i in 0..12 {
            write(
                &mut conn,
                10 + i,
                &create(&format!("/f{i}"), Data::default()),
            )
            .await;
        }
        let dir = server.version_dir();
        assert!(
            eventually(LIMIT, || {
                let taken = snapshot_zxids(&dir).iter().any(|z| *z > n1);
                async move { taken }
            })
            .await,
            "a snapshot after {n1:#x} was taken"
        );
        let newest = snapshot_zxids(&dir).into_iter().max().unwrap_or_default();
        let (_, payload) =
            storage::read_snapshot(dir.join(format!("snapshot.{newest:x}"))).expect("snapshot");
        assert_eq!(
            payload[..4],
            3i32.to_be_bytes(),
            "snapshot files are written in the compact format, version 3"
        );
        let tree = DataTree::from_snapshot(&payload).expect("the snapshot loads");
        let null_node = tree.get("/n1").expect("/n1 is in the snapshot");
        assert_eq!(
            null_node.data(),
            None,
            "null data stays null in the snapshot file"
        );
        // After the snapshot: only in the log.
        write(&mut conn, 30, &create("/n2", Data::NULL)).await;
        write(&mut conn, 31, &set("/d1", Data::NULL)).await;
        let expected = [
            ("/n1", Data::NULL),
            ("/e1", Data::default()),
            ("/n2", Data::NULL),
            ("/d1", Data::NULL),
        ];
        reads_as(server.addr(), &expected)
            .await
            .unwrap_or_else(|e| panic!("before the restart: {e}"));

        server.restart();
        reads_as(server.addr(), &expected)
            .await
            .unwrap_or_else(|e| panic!("after the restart: {e}"));
        // And the distinction goes both ways: setting bytes ends the null.
        let mut conn = session_on(server.addr(), LIMIT).await;
        write(&mut conn, 1, &set("/n2", b"y".to_vec().into())).await;
        assert_eq!(read(&mut conn, 2, "/n2").await, (b"y".to_vec().into(), 1));
        server.assert_no_fatal_log();
    });
}

#[test]
fn every_member_sees_null_data_through_proposals_and_a_snapshot_sync() {
    run(async {
        let mut ens = Ensemble::builder(3).direct().start();
        let leader = ens.wait_stable(LIMIT).await;
        let followers: Vec<u64> = ens.ids().into_iter().filter(|id| *id != leader).collect();
        let (f, g) = (followers[0], followers[1]);
        // Through a follower (forwarded to the leader) and through the leader.
        let mut on_f = session_on(ens.member(f).client(), LIMIT).await;
        write(&mut on_f, 1, &create("/via-follower", Data::NULL)).await;
        write(&mut on_f, 2, &create("/set-null", b"x".to_vec().into())).await;
        write(&mut on_f, 3, &set("/set-null", Data::NULL)).await;
        write(&mut on_f, 4, &create("/empty", Data::default())).await;
        close_session(&mut on_f).await;
        let mut on_leader = session_on(ens.member(leader).client(), LIMIT).await;
        write(&mut on_leader, 1, &create("/via-leader", Data::NULL)).await;
        close_session(&mut on_leader).await;
        let expected = [
            ("/via-follower", Data::NULL),
            ("/set-null", Data::NULL),
            ("/empty", Data::default()),
            ("/via-leader", Data::NULL),
        ];
        ens.wait_converged(LIMIT).await;
        for id in ens.ids() {
            reads_as(ens.member(id).client(), &expected)
                .await
                .unwrap_or_else(|e| panic!("member {id}: {e}"));
        }

        // A follower that lost its disk syncs from the leader's snapshot (SNAP).
        let before = snapshots_sent(&ens, leader);
        ens.kill9(g);
        let dir = ens.member(g).server.version_dir();
        std::fs::remove_dir_all(&dir).expect("wipe the follower's state");
        ens.restart(g);
        ens.wait_converged(LIMIT).await;
        assert!(
            snapshots_sent(&ens, leader) > before,
            "the wiped follower was synced by SNAP"
        );
        reads_as(ens.member(g).client(), &expected)
            .await
            .unwrap_or_else(|e| panic!("member {g} after a SNAP sync: {e}"));
        ens.assert_no_fatal_log();
    });
}

/// A data directory as the build before null data was kept left it: a format version 1
/// snapshot payload captured from that build (tests/fixtures/snapshot-v1.hex: "/a" with
/// data "d", "/e" with empty data, at zxid 3) and a log record after it whose bytes that
/// build wrote the same way (see txn.rs: a_record_logged_before_null_data_was_kept).
#[test]
fn a_data_directory_from_before_null_data_still_loads() {
    run(async {
        let hex: String = include_str!("fixtures/snapshot-v1.hex")
            .split_whitespace()
            .collect();
        let payload: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex fixture"))
            .collect();
        let mut server = Server::builder().start();
        server.kill9();
        let dir = server.version_dir();
        std::fs::remove_dir_all(&dir).expect("clear the fresh server's state");
        storage::write_snapshot(&dir, 3, &payload).expect("old snapshot");
        let mut log = TxnLog::open(&dir, TxnLogOptions::new(7)).expect("log");
        std::fs::write(dir.join("dbid"), format!("{:016x}\n", 7)).expect("dbid");
        let old_create = Txn {
            session: 9,
            cxid: 4,
            zxid: 4,
            time: 1_700_000_000_000,
            op: TxnOp::Create {
                op: OpCode::Create,
                path: "/o".into(),
                data: Some(Vec::new()),
                acl: open_acl(),
                kind: NodeKind::Persistent,
                parent_cversion: 3,
            },
        };
        log.append(4, &old_create.encode()).expect("append");
        log.sync().expect("sync");
        drop(log);
        server.restart();
        let expected = [
            ("/a", Data::from(b"d".to_vec())),
            ("/e", Data::default()),
            ("/o", Data::default()),
        ];
        reads_as(server.addr(), &expected)
            .await
            .unwrap_or_else(|e| panic!("old data dir: {e}"));
        // New null data on top of it survives a restart as well.
        let mut conn = session_on(server.addr(), LIMIT).await;
        write(&mut conn, 1, &create("/n", Data::NULL)).await;
        close_session(&mut conn).await;
        server.restart();
        reads_as(
            server.addr(),
            &[("/n", Data::NULL), ("/e", Data::default())],
        )
        .await
        .unwrap_or_else(|e| panic!("after the upgrade: {e}"));
        server.assert_no_fatal_log();
    });
}
