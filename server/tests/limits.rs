//! Memory under attack, measured on real processes: the server's peak resident set
//! (VmHWM in /proc/<pid>/status) while a hostile loopback peer tries to make it allocate,
//! and a normal client's read answered within [`SERVED_WITHIN`] during the attack.
//!
//! | attack | bound on peak RSS growth |
//! |---|---|
//! | (a) one connection pipelining 20,000 getData of a 100 KB node, never reading | [`BOUND_PIPELINE`] |
//! | (b) 2,000 connections each sending only a 1 MB frame length | [`BOUND_LENGTHS`] |
//! | (c) a peer completing the handshake and announcing a 1 GB frame (and one under the limit) | [`BOUND_PEER_FRAME`] |
//! | (d) 2,000 unknown peer ids introducing themselves | [`BOUND_INTRODUCTIONS`] |
//!
//! Before the limits (commit 592883a, debug build) the same attacks grew the server by
//! 1.9 GB (a), over 1 GB (b, and it stopped answering), 1 GB per announced frame (c, and
//! the follower stopped answering), and it dialled all 2,000 introduced ids (d).

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::ensemble::Ensemble;
use common::{RawConn, Server, next_loopback, run, within};
use paddock_proto::{CreateRequest, GetDataRequest, OpCode, Request, Response};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const MIB: u64 = 1024;

/// Peak RSS growth allowed per attack, in KiB.
/// (a): the reply queue cap (paddock.connQueuedReplyBytes, 4 MiB) plus the replies to
/// the requests in flight (paddock.connOutstandingLimit, 256, × 100 KB), each of which
/// may exist twice for a moment (as the core's response and encoded on the queue):
/// 4 MiB + 2 × 25.6 MB ≈ 55 MiB. Measured: 31–40 MiB.
const BOUND_PIPELINE: u64 = 64 * MIB;
/// (b): nothing is allocated for an announced length; what remains is per-connection
/// bookkeeping (tasks, socket state), about 6 KiB each.
const BOUND_LENGTHS: u64 = 32 * MIB;
/// (c): an announced frame is refused (over paddock.quorumMaxFrame) or costs only what
/// arrives.
const BOUND_PEER_FRAME: u64 = 8 * MIB;
/// (d): per-connection bookkeeping and at most 8 guest links.
const BOUND_INTRODUCTIONS: u64 = 32 * MIB;
/// Guest links a server opens to peers its config does not name (peer::MAX_GUESTS).
const MAX_GUESTS: usize = 8;

/// A bystander's getData must answer within this during every attack.
const SERVED_WITHIN: Duration = Duration::from_secs(2);

const NODE_BYTES: usize = 100_000;

/// A value of /proc/<pid>/status in KiB (VmHWM: peak resident set; VmRSS: current).
fn status_kib(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = text
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"));
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse {line:?}"))
}

fn peak_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// Waits until the process's resident set has not grown for a second (the server has
/// taken in what it will take), at most `limit`.
async fn settle(pid: u32, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = status_kib(pid, "VmRSS:");
    let mut stable_since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = status_kib(pid, "VmRSS:");
        if now > last + 256 {
            stable_since = Instant::now();
        }
        last = last.max(now);
        if stable_since.elapsed() >= Duration::from_secs(1) {
            return;
        }
    }
}

fn create(path: &str, data: Vec<u8>) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: data.into(),
        acl: common::ensemble::open_acl(),
        flags: 0,
    })
}

fn get_data(path: &str) -> Request {
    Request::GetData(GetDataRequest {
        path: path.into(),
        watch: false,
    })
}

/// A session that reads `path` and checks it answers within [`SERVED_WITHIN`].
async fn assert_read_served(conn: &mut RawConn, xid: i32, path: &str, expect_len: usize) {
    let started = Instant::now();
    let reply = within(
        SERVED_WITHIN,
        "a bystander's getData",
        conn.call(xid, &get_data(path)),
    )
    .await;
    assert_eq!(reply.err(), 0, "bystander's getData {path}");
    let Response::GetData(data) = reply.decode(OpCode::GetData.code()) else {
        panic!("getData reply")
    };
    assert_eq!(data.data.len(), expect_len);
    eprintln!("bystander getData answered in {:?}", started.elapsed());
}

/// Lets the attack take effect (see [`settle`]), then reports the peak.
async fn measure(
    attack: &'static str,
    pid: u32,
    baseline: u64,
    bound: u64,
    settle_limit: Duration,
) -> impl FnOnce() + use<> {
    settle(pid, settle_limit).await;
    report(attack, baseline, peak_kib(pid), bound)
}

/// Prints the figure (before anything else can fail) and returns a check for later.
fn report(attack: &str, baseline: u64, peak: u64, bound: u64) -> impl FnOnce() {
    eprintln!(
        "attack {attack}: peak RSS {peak} KiB (baseline {baseline} KiB, growth {} KiB, bound {bound} KiB)",
        peak.saturating_sub(baseline)
    );
    let attack = attack.to_string();
    move || {
        assert!(
            peak.saturating_sub(baseline) <= bound,
            "attack {attack}: peak RSS grew by {} KiB, over the bound of {bound} KiB",
            peak - baseline
        )
    }
}

#[test]
fn pipelined_reads_that_are_never_read_keep_memory_bounded() {
    run(async {
        let server = Server::start();
        let pid = server.pid().expect("running");
        let addr = server.addr();
        let mut bystander = RawConn::session(addr).await;
        let create = create("/big", vec![7u8; NODE_BYTES]);
        assert_eq!(bystander.call(1, &create).await.err(), 0);
        let baseline = peak_kib(pid);

        let mut attacker = RawConn::session(addr).await;
        let mut batch = Vec::new();
        for xid in 1..=20_000 {
            batch.extend_from_slice(&paddock_proto::frame::frame(&get_data("/big").encode(xid)));
        }
        let writer = tokio::spawn(async move {
            // The server stops reading: the write may never finish, and need not.
            let _ =
                tokio::time::timeout(Duration::from_secs(20), attacker.stream.write_all(&batch))
                    .await;
            attacker
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let check = measure(
            "(a) pipelined getData",
            pid,
            baseline,
            BOUND_PIPELINE,
            Duration::from_secs(20),
        )
        .await;
        assert_read_served(&mut bystander, 2, "/big", NODE_BYTES).await;
        check();
        writer.abort();
    });
}

#[test]
fn connections_announcing_large_frames_keep_memory_bounded() {
    run(async {
        let server = Server::start();
        let pid = server.pid().expect("running");
        let addr = server.addr();
        let mut bystander = RawConn::session(addr).await;
        let baseline = peak_kib(pid);

        let mut held = Vec::new();
        let started = Instant::now();
        for i in 0..2_000 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "opening connections took too long"
            );
            let mut s = within(
                Duration::from_secs(5),
                "connect",
                connect_from(spread_source(i), addr),
            )
            .await
            .expect("connect");
            s.write_all(&1_000_000u32.to_be_bytes())
                .await
                .expect("send length");
            held.push(s);
        }
        let check = measure(
            "(b) 2,000 announced 1 MB frames",
            pid,
            baseline,
            BOUND_LENGTHS,
            Duration::from_secs(10),
        )
        .await;
        let mut fresh = RawConn::session(addr).await;
        let create = create("/small", b"x".to_vec());
        assert_eq!(fresh.call(1, &create).await.err(), 0);
        assert_read_served(&mut bystander, 1, "/small", 1).await;
        check();
        drop(held);
    });
}

/// Source addresses across 127.0.1.0/24 .. 127.0.40.0/24, 50 connections each: under
/// maxClientCnxns (60 per address), as an attacker with a few addresses would spread them.
fn spread_source(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1 + (i / 50) as u8, 1)
}

async fn connect_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(to).await
}

/// The handshake a server sends on its outbound link: id, then its quorum address.
fn peer_hello(id: u64, address: &str) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&(address.len() as u16).to_be_bytes());
    out.extend_from_slice(address.as_bytes());
    out
}

/// A follower of a stable three-member ensemble under attack.
struct Follower {
    pid: u32,
    quorum: SocketAddr,
    /// A session on it that has created /probe.
    bystander: RawConn,
    /// Its peak RSS before the attack.
    baseline: u64,
}

async fn follower_of(ens: &Ensemble) -> Follower {
    let leader = ens.wait_stable(Duration::from_secs(30)).await;
    let id = ens
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let member = ens.member(id);
    let mut bystander = RawConn::session(member.client()).await;
    let create = create("/probe", b"p".to_vec());
    assert_eq!(bystander.call(1, &create).await.err(), 0);
    let pid = member.server.pid().expect("running");
    Follower {
        pid,
        quorum: member.quorum,
        bystander,
        baseline: peak_kib(pid),
    }
}

#[test]
fn a_peer_announcing_a_huge_frame_allocates_nothing() {
    run(async {
        let ens = Ensemble::builder(3).direct().start();
        let Follower {
            pid,
            quorum,
            mut bystander,
            baseline,
        } = follower_of(&ens).await;

        let mut held = Vec::new();
        // Two announce 1 GB (over any limit); one announces 64 MiB (under the default
        // limit) and sends a single byte of it.
        for (i, len, body) in [
            (91u64, 1u32 << 30, 0usize),
            (92, 1 << 30, 0),
            (93, 64 << 20, 1),
        ] {
            let mut s = TcpStream::connect(quorum)
                .await
                .expect("connect quorum port");
            s.write_all(&peer_hello(i, "127.0.0.1:1"))
                .await
                .expect("hello");
            s.write_all(&len.to_be_bytes()).await.expect("length");
            s.write_all(&vec![0u8; body]).await.expect("body");
            held.push(s);
        }
        let check = measure(
            "(c) 1 GB peer frame",
            pid,
            baseline,
            BOUND_PEER_FRAME,
            Duration::from_secs(10),
        )
        .await;
        assert_read_served(&mut bystander, 2, "/probe", 1).await;
        check();
        drop(held);
    });
}

#[test]
fn unknown_peer_ids_that_introduce_themselves_are_not_all_dialled() {
    run(async {
        let ens = Ensemble::builder(3).direct().start();
        let Follower {
            pid,
            quorum,
            mut bystander,
            baseline,
        } = follower_of(&ens).await;

        // Every introduced address points here: count the server's dial-backs.
        let ip: Ipv4Addr = next_loopback();
        let trap = TcpListener::bind((ip, 0)).await.expect("bind trap");
        let trap_addr: SocketAddr = trap.local_addr().unwrap();
        let dialled = Arc::new(AtomicUsize::new(0));
        let counter = dialled.clone();
        let trap_task = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((s, _)) = trap.accept().await {
                counter.fetch_add(1, Ordering::Relaxed);
                kept.push(s);
            }
        });

        let mut held = Vec::new();
        let started = Instant::now();
        for i in 0..2_000u64 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "introductions took too long"
            );
            let mut s = within(
                Duration::from_secs(5),
                "connect",
                TcpStream::connect(quorum),
            )
            .await
            .expect("connect quorum port");
            s.write_all(&peer_hello(10_000 + i, &trap_addr.to_string()))
                .await
                .expect("hello");
            held.push(s);
        }
        settle(pid, Duration::from_secs(10)).await;
        // Give the dial-backs time to happen (they would within a second or two).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let dials = dialled.load(Ordering::Relaxed);
        eprintln!("attack (d): the follower dialled {dials} introduced addresses");
        let check = report(
            "(d) 2,000 unknown peer ids",
            baseline,
            peak_kib(pid),
            BOUND_INTRODUCTIONS,
        );
        assert_read_served(&mut bystander, 2, "/probe", 1).await;
        check();
        assert!(
            dials <= MAX_GUESTS,
            "the follower dialled {dials} unknown peers"
        );
        trap_task.abort();
        drop(held);
    });
}
