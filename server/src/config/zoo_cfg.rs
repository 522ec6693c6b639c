//! Reading zoo.cfg: each key of the properties file read and checked into [`Raw`], the
//! settings as given with the line each came from. Defaults and the checks across keys
//! come after, in `validate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::dynamic::{Membership, parse_dynamic_file, version_from_file_name};
use super::properties::{Loc, Located, parse_properties};
use super::{
    ConfigError, FourLetterWhitelist, HostPort, LearnerRole, MIN_SNAP_RETAIN_COUNT, NetLimits,
    PeerAddress, SaslConfig, SuperDigest, TlsConfig, zk_keys,
};

/// Settings as read, with where they were read.
#[derive(Debug, Clone, Default)]
pub(super) struct Raw {
    pub(super) source: Option<PathBuf>,
    pub(super) file: String,
    pub(super) tick_time: Option<Located<u32>>,
    pub(super) init_limit: Option<Located<u32>>,
    pub(super) sync_limit: Option<Located<u32>>,
    pub(super) data_dir: Option<PathBuf>,
    pub(super) data_log_dir: Option<PathBuf>,
    pub(super) client_port: Option<Located<u16>>,
    pub(super) client_port_from_flag: bool,
    pub(super) client_address: Option<String>,
    pub(super) client_address_from_flag: bool,
    pub(super) max_client_cnxns: Option<u32>,
    pub(super) min_session_timeout: Option<Located<u32>>,
    pub(super) max_session_timeout: Option<Located<u32>>,
    pub(super) snap_count: Option<u64>,
    pub(super) snap_retain: Option<u32>,
    pub(super) purge_interval: Option<u32>,
    pub(super) whitelist: Option<FourLetterWhitelist>,
    pub(super) admin_enabled: Option<bool>,
    pub(super) admin_address: Option<String>,
    pub(super) admin_port: Option<u16>,
    pub(super) jute_max_buffer: Option<u32>,
    pub(super) limits: NetLimits,
    pub(super) reconfig_enabled: Option<bool>,
    pub(super) standalone_enabled: Option<bool>,
    pub(super) extended_types_enabled: Option<bool>,
    pub(super) read_only_mode: Option<bool>,
    pub(super) fsync_warning_ms: Option<u64>,
    pub(super) super_digest: Option<SuperDigest>,
    pub(super) dynamic_config_file: Option<PathBuf>,
    pub(super) config_version: u64,
    pub(super) peer_type: Option<LearnerRole>,
    pub(super) membership: Membership,
    pub(super) myid: Option<Located<u64>>,
    pub(super) myid_from_flag: bool,
    pub(super) join: Vec<HostPort>,
    pub(super) join_timeout_ms: Option<u64>,
    pub(super) peer_address: Option<PeerAddress>,
    pub(super) quorum_listen_on_all_ips: Option<bool>,
    pub(super) admin_token_file: Option<PathBuf>,
    pub(super) tls: TlsConfig,
    pub(super) sasl: SaslConfig,
    /// ZooKeeper keys without effect here, with why (logged once, at info).
    pub(super) no_effect: Vec<(String, &'static str)>,
    pub(super) extra: BTreeMap<String, String>,
}

pub(super) fn parse_int(
    loc: &Loc,
    key: &str,
    value: &str,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let v = value
        .parse::<i64>()
        .map_err(|_| loc.err(key, format!("expected an integer, got {value:?}")))?;
    if v < min || v > max {
        return Err(loc.err(key, format!("must be between {min} and {max}, got {v}")));
    }
    Ok(v)
}

/// A positive byte count up to 2^31-1, decimal or 0x hex (as jute.maxbuffer is written).
fn parse_bytes(loc: &Loc, key: &str, value: &str) -> Result<u32, ConfigError> {
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => value.parse::<i64>().ok(),
    };
    match parsed {
        Some(v) if v > 0 && v <= i64::from(i32::MAX) => Ok(v as u32),
        _ => Err(loc.err(
            key,
            format!("expected a positive byte count (decimal or 0x hex), got {value:?}"),
        )),
    }
}

pub(super) fn parse_bool(loc: &Loc, key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(loc.err(key, format!("expected true or false, got {value:?}"))),
    }
}

impl Raw {
    pub(super) fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Raw, ConfigError> {
        let mut raw = Raw {
            file: file.to_string(),
            ..Raw::default()
        };
        let mut static_membership = Membership::default();
        let mut seen: BTreeMap<String, Loc> = BTreeMap::new();
        for prop in parse_properties(text, file)? {
            let loc = Loc {
                file: file.to_string(),
                line: prop.line,
            };
            if !prop.key.starts_with("server.")
                && !prop.key.starts_with("weight.")
                && !prop.key.starts_with("group.")
                && let Some(prev) = seen.insert(prop.key.clone(), loc.clone())
            {
                tracing::warn!(key = %prop.key, first = %prev, again = %loc, "key given twice; the last value wins");
            }
            raw.setting(&prop.key, &prop.value, &loc, &mut static_membership)?;
        }
        if !raw.no_effect.is_empty() {
            let keys: Vec<String> = raw
                .no_effect
                .iter()
                .map(|(key, why)| format!("{key} ({why})"))
                .collect();
            tracing::info!(
                file,
                "ZooKeeper settings without effect here: {}",
                keys.join("; ")
            );
        }
        match &raw.dynamic_config_file {
            Some(dyn_path) => {
                let resolved = if dyn_path.is_absolute() {
                    dyn_path.clone()
                } else {
                    base_dir.join(dyn_path)
                };
                if !static_membership.is_empty() {
                    tracing::warn!(
                        file,
                        dynamic = %resolved.display(),
                        "server/weight/group lines in the static file are ignored because dynamicConfigFile is set"
                    );
                }
                raw.membership = parse_dynamic_file(&resolved)?;
                raw.config_version = version_from_file_name(&resolved).unwrap_or(0);
                raw.dynamic_config_file = Some(resolved);
            }
            None => raw.membership = static_membership,
        }
        Ok(raw)
    }

    /// Reads one key: membership lines, then the keys Paddock knows (with or without a
    /// `zookeeper.` prefix), then the TLS and SASL families, then ZooKeeper's keys that
    /// Paddock does not implement; anything else is kept in `extra`.
    fn setting(
        &mut self,
        key: &str,
        value: &str,
        loc: &Loc,
        membership: &mut Membership,
    ) -> Result<(), ConfigError> {
        if membership.accept(key, value, loc)? {
            return Ok(());
        }
        let canonical = key.strip_prefix("zookeeper.").unwrap_or(key);
        if self.server_setting(canonical, key, value, loc)?
            || self.service_setting(canonical, key, value, loc)?
            || self.ensemble_setting(canonical, key, value, loc)?
        {
            return Ok(());
        }
        match canonical {
            k if self.tls.accept(k, value, loc)? => {}
            k if self.sasl.accept(k, value, loc)? => {}
            k if let Some(verdict) = zk_keys::classify(k, value) => match verdict {
                zk_keys::Verdict::Refuse(what) => return Err(loc.err(key, what)),
                zk_keys::Verdict::NoEffect(why) => self.no_effect.push((key.to_string(), why)),
            },
            _ => {
                tracing::warn!(key, at = %loc, "unknown configuration key kept in extra");
                self.extra.insert(key.to_string(), value.to_string());
            }
        }
        Ok(())
    }

    /// Timing, directories, the client port and sessions, snapshots; `Ok(false)` for
    /// another key. `canonical` is `key` without a `zookeeper.` prefix.
    fn server_setting(
        &mut self,
        canonical: &str,
        key: &str,
        value: &str,
        loc: &Loc,
    ) -> Result<bool, ConfigError> {
        let set32 = |v: i64| Located {
            value: v as u32,
            loc: loc.clone(),
        };
        let u32max = i64::from(u32::MAX);
        match canonical {
            "tickTime" => self.tick_time = Some(set32(parse_int(loc, key, value, 1, u32max)?)),
            "initLimit" => self.init_limit = Some(set32(parse_int(loc, key, value, 1, u32max)?)),
            "syncLimit" => self.sync_limit = Some(set32(parse_int(loc, key, value, 1, u32max)?)),
            "dataDir" | "dataLogDir" => {
                if value.is_empty() {
                    return Err(loc.err(key, "must not be empty"));
                }
                if canonical == "dataDir" {
                    self.data_dir = Some(PathBuf::from(value));
                } else {
                    self.data_log_dir = Some(PathBuf::from(value));
                }
            }
            "clientPort" => {
                self.client_port = Some(Located {
                    value: parse_int(loc, key, value, 0, 65535)? as u16,
                    loc: loc.clone(),
                })
            }
            "clientPortAddress" => {
                if value.is_empty() {
                    return Err(loc.err(key, "must not be empty"));
                }
                self.client_address = Some(value.trim_matches(|c| c == '[' || c == ']').into())
            }
            "maxClientCnxns" => {
                self.max_client_cnxns = Some(parse_int(loc, key, value, 0, u32max)? as u32)
            }
            "minSessionTimeout" | "maxSessionTimeout" => {
                // -1 means "use the default", as in ZooKeeper.
                let v = parse_int(loc, key, value, -1, u32max)?;
                let s = (v >= 0).then(|| set32(v));
                if canonical == "minSessionTimeout" {
                    self.min_session_timeout = s;
                } else {
                    self.max_session_timeout = s;
                }
            }
            "snapCount" => self.snap_count = Some(parse_int(loc, key, value, 1, i64::MAX)? as u64),
            "autopurge.snapRetainCount" => {
                let v = parse_int(loc, key, value, i64::from(i32::MIN), u32max)?;
                if v < i64::from(MIN_SNAP_RETAIN_COUNT) {
                    tracing::warn!(
                        at = %loc,
                        value = v,
                        "autopurge.snapRetainCount below {MIN_SNAP_RETAIN_COUNT}; using {MIN_SNAP_RETAIN_COUNT}"
                    );
                }
                self.snap_retain = Some((v.max(i64::from(MIN_SNAP_RETAIN_COUNT))) as u32);
            }
            "autopurge.purgeInterval" => {
                // ZooKeeper treats any value <= 0 as "off".
                let v = parse_int(loc, key, value, i64::from(i32::MIN), u32max)?;
                self.purge_interval = Some(v.max(0) as u32);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The four-letter words, the admin server, message and connection limits;
    /// `Ok(false)` for another key.
    fn service_setting(
        &mut self,
        canonical: &str,
        key: &str,
        value: &str,
        loc: &Loc,
    ) -> Result<bool, ConfigError> {
        let i32max = i64::from(i32::MAX);
        match canonical {
            "4lw.commands.whitelist" => self.whitelist = Some(FourLetterWhitelist::parse(value)),
            "admin.enableServer" => self.admin_enabled = Some(parse_bool(loc, key, value)?),
            "admin.serverAddress" => {
                if value.is_empty() {
                    return Err(loc.err(key, "must not be empty"));
                }
                self.admin_address = Some(value.trim_matches(|c| c == '[' || c == ']').into())
            }
            "admin.serverPort" => {
                self.admin_port = Some(parse_int(loc, key, value, 0, 65535)? as u16)
            }
            "admin.tokenFile" => {
                if value.is_empty() {
                    return Err(loc.err(key, "must not be empty"));
                }
                self.admin_token_file = Some(PathBuf::from(value));
            }
            "jute.maxbuffer" => self.jute_max_buffer = Some(parse_bytes(loc, key, value)?),
            "globalOutstandingLimit" => {
                self.limits.global_outstanding = parse_int(loc, key, value, 1, i32max)? as u32
            }
            "paddock.connOutstandingLimit" => {
                self.limits.conn_outstanding = parse_int(loc, key, value, 1, i32max)? as u32
            }
            "paddock.connQueuedReplyBytes" => {
                self.limits.conn_queued_reply_bytes = parse_bytes(loc, key, value)?
            }
            "paddock.quorumMaxFrame" => {
                self.limits.quorum_max_frame = parse_bytes(loc, key, value)?
            }
            "fsync.warningthresholdms" => {
                self.fsync_warning_ms = Some(parse_int(loc, key, value, 0, i64::MAX)? as u64)
            }
            "superDigest" | "DigestAuthenticationProvider.superDigest" => {
                self.super_digest = Some(
                    SuperDigest::parse(value)
                        .ok_or_else(|| loc.err(key, "expected user:base64digest"))?,
                );
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Switches of the ensemble and of this server's part in it; `Ok(false)` for another
    /// key.
    fn ensemble_setting(
        &mut self,
        canonical: &str,
        key: &str,
        value: &str,
        loc: &Loc,
    ) -> Result<bool, ConfigError> {
        match canonical {
            "reconfigEnabled" => self.reconfig_enabled = Some(parse_bool(loc, key, value)?),
            "standaloneEnabled" => self.standalone_enabled = Some(parse_bool(loc, key, value)?),
            "extendedTypesEnabled" => {
                self.extended_types_enabled = Some(parse_bool(loc, key, value)?)
            }
            "readonlymode.enabled" => self.read_only_mode = Some(parse_bool(loc, key, value)?),
            "dynamicConfigFile" => {
                if value.is_empty() {
                    return Err(loc.err(key, "must not be empty"));
                }
                self.dynamic_config_file = Some(PathBuf::from(value));
            }
            "peerType" => {
                self.peer_type = Some(match value.to_ascii_lowercase().as_str() {
                    "participant" => LearnerRole::Participant,
                    "observer" => LearnerRole::Observer,
                    _ => {
                        return Err(loc.err(
                            key,
                            format!("expected participant or observer, got {value:?}"),
                        ));
                    }
                })
            }
            "version" => {
                // Static (backward-compatible) membership may carry its version, in hex.
                let v = u64::from_str_radix(value, 16).map_err(|_| {
                    loc.err(
                        key,
                        format!("expected a hexadecimal config version, got {value:?}"),
                    )
                })?;
                self.config_version = v;
            }
            "quorumListenOnAllIPs" => {
                self.quorum_listen_on_all_ips = Some(parse_bool(loc, key, value)?)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{assert_errors, parse};
    use crate::config::{ClientAuth, QuorumKind, Secret, StoreType};

    #[test]
    fn connection_and_quorum_limits_default_and_are_honoured() {
        let c = parse("dataDir=/d\n").unwrap();
        assert_eq!(c.limits, NetLimits::default());
        assert_eq!(c.limits.global_outstanding, 1000);
        let c = parse(
            "dataDir=/d\nglobalOutstandingLimit=50\npaddock.connOutstandingLimit=10\n\
             paddock.connQueuedReplyBytes=0x100000\npaddock.quorumMaxFrame=33554432\n",
        )
        .unwrap();
        assert_eq!(
            c.limits,
            NetLimits {
                global_outstanding: 50,
                conn_outstanding: 10,
                conn_queued_reply_bytes: 1 << 20,
                quorum_max_frame: 32 << 20,
            }
        );
        let err = parse("dataDir=/d\nglobalOutstandingLimit=0\n").unwrap_err();
        assert!(err.to_string().contains("globalOutstandingLimit"), "{err}");
        let err = parse("dataDir=/d\npaddock.quorumMaxFrame=-1\n").unwrap_err();
        assert!(err.to_string().contains("paddock.quorumMaxFrame"), "{err}");
    }

    #[test]
    fn a_setting_that_would_weaken_security_stops_the_start() {
        for (line, key) in [
            ("ssl.crl=true", "ssl.crl"),
            ("ssl.quorum.ocsp=true", "ssl.quorum.ocsp"),
            (
                "ssl.context.supplier.class=x.Y",
                "ssl.context.supplier.class",
            ),
            ("skipACL=yes", "skipACL"),
            ("enforceQuota=true", "enforceQuota"),
        ] {
            let err = parse(&format!("dataDir=/d\nclientPort=2181\n{line}\n")).unwrap_err();
            let text = err.to_string();
            // zoo.cfg:3: <key>: ... what to do.
            assert!(text.starts_with(&format!("zoo.cfg:3: {key}: ")), "{text}");
            assert!(text.to_lowercase().contains("remove it"), "{text}");
        }
    }

    #[test]
    fn tls_keys_are_read_and_what_tls_needs_is_checked() {
        let c = parse(
            "dataDir=/d\nsecureClientPort=2182\nsecureClientPortAddress=[::1]\n\
             ssl.keyStore.location=/k.jks\nssl.keyStore.password=pw\n\
             zookeeper.ssl.trustStore.location=/t.p12\nssl.trustStore.type=PKCS12\n\
             ssl.clientAuth=want\nssl.enabledProtocols=TLSv1.3, TLSv1.2\n\
             sslQuorum=true\nssl.quorum.keyStore.location=/q.pem\n\
             ssl.quorum.trustStore.location=/qt.pem\nssl.quorum.hostnameVerification=false\n\
             X509AuthenticationProvider.superUser=CN=admin\n",
        )
        .unwrap();
        assert_eq!(c.tls.secure_client_port, Some(2182));
        assert!(
            c.tls.secure_only,
            "no clientPort: the TLS port is the only one"
        );
        let both = parse(
            "dataDir=/d\nclientPort=2181\nsecureClientPort=2182\nssl.clientAuth=none\n\
             ssl.keyStore.location=/k.pem\n",
        )
        .unwrap();
        assert!(!both.tls.secure_only);
        assert_eq!(c.tls.secure_client_address.as_deref(), Some("::1"));
        assert_eq!(c.tls.client.key_store.password, Some(Secret("pw".into())));
        assert_eq!(c.tls.client.trust_store.store_type, Some(StoreType::Pkcs12));
        assert_eq!(c.tls.client.client_auth, ClientAuth::Want);
        assert_eq!(
            c.tls.client.enabled_protocols,
            Some(vec!["TLSv1.3".to_string(), "TLSv1.2".to_string()])
        );
        assert!(c.tls.ssl_quorum && !c.tls.quorum.hostname_verification);
        assert_eq!(c.tls.x509_super_user.as_deref(), Some("CN=admin"));
        assert!(c.extra.is_empty(), "{:?}", c.extra);
        // The password never shows in the serialized config (conf, envi).
        assert!(!serde_json::to_string(&c).unwrap().contains("\"pw\""));

        for (text, says) in [
            (
                "secureClientPort=2182\n",
                "secureClientPort needs a key store",
            ),
            (
                "secureClientPort=2182\nssl.keyStore.location=/k.pem\n",
                "needs a trust store",
            ),
            (
                "sslQuorum=true\nssl.quorum.keyStore.location=/k.pem\nssl.quorum.clientAuth=none\n",
                "ssl.quorum.trustStore.location",
            ),
            ("ssl.clientAuth=maybe\n", "expected none, want or need"),
            ("ssl.keyStore.type=BCFKS\n", "BCFKS is not implemented"),
            ("ssl.authProvider=my.Provider\n", "only the x509 provider"),
        ] {
            let err = parse(&format!("dataDir=/d\n{text}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
        // Without a TLS port the stores are not needed.
        assert!(parse("dataDir=/d\nssl.clientAuth=none\nsecureClientPort=-1\n").is_ok());
    }

    #[test]
    fn settings_without_effect_start_and_are_not_kept_as_unknown() {
        let c = parse(
            "dataDir=/d\nsecureClientPort=-1\nforceSync=no\nskipACL=no\n\
             quorum.auth.enableSasl=false\nmetricsProvider.httpPort=7000\n",
        )
        .unwrap();
        assert!(c.extra.is_empty(), "{:?}", c.extra);
        assert!(!c.quorum_listen_on_all_ips);
    }

    #[test]
    fn zoo_cfg_defaults() {
        let c = parse("dataDir=/nonexistent/zookeeper\n").unwrap();
        assert_eq!(c.tick_time_ms, 2000);
        assert_eq!(c.init_limit, 10);
        assert_eq!(c.sync_limit, 5);
        assert_eq!(c.data_dir, PathBuf::from("/nonexistent/zookeeper"));
        assert_eq!(c.data_log_dir, c.data_dir);
        assert_eq!(c.client_port, 2181);
        assert_eq!(c.client_address, "0.0.0.0");
        assert_eq!(c.max_client_cnxns, 60);
        assert_eq!(c.min_session_timeout_ms, 4000);
        assert_eq!(c.max_session_timeout_ms, 40000);
        assert_eq!(c.snap_count, 100_000);
        assert_eq!(c.autopurge_snap_retain_count, 3);
        assert_eq!(c.autopurge_purge_interval_hours, 0);
        assert_eq!(
            c.four_letter_words,
            FourLetterWhitelist::zookeeper_default()
        );
        assert!(c.four_letter_words.allows("srvr"));
        assert!(!c.four_letter_words.allows("stat"));
        assert!(c.admin_enabled);
        assert_eq!(c.admin_address, "0.0.0.0");
        assert_eq!(c.admin_port, 8080);
        assert_eq!(c.jute_max_buffer, 0xfffff);
        assert!(!c.reconfig_enabled);
        assert!(c.standalone_enabled);
        assert!(!c.extended_types_enabled);
        assert_eq!(c.super_digest, None);
        assert_eq!(c.myid, None);
        assert!(c.servers.is_empty());
        assert!(c.is_standalone());
        assert_eq!(c.quorum_kind(), QuorumKind::Majority);
    }

    #[test]
    fn full_zoo_cfg() {
        let text = "\
tickTime=3000
initLimit=20
syncLimit=10
dataDir=/nonexistent/data
dataLogDir=/datalog
clientPort=2182
clientPortAddress=10.0.0.1
maxClientCnxns=0
minSessionTimeout=5000
maxSessionTimeout=90000
snapCount=5000
autopurge.snapRetainCount=5
autopurge.purgeInterval=24
4lw.commands.whitelist=stat, ruok , mntr
admin.serverPort=9090
admin.serverAddress=127.0.0.2
admin.enableServer=false
jute.maxbuffer=0x200000
reconfigEnabled=true
standaloneEnabled=false
extendedTypesEnabled=true
superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=
localSessionsEnabled=true
sslQuorum=false
quorumListenOnAllIPs=true
myCustomThing=42
";
        let c = parse(text).unwrap();
        assert!(c.quorum_listen_on_all_ips);
        assert!(!c.extra.contains_key("sslQuorum"));
        assert_eq!(c.tick_time_ms, 3000);
        assert_eq!((c.init_limit, c.sync_limit), (20, 10));
        assert_eq!(c.data_log_dir, PathBuf::from("/datalog"));
        assert_eq!(c.client_port, 2182);
        assert_eq!(c.client_address, "10.0.0.1");
        assert_eq!(c.max_client_cnxns, 0);
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (5000, 90000)
        );
        assert_eq!(c.snap_count, 5000);
        assert_eq!(c.autopurge_snap_retain_count, 5);
        assert_eq!(c.autopurge_purge_interval_hours, 24);
        assert_eq!(
            c.four_letter_words,
            FourLetterWhitelist::Only(
                ["mntr", "ruok", "srvr", "stat"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            )
        );
        assert_eq!(c.admin_port, 9090);
        assert_eq!(c.admin_address, "127.0.0.2");
        assert!(!c.admin_enabled);
        assert_eq!(c.jute_max_buffer, 0x200000);
        assert!(c.reconfig_enabled && !c.standalone_enabled && c.extended_types_enabled);
        assert_eq!(
            c.super_digest,
            Some(SuperDigest {
                user: "super".into(),
                digest: "D/InIHSb7yEEbrWz8b9l71RjZJU=".into()
            })
        );
        assert_eq!(
            c.extra,
            BTreeMap::from([("myCustomThing".to_string(), "42".to_string())])
        );
        assert!(c.is_standalone(), "no servers listed");
    }

    #[test]
    fn session_timeouts_follow_tick_time_and_minus_one() {
        let c = parse("dataDir=/d\ntickTime=500\nminSessionTimeout=-1\n").unwrap();
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (1000, 10000)
        );
    }

    #[test]
    fn whitelist_variants() {
        let c = parse("dataDir=/d\n4lw.commands.whitelist=*\n").unwrap();
        assert_eq!(c.four_letter_words, FourLetterWhitelist::All);
        let c = parse("dataDir=/d\nzookeeper.4lw.commands.whitelist=\n").unwrap();
        assert_eq!(
            c.four_letter_words,
            FourLetterWhitelist::zookeeper_default()
        );
        let c = parse("dataDir=/d\nreadonlymode.enabled=true\n").unwrap();
        assert!(c.four_letter_words.allows("isro"));
        assert!(c.read_only_mode_enabled);
    }

    #[test]
    fn duplicate_scalar_key_last_wins() {
        let c = parse("dataDir=/d\ntickTime=1000\ntickTime=3000\n").unwrap();
        assert_eq!(c.tick_time_ms, 3000);
    }

    #[test]
    fn snap_retain_count_minimum_and_purge_interval() {
        let c =
            parse("dataDir=/d\nautopurge.snapRetainCount=1\nautopurge.purgeInterval=-5\n").unwrap();
        assert_eq!(c.autopurge_snap_retain_count, 3);
        assert_eq!(c.autopurge_purge_interval_hours, 0);
    }

    /// Each malformed setting and the exact message it produces.
    #[test]
    fn setting_errors_name_file_line_and_key() {
        assert_errors(&[
            (
                "dataDir=/d\n\n# c\ntickTime=abc\n",
                "zoo.cfg:4: tickTime: expected an integer, got \"abc\"",
            ),
            (
                "dataDir=/d\ntickTime=0\n",
                "zoo.cfg:2: tickTime: must be between 1 and 4294967295, got 0",
            ),
            (
                "dataDir=/d\nclientPort=70000\n",
                "zoo.cfg:2: clientPort: must be between 0 and 65535, got 70000",
            ),
            (
                "dataDir=/d\nadmin.serverPort=-3\n",
                "zoo.cfg:2: admin.serverPort: must be between 0 and 65535, got -3",
            ),
            (
                "dataDir=/d\nmaxClientCnxns=-1\n",
                "zoo.cfg:2: maxClientCnxns: must be between 0 and 4294967295, got -1",
            ),
            (
                "dataDir=/d\nreconfigEnabled=yes\n",
                "zoo.cfg:2: reconfigEnabled: expected true or false, got \"yes\"",
            ),
            (
                "dataDir=/d\njute.maxbuffer=0xZZ\n",
                "zoo.cfg:2: jute.maxbuffer: expected a positive byte count (decimal or 0x hex), got \"0xZZ\"",
            ),
            (
                "dataDir=/d\nsuperDigest=nocolon\n",
                "zoo.cfg:2: superDigest: expected user:base64digest",
            ),
            (
                "dataDir=/d\npeerType=voter\n",
                "zoo.cfg:2: peerType: expected participant or observer, got \"voter\"",
            ),
            (
                "dataDir=/d\nversion=xyz\n",
                "zoo.cfg:2: version: expected a hexadecimal config version, got \"xyz\"",
            ),
            ("dataDir=\n", "zoo.cfg:1: dataDir: must not be empty"),
        ]);
    }
}
