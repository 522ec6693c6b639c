//! Thousands of concurrent client connections on one server without a thread per
//! connection, and one connection's pipelined requests answered in order.

mod common;

use std::time::{Duration, Instant};

use common::{RawConn, Server, run, within};
use paddock_proto::{
    Acl, CreateRequest, GetDataRequest, Id, OpCode, ReplyHeader, Request, Response, SetDataRequest,
    perms, xid,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

const CONNECTIONS: usize = 5000;
/// Connections opened at once: under the server's listen backlog (tokio binds with 128),
/// so no SYN is dropped and retried a second later.
const BATCH: usize = 100;

fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

fn proc_count(pid: u32, what: &str) -> usize {
    match what {
        "threads" => std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
        _ => std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count(),
    }
}

/// Raises the soft file-descriptor limit to the hard one (the server, started after
/// this, inherits it) and returns how many connections fit: each costs one descriptor
/// here and one in the server.
fn connection_budget() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid, owned struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    let soft = usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX);
    CONNECTIONS.min(soft.saturating_sub(256))
}

#[test]
fn thousands_of_concurrent_connections() {
    let n = connection_budget();
    let mut server = Server::builder().cfg("maxClientCnxns=0").start();
    let addr = server.addr();
    assert!(
        n >= 1000,
        "file-descriptor limit too low for this test ({n})"
    );
    let started = Instant::now();
    let pid = server.pid().unwrap();
    run(async {
        let mut setup = RawConn::session(addr).await;
        let create = Request::Create(CreateRequest {
            path: "/scale".into(),
            data: b"shared".to_vec().into(),
            acl: open_acl(),
            flags: 0,
        });
        assert_eq!(setup.call(1, &create).await.err(), 0);

        // Open every connection and establish a session on each, BATCH at a time.
        let mut conns: Vec<RawConn> = Vec::with_capacity(n);
        while conns.len() < n {
            let mut set = JoinSet::new();
            for _ in 0..BATCH.min(n - conns.len()) {
                set.spawn(async move { RawConn::session(addr).await });
            }
            while let Some(conn) = set.join_next().await {
                conns.push(conn.expect("handshake task"));
            }
        }
        eprintln!("opened {n}: {:?}", started.elapsed());
        let mut ids: Vec<i64> = conns.iter().map(|c| c.session_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "every connection has its own session");

        // All of them held open at once: the server holds a socket for each, on a
        // handful of threads.
        let fds = proc_count(pid, "fds");
        assert!(
            fds >= n,
            "server holds {fds} descriptors for {n} connections"
        );
        let threads = proc_count(pid, "threads");
        assert!(
            threads < 64,
            "{threads} threads for {n} connections: a thread per connection?"
        );

        // A ping and a getData on every connection, all in flight together.
        let mut set = JoinSet::new();
        for mut c in conns.drain(..) {
            set.spawn(async move {
                c.send(xid::PING, &Request::Ping).await;
                c.send(
                    2,
                    &Request::GetData(GetDataRequest {
                        path: "/scale".into(),
                        watch: false,
                    }),
                )
                .await;
                let ping = c.read_reply().await.expect("ping reply");
                assert_eq!((ping.header.xid, ping.err()), (xid::PING, 0));
                let data = c.read_reply().await.expect("getData reply");
                assert_eq!((data.header.xid, data.err()), (2, 0));
                let Response::GetData(d) = data.decode(OpCode::GetData.code()) else {
                    panic!()
                };
                assert_eq!(*d.data, *b"shared");
                c
            });
        }
        while let Some(c) = set.join_next().await {
            conns.push(c.expect("ping/getData task"));
        }
        assert_eq!(conns.len(), n);
        eprintln!("pinged {n}: {:?}", started.elapsed());
        server.assert_alive();

        // Still all open: a second round on every one of them.
        let mut set = JoinSet::new();
        for mut c in conns.drain(..) {
            set.spawn(async move {
                let r = c
                    .call(
                        3,
                        &Request::Exists(paddock_proto::ExistsRequest {
                            path: "/scale".into(),
                            watch: false,
                        }),
                    )
                    .await;
                assert_eq!(r.err(), 0);
                c
            });
        }
        while let Some(c) = set.join_next().await {
            conns.push(c.expect("exists task"));
        }
        let threads = proc_count(pid, "threads");
        assert!(threads < 64, "{threads} threads for {n} connections");
        drop(conns);
        common::assert_serving(&server.connect_string(), "/after-scale").await;
    });
    let took = started.elapsed();
    eprintln!("{n} connections: {took:?}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

/// One connection sends a thousand requests without waiting; the replies come back in
/// request order, and each read sees exactly the writes sent before it.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start();
    run(async {
        let mut c = RawConn::session(server.addr()).await;
        let mk = |path: &str| {
            Request::Create(CreateRequest {
                path: path.into(),
                data: b"v0".to_vec().into(),
                acl: open_acl(),
                flags: 0,
            })
        };
        assert_eq!(c.call(1, &mk("/pipe")).await.err(), 0);

        // Request i (xid 100 + i): setData "v{k}", getData, or a sequential create.
        #[derive(Debug, Clone, Copy)]
        enum Expect {
            Set(i32),
            Get(i32),
            Seq(i32),
        }
        let mut out = Vec::new();
        let mut expect = Vec::new();
        let (mut version, mut seq) = (0, 0);
        for i in 0..1500 {
            let x = 100 + i;
            let (req, e) = match i % 3 {
                0 => {
                    version += 1;
                    (
                        Request::SetData(SetDataRequest {
                            path: "/pipe".into(),
                            data: format!("v{version}").into_bytes().into(),
                            version: -1,
                        }),
                        Expect::Set(version),
                    )
                }
                1 => (
                    Request::GetData(GetDataRequest {
                        path: "/pipe".into(),
                        watch: false,
                    }),
                    Expect::Get(version),
                ),
                _ => {
                    let r = Request::Create(CreateRequest {
                        path: "/pipe/s-".into(),
                        data: vec![].into(),
                        acl: open_acl(),
                        flags: 2,
                    });
                    seq += 1;
                    (r, Expect::Seq(seq - 1))
                }
            };
            out.extend_from_slice(&paddock_proto::frame::frame(&req.encode(x)));
            expect.push((x, e));
        }

        let (mut rd, mut wr) = c.stream.split();
        let write = async {
            // Everything at once, without waiting for a single reply.
            wr.write_all(&out).await.unwrap();
            wr.flush().await.unwrap();
        };
        let read = async {
            let mut replies = Vec::with_capacity(expect.len());
            for _ in 0..expect.len() {
                let mut len = [0u8; 4];
                rd.read_exact(&mut len).await.expect("reply length");
                let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
                rd.read_exact(&mut buf).await.expect("reply body");
                replies.push(buf);
            }
            replies
        };
        let ((), replies) = within(Duration::from_secs(60), "1500 pipelined replies", async {
            tokio::join!(write, read)
        })
        .await;

        let mut last_zxid = 0;
        for ((x, e), frame) in expect.iter().zip(&replies) {
            let header = <ReplyHeader as paddock_proto::Jute>::from_bytes(&frame[..16]).unwrap();
            assert_eq!(header.xid, *x, "replies in request order");
            assert_eq!(header.err, 0, "{e:?}");
            assert!(header.zxid >= last_zxid, "zxids never go back");
            last_zxid = header.zxid;
            let body = &frame[16..];
            match *e {
                Expect::Set(v) => {
                    let Response::Stat(stat) =
                        Response::decode(OpCode::SetData.code(), body).unwrap()
                    else {
                        panic!()
                    };
                    assert_eq!(stat.version, v);
                    assert_eq!(stat.mzxid, header.zxid, "a write's reply carries its zxid");
                }
                Expect::Get(v) => {
                    let Response::GetData(d) =
                        Response::decode(OpCode::GetData.code(), body).unwrap()
                    else {
                        panic!()
                    };
                    assert_eq!(d.stat.version, v, "a read sees the writes sent before it");
                    assert_eq!(*d.data, *format!("v{v}").into_bytes());
                }
                Expect::Seq(s) => {
                    let Response::Create(r) =
                        Response::decode(OpCode::Create.code(), body).unwrap()
                    else {
                        panic!()
                    };
                    assert_eq!(r.path, format!("/pipe/s-{s:010}"));
                }
            }
        }
    });
}
