//! Which ensemble config a distributed server starts from, and `--join`: reading the
//! committed config (`/zookeeper/config`) from a running member over the client protocol.
//!
//! Every pod of a StatefulSet starts with the same arguments (the same zoo.cfg and the
//! same `--join` targets), so the choice depends only on what the server finds:
//! 1. a committed config in its data dir: trusted over zoo.cfg (a restarted member
//!    keeps the membership reconfigs made); with `--join`, the targets are asked for a
//!    short while too and the newer of the two configs wins, so a server removed while
//!    it was away (scaled down, then up again on its kept volume) starts as the
//!    non-voting joiner it now is instead of as a member of a config that is gone;
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

pub fn plan(cfg: &ServerConfig, has_committed: bool) -> Plan {
    if cfg.is_standalone() {
        return Plan::Static;
    }
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
    let listed = cfg.myid.is_some_and(|id| cfg.servers.contains_key(&id));
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

/// Tries every target in turn (resolving each name again every time), with back-off,
/// until one answers with its committed config. `Ok(None)` once `deadline` (if any) has
/// passed without an answer. Logs at a bounded rate while nobody answers; a config it
/// cannot parse is fatal.
pub async fn fetch_ensemble(
    join: &[HostPort],
    deadline: Option<Instant>,
) -> Result<Option<DynamicConfig>, JoinError> {
    if join.is_empty() {
        return Err(JoinError("no --join targets".into()));
    }
    let mut log = resolve::LogEvery::new(resolve::WAIT_LOG_EVERY);
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut errors = Vec::new();
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
                Ok(Err(e)) => errors.push(format!("{target}: {e}")),
                Err(_) => errors.push(format!("{target}: timed out")),
            }
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

async fn fetch_config_text(host: &str, port: u16) -> Result<String, String> {
    use paddock_proto::{
        ConnectRequest, ConnectResponse, GetDataRequest, Jute, ReplyHeader, Request, Response,
        frame::frame,
    };
    use tokio::io::AsyncWriteExt;
    let io = |e: std::io::Error| e.to_string();
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
    let session = ConnectResponse::from_bytes(&resp).map_err(|e| e.to_string())?;
    if session.time_out <= 0 {
        return Err("the server refused the session".to_string());
    }
    let req = Request::GetData(GetDataRequest {
        path: crate::tree::CONFIG_NODE.to_string(),
        watch: false,
    });
    s.write_all(&frame(&req.encode(1))).await.map_err(io)?;
    let reply = read_frame(&mut s).await?;
    let mut r = paddock_proto::Reader::new(&reply);
    let header = ReplyHeader::read(&mut r).map_err(|e| e.to_string())?;
    if header.err != 0 {
        return Err(format!(
            "getData /zookeeper/config failed with error {}",
            header.err
        ));
    }
    match Response::decode(
        paddock_proto::OpCode::GetData.code(),
        &reply[r.position()..],
    )
    .map_err(|e| e.to_string())?
    {
        Response::GetData(d) => Ok(String::from_utf8_lossy(&d.data).into_owned()),
        _ => Err("unexpected reply".to_string()),
    }
}

async fn read_frame(s: &mut tokio::net::TcpStream) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.map_err(|e| e.to_string())?;
    let n = paddock_proto::frame::frame_len(len, 1 << 20).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
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
            plan(&cfg, true),
            Plan::CommittedOrJoin {
                ask_for: COMMITTED_JOIN_LIMIT
            }
        );
        let quick = config(
            THREE,
            &["--myid", "1", "--join", "svc:2181", "--join-timeout", "1s"],
        );
        assert_eq!(
            plan(&quick, true),
            Plan::CommittedOrJoin {
                ask_for: Duration::from_secs(1)
            }
        );
        let alone = config(THREE, &["--myid", "1"]);
        assert_eq!(plan(&alone, true), Plan::Committed);
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
    fn a_listed_server_falls_back_to_the_static_config() {
        let cfg = config(
            THREE,
            &["--myid", "2", "--join", "svc:2181", "--join-timeout", "3s"],
        );
        assert_eq!(
            plan(&cfg, false),
            Plan::Join {
                fall_back_after: Some(Duration::from_secs(3))
            }
        );
    }

    #[test]
    fn an_unlisted_server_keeps_asking() {
        let cfg = config(THREE, &["--myid", "4", "--join", "svc:2181"]);
        assert_eq!(
            plan(&cfg, false),
            Plan::Join {
                fall_back_after: None
            }
        );
    }

    #[test]
    fn without_join_the_static_config() {
        let cfg = config(THREE, &["--myid", "1"]);
        assert_eq!(plan(&cfg, false), Plan::Static);
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
        let got = fetch_ensemble(&[target], Some(t + Duration::from_millis(600)))
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
