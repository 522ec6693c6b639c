//! From settings as read to the configuration the server runs with: defaults, the
//! `<dataDir>/myid` file, the client listener, and the checks across keys (membership,
//! session timeouts, this server's id) that no single line can make.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::properties::{Loc, Located};
use super::zoo_cfg::Raw;
use super::{
    ConfigError, DEFAULT_ADMIN_PORT, DEFAULT_CLIENT_PORT, DEFAULT_FSYNC_WARNING_THRESHOLD_MS,
    DEFAULT_INIT_LIMIT, DEFAULT_JOIN_TIMEOUT_MS, DEFAULT_JUTE_MAX_BUFFER, DEFAULT_MAX_CLIENT_CNXNS,
    DEFAULT_SNAP_COUNT, DEFAULT_SYNC_LIMIT, DEFAULT_TICK_TIME_MS, DynamicConfig, EMBEDDED_ADDRESS,
    EMBEDDED_DATA_DIR, FourLetterWhitelist, HostPort, LearnerRole, MAX_SERVER_ID,
    MAX_SERVER_ID_EXTENDED, MIN_SNAP_RETAIN_COUNT, QuorumGroup, Secret, ServerConfig, ServerEntry,
    WILDCARD_ADDRESS,
};

/// The admin bearer token in `path`: its content without surrounding whitespace (a
/// trailing newline is usual). Errors never repeat the content.
fn read_admin_token(path: &Path) -> Result<Secret, ConfigError> {
    let err = |message: String| ConfigError::File {
        file: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(format!(
            "cannot read the admin token file (admin.tokenFile): {e}"
        ))
    })?;
    let token = text.trim();
    if token.len() < MIN_ADMIN_TOKEN_LEN || token.chars().any(|c| c.is_whitespace()) {
        return Err(err(format!(
            "the admin token must be one word of at least {MIN_ADMIN_TOKEN_LEN} characters \
             (e.g. `head -c 32 /dev/urandom | base64 > {}`)",
            path.display()
        )));
    }
    Ok(Secret(token.to_string()))
}

/// A bearer token shorter than this is refused: it would be guessable.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Whether the committed config in the data dir (which the server trusts over zoo.cfg
/// at start) lists server `id`: a member added by reconfig may restart with a zoo.cfg
/// that predates it (ZooKeeper's "My id N not in the peer list").
fn committed_config_lists(cfg: &ServerConfig, id: u64) -> bool {
    DynamicConfig::read_committed(&cfg.snap_dir()).is_some_and(|c| c.servers.contains_key(&id))
}

impl Raw {
    /// Applies defaults, reads `<dataDir>/myid`, and validates.
    pub(super) fn finish(mut self) -> Result<ServerConfig, ConfigError> {
        let embedded = self.source.is_none();
        let default_address = if embedded {
            EMBEDDED_ADDRESS
        } else {
            WILDCARD_ADDRESS
        };
        let data_dir = self.data_dir_or_default(embedded)?;
        let extended = self.extended_types_enabled.unwrap_or(false);
        let distributed = self.lists_an_ensemble();
        self.read_myid_file(&data_dir, extended, distributed)?;
        self.validate_membership(extended)?;

        let tick = self
            .tick_time
            .as_ref()
            .map_or(DEFAULT_TICK_TIME_MS, |s| s.value);
        let (min_st, max_st) = self.session_timeouts(tick)?;

        let servers: BTreeMap<u64, ServerEntry> = self
            .membership
            .servers
            .iter()
            .map(|(id, (e, _))| (*id, e.clone()))
            .collect();
        let myid = self.myid.as_ref().map(|s| s.value);
        let weights = self.weights(&servers);
        let groups: Vec<QuorumGroup> = self
            .membership
            .groups
            .iter()
            .map(|(gid, (members, _))| QuorumGroup {
                id: *gid,
                members: members.clone(),
            })
            .collect();

        let read_only = self.read_only_mode.unwrap_or(false);
        let whitelist = self.four_letter_words(embedded, read_only);

        let my_client = myid
            .and_then(|id| servers.get(&id))
            .and_then(|e| e.client.clone());
        let (client_address, client_port) =
            self.client_listener(myid, my_client.as_ref(), default_address)?;

        let cfg = ServerConfig {
            source: self.source.clone(),
            tick_time_ms: tick,
            init_limit: self
                .init_limit
                .as_ref()
                .map_or(DEFAULT_INIT_LIMIT, |s| s.value),
            sync_limit: self
                .sync_limit
                .as_ref()
                .map_or(DEFAULT_SYNC_LIMIT, |s| s.value),
            data_log_dir: self
                .data_log_dir
                .clone()
                .unwrap_or_else(|| data_dir.clone()),
            data_dir,
            client_address,
            client_port,
            max_client_cnxns: self.max_client_cnxns.unwrap_or(DEFAULT_MAX_CLIENT_CNXNS),
            min_session_timeout_ms: min_st,
            max_session_timeout_ms: max_st,
            snap_count: self.snap_count.unwrap_or(DEFAULT_SNAP_COUNT),
            autopurge_snap_retain_count: self.snap_retain.unwrap_or(MIN_SNAP_RETAIN_COUNT),
            autopurge_purge_interval_hours: self.purge_interval.unwrap_or(0),
            four_letter_words: whitelist,
            admin_enabled: self.admin_enabled.unwrap_or(true),
            admin_address: self
                .admin_address
                .clone()
                .unwrap_or_else(|| default_address.to_string()),
            admin_port: self.admin_port.unwrap_or(DEFAULT_ADMIN_PORT),
            jute_max_buffer: self.jute_max_buffer.unwrap_or(DEFAULT_JUTE_MAX_BUFFER),
            limits: self.limits,
            reconfig_enabled: self.reconfig_enabled.unwrap_or(false),
            standalone_enabled: self.standalone_enabled.unwrap_or(true),
            extended_types_enabled: extended,
            read_only_mode_enabled: read_only,
            fsync_warning_threshold_ms: self
                .fsync_warning_ms
                .unwrap_or(DEFAULT_FSYNC_WARNING_THRESHOLD_MS),
            super_digest: self.super_digest.clone(),
            admin_token: match &self.admin_token_file {
                Some(path) => Some(read_admin_token(path)?),
                None => None,
            },
            quorum_listen_on_all_ips: self.quorum_listen_on_all_ips.unwrap_or(false),
            dynamic_config_file: self.dynamic_config_file.clone(),
            config_version: self.config_version,
            myid,
            peer_type: self.peer_type,
            servers,
            weights,
            groups,
            join: self.join.clone(),
            join_timeout_ms: self.join_timeout_ms.unwrap_or(DEFAULT_JOIN_TIMEOUT_MS),
            peer_address: self.peer_address.clone(),
            tls: {
                let mut tls = self.tls.clone();
                tls.finish(&self.file)?;
                tls.secure_only = tls.secure_client_port.is_some()
                    && self.client_port.is_none()
                    && my_client.is_none();
                tls
            },
            sasl: {
                let mut sasl = self.sasl.clone();
                sasl.finish(&self.file)?;
                sasl
            },
            extra: self.extra.clone(),
        };
        self.check_own_id(&cfg)?;
        Ok(cfg)
    }

    /// `dataDir`, or the embedded default's; a zoo.cfg must name one.
    fn data_dir_or_default(&self, embedded: bool) -> Result<PathBuf, ConfigError> {
        match (&self.data_dir, embedded) {
            (Some(d), _) => Ok(d.clone()),
            (None, true) => Ok(PathBuf::from(EMBEDDED_DATA_DIR)),
            (None, false) => Err(ConfigError::File {
                file: self.file.clone(),
                message: "dataDir is not set (add dataDir=... or pass --data-dir)".into(),
            }),
        }
    }

    /// Whether the settings as read make this server part of an ensemble (before the
    /// myid file is read): as [`ServerConfig::is_distributed`].
    fn lists_an_ensemble(&self) -> bool {
        let voting = self
            .membership
            .servers
            .values()
            .filter(|(e, _)| e.role == LearnerRole::Participant)
            .count();
        !self.join.is_empty()
            || (!self.membership.servers.is_empty()
                && (!self.standalone_enabled.unwrap_or(true) || voting > 1))
    }

    /// Minimum and maximum session timeout (2 and 20 ticks unless given); the minimum
    /// must not exceed the maximum.
    fn session_timeouts(&self, tick: u32) -> Result<(u32, u32), ConfigError> {
        let min_st = self
            .min_session_timeout
            .as_ref()
            .map_or(tick.saturating_mul(2), |s| s.value);
        let max_st = self
            .max_session_timeout
            .as_ref()
            .map_or(tick.saturating_mul(20), |s| s.value);
        if min_st > max_st {
            return Err(
                match (&self.min_session_timeout, &self.max_session_timeout) {
                    (Some(min), _) => min.loc.err(
                        "minSessionTimeout",
                        format!("{min_st} is larger than maxSessionTimeout ({max_st})"),
                    ),
                    (None, Some(max)) => max.loc.err(
                        "maxSessionTimeout",
                        format!("{max_st} is smaller than minSessionTimeout ({min_st})"),
                    ),
                    (None, None) => ConfigError::File {
                        file: self.file.clone(),
                        message: "minSessionTimeout is larger than maxSessionTimeout".into(),
                    },
                },
            );
        }
        Ok((min_st, max_st))
    }

    /// The `weight.N` values; an observer's is 0 whatever was given.
    fn weights(&self, servers: &BTreeMap<u64, ServerEntry>) -> BTreeMap<u64, u64> {
        let mut weights: BTreeMap<u64, u64> = BTreeMap::new();
        for (id, (w, loc)) in &self.membership.weights {
            if servers
                .get(id)
                .is_some_and(|s| s.role == LearnerRole::Observer)
                && *w != 0
            {
                tracing::warn!(at = %loc, server = id, "observers do not vote; weight ignored");
                weights.insert(*id, 0);
            } else {
                weights.insert(*id, *w);
            }
        }
        weights
    }

    /// The four-letter-word whitelist: as given, else all for the embedded default and
    /// ZooKeeper's default with a zoo.cfg; read-only mode adds `isro`.
    fn four_letter_words(&self, embedded: bool, read_only: bool) -> FourLetterWhitelist {
        let mut whitelist = self.whitelist.clone().unwrap_or_else(|| {
            if embedded {
                FourLetterWhitelist::All
            } else {
                FourLetterWhitelist::zookeeper_default()
            }
        });
        if read_only {
            whitelist.insert("isro");
        }
        whitelist
    }

    /// The client listen address and port. `my_client` is the client address on this
    /// server's own `server.N` line, whose port must agree with `clientPort`.
    fn client_listener(
        &self,
        myid: Option<u64>,
        my_client: Option<&HostPort>,
        default_address: &str,
    ) -> Result<(String, u16), ConfigError> {
        // Client address: flags, else this server's `;clientAddr:port`, else zoo.cfg/defaults.
        let conflict = match (my_client, &self.client_port) {
            (Some(mine), Some(st)) if !self.client_port_from_flag && mine.port != st.value => {
                Some((mine.port, st))
            }
            _ => None,
        };
        if let Some((mine_port, static_port)) = conflict {
            let id = myid.unwrap_or(0);
            let loc = self
                .membership
                .servers
                .get(&id)
                .map(|(_, l)| l.clone())
                .unwrap_or_else(|| static_port.loc.clone());
            return Err(loc.err(
                &format!("server.{id}"),
                format!(
                    "client port {} differs from clientPort={} at {}",
                    mine_port, static_port.value, static_port.loc
                ),
            ));
        }
        let client_port = match (my_client, self.client_port_from_flag) {
            (Some(mine), false) => mine.port,
            _ => self
                .client_port
                .as_ref()
                .map_or(DEFAULT_CLIENT_PORT, |s| s.value),
        };
        // --client-address, else the server line's host (unless it only gave a port), else
        // clientPortAddress, else the default.
        let client_address = match (my_client, &self.client_address) {
            (_, Some(a)) if self.client_address_from_flag => a.clone(),
            (Some(mine), _) if mine.host != WILDCARD_ADDRESS => mine.host.clone(),
            (_, Some(a)) => a.clone(),
            (Some(mine), None) => mine.host.clone(),
            (None, None) => default_address.to_string(),
        };
        Ok((client_address, client_port))
    }

    /// In an ensemble this server needs an id, and one the membership lists (unless it
    /// joins, or a committed config from a reconfig lists it).
    fn check_own_id(&self, cfg: &ServerConfig) -> Result<(), ConfigError> {
        if !cfg.is_distributed() {
            return Ok(());
        }
        match &self.myid {
            None => Err(ConfigError::File {
                file: cfg.data_dir.join("myid").display().to_string(),
                message: "missing: this server's id is needed in an ensemble \
                          (write it to this file or pass --myid)"
                    .into(),
            }),
            Some(id)
                if cfg.join.is_empty()
                    && !cfg.servers.contains_key(&id.value)
                    && !committed_config_lists(cfg, id.value) =>
            {
                let message = format!(
                    "server {} is not listed among the servers ({})",
                    id.value,
                    cfg.servers
                        .keys()
                        .map(|k| format!("server.{k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                Err(if self.myid_from_flag {
                    ConfigError::Flag {
                        flag: "myid",
                        message,
                    }
                } else {
                    id.loc.err("myid", message)
                })
            }
            Some(_) => Ok(()),
        }
    }

    /// Reads `<dataDir>/myid` when present; a `--myid` that disagrees with it is an error.
    /// A standalone server does not need an id, so there a malformed file is only a warning
    /// (Debian's zookeeper package ships a placeholder text in /var/lib/zookeeper/myid).
    fn read_myid_file(
        &mut self,
        data_dir: &Path,
        extended: bool,
        distributed: bool,
    ) -> Result<(), ConfigError> {
        let path = data_dir.join("myid");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(ConfigError::File {
                    file: path.display().to_string(),
                    message: format!("cannot read: {e}"),
                });
            }
        };
        let loc = Loc {
            file: path.display().to_string(),
            line: 1,
        };
        let first = text.lines().next().unwrap_or("").trim();
        let parsed = first
            .parse::<u64>()
            .map_err(|_| format!("expected a server id, got {first:?}"))
            .and_then(|id| check_server_id(id, extended).map(|()| id));
        let id = match parsed {
            Ok(id) => id,
            Err(m) if distributed => return Err(loc.err("myid", m)),
            Err(m) => {
                tracing::warn!(file = %loc.file, "ignoring unusable myid file of a standalone server: {m}");
                return Ok(());
            }
        };
        match &self.myid {
            Some(flag) if flag.value != id => Err(ConfigError::Flag {
                flag: "myid",
                message: format!("{} disagrees with {} ({id})", flag.value, path.display()),
            }),
            Some(_) => Ok(()),
            None => {
                self.myid = Some(Located { value: id, loc });
                Ok(())
            }
        }
    }

    fn validate_membership(&self, extended: bool) -> Result<(), ConfigError> {
        let m = &self.membership;
        for (id, (_, loc)) in &m.servers {
            check_server_id(*id, extended).map_err(|msg| loc.err(&format!("server.{id}"), msg))?;
        }
        for (id, (_, loc)) in &m.weights {
            if !m.servers.contains_key(id) {
                return Err(loc.err(
                    &format!("weight.{id}"),
                    format!("server {id} is not listed (no server.{id} line)"),
                ));
            }
        }
        let mut group_of: BTreeMap<u64, u64> = BTreeMap::new();
        for (gid, (members, loc)) in &m.groups {
            let key = format!("group.{gid}");
            for sid in members {
                match m.servers.get(sid) {
                    None => {
                        return Err(loc.err(
                            &key,
                            format!("server {sid} is not listed (no server.{sid} line)"),
                        ));
                    }
                    Some((e, _)) if e.role == LearnerRole::Observer => {
                        return Err(loc.err(
                            &key,
                            format!(
                                "server {sid} is an observer; only participants belong to groups"
                            ),
                        ));
                    }
                    Some(_) => {}
                }
                if let Some(prev) = group_of.insert(*sid, *gid) {
                    return Err(loc.err(&key, format!("server {sid} is already in group {prev}")));
                }
            }
        }
        if !m.groups.is_empty() {
            for (id, (e, loc)) in &m.servers {
                if e.role == LearnerRole::Participant && !group_of.contains_key(id) {
                    return Err(loc.err(
                        &format!("server.{id}"),
                        "not in any group (every participant must be in a group when group.N lines are given)",
                    ));
                }
            }
        }
        if !m.weights.is_empty() {
            let total: u64 = m
                .servers
                .iter()
                .filter(|(_, (e, _))| e.role == LearnerRole::Participant)
                .map(|(id, _)| m.weights.get(id).map_or(1, |(w, _)| *w))
                .sum();
            if let (0, Some((id, (_, loc)))) = (total, m.weights.iter().next()) {
                return Err(loc.err(
                    &format!("weight.{id}"),
                    "the participants' weights add up to 0",
                ));
            }
        }
        Ok(())
    }
}

pub(super) fn check_server_id(id: u64, extended: bool) -> Result<(), String> {
    let max = if extended {
        MAX_SERVER_ID_EXTENDED
    } else {
        MAX_SERVER_ID
    };
    if id == 0 || id > max {
        let why = if extended {
            " with extendedTypesEnabled"
        } else {
            ""
        };
        return Err(format!(
            "server id must be between 1 and {max}{why}, got {id}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;
    use crate::config::test_support::{assert_errors, cli, parse, temp_dir};

    #[test]
    fn admin_token_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("token");
        std::fs::write(&good, "0123456789abcdef0123\n").unwrap();
        let c = parse(&format!("dataDir=/d\nadmin.tokenFile={}\n", good.display())).unwrap();
        assert_eq!(c.admin_token, Some(Secret("0123456789abcdef0123".into())));
        let short = dir.path().join("short");
        std::fs::write(&short, "abc\n").unwrap();
        let err = parse(&format!(
            "dataDir=/d\nadmin.tokenFile={}\n",
            short.display()
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("at least 16"), "{err}");
        assert!(!err.contains("abc\n"), "{err}");
        let missing = dir.path().join("missing");
        let err = parse(&format!(
            "dataDir=/d\nadmin.tokenFile={}\n",
            missing.display()
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("cannot read the admin token file"), "{err}");
        // The flag overrides zoo.cfg.
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!("dataDir=/d\nadmin.tokenFile={}\n", missing.display()),
        )
        .unwrap();
        let cli = Cli {
            config: Some(cfg),
            admin_token_file: Some(good),
            ..Cli::default()
        };
        let c = ServerConfig::load(&cli).unwrap();
        assert!(c.admin_token.is_some());
    }

    #[test]
    fn single_server_with_standalone_enabled_is_standalone() {
        let c = parse("dataDir=/d\nserver.1=localhost:2888:3888\n").unwrap();
        assert!(c.is_standalone());
        assert_eq!(c.myid, None);
    }

    #[test]
    fn client_port_in_server_line_must_match_static_client_port() {
        let dir = temp_dir();
        let text = "dataDir=/d\nclientPort=2181\nserver.1=a:1:2;2191\nserver.2=b:1:2\n";
        let path = dir.join("zoo.cfg");
        std::fs::write(&path, text).unwrap();
        let e = ServerConfig::load(&cli(&["--config", path.to_str().unwrap(), "--myid", "1"]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:3: server.1: client port 2191 differs from clientPort=2181 at {}:2",
                path.display(),
                path.display()
            )
        );
        // A flag overrides both.
        let c = ServerConfig::load(&cli(&[
            "--config",
            path.to_str().unwrap(),
            "--myid",
            "1",
            "--client-port",
            "3000",
        ]))
        .unwrap();
        assert_eq!(c.client_port, 3000);
    }

    #[test]
    fn client_address_precedence() {
        let base = "dataDir=/d\nclientPortAddress=10.0.0.9\nserver.2=b:1:2\n";
        let load = |line: &str, flags: &[&str]| {
            let text = format!("{base}server.1={line}\n");
            let mut raw = Raw::parse(&text, "zoo.cfg", Path::new(".")).unwrap();
            let mut args = vec!["--myid", "1"];
            args.extend_from_slice(flags);
            raw.apply_cli(&cli(&args)).unwrap();
            raw.finish().unwrap().client_listen_address()
        };
        assert_eq!(load("a:1:2;10.0.0.1:2185", &[]), "10.0.0.1:2185");
        assert_eq!(load("a:1:2;2185", &[]), "10.0.0.9:2185");
        assert_eq!(load("a:1:2", &[]), "10.0.0.9:2181");
        assert_eq!(
            load(
                "a:1:2;10.0.0.1:2185",
                &["--client-address", "::1", "--client-port", "3"]
            ),
            "[::1]:3"
        );
    }

    #[test]
    fn myid_file() {
        let dir = temp_dir();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "dataDir={}\nserver.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\n",
                dir.display()
            ),
        )
        .unwrap();
        let myid = dir.join("myid");
        std::fs::write(&myid, " 3 \n").unwrap();
        let c = ServerConfig::load(&cli(&["--config", cfg.to_str().unwrap()])).unwrap();
        assert_eq!(c.myid, Some(3));
        assert_eq!(c.server_id(), 3);
        assert_eq!(c.my_entry().map(|e| e.id), Some(3));

        // Same id from the flag: fine. A different one: refused.
        assert!(
            ServerConfig::load(&cli(&["--config", cfg.to_str().unwrap(), "--myid", "3"])).is_ok()
        );
        let e = ServerConfig::load(&cli(&["--config", cfg.to_str().unwrap(), "--myid", "2"]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("--myid: 2 disagrees with {} (3)", myid.display())
        );

        std::fs::write(&myid, "three\n").unwrap();
        let e = ServerConfig::load(&cli(&["--config", cfg.to_str().unwrap()])).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:1: myid: expected a server id, got \"three\"",
                myid.display()
            )
        );

        std::fs::write(&myid, "7\n").unwrap();
        let e = ServerConfig::load(&cli(&["--config", cfg.to_str().unwrap()])).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:1: myid: server 7 is not listed among the servers (server.1, server.2, server.3)",
                myid.display()
            )
        );
        std::fs::remove_file(&myid).unwrap();
        let e = ServerConfig::load(&cli(&["--config", cfg.to_str().unwrap(), "--myid", "7"]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--myid: server 7 is not listed among the servers (server.1, server.2, server.3)"
        );
        let e = ServerConfig::load(&cli(&["--config", cfg.to_str().unwrap(), "--myid", "0"]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--myid: server id must be between 1 and 255, got 0"
        );
    }

    /// Each file whose keys disagree and the exact message it produces.
    #[test]
    fn validation_errors_name_file_line_and_key() {
        assert_errors(&[
            (
                "dataDir=/d\nminSessionTimeout=50000\n",
                "zoo.cfg:2: minSessionTimeout: 50000 is larger than maxSessionTimeout (40000)",
            ),
            (
                "dataDir=/d\nmaxSessionTimeout=3000\n",
                "zoo.cfg:2: maxSessionTimeout: 3000 is smaller than minSessionTimeout (4000)",
            ),
            (
                "dataDir=/d\nminSessionTimeout=9000\nmaxSessionTimeout=8000\n",
                "zoo.cfg:2: minSessionTimeout: 9000 is larger than maxSessionTimeout (8000)",
            ),
            (
                "dataDir=/d\nserver.0=zk3:2888:3888\n",
                "zoo.cfg:2: server.0: server id must be between 1 and 255, got 0",
            ),
            (
                "dataDir=/d\nextendedTypesEnabled=true\nserver.255=zk3:2888:3888\n",
                "zoo.cfg:3: server.255: server id must be between 1 and 254 with extendedTypesEnabled, got 255",
            ),
            (
                "dataDir=/d\nserver.1=a:1:2\nserver.2=b:1:2\nweight.3=2\n",
                "zoo.cfg:4: weight.3: server 3 is not listed (no server.3 line)",
            ),
            (
                "dataDir=/d\nserver.1=a:1:2\nserver.2=b:1:2\nweight.1=0\nweight.2=0\n",
                "zoo.cfg:4: weight.1: the participants' weights add up to 0",
            ),
            (
                "dataDir=/d\nserver.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\ngroup.1=1:2\ngroup.2=2:3\n",
                "zoo.cfg:6: group.2: server 2 is already in group 1",
            ),
            (
                "dataDir=/d\nserver.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\ngroup.1=1:2\n",
                "zoo.cfg:4: server.3: not in any group (every participant must be in a group when group.N lines are given)",
            ),
            (
                "dataDir=/d\nserver.1=a:1:2\ngroup.1=1:9\n",
                "zoo.cfg:3: group.1: server 9 is not listed (no server.9 line)",
            ),
            (
                "dataDir=/d\nserver.1=a:1:2\nserver.2=b:1:2:observer\ngroup.1=1:2\n",
                "zoo.cfg:4: group.1: server 2 is an observer; only participants belong to groups",
            ),
            (
                "tickTime=2000\n",
                "zoo.cfg: dataDir is not set (add dataDir=... or pass --data-dir)",
            ),
        ]);
    }
}
