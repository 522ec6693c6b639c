//! The command line of `paddock-server` ([`Cli`], clap flags that can also come from
//! `PADDOCK_*` variables) and how each flag overrides what zoo.cfg said.

use std::path::PathBuf;

use super::dynamic::{parse_host_port, parse_peer_port, split_host_and_ports};
use super::properties::{Loc, Located};
use super::validate::check_server_id;
use super::zoo_cfg::Raw;
use super::{ConfigError, PeerAddress, Secret, SuperDigest};

/// Quorum and election ports `--peer-address` assumes when it names only a host.
pub const DEFAULT_QUORUM_PORT: u16 = 2888;
pub const DEFAULT_ELECTION_PORT: u16 = 3888;

/// Command line of `paddock-server` (DESIGN §6). Flags override zoo.cfg. Each flag can also
/// come from a `PADDOCK_*` environment variable (handy in container specs).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Parser)]
#[command(
    name = "paddock-server",
    version,
    about = "ZooKeeper-compatible coordination server"
)]
pub struct Cli {
    /// A ZooKeeper zoo.cfg; flags override its values.
    #[arg(long, value_name = "FILE", env = "PADDOCK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (zoo.cfg `dataDir`; `dataLogDir` follows it unless set).
    #[arg(long, value_name = "DIR", env = "PADDOCK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// This server's id (otherwise read from <dataDir>/myid).
    #[arg(long, value_name = "N", env = "PADDOCK_MYID")]
    pub myid: Option<u64>,
    /// Derive this server's id from the host name, as a StatefulSet pod (`name-<ordinal>`)
    /// can: myid = ordinal + 1. The host name is $HOSTNAME, else gethostname(2).
    #[arg(long, conflicts_with = "myid")]
    pub myid_from_hostname: bool,
    /// Client port (0 = any free port).
    #[arg(long, value_name = "P", env = "PADDOCK_CLIENT_PORT")]
    pub client_port: Option<u16>,
    /// Address the client port listens on.
    #[arg(long, value_name = "A", env = "PADDOCK_CLIENT_ADDRESS")]
    pub client_address: Option<String>,
    /// Admin HTTP port (0 = any free port).
    #[arg(long, value_name = "P", env = "PADDOCK_ADMIN_PORT")]
    pub admin_port: Option<u16>,
    /// Address the admin HTTP server listens on (zoo.cfg `admin.serverAddress`); a host
    /// name is resolved at start, waiting while it does not resolve yet.
    #[arg(long, value_name = "A", env = "PADDOCK_ADMIN_ADDRESS")]
    pub admin_address: Option<String>,
    /// Existing ensemble members to join through, as HOST:PORT,...
    #[arg(
        long,
        value_name = "HOST:PORT,...",
        value_delimiter = ',',
        env = "PADDOCK_JOIN"
    )]
    pub join: Vec<String>,
    /// How long to try the --join targets before a server listed in the static config
    /// (zoo.cfg or its dynamic file) bootstraps the ensemble from it instead, e.g. `10s`,
    /// `500ms` or plain seconds. A server not listed keeps trying.
    #[arg(long, value_name = "DURATION", env = "PADDOCK_JOIN_TIMEOUT")]
    pub join_timeout: Option<String>,
    /// This server's own quorum address, HOST[:QUORUM[:ELECTION]] (ports default to
    /// 2888:3888), used when no config has a server.<myid> line (a new member joining).
    #[arg(
        long,
        value_name = "HOST[:QUORUM[:ELECTION]]",
        env = "PADDOCK_PEER_ADDRESS"
    )]
    pub peer_address: Option<String>,
    /// The super user's digest, `user:base64(sha1(user:password))` (zoo.cfg `superDigest`).
    /// With it set the admin HTTP asks for the super user's credentials.
    #[arg(
        long,
        value_name = "USER:DIGEST",
        env = "PADDOCK_SUPER_DIGEST",
        hide_env_values = true,
        conflicts_with = "super_digest_file"
    )]
    pub super_digest: Option<Secret>,
    /// A file holding the super user's digest (as --super-digest).
    #[arg(long, value_name = "FILE", env = "PADDOCK_SUPER_DIGEST_FILE")]
    pub super_digest_file: Option<PathBuf>,
    /// A file holding the admin HTTP bearer token (zoo.cfg `admin.tokenFile`): requests
    /// carrying `Authorization: Bearer <token>` pass the admin checks.
    #[arg(long, value_name = "FILE", env = "PADDOCK_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Serve clients that ask for read-only while cut off from the quorum (zoo.cfg
    /// `readonlymode.enabled`, ZooKeeper's `-Dreadonlymode.enabled`). `--read-only-mode`
    /// alone means true.
    #[arg(
        long,
        value_name = "BOOL",
        env = "PADDOCK_READ_ONLY_MODE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub read_only_mode: Option<bool>,
    /// The JAAS login configuration file (ZooKeeper's `java.security.auth.login.config`
    /// system property; also a zoo.cfg key): the `Server` section's DIGEST-MD5 users,
    /// and the QuorumServer/QuorumLearner sections for SASL between servers.
    #[arg(long, value_name = "FILE", env = "PADDOCK_JAAS_CONFIG")]
    pub jaas_config: Option<PathBuf>,
}

/// A listen address given as a flag: a host name or IP, brackets around IPv6 optional.
fn address_flag(flag: &'static str, value: &str) -> Result<String, ConfigError> {
    let addr = value.trim().trim_matches(|c| c == '[' || c == ']');
    if addr.is_empty() {
        return Err(ConfigError::Flag {
            flag,
            message: "must not be empty".into(),
        });
    }
    Ok(addr.to_string())
}

/// Parses `--peer-address`: `HOST[:QUORUM[:ELECTION]]`, ports 2888 and 3888 by default.
fn parse_peer_address(s: &str) -> Result<PeerAddress, String> {
    let shape = || format!("expected HOST[:QUORUM[:ELECTION]], got {s:?}");
    let parts = split_host_and_ports(s.trim()).ok_or_else(shape)?;
    let (host, quorum, election) = match parts.as_slice() {
        [h] => (h, None, None),
        [h, q] => (h, Some(q), None),
        [h, q, e] => (h, Some(q), Some(e)),
        _ => return Err(shape()),
    };
    if host.is_empty() {
        return Err(shape());
    }
    Ok(PeerAddress {
        host: host.clone(),
        quorum_port: quorum.map_or(Ok(DEFAULT_QUORUM_PORT), |q| parse_peer_port(q, "quorum"))?,
        election_port: election.map_or(Ok(DEFAULT_ELECTION_PORT), |e| {
            parse_peer_port(e, "election")
        })?,
    })
}

/// Parses a duration flag: `10s`, `500ms`, `2m`, or plain seconds.
fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit_ms) = if let Some(d) = s.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = s.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = s.strip_suffix('m') {
        (d, 60_000)
    } else {
        (s, 1000)
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(unit_ms)
}

impl Raw {
    pub(super) fn apply_cli(&mut self, cli: &Cli) -> Result<(), ConfigError> {
        if let Some(dir) = &cli.data_dir {
            if dir.as_os_str().is_empty() {
                return Err(ConfigError::Flag {
                    flag: "data-dir",
                    message: "must not be empty".into(),
                });
            }
            self.data_dir = Some(dir.clone());
        }
        if cli.myid_from_hostname {
            self.apply_myid_from_hostname(cli)?;
        }
        if let Some(id) = cli.myid {
            check_server_id(id, self.extended_types_enabled.unwrap_or(false)).map_err(
                |message| ConfigError::Flag {
                    flag: "myid",
                    message,
                },
            )?;
            self.myid = Some(Located {
                value: id,
                loc: Loc {
                    file: "--myid".into(),
                    line: 0,
                },
            });
            self.myid_from_flag = true;
        }
        if let Some(port) = cli.client_port {
            self.client_port = Some(Located {
                value: port,
                loc: Loc {
                    file: "--client-port".into(),
                    line: 0,
                },
            });
            self.client_port_from_flag = true;
        }
        if let Some(addr) = &cli.client_address {
            self.client_address = Some(address_flag("client-address", addr)?);
            self.client_address_from_flag = true;
        }
        if let Some(port) = cli.admin_port {
            self.admin_port = Some(port);
        }
        if let Some(addr) = &cli.admin_address {
            self.admin_address = Some(address_flag("admin-address", addr)?);
        }
        for target in cli.join.iter().filter(|t| !t.trim().is_empty()) {
            let hp = parse_host_port(target).ok_or_else(|| ConfigError::Flag {
                flag: "join",
                message: format!("expected HOST:PORT, got {target:?}"),
            })?;
            self.join.push(hp);
        }
        if let Some(t) = &cli.join_timeout {
            let ms = parse_duration_ms(t).ok_or_else(|| ConfigError::Flag {
                flag: "join-timeout",
                message: format!("expected a duration such as 10s or 500ms, got {t:?}"),
            })?;
            self.join_timeout_ms = Some(ms);
        }
        if let Some(p) = &cli.peer_address {
            self.peer_address =
                Some(parse_peer_address(p).map_err(|message| ConfigError::Flag {
                    flag: "peer-address",
                    message,
                })?);
        }
        self.apply_super_digest(cli)?;
        if let Some(path) = &cli.jaas_config {
            self.sasl.set_jaas_file(path);
        }
        if let Some(enabled) = cli.read_only_mode {
            self.read_only_mode = Some(enabled);
        }
        if let Some(path) = &cli.admin_token_file {
            self.admin_token_file = Some(path.clone());
        }
        Ok(())
    }

    /// `--myid-from-hostname`: the StatefulSet ordinal after the host name's last '-', plus 1.
    fn apply_myid_from_hostname(&mut self, cli: &Cli) -> Result<(), ConfigError> {
        let flag = "myid-from-hostname";
        if cli.myid.is_some() {
            return Err(ConfigError::Flag {
                flag,
                message: "cannot be used together with --myid".into(),
            });
        }
        let host = crate::hostid::own_host_name()
            .map_err(|message| ConfigError::Flag { flag, message })?;
        let id = crate::hostid::myid_from_host_name(&host)
            .and_then(|id| {
                check_server_id(id, self.extended_types_enabled.unwrap_or(false)).map(|()| id)
            })
            .map_err(|message| ConfigError::Flag { flag, message })?;
        self.myid = Some(Located {
            value: id,
            loc: Loc {
                file: format!("--myid-from-hostname (host name {host:?})"),
                line: 0,
            },
        });
        self.myid_from_flag = true;
        Ok(())
    }

    /// `--super-digest` / `PADDOCK_SUPER_DIGEST` or `--super-digest-file`: override zoo.cfg's
    /// `superDigest`. Error messages never repeat the value.
    fn apply_super_digest(&mut self, cli: &Cli) -> Result<(), ConfigError> {
        let (flag, text) = match (&cli.super_digest, &cli.super_digest_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Flag {
                    flag: "super-digest-file",
                    message: "cannot be used together with --super-digest (PADDOCK_SUPER_DIGEST)"
                        .into(),
                });
            }
            (Some(secret), None) => ("super-digest", secret.0.clone()),
            (None, Some(path)) => (
                "super-digest-file",
                std::fs::read_to_string(path).map_err(|e| ConfigError::Flag {
                    flag: "super-digest-file",
                    message: format!("cannot read {}: {e}", path.display()),
                })?,
            ),
            (None, None) => return Ok(()),
        };
        self.super_digest = Some(SuperDigest::parse(&text).ok_or(ConfigError::Flag {
            flag,
            message: "expected user:base64(sha1(user:password)), as zoo.cfg's superDigest".into(),
        })?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{cli, temp_dir};
    use crate::config::{
        DEFAULT_JOIN_TIMEOUT_MS, DynamicConfig, FourLetterWhitelist, HostPort, ServerConfig,
    };
    use clap::{CommandFactory, Parser};
    use std::collections::BTreeMap;

    #[test]
    fn embedded_default_when_nothing_given() {
        let dir = temp_dir();
        let data = dir.join("paddock-data");
        // --data-dir to avoid touching ./paddock-data; everything else is the embedded default.
        let c = ServerConfig::load(&cli(&["--data-dir", data.to_str().unwrap()])).unwrap();
        let mut expected = ServerConfig::embedded_default();
        expected.data_dir = data.clone();
        expected.data_log_dir = data;
        assert_eq!(c, expected);
        assert_eq!(c.client_listen_address(), "127.0.0.1:2181");
        assert_eq!(c.admin_listen_address(), "127.0.0.1:8080");
        assert_eq!(c.four_letter_words, FourLetterWhitelist::All);
        assert!(c.is_standalone());
        let d = ServerConfig::embedded_default();
        assert_eq!(d.data_dir, PathBuf::from("./paddock-data"));
    }

    #[test]
    fn read_only_mode_from_zoo_cfg_flag_and_env() {
        let dir = temp_dir();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(&cfg, "dataDir=/d\nreadonlymode.enabled=true\n").unwrap();
        let load = |args: &[&str]| {
            let mut argv = vec!["paddock-server"];
            argv.extend_from_slice(args);
            ServerConfig::load(&Cli::try_parse_from(argv).unwrap()).unwrap()
        };
        let path = cfg.to_str().unwrap();
        assert!(load(&["--config", path]).read_only_mode_enabled);
        // The flag overrides zoo.cfg; alone it means true.
        assert!(!load(&["--config", path, "--read-only-mode=false"]).read_only_mode_enabled);
        let c = load(&["--read-only-mode"]);
        assert!(c.read_only_mode_enabled && c.four_letter_words.allows("isro"));
        assert!(!load(&[]).read_only_mode_enabled);
        // PADDOCK_READ_ONLY_MODE is the flag's variable (clap reads it; "1"/"yes" too).
        let arg = Cli::command()
            .get_arguments()
            .find(|a| a.get_id() == "read_only_mode")
            .and_then(|a| a.get_env().map(|e| e.to_os_string()));
        assert_eq!(
            arg.as_deref(),
            Some(std::ffi::OsStr::new("PADDOCK_READ_ONLY_MODE"))
        );
        let parsed = Cli::try_parse_from(["paddock-server", "--read-only-mode=yes"]).unwrap();
        assert_eq!(parsed.read_only_mode, Some(true));
    }

    #[test]
    fn flags_override_the_file() {
        let dir = temp_dir();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            "dataDir=/from/file\nclientPort=2181\nclientPortAddress=10.1.1.1\nadmin.serverPort=8081\n",
        )
        .unwrap();
        let data = dir.join("flagdata");
        let c = ServerConfig::load(&cli(&[
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--client-port",
            "12181",
            "--client-address",
            "127.0.0.5",
            "--admin-port",
            "0",
            "--join",
            "zk1:2181,[::1]:2182",
            "--myid",
            "4",
        ]))
        .unwrap();
        assert_eq!(c.source, Some(cfg.clone()));
        assert_eq!(c.data_dir, data);
        assert_eq!(
            c.data_log_dir, data,
            "dataLogDir follows the overridden dataDir"
        );
        assert_eq!(c.client_listen_address(), "127.0.0.5:12181");
        assert_eq!(c.admin_port, 0);
        assert_eq!(c.admin_address, "0.0.0.0");
        assert_eq!(
            c.join,
            vec![
                HostPort {
                    host: "zk1".into(),
                    port: 2181
                },
                HostPort {
                    host: "::1".into(),
                    port: 2182
                }
            ]
        );
        assert_eq!(c.myid, Some(4));
        assert!(c.is_distributed());
    }

    #[test]
    fn myid_from_hostname_excludes_myid() {
        let e = Cli::try_parse_from(["paddock-server", "--myid", "1", "--myid-from-hostname"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot be used with"), "{e}");
        // Also when the Cli is built in code (PADDOCK_MYID would reach clap as --myid).
        let dir = temp_dir();
        let both = Cli {
            myid: Some(1),
            myid_from_hostname: true,
            data_dir: Some(dir.to_path_buf()),
            ..Cli::default()
        };
        assert_eq!(
            ServerConfig::load(&both).unwrap_err().to_string(),
            "--myid-from-hostname: cannot be used together with --myid"
        );
    }

    #[test]
    fn peer_address_makes_a_new_members_own_line() {
        let dir = temp_dir();
        let d = dir.to_str().unwrap();
        let base = ["--data-dir", d, "--myid", "4", "--join", "svc:2181"];
        let with = |extra: &[&str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            ServerConfig::load(&cli(&v))
        };
        let c = with(&[
            "--peer-address",
            "zk-3.h.ns",
            "--client-address",
            "10.0.0.4",
        ])
        .unwrap();
        assert_eq!(
            c.peer_address,
            Some(PeerAddress {
                host: "zk-3.h.ns".into(),
                quorum_port: 2888,
                election_port: 3888
            })
        );
        let empty = DynamicConfig {
            servers: BTreeMap::new(),
            weights: BTreeMap::new(),
            groups: Vec::new(),
            version: 0,
        };
        assert_eq!(
            c.own_entry(&empty).unwrap().spec(),
            "zk-3.h.ns:2888:3888:participant;10.0.0.4:2181"
        );
        let c = with(&["--peer-address", "zk-3.h.ns:2890"]).unwrap();
        assert_eq!(c.peer_address.as_ref().unwrap().quorum_port, 2890);
        assert_eq!(c.peer_address.as_ref().unwrap().election_port, 3888);
        let c = with(&["--peer-address", "[::1]:1:2"]).unwrap();
        assert_eq!(
            c.own_entry(&empty).unwrap().spec(),
            "[::1]:1:2:participant;127.0.0.1:2181"
        );
        // A config that lists this server wins over --peer-address.
        let mut listed = empty.clone();
        listed
            .servers
            .insert(4, DynamicConfig::parse_server(4, "zk4:1:2;2181").unwrap());
        assert_eq!(
            c.own_entry(&listed).unwrap().spec(),
            "zk4:1:2:participant;0.0.0.0:2181"
        );
        for bad in ["", ":2888", "h:0", "h:1:2:3", "h:x"] {
            let e = with(&["--peer-address", bad]).unwrap_err().to_string();
            assert!(e.starts_with("--peer-address: "), "{bad}: {e}");
        }
    }

    #[test]
    fn join_timeout_durations() {
        let dir = temp_dir();
        let d = dir.to_str().unwrap();
        let load = |t: &str| {
            ServerConfig::load(&cli(&[
                "--data-dir",
                d,
                "--myid",
                "1",
                "--join",
                "svc:2181",
                "--join-timeout",
                t,
            ]))
        };
        assert_eq!(load("10s").unwrap().join_timeout_ms, 10_000);
        assert_eq!(load("500ms").unwrap().join_timeout_ms, 500);
        assert_eq!(load("3").unwrap().join_timeout_ms, 3_000);
        assert_eq!(load("1m").unwrap().join_timeout_ms, 60_000);
        assert_eq!(
            load("soon").unwrap_err().to_string(),
            "--join-timeout: expected a duration such as 10s or 500ms, got \"soon\""
        );
        let c = ServerConfig::load(&cli(&["--data-dir", d, "--myid", "1", "--join", "s:1"]));
        assert_eq!(c.unwrap().join_timeout_ms, DEFAULT_JOIN_TIMEOUT_MS);
    }

    #[test]
    fn super_digest_from_flag_env_form_or_file() {
        let dir = temp_dir();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!("dataDir={}\nsuperDigest=super:AAAA\n", dir.display()),
        )
        .unwrap();
        let c = cfg.to_str().unwrap();
        let digest = "super:lK75jTNcA+U9vtVEw5vB51mj/w4=";
        let loaded = ServerConfig::load(&cli(&["--config", c, "--super-digest", digest])).unwrap();
        let d = loaded.super_digest.clone().unwrap();
        assert!(d.accepts("super:secret"));
        assert!(!d.accepts("super:Secret"));
        assert!(!d.accepts("other:secret"));
        // Never in debug output or the serialized config.
        assert!(!format!("{loaded:?}").contains("lK75"));
        assert!(!serde_json::to_string(&loaded).unwrap().contains("lK75"));
        let file = dir.join("digest");
        std::fs::write(&file, format!("{digest}\n")).unwrap();
        let f = file.to_str().unwrap();
        let loaded = ServerConfig::load(&cli(&["--config", c, "--super-digest-file", f])).unwrap();
        assert!(loaded.super_digest.unwrap().accepts("super:secret"));
        // zoo.cfg's alone still counts.
        let loaded = ServerConfig::load(&cli(&["--config", c])).unwrap();
        assert_eq!(loaded.super_digest.unwrap().digest, "AAAA");
        let e = ServerConfig::load(&cli(&["--config", c, "--super-digest", "no-colon-secret"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--super-digest: expected"), "{e}");
        assert!(!e.contains("no-colon-secret"), "{e}");
        let both = Cli::try_parse_from([
            "paddock-server",
            "--super-digest",
            digest,
            "--super-digest-file",
            f,
        ]);
        assert!(both.is_err());
        let missing = dir.join("absent");
        let e = ServerConfig::load(&cli(&[
            "--config",
            c,
            "--super-digest-file",
            missing.to_str().unwrap(),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("--super-digest-file: cannot read"), "{e}");
    }

    #[test]
    fn join_requires_an_id_and_valid_targets() {
        let dir = temp_dir();
        let e = ServerConfig::load(&cli(&[
            "--data-dir",
            dir.to_str().unwrap(),
            "--join",
            "zk1:2181",
        ]))
        .unwrap_err();
        assert!(e.to_string().ends_with("myid: missing: this server's id is needed in an ensemble (write it to this file or pass --myid)"), "{e}");
        let c = ServerConfig::load(&cli(&[
            "--data-dir",
            dir.to_str().unwrap(),
            "--join",
            "zk1:2181",
            "--myid",
            "4",
        ]))
        .unwrap();
        assert!(c.is_distributed());
        let e = ServerConfig::load(&cli(&[
            "--data-dir",
            dir.to_str().unwrap(),
            "--join",
            "zk1",
        ]))
        .unwrap_err();
        assert_eq!(e.to_string(), "--join: expected HOST:PORT, got \"zk1\"");
    }

    #[test]
    fn missing_config_file() {
        let e = ServerConfig::load(&cli(&["--config", "/nonexistent/zoo.cfg"])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/zoo.cfg: cannot read: "),
            "{e}"
        );
    }

    #[test]
    fn admin_address_flag_overrides_admin_server_address() {
        let dir = temp_dir();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            "dataDir=/d\nadmin.serverAddress=127.0.0.2\nadmin.serverPort=9090\n",
        )
        .unwrap();
        let from_file = ServerConfig::load(&cli(&["--config", cfg.to_str().unwrap()])).unwrap();
        assert_eq!(from_file.admin_listen_address(), "127.0.0.2:9090");
        let c = ServerConfig::load(&cli(&[
            "--config",
            cfg.to_str().unwrap(),
            "--admin-address",
            "[::1]",
        ]))
        .unwrap();
        assert_eq!(c.admin_address, "::1");
        assert_eq!(c.admin_listen_address(), "[::1]:9090");
        let embedded = ServerConfig::load(&cli(&["--admin-address", "127.0.0.9"])).unwrap();
        assert_eq!(embedded.admin_listen_address(), "127.0.0.9:8080");
        let err = ServerConfig::load(&cli(&["--admin-address", " "])).unwrap_err();
        assert_eq!(err.to_string(), "--admin-address: must not be empty");
    }

    #[test]
    fn cli_flags_parse() {
        let c = cli(&[
            "--config",
            "zoo.cfg",
            "--data-dir",
            "d",
            "--myid",
            "2",
            "--client-port",
            "2182",
            "--client-address",
            "0.0.0.0",
            "--admin-port",
            "8081",
            "--join",
            "a:1,b:2",
        ]);
        assert_eq!(c.config, Some(PathBuf::from("zoo.cfg")));
        assert_eq!(c.data_dir, Some(PathBuf::from("d")));
        assert_eq!(c.myid, Some(2));
        assert_eq!(c.client_port, Some(2182));
        assert_eq!(c.client_address.as_deref(), Some("0.0.0.0"));
        assert_eq!(c.admin_port, Some(8081));
        assert_eq!(c.join, vec!["a:1".to_string(), "b:2".to_string()]);
        assert!(Cli::try_parse_from(["paddock-server", "--client-port", "70000"]).is_err());
    }
}
