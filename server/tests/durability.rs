//! Crash recovery: kill -9 the real server in the middle of a write load, restart it on
//! the same data directory, and check that every write whose reply a client received is
//! there, that what survived is a prefix of what each client sent (no holes), and that
//! the restarted server logs nothing fatal and leaves a clean log behind.
//!
//! The load runs on raw connections, each pipelining a few requests, so the test knows
//! exactly which replies arrived before the kill.

mod common;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use common::{RawConn, Server, eventually, run, within};
use paddock_proto::{
    Acl, CreateRequest, ExistsRequest, GetChildrenRequest, GetDataRequest, Id, OpCode, Request,
    Response, SetDataRequest, perms,
};

const WRITERS: usize = 12;
/// Requests each writer keeps in flight.
const DEPTH: usize = 4;

fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

fn dir(w: usize) -> String {
    format!("/load/w{w}")
}

fn node(w: usize, i: u64) -> String {
    format!("/load/w{w}/n{i:08}")
}

fn node_data(w: usize, i: u64) -> Vec<u8> {
    format!("w{w}-n{i}").into_bytes()
}

fn set_data(s: u64) -> Vec<u8> {
    format!("s{s}").into_bytes()
}

/// What one writer knows. Its ops alternate: create n(creates), then setData on its
/// directory node with "s(sets+1)", and so on; so after any prefix of its ops,
/// `creates - sets` is 0 or 1.
#[derive(Debug, Clone, Default)]
struct Writer {
    /// Creates and sets known to be applied (acknowledged, or found after a restart).
    acked_creates: u64,
    acked_sets: u64,
    /// Creates and sets sent (acknowledged or not).
    sent_creates: u64,
    sent_sets: u64,
}

impl Writer {
    fn next_is_create(&self) -> bool {
        self.sent_creates == self.sent_sets
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Create(u64),
    Set(u64),
}

/// The writer's next request, counted as sent.
fn next_op(state: &RefCell<Writer>, w: usize) -> (Request, Op) {
    let mut s = state.borrow_mut();
    if s.next_is_create() {
        let i = s.sent_creates;
        s.sent_creates += 1;
        (
            Request::Create(CreateRequest {
                path: node(w, i),
                data: node_data(w, i).into(),
                acl: open_acl(),
                flags: 0,
            }),
            Op::Create(i),
        )
    } else {
        s.sent_sets += 1;
        let n = s.sent_sets;
        (
            Request::SetData(SetDataRequest {
                path: dir(w),
                data: set_data(n).into(),
                version: -1,
            }),
            Op::Set(n),
        )
    }
}

/// One writer's load on its own connection until the connection dies or `stop` is set.
async fn write_load(
    addr: std::net::SocketAddr,
    w: usize,
    state: Rc<RefCell<Writer>>,
    acked_total: Rc<RefCell<u64>>,
    stop: Rc<RefCell<bool>>,
) {
    let mut conn = RawConn::session(addr).await;
    let mut outstanding: VecDeque<(i32, Op)> = VecDeque::new();
    let mut xid = 0;
    loop {
        while outstanding.len() < DEPTH && !*stop.borrow() {
            let (req, op) = next_op(&state, w);
            xid += 1;
            if conn.send_frame(&req.encode(xid)).await.is_err() {
                return;
            }
            outstanding.push_back((xid, op));
        }
        let Some((want, op)) = outstanding.pop_front() else {
            return;
        };
        // A dead server shows as EOF / reset; a hung one would fail the test here.
        let Some(reply) = conn.read_reply().await else {
            return;
        };
        assert_eq!(reply.header.xid, want, "replies in request order");
        assert_eq!(reply.header.err, 0, "{op:?} failed");
        match op {
            Op::Create(i) => {
                let mut s = state.borrow_mut();
                assert_eq!(i, s.acked_creates, "creates acknowledged in order");
                s.acked_creates = i + 1;
            }
            Op::Set(n) => {
                let Response::Stat(stat) = reply.decode(OpCode::SetData.code()) else {
                    panic!()
                };
                assert_eq!(stat.version as u64, n, "setData version counts the sets");
                state.borrow_mut().acked_sets = n;
            }
        }
        *acked_total.borrow_mut() += 1;
    }
}

/// Reads back every writer's state after a restart, checks it against what was
/// acknowledged and sent, and makes it the starting point for the next round.
async fn verify(server: &Server, writers: &mut [Writer]) {
    let mut c = RawConn::session(server.addr()).await;
    let mut xid = 0;
    for (w, s) in writers.iter_mut().enumerate() {
        xid += 1;
        let reply = c
            .call(
                xid,
                &Request::GetData(GetDataRequest {
                    path: dir(w),
                    watch: false,
                }),
            )
            .await;
        assert_eq!(reply.err(), 0, "writer dir {w} exists");
        let Response::GetData(d) = reply.decode(OpCode::GetData.code()) else {
            panic!()
        };
        let version = d.stat.version as u64;
        assert!(
            version >= s.acked_sets,
            "writer {w}: acknowledged setData {} lost (version {version})",
            s.acked_sets
        );
        assert!(
            version <= s.sent_sets,
            "writer {w}: version {version} > sets sent {}",
            s.sent_sets
        );
        let expected = if version == 0 {
            Vec::new()
        } else {
            set_data(version)
        };
        assert_eq!(
            *d.data, *expected,
            "writer {w}: data matches version {version}"
        );

        xid += 1;
        let reply = c
            .call(
                xid,
                &Request::GetChildren(GetChildrenRequest {
                    path: dir(w),
                    watch: false,
                }),
            )
            .await;
        let Response::GetChildren(children) = reply.decode(OpCode::GetChildren.code()) else {
            panic!()
        };
        let mut children = children.children;
        children.sort();
        let creates = children.len() as u64;
        // The surviving creates are exactly n0..n(creates-1): a prefix, no holes.
        for (i, name) in children.iter().enumerate() {
            assert_eq!(*name, format!("n{i:08}"), "writer {w}: hole in the creates");
        }
        assert!(
            creates >= s.acked_creates,
            "writer {w}: acknowledged create n{} lost ({creates} present)",
            s.acked_creates.saturating_sub(1)
        );
        assert!(creates <= s.sent_creates);
        // One connection's ops survive as a prefix: creates and sets interleave.
        assert!(
            creates == version || creates == version + 1,
            "writer {w}: {creates} creates but {version} sets survived: not a prefix"
        );
        // Spot-check data of the newest and an acknowledged node.
        for i in [
            0,
            creates.saturating_sub(1),
            s.acked_creates.saturating_sub(1),
        ] {
            if i < creates {
                xid += 1;
                let reply = c
                    .call(
                        xid,
                        &Request::GetData(GetDataRequest {
                            path: node(w, i),
                            watch: false,
                        }),
                    )
                    .await;
                let Response::GetData(d) = reply.decode(OpCode::GetData.code()) else {
                    panic!()
                };
                assert_eq!(*d.data, *node_data(w, i));
                assert_eq!(d.stat.version, 0);
            }
        }
        *s = Writer {
            acked_creates: creates,
            acked_sets: version,
            sent_creates: creates,
            sent_sets: version,
        };
    }
}

async fn setup(server: &Server) -> Vec<Writer> {
    let mut c = RawConn::session(server.addr()).await;
    let mk = |path: String| {
        Request::Create(CreateRequest {
            path,
            data: vec![].into(),
            acl: open_acl(),
            flags: 0,
        })
    };
    assert_eq!(c.call(1, &mk("/load".into())).await.err(), 0);
    for w in 0..WRITERS {
        assert_eq!(c.call(2 + w as i32, &mk(dir(w))).await.err(), 0);
    }
    vec![Writer::default(); WRITERS]
}

/// Runs the load until `kill_after` more writes were acknowledged, then kill -9.
/// Returns how many writes were acknowledged this round.
async fn load_and_kill(server: &mut Server, writers: &mut [Writer], kill_after: u64) -> u64 {
    let acked = Rc::new(RefCell::new(0u64));
    let stop = Rc::new(RefCell::new(false));
    let states: Vec<Rc<RefCell<Writer>>> = writers
        .iter()
        .map(|w| Rc::new(RefCell::new(w.clone())))
        .collect();
    let local = tokio::task::LocalSet::new();
    let addr = server.addr();
    let mut handles = Vec::new();
    for (w, state) in states.iter().enumerate() {
        handles.push(local.spawn_local(write_load(
            addr,
            w,
            state.clone(),
            acked.clone(),
            stop.clone(),
        )));
    }
    local
        .run_until(async {
            let reached = eventually(Duration::from_secs(30), || {
                let n = *acked.borrow();
                async move { n >= kill_after }
            })
            .await;
            assert!(
                reached,
                "load reached {kill_after} acknowledged writes ({})",
                *acked.borrow()
            );
            // Mid-load: the writers are still sending.
            server.kill9();
            *stop.borrow_mut() = true;
            for h in handles {
                within(Duration::from_secs(20), "writer notices the kill", h)
                    .await
                    .expect("writer task");
            }
        })
        .await;
    for (w, state) in writers.iter_mut().zip(&states) {
        *w = state.borrow().clone();
    }
    *acked.borrow()
}

/// The newest "recovered" line of the current run: (snapshot zxid, replayed, zxid).
fn recovered(server: &Server) -> (u64, u64, u64) {
    (
        recovered_field(server, "snapshot"),
        recovered_field(server, "replayed"),
        recovered_field(server, "zxid"),
    )
}

/// A numeric field of the server's "recovered" log line.
fn recovered_field(server: &Server, name: &str) -> u64 {
    let log = server.current_run_log();
    let line = log
        .lines()
        .find(|l| l.contains("recovered"))
        .unwrap_or_else(|| panic!("no recovery line\n{log}"));
    let rest = &line[line.find(&format!(" {name}=")).unwrap() + name.len() + 2..];
    let v = rest.split_whitespace().next().unwrap();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
        None => v.parse().unwrap(),
    }
}

/// The zxid the server has reached, from a reply header.
async fn last_zxid(server: &Server) -> i64 {
    let mut c = RawConn::session(server.addr()).await;
    c.call(
        1,
        &Request::Exists(ExistsRequest {
            path: "/".into(),
            watch: false,
        }),
    )
    .await
    .header
    .zxid
}

fn storage_warnings(run_log: &str) -> Vec<String> {
    run_log
        .lines()
        .filter(|l| {
            l.contains("WARN")
                && (l.contains("storage") || l.contains("truncat") || l.contains("snapshot"))
        })
        .map(str::to_string)
        .collect()
}

/// kill -9 at a few different points of a write load; after each restart every
/// acknowledged write is there and the survivors are a prefix of what was sent.
#[test]
fn acknowledged_writes_survive_kill9_during_load() {
    let mut server = Server::start();
    run(async {
        let mut writers = setup(&server).await;
        let mut total = 0;
        for kill_after in [50u64, 600, 2500] {
            total += load_and_kill(&mut server, &mut writers, kill_after).await;
            server.restart();
            server.assert_no_fatal_log();
            verify(&server, &mut writers).await;
        }
        assert!(total >= 3150);
        // The server takes new writes after recovery.
        common::assert_serving(&server.connect_string(), "/after-crash").await;

        // A kill with nothing in flight: the next start finds a clean log (nothing to
        // truncate) and exactly the state it had; so does the one after.
        let before = last_zxid(&server).await as u64;
        for _ in 0..2 {
            server.kill9();
            server.restart();
            let (_, _, zxid) = recovered(&server);
            assert!(zxid >= before, "recovered zxid {zxid:#x} < {before:#x}");
            let warnings = storage_warnings(&server.current_run_log());
            assert!(
                warnings.is_empty(),
                "a clean log needs no repair: {warnings:#?}"
            );
            verify(&server, &mut writers).await;
        }
        server.assert_no_fatal_log();
    });
}

/// With a small snapCount the server snapshots during the load; recovery after kill -9
/// starts from a snapshot and replays the log after it.
#[test]
fn recovery_from_snapshot_plus_log() {
    let mut server = Server::builder().cfg("snapCount=64").start();
    run(async {
        let mut writers = setup(&server).await;
        load_and_kill(&mut server, &mut writers, 1500).await;
        let snapshots: Vec<String> = std::fs::read_dir(server.version_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("snapshot.") && !n.ends_with(".tmp"))
            .collect();
        assert!(
            !snapshots.is_empty(),
            "snapshots were taken during the load"
        );
        server.restart();
        server.assert_no_fatal_log();
        let (snapshot, replayed, zxid) = recovered(&server);
        let uncommitted = recovered_field(&server, "uncommitted");
        assert!(snapshot > 0, "recovery started from a snapshot");
        assert!(zxid >= snapshot);
        // Every record after the snapshot is either applied (known committed) or kept
        // as a proposal until the (re-elected) leader commits it.
        assert_eq!(
            zxid - snapshot,
            replayed + uncommitted,
            "read the whole log after the snapshot"
        );
        verify(&server, &mut writers).await;

        // Again, now that the restarted server snapshots on top of the recovered state.
        load_and_kill(&mut server, &mut writers, 800).await;
        server.restart();
        server.assert_no_fatal_log();
        let (snapshot2, _, _) = recovered(&server);
        assert!(
            snapshot2 > snapshot,
            "a newer snapshot after the second load"
        );
        verify(&server, &mut writers).await;
        common::assert_serving(&server.connect_string(), "/after-snap").await;
    });
}

/// The snapshot files in the server's version-2 directory, by zxid.
fn snapshot_zxids(server: &Server) -> Vec<u64> {
    let mut zxids: Vec<u64> = std::fs::read_dir(server.version_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let hex = name.strip_prefix("snapshot.")?;
            u64::from_str_radix(hex, 16).ok()
        })
        .collect();
    zxids.sort_unstable();
    zxids
}

/// A restarted server writes what it replayed down as a snapshot (as ZooKeeper's
/// loadData does), long before snapCount txns: a server restarted often (every roll of a
/// busy ensemble) would otherwise replay an ever longer log at each start.
#[test]
fn a_restart_snapshots_what_it_replayed() {
    let mut server = Server::start(); // snapCount 100000: no snapshot during the load
    run(async {
        let mut writers = setup(&server).await;
        load_and_kill(&mut server, &mut writers, 500).await;
        assert_eq!(
            snapshot_zxids(&server),
            Vec::<u64>::new(),
            "no snapCount snapshot"
        );
        server.restart();
        let (_, replayed, zxid) = recovered(&server);
        let uncommitted = recovered_field(&server, "uncommitted");
        assert!(
            replayed + uncommitted >= 500,
            "the first start reads the load from the log ({replayed} + {uncommitted})"
        );
        let snapped = eventually(Duration::from_secs(20), || {
            let newest = snapshot_zxids(&server).last().copied();
            async move { newest.is_some_and(|z| z >= zxid) }
        })
        .await;
        assert!(
            snapped,
            "a snapshot at the recovered zxid {zxid:#x} was written: {:x?}",
            snapshot_zxids(&server)
        );
        server.kill9();
        server.restart();
        let (snapshot, replayed_again, _) = recovered(&server);
        let uncommitted_again = recovered_field(&server, "uncommitted");
        assert!(
            snapshot >= zxid,
            "the next start loads that snapshot ({snapshot:#x})"
        );
        assert!(
            replayed_again + uncommitted_again < 10,
            "and reads only what came after it ({replayed_again} + {uncommitted_again})"
        );
        verify(&server, &mut writers).await;
        server.assert_no_fatal_log();
    });
}

/// Acknowledged writes of a zookeeper-client session survive too (the client sees
/// ConnectionLoss for the ones in flight, never a lost acknowledged write).
#[test]
fn zookeeper_client_writes_survive_kill9() {
    let mut server = Server::start();
    let connect = server.connect_string();
    let acked: Vec<u32> = run(async {
        let zk = common::zk(&connect).await;
        let opts = zookeeper_client::CreateMode::Persistent
            .with_acls(zookeeper_client::Acls::anyone_all());
        zk.create("/zk", b"", &opts).await.unwrap();
        let mut acked = Vec::new();
        // Keep a handful of creates in flight; kill after 300 acknowledgements.
        let paths: Vec<String> = (0..5000).map(|i| format!("/zk/n{i}")).collect();
        let mut inflight = VecDeque::new();
        let mut next = 0u32;
        loop {
            while inflight.len() < 8 && (next as usize) < paths.len() {
                let fut = zk.create(&paths[next as usize], format!("{next}").as_bytes(), &opts);
                inflight.push_back((next, Box::pin(fut)));
                next += 1;
            }
            let (i, fut) = inflight
                .pop_front()
                .expect("the kill comes before 5000 creates");
            match within(Duration::from_secs(20), "create", fut).await {
                Ok(_) => acked.push(i),
                Err(e) => {
                    assert!(acked.len() >= 300, "unexpected error before the kill: {e}");
                    break;
                }
            }
            if acked.len() == 300 {
                server.kill9();
            }
        }
        acked
    });
    server.restart();
    run(async {
        let zk = common::zk(&connect).await;
        let children = zk.list_children("/zk").await.unwrap();
        for i in &acked {
            assert!(
                children.contains(&format!("n{i}")),
                "acknowledged /zk/n{i} lost"
            );
            let (data, _) = zk.get_data(&format!("/zk/n{i}")).await.unwrap();
            assert_eq!(data, format!("{i}").as_bytes());
        }
    });
    server.assert_no_fatal_log();
}
