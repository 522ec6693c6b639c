//! The command line (DESIGN §6):
//!
//! ```text
//! paddock-sidecar --servers HOST:PORT,... [--listen 127.0.0.1:4040] [--root /paddock]
//!                 [--election NAME] [--id ID] [--group NAME] [--render PATH=FILE]
//!                 [--leader-label] [--token-file FILE] [--session-timeout 10s]
//! ```
//!
//! Beyond the contract: `--value` (what the flag candidacy and memberships publish;
//! default `$POD_IP`), `--probe-listen` (a second address serving only the probe
//! endpoints, for kubelet probes), `--heartbeat` (default SSE heartbeat interval),
//! `--groups-root`/`--config-root` (groups and the config tree somewhere else than under
//! `--root`, for an app whose znode layout is its own) and `--log-format text|json`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::names;
use crate::render::RenderSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "paddock-sidecar",
    version,
    about = "Leader election, group membership, locks and config for any app, over localhost HTTP"
)]
pub struct Cli {
    /// The ensemble: HOST:PORT,HOST:PORT,... (optionally followed by /chroot).
    #[arg(long, env = "PADDOCK_SERVERS", value_name = "HOST:PORT,...")]
    pub servers: String,
    /// Address of the HTTP API. Loopback unless told otherwise.
    #[arg(long, env = "PADDOCK_LISTEN", default_value = "127.0.0.1:4040")]
    pub listen: String,
    /// Also serve /healthz, /readyz and /v1/elections/{e}/self (only those) here, for
    /// kubelet probes, which come to the pod IP (e.g. 0.0.0.0:4041).
    #[arg(long, env = "PADDOCK_PROBE_LISTEN", value_name = "IP:PORT")]
    pub probe_listen: Option<String>,
    /// Where the sidecar's nodes live in the tree.
    #[arg(long, env = "PADDOCK_ROOT", default_value = "/paddock")]
    pub root: String,
    /// Where groups live instead of <root>/groups (a group's members are
    /// <groups-root>/<group>/<id>).
    #[arg(long, env = "PADDOCK_GROUPS_ROOT", value_name = "PATH")]
    pub groups_root: Option<String>,
    /// Where the config tree lives instead of <root>/config (/v1/config/<path> is
    /// <config-root>/<path>).
    #[arg(long, env = "PADDOCK_CONFIG_ROOT", value_name = "PATH")]
    pub config_root: Option<String>,
    /// Campaign in this election from startup, without any app call.
    #[arg(long, env = "PADDOCK_ELECTION", value_name = "NAME")]
    pub election: Option<String>,
    /// Candidate/member id (default: $POD_NAME, else $HOSTNAME, else /etc/hostname).
    #[arg(long, env = "PADDOCK_ID")]
    pub id: Option<String>,
    /// Value published by the flag candidacy and memberships (default: $POD_IP).
    #[arg(long, env = "PADDOCK_VALUE")]
    pub value: Option<String>,
    /// Join this group from startup (repeatable).
    #[arg(long, value_name = "NAME")]
    pub group: Vec<String>,
    /// Keep FILE equal to the config subtree at PATH (repeatable).
    #[arg(long, value_name = "PATH=FILE")]
    pub render: Vec<String>,
    /// Label this pod paddock.dev/leader=true|false as the --election candidate leads.
    #[arg(long)]
    pub leader_label: bool,
    /// Require `Authorization: Bearer <token>` with the token in FILE.
    #[arg(long, env = "PADDOCK_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Session timeout asked of the ensemble (it grants one within its bounds).
    #[arg(long, env = "PADDOCK_SESSION_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub session_timeout: Duration,
    /// Default interval of heartbeat events on SSE streams.
    #[arg(long, default_value = "15s", value_parser = duration)]
    pub heartbeat: Duration,
    /// How long a client may take to send a request's head, and then its body; an idle
    /// keep-alive connection is closed after it too.
    #[arg(long, env = "PADDOCK_HTTP_READ_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub http_read_timeout: Duration,
    /// Open connections served at once (each of the API and the probe listeners); more
    /// are answered 503 and closed.
    #[arg(long, env = "PADDOCK_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// Log lines as text or as JSON objects.
    #[arg(long, env = "PADDOCK_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

fn duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s)
}

/// The command line, checked and with defaults filled in.
#[derive(Debug, Clone)]
pub struct Config {
    pub servers: String,
    pub listen: SocketAddr,
    pub probe_listen: Option<SocketAddr>,
    pub root: String,
    pub groups_root: Option<String>,
    pub config_root: Option<String>,
    pub election: Option<String>,
    pub id: Option<String>,
    pub value: Vec<u8>,
    pub groups: Vec<String>,
    pub renders: Vec<RenderSpec>,
    pub leader_label: bool,
    pub token: Option<String>,
    pub session_timeout: Duration,
    pub heartbeat: Duration,
    pub http: crate::serve::HttpLimits,
}

/// The id from the environment: `POD_NAME`, `HOSTNAME`, then /etc/hostname.
fn default_id() -> Option<String> {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .map(|v| v.trim().to_string())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
}

impl Cli {
    pub fn resolve(self) -> Result<Config, String> {
        if self.servers.trim().is_empty() {
            return Err("--servers is empty".into());
        }
        paddock_client::ConnectString::parse(&self.servers)
            .map_err(|e| format!("--servers {:?}: {e}", self.servers))?;
        let listen: SocketAddr = self.listen.parse().map_err(|e| {
            format!(
                "--listen {:?}: {e} (expected IP:PORT, e.g. 127.0.0.1:4040)",
                self.listen
            )
        })?;
        let probe_listen = match &self.probe_listen {
            None => None,
            Some(p) => Some(p.parse::<SocketAddr>().map_err(|e| {
                format!("--probe-listen {p:?}: {e} (expected IP:PORT, e.g. 0.0.0.0:4041)")
            })?),
        };
        for (flag, path) in [
            ("--root", Some(&self.root)),
            ("--groups-root", self.groups_root.as_ref()),
            ("--config-root", self.config_root.as_ref()),
        ] {
            if let Some(path) = path
                && let Err(reason) = paddock_client::path::validate(path, false)
            {
                return Err(format!("{flag} {path:?}: {reason}"));
            }
        }
        if let Some(e) = &self.election {
            names::name("--election", e).map_err(|e| e.message)?;
        }
        for g in &self.group {
            names::name("--group", g).map_err(|e| e.message)?;
        }
        let id = self.id.or_else(default_id);
        if let Some(id) = &id {
            names::name("--id", id).map_err(|e| e.message)?;
        }
        if (self.election.is_some() || !self.group.is_empty()) && id.is_none() {
            return Err(
                "--election and --group need an id: pass --id, or set POD_NAME or HOSTNAME".into(),
            );
        }
        if self.leader_label && self.election.is_none() {
            return Err(
                "--leader-label needs --election (whose leadership the label shows)".into(),
            );
        }
        let renders = self
            .render
            .iter()
            .map(|s| RenderSpec::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        let token = match &self.token_file {
            None => None,
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| format!("--token-file {}: {e}", file.display()))?;
                let token = text.trim().to_string();
                if token.is_empty() {
                    return Err(format!(
                        "--token-file {}: the file is empty",
                        file.display()
                    ));
                }
                Some(token)
            }
        };
        let value = self
            .value
            .or_else(|| std::env::var("POD_IP").ok())
            .unwrap_or_default()
            .into_bytes();
        names::value_size("--value", value.len()).map_err(|e| e.message)?;
        if self.session_timeout < Duration::from_millis(100) {
            return Err("--session-timeout must be at least 100ms".into());
        }
        if self.http_read_timeout < Duration::from_millis(100) {
            return Err("--http-read-timeout must be at least 100ms".into());
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        Ok(Config {
            servers: self.servers,
            listen,
            probe_listen,
            root: self.root,
            groups_root: self.groups_root,
            config_root: self.config_root,
            election: self.election,
            id,
            value,
            groups: self.group,
            renders,
            leader_label: self.leader_label,
            token,
            session_timeout: self.session_timeout,
            heartbeat: self.heartbeat.max(crate::sse::MIN_HEARTBEAT),
            http: crate::serve::HttpLimits {
                read_timeout: self.http_read_timeout,
                max_connections: self.max_connections,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut all = vec!["paddock-sidecar"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)
            .map_err(|e| e.to_string())?
            .resolve()
    }

    #[test]
    fn http_limits_default_and_are_checked() {
        let c = parse(&["--servers", "127.0.0.1:2181"]).unwrap();
        assert_eq!(c.http.read_timeout, Duration::from_secs(10));
        assert_eq!(c.http.max_connections, 512);
        let c = parse(&[
            "--servers",
            "127.0.0.1:2181",
            "--http-read-timeout",
            "3s",
            "--max-connections",
            "9",
        ])
        .unwrap();
        assert_eq!(c.http.read_timeout, Duration::from_secs(3));
        assert_eq!(c.http.max_connections, 9);
        let err = parse(&["--servers", "x:1", "--max-connections", "0"]).unwrap_err();
        assert!(err.contains("--max-connections"), "{err}");
        let err = parse(&["--servers", "x:1", "--http-read-timeout", "1ms"]).unwrap_err();
        assert!(err.contains("--http-read-timeout"), "{err}");
    }

    #[test]
    fn defaults_and_flags() {
        let c = parse(&["--servers", "127.0.0.1:2181", "--id", "pod-0"]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:4040".parse().unwrap());
        assert_eq!(c.root, "/paddock");
        assert_eq!(c.session_timeout, Duration::from_secs(10));
        let c = parse(&[
            "--servers",
            "a:1,b:2",
            "--id",
            "p",
            "--election",
            "e",
            "--group",
            "g1",
            "--group",
            "g2",
            "--render",
            "app=/tmp/app.json",
            "--session-timeout",
            "2s",
            "--leader-label",
        ])
        .unwrap();
        assert_eq!(c.election.as_deref(), Some("e"));
        assert_eq!(c.groups, vec!["g1", "g2"]);
        assert_eq!(c.renders.len(), 1);
        assert_eq!(c.session_timeout, Duration::from_secs(2));
        assert!(c.leader_label);
    }

    #[test]
    fn refusals_name_the_problem() {
        let e = parse(&["--servers", "a:1", "--id", "p", "--session-timeout", "ten"]).unwrap_err();
        assert!(e.contains("ten"), "{e}");
        let e = parse(&["--servers", "a:1", "--id", "p", "--leader-label"]).unwrap_err();
        assert!(e.contains("--election"), "{e}");
        let e = parse(&["--servers", "a:1", "--id", "a/b"]).unwrap_err();
        assert!(e.contains("--id"), "{e}");
        let e = parse(&["--servers", "a:1", "--id", "p", "--root", "paddock"]).unwrap_err();
        assert!(e.contains("--root"), "{e}");
        let e = parse(&["--servers", "a:1", "--id", "p", "--config-root", "mw/"]).unwrap_err();
        assert!(e.contains("--config-root"), "{e}");
        let e = parse(&["--servers", "a:1", "--id", "p", "--groups-root", "/a//b"]).unwrap_err();
        assert!(e.contains("--groups-root"), "{e}");
        let c = parse(&["--servers", "a:1", "--id", "p", "--groups-root", "/mw"]).unwrap();
        assert_eq!(c.groups_root.as_deref(), Some("/mw"));
        assert_eq!(c.config_root, None);
        let e = parse(&["--servers", "a:1", "--id", "p", "--listen", "localhost"]).unwrap_err();
        assert!(e.contains("--listen"), "{e}");
        let e = parse(&["--servers", "a:1", "--id", "p", "--render", "x"]).unwrap_err();
        assert!(e.contains("PATH=FILE"), "{e}");
    }
}
