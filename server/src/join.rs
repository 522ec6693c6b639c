//! Which ensemble config a distributed server starts from, and `--join`: reading the
//! committed config (`/zookeeper/config`) from a running member over the client protocol.
//!
//! Every pod of a StatefulSet starts with the same arguments (the same zoo.cfg and the
//! same `--join` targets), so the choice depends only on what the server finds:
//! 1. a committed config in its data dir: trusted over zoo.cfg (a restarted member
//!    keeps the membership reconfigs made); with `--join`, the targets are asked for a
//!    short while too and the newer of the two configs wins, so a server removed while
//!    it was away (scaled down, then up again on its kept volume) starts as the
//!    non-voting joiner it now is instead of as a member of a config that is gone. A
//!    server that the static config lists and that has run before (a log or snapshot in
//!    its data dir) but was never reconfigured holds the static config as its committed
//!    one and is treated the same way. The targets are asked only until each of them
//!    refuses outright (nothing listens, or it serves no clients: the ensemble has no
//!    quorum, which may wait for this very server), and the election carries a newer
//!    config to this server anyway;
//! 2. else a `--join` target that answers: its committed config (a member if it lists
//!    us, else a non-voting joiner until a reconfig adds us);
//! 3. else, once `--join-timeout` has passed, a server that the static config (zoo.cfg or
//!    its dynamic file) lists starts from it: the ensemble's bootstrap, when no member
//!    runs yet to answer;
//! 4. a server the static config does not list keeps trying `--join` (a joiner has no
//!    other way to learn the ensemble).

use std::time::{Duration, Instant};

use tracing::info;

use crate::config::{DynamicConfig, HostPort, ServerConfig, ServerEntry};
use crate::net::resolve;

/// Where the starting config comes from (pure decision; see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The committed config in the data dir.
    Committed,
    /// The committed config in the data dir, or a `--join` target's if newer; the
    /// targets are asked for at most `ask_for`.
    CommittedOrJoin { ask_for: Duration },
    /// zoo.cfg and its dynamic file (also standalone, and no `--join`).
    Static,
    /// Ask the `--join` targets; after `fall_back_after`, if given, start from the
    /// static config instead.
    Join { fall_back_after: Option<Duration> },
}

/// What a server finds in its data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDir {
    /// A committed config (written by a reconfig).
    Committed,
    /// A log or a snapshot, but no committed config: a server that ran before in an
    /// ensemble never reconfigured since it last ran (or a joiner not yet added).
    History,
    /// Nothing: a new server, or one whose volume was lost.
    Empty,
}

pub fn plan(cfg: &ServerConfig, data: DataDir) -> Plan {
    if cfg.is_standalone() {
        return Plan::Static;
    }
    let listed = cfg.myid.is_some_and(|id| cfg.servers.contains_key(&id));
    let has_committed = match data {
        DataDir::Committed => true,
        // The static config is the committed one of a never-reconfigured ensemble; a
        // joiner that zoo.cfg does not list has only --join to learn it from.
        DataDir::History => listed,
        DataDir::Empty => false,
    };
    if has_committed {
        if cfg.join.is_empty() {
            return Plan::Committed;
        }
        // Bounded: when the whole ensemble restarts nobody answers, and each member must
        // come up on its own committed config.
        return Plan::CommittedOrJoin {
            ask_for: Duration::from_millis(cfg.join_timeout_ms).min(COMMITTED_JOIN_LIMIT),
        };
    }
    if cfg.join.is_empty() {
        return Plan::Static;
    }
    Plan::Join {
        fall_back_after: listed.then(|| Duration::from_millis(cfg.join_timeout_ms)),
    }
}

/// How long a server with a committed config asks `--join` for a newer one.
const COMMITTED_JOIN_LIMIT: Duration = Duration::from_secs(3);

/// The config to start from, of the data dir's committed one and one a `--join` target
/// answered with: the newer (configs only ever move forward).
pub fn newer(committed: DynamicConfig, fetched: Option<DynamicConfig>) -> DynamicConfig {
    match fetched {
        Some(f) if f.version > committed.version => {
            info!(
                committed = format_args!("{:#x}", committed.version),
                fetched = format_args!("{:#x}", f.version),
                members = f.servers.len(),
                "the ensemble's config is newer than the data dir's: starting from it"
            );
            f
        }
        _ => committed,
    }
}

/// This server's own `server.N` line: as [`ServerConfig::own_entry`] finds it, else the
/// one the data dir's committed config holds (a server removed while it was away that
/// zoo.cfg never listed: it was added by a reconfig, and now starts as a joiner).
pub fn own_entry(cfg: &ServerConfig, ensemble: &DynamicConfig) -> Option<ServerEntry> {
    cfg.own_entry(ensemble).or_else(|| {
        let me = cfg.myid?;
        DynamicConfig::read_committed(&cfg.snap_dir())?
            .servers
            .get(&me)
            .cloned()
    })
}

/// Longest wait for one target's answer.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("cannot learn the ensemble's config through --join: {0}")]
pub struct JoinError(String);

/// When [`fetch_ensemble`] stops asking without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// Once the deadline (if any) has passed.
    AtDeadline(Option<Instant>),
    /// At the deadline, or after a round in which every target refused outright.
    WhenRefused(Instant),
}

impl GiveUp {
    fn deadline(self) -> Option<Instant> {
        match self {
            GiveUp::AtDeadline(d) => d,
            GiveUp::WhenRefused(d) => Some(d),
        }
    }
}

/// Why one target gave no config.
#[derive(Debug)]
enum Failure {
    /// An outright refusal: nothing listens there, or the server closed the connection
    /// without a session (it serves no clients: no quorum, or still syncing).
    Refused(String),
    /// Anything else (a name that does not resolve, a timeout, an error reply).
    Other(String),
}

impl Failure {
    fn io(e: std::io::Error) -> Failure {
        use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, UnexpectedEof};
        match e.kind() {
            ConnectionRefused | ConnectionReset | UnexpectedEof => Failure::Refused(e.to_string()),
            _ => Failure::Other(e.to_string()),
        }
    }
    fn other(e: impl std::fmt::Display) -> Failure {
        Failure::Other(e.to_string())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(m) | Failure::Other(m) => f.write_str(m),
        }
    }
}

/// Tries every target in turn (resolving each name again every time), with back-off,
/// until one answers with its committed config. `Ok(None)` when `give_up` says so without
/// an answer. Logs at a bounded rate while nobody answers; a config it cannot parse is
/// fatal.
pub async fn fetch_ensemble(
    join: &[HostPort],
    give_up: GiveUp,
) -> Result<Option<DynamicConfig>, JoinError> {
    if join.is_empty() {
        return Err(JoinError("no --join targets".into()));
    }
    let deadline = give_up.deadline();
    let mut log = resolve::LogEvery::new(resolve::WAIT_LOG_EVERY);
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut errors = Vec::new();
        let mut all_refused = true;
        for target in join {
            let limit = match deadline {
                Some(d) => d
                    .saturating_duration_since(Instant::now())
                    .min(ATTEMPT_LIMIT),
                None => ATTEMPT_LIMIT,
            };
            if limit.is_zero() {
                return Ok(None);
            }
            match tokio::time::timeout(limit, fetch_config_text(&target.host, target.port)).await {
                Ok(Ok(text)) => {
                    let config = DynamicConfig::parse(&text, "/zookeeper/config")
                        .map_err(|e| JoinError(e.to_string()))?;
                    info!(from = %target, members = config.servers.len(), version = format_args!("{:#x}", config.version), "learned the ensemble's config");
                    return Ok(Some(config));
                }
                Ok(Err(e)) => {
                    all_refused &= matches!(e, Failure::Refused(_));
                    errors.push(format!("{target}: {e}"));
                }
                Err(_) => {
                    all_refused = false;
                    errors.push(format!("{target}: timed out"));
                }
            }
        }
        if all_refused && matches!(give_up, GiveUp::WhenRefused(_)) {
            info!(errors = %errors.join("; "), "every --join target refused: no ensemble serves to ask");
            return Ok(None);
        }
        if log.should_log(Instant::now()) {
            let retries = log.take_suppressed();
            tracing::warn!(errors = %errors.join("; "), retries, "no --join target answered yet; retrying");
        }
        let pause = match deadline {
            Some(d) => backoff.min(d.saturating_duration_since(Instant::now())),
            None => backoff,
        };
        tokio::time::sleep(pause).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn fetch_config_text(host: &str, port: u16) -> Result<String, Failure> {
    use paddock_proto::{
        ConnectRequest, ConnectResponse, GetDataRequest, Jute, ReplyHeader, Request, Response,
        frame::frame,
    };
    use tokio::io::AsyncWriteExt;
    let io = Failure::io;
    let mut s = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(io)?;
    let connect = ConnectRequest {
        time_out: 10_000,
        passwd: vec![0u8; 16].into(),
        read_only: Some(false),
        ..ConnectRequest::default()
    };
    s.write_all(&frame(&connect.to_bytes())).await.map_err(io)?;
    let resp = read_frame(&mut s).await?;
    let session = ConnectResponse::from_bytes(&resp).map_err(Failure::other)?;
    if session.time_out <= 0 {
        return Err(Failure::Refused(
            "the server refused the session".to_string(),
        ));
    }
    let req = Request::GetData(GetDataRequest {
        path: crate::tree::CONFIG_NODE.to_string(),
        watch: false,
    });
    s.write_all(&frame(&req.encode(1))).await.map_err(io)?;
    let reply = read_frame(&mut s).await?;
    let mut r = paddock_proto::Reader::new(&reply);
    let header = ReplyHeader::read(&mut r).map_err(Failure::other)?;
    if header.err != 0 {
        return Err(Failure::Other(format!(
            "getData /zookeeper/config failed with error {}",
            header.err
        )));
    }
    match Response::decode(
        paddock_proto::OpCode::GetData.code(),
        &reply[r.position()..],
    )
    .map_err(Failure::other)?
    {
        Response::GetData(d) => Ok(String::from_utf8_lossy(&d.data).into_owned()),
        _ => Err(Failure::Other("unexpected reply".to_string())),
    }
}

async fn read_frame(s: &mut tokio::net::TcpStream) -> Result<Vec<u8>, Failure> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.map_err(Failure::io)?;
    let n = paddock_proto::frame::frame_len(len, 1 << 20).map_err(Failure::other)?;
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).await.map_err(Failure::io)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cli, ServerConfig};

    fn config(zoo: &str, args: &[&str]) -> ServerConfig {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "dataDir={}\nstandaloneEnabled=false\n{zoo}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut argv = vec!["paddock-server", "--config", cfg.to_str().unwrap()];
        argv.extend_from_slice(args);
        let cli = <Cli as clap::Parser>::try_parse_from(argv).unwrap();
        ServerConfig::load(&cli).unwrap()
    }

    const THREE: &str = "server.1=a:2888:3888\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n";

    #[test]
    fn a_committed_config_is_checked_against_join() {
        let cfg = config(THREE, &["--myid", "1", "--join", "svc:2181"]);
        assert_eq!(
            plan(&cfg, DataDir::Committed),
            Plan::CommittedOrJoin {
                ask_for: COMMITTED_JOIN_LIMIT
            }
        );
        let quick = config(
            THREE,
            &["--myid", "1", "--join", "svc:2181", "--join-timeout", "1s"],
        );
        assert_eq!(
            plan(&quick, DataDir::Committed),
            Plan::CommittedOrJoin {
                ask_for: Duration::from_secs(1)
            }
        );
        let alone = config(THREE, &["--myid", "1"]);
        assert_eq!(plan(&alone, DataDir::Committed), Plan::Committed);
    }

    fn dynamic(text: &str) -> DynamicConfig {
        DynamicConfig::parse(text, "test").unwrap()
    }

    #[test]
    fn the_newer_config_wins() {
        let old = dynamic(
            "server.1=a:1:2:participant;3\nserver.3=c:1:2:participant;3\nversion=100000000",
        );
        let new = dynamic("server.1=a:1:2:participant;3\nversion=100000005");
        assert_eq!(
            newer(old.clone(), Some(new.clone())),
            new,
            "removed while away"
        );
        assert_eq!(
            newer(new.clone(), Some(old.clone())),
            new,
            "a lagging target"
        );
        assert_eq!(newer(old.clone(), None), old, "nobody answered");
    }

    #[test]
    fn own_line_from_the_committed_config() {
        let cfg = config(THREE, &["--myid", "7", "--join", "svc:2181"]);
        let snap = cfg.snap_dir();
        std::fs::create_dir_all(&snap).unwrap();
        let ensemble = dynamic("server.1=a:1:2:participant;3\nversion=100000005");
        assert_eq!(own_entry(&cfg, &ensemble), None);
        dynamic("server.1=a:1:2:participant;3\nserver.7=g:4:5:participant;6\nversion=100000000")
            .write_committed(&snap)
            .unwrap();
        let own = own_entry(&cfg, &ensemble).expect("the data dir's line");
        assert_eq!(own.id, 7);
        assert_eq!(own.primary().unwrap().host, "g");
    }

    #[test]
    fn a_listed_server_that_ran_before_holds_the_static_config_as_committed() {
        // Restarted in an ensemble never reconfigured: no committed config file, but a
        // log. It must not wait out --join-timeout as a new server does, or an ensemble
        // that lost its quorum waits for every restarted member.
        let cfg = config(THREE, &["--myid", "2", "--join", "svc:2181"]);
        assert_eq!(
            plan(&cfg, DataDir::History),
            Plan::CommittedOrJoin {
                ask_for: COMMITTED_JOIN_LIMIT
            }
        );
        // A joiner that zoo.cfg does not list learns the ensemble only through --join.
        let joiner = config(THREE, &["--myid", "4", "--join", "svc:2181"]);
        assert_eq!(
            plan(&joiner, DataDir::History),
            Plan::Join {
                fall_back_after: None
            }
        );
    }

    #[test]
    fn history_is_a_log_or_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (snap, log) = (dir.path().join("snap"), dir.path().join("log"));
        assert!(!crate::storage::has_history(&snap, &log), "missing dirs");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(&log).unwrap();
        std::fs::write(snap.join("snapshot.5.tmp"), b"").unwrap();
        assert!(!crate::storage::has_history(&snap, &log), "a temp file");
        std::fs::write(log.join("log.1"), b"").unwrap();
        assert!(crate::storage::has_history(&snap, &log));
    }

    #[test]
    fn a_listed_server_falls_back_to_the_static_config() {
        let cfg = config(
            THREE,
            &["--myid", "2", "--join", "svc:2181", "--join-timeout", "3s"],
        );
        assert_eq!(
            plan(&cfg, DataDir::Empty),
            Plan::Join {
                fall_back_after: Some(Duration::from_secs(3))
            }
        );
    }

    #[test]
    fn an_unlisted_server_keeps_asking() {
        let cfg = config(THREE, &["--myid", "4", "--join", "svc:2181"]);
        assert_eq!(
            plan(&cfg, DataDir::Empty),
            Plan::Join {
                fall_back_after: None
            }
        );
    }

    #[test]
    fn without_join_the_static_config() {
        let cfg = config(THREE, &["--myid", "1"]);
        assert_eq!(plan(&cfg, DataDir::Empty), Plan::Static);
    }

    /// A target that accepts connections and closes them at once, as a server without a
    /// quorum does.
    async fn not_serving() -> HostPort {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        HostPort {
            host: "127.0.0.1".into(),
            port,
        }
    }

    #[tokio::test]
    async fn asking_with_a_committed_config_ends_when_every_target_refuses() {
        let t = Instant::now();
        let got = fetch_ensemble(
            &[not_serving().await],
            GiveUp::WhenRefused(t + Duration::from_secs(10)),
        )
        .await
        .unwrap();
        assert!(got.is_none());
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn a_target_that_does_not_answer_is_waited_for() {
        // Accepts and never answers: not a refusal, so the ask lasts until the deadline.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = HostPort {
            host: "127.0.0.1".into(),
            port,
        };
        let t = Instant::now();
        let got = fetch_ensemble(
            &[not_serving().await, silent],
            GiveUp::WhenRefused(t + Duration::from_millis(800)),
        )
        .await
        .unwrap();
        assert!(got.is_none());
        assert!(
            t.elapsed() >= Duration::from_millis(800),
            "{:?}",
            t.elapsed()
        );
        drop(listener);
    }

    #[tokio::test]
    async fn nobody_answering_ends_at_the_deadline() {
        // A port nothing listens on: every attempt is refused at once.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let target = HostPort {
            host: "127.0.0.1".into(),
            port,
        };
        let t = Instant::now();
        let got = fetch_ensemble(
            &[target],
            GiveUp::AtDeadline(Some(t + Duration::from_millis(600))),
        )
        .await
        .unwrap();
        assert!(got.is_none());
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(600) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }
}
