//! The zoo.cfg model: [`ServerConfig`], the typed settings the server runs with, their
//! defaults (ZooKeeper's, or the embedded development default), and what the model
//! answers: listen addresses, directories, membership, the `conf` four-letter word.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::dynamic::{quorum_kind_of, weight_of};
use super::zoo_cfg::Raw;
use super::{
    Cli, ConfigError, DynamicConfig, HostPort, LearnerRole, PeerAddress, QuorumGroup, QuorumKind,
    SaslConfig, Secret, ServerEntry, TlsConfig, delimited_host,
};

pub const DEFAULT_TICK_TIME_MS: u32 = 2000;
pub const DEFAULT_INIT_LIMIT: u32 = 10;
pub const DEFAULT_SYNC_LIMIT: u32 = 5;
pub const DEFAULT_CLIENT_PORT: u16 = 2181;
pub const DEFAULT_MAX_CLIENT_CNXNS: u32 = 60;
pub const DEFAULT_SNAP_COUNT: u64 = 100_000;
/// ZooKeeper refuses to keep fewer than 3 snapshots (`autopurge.snapRetainCount`).
pub const MIN_SNAP_RETAIN_COUNT: u32 = 3;
pub const DEFAULT_ADMIN_PORT: u16 = 8080;
pub const DEFAULT_JUTE_MAX_BUFFER: u32 = 0xfffff;
pub const DEFAULT_FSYNC_WARNING_THRESHOLD_MS: u64 = 1000;

/// Memory limits of the client and quorum ports (README, "Limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NetLimits {
    /// globalOutstandingLimit: requests in progress over all client connections before
    /// the server stops reading from connections (ZooKeeper's default, 1000).
    pub global_outstanding: u32,
    /// paddock.connOutstandingLimit: the same for one connection.
    pub conn_outstanding: u32,
    /// paddock.connQueuedReplyBytes: reply bytes a client has not read yet before its
    /// connection stops being read.
    pub conn_queued_reply_bytes: u32,
    /// paddock.quorumMaxFrame: the largest message a peer may send (a snapshot travels
    /// as one message, so this bounds the data tree a follower can sync by snapshot).
    pub quorum_max_frame: u32,
}

impl Default for NetLimits {
    fn default() -> NetLimits {
        NetLimits {
            global_outstanding: 1000,
            conn_outstanding: 256,
            conn_queued_reply_bytes: 4 << 20,
            quorum_max_frame: 128 << 20,
        }
    }
}
/// How long `--join` targets are tried before a listed server bootstraps (`--join-timeout`).
pub const DEFAULT_JOIN_TIMEOUT_MS: u64 = 10_000;
/// Data directory of the embedded default (no `--config`).
pub const EMBEDDED_DATA_DIR: &str = "./paddock-data";
/// Listen address of the embedded default (no `--config`).
pub const EMBEDDED_ADDRESS: &str = "127.0.0.1";
/// Listen address when a zoo.cfg does not name one (ZooKeeper binds the wildcard address).
pub const WILDCARD_ADDRESS: &str = "0.0.0.0";
/// Largest server id: ZooKeeper puts the id in the top byte of session ids.
pub const MAX_SERVER_ID: u64 = 255;
/// Largest server id with `extendedTypesEnabled=true` (TTL nodes).
pub const MAX_SERVER_ID_EXTENDED: u64 = 254;

/// The four-letter words Paddock implements (DESIGN §2).
pub const FOUR_LETTER_WORDS: [&str; 15] = [
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "crst", "srst", "envi", "wchs", "wchc", "wchp",
    "dump", "isro", "dirs",
];

/// `4lw.commands.whitelist`. ZooKeeper always enables `srvr` (zkServer.sh needs it), and
/// `isro` when `readonlymode.enabled=true`; parsing adds those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FourLetterWhitelist {
    All,
    Only(BTreeSet<String>),
}

impl FourLetterWhitelist {
    pub fn allows(&self, cmd: &str) -> bool {
        match self {
            FourLetterWhitelist::All => true,
            FourLetterWhitelist::Only(set) => set.contains(cmd),
        }
    }

    /// ZooKeeper's default when nothing is configured: `srvr` only.
    pub fn zookeeper_default() -> Self {
        FourLetterWhitelist::Only(BTreeSet::from(["srvr".to_string()]))
    }

    /// Parses the comma-separated list (`*` = all); `srvr` is always added.
    pub fn parse(list: &str) -> Self {
        let mut set = BTreeSet::new();
        for cmd in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if cmd == "*" {
                return FourLetterWhitelist::All;
            }
            if !FOUR_LETTER_WORDS.contains(&cmd) {
                tracing::warn!(
                    command = cmd,
                    "4lw.commands.whitelist names an unknown command"
                );
            }
            set.insert(cmd.to_string());
        }
        set.insert("srvr".to_string());
        FourLetterWhitelist::Only(set)
    }

    /// Adds `cmd` to a list; `All` already allows it.
    pub(super) fn insert(&mut self, cmd: &str) {
        if let FourLetterWhitelist::Only(set) = self {
            set.insert(cmd.to_string());
        }
    }
}

/// `superDigest=user:base64(sha1(user:password))`.
#[derive(Clone, PartialEq, Eq)]
pub struct SuperDigest {
    pub user: String,
    pub digest: String,
}

impl SuperDigest {
    /// Parses `user:base64digest`.
    pub fn parse(value: &str) -> Option<SuperDigest> {
        let (user, digest) = value
            .trim()
            .split_once(':')
            .filter(|(u, d)| !u.is_empty() && is_base64(d))?;
        Some(SuperDigest {
            user: user.to_string(),
            digest: digest.to_string(),
        })
    }

    /// Whether `user:password` is this super user's credential.
    pub fn accepts(&self, user_password: &str) -> bool {
        let expected = format!("{}:{}", self.user, self.digest);
        let given = crate::tree::acl::digest_id(user_password);
        // Compare every byte: how long the check takes tells nothing about the digest.
        expected.len() == given.len()
            && expected
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// The digest is a credential's hash: keep it out of logs and debug output.
impl std::fmt::Debug for SuperDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SuperDigest {{ user: {:?}, digest: <redacted> }}",
            self.user
        )
    }
}

/// Runtime values that the `conf` four-letter word prints next to the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfRuntime {
    /// The port actually bound (differs from the configured one when that was 0).
    pub client_port: Option<u16>,
    pub data_dir_size: u64,
    pub data_log_size: u64,
}

/// The effective server configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerConfig {
    /// The zoo.cfg it came from; `None` for the embedded default.
    pub source: Option<PathBuf>,
    pub tick_time_ms: u32,
    pub init_limit: u32,
    pub sync_limit: u32,
    pub data_dir: PathBuf,
    /// Where the transaction log goes (`dataLogDir`, defaults to `data_dir`).
    pub data_log_dir: PathBuf,
    /// Client listen address (host or IP).
    pub client_address: String,
    /// Client port; 0 asks the OS for a free port.
    pub client_port: u16,
    /// Per-host connection limit; 0 = unlimited.
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    pub snap_count: u64,
    /// Snapshots autopurge keeps (at least 3).
    pub autopurge_snap_retain_count: u32,
    /// Hours between purges; 0 = autopurge off.
    pub autopurge_purge_interval_hours: u32,
    pub four_letter_words: FourLetterWhitelist,
    pub admin_enabled: bool,
    pub admin_address: String,
    /// Admin HTTP port; 0 asks the OS for a free port.
    pub admin_port: u16,
    pub jute_max_buffer: u32,
    pub limits: NetLimits,
    pub reconfig_enabled: bool,
    pub standalone_enabled: bool,
    pub extended_types_enabled: bool,
    pub read_only_mode_enabled: bool,
    pub fsync_warning_threshold_ms: u64,
    /// Never serialized: it is a credential's hash.
    #[serde(skip)]
    pub super_digest: Option<SuperDigest>,
    /// The admin HTTP bearer token (`admin.tokenFile`, `--admin-token-file`), read at
    /// start. Never serialized.
    #[serde(skip)]
    pub admin_token: Option<Secret>,
    /// `quorumListenOnAllIPs`: the quorum port listens on every address instead of this
    /// server's own (whose name may not resolve yet when a pod starts).
    pub quorum_listen_on_all_ips: bool,
    /// The dynamic config file the membership came from, resolved against zoo.cfg's directory.
    pub dynamic_config_file: Option<PathBuf>,
    /// Configuration version (hex suffix of the dynamic file name, else 0).
    pub config_version: u64,
    /// This server's id, from `--myid` or `<dataDir>/myid`; `None` when standalone without one.
    pub myid: Option<u64>,
    /// `peerType` from zoo.cfg, if given.
    pub peer_type: Option<LearnerRole>,
    /// Members by id (`server.N`).
    pub servers: BTreeMap<u64, ServerEntry>,
    /// Explicit `weight.N` values.
    pub weights: BTreeMap<u64, u64>,
    /// `group.G` lines by group id.
    pub groups: Vec<QuorumGroup>,
    /// `--join` targets.
    pub join: Vec<HostPort>,
    /// How long the `join` targets are tried before a server listed in the static config
    /// starts from it (the ensemble's bootstrap).
    pub join_timeout_ms: u64,
    /// `--peer-address`: this server's quorum address when no config lists it.
    pub peer_address: Option<PeerAddress>,
    /// TLS: the secure client port, quorum TLS and the `ssl.*` keys.
    pub tls: TlsConfig,
    /// SASL: the JAAS logins, `enforce.auth.*` and SASL between servers.
    pub sasl: SaslConfig,
    /// Keys Paddock does not know, kept as given.
    pub extra: BTreeMap<String, String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::embedded_default()
    }
}

impl ServerConfig {
    /// The configuration with nothing given: standalone on 127.0.0.1:2181, data in
    /// ./paddock-data, admin on 127.0.0.1:8080, all four-letter words enabled.
    pub fn embedded_default() -> Self {
        ServerConfig {
            source: None,
            tick_time_ms: DEFAULT_TICK_TIME_MS,
            init_limit: DEFAULT_INIT_LIMIT,
            sync_limit: DEFAULT_SYNC_LIMIT,
            data_dir: PathBuf::from(EMBEDDED_DATA_DIR),
            data_log_dir: PathBuf::from(EMBEDDED_DATA_DIR),
            client_address: EMBEDDED_ADDRESS.to_string(),
            client_port: DEFAULT_CLIENT_PORT,
            max_client_cnxns: DEFAULT_MAX_CLIENT_CNXNS,
            min_session_timeout_ms: 2 * DEFAULT_TICK_TIME_MS,
            max_session_timeout_ms: 20 * DEFAULT_TICK_TIME_MS,
            snap_count: DEFAULT_SNAP_COUNT,
            autopurge_snap_retain_count: MIN_SNAP_RETAIN_COUNT,
            autopurge_purge_interval_hours: 0,
            four_letter_words: FourLetterWhitelist::All,
            admin_enabled: true,
            admin_address: EMBEDDED_ADDRESS.to_string(),
            admin_port: DEFAULT_ADMIN_PORT,
            jute_max_buffer: DEFAULT_JUTE_MAX_BUFFER,
            limits: NetLimits::default(),
            reconfig_enabled: false,
            standalone_enabled: true,
            extended_types_enabled: false,
            read_only_mode_enabled: false,
            fsync_warning_threshold_ms: DEFAULT_FSYNC_WARNING_THRESHOLD_MS,
            super_digest: None,
            admin_token: None,
            quorum_listen_on_all_ips: false,
            dynamic_config_file: None,
            config_version: 0,
            myid: None,
            peer_type: None,
            servers: BTreeMap::new(),
            weights: BTreeMap::new(),
            groups: Vec::new(),
            join: Vec::new(),
            join_timeout_ms: DEFAULT_JOIN_TIMEOUT_MS,
            peer_address: None,
            tls: TlsConfig::default(),
            sasl: SaslConfig::default(),
            extra: BTreeMap::new(),
        }
    }

    /// Builds the effective configuration: the zoo.cfg named by `--config` (or the embedded
    /// default), `<dataDir>/myid`, then the flags.
    pub fn load(cli: &Cli) -> Result<ServerConfig, ConfigError> {
        let mut raw = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    file: path.display().to_string(),
                    message: format!("cannot read: {e}"),
                })?;
                let dir = path.parent().unwrap_or_else(|| Path::new("")).to_path_buf();
                let mut raw = Raw::parse(&text, &path.display().to_string(), &dir)?;
                raw.source = Some(path.clone());
                raw
            }
            None => Raw::default(),
        };
        raw.apply_cli(cli)?;
        raw.finish()
    }

    /// Parses zoo.cfg text (no flags, no myid file unless `dataDir` holds one). `file_name` is
    /// used in error messages, `base_dir` resolves a relative `dynamicConfigFile`.
    pub fn parse_zoo_cfg(
        text: &str,
        file_name: &str,
        base_dir: &Path,
    ) -> Result<ServerConfig, ConfigError> {
        let mut raw = Raw::parse(text, file_name, base_dir)?;
        raw.source = Some(PathBuf::from(file_name));
        raw.finish()
    }

    /// True when this server takes part in an ensemble (ZooKeeper's `isDistributed`):
    /// servers are listed and either standalone mode is disabled or more than one votes;
    /// also when it was asked to `--join` one.
    pub fn is_distributed(&self) -> bool {
        if !self.join.is_empty() {
            return true;
        }
        !self.servers.is_empty() && (!self.standalone_enabled || self.voting_members().count() > 1)
    }

    pub fn is_standalone(&self) -> bool {
        !self.is_distributed()
    }

    /// Participants, in id order.
    pub fn voting_members(&self) -> impl Iterator<Item = &ServerEntry> {
        self.servers
            .values()
            .filter(|s| s.role == LearnerRole::Participant)
    }

    /// This server's own `server.N` entry.
    pub fn my_entry(&self) -> Option<&ServerEntry> {
        self.myid.and_then(|id| self.servers.get(&id))
    }

    /// This server's own `server.N` line in `ensemble`: the ensemble's own (committed or
    /// learned through `--join`), else the static config's, else one made from
    /// `--peer-address` (a new member that no config lists yet):
    /// `HOST:Q:E:participant;<clientAddress>:<clientPort>`.
    pub fn own_entry(&self, ensemble: &DynamicConfig) -> Option<ServerEntry> {
        let id = self.myid?;
        if let Some(e) = ensemble.servers.get(&id) {
            return Some(e.clone());
        }
        if let Some(e) = self.servers.get(&id) {
            return Some(e.clone());
        }
        let peer = self.peer_address.clone()?;
        Some(ServerEntry {
            id,
            addresses: vec![peer],
            role: LearnerRole::Participant,
            client: Some(HostPort {
                host: self.client_address.clone(),
                port: self.client_port,
            }),
        })
    }

    /// The server id to report (`serverId` in `conf`): myid, or 0 when standalone without one.
    pub fn server_id(&self) -> u64 {
        self.myid.unwrap_or(0)
    }

    pub fn quorum_kind(&self) -> QuorumKind {
        quorum_kind_of(&self.weights, &self.groups)
    }

    /// Vote weight of a member: 0 for observers and unknown ids, the `weight.N` value, else 1.
    pub fn member_weight(&self, id: u64) -> u64 {
        weight_of(&self.servers, &self.weights, id)
    }

    /// Where snapshots live, as ZooKeeper lays it out: `<dataDir>/version-2`, absolute.
    pub fn snap_dir(&self) -> PathBuf {
        absolute(&self.data_dir).join("version-2")
    }

    /// Where the transaction log lives: `<dataLogDir>/version-2`, absolute.
    pub fn txn_log_dir(&self) -> PathBuf {
        absolute(&self.data_log_dir).join("version-2")
    }

    /// `host:port` the client listener binds.
    pub fn client_listen_address(&self) -> String {
        format!(
            "{}:{}",
            delimited_host(&self.client_address),
            self.client_port
        )
    }

    /// `host:port` the admin HTTP server binds.
    pub fn admin_listen_address(&self) -> String {
        format!(
            "{}:{}",
            delimited_host(&self.admin_address),
            self.admin_port
        )
    }

    /// The membership as ZooKeeper prints it (`QuorumVerifier.toString`): `server.N=...` lines,
    /// `group.G=` and `weight.N=` lines for weighted/hierarchical quorums, then
    /// `version=<hex>` without a trailing newline. This is also the content of the
    /// `/zookeeper/config` znode and of a dynamic config file.
    pub fn membership_string(&self) -> String {
        DynamicConfig::of(self).render()
    }

    /// Renders the effective configuration in the format of ZooKeeper's `conf` four-letter
    /// word (`ZooKeeperServer.dumpConf`, plus the quorum part when distributed). Like
    /// ZooKeeper it prints the absolute `version-2` directories ([`Self::snap_dir`],
    /// [`Self::txn_log_dir`]) as dataDir/dataLogDir; `secureClientPort` and `clientPortListenBacklog` are always -1 (not
    /// supported). Like ZooKeeper, the distributed form ends with `version=<hex>` and no
    /// newline.
    pub fn render_conf(&self, rt: &ConfRuntime) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "clientPort={}",
            rt.client_port.unwrap_or(self.client_port)
        );
        s.push_str("secureClientPort=-1\n");
        let _ = writeln!(s, "dataDir={}", self.snap_dir().display());
        let _ = writeln!(s, "dataDirSize={}", rt.data_dir_size);
        let _ = writeln!(s, "dataLogDir={}", self.txn_log_dir().display());
        let _ = writeln!(s, "dataLogSize={}", rt.data_log_size);
        let _ = writeln!(s, "tickTime={}", self.tick_time_ms);
        let _ = writeln!(s, "maxClientCnxns={}", self.max_client_cnxns);
        let _ = writeln!(s, "minSessionTimeout={}", self.min_session_timeout_ms);
        let _ = writeln!(s, "maxSessionTimeout={}", self.max_session_timeout_ms);
        s.push_str("clientPortListenBacklog=-1\n");
        let _ = writeln!(s, "serverId={}", self.server_id());
        if self.is_distributed() {
            let _ = writeln!(s, "initLimit={}", self.init_limit);
            let _ = writeln!(s, "syncLimit={}", self.sync_limit);
            s.push_str("electionAlg=3\n");
            let me = self.my_entry();
            let ports = |f: fn(&PeerAddress) -> u16| -> String {
                match me {
                    Some(e) => e
                        .addresses
                        .iter()
                        .map(|a| f(a).to_string())
                        .collect::<Vec<_>>()
                        .join("|"),
                    None => "-1".to_string(),
                }
            };
            let _ = writeln!(s, "electionPort={}", ports(|a| a.election_port));
            let _ = writeln!(s, "quorumPort={}", ports(|a| a.quorum_port));
            let role = me
                .map(|e| e.role)
                .or(self.peer_type)
                .unwrap_or(LearnerRole::Participant);
            let _ = writeln!(s, "peerType={}", role.ordinal());
            s.push_str("membership: \n");
            s.push_str(&self.membership_string());
        }
        s
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn is_base64(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{cli, parse};

    #[test]
    fn render_conf_standalone() {
        let mut c = parse("dataDir=/var/zk\ndataLogDir=/var/zklog\n").unwrap();
        c.client_port = 2181;
        let rt = ConfRuntime {
            client_port: Some(40000),
            data_dir_size: 123,
            data_log_size: 456,
        };
        assert_eq!(
            c.render_conf(&rt),
            "clientPort=40000\nsecureClientPort=-1\ndataDir=/var/zk/version-2\ndataDirSize=123\n\
             dataLogDir=/var/zklog/version-2\ndataLogSize=456\ntickTime=2000\nmaxClientCnxns=60\n\
             minSessionTimeout=4000\nmaxSessionTimeout=40000\nclientPortListenBacklog=-1\n\
             serverId=0\n"
        );
    }

    #[test]
    fn render_conf_quorum() {
        let text = "dataDir=/var/zk\nserver.1=zk1:2888:3888\nserver.2=zk2:2888:3888;2181\nserver.3=zk3:2888:3888:observer\n";
        let mut raw = Raw::parse(text, "zoo.cfg", Path::new(".")).unwrap();
        raw.apply_cli(&cli(&["--myid", "2"])).unwrap();
        let c = raw.finish().unwrap();
        assert_eq!(
            c.render_conf(&ConfRuntime::default()),
            "clientPort=2181\nsecureClientPort=-1\ndataDir=/var/zk/version-2\ndataDirSize=0\n\
             dataLogDir=/var/zk/version-2\ndataLogSize=0\ntickTime=2000\nmaxClientCnxns=60\n\
             minSessionTimeout=4000\nmaxSessionTimeout=40000\nclientPortListenBacklog=-1\n\
             serverId=2\ninitLimit=10\nsyncLimit=5\nelectionAlg=3\nelectionPort=3888\n\
             quorumPort=2888\npeerType=0\nmembership: \n\
             server.1=zk1:2888:3888:participant\n\
             server.2=zk2:2888:3888:participant;0.0.0.0:2181\n\
             server.3=zk3:2888:3888:observer\nversion=0"
        );
    }

    /// Recorded from ZooKeeper 3.8.0 running this file as a one-member quorum.
    #[test]
    fn render_conf_matches_zookeeper_quorum_with_groups() {
        let text = "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/tmp/zkreal/q1/data\n\
                    4lw.commands.whitelist=srvr,conf,mntr,dump,isro,cons\nstandaloneEnabled=false\n\
                    admin.enableServer=false\n\
                    server.1=127.0.0.1:22888:23888;127.0.0.1:22181\nweight.1=2\ngroup.1=1\n";
        let mut raw = Raw::parse(text, "zoo.cfg", Path::new(".")).unwrap();
        raw.apply_cli(&cli(&["--myid", "1"])).unwrap();
        let c = raw.finish().unwrap();
        assert!(c.is_distributed());
        assert!(!c.admin_enabled);
        assert_eq!(c.client_listen_address(), "127.0.0.1:22181");
        let rt = ConfRuntime {
            client_port: None,
            data_dir_size: 548,
            data_log_size: 548,
        };
        assert_eq!(
            c.render_conf(&rt),
            "clientPort=22181\nsecureClientPort=-1\ndataDir=/tmp/zkreal/q1/data/version-2\n\
             dataDirSize=548\ndataLogDir=/tmp/zkreal/q1/data/version-2\ndataLogSize=548\n\
             tickTime=2000\nmaxClientCnxns=60\nminSessionTimeout=4000\nmaxSessionTimeout=40000\n\
             clientPortListenBacklog=-1\nserverId=1\ninitLimit=10\nsyncLimit=5\nelectionAlg=3\n\
             electionPort=23888\nquorumPort=22888\npeerType=0\nmembership: \n\
             server.1=127.0.0.1:22888:23888:participant;127.0.0.1:22181\ngroup.1=1\nweight.1=2\n\
             version=0"
        );
    }
}
