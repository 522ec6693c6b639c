//! The core as ZAB's shell, driven by hand: peer messages go in as a leader would send
//! them, and what the core made of them (its active config, the committed config file)
//! is checked. No sockets: the peer transport drops what the core sends.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::{Duration, Instant};

use paddock_proto::{ErrorCode, ReconfigRequest};

use super::forward::AppMsg;
use super::reconfig::next_config;
use super::{Core, CoreConfig, CoreMsg};
use crate::config::DynamicConfig;
use crate::tree::acl::Credentials;
use crate::tree::{CONFIG_NODE, DataTree};
use crate::zab::{Membership, Message, Notification, PeerState, Role, Timing, Vote, make_zxid};

/// The config text of `ids`, all voters on loopback, at `version`.
fn config_text(ids: &[u64], version: u64) -> String {
    let mut text = String::new();
    for id in ids {
        text.push_str(&format!(
            "server.{id}=127.0.0.{id}:2888:3888:participant;127.0.0.{id}:2181\n"
        ));
    }
    text.push_str(&format!("version={version:x}\n"));
    text
}

fn config(ids: &[u64], version: u64) -> DynamicConfig {
    DynamicConfig::parse(&config_text(ids, version), "test").unwrap()
}

/// A core and its internal channel: what its disk reports goes back in, as the server's
/// event loop does it.
struct Shell {
    core: Core,
    internal: tokio::sync::mpsc::UnboundedReceiver<CoreMsg>,
}

impl Deref for Shell {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

impl DerefMut for Shell {
    fn deref_mut(&mut self) -> &mut Core {
        &mut self.core
    }
}

impl Shell {
    /// Hands `msg` to the core, then what the disk reported; while the core waits for
    /// its epochs to be durable, or for a TRUNC or SNAP to be done, waits for the report
    /// (20 s at most).
    fn handle(&mut self, msg: CoreMsg) -> bool {
        let alive = self.core.step(msg);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.internal.try_recv() {
                Ok(reported) => {
                    self.core.step(reported);
                }
                Err(_) if self.core.awaiting_epochs || self.core.zab().awaits_log_reset() => {
                    assert!(
                        Instant::now() < deadline,
                        "the epochs or a TRUNC or SNAP were not reported durable within 20 s"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return alive,
            }
        }
    }
}

/// Server 3 of `ensemble`, recovered from the empty data dir `dir`.
fn open(dir: &Path, ensemble: DynamicConfig) -> Shell {
    open_with_clock(dir, ensemble, Box::new(super::SystemClock::new()))
}

fn open_with_clock(dir: &Path, ensemble: DynamicConfig, clock: Box<dyn super::Clock>) -> Shell {
    let cfg = CoreConfig {
        server_id: 3,
        tick_ms: 100,
        min_session_timeout_ms: 400,
        max_session_timeout_ms: 40_000,
        snap_count: 100_000,
        snap_dir: dir.join("snap"),
        log_dir: dir.join("log"),
        snap_retain_count: 3,
        autopurge: false,
        extended_types: false,
        reconfig_enabled: true,
        standalone_enabled: false,
        read_only_mode: false,
        super_digest: None,
        sasl: Default::default(),
        container_check_ms: 1000,
        fsync_warning_ms: 1000,
        membership: ensemble.membership(),
        timing: Timing::from_ticks(100, 20, 10),
        distributed: true,
    };
    let (internal_tx, internal) = tokio::sync::mpsc::unbounded_channel();
    let core = Core::open(cfg, internal_tx, Box::new(super::NoPeers), clock).unwrap();
    Shell { core, internal }
}

/// The committed config file of `version` in `snap_dir`, once the disk writer has written
/// it (20 s at most).
fn committed_config(snap_dir: &Path, version: u64) -> DynamicConfig {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match DynamicConfig::read_committed(snap_dir) {
            Some(c) if c.version == version => return c,
            other => assert!(
                Instant::now() < deadline,
                "no committed config of version {version:#x} within 20 s: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn from_peer(core: &mut Shell, from: u64, msg: Message) {
    assert!(core.handle(CoreMsg::Peer { from, msg }));
}

fn notification(leader: u64, state: PeerState, config: Membership) -> Message {
    Message::Vote(Notification {
        vote: Vote {
            leader,
            zxid: 0,
            epoch: 0,
        },
        round: 1,
        state,
        config,
        stands: true,
    })
}

/// Server 1 leads {1,2,3} and server 2 follows it: server 3 follows server 1.
fn follow_server_1(core: &mut Shell, old: &DynamicConfig) {
    from_peer(
        core,
        1,
        notification(1, PeerState::Leading, old.membership()),
    );
    from_peer(
        core,
        2,
        notification(1, PeerState::Following, old.membership()),
    );
    assert_eq!(
        core.role(),
        Role::Follower {
            leader: 1,
            synced: false
        }
    );
    from_peer(core, 1, Message::LeaderInfo { epoch: 1 });
}

/// A learner synced by snapshot holds the leader's config from the sync's first
/// message: ZAB's config carries the members' addresses, so the server's view of its
/// ensemble and its committed config file follow at once, before the snapshot that holds
/// the config's text arrives. (When the text had to come from the tree, a learner kept
/// its old config until the next reconfig and, as a leader, refused every reconfig with
/// BadVersion.)
#[test]
fn a_snapshot_sync_takes_the_leaders_config_with_its_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let old = config(&[1, 2, 3], 0x1_0000_0000);
    let new_version = 0x1_0000_0007;
    let new = config(&[1, 2, 3, 4], new_version);
    let mut core = open(dir.path(), old.clone());
    follow_server_1(&mut core, &old);

    from_peer(
        &mut core,
        1,
        Message::Config {
            zxid: 0,
            config: new.membership(),
        },
    );
    assert_eq!(core.ensemble().render(), new.render(), "with its addresses");
    let persisted = committed_config(&dir.path().join("snap"), new.version);
    assert_eq!(
        persisted.render(),
        new.render(),
        "the committed config file"
    );

    let mut tree = DataTree::new();
    tree.seed_config(new.render().as_bytes());
    let zxid = make_zxid(1, 9);
    let payload = tree.snapshot_view().serialize();
    from_peer(
        &mut core,
        1,
        Message::Snap {
            zxid,
            payload: payload.clone(),
        },
    );
    from_peer(&mut core, 1, Message::Commit { zxid });
    from_peer(
        &mut core,
        1,
        Message::NewLeader {
            zxid: make_zxid(1, 0),
        },
    );
    from_peer(&mut core, 1, Message::UpToDate);
    assert_eq!(
        core.role(),
        Role::Follower {
            leader: 1,
            synced: true
        }
    );
    assert_eq!(core.ensemble().render(), new.render());
    // The disk writer installed the leader's snapshot before NEWLEADER was ACKed.
    assert_eq!(
        crate::storage::load_newest_valid(dir.path().join("snap")).unwrap(),
        Some((zxid as u64, payload))
    );
}

/// A config learned from an election notification is active here at once with its
/// members' addresses (it used to name none, and the server had to ask its peers for
/// the text): persisted as the committed config, and the next reconfig is planned from
/// it rather than from the older one this server started with.
#[test]
fn a_config_learned_from_a_vote_comes_with_its_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let old = config(&[1, 2, 3], 0x1_0000_0000);
    let new_version = 0x2_0000_0003;
    let new = config(&[1, 2, 4, 5], new_version);
    let mut core = open(dir.path(), old.clone());
    from_peer(
        &mut core,
        1,
        notification(4, PeerState::Following, new.membership()),
    );
    assert_eq!(core.zab().membership().version, new_version as i64);
    assert_eq!(core.ensemble().render(), new.render());
    let persisted = committed_config(&dir.path().join("snap"), new.version);
    assert_eq!(persisted.render(), new.render());
    // Not a voter of the new config: it may only learn.
    assert!(!core.zab().membership().is_member(3));
    // (Planned as the leader would: this server follows, so only the config is computed.)
    let leave = ReconfigRequest {
        joining_servers: String::new(),
        leaving_servers: "2".into(),
        new_members: String::new(),
        cur_config_id: -1,
    };
    let planned = next_config(&core.ensemble(), &leave, false).expect("planned");
    assert_eq!(
        planned.servers.keys().copied().collect::<Vec<_>>(),
        [1, 4, 5],
        "from the newest config"
    );
}

/// A crash lost the dynamic config file of a reconfig whose txn recovery applied (the
/// file is written behind the log): the server starts from the config its tree holds,
/// not from the older file, and writes the file again. It used to start from the file
/// and count the votes of the older membership (simulator seed 15614 of the reconfig
/// scenario).
#[test]
fn a_newer_committed_config_in_the_tree_wins_over_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let old = config(&[1, 2, 3], 0x1_0000_0000);
    let new = config(&[1, 2, 3, 4], 0x1_0000_0007);
    let snap = dir.path().join("snap");
    std::fs::create_dir_all(&snap).unwrap();
    let mut tree = DataTree::new();
    tree.seed_config(new.render().as_bytes());
    let payload = tree.snapshot_view().serialize();
    crate::storage::write_snapshot(&snap, 0x1_0000_0007, &payload).unwrap();
    let core = open(dir.path(), old);
    assert_eq!(core.zab().membership().version, new.version as i64);
    assert_eq!(core.ensemble().render(), new.render());
    assert_eq!(committed_config(&snap, new.version).render(), new.render());
}

// ---- reconfig checks, in ZooKeeper's order ----

/// Server 3 alone in the config {3}: it elects itself and leads.
fn leader_alone(dir: &Path) -> Shell {
    let mut core = open(dir, config(&[3], 0x1_0000_0000));
    for _ in 0..200 {
        if core.role() == Role::Leader {
            return core;
        }
        assert!(core.handle(CoreMsg::Tick));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("server 3 did not lead itself: {:?}", core.role());
}

fn request(joining: &str, leaving: &str, new_members: &str, from: i64) -> ReconfigRequest {
    ReconfigRequest {
        joining_servers: joining.into(),
        leaving_servers: leaving.into(),
        new_members: new_members.into(),
        cur_config_id: from,
    }
}

fn anonymous() -> Credentials {
    Credentials::default()
}

fn super_user() -> Credentials {
    Credentials {
        ids: vec![],
        is_super: true,
    }
}

const OBSERVER_4: &str = "server.4=127.0.0.4:2888:3888:observer;127.0.0.4:2181";
const PARTICIPANT_4: &str = "server.4=127.0.0.4:2888:3888:participant;127.0.0.4:2181";
const MALFORMED: &str = "server.7=no-ports";

/// Each pair of failing checks (and more) against a leader of {3}: the first failing
/// check in ZooKeeper's order gives the code, for a client without auth and for the
/// super user alike; ACLs come last. (e2e/compat/test_kazoo_reconfig.py sends the same
/// pairs to Apache ZooKeeper and to paddock-server.)
#[test]
fn reconfig_checks_come_in_zookeepers_order() {
    let dir = tempfile::tempdir().unwrap();
    let core = leader_alone(dir.path());
    let v = core.ensemble().version as i64;
    let stale = v + 1;
    let fake4_and_malformed = format!("{PARTICIPANT_4},{MALFORMED}");
    let observer_only = "server.3=127.0.0.3:2888:3888:observer;127.0.0.3:2181";
    use ErrorCode::*;
    // (what, request, code without auth, code for the super user: None = planned)
    type Case = (&'static str, ReconfigRequest, ErrorCode, Option<ErrorCode>);
    // Refused for both with the same code.
    let both = |what, r, code| -> Case { (what, r, code, Some(code)) };
    // Passes every check: NoAuth without auth, planned for the super user.
    let valid = |what, r| -> Case { (what, r, NoAuth, None) };
    let with_4 = format!("{PARTICIPANT_4},{}", config_text(&[3], 0));
    let unknown_key = format!("{},foo=bar", config_text(&[3], 0));
    let cases: Vec<Case> = vec![
        valid("valid", request(OBSERVER_4, "", "", v)),
        valid("valid, any version", request(OBSERVER_4, "", "", -1)),
        both(
            "stale, malformed",
            request(MALFORMED, "", "", stale),
            BadVersion,
        ),
        both(
            "stale, no quorum",
            request(PARTICIPANT_4, "", "", stale),
            BadVersion,
        ),
        both(
            "stale, not a number",
            request("", "three", "", stale),
            BadVersion,
        ),
        both(
            "malformed, no quorum",
            request(&fake4_and_malformed, "", "", v),
            BadArguments,
        ),
        both(
            "no quorum",
            request(PARTICIPANT_4, "", "", v),
            NewConfigNoQuorum,
        ),
        both(
            "no quorum (new members)",
            request("", "", &with_4, v),
            NewConfigNoQuorum,
        ),
        both("every voter leaves", request("", "3", "", v), BadArguments),
        both(
            "a joiner without '='",
            request("server.7", "", "", v),
            BadArguments,
        ),
        both(
            "no client address",
            request("server.7=h:1:2", "", "", v),
            BadArguments,
        ),
        both(
            "port no number",
            request("server.7=h:abc:2;h:29", "", "", v),
            BadArguments,
        ),
        both(
            "leaving id no number",
            request("", "three", "", v),
            MarshallingError,
        ),
        both(
            "joiner id no number",
            request("server.x=h:1:2;h:29", "", "", v),
            MarshallingError,
        ),
        valid(
            "joiner key without 'server.'",
            request("4=h:1:2:observer;h:29", "", "", v),
        ),
        both(
            "new members, no participant",
            request("", "", observer_only, v),
            MarshallingError,
        ),
        both(
            "new members, unknown key",
            request("", "", &unknown_key, v),
            BadArguments,
        ),
        both(
            "new member id no number",
            request("", "", "server.x=h:1:2;h:3", v),
            MarshallingError,
        ),
    ];
    let mut wrong = Vec::new();
    for (what, r, anon, sup) in &cases {
        let got = core.plan_reconfig(&anonymous(), r).err();
        if got != Some(*anon) {
            wrong.push(format!("{what} (no auth): {got:?}, expected {anon:?}"));
        }
        let got = core.plan_reconfig(&super_user(), r).err();
        if got != *sup {
            wrong.push(format!("{what} (super): {got:?}, expected {sup:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Reconfig disabled comes before everything.
#[test]
fn reconfig_disabled_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = leader_alone(dir.path());
    core.cfg.reconfig_enabled = false;
    for r in [
        request(OBSERVER_4, "", "", -1),
        request(MALFORMED, "", "", 12345),
        request("", "three", "", -1),
    ] {
        for creds in [anonymous(), super_user()] {
            assert_eq!(
                core.plan_reconfig(&creds, &r).err(),
                Some(ErrorCode::ReconfigDisabled)
            );
        }
    }
}

/// While a reconfig is in flight, the next one is ReconfigInProgress whatever else is
/// wrong with it (version, strings, ACL).
#[test]
fn a_reconfig_in_flight_comes_before_version_strings_and_acl() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = leader_alone(dir.path());
    let v = core.ensemble().version as i64;
    let next = core
        .plan_reconfig(&super_user(), &request(OBSERVER_4, "", "", v))
        .expect("planned");
    core.propose_reconfig(1, 1, next, None).expect("proposed");
    assert!(core.zab().reconfig_in_flight());
    for r in [
        request(OBSERVER_4, "", "", v),
        request(OBSERVER_4, "", "", v + 1),
        request(MALFORMED, "", "", v),
        request("", "three", "", -1),
        request(PARTICIPANT_4, "", "", -1),
    ] {
        for creds in [anonymous(), super_user()] {
            assert_eq!(
                core.plan_reconfig(&creds, &r).err(),
                Some(ErrorCode::ReconfigInProgress),
                "{r:?}"
            );
        }
    }
}

/// The permission asked for is WRITE on /zookeeper/config (ADMIN and the others are not
/// enough), seen through changes proposed but not applied yet (a pending setACL counts).
#[test]
fn reconfig_needs_write_on_the_config_node() {
    use crate::request::pending::NodeView;
    use paddock_proto::{Acl, Id, perms};
    let dir = tempfile::tempdir().unwrap();
    let mut core = leader_alone(dir.path());
    let v = core.ensemble().version as i64;
    let op_id = crate::tree::acl::digest_id("op:secret");
    let op = Credentials {
        ids: vec![Id {
            scheme: "digest".into(),
            id: op_id.clone(),
        }],
        is_super: false,
    };
    let r = request(OBSERVER_4, "", "", v);
    assert_eq!(core.plan_reconfig(&op, &r).err(), Some(ErrorCode::NoAuth));
    let base = core
        .pending
        .view(&core.tree, CONFIG_NODE)
        .expect("config node");
    let with_perms = |perms: i32| {
        let acl = vec![Acl {
            perms,
            id: Id {
                scheme: "digest".into(),
                id: op_id.clone(),
            },
        }];
        let view = NodeView {
            acl: std::sync::Arc::from(acl),
            ..base.clone()
        };
        [(std::sync::Arc::from(CONFIG_NODE), Some(view))]
    };
    core.pending.record(1_000_001, with_perms(perms::WRITE));
    assert!(core.plan_reconfig(&op, &r).is_ok());
    core.pending
        .record(1_000_002, with_perms(perms::ALL & !perms::WRITE));
    assert_eq!(core.plan_reconfig(&op, &r).err(), Some(ErrorCode::NoAuth));
    // The super user passes whatever the ACL says.
    assert!(core.plan_reconfig(&super_user(), &r).is_ok());
}

/// `standaloneEnabled=true` (ZooKeeper's default) keeps at least two voters; false, one.
#[test]
fn standalone_enabled_keeps_two_voters() {
    let current = config(&[1, 2, 3], 5);
    let leave_two = request("", "2,3", "", -1);
    assert_eq!(
        next_config(&current, &leave_two, true).err(),
        Some(ErrorCode::BadArguments)
    );
    let next = next_config(&current, &leave_two, false).expect("one voter");
    assert_eq!(next.participants().collect::<Vec<_>>(), [1]);
    // New members: one participant with an observer is refused as ZooKeeper's parser
    // does (a runtime exception: MarshallingError) when standaloneEnabled is true.
    let one_and_observer = format!("server.1=127.0.0.1:2888:3888;127.0.0.1:2181,{}", OBSERVER_4);
    let r = request("", "", &one_and_observer, -1);
    assert_eq!(
        next_config(&current, &r, true).err(),
        Some(ErrorCode::MarshallingError)
    );
    assert!(next_config(&current, &r, false).is_ok());
}

/// A joiner may not reuse a member's quorum, election or client address, except
/// wildcard and loopback ones (servers sharing a host), as in ZooKeeper.
#[test]
fn a_joiner_may_not_take_a_members_address() {
    let text = "server.1=10.0.0.1:2888:3888;10.0.0.1:2181\n\
                server.2=10.0.0.2:2888:3888;10.0.0.2:2181\n\
                server.3=127.0.0.1:2888:3888;0.0.0.0:2181\n";
    let current = DynamicConfig::parse(text, "test").unwrap();
    for joining in [
        "server.7=10.0.0.1:2888:4000;10.0.0.7:2181",
        "server.7=10.0.0.7:4000:3888|10.0.0.2:3888:4001;10.0.0.7:2181",
        "server.7=10.0.0.7:2888:3888;10.0.0.2:2181",
    ] {
        assert_eq!(
            next_config(&current, &request(joining, "", "", -1), false).err(),
            Some(ErrorCode::BadArguments),
            "{joining}"
        );
    }
    for joining in [
        // Loopback and wildcard addresses are never counted as taken.
        "server.7=127.0.0.1:2888:3888;0.0.0.0:2181",
        // A joiner replacing member 1 may keep its addresses.
        "server.1=10.0.0.1:2888:3888:observer;10.0.0.1:2181",
        // Member 2 leaves in the same request, and 7 takes its addresses.
    ] {
        assert!(
            next_config(&current, &request(joining, "", "", -1), false).is_ok(),
            "{joining}"
        );
    }
    let takeover = request("server.7=10.0.0.2:2888:3888;10.0.0.2:2181", "2", "", -1);
    assert!(next_config(&current, &takeover, false).is_ok());
}

/// Sends what a follower forwards: `request` of `session`.
fn forwarded(core: &mut Shell, session: i64, cxid: i32, request: paddock_proto::Request) {
    let msg = AppMsg::Forward {
        session,
        cxid,
        ids: vec![],
        is_super: false,
        request,
    };
    from_peer(core, 1, Message::App(msg.encode()));
}

fn ephemeral(path: &str) -> paddock_proto::Request {
    paddock_proto::Request::Create(paddock_proto::CreateRequest {
        path: path.into(),
        data: b"v".to_vec().into(),
        acl: vec![paddock_proto::Acl {
            perms: 31,
            id: paddock_proto::Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }],
        flags: 1,
    })
}

/// Ticks (handing the disk's reports back) until `path` exists, for 20 s at most.
fn wait_for_node(core: &mut Shell, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while core.tree().get(path).is_none() {
        assert!(
            Instant::now() < deadline,
            "{path} was not created within 20 s"
        );
        assert!(core.handle(CoreMsg::Tick));
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A follower may forward a request of a session that is gone here (closed or never
/// known): the leader refuses it, as ZooKeeper's PrepRequestProcessor does, so no
/// ephemeral outlives its session. Writes are applied in order, so once a later create
/// of a live session is there, the refused one would have been too.
#[test]
fn a_forwarded_request_of_a_session_gone_here_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = leader_alone(dir.path());
    let live = 0x0100_0000_0000_0001;
    let session = AppMsg::CreateSession {
        session: live,
        timeout_ms: 30_000,
    };
    from_peer(&mut core, 1, Message::App(session.encode()));
    // A follower forwards a session's requests once the session is committed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !core.tree().sessions().contains_key(&live) {
        assert!(
            Instant::now() < deadline,
            "the session was not created within 20 s"
        );
        assert!(core.handle(CoreMsg::Tick));
        std::thread::sleep(Duration::from_millis(1));
    }
    forwarded(&mut core, live, 1, ephemeral("/live"));
    wait_for_node(&mut core, "/live");

    forwarded(&mut core, 0x0100_0000_0000_0099, 1, ephemeral("/orphan"));
    forwarded(&mut core, live, 2, ephemeral("/after"));
    wait_for_node(&mut core, "/after");
    assert!(
        core.tree().get("/orphan").is_none(),
        "an ephemeral was created for a session the leader does not hold"
    );
}

/// A client's message that reaches the core after its session's deadline passed (the
/// server could not run: stopped, starved) must not revive the session, even though no
/// tick came in between: the session is expired first, as its deadline says.
#[test]
fn a_request_after_the_session_deadline_does_not_revive_it() {
    use crate::sim::SimClock;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicU64::new(1_000));
    // Time moves only when the test moves it.
    let clock = Box::new(SimClock::new(now.clone()));
    let mut core = open_with_clock(dir.path(), config(&[3], 0x1_0000_0000), clock);
    let (tx, mut replies) = tokio::sync::mpsc::unbounded_channel();
    let deadline = Instant::now() + Duration::from_secs(20);
    while core.role() != Role::Leader {
        assert!(Instant::now() < deadline, "server 3 did not lead itself");
        now.fetch_add(10, Ordering::Relaxed);
        assert!(core.handle(CoreMsg::Tick));
        std::thread::sleep(Duration::from_millis(1));
    }
    let connect = CoreMsg::Connect {
        conn: 7,
        addr: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        req: paddock_proto::ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            time_out: 4_000,
            session_id: 0,
            passwd: vec![0; 16].into(),
            read_only: Some(false),
        },
        tx,
        tls_ids: vec![],
    };
    assert!(core.handle(connect));
    // Ticks without moving the clock hand the disk's reports back and expire nothing.
    let session = loop {
        assert!(Instant::now() < deadline, "the session was not created");
        if let Ok(super::Outgoing::Connected(r)) = replies.try_recv() {
            break r.session_id;
        }
        assert!(core.handle(CoreMsg::Tick));
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(core.sessions.is_tracked(session));

    now.fetch_add(10_000, Ordering::Relaxed);
    let ping = CoreMsg::Request {
        conn: 7,
        xid: -2,
        req: paddock_proto::Request::Ping,
        received: Instant::now(),
    };
    assert!(core.handle(ping));
    assert!(
        core.closing.contains(&session),
        "the session past its deadline was not expired before its ping"
    );
    assert!(!core.sessions.is_tracked(session));
}

// ---- recovery ----

/// The log opens while the snapshot loads, for the zxid in the newest snapshot's file
/// name. When that snapshot fails its checks and an older one loads, the log is opened
/// again for the older one: the segments after it are checked as a start from it needs,
/// and a damaged record cuts the log there, as it would have without the newer snapshot.
#[test]
fn a_corrupt_newest_snapshot_falls_back_to_an_older_one_and_the_log_after_it() {
    use crate::storage::{self, TxnLog, TxnLogOptions, state::Epochs};

    let dir = tempfile::tempdir().unwrap();
    let (snap, log_dir) = (dir.path().join("snap"), dir.path().join("log"));
    let record = |counter| super::recovery::tests::session_record(make_zxid(1, counter));
    // Two segments: zxids 1-5, then 6-10; all committed.
    std::fs::create_dir_all(&log_dir).unwrap();
    std::fs::create_dir_all(&snap).unwrap();
    let db_id = storage::state::database_id(&log_dir).unwrap();
    let mut log = TxnLog::open(&log_dir, TxnLogOptions::new(db_id)).unwrap();
    for counter in 1..=10 {
        if counter == 6 {
            log.roll().unwrap();
        }
        let (zxid, payload) = record(counter).unwrap();
        log.append(zxid, &payload).unwrap();
    }
    log.sync().unwrap();
    log.close().unwrap();
    storage::state::persist_commit_index(&snap, make_zxid(1, 10) as u64).unwrap();
    // A good snapshot at zxid 3, and a newer one at 8 that fails its checksum.
    let at_3 = super::recovery::rebuild(
        DataTree::new(),
        0,
        (1..=3).map(record),
        make_zxid(1, 3),
        Epochs::default(),
        None,
    )
    .unwrap()
    .tree;
    storage::write_snapshot(
        &snap,
        make_zxid(1, 3) as u64,
        &at_3.snapshot_view().serialize_compact(),
    )
    .unwrap();
    let newest = storage::write_snapshot(&snap, make_zxid(1, 8) as u64, b"tree at 8").unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&newest, bytes).unwrap();

    // Record 5, the last of the first segment, is damaged: only a log opened for the
    // snapshot at 3 reads that segment through and finds it, and cuts the log there.
    let first_segment = log_dir.join(format!("log.{:x}", make_zxid(1, 1)));
    let mut bytes = std::fs::read(&first_segment).unwrap();
    let last_written = bytes.iter().rposition(|b| *b != 0).unwrap();
    bytes[last_written] ^= 0xff;
    std::fs::write(&first_segment, bytes).unwrap();

    let core = open(dir.path(), config(&[1, 2, 3], 0x1_0000_0000));
    assert_eq!(core.tree.last_zxid(), make_zxid(1, 4));
    assert_eq!(core.tree.sessions().len(), 4);
    assert!(!log_dir.join(format!("log.{:x}", make_zxid(1, 6))).exists());
}
