//! Scale down, then up again on a kept data dir (issue 12): a voter removed by reconfig
//! and stopped comes back on the data dir it kept, with `--join` or without. Whatever
//! that data dir says (the config that removed it, or, when it was stopped before the
//! removal, an older one that still lists it as a voter), it must sync as a non-voting
//! joiner, wait to be added, and once a reconfig adds it back follow the leader and
//! serve writes.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::ensemble::{call, close_session, ensure_node, session_on};
use common::membership::{
    Change, Cluster, ConfigText, read_config, reconfig_when_synced, transfer,
};
use common::{eventually, run};
use paddock_proto::{ExistsRequest, Request};

const START: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(20);

/// One ensemble at a time: their timings must not depend on each other on a small machine.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes server 3 through `via` and waits until `members` report the new config.
async fn remove_3(c: &Cluster, via: u64, members: &[u64], from: u64) -> ConfigText {
    let (cfg, _) = reconfig_when_synced(c.client(via), &Change::leave(3, from), SETTLE).await;
    assert!(!cfg.servers.contains_key(&3), "{cfg:?}");
    c.wait_config(members, cfg.version, &cfg.roles(), SETTLE)
        .await;
    cfg
}

/// Restarts server 3 with `--join` on its kept data dir: it must come up as a joiner of
/// `current`; then adds it back and checks it follows, serves a write, and holds the
/// others' writes.
async fn rejoin_3(c: &mut Cluster, current: &ConfigText, what: &str) -> ConfigText {
    c.set_join(3, &[1, 2]);
    c.restart(3);
    add_back_3(c, current, what).await
}

/// Server 3 runs as a joiner of `current`: adds it back through server 1, checks it
/// follows, serves a write, and agrees with the others.
async fn add_back_3(c: &mut Cluster, current: &ConfigText, what: &str) -> ConfigText {
    let joiner = c.wait_role(3, "joining", SETTLE).await;
    assert!(!joiner.is_member(), "{what}: {joiner:?}");
    assert_eq!(
        joiner.version, current.version,
        "{what}: server 3 took the ensemble's config over its data dir's"
    );
    let line = c.server_line(3, "participant");
    let (cfg, _) =
        reconfig_when_synced(c.client(1), &Change::join(line, current.version), SETTLE).await;
    let mut members: Vec<u64> = current.servers.keys().copied().collect();
    members.push(3);
    members.sort();
    assert_eq!(
        cfg.servers.keys().copied().collect::<Vec<_>>(),
        members,
        "{what}"
    );
    c.wait_config(&members, cfg.version, &cfg.roles(), SETTLE)
        .await;
    c.wait_role(3, "follower", SETTLE).await;
    let path = format!("/written-through-3-{}", cfg.version);
    ensure_node(c.client(3), &path, SETTLE).await;
    let zxid = c.wait_converged(&members, SETTLE).await;
    eprintln!(
        "{what}: server 3 rejoined as a voter (config {:#x}), wrote {path}, all at {zxid:#x}",
        cfg.version
    );
    cfg
}

#[test]
fn a_removed_voter_rejoins_on_its_kept_data_dir() {
    let _turn = turn();
    run(async {
        let mut c = Cluster::builder(3).start();
        c.wait_leader(&[1, 2, 3], START).await;
        ensure_node(c.client(1), "/before", SETTLE).await;
        let v0 = read_config(c.client(1)).await;

        // Removed, then stopped: its data dir holds the config that removed it.
        let v1 = remove_3(&c, 1, &[1, 2, 3], v0.version).await;
        c.kill9(3);
        ensure_node(c.client(1), "/while-3-is-away", SETTLE).await;
        let v2 = rejoin_3(&mut c, &v1, "removed, then stopped").await;

        // Stopped, then removed: its data dir still lists it as a voter.
        c.kill9(3);
        c.wait_leader(&[1, 2], SETTLE).await;
        let v3 = remove_3(&c, 1, &[1, 2], v2.version).await;
        ensure_node(c.client(2), "/while-3-is-away-again", SETTLE).await;
        let v4 = rejoin_3(&mut c, &v3, "stopped, then removed").await;

        // The same without --join: it learns the config from the others' votes.
        c.kill9(3);
        c.wait_leader(&[1, 2], SETTLE).await;
        let v5 = remove_3(&c, 2, &[1, 2], v4.version).await;
        c.clear_join(3);
        c.restart(3);
        add_back_3(&mut c, &v5, "stopped, then removed, no --join").await;

        let mut conn = session_on(c.client(3), SETTLE).await;
        for (xid, path) in ["/before", "/while-3-is-away", "/while-3-is-away-again"]
            .into_iter()
            .enumerate()
        {
            let exists = Request::Exists(ExistsRequest {
                path: path.into(),
                watch: false,
            });
            let reply = call(&mut conn, xid as i32 + 1, &exists)
                .await
                .expect("exists answered");
            assert_eq!(reply.err(), 0, "server 3 holds {path}");
        }
        close_session(&mut conn).await;
        c.assert_no_fatal_log();
    });
}

/// Without `--join`: server 3 stops while a member it never heard of (server 4) is added
/// and comes to lead, and server 3 is removed. Restarted on its data dir, whose config
/// still lists it as a voter of {1,2,3}, it learns the ensemble's config from the
/// others' election notifications, which carry no addresses; it must get server 4's
/// address from a peer to reach the leader, sync as a joiner, and be added back.
#[test]
fn a_removed_voter_finds_a_leader_it_never_knew() {
    let _turn = turn();
    run(async {
        let mut c = Cluster::builder(3).start();
        c.wait_leader(&[1, 2, 3], START).await;
        ensure_node(c.client(1), "/before", SETTLE).await;
        c.kill9(3);
        c.wait_leader(&[1, 2], SETTLE).await;
        let v0 = read_config(c.client(1)).await;

        c.start_joiner(4, "observer", &[1, 2]);
        c.wait_role(4, "joining", START).await;
        let line = c.server_line(4, "participant");
        let (v1, _) =
            reconfig_when_synced(c.client(1), &Change::join(line, v0.version), SETTLE).await;
        c.wait_role(4, "follower", SETTLE).await;
        let v2 = remove_3(&c, 1, &[1, 2, 4], v1.version).await;
        let leader = c.wait_leader(&[1, 2, 4], SETTLE).await;
        if leader != 4 {
            let (code, answer) = transfer(&c, leader, Some(4)).await;
            assert_eq!(code, 200, "transfer to server 4: {answer}");
        }
        assert!(
            eventually(SETTLE, || async {
                c.wait_leader(&[1, 2, 4], SETTLE).await == 4
            })
            .await,
            "server 4 leads"
        );
        ensure_node(c.client(4), "/while-3-is-away", SETTLE).await;

        c.clear_join(3);
        c.restart(3);
        add_back_3(&mut c, &v2, "restarted on a config without the leader").await;
        c.assert_no_fatal_log();
    });
}
