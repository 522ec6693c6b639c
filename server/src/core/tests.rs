//! The core as ZAB's shell, driven by hand: peer messages go in as a leader would send
//! them, and what the core made of them (its active config, the committed config file)
//! is checked. No sockets: the peer transport drops what the core sends.

use std::path::Path;

use paddock_proto::{ErrorCode, ReconfigRequest};

use super::forward::AppMsg;
use super::{Core, CoreConfig, CoreMsg};
use crate::config::DynamicConfig;
use crate::net::peer::PeerNet;
use crate::tree::DataTree;
use crate::tree::acl::Credentials;
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

/// Server 3 of `ensemble`, recovered from the empty data dir `dir`.
fn open(dir: &Path, ensemble: DynamicConfig) -> Core {
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
        super_digest: None,
        container_check_ms: 1000,
        fsync_warning_ms: 1000,
        membership: ensemble.membership(),
        timing: Timing::from_ticks(100, 20, 10),
        distributed: true,
        ensemble,
    };
    let (internal_tx, _internal_rx) = tokio::sync::mpsc::unbounded_channel();
    Core::open(cfg, internal_tx, PeerNet::none()).unwrap()
}

fn from_peer(core: &mut Core, from: u64, msg: Message) {
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
    })
}

/// Server 1 leads {1,2,3} and server 2 follows it: server 3 follows server 1.
fn follow_server_1(core: &mut Core, old: &DynamicConfig) {
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

/// A learner synced by snapshot adopts the snapshot's committed config: ZAB activates
/// the leader's config when the sync begins, before the snapshot that holds its text
/// arrives, so the adoption must happen when the snapshot is installed. It used to keep
/// its old config (and its old committed config file) until the next reconfig, and as
/// a leader refused every operator's reconfig with BadVersion.
#[test]
fn a_snapshot_sync_adopts_the_snapshots_config() {
    let dir = tempfile::tempdir().unwrap();
    let old = config(&[1, 2, 3], 0x1_0000_0000);
    let new_version = 0x1_0000_0007;
    let new = config(&[1, 2, 3, 4], new_version);
    let mut core = open(dir.path(), old.clone());
    follow_server_1(&mut core, &old);

    // The leader's sync: its active config, then a snapshot of its tree, which holds
    // that config's text.
    from_peer(
        &mut core,
        1,
        Message::Config {
            zxid: 0,
            config: new.membership(),
        },
    );
    assert_eq!(core.ensemble().version, old.version, "no text yet");
    let mut tree = DataTree::new();
    tree.seed_config(new.render().as_bytes());
    let zxid = make_zxid(1, 9);
    let payload = tree.snapshot_view().serialize();
    from_peer(&mut core, 1, Message::Snap { zxid, payload });
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
    assert_eq!(core.ensemble().version, new_version);
    assert_eq!(
        core.ensemble().servers.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let persisted = DynamicConfig::read_committed(&dir.path().join("snap")).unwrap();
    assert_eq!(persisted.version, new_version, "the committed config file");
}

/// A config learned from an election notification names no addresses; the server asks
/// its peers for the text and adopts the one of that version (persisted, links opened),
/// ignoring any other.
#[test]
fn a_config_learned_from_a_vote_is_adopted_from_a_peers_text() {
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
    assert_eq!(core.ensemble().version, old.version, "no addresses yet");

    // An older text (a peer that lags) is no answer.
    let stale = AppMsg::ConfigText { text: old.render() };
    from_peer(&mut core, 2, Message::App(stale.encode()));
    assert_eq!(core.ensemble().version, old.version);

    // Until then, no reconfig is planned from the older config it holds.
    let creds = Credentials {
        ids: vec![],
        is_super: true,
    };
    let leave = ReconfigRequest {
        joining_servers: String::new(),
        leaving_servers: "2".into(),
        new_members: String::new(),
        cur_config_id: -1,
    };
    assert_eq!(
        core.plan_reconfig(&creds, &leave).err(),
        Some(ErrorCode::ReconfigInProgress)
    );

    let text = AppMsg::ConfigText { text: new.render() };
    from_peer(&mut core, 1, Message::App(text.encode()));
    assert_eq!(core.ensemble().version, new_version);
    assert_eq!(
        core.ensemble().servers.keys().copied().collect::<Vec<_>>(),
        [1, 2, 4, 5]
    );
    let persisted = DynamicConfig::read_committed(&dir.path().join("snap")).unwrap();
    assert_eq!(persisted.version, new_version);
    // Not a voter of the new config: it may only learn.
    assert!(!core.zab().membership().is_member(3));
    let planned = core.plan_reconfig(&creds, &leave).expect("planned");
    assert_eq!(
        planned.servers.keys().copied().collect::<Vec<_>>(),
        [1, 4, 5],
        "from the newest config"
    );
}
