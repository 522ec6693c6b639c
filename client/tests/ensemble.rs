//! The client against a real three-server paddock ensemble: killing (kill -9) the
//! server a session is connected to moves the session to another server, with its
//! ephemeral nodes, watches and locks intact.
//!
//! paddock only: `e2e/compat/reference_zk.sh` runs Apache ZooKeeper standalone, so
//! the moves between servers are proven against it with proxies in `tests/client.rs`
//! (`resumes_on_another_server_after_a_cut`).

mod common;

use std::time::Duration;

use common::{PaddockProcess, base_config, binary_ip, eventually, free_port, within};
use paddock_client::recipe::{Hold, Lock};
use paddock_client::{Client, CreateMode, ErrorCode, EventType, SessionState};

const WAIT: Duration = Duration::from_secs(30);

struct Ensemble {
    members: Vec<PaddockProcess>,
    /// (directory, zoo.cfg, address) of each member, to start it again.
    specs: Vec<(std::path::PathBuf, String, std::net::Ipv4Addr)>,
    _dir: tempfile::TempDir,
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

impl Ensemble {
    /// `n` voters on their own loopback addresses, all started at once (none can serve
    /// before a quorum is up).
    fn start(n: u64) -> Ensemble {
        Ensemble::start_with(n, "")
    }

    /// Like [`Ensemble::start`], with `extra` zoo.cfg lines on every member.
    fn start_with(n: u64, extra: &str) -> Ensemble {
        let dir = tempfile::Builder::new()
            .prefix("paddock-client-ensemble-")
            .tempdir()
            .expect("tempdir");
        let ips: Vec<_> = (0..n).map(|i| binary_ip(20 + i as u32)).collect();
        let servers: String = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                format!(
                    "server.{}={ip}:{}:{}\n",
                    i + 1,
                    free_port(*ip),
                    free_port(*ip)
                )
            })
            .collect();
        let specs: Vec<_> = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                let home = dir.path().join(format!("s{}", i + 1));
                let config = format!(
                    "{}initLimit=10\nsyncLimit=5\n{extra}{servers}",
                    base_config(&home.join("data"))
                );
                (home, config, *ip)
            })
            .collect();
        let starting: Vec<_> = specs
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, (home, config, ip))| {
                std::thread::spawn(move || {
                    PaddockProcess::start(&home, &config, ip, Some(i as u64 + 1))
                })
            })
            .collect();
        let members = starting
            .into_iter()
            .map(|t| t.join().expect("server start"))
            .collect();
        Ensemble {
            members,
            specs,
            _dir: dir,
        }
    }

    /// Starts member `i` (0-based) again on its data directory (a new client port).
    fn restart(&mut self, i: usize) {
        let (home, config, ip) = &self.specs[i];
        self.members[i] = PaddockProcess::start(home, config, *ip, Some(i as u64 + 1));
    }

    /// Every member's log, for failure reports.
    fn logs(&self) -> String {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| format!("--- server {} ({}) ---\n{}", i + 1, m.addr, m.log()))
            .collect()
    }

    fn assert_no_panic(&self) {
        for m in &self.members {
            let log = m.log();
            assert!(!log.contains("panicked"), "server panicked:\n{log}");
        }
    }

    fn connect_string(&self) -> String {
        let hosts: Vec<String> = self.members.iter().map(|m| m.addr.to_string()).collect();
        hosts.join(",")
    }
}

#[test]
fn sessions_move_to_another_server_when_theirs_dies() {
    let rt = paddock_testkit::rt::multi_thread();
    let mut ensemble = Ensemble::start(3);
    let cs = ensemble.connect_string();
    rt.block_on(within(Duration::from_secs(90), "ensemble test", async {
        let admin = Client::builder(&cs)
            .connect_timeout(WAIT)
            .connect()
            .await
            .unwrap();
        eventually(WAIT, "the ensemble accepts writes", || async {
            match admin.create("/ready", b"", CreateMode::Persistent).await {
                Ok(_) => true,
                Err(e) => e.code() == ErrorCode::NodeExists,
            }
        })
        .await;

        let c = Client::builder(&cs)
            .session_timeout(Duration::from_secs(10))
            .connect()
            .await
            .unwrap();
        let other = Client::builder(&cs)
            .session_timeout(Duration::from_secs(10))
            .connect()
            .await
            .unwrap();
        let session = c.session();
        c.create("/eph", b"", CreateMode::Ephemeral).await.unwrap();
        c.create("/data", b"0", CreateMode::Persistent)
            .await
            .unwrap();
        let (_, _, mut data) = c.get_data_watch("/data").await.unwrap();
        let lock = Lock::new(&c, "/lock").unwrap();
        let mut guard = lock.acquire().await.unwrap();
        let token = guard.token();
        let mut states = c.state_changes();

        let victim = ensemble
            .members
            .iter()
            .position(|m| Some(m.addr) == session.server)
            .expect("connected to a member");
        ensemble.members[victim].kill9();

        assert_eq!(
            within(WAIT, "Suspended", states.next()).await,
            Some(SessionState::Suspended)
        );
        assert_eq!(
            within(WAIT, "Connected again", states.next()).await,
            Some(SessionState::Connected)
        );
        let moved = c.session();
        assert_eq!(moved.id, session.id, "the same session");
        assert_ne!(moved.server, session.server, "on another server");

        // The lock was interrupted (the holder had to pause), and is held again: the
        // session, and so the lock node, survived. Nobody else could take it meanwhile.
        assert_eq!(
            within(WAIT, "guard interrupted", guard.interrupted()).await,
            guard.state()
        );
        within(WAIT, "lock held again", async {
            while guard.state() != Hold::Held {
                guard.changed().await;
            }
        })
        .await;
        assert_eq!(guard.token(), token);
        let contender = Lock::new(&other, "/lock").unwrap();
        assert!(
            contender
                .try_acquire(Duration::from_millis(500))
                .await
                .unwrap()
                .is_none()
        );

        // Ephemerals and watches moved with the session.
        assert!(other.exists("/eph").await.unwrap().is_some());
        other.set_data("/data", b"1", None).await.unwrap();
        let event = within(WAIT, "data watch", data.next())
            .await
            .expect("an event");
        assert_eq!(event.event_type, EventType::NodeDataChanged);
        assert_eq!(c.get_data("/data").await.unwrap().0, b"1");

        // Releasing on the new server hands the lock over, with a larger token.
        guard.release().await.unwrap();
        let next = contender.acquire().await.unwrap();
        assert!(next.token() > token);
        c.close().await;
        eventually(WAIT, "ephemeral gone with the closed session", || async {
            other.exists("/eph").await.unwrap().is_none()
        })
        .await;
    }));
    drop(rt);
    ensemble.assert_no_panic();
}

/// A client that asks for read-only reads from a server cut off from its quorum
/// (ConnectedReadOnly; writes fail with NotReadOnly), and when the quorum returns it is
/// dropped by that server, gets a new read-write session there (its read-only session
/// was local to the server) and writes.
#[test]
fn a_read_only_client_reads_while_partitioned_and_writes_once_the_quorum_returns() {
    let rt = paddock_testkit::rt::multi_thread();
    let mut ensemble = Ensemble::start_with(3, "readonlymode.enabled=true\n");
    let first = ensemble.members[0].addr.to_string();
    rt.block_on(within(Duration::from_secs(120), "read-only test", async {
        let setup = Client::builder(&first)
            .connect_timeout(WAIT)
            .connect()
            .await
            .unwrap();
        eventually(WAIT, "the ensemble accepts writes", || async {
            match setup.create("/ro", b"before", CreateMode::Persistent).await {
                Ok(_) => true,
                Err(e) => e.code() == ErrorCode::NodeExists,
            }
        })
        .await;
        setup.close().await;

        ensemble.members[1].kill9();
        ensemble.members[2].kill9();
        // Refused until server 1 turns read-only (2 s of looking), then connected.
        let ro = Client::builder(&first)
            .read_only()
            .session_timeout(Duration::from_secs(6))
            .connect_timeout(WAIT)
            .connect()
            .await
            .unwrap();
        assert_eq!(ro.state(), SessionState::ConnectedReadOnly);
        let local = ro.session();
        assert!(local.read_only);
        assert_eq!(ro.get_data("/ro").await.unwrap().0, b"before");
        let err = ro
            .create("/ro/new", b"", CreateMode::Persistent)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotReadOnly, "{err}");
        let err = ro.set_data("/ro", b"x", None).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotReadOnly, "{err}");

        let mut states = ro.state_changes();
        ensemble.restart(1);
        ensemble.restart(2);
        assert_eq!(
            within(WAIT, "dropped", states.next()).await,
            Some(SessionState::Suspended)
        );
        assert_eq!(
            within(WAIT, "read-write", states.next()).await,
            Some(SessionState::Connected)
        );
        let now = ro.session();
        assert!(!now.read_only);
        assert_ne!(now.id, local.id, "a new session");
        ro.set_data("/ro", b"after", None).await.unwrap();
        assert_eq!(ro.get_data("/ro").await.unwrap().0, b"after");
        ro.close().await;
    }));
    drop(rt);
    ensemble.assert_no_panic();
}
