//! Read-only mode (`readonlymode.enabled`) on real processes: a 3-server ensemble loses
//! two servers; the one left, cut off from its quorum, serves read-only clients (reads
//! answered, writes NotReadOnly, `isro` says `ro`, other clients refused, sessions local);
//! when the two come back it leaves read-only mode, drops its read-only clients, and
//! they reconnect read-write. e2e/compat/test_kazoo_readonly.py checks the same through
//! kazoo against Apache ZooKeeper and paddock-server.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::ensemble::{Ensemble, ensure_node, session_on};
use common::{RawConn, eventually, run};
use paddock_proto::{
    CheckVersionRequest, ConnectRequest, CreateRequest, DeleteRequest, ErrorCode, GetDataRequest,
    ReconfigRequest, Request, SetDataRequest, SyncRequest, xid,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(30);

async fn four_letter_word(addr: SocketAddr, word: &str) -> String {
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(word.as_bytes()).await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        Some(out)
    };
    tokio::time::timeout(Duration::from_secs(3), ask)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

async fn isro_is(addr: SocketAddr, want: &str, limit: Duration) -> bool {
    eventually(limit, || async {
        four_letter_word(addr, "isro").await == want
    })
    .await
}

fn connect(read_only: Option<bool>, session: i64, passwd: &[u8]) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: 6_000,
        session_id: session,
        passwd: passwd.to_vec().into(),
        read_only,
    }
}

fn get(path: &str) -> Request {
    Request::GetData(GetDataRequest {
        path: path.into(),
        watch: false,
    })
}

/// Every request ZooKeeper's ReadOnlyRequestProcessor refuses.
fn refused_in_read_only_mode() -> Vec<Request> {
    let create = CreateRequest {
        path: "/ro/new".into(),
        data: b"x".to_vec().into(),
        acl: common::ensemble::open_acl(),
        flags: 0,
    };
    vec![
        Request::Create(create.clone()),
        Request::Create2(create.clone()),
        Request::CreateContainer(create),
        Request::SetData(SetDataRequest {
            path: "/ro".into(),
            data: b"y".to_vec().into(),
            version: -1,
        }),
        Request::Delete(DeleteRequest {
            path: "/ro".into(),
            version: -1,
        }),
        Request::Check(CheckVersionRequest {
            path: "/ro".into(),
            version: 0,
        }),
        Request::Sync(SyncRequest { path: "/ro".into() }),
        Request::Multi(vec![Request::Check(CheckVersionRequest {
            path: "/ro".into(),
            version: 0,
        })]),
        Request::Reconfig(ReconfigRequest {
            joining_servers: String::new(),
            leaving_servers: "3".into(),
            new_members: String::new(),
            cur_config_id: -1,
        }),
    ]
}

#[test]
fn a_partitioned_server_serves_read_only_clients_until_its_quorum_returns() {
    run(async {
        let mut ens = Ensemble::builder(3)
            .direct()
            .cfg("readonlymode.enabled=true")
            .start();
        ens.wait_stable(LIMIT).await;
        let s1 = ens.member(1).client();
        // Created through server 1: answered once server 1 applied it.
        ensure_node(s1, "/ro", LIMIT).await;
        assert_eq!(four_letter_word(s1, "isro").await, "rw");
        // A read-write session from before the partition.
        let mut before = session_on(s1, LIMIT).await;
        let global = (before.session_id, before.passwd.clone());

        // ---- servers 2 and 3 go: server 1 has no quorum ----
        let t = Instant::now();
        ens.kill9(2);
        ens.kill9(3);
        assert!(before.closed_within(LIMIT).await, "looking drops clients");
        assert!(isro_is(s1, "ro", LIMIT).await, "server 1 turns read-only");
        let to_ro = t.elapsed();
        assert!(
            to_ro >= Duration::from_millis(1_900),
            "after ZooKeeper's 2 s: {to_ro:?}"
        );
        let srvr = four_letter_word(s1, "srvr").await;
        assert!(srvr.contains("Mode: read-only"), "{srvr}");

        // Clients that do not ask for read-only are refused (closed, no answer), and so
        // is a read-write session: it must not be served, nor expire, here.
        for req in [
            connect(Some(false), 0, &[0; 16]),
            connect(None, 0, &[0; 16]),
            connect(Some(true), global.0, &global.1),
        ] {
            let got = RawConn::try_session(s1, &req, Duration::from_secs(5)).await;
            assert!(got.is_none(), "{req:?} was answered");
        }

        // A read-only client: a local session with this server's id in its top byte.
        let (mut ro, resp) = RawConn::try_session(s1, &connect(Some(true), 0, &[0; 16]), LIMIT)
            .await
            .expect("a read-only session");
        assert_eq!(resp.read_only, Some(true));
        assert!(resp.time_out > 0);
        assert_eq!((resp.session_id as u64) >> 56, 1, "{:#x}", resp.session_id);
        let reply = ro.call(1, &get("/ro")).await;
        assert_eq!(reply.err(), 0);
        for (i, req) in refused_in_read_only_mode().iter().enumerate() {
            let reply = ro.call(10 + i as i32, req).await;
            assert_eq!(
                reply.err(),
                ErrorCode::NotReadOnly.code(),
                "{:?}",
                req.opcode()
            );
        }
        ro.ping().await;
        assert_eq!(ro.call(30, &get("/ro")).await.err(), 0);

        // The session resumes on a new connection (still read-only); the old one closes.
        let local = (ro.session_id, ro.passwd.clone());
        let (mut again, resp) =
            RawConn::try_session(s1, &connect(Some(true), local.0, &local.1), LIMIT)
                .await
                .expect("resumed");
        assert_eq!((resp.session_id, resp.read_only), (local.0, Some(true)));
        assert!(ro.closed_within(Duration::from_secs(5)).await);
        // A wrong password or an unknown session: expired.
        let (_, resp) = RawConn::try_session(s1, &connect(Some(true), local.0, &[7; 16]), LIMIT)
            .await
            .expect("an answer");
        assert_eq!((resp.session_id, resp.time_out), (0, 0));

        // ---- the quorum returns ----
        let t = Instant::now();
        ens.restart(2);
        ens.restart(3);
        assert!(
            again.closed_within(LIMIT).await,
            "read-only clients are dropped"
        );
        let dropped = t.elapsed();
        assert!(isro_is(s1, "rw", LIMIT).await);
        let to_rw = t.elapsed();
        // The local session means nothing to the read-write ensemble: expired.
        let (_, resp) = RawConn::try_session(s1, &connect(Some(true), local.0, &local.1), LIMIT)
            .await
            .expect("an answer");
        assert_eq!((resp.session_id, resp.time_out), (0, 0));
        // A read-only client now gets a read-write session, and writes.
        let (mut rw, resp) = RawConn::try_session(s1, &connect(Some(true), 0, &[0; 16]), LIMIT)
            .await
            .expect("a session");
        assert_eq!(resp.read_only, Some(false));
        let reply = rw
            .call(
                1,
                &Request::SetData(SetDataRequest {
                    path: "/ro".into(),
                    data: b"after".to_vec().into(),
                    version: -1,
                }),
            )
            .await;
        assert_eq!(reply.err(), 0);
        assert_eq!(rw.call(xid::PING, &Request::Ping).await.err(), 0);
        println!(
            "read-only {:.2}s after two peers died; read-only clients dropped {:.2}s and \
             isro rw {:.2}s after they were restarted",
            to_ro.as_secs_f64(),
            dropped.as_secs_f64(),
            to_rw.as_secs_f64()
        );
        ens.assert_no_fatal_log();
    });
}

/// Without readonlymode.enabled a server without a quorum serves nobody: read-only
/// clients are refused too, and `isro` says `null` (not serving).
#[test]
fn without_read_only_mode_a_partitioned_server_refuses_everyone() {
    run(async {
        let mut ens = Ensemble::builder(3).direct().start();
        ens.wait_stable(LIMIT).await;
        let s1 = ens.member(1).client();
        ens.kill9(2);
        ens.kill9(3);
        assert!(isro_is(s1, "null", LIMIT).await);
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(four_letter_word(s1, "isro").await, "null");
        let got = RawConn::try_session(
            s1,
            &connect(Some(true), 0, &[0; 16]),
            Duration::from_secs(5),
        )
        .await;
        assert!(got.is_none());
    });
}
