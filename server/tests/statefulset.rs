//! A StatefulSet's pods, with real processes: every server starts with the same
//! arguments, as one pod template gives them (`--myid-from-hostname`, `--peer-address
//! <pod DNS name>`, `--join <client Service>`, `--client-address`/`--admin-address <pod
//! IP>`, the super digest in `PADDOCK_SUPER_DIGEST`) and the same zoo.cfg (the initial
//! members, `;0.0.0.0:<clientPort>`), with its own HOSTNAME, address and /etc/hosts
//! (see `common::membership::Cluster::pods`).
//!
//! * the initial members bootstrap from zoo.cfg while the client Service answers nobody;
//! * a new pod (not in zoo.cfg) comes up as a non-voting joiner through `--join` and a
//!   `reconfig` (zookeeper-client) makes it a voter;
//! * a member whose volume was wiped rejoins through `--join` with the committed config;
//! * two members restarted at once start from their own state without waiting on
//!   `--join`, which nobody can answer without a quorum;
//! * the admin HTTP asks for the super user's credentials, the probes do not.
//!
//! The tests take turns so that their timings do not depend on each other.

mod common;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::ensemble::{LOAD_ROOT, ensure_node};
use common::membership::{
    Cluster, SUPER_AUTH, load_on, pod_name, progress, read_config, verify_all,
};
use common::{admin_http, run, zk};

const START: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(20);
const STOP_LOAD: Duration = Duration::from_secs(30);
/// `--join-timeout` of every pod: short, so the bootstrap does not wait long.
const JOIN_TIMEOUT: &str = "2s";
const BOOTSTRAP_LOG: &str = "starting from it (the ensemble's bootstrap)";
const JOINED_LOG: &str = "learned the ensemble's config";

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts pods 1..=3 from the shared zoo.cfg while the client Service has no endpoint
/// (its name does not resolve), waits for a leader, then routes the Service to
/// `service` (a ready pod). The leader.
async fn bootstrap(c: &mut Cluster, service: u64) -> u64 {
    let all = [1, 2, 3];
    for id in all {
        c.write_pod_cfg(id, &all);
    }
    for id in all {
        c.node_mut(id).launch_unready();
    }
    let leader = c.wait_leader(&all, START).await;
    for id in all {
        let log = c.node(id).log();
        assert!(
            log.contains("no --join target answered yet") && log.contains(BOOTSTRAP_LOG),
            "server {id} did not bootstrap from zoo.cfg after --join went unanswered\n{log}"
        );
        assert!(
            !log.contains(JOINED_LOG),
            "server {id} learned a config\n{log}"
        );
    }
    // Each found its id in its host name.
    let st = c.statuses(&all).await;
    for id in all {
        assert_eq!(
            st[&id].myid,
            id,
            "{} has myid {}",
            pod_name(id),
            st[&id].myid
        );
    }
    c.route_client_service(service);
    leader
}

/// (a) + (b): the initial members bootstrap; a fourth pod with the same arguments joins
/// as a non-voting member, and a reconfig through zookeeper-client makes it a voter.
#[test]
fn pods_bootstrap_from_zoo_cfg_and_a_new_pod_joins_then_is_added() {
    let _turn = turn();
    run(async {
        let mut c = Cluster::pods(3, JOIN_TIMEOUT);
        let leader = bootstrap(&mut c, 1).await;
        ensure_node(c.client(leader), LOAD_ROOT, SETTLE).await;
        let load = load_on(&c, &[1, 2, 3]);
        progress(&load, "after the bootstrap").await;

        // Scale up: pod 4 (ordinal 3) is not in the ConfigMap's zoo.cfg.
        c.add_pod(4, &[1, 2, 3]);
        c.node_mut(4).launch();
        let st = c.wait_role(4, "joining", SETTLE).await;
        assert_eq!(st.myid, 4);
        assert!(!st.members.contains_key(&4), "{st:?}");
        let log = c.node(4).log();
        assert!(log.contains(JOINED_LOG), "pod 4 did not join\n{log}");
        assert!(!log.contains(BOOTSTRAP_LOG), "pod 4 bootstrapped\n{log}");
        progress(&load, "with a joiner").await;

        // The operator's step: reconfig add with fromConfig = the current version.
        let node = c.node(4);
        let line = format!(
            "server.4={}:{}:{}:participant;{}:{}",
            node.host(),
            node.quorum_port,
            node.election_port,
            node.ip,
            node.client_port
        );
        let version = add_voter(c.client(1), &line).await;
        let config = read_config(c.client(2)).await;
        assert_eq!(config.version, version);
        assert_eq!(
            config.roles().get(&4).map(String::as_str),
            Some("participant"),
            "{config:?}"
        );
        let all = [1, 2, 3, 4];
        c.wait_statuses(&all, SETTLE, "four voters", |st| {
            st.values()
                .all(|s| s.version == version && s.members.len() == 4)
                && (st[&4].role == "follower" || st[&4].role == "leader")
        })
        .await;
        c.wait_leader(&all, SETTLE).await;
        progress(&load, "with four voters").await;
        let acks = load.stop(STOP_LOAD).await;
        verify_all(&c, &all, &acks).await;
        c.assert_no_fatal_log();
    });
}

/// `reconfig` adding `line` through zookeeper-client as the super user, retried
/// (bounded) while the ensemble answers NewConfigNoQuorum; the new config version.
async fn add_voter(addr: SocketAddr, line: &str) -> u64 {
    let client = zk(&addr.to_string()).await;
    client
        .auth("digest", SUPER_AUTH.as_bytes())
        .await
        .expect("super auth");
    let deadline = Instant::now() + SETTLE;
    loop {
        let (data, _) = client.get_config().await.expect("get config");
        let text = String::from_utf8(data).expect("utf-8 config");
        let from = common::membership::ConfigText::parse(&text).version;
        let update = zookeeper_client::EnsembleUpdate::Incremental {
            joinings: vec![line].into_iter(),
            leavings: Vec::new().into_iter(),
        };
        match client.update_ensemble(update, Some(from as i64)).await {
            Ok((data, _)) => {
                let text = String::from_utf8(data).expect("utf-8 config");
                return common::membership::ConfigText::parse(&text).version;
            }
            // NewConfigNoQuorum (-13): the joiner is still syncing.
            Err(zookeeper_client::Error::UnexpectedErrorCode(-13)) => {
                assert!(
                    Instant::now() < deadline,
                    "adding {line} found no synced quorum within {SETTLE:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("reconfig adding {line}: {e}"),
        }
    }
}

/// (c): a member restarted on an empty volume (same arguments) learns the committed
/// config through --join instead of bootstrapping from zoo.cfg, and syncs every write.
#[test]
fn a_member_on_a_wiped_volume_rejoins_through_join() {
    let _turn = turn();
    run(async {
        let mut c = Cluster::pods(3, JOIN_TIMEOUT);
        let all = [1, 2, 3];
        let leader = bootstrap(&mut c, 1).await;
        ensure_node(c.client(leader), LOAD_ROOT, SETTLE).await;
        let wiped = all
            .into_iter()
            .find(|id| *id != 1 && *id != leader)
            .unwrap();
        let load = load_on(&c, &all);
        progress(&load, "before the wipe").await;
        c.kill9(wiped);
        c.wipe_data(wiped);
        progress(&load, &format!("with server {wiped} down")).await;
        c.restart(wiped);
        let st = c.wait_role(wiped, "follower", SETTLE).await;
        assert_eq!(st.myid, wiped);
        let log = c.node(wiped).log();
        let second = log.rsplit("===== run ").next().unwrap_or_default();
        assert!(
            second.contains(JOINED_LOG) && !second.contains(BOOTSTRAP_LOG),
            "server {wiped} did not rejoin through --join\n{second}"
        );
        progress(&load, "after the rejoin").await;
        let acks = load.stop(STOP_LOAD).await;
        verify_all(&c, &all, &acks).await;
        c.assert_no_fatal_log();
    });
}

/// (c'): two of three members restarted at once (a user deleted the leader's pod while a
/// roll restarted a follower) in an ensemble never reconfigured, so no data dir holds a
/// committed config. The survivor behind the client Service serves nobody without a
/// quorum; the restarted members must start from what they have at once instead of
/// asking --join until --join-timeout as new pods do (issue 14: a 10 s write pause).
#[test]
fn two_members_restarted_at_once_do_not_wait_for_join() {
    let _turn = turn();
    run(async {
        let mut c = Cluster::pods(3, JOIN_TIMEOUT);
        let all = [1, 2, 3];
        let leader = bootstrap(&mut c, 1).await;
        ensure_node(c.client(leader), LOAD_ROOT, SETTLE).await;
        let survivor = all.into_iter().find(|id| *id != leader).unwrap();
        let follower = all
            .into_iter()
            .find(|id| *id != leader && *id != survivor)
            .unwrap();
        c.route_client_service(survivor);
        let load = load_on(&c, &all);
        progress(&load, "before the restarts").await;
        let epoch = c.status(leader).await.expect("leader status").epoch;
        // Long enough that waiting it out cannot pass for a quick start.
        for id in [leader, follower] {
            c.set_join_timeout(id, "30s");
        }
        let t = Instant::now();
        c.kill9(leader);
        c.kill9(follower);
        c.restart(leader);
        c.restart(follower);
        let pause = load.wait_resumed(t, epoch, Duration::from_secs(40)).await;
        eprintln!(
            "leader {leader} and follower {follower} restarted at once: write pause {pause:?}"
        );
        assert!(
            pause < Duration::from_secs(5),
            "writes paused {pause:?} with two of three members restarted"
        );
        for id in [leader, follower] {
            let log = c.node(id).log();
            let second = log.rsplit("===== run ").next().unwrap_or_default();
            assert!(
                second.contains("every --join target refused") && !second.contains(BOOTSTRAP_LOG),
                "server {id} did not start from its own state\n{second}"
            );
        }
        c.wait_leader(&all, SETTLE).await;
        progress(&load, "after both came back").await;
        let acks = load.stop(STOP_LOAD).await;
        verify_all(&c, &all, &acks).await;
        c.assert_no_fatal_log();
    });
}

/// (d): with PADDOCK_SUPER_DIGEST set, the admin HTTP answers 401 (with a Basic
/// challenge) without or with wrong credentials, 200 with the super user's; the probes
/// and metrics stay open.
#[test]
fn admin_http_asks_for_the_super_users_credentials() {
    let _turn = turn();
    run(async {
        let mut c = Cluster::pods(3, JOIN_TIMEOUT);
        let leader = bootstrap(&mut c, 1).await;
        let admin = c.node(leader).admin();
        let basic = |user_password: &str| {
            use base64::Engine as _;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(user_password)
            )
        };

        let (code, head) = get(admin, "GET", "/status", None).await;
        assert_eq!(code, 401, "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: basic realm=\"paddock\""),
            "{head}"
        );
        let (code, _) = get(admin, "GET", "/status", Some(&basic("super:wrong"))).await;
        assert_eq!(code, 401);
        let (code, _) = get(admin, "GET", "/commands/mntr", None).await;
        assert_eq!(code, 401);
        let (code, _) = get(admin, "POST", "/leadership/transfer", None).await;
        assert_eq!(code, 401);
        let (code, head) = get(admin, "GET", "/status", Some(&basic(SUPER_AUTH))).await;
        assert_eq!(code, 200, "{head}");
        for open in ["/readyz", "/livez", "/metrics"] {
            let (code, head) = get(admin, "GET", open, None).await;
            assert_eq!(code, 200, "{open}: {head}");
        }
        // Nothing logged the digest.
        let digest = common::membership::SUPER_DIGEST;
        let hash = digest.split_once(':').unwrap().1;
        for id in [1, 2, 3] {
            assert!(
                !c.node(id).log().contains(hash),
                "server {id} logged the digest"
            );
        }
        c.assert_no_fatal_log();
    });
}

/// One HTTP request (bounded), optionally with an Authorization header; (status code,
/// response head).
async fn get(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let (code, head, _) = admin_http(addr, method, path, &auth, "", Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("{method} {path}: no answer within 5 s"));
    (code, head)
}
