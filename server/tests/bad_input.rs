//! Bad input on raw sockets: malformed frames, unknown opcodes, invalid paths and ACLs,
//! oversized requests, wrong session passwords, clients from the future. Each gets
//! ZooKeeper's error code or a clean close, the reason is logged, and the server keeps
//! serving every other client.
//!
//! `PADDOCK_IT_EXTERNAL=host:port` runs the protocol-level checks against another server
//! (e.g. Apache ZooKeeper) to confirm the expected codes; log checks are skipped then.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{RawConn, Server, new_session_request, run, within};
use paddock_proto::{
    Acl, ConnectRequest, CreateRequest, DeleteRequest, ExistsRequest, GetChildrenRequest,
    GetDataRequest, Id, Jute, OpCode, Request, RequestHeader, Response, SetAclRequest,
    SetDataRequest, perms,
};

const T: Duration = Duration::from_secs(10);

/// The server under test, plus a bystander session opened before any abuse: it must
/// keep being served throughout.
struct Target {
    server: Option<Server>,
    addr: SocketAddr,
    root: String,
    bystander: Option<RawConn>,
    next_xid: i32,
}

impl Target {
    fn new(name: &str, builder: common::ServerBuilder) -> Target {
        match std::env::var("PADDOCK_IT_EXTERNAL") {
            Ok(a) => Target {
                server: None,
                addr: a.parse().unwrap(),
                root: format!(
                    "/{name}-{}-{}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_nanos()
                ),
                bystander: None,
                next_xid: 1,
            },
            Err(_) => {
                let server = builder.start();
                Target {
                    addr: server.addr(),
                    server: Some(server),
                    root: format!("/{name}"),
                    bystander: None,
                    next_xid: 1,
                }
            }
        }
    }

    async fn start_bystander(&mut self) {
        let mut c = RawConn::session(self.addr).await;
        let reply = c.call(1, &create(&self.root, open_acl())).await;
        assert_eq!(reply.err(), 0, "create {}", self.root);
        self.bystander = Some(c);
    }

    /// The bystander's session still gets answers, and a brand-new session works too.
    async fn assert_serving(&mut self) {
        self.next_xid += 1;
        let xid = self.next_xid;
        let root = self.root.clone();
        let by = self.bystander.as_mut().expect("bystander started");
        let reply = by.call(xid, &exists(&root)).await;
        assert_eq!(reply.err(), 0, "bystander still served");
        let mut fresh = RawConn::session(self.addr).await;
        let reply = fresh.call(1, &exists(&root)).await;
        assert_eq!(reply.err(), 0, "new session served");
        if let Some(server) = &mut self.server {
            server.assert_alive();
        }
    }

    /// Waits (bounded) for a log line containing all of `needles` (own server only).
    async fn assert_logged(&self, needles: &[&str]) {
        if let Some(server) = &self.server {
            assert!(
                server.wait_for_log(needles, T).await,
                "no log line with {needles:?}\n--- log ---\n{}",
                server.log()
            );
        }
    }
}

fn open_acl() -> Vec<Acl> {
    vec![acl(perms::ALL, "world", "anyone")]
}

fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
    Acl {
        perms,
        id: Id {
            scheme: scheme.into(),
            id: id.into(),
        },
    }
}

fn create(path: &str, acl: Vec<Acl>) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: b"d".to_vec().into(),
        acl,
        flags: 0,
    })
}

fn exists(path: &str) -> Request {
    Request::Exists(ExistsRequest {
        path: path.into(),
        watch: false,
    })
}

#[test]
fn garbage_before_the_handshake_is_closed() {
    let mut tg = Target::new("garbage", Server::builder());
    run(async {
        tg.start_bystander().await;

        // A frame that is not a ConnectRequest.
        let mut c = RawConn::open(tg.addr).await;
        c.send_frame(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3])
            .await
            .unwrap();
        assert!(c.closed_within(T).await, "garbage ConnectRequest closes");
        tg.assert_logged(&["malformed ConnectRequest"]).await;
        tg.assert_serving().await;

        // A ConnectRequest with a bad passwd length inside.
        let mut body = new_session_request().to_bytes();
        let n = body.len();
        body[n - 1 - 16 - 4..n - 1 - 16].copy_from_slice(&1000i32.to_be_bytes());
        let mut c = RawConn::open(tg.addr).await;
        c.send_frame(&body).await.unwrap();
        assert!(
            c.closed_within(T).await,
            "ConnectRequest with a lying length closes"
        );
        tg.assert_serving().await;

        // HTTP on the client port: "GET " read as a length is far over jute.maxbuffer.
        let mut c = RawConn::open(tg.addr).await;
        c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(c.closed_within(T).await, "HTTP request closes");
        tg.assert_logged(&["exceeds the limit"]).await;
        tg.assert_serving().await;
    });
}

#[test]
fn oversized_and_negative_frames_are_closed() {
    let mut tg = Target::new("oversized", Server::builder().cfg("jute.maxbuffer=65536"));
    run(async {
        tg.start_bystander().await;
        let max: i32 = if tg.server.is_some() { 65536 } else { 0xfffff };

        // In place of the ConnectRequest.
        let mut c = RawConn::open(tg.addr).await;
        c.send_raw(&(max * 4).to_be_bytes()).await.unwrap();
        assert!(c.closed_within(T).await, "oversized first frame closes");
        tg.assert_logged(&["exceeds the limit"]).await;
        tg.assert_serving().await;

        let mut c = RawConn::open(tg.addr).await;
        c.send_raw(&(-1i32).to_be_bytes()).await.unwrap();
        assert!(c.closed_within(T).await, "negative first frame closes");
        tg.assert_logged(&["negative frame length"]).await;
        tg.assert_serving().await;

        // After a valid handshake: a length prefix over the limit.
        let mut c = RawConn::session(tg.addr).await;
        c.send_raw(&(max * 4).to_be_bytes()).await.unwrap();
        assert!(c.closed_within(T).await, "oversized request closes");
        tg.assert_serving().await;

        // A real request that is too big: setData with more than jute.maxbuffer of data.
        let mut c = RawConn::session(tg.addr).await;
        let path = format!("{}/big", tg.root);
        assert_eq!(c.call(1, &create(&path, open_acl())).await.err(), 0);
        let big = Request::SetData(SetDataRequest {
            path: path.clone(),
            data: vec![7u8; max as usize * 2].into(),
            version: -1,
        });
        // The server may close while we are still writing; that is fine.
        let _ = c.send_frame(&big.encode(2)).await;
        assert!(c.closed_within(T).await, "oversized setData closes");
        let mut check = RawConn::session(tg.addr).await;
        let reply = check
            .call(1, &Request::GetData(GetDataRequest { path, watch: false }))
            .await;
        let Response::GetData(data) = reply.decode(OpCode::GetData.code()) else {
            panic!()
        };
        assert_eq!(*data.data, *b"d", "the oversized write was not applied");

        // Negative length after the handshake.
        let mut c = RawConn::session(tg.addr).await;
        c.send_raw(&i32::MIN.to_be_bytes()).await.unwrap();
        assert!(c.closed_within(T).await, "negative request length closes");
        tg.assert_logged(&["refusing frame", "negative frame length"])
            .await;
        tg.assert_serving().await;

        // Just under the limit is fine.
        let mut c = RawConn::session(tg.addr).await;
        let ok = Request::SetData(SetDataRequest {
            path: format!("{}/big", tg.root),
            data: vec![1u8; max as usize / 2].into(),
            version: -1,
        });
        assert_eq!(c.call(3, &ok).await.err(), 0);
    });
}

/// Paddock answers Unimplemented and keeps the connection. (ZooKeeper 3.8 answers
/// Unimplemented and then closes the connection; the external run reconnects.)
#[test]
fn unknown_opcode_gets_unimplemented_and_the_connection_lives() {
    let mut tg = Target::new("unknownop", Server::builder());
    run(async {
        tg.start_bystander().await;
        let external = tg.server.is_none();
        let mut c = RawConn::session(tg.addr).await;
        for (xid, op) in [(5, 999), (6, -77), (7, 4242), (8, i32::MAX)] {
            if external {
                c = RawConn::session(tg.addr).await;
            }
            let mut frame = RequestHeader { xid, op }.to_bytes();
            frame.extend_from_slice(b"some body bytes");
            c.send_frame(&frame).await.unwrap();
            let reply = c
                .read_reply()
                .await
                .unwrap_or_else(|| panic!("opcode {op}: closed, not answered"));
            assert_eq!(reply.header.xid, xid);
            assert_eq!(reply.err(), -6, "Unimplemented for opcode {op}");
        }
        if external {
            c = RawConn::session(tg.addr).await;
        }
        // The connection keeps working, in order.
        let reply = c.call(9, &exists(&tg.root)).await;
        assert_eq!(reply.err(), 0);
        tg.assert_logged(&["unknown opcode"]).await;
        tg.assert_serving().await;
    });
}

/// Paddock validates every path (PathUtils.validatePath) and answers BadArguments.
/// ZooKeeper validates them for writes only (reads of a malformed path find no node,
/// NoNode) and, for create and delete, only after looking the parent or node up; the
/// external run accepts those NoNode answers.
#[test]
fn invalid_paths_get_bad_arguments() {
    let mut tg = Target::new("badpath", Server::builder());
    run(async {
        tg.start_bystander().await;
        let external = tg.server.is_none();
        let mut c = RawConn::session(tg.addr).await;
        let r = tg.root.clone();
        let bad_paths = [
            "".to_string(),
            "relative".to_string(),
            format!("{r}/"),
            format!("{r}//x"),
            format!("{r}/."),
            format!("{r}/./x"),
            format!("{r}/../x"),
            format!("{r}/x/.."),
            format!("{r}/nul\u{0}char"),
            format!("{r}/ctl\u{1}"),
        ];
        let mut xid = 10;
        for p in &bad_paths {
            let p = p.as_str();
            let strict: [(&str, Request); 3] = [
                (
                    "setData",
                    Request::SetData(SetDataRequest {
                        path: p.into(),
                        data: vec![].into(),
                        version: -1,
                    }),
                ),
                (
                    "setACL",
                    Request::SetAcl(SetAclRequest {
                        path: p.into(),
                        acl: open_acl(),
                        version: -1,
                    }),
                ),
                (
                    "getData",
                    Request::GetData(GetDataRequest {
                        path: p.into(),
                        watch: false,
                    }),
                ),
            ];
            let lenient: [(&str, Request); 5] = [
                ("create", create(p, open_acl())),
                (
                    "delete",
                    Request::Delete(DeleteRequest {
                        path: p.into(),
                        version: -1,
                    }),
                ),
                ("exists", exists(p)),
                (
                    "getChildren",
                    Request::GetChildren(GetChildrenRequest {
                        path: p.into(),
                        watch: false,
                    }),
                ),
                (
                    "getACL",
                    Request::GetAcl(paddock_proto::GetAclRequest { path: p.into() }),
                ),
            ];
            for (i, (name, req)) in strict.into_iter().chain(lenient).enumerate() {
                // ZooKeeper reads "" as the root; skip the reads of "" there.
                if external && p.is_empty() && i >= 2 && name != "create" && name != "delete" {
                    continue;
                }
                xid += 1;
                let reply = c.call(xid, &req).await;
                let ok = reply.err() == -8
                    || (external && (i >= 2 || name == "getData") && reply.err() == -101);
                assert!(
                    ok,
                    "{name} {p:?}: got {}, want BadArguments (-8)",
                    reply.err()
                );
            }
            // Inside a multi: the per-op result says BadArguments.
            xid += 1;
            let multi = Request::Multi(vec![Request::Check(paddock_proto::CheckVersionRequest {
                path: p.into(),
                version: -1,
            })]);
            let reply = c.call(xid, &multi).await;
            assert_eq!(reply.err(), 0);
            let Response::Multi(results) = reply.decode(OpCode::Multi.code()) else {
                panic!()
            };
            assert_eq!(
                results,
                vec![paddock_proto::MultiResult::Error(-8)],
                "check {p:?}"
            );
        }
        // A sequential create may end in '/', the suffix follows it.
        let seq = Request::Create(CreateRequest {
            path: format!("{r}/"),
            data: vec![].into(),
            acl: open_acl(),
            flags: 2,
        });
        xid += 1;
        let reply = c.call(xid, &seq).await;
        assert_eq!(reply.err(), 0);
        let Response::Create(created) = reply.decode(OpCode::Create.code()) else {
            panic!()
        };
        assert_eq!(created.path, format!("{r}/0000000000"));
        // Nothing was created by the refused requests.
        xid += 1;
        let reply = c
            .call(
                xid,
                &Request::GetChildren(GetChildrenRequest {
                    path: r.clone(),
                    watch: false,
                }),
            )
            .await;
        let Response::GetChildren(children) = reply.decode(OpCode::GetChildren.code()) else {
            panic!()
        };
        assert_eq!(children.children, vec!["0000000000".to_string()]);
        tg.assert_serving().await;
    });
}

#[test]
fn invalid_acls_get_invalid_acl() {
    let mut tg = Target::new("badacl", Server::builder());
    run(async {
        tg.start_bystander().await;
        let mut c = RawConn::session(tg.addr).await;
        let r = tg.root.clone();
        let bad: Vec<(&str, Vec<Acl>)> = vec![
            ("empty list", vec![]),
            ("unknown scheme", vec![acl(perms::ALL, "kerberos-ish", "x")]),
            (
                "world but not anyone",
                vec![acl(perms::ALL, "world", "someone")],
            ),
            (
                "auth without credentials",
                vec![acl(perms::ALL, "auth", "")],
            ),
            (
                "digest without a hash",
                vec![acl(perms::ALL, "digest", "nocolon")],
            ),
            (
                "ip that is not an address",
                vec![acl(perms::ALL, "ip", "not.an.ip")],
            ),
            (
                "one bad entry among good ones",
                vec![
                    acl(perms::READ, "world", "anyone"),
                    acl(perms::ALL, "bogus", "x"),
                ],
            ),
        ];
        let mut xid = 100;
        for (what, list) in &bad {
            xid += 1;
            let reply = c
                .call(xid, &create(&format!("{r}/n{xid}"), list.clone()))
                .await;
            assert_eq!(reply.err(), -114, "create with {what}");
            xid += 1;
            let req = Request::SetAcl(SetAclRequest {
                path: r.clone(),
                acl: list.clone(),
                version: -1,
            });
            let reply = c.call(xid, &req).await;
            assert_eq!(reply.err(), -114, "setACL with {what}");
        }
        // Nothing was created, the root's ACL is unchanged.
        xid += 1;
        let reply = c
            .call(
                xid,
                &Request::GetAcl(paddock_proto::GetAclRequest { path: r.clone() }),
            )
            .await;
        let Response::GetAcl(got) = reply.decode(OpCode::GetAcl.code()) else {
            panic!()
        };
        assert_eq!(got.acl, open_acl());
        assert_eq!(got.stat.aversion, 0);
        assert_eq!(got.stat.num_children, 0);
        tg.assert_serving().await;
    });
}

#[test]
fn wrong_password_is_told_the_session_expired() {
    let mut tg = Target::new("password", Server::builder());
    run(async {
        tg.start_bystander().await;
        let mut owner = RawConn::session(tg.addr).await;
        let (session, passwd) = (owner.session_id, owner.passwd.clone());
        assert_eq!(passwd.len(), 16);
        let eph = format!("{}/eph", tg.root);
        let mut req = create(&eph, open_acl());
        if let Request::Create(c) = &mut req {
            c.flags = 1;
        }
        assert_eq!(owner.call(1, &req).await.err(), 0);

        let mut wrong = passwd.clone();
        wrong[0] ^= 0xff;
        let mut thief = RawConn::open(tg.addr).await;
        let resp = thief
            .handshake(&ConnectRequest {
                session_id: session,
                passwd: wrong.into(),
                ..new_session_request()
            })
            .await
            .expect("a ConnectResponse");
        assert_eq!(resp.session_id, 0, "no session");
        assert_eq!(resp.time_out, 0, "timeout 0: expired");
        assert_eq!(resp.passwd.0, vec![0u8; 16]);
        assert!(thief.closed_within(T).await, "closed after the refusal");
        tg.assert_logged(&["invalid session", "wrong password"])
            .await;

        // The session itself is intact: its ephemeral is there and the rightful owner
        // can resume it with the right password.
        let mut back = RawConn::open(tg.addr).await;
        let resp = back
            .handshake(&ConnectRequest {
                session_id: session,
                passwd: passwd.clone().into(),
                ..new_session_request()
            })
            .await
            .expect("a ConnectResponse");
        assert_eq!(resp.session_id, session);
        assert!(resp.time_out > 0);
        assert_eq!(resp.passwd.0, passwd);
        let reply = back.call(1, &exists(&eph)).await;
        assert_eq!(reply.err(), 0);
        let Response::Stat(stat) = reply.decode(OpCode::Exists.code()) else {
            panic!()
        };
        assert_eq!(stat.ephemeral_owner, session);

        // An unknown session id gets the same answer.
        let mut stranger = RawConn::open(tg.addr).await;
        let resp = stranger
            .handshake(&ConnectRequest {
                session_id: 0x1234_5678_9abc,
                passwd: vec![1u8; 16].into(),
                ..new_session_request()
            })
            .await
            .expect("a ConnectResponse");
        assert_eq!((resp.session_id, resp.time_out), (0, 0));
        assert!(stranger.closed_within(T).await);
        tg.assert_serving().await;
    });
}

#[test]
fn client_from_the_future_is_refused_without_a_session() {
    let mut tg = Target::new("future", Server::builder());
    run(async {
        tg.start_bystander().await;
        let mut c = RawConn::open(tg.addr).await;
        let resp = c
            .handshake(&ConnectRequest {
                last_zxid_seen: 0x7fff_0000_0000_0000,
                ..new_session_request()
            })
            .await;
        assert!(resp.is_none(), "no ConnectResponse, just a close: {resp:?}");
        tg.assert_logged(&["refusing session", "newer zxid"]).await;
        tg.assert_serving().await;
        // A client at the server's own zxid is fine.
        let mut c = RawConn::open(tg.addr).await;
        let by = tg.bystander.as_mut().unwrap();
        let reply = by.call(50, &exists("/")).await;
        let resp = c
            .handshake(&ConnectRequest {
                last_zxid_seen: reply.header.zxid,
                ..new_session_request()
            })
            .await
            .expect("session");
        assert_ne!(resp.session_id, 0);
    });
}

#[test]
fn truncated_and_malformed_requests_are_closed() {
    let mut tg = Target::new("truncated", Server::builder());
    run(async {
        tg.start_bystander().await;

        // getData whose path length runs past the end of the frame.
        let mut c = RawConn::session(tg.addr).await;
        let mut frame = RequestHeader { xid: 1, op: 4 }.to_bytes();
        frame.extend_from_slice(&100i32.to_be_bytes());
        frame.extend_from_slice(b"/ab");
        c.send_frame(&frame).await.unwrap();
        refused(&mut c, 1).await;
        tg.assert_logged(&["malformed request"]).await;
        tg.assert_serving().await;

        // A frame too short for a request header.
        let mut c = RawConn::session(tg.addr).await;
        c.send_frame(&[0, 0, 1]).await.unwrap();
        assert!(c.closed_within(T).await, "short header closes");
        tg.assert_serving().await;

        // A multi whose op list never ends.
        let mut c = RawConn::session(tg.addr).await;
        let mut frame = RequestHeader { xid: 2, op: 14 }.to_bytes();
        frame.extend_from_slice(&1i32.to_be_bytes()); // op: create
        frame.extend_from_slice(&[0]); // done: false
        frame.extend_from_slice(&(-1i32).to_be_bytes()); // err
        c.send_frame(&frame).await.unwrap();
        refused(&mut c, 2).await;
        tg.assert_serving().await;

        // A half-sent frame blocks nobody else while it waits for the rest.
        let mut slow = RawConn::session(tg.addr).await;
        slow.send_raw(&64i32.to_be_bytes()).await.unwrap();
        slow.send_raw(&[0u8; 10]).await.unwrap();
        tg.assert_serving().await;
        drop(slow);
        tg.assert_serving().await;
    });
}

/// A request that cannot be decoded: Paddock closes the connection; ZooKeeper answers
/// MarshallingError (-5). Either is a clean refusal; anything else fails.
async fn refused(c: &mut RawConn, xid: i32) {
    let mut buf = [0u8; 4];
    match within(
        T,
        "refusal",
        tokio::io::AsyncReadExt::read(&mut c.stream, &mut buf),
    )
    .await
    {
        Ok(0) | Err(_) => {}
        Ok(_) => {
            let mut rest = vec![0u8; 16];
            let _ = within(
                T,
                "reply",
                tokio::io::AsyncReadExt::read_exact(&mut c.stream, &mut rest),
            )
            .await;
            let header = paddock_proto::ReplyHeader::from_bytes(&rest[..16]).unwrap();
            assert_eq!(
                (header.xid, header.err),
                (xid, -5),
                "MarshallingError or a close"
            );
        }
    }
}

#[test]
fn too_many_connections_from_one_address_are_refused() {
    if std::env::var("PADDOCK_IT_EXTERNAL").is_ok() {
        return;
    }
    let mut tg = Target::new("maxcnxns", Server::builder().cfg("maxClientCnxns=4"));
    run(async {
        tg.start_bystander().await; // 1
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(RawConn::session(tg.addr).await); // 2..4
        }
        let mut extra = RawConn::open(tg.addr).await;
        assert!(
            extra.closed_within(T).await,
            "the fifth connection is closed"
        );
        tg.assert_logged(&["too many connections"]).await;
        for (i, c) in held.iter_mut().enumerate() {
            assert_eq!(c.call(10 + i as i32, &exists("/")).await.err(), 0);
        }
        // Closing one makes room again.
        drop(held.pop());
        let room = common::eventually(T, || async {
            let mut c = RawConn::open(tg.addr).await;
            c.handshake(&new_session_request()).await.is_some()
        })
        .await;
        assert!(room, "a slot frees up when a connection closes");
    });
}

#[test]
fn silent_connections_are_closed_after_the_handshake_timeout() {
    if std::env::var("PADDOCK_IT_EXTERNAL").is_ok() {
        return;
    }
    let mut tg = Target::new(
        "silent",
        Server::builder().cfg("tickTime=100").cfg("initLimit=5"),
    );
    run(async {
        tg.start_bystander().await;
        let mut idle = RawConn::open(tg.addr).await;
        let mut partial = RawConn::open(tg.addr).await;
        partial.send_raw(&44i32.to_be_bytes()).await.unwrap();
        partial.send_raw(&[0u8; 10]).await.unwrap();
        assert!(idle.closed_within(T).await, "a silent connection is closed");
        assert!(
            partial.closed_within(T).await,
            "a half ConnectRequest is closed"
        );
        tg.assert_serving().await;
    });
}

#[test]
fn bad_input_leaves_a_zookeeper_client_session_working() {
    if std::env::var("PADDOCK_IT_EXTERNAL").is_ok() {
        return;
    }
    let server = Server::start();
    let addr = server.addr();
    run(async {
        let zk = common::zk(&server.connect_string()).await;
        let opts = zookeeper_client::CreateMode::Persistent
            .with_acls(zookeeper_client::Acls::anyone_all());
        zk.create("/steady", b"0", &opts).await.unwrap();
        for i in 0..20 {
            let mut c = RawConn::open(addr).await;
            match i % 4 {
                0 => c.send_raw(&[0xff; 64]).await.unwrap(),
                1 => c.send_frame(&[1, 2, 3]).await.unwrap(),
                2 => c.send_raw(&(-5i32).to_be_bytes()).await.unwrap(),
                _ => {
                    let mut s = RawConn::session(addr).await;
                    s.send_frame(&[9, 9]).await.unwrap();
                    assert!(s.closed_within(T).await);
                }
            }
            let stat = within(
                T,
                "set",
                zk.set_data("/steady", format!("{i}").as_bytes(), None),
            )
            .await
            .unwrap();
            assert_eq!(stat.version, i + 1);
        }
        assert_eq!(zk.state(), zookeeper_client::SessionState::SyncConnected);
    });
    drop(server);
}
