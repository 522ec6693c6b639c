//! Real-process replication tests (issue 4): ensembles of `paddock-server` processes on
//! 127.0.0.x under a write load, with kill -9, SIGSTOP/SIGCONT and partitions made by the
//! fault proxies between peers (see `common/ensemble.rs`). Afterwards every acknowledged
//! write is on every live server, all servers agree on the zxid, and writes resume under
//! the new leader.
//!
//! The failover time (kill -9 of the leader → first acknowledged write sent after the
//! kill) is printed, not asserted: run with `--nocapture` to see it.

mod common;

use std::time::{Duration, Instant};

use common::ensemble::{
    Ack, Ensemble, LOAD_ROOT, Link, Load, SYNC_LIMIT, TICK_MS, call, close_session, ensure_node,
    open_acl, session_on, verify_all,
};
use common::{RawConn, eventually, run};
use paddock_proto::{CreateRequest, Request};

const START: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(30);
const RESUME: Duration = Duration::from_secs(20);
const STOP_LOAD: Duration = Duration::from_secs(30);

fn epoch_of(zxid: i64) -> u64 {
    (zxid >> 32) as u64
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// How long a silent member must stay silent for its peers to give up on it.
fn sync_limit() -> Duration {
    Duration::from_millis(TICK_MS * SYNC_LIMIT)
}

/// A connection to `server` opened before a fault, on which the test sends creates
/// after the fault: none of them may be acknowledged in the old epoch.
struct Probe {
    server: u64,
    conn: RawConn,
    sent: Vec<(i32, String, Vec<u8>, Instant)>,
}

impl Probe {
    async fn open(ens: &Ensemble, server: u64) -> Probe {
        Probe {
            server,
            conn: session_on(ens.member(server).client(), Duration::from_secs(10)).await,
            sent: Vec::new(),
        }
    }

    /// Sends `n` creates without waiting (they sit in the socket if the server is frozen).
    async fn send(&mut self, tag: &str, n: usize) {
        for k in 0..n {
            let xid = 1 + self.sent.len() as i32;
            let path = format!("{LOAD_ROOT}/probe-{tag}-{k}");
            let data = format!("probe {tag} {k}").into_bytes();
            let req = Request::Create(CreateRequest {
                path: path.clone(),
                data: data.clone().into(),
                acl: open_acl(),
                flags: 0,
            });
            let sent = Instant::now();
            if self.conn.send_frame(&req.encode(xid)).await.is_err() {
                return;
            }
            self.sent.push((xid, path, data, sent));
        }
    }

    /// Reads the answers until the connection closes or goes quiet for `quiet`; the
    /// acknowledged creates.
    async fn acks(mut self, quiet: Duration) -> Vec<Ack> {
        let mut acks = Vec::new();
        while let Some(reply) = self.conn.try_read_reply(quiet).await {
            let Some((_, path, data, sent)) = self
                .sent
                .iter()
                .find(|(x, ..)| *x == reply.header.xid)
                .cloned()
            else {
                continue;
            };
            if reply.header.err == 0 {
                acks.push(Ack {
                    path,
                    data,
                    server: self.server,
                    zxid: reply.header.zxid,
                    sent,
                    acked: Instant::now(),
                });
            }
        }
        acks
    }
}

/// No write sent after `fault` was acknowledged in an epoch up to `old_epoch`: after the
/// fault the old leader could not reach a quorum, so nothing new commits in its epoch.
fn assert_nothing_new_in_old_epoch(acks: &[Ack], fault: Instant, old_epoch: u64, what: &str) {
    let bad: Vec<&Ack> = acks
        .iter()
        .filter(|a| a.sent > fault && epoch_of(a.zxid) <= old_epoch)
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: {} writes sent after the fault were acknowledged in the old epoch {old_epoch}: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
}

fn summary(name: &str, v: &[Duration]) -> String {
    let mut v = v.to_vec();
    v.sort();
    let list: Vec<String> = v.iter().map(|d| ms(*d)).collect();
    format!(
        "{name}: min {} median {} max {} (all: {})",
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1]),
        list.join(", ")
    )
}

/// 3 servers under load; kill -9 the leader three times in a row (restarting it each
/// time). Every acknowledged write ends up on every server; all agree on the zxid.
#[test]
fn three_nodes_leader_kill9_repeatedly_under_load() {
    let mut ens = Ensemble::builder(3).start();
    let failovers = run(async {
        let mut leader = ens.wait_stable(START).await;
        ensure_node(ens.member(leader).client(), LOAD_ROOT, SETTLE).await;
        let load = Load::start(ens.client_targets(), 6, 2, Duration::from_secs(5));
        assert!(load.wait_more(100, RESUME).await, "the load runs");
        let mut failovers = Vec::new();
        for round in 1..=3 {
            let epoch = ens.status(leader).await.expect("leader status").epoch;
            let killed_at = Instant::now();
            ens.kill9(leader);
            let took = load.wait_resumed(killed_at, epoch, RESUME).await;
            let (new_leader, new_epoch) = ens.wait_new_leader(leader, epoch, RESUME).await;
            eprintln!(
                "round {round}: killed leader {leader} (epoch {epoch}); server {new_leader} leads epoch {new_epoch}; first acknowledged write after {}",
                ms(took)
            );
            failovers.push(took);
            ens.restart(leader);
            leader = ens.wait_stable(SETTLE).await;
            assert!(
                load.wait_more(50, RESUME).await,
                "writes continue with all three back"
            );
        }
        let sent = load.sent();
        let acks = load.stop(STOP_LOAD).await;
        eprintln!("3 nodes: {} writes acknowledged of {sent} sent", acks.len());
        verify_all(&ens, &acks).await;
        failovers
    });
    eprintln!(
        "{}",
        summary(
            "3-node failover, kill -9 of the leader → first acknowledged write",
            &failovers
        )
    );
    ens.assert_no_fatal_log();
}

/// Followers with no clients never write to their leader, so only the end of the
/// leader's connection to them tells that its process died: they must notice at once,
/// not after syncLimit (here 10 s; ZooKeeper's learner sees its leader socket close).
/// Once with direct peer connections, once through the fault proxies (a relay that
/// accepts and then hangs up, as a sidecar proxy would).
#[test]
fn idle_followers_notice_a_killed_leader_at_once() {
    let sync_limit_ticks = 20;
    for proxied in [false, true] {
        let builder = Ensemble::builder(3).sync_limit(sync_limit_ticks);
        let mut ens = if proxied { builder } else { builder.direct() }.start();
        run(async {
            let leader = ens.wait_stable(START).await;
            let epoch = ens.status(leader).await.expect("leader status").epoch;
            let killed_at = Instant::now();
            ens.kill9(leader);
            let (next, _) = ens.wait_new_leader(leader, epoch, RESUME).await;
            let took = killed_at.elapsed();
            eprintln!(
                "idle ensemble (proxied: {proxied}): server {next} leads {} after the kill",
                ms(took)
            );
            let limit = Duration::from_millis(TICK_MS * sync_limit_ticks / 2);
            assert!(
                took < limit,
                "a new leader took {} after the leader was killed: the followers waited for syncLimit ({} ms) instead of noticing the closed connection",
                ms(took),
                TICK_MS * sync_limit_ticks
            );
            ens.restart(leader);
            ens.wait_stable(SETTLE).await;
        });
        ens.assert_no_fatal_log();
    }
}

/// 5 servers under load: kill -9 the leader twice; freeze a follower for longer than
/// syncLimit; freeze the leader until the others elect a new one, then let it resume: it
/// must step down and rejoin, and nothing it was sent while frozen may be acknowledged in
/// its old epoch.
#[test]
fn five_nodes_kill9_and_sigstop_under_load() {
    let mut ens = Ensemble::builder(5).start();
    run(async {
        let mut leader = ens.wait_stable(START).await;
        ensure_node(ens.member(leader).client(), LOAD_ROOT, SETTLE).await;
        // Writers give up on a reply after 4 s, as a ZooKeeper client whose pings go
        // unanswered would (they gravitate to the leader: followers refuse a client that
        // saw a newer zxid, and under load followers are always a little behind).
        let load = Load::start(ens.client_targets(), 8, 2, Duration::from_secs(4));
        assert!(load.wait_more(100, RESUME).await, "the load runs");

        for round in 1..=2 {
            let epoch = ens.status(leader).await.expect("leader status").epoch;
            let killed_at = Instant::now();
            ens.kill9(leader);
            let took = load.wait_resumed(killed_at, epoch, RESUME).await;
            eprintln!(
                "5 nodes, kill {round}: first acknowledged write after {}",
                ms(took)
            );
            ens.restart(leader);
            leader = ens.wait_stable(SETTLE).await;
            assert!(load.wait_more(50, RESUME).await);
        }

        // A frozen follower: the other four carry on; it rejoins when it resumes.
        let follower = ens.ids().into_iter().find(|id| *id != leader).unwrap();
        let frozen_at = Instant::now();
        ens.sigstop(follower);
        let goal = load.acked() + 100;
        let freeze = sync_limit() + Duration::from_millis(1000);
        let carried_on = eventually(RESUME, || {
            let ok = load.acked() >= goal && frozen_at.elapsed() >= freeze;
            async move { ok }
        })
        .await;
        assert!(carried_on, "writes continue while a follower is frozen");
        ens.sigcont(follower);
        let after = ens.wait_stable(SETTLE).await;
        assert_eq!(
            after, leader,
            "a frozen follower does not cost the leadership"
        );
        assert!(load.wait_more(50, RESUME).await);

        // A frozen leader: the others elect a new one; the old one resumes as a follower.
        let old = leader;
        let epoch = ens.status(old).await.expect("leader status").epoch;
        let mut probe = Probe::open(&ens, old).await;
        ens.sigstop(old);
        // Taken once the old leader is frozen: a write sent before that may still have
        // been committed in its epoch.
        let frozen_at = Instant::now();
        probe.send("frozen", 5).await;
        let (new_leader, new_epoch) = ens.wait_new_leader(old, epoch, RESUME).await;
        let took = load.wait_resumed(frozen_at, epoch, RESUME).await;
        eprintln!(
            "5 nodes, leader {old} frozen: server {new_leader} leads epoch {new_epoch}; first acknowledged write after {}",
            ms(took)
        );
        ens.sigcont(old);
        let resumed_at = Instant::now();
        leader = ens.wait_stable(SETTLE).await;
        assert_eq!(
            leader, new_leader,
            "the resumed old leader does not take over"
        );
        eprintln!(
            "5 nodes: the old leader rejoined as a follower {} after SIGCONT",
            ms(resumed_at.elapsed())
        );
        let probe_acks = probe.acks(Duration::from_secs(5)).await;
        assert!(load.wait_more(50, RESUME).await, "writes continue");

        let mut acks = load.stop(STOP_LOAD).await;
        let stale: Vec<&Ack> = acks
            .iter()
            .filter(|a| a.server == old && a.acked > resumed_at && epoch_of(a.zxid) <= epoch)
            .collect();
        eprintln!(
            "5 nodes: {} writes acknowledged; {} by the old leader after SIGCONT in its old epoch (each one must survive); {} probe writes acknowledged",
            acks.len(),
            stale.len(),
            probe_acks.len()
        );
        acks.extend(probe_acks);
        assert_nothing_new_in_old_epoch(&acks, frozen_at, epoch, "frozen leader");
        verify_all(&ens, &acks).await;
    });
    ens.assert_no_fatal_log();
}

/// 3 servers under load; the leader is cut off from both followers (first a silent
/// partition, then, for the next leader, links that reset and refuse). The majority side
/// elects a new leader and writes resume there; the isolated leader gives up; nothing
/// sent after the cut is acknowledged in the old epoch; after healing all converge.
#[test]
fn partitioned_leader_steps_down_and_majority_continues() {
    let ens = Ensemble::builder(3).start();
    run(async {
        let mut leader = ens.wait_stable(START).await;
        ensure_node(ens.member(leader).client(), LOAD_ROOT, SETTLE).await;
        let load = Load::start(ens.client_targets(), 6, 2, Duration::from_secs(10));
        assert!(load.wait_more(100, RESUME).await, "the load runs");
        let mut all_probe_acks = Vec::new();

        for (round, mode) in [Link::Pause, Link::Reset].into_iter().enumerate() {
            let old = leader;
            let epoch = ens.status(old).await.expect("leader status").epoch;
            let mut probe = Probe::open(&ens, old).await;
            let cut_at = Instant::now();
            ens.isolate(old, mode);
            probe.send(&format!("cut{round}"), 5).await;
            let (new_leader, new_epoch) = ens.wait_new_leader(old, epoch, RESUME).await;
            let took = load.wait_resumed(cut_at, epoch, RESUME).await;
            // The isolated leader gives up within syncLimit (plus slack).
            let stepped_down = eventually(sync_limit() + Duration::from_secs(5), || {
                let ens = &ens;
                async move { ens.status(old).await.is_some_and(|s| !s.is_leader()) }
            })
            .await;
            assert!(
                stepped_down,
                "the isolated leader {old} still leads: {:?}",
                ens.status(old).await
            );
            eprintln!(
                "partition ({mode:?}) of leader {old}: server {new_leader} leads epoch {new_epoch}; first acknowledged write after {}; old leader stepped down after {}",
                ms(took),
                ms(cut_at.elapsed())
            );
            // It stays out while cut off.
            assert!(
                ens.status(old).await.is_some_and(|s| !s.is_leader()),
                "the isolated server leads again"
            );
            let probe_acks = probe.acks(Duration::from_secs(5)).await;
            assert_nothing_new_in_old_epoch(&probe_acks, cut_at, epoch, "isolated leader probe");
            all_probe_acks.extend(probe_acks);
            ens.heal();
            leader = ens.wait_stable(SETTLE).await;
            assert_eq!(
                leader, new_leader,
                "after healing the majority's leader stays"
            );
            assert!(
                load.wait_more(50, RESUME).await,
                "writes continue after healing"
            );
            let acks = load.acks();
            assert_nothing_new_in_old_epoch(&acks, cut_at, epoch, "partitioned leader");
        }

        let mut acks = load.stop(STOP_LOAD).await;
        acks.extend(all_probe_acks);
        eprintln!("partition: {} writes acknowledged", acks.len());
        verify_all(&ens, &acks).await;
    });
    ens.assert_no_fatal_log();
}

/// 5 servers under load on a "majorities ring" (a silent partition leaves each server
/// linked only to its two neighbours, so each still hears a majority), then the leader
/// killed and started again, as Kubernetes restarts a pod. The leader and its two
/// neighbours hold the latest history and hear each other, so writes must resume within
/// a bound. Before servers voted only for candidates that they hear and that hear a
/// quorum, no leader served writes for 22-27 s here: everyone saw a quorum vote for the
/// best id and followed a leader it could not reach. (With the leader kept down, its
/// neighbours, the only servers with the latest txns, hear too few servers to lead, and
/// ZAB, as ZooKeeper runs it, has no leader until it returns; the simulator checks that
/// case, `paddock-zab`'s `sim::non_transitive_partitions_keep_a_leader_serving_writes`.)
#[test]
fn a_majorities_ring_with_its_leader_restarted_serves_writes_again() {
    let mut ens = Ensemble::builder(5).start();
    run(async {
        let leader = ens.wait_stable(START).await;
        ensure_node(ens.member(leader).client(), LOAD_ROOT, SETTLE).await;
        let load = Load::start(ens.client_targets(), 10, 2, Duration::from_secs(10));
        assert!(load.wait_more(100, RESUME).await, "the load runs");

        // The ring: the leader first, so that it keeps two neighbours and its quorum.
        let mut ring = vec![leader];
        ring.extend(ens.ids().into_iter().filter(|id| *id != leader));
        for (i, a) in ring.iter().enumerate() {
            for (j, b) in ring.iter().enumerate() {
                let d = i.abs_diff(j);
                if d > 1 && d < ring.len() - 1 {
                    ens.set_link(*a, *b, Link::Pause);
                }
            }
        }
        let epoch = ens.status(leader).await.expect("leader status").epoch;
        assert!(
            load.wait_more(100, RESUME).await,
            "the leader keeps its quorum on the ring {ring:?}"
        );

        let killed_at = Instant::now();
        ens.kill9(leader);
        ens.restart(leader);
        let took = load.wait_resumed(killed_at, epoch, RESUME).await;
        eprintln!(
            "ring {ring:?}: leader {leader} killed and restarted; the first write acknowledged in a new epoch after {}",
            ms(took)
        );
        // syncLimit for the neighbours to notice, then an election among servers that
        // hear each other, with slack for a loaded machine.
        let bound = Duration::from_millis(SYNC_LIMIT * TICK_MS) + Duration::from_secs(8);
        assert!(
            took < bound,
            "writes resumed only after {took:?} (bound {bound:?})"
        );

        ens.heal();
        ens.wait_stable(SETTLE).await;
        assert!(
            load.wait_more(50, RESUME).await,
            "writes go on after healing"
        );
        let acks = load.stop(STOP_LOAD).await;
        eprintln!("ring: {} writes acknowledged", acks.len());
        verify_all(&ens, &acks).await;
    });
    ens.assert_no_fatal_log();
}

/// Creates `n` nodes named `{prefix}-{k}` through `server`; the acknowledged ones.
async fn create_some(ens: &Ensemble, server: u64, prefix: &str, n: usize) -> Vec<Ack> {
    let mut conn = session_on(ens.member(server).client(), SETTLE).await;
    let mut acks = Vec::new();
    for k in 0..n {
        let path = format!("{LOAD_ROOT}/{prefix}-{k}");
        let data = format!("{prefix} {k}").into_bytes();
        let req = Request::Create(CreateRequest {
            path: path.clone(),
            data: data.clone().into(),
            acl: open_acl(),
            flags: 0,
        });
        let sent = Instant::now();
        let reply = call(&mut conn, 1 + k as i32, &req)
            .await
            .unwrap_or_else(|| panic!("create {path} through {server}: connection lost"));
        assert_eq!(reply.err(), 0, "create {path} through {server}");
        acks.push(Ack {
            path,
            data,
            server,
            zxid: reply.header.zxid,
            sent,
            acked: Instant::now(),
        });
    }
    close_session(&mut conn).await;
    acks
}

/// Whether a create through `server` is acknowledged within `limit`.
async fn write_commits(ens: &Ensemble, server: u64, path: &str, limit: Duration) -> bool {
    let addr = ens.member(server).client();
    let attempt = async {
        let (mut conn, resp) =
            RawConn::try_session(addr, &common::new_session_request(), limit).await?;
        if resp.session_id == 0 {
            return None;
        }
        let req = Request::Create(CreateRequest {
            path: path.into(),
            data: vec![].into(),
            acl: open_acl(),
            flags: 0,
        });
        conn.send_frame(&req.encode(1)).await.ok()?;
        let reply = conn.try_read_reply(limit).await?;
        Some(reply.header.err == 0)
    };
    tokio::time::timeout(limit, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// An observer learns every commit and serves reads, but never counts toward a quorum:
/// with one of three participants down writes still commit; with two down they do not,
/// although the observer is up.
#[test]
fn observer_learns_commits_and_never_votes() {
    let mut ens = Ensemble::builder(3).observers(1).start();
    run(async {
        let observer = 4;
        let leader = ens.wait_stable(START).await;
        assert_ne!(leader, observer);
        assert_eq!(
            ens.status(observer).await.expect("observer status").role,
            "observer"
        );
        ensure_node(ens.member(observer).client(), LOAD_ROOT, SETTLE).await;
        let mut acks = create_some(&ens, leader, "via-leader", 20).await;
        acks.extend(create_some(&ens, observer, "via-observer", 20).await);
        // The observer reads them (after sync), as does everyone.
        verify_all(&ens, &acks).await;

        // One participant down (the leader): the other two elect, never the observer.
        let epoch = ens.status(leader).await.unwrap().epoch;
        ens.kill9(leader);
        let (second, _) = ens.wait_new_leader(leader, epoch, RESUME).await;
        assert_ne!(second, observer, "an observer never leads");
        ens.wait_stable(SETTLE).await;
        acks.extend(create_some(&ens, observer, "one-down", 10).await);
        verify_all(&ens, &acks).await;

        // Two participants down: one participant plus the observer is no quorum.
        ens.kill9(second);
        let remaining = ens
            .ids()
            .into_iter()
            .find(|id| *id != observer && !ens.member(*id).down)
            .unwrap();
        let lost = eventually(sync_limit() + Duration::from_secs(5), || {
            let ens = &ens;
            async move {
                let st = ens.statuses().await;
                st.len() == 2 && st.values().all(|s| s.role == "looking")
            }
        })
        .await;
        assert!(
            lost,
            "with 1 of 3 participants and the observer up, nobody should lead or follow: {:#?}",
            ens.statuses().await
        );
        for via in [observer, remaining] {
            assert!(
                !write_commits(
                    &ens,
                    via,
                    &format!("{LOAD_ROOT}/no-quorum-{via}"),
                    Duration::from_secs(3)
                )
                .await,
                "a write through {via} committed without a quorum of participants"
            );
        }
        let st = ens.statuses().await;
        assert!(
            st.values().all(|s| !s.is_leader()),
            "nobody leads without a quorum: {st:#?}"
        );

        // One participant back: a quorum again; everything converges.
        ens.restart(second);
        ens.wait_stable(SETTLE).await;
        acks.extend(create_some(&ens, observer, "quorum-back", 10).await);
        ens.restart(leader);
        ens.wait_stable(SETTLE).await;
        verify_all(&ens, &acks).await;
    });
    ens.assert_no_fatal_log();
}

/// Weighted quorums (`weight.N`): server 1 weighs 3 of 5, so it is a quorum alone.
#[test]
fn weighted_quorum_smoke() {
    let mut ens = Ensemble::builder(3)
        .cfg("weight.1=3")
        .cfg("weight.2=1")
        .cfg("weight.3=1")
        .start();
    run(async {
        let leader = ens.wait_stable(START).await;
        ensure_node(ens.member(leader).client(), LOAD_ROOT, SETTLE).await;
        let mut acks = Vec::new();
        for id in ens.ids() {
            acks.extend(create_some(&ens, id, &format!("w-via{id}"), 10).await);
        }
        verify_all(&ens, &acks).await;
        // Servers 2 and 3 together weigh 2 of 5; server 1 alone, 3: still a quorum.
        ens.kill9(2);
        ens.kill9(3);
        let alone = ens.wait_stable(SETTLE).await;
        assert_eq!(alone, 1);
        acks.extend(create_some(&ens, 1, "w-alone", 10).await);
        ens.restart(2);
        ens.restart(3);
        ens.wait_stable(SETTLE).await;
        verify_all(&ens, &acks).await;
    });
    ens.assert_no_fatal_log();
}

/// Hierarchical quorums (`group.N` + weights): groups {1,2} and {3}; server 1 weighs 2
/// of its group's 3, so {1,3} wins both groups and is a quorum without server 2.
#[test]
fn hierarchical_quorum_smoke() {
    let mut ens = Ensemble::builder(3)
        .cfg("group.1=1:2")
        .cfg("group.2=3")
        .cfg("weight.1=2")
        .cfg("weight.2=1")
        .cfg("weight.3=1")
        .start();
    run(async {
        let leader = ens.wait_stable(START).await;
        ensure_node(ens.member(leader).client(), LOAD_ROOT, SETTLE).await;
        let mut acks = Vec::new();
        for id in ens.ids() {
            acks.extend(create_some(&ens, id, &format!("h-via{id}"), 10).await);
        }
        verify_all(&ens, &acks).await;
        ens.kill9(2);
        ens.wait_stable(SETTLE).await;
        acks.extend(create_some(&ens, 3, "h-without2", 10).await);
        ens.restart(2);
        ens.wait_stable(SETTLE).await;
        verify_all(&ens, &acks).await;
    });
    ens.assert_no_fatal_log();
}
