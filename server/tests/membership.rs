//! Dynamic membership with real processes (issue 5): servers join with `--join` and are
//! added, removed (the leader too) and restarted through the `reconfig` opcode, and
//! leadership moves with `POST /leadership/transfer`, all under a write load; afterwards
//! every acknowledged write is on every remaining member and all agree on the zxid.
//! Refused reconfigs answer with ZooKeeper's error codes.
//!
//! The write pauses of leadership transfers and of leader removals are printed (run with
//! `--nocapture` to see them) and only bounded by syncLimit: a pause that long means a
//! server waited for a timeout instead of being told of the handoff. The tests take
//! turns (one ensemble at a time) so that their timings do not depend on each other on
//! a small machine.

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::ensemble::{LOAD_ROOT, Load, SYNC_LIMIT, TICK_MS, close_session, ensure_node};
use common::membership::{
    Change, Cluster, ConfigText, RESUME, admin_session, load_on, progress, read_config, reconfig,
    reconfig_when_synced, summary, transfer, verify_acks, verify_all,
};
use common::{RawConn, run};
use paddock_proto::ErrorCode;

const START: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(20);
const STOP_LOAD: Duration = Duration::from_secs(30);
/// A handoff (transfer, leader removal) that pauses writes this long waited for a
/// timeout instead: syncLimit is when servers give up on a silent leader.
const HANDOFF_BOUND: Duration = Duration::from_millis(SYNC_LIMIT * TICK_MS);

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

fn code(e: ErrorCode) -> i32 {
    e.code()
}

/// Adds server `id` as a participant: starts it as a joiner, waits until it syncs as a
/// non-member, reconfigs it in (fromConfig = the current version, through server `via`),
/// and confirms the committed config on every member, the new one included.
async fn grow(c: &mut Cluster, id: u64, via: u64, members: &[u64], version: u64) -> ConfigText {
    let t = Instant::now();
    c.start_joiner(id, "observer", members);
    let joiner = c.wait_role(id, "joining", START).await;
    assert!(!joiner.is_member(), "a joiner is no member yet: {joiner:?}");
    assert_eq!(
        joiner.version, version,
        "the joiner learned the current config"
    );
    let line = c.server_line(id, "participant");
    let (cfg, stat) =
        reconfig_when_synced(c.client(via), &Change::join(line.clone(), version), SETTLE).await;
    assert!(cfg.version > version, "{cfg:?} after {version:#x}");
    assert_eq!(
        stat.mzxid as u64, cfg.version,
        "the config node's mzxid is its version"
    );
    assert_eq!(
        format!("server.{id}={}", cfg.servers[&id]),
        line,
        "the new line as given"
    );
    let mut expected: Vec<u64> = members.to_vec();
    expected.push(id);
    expected.sort();
    assert_eq!(cfg.servers.keys().copied().collect::<Vec<_>>(), expected);
    c.wait_config(&expected, cfg.version, &cfg.roles(), SETTLE)
        .await;
    c.wait_role(id, "follower", SETTLE).await;
    eprintln!(
        "grow: server {id} joined and was added (config {:#x}) in {:?}",
        cfg.version,
        t.elapsed()
    );
    cfg
}

/// Removes server `id` through server `via` and confirms the committed config on the
/// remaining members and on the removed server, which keeps running as a non-member.
async fn shrink(c: &Cluster, id: u64, via: u64, members: &[u64], version: u64) -> ConfigText {
    let t = Instant::now();
    let (cfg, stat) =
        reconfig_when_synced(c.client(via), &Change::leave(id, version), SETTLE).await;
    assert!(cfg.version > version);
    assert_eq!(stat.mzxid as u64, cfg.version);
    assert!(!cfg.servers.contains_key(&id), "{cfg:?}");
    let remaining: Vec<u64> = members.iter().copied().filter(|m| *m != id).collect();
    assert_eq!(cfg.servers.keys().copied().collect::<Vec<_>>(), remaining);
    let mut everyone = remaining.clone();
    everyone.push(id);
    c.wait_config(&everyone, cfg.version, &cfg.roles(), SETTLE)
        .await;
    let gone = c.wait_role(id, "joining", SETTLE).await;
    assert!(!gone.is_member(), "removed server {id}: {gone:?}");
    eprintln!(
        "shrink: server {id} removed (config {:#x}) in {:?}",
        cfg.version,
        t.elapsed()
    );
    cfg
}

/// 3 → 4 → 5 → 4 → 3 voters, one member per reconfig, writes going on throughout.
#[test]
fn grow_and_shrink_one_at_a_time_under_load() {
    let _turn = turn();
    run(async {
        let t0 = Instant::now();
        let mut c = Cluster::builder(3).start();
        let leader = c.wait_leader(&[1, 2, 3], START).await;
        ensure_node(c.client(1), LOAD_ROOT, SETTLE).await;
        let initial = read_config(c.client(1)).await;
        assert_eq!(
            initial.servers.keys().copied().collect::<Vec<_>>(),
            [1, 2, 3]
        );
        for id in 1..=3 {
            assert_eq!(
                format!("server.{id}={}", initial.servers[&id]),
                c.server_line(id, "participant")
            );
        }
        c.wait_config(&[1, 2, 3], initial.version, &initial.roles(), SETTLE)
            .await;
        let load = load_on(&c, &[1, 2, 3]);
        progress(&load, "before any change").await;

        let via = if leader == 1 { 2 } else { 1 };
        let v4 = grow(&mut c, 4, via, &[1, 2, 3], initial.version).await;
        progress(&load, "after adding server 4").await;
        let v5 = grow(&mut c, 5, leader, &[1, 2, 3, 4], v4.version).await;
        progress(&load, "after adding server 5").await;
        c.wait_leader(&[1, 2, 3, 4, 5], SETTLE).await;

        // Shrink: server 5, then a founding member that does not lead (the load uses it).
        let v6 = shrink(&c, 5, 4, &[1, 2, 3, 4, 5], v5.version).await;
        c.kill9(5);
        progress(&load, "after removing server 5").await;
        let leader = c.wait_leader(&[1, 2, 3, 4], SETTLE).await;
        let victim = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
        let v7 = shrink(&c, victim, 4, &[1, 2, 3, 4], v6.version).await;
        c.kill9(victim);
        progress(&load, &format!("after removing server {victim}")).await;

        let acks = load.stop(STOP_LOAD).await;
        let remaining: Vec<u64> = v7.servers.keys().copied().collect();
        assert_eq!(remaining.len(), 3);
        assert_eq!(c.running(), remaining);
        c.wait_config(&remaining, v7.version, &v7.roles(), SETTLE)
            .await;
        let zxid = verify_all(&c, &remaining, &acks).await;
        assert_eq!(read_config(c.client(remaining[0])).await, v7);
        eprintln!(
            "grow/shrink: {} acknowledged writes, all on servers {remaining:?} at zxid {zxid:#x}; {:?} total",
            acks.len(),
            t0.elapsed()
        );
        c.assert_no_fatal_log();
    });
}

/// Removes the current leader of `members` through a super session on the leader itself
/// or on a follower: the reconfig is answered with the new config, a new leader takes
/// over, and the old one runs on as a non-member. Returns the new config and, under a
/// load, its write pause (reconfig sent → first write acknowledged in the new leader's
/// epoch; without a load, the time until the new leader is stable).
async fn remove_leader(
    c: &Cluster,
    load: Option<&Load>,
    members: &[u64],
    via_leader: bool,
) -> (ConfigText, Duration) {
    let leader = c.wait_leader(members, SETTLE).await;
    let via = if via_leader {
        leader
    } else {
        *members.iter().find(|id| **id != leader).unwrap()
    };
    let before = read_config(c.client(via)).await;
    let old_epoch = c.status(leader).await.expect("leader status").epoch;
    let mut admin = admin_session(c.client(via), true).await;
    let t = Instant::now();
    let (cfg, stat) = reconfig(&mut admin, 1, &Change::leave(leader, before.version))
        .await
        .unwrap_or_else(|e| panic!("removing leader {leader} through {via} refused with {e}"));
    let answered = t.elapsed();
    assert!(!cfg.servers.contains_key(&leader), "{cfg:?}");
    assert!(cfg.version > before.version);
    assert_eq!(stat.mzxid as u64, cfg.version);
    let remaining: Vec<u64> = members.iter().copied().filter(|m| *m != leader).collect();
    assert_eq!(cfg.servers.keys().copied().collect::<Vec<_>>(), remaining);
    // Like ZooKeeper, a server whose leader changes disconnects its clients.
    assert!(
        admin.closed_within(SETTLE).await,
        "server {via} keeps its client connections after its leader changed"
    );

    let new_leader = c.wait_leader(&remaining, SETTLE).await;
    let pause = match load {
        Some(load) => load.wait_resumed(t, old_epoch, RESUME).await,
        None => t.elapsed(),
    };
    let through = if via_leader {
        "the leader"
    } else {
        "a follower"
    };
    match load {
        Some(_) => {
            eprintln!(
                "leader removal of {leader} through {through}: reconfig answered in \
                 {answered:?}; write pause (reconfig sent -> first write acknowledged under \
                 server {new_leader}) {pause:?}"
            );
            assert!(
                pause < HANDOFF_BOUND,
                "the removal cost a timeout ({pause:?}), not a handoff"
            );
        }
        None => eprintln!(
            "leader removal of {leader} through {through}: reconfig answered in {answered:?}; \
             server {new_leader} leads {pause:?} after the request"
        ),
    }
    let mut everyone = remaining.clone();
    everyone.push(leader);
    c.wait_config(&everyone, cfg.version, &cfg.roles(), SETTLE)
        .await;
    let old = c.wait_role(leader, "joining", SETTLE).await;
    assert!(!old.is_member(), "{old:?}");
    assert!(c.status(new_leader).await.unwrap().epoch > old_epoch);
    (cfg, pause)
}

/// The leader leaves the ensemble twice under a write load: first asked through a
/// client of a follower (the request is forwarded), then through a client of the
/// (new) leader itself. Both clients get the new config as the answer; no acknowledged
/// write is lost.
#[test]
fn remove_the_leader_under_load() {
    let _turn = turn();
    run(async {
        let t0 = Instant::now();
        let c = Cluster::builder(4).start();
        c.wait_leader(&[1, 2, 3, 4], START).await;
        ensure_node(c.client(1), LOAD_ROOT, SETTLE).await;
        let load = load_on(&c, &[1, 2, 3, 4]);
        progress(&load, "before the removals").await;

        let (cfg, p1) = remove_leader(&c, Some(&load), &[1, 2, 3, 4], false).await;
        progress(&load, "after the first removal").await;
        let members: Vec<u64> = cfg.servers.keys().copied().collect();
        let (cfg, p2) = remove_leader(&c, Some(&load), &members, true).await;
        progress(&load, "after the second removal").await;
        eprintln!("leader removal write pause: {}", summary(vec![p1, p2]));

        let acks = load.stop(STOP_LOAD).await;
        let remaining: Vec<u64> = cfg.servers.keys().copied().collect();
        let zxid = verify_all(&c, &remaining, &acks).await;
        // The removed servers still follow the ensemble's commits.
        for id in [1, 2, 3, 4] {
            if !remaining.contains(&id) {
                verify_acks(c.client(id), &acks).await;
            }
        }
        eprintln!(
            "leader removals: {} acknowledged writes, all on {remaining:?} at zxid {zxid:#x}; {:?} total",
            acks.len(),
            t0.elapsed()
        );
        c.assert_no_fatal_log();
    });
}

/// Without other writes in flight, the reconfig txn is the last one the leader commits
/// before it hands off: a client of a follower that asked for the leader's removal still
/// gets its answer (the followers learn the commit before the handoff), and so does a
/// client of the leader.
#[test]
fn leader_removal_is_answered_through_followers_and_the_leader() {
    let _turn = turn();
    run(async {
        let c = Cluster::builder(4).start();
        c.wait_leader(&[1, 2, 3, 4], START).await;
        ensure_node(c.client(1), LOAD_ROOT, SETTLE).await;
        let (cfg, _) = remove_leader(&c, None, &[1, 2, 3, 4], false).await;
        let members: Vec<u64> = cfg.servers.keys().copied().collect();
        let (cfg, _) = remove_leader(&c, None, &members, true).await;
        let remaining: Vec<u64> = cfg.servers.keys().copied().collect();
        verify_all(&c, &remaining, &[]).await;
        c.assert_no_fatal_log();
    });
}

/// Every refusal answers with ZooKeeper's error code and changes nothing.
#[test]
fn refused_reconfigs_answer_with_zookeepers_errors() {
    let _turn = turn();
    run(async {
        let t0 = Instant::now();
        let c = Cluster::builder(3).start();
        let leader = c.wait_leader(&[1, 2, 3], START).await;
        let v0 = read_config(c.client(1)).await;
        let follower = if leader == 1 { 2 } else { 1 };
        let other = [1, 2, 3]
            .into_iter()
            .find(|id| *id != leader && *id != follower)
            .unwrap();

        // Through a follower (forwarded to the leader) and on the leader itself.
        for via in [follower, leader] {
            bad_reconfigs_are_refused_via(&c, via, leader, other, &v0).await;
        }
        c.wait_config(&[1, 2, 3], v0.version, &v0.roles(), SETTLE)
            .await;

        let mut admin = admin_session(c.client(follower), true).await;
        let v2 = stale_version_is_refused_and_the_removed_server_rejoins(
            &c, &mut admin, follower, other, &v0,
        )
        .await;
        let v3 = empty_change_commits_a_new_version(&c, &mut admin, &v2).await;
        second_reconfig_in_flight_is_refused(&mut admin, other, &v3).await;
        close_session(&mut admin).await;

        let off = reconfig_disabled_is_refused(&c, other).await;
        eprintln!("refusals: {:?} total", t0.elapsed());
        c.assert_no_fatal_log();
        off.assert_no_fatal_log();
    });
}

/// The line of participant `100 + k` on `host`, a server that does not run.
fn fake_participant(host: std::net::Ipv4Addr, k: u64) -> String {
    format!(
        "server.{}={host}:{}:{}:participant;{host}:{}",
        100 + k,
        1 + k,
        11 + k,
        21 + k
    )
}

/// Through server `via`: no super user, no quorum (incremental or not), a stale version, bad lines.
async fn bad_reconfigs_are_refused_via(
    c: &Cluster,
    via: u64,
    leader: u64,
    other: u64,
    v0: &ConfigText,
) {
    let host = c.node(1).ip;
    let fake = |k: u64| fake_participant(host, k);
    let mut plain = admin_session(c.client(via), false).await;
    assert_eq!(
        reconfig(&mut plain, 1, &Change::leave(other, v0.version))
            .await
            .unwrap_err(),
        code(ErrorCode::NoAuth),
        "a client without the super user's credentials"
    );
    close_session(&mut plain).await;

    let mut admin = admin_session(c.client(via), true).await;
    // Three participants that do not run: 3 synced voters of 6 are no quorum.
    let joining = Change {
        joining: (0..3).map(fake).collect(),
        from: v0.version as i64,
        ..Change::default()
    };
    assert_eq!(
        reconfig(&mut admin, 2, &joining).await.unwrap_err(),
        code(ErrorCode::NewConfigNoQuorum)
    );
    // Non-incremental: one running member and two that do not run.
    let members = Change {
        new_members: vec![c.server_line(leader, "participant"), fake(0), fake(1)],
        from: v0.version as i64,
        ..Change::default()
    };
    assert_eq!(
        reconfig(&mut admin, 3, &members).await.unwrap_err(),
        code(ErrorCode::NewConfigNoQuorum)
    );
    // A version that is not the current one.
    assert_eq!(
        reconfig(&mut admin, 4, &Change::leave(other, v0.version + 1))
            .await
            .unwrap_err(),
        code(ErrorCode::BadVersion)
    );
    // Malformed lines; a change that changes nothing.
    let bad = Change {
        joining: vec!["server.7=no-ports".into()],
        from: -1,
        ..Change::default()
    };
    assert_eq!(
        reconfig(&mut admin, 5, &bad).await.unwrap_err(),
        code(ErrorCode::BadArguments)
    );
    close_session(&mut admin).await;
}

/// Removing `other` makes v0 stale for the next change; `other` then joins again (v2).
async fn stale_version_is_refused_and_the_removed_server_rejoins(
    c: &Cluster,
    admin: &mut RawConn,
    follower: u64,
    other: u64,
    v0: &ConfigText,
) -> ConfigText {
    // A real change makes the version it was based on stale.
    let (v1, _) = reconfig(admin, 10, &Change::leave(other, v0.version))
        .await
        .expect("remove a follower");
    let back = Change::join(c.server_line(other, "participant"), v0.version);
    assert_eq!(
        reconfig(admin, 11, &back).await.unwrap_err(),
        code(ErrorCode::BadVersion),
        "fromConfig of the config before the last change"
    );
    // The removed server still syncs as a non-member, so it can come back.
    c.wait_role(other, "joining", SETTLE).await;
    let (v2, _) = reconfig_when_synced(
        c.client(follower),
        &Change::join(c.server_line(other, "participant"), v1.version),
        SETTLE,
    )
    .await;
    assert_eq!(v2.servers, v0.servers, "the same members again");
    assert!(v2.version > v1.version);
    c.wait_config(&[1, 2, 3], v2.version, &v2.roles(), SETTLE)
        .await;
    c.wait_role(other, "follower", SETTLE).await;
    v2
}

/// Not a refusal: a change that changes nothing commits the same members as a new version.
async fn empty_change_commits_a_new_version(
    c: &Cluster,
    admin: &mut RawConn,
    v2: &ConfigText,
) -> ConfigText {
    // Not a refusal: a change that changes nothing commits the same members as a new
    // version, as in ZooKeeper.
    let (v3, stat) = reconfig(admin, 12, &Change::leave(99, v2.version))
        .await
        .expect("leaving a server that is no member");
    assert_eq!(v3.servers, v2.servers);
    assert!(v3.version > v2.version);
    assert_eq!(stat.mzxid as u64, v3.version);
    c.wait_config(&[1, 2, 3], v3.version, &v3.roles(), SETTLE)
        .await;
    v3
}

/// Two reconfigs in one write: the first commits, the second is refused as in progress.
async fn second_reconfig_in_flight_is_refused(admin: &mut RawConn, other: u64, v3: &ConfigText) {
    // Two reconfigs in one write: the second arrives while the first is in flight.
    let first = Change::leave(other, v3.version);
    let second = Change {
        from: -1,
        ..Change::leave(other, 0)
    };
    let mut bytes = first.request().encode(20);
    bytes = paddock_proto::frame::frame(&bytes);
    bytes.extend(paddock_proto::frame::frame(&second.request().encode(21)));
    admin.send_raw(&bytes).await.expect("send two reconfigs");
    let r1 = admin.read_reply().await.expect("first answered");
    let r2 = admin.read_reply().await.expect("second answered");
    assert_eq!(
        (r1.header.xid, r1.err()),
        (20, 0),
        "the first reconfig commits"
    );
    assert_eq!(
        (r2.header.xid, r2.err()),
        (21, code(ErrorCode::ReconfigInProgress)),
        "the second one arrived while the first was in flight"
    );
}

/// reconfigEnabled=false, on an ensemble of one voter: refused; returns that ensemble.
async fn reconfig_disabled_is_refused(c: &Cluster, other: u64) -> Cluster {
    let off = Cluster::builder(1).cfg("reconfigEnabled=false").start();
    off.wait_leader(&[1], START).await;
    let v = read_config(off.client(1)).await;
    let mut admin = admin_session(off.client(1), true).await;
    assert_eq!(
        reconfig(
            &mut admin,
            1,
            &Change::join(c.server_line(other, "participant"), v.version)
        )
        .await
        .unwrap_err(),
        code(ErrorCode::ReconfigDisabled)
    );
    close_session(&mut admin).await;
    off
}

/// Leadership moves A → B → A … on request under a write load; the write pause of each
/// handoff is printed. Requests no server can satisfy answer 409.
#[test]
fn leadership_transfer_back_and_forth() {
    let _turn = turn();
    run(async {
        let t0 = Instant::now();
        let mut c = Cluster::builder(3).start();
        let a = c.wait_leader(&[1, 2, 3], START).await;
        let b = [1, 2, 3].into_iter().find(|id| *id != a).unwrap();
        let third = [1, 2, 3]
            .into_iter()
            .find(|id| *id != a && *id != b)
            .unwrap();
        ensure_node(c.client(1), LOAD_ROOT, SETTLE).await;
        let load = load_on(&c, &[1, 2, 3]);
        progress(&load, "before the first transfer").await;

        let mut pauses = Vec::new();
        let mut from = a;
        for round in 0..6 {
            let to = if from == a { b } else { a };
            let epoch = c.status(from).await.expect("leader status").epoch;
            let t = Instant::now();
            let (code, body) = transfer(&c, from, Some(to)).await;
            assert_eq!((code, body["leader"].as_u64()), (200, Some(to)), "{body}");
            c.wait_statuses(&[1, 2, 3], SETTLE, &format!("server {to} leading"), |st| {
                common::membership::stable_leader(st) == Some(to) && st[&to].epoch > epoch
            })
            .await;
            let pause = load.wait_resumed(t, epoch, RESUME).await;
            eprintln!("transfer {round}: {from} -> {to}: write pause {pause:?}");
            assert!(
                pause < HANDOFF_BOUND,
                "transfer {from} -> {to} cost a timeout ({pause:?}), not a handoff"
            );
            pauses.push(pause);
            from = to;
        }
        eprintln!("leadership transfer write pause: {}", summary(pauses));
        let leader = from;

        // Not a member; not the leader; a joiner that syncs but does not vote; a server
        // that is down.
        let (code, body) = transfer(&c, leader, Some(42)).await;
        assert_eq!(code, 409, "{body}");
        assert!(body["error"].is_string(), "{body}");
        let follower = if leader == a { b } else { a };
        let (code, body) = transfer(&c, follower, None).await;
        assert_eq!(code, 409, "a follower cannot hand off: {body}");
        c.start_joiner(4, "observer", &[1, 2, 3]);
        c.wait_role(4, "joining", START).await;
        let (code, body) = transfer(&c, leader, Some(4)).await;
        assert_eq!(code, 409, "a non-voting joiner: {body}");
        c.kill9(third);
        c.wait_statuses(&[leader], SETTLE, &format!("server {third} gone"), |st| {
            st[&leader]
                .followers
                .as_ref()
                .is_some_and(|f| !f.iter().any(|(id, synced)| *id == third && *synced))
        })
        .await;
        let (code, body) = transfer(&c, leader, Some(third)).await;
        assert_eq!(code, 409, "a server that is down: {body}");
        progress(&load, "after the refusals").await;
        assert_eq!(
            c.status(leader).await.unwrap().role,
            "leader",
            "refusals move nothing"
        );

        let acks = load.stop(STOP_LOAD).await;
        c.restart(third);
        verify_all(&c, &[1, 2, 3], &acks).await;

        // An ensemble of one voter has nobody to hand off to.
        let one = Cluster::builder(1).start();
        one.wait_leader(&[1], START).await;
        let (code, body) = transfer(&one, 1, None).await;
        assert_eq!(code, 409, "{body}");
        let (code, body) = transfer(&one, 1, Some(1)).await;
        assert_eq!(code, 409, "{body}");
        eprintln!(
            "transfers: {} acknowledged writes; {:?} total",
            acks.len(),
            t0.elapsed()
        );
        c.assert_no_fatal_log();
        one.assert_no_fatal_log();
    });
}

/// After reconfigs, restarted servers trust the committed config in their data dir over
/// a zoo.cfg that still lists the old membership — also one whose zoo.cfg does not list
/// it at all ("My id 4 not in the peer list") — and the ensemble keeps working.
#[test]
fn restart_uses_the_committed_config_from_the_data_dir() {
    let _turn = turn();
    run(async {
        let t0 = Instant::now();
        let mut c = Cluster::builder(3).start();
        let leader = c.wait_leader(&[1, 2, 3], START).await;
        ensure_node(c.client(1), LOAD_ROOT, SETTLE).await;
        let v0 = read_config(c.client(1)).await;
        let load = load_on(&c, &[1, 2, 3]);
        progress(&load, "before the changes").await;

        // {1,2,3} → {1,2,3,4} → without a founding follower `gone`.
        let v1 = grow(&mut c, 4, leader, &[1, 2, 3], v0.version).await;
        let gone = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
        let v2 = shrink(&c, gone, leader, &[1, 2, 3, 4], v1.version).await;
        c.kill9(gone);
        let members: Vec<u64> = v2.servers.keys().copied().collect();
        progress(&load, "after the changes").await;

        // A founding member whose zoo.cfg still says {1,2,3}.
        let founder = members
            .iter()
            .copied()
            .find(|id| *id != leader && *id != 4)
            .unwrap();
        c.kill9(founder);
        c.restart(founder);
        c.wait_config(&[founder], v2.version, &v2.roles(), SETTLE)
            .await;
        c.wait_role(founder, "follower", SETTLE).await;
        progress(&load, &format!("after restarting server {founder}")).await;

        // Server 4 (still started with --join), restarted with a zoo.cfg of the old
        // membership that does not list it.
        c.kill9(4);
        c.write_cfg(4, &[1, 2, 3], None);
        c.restart(4);
        c.wait_config(&[4], v2.version, &v2.roles(), SETTLE).await;
        c.wait_role(4, "follower", SETTLE).await;
        progress(&load, "after restarting server 4").await;

        // The leader goes down: the two others elect one of them with the committed
        // config (with zoo.cfg's {1,2,3} neither would count server 4's vote), and the
        // old leader comes back into it.
        let epoch = c.status(leader).await.unwrap().epoch;
        c.kill9(leader);
        let others: Vec<u64> = members.iter().copied().filter(|m| *m != leader).collect();
        let new_leader = c.wait_leader(&others, SETTLE).await;
        assert!(c.status(new_leader).await.unwrap().epoch > epoch);
        progress(&load, "after the leader's crash").await;
        c.restart(leader);
        c.wait_leader(&members, SETTLE).await;
        c.wait_config(&members, v2.version, &v2.roles(), SETTLE)
            .await;

        let acks = load.stop(STOP_LOAD).await;
        let zxid = verify_all(&c, &members, &acks).await;
        for id in &members {
            let files = common::membership::dynamic_files(&c.node(*id).data_dir());
            assert_eq!(
                files,
                [format!("zoo.cfg.dynamic.{:x}", v2.version)],
                "server {id} keeps the committed config"
            );
        }
        eprintln!(
            "restarts: {} acknowledged writes, all on {members:?} at zxid {zxid:#x}; {:?} total",
            acks.len(),
            t0.elapsed()
        );
        c.assert_no_fatal_log();
    });
}

/// The harness's parsing of config texts.
#[test]
fn config_text_parsing() {
    let text = "server.1=127.0.0.9:1:2:participant;127.0.0.9:3\n\
                server.4=127.0.0.8:4:5:observer;127.0.0.8:6\nversion=10000000c";
    let cfg = ConfigText::parse(text);
    assert_eq!(cfg.version, 0x1_0000_000c);
    assert_eq!(
        cfg.roles(),
        BTreeMap::from([(1, "participant".to_string()), (4, "observer".to_string())])
    );
}

/// ZooKeeper's "My id 4 not in the peer list": a server added by reconfig restarts
/// without `--join`, with a zoo.cfg of the membership from before it joined. Its data
/// dir holds the committed config that lists it, which it must trust (DESIGN §5).
#[test]
fn restart_without_join_of_a_server_that_zoo_cfg_does_not_list() {
    let _turn = turn();
    run(async {
        let mut c = Cluster::builder(3).start();
        let leader = c.wait_leader(&[1, 2, 3], START).await;
        let v0 = read_config(c.client(1)).await;
        let v1 = grow(&mut c, 4, leader, &[1, 2, 3], v0.version).await;
        c.kill9(4);
        c.clear_join(4);
        c.write_cfg(4, &[1, 2, 3], None);
        c.restart(4);
        c.wait_config(&[4], v1.version, &v1.roles(), SETTLE).await;
        c.wait_role(4, "follower", SETTLE).await;
        c.wait_leader(&[1, 2, 3, 4], SETTLE).await;
        c.assert_no_fatal_log();
    });
}
