//! Dynamic configuration: the membership. `server.N=`, `weight.N=` and `group.G=` lines
//! (in zoo.cfg or its `dynamicConfigFile`), the dynamic config file and the committed
//! `zoo.cfg.dynamic.<version>` files in the data dir, and the membership text that
//! `/zookeeper/config` holds and reconfig changes ([`DynamicConfig`]).

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::properties::{Loc, parse_properties};
use super::{ConfigError, ServerConfig, WILDCARD_ADDRESS};

/// Whether a quorum member votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LearnerRole {
    Participant,
    Observer,
}

impl LearnerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            LearnerRole::Participant => "participant",
            LearnerRole::Observer => "observer",
        }
    }
    /// ZooKeeper's `LearnerType` ordinal, printed as `peerType=` by `conf`.
    pub fn ordinal(self) -> u8 {
        match self {
            LearnerRole::Participant => 0,
            LearnerRole::Observer => 1,
        }
    }
}

/// One quorum/election address pair of a server (`host:quorumPort:electionPort`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerAddress {
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
}

/// A `host:port` pair (client address of a `server.N` line, a `--join` target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// Parses `HOST:PORT` (`[v6]:PORT` for IPv6 literals).
    pub fn parse(s: &str) -> Option<HostPort> {
        parse_host_port(s)
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", delimited_host(&self.host), self.port)
    }
}

/// One `server.N=host:quorumPort:electionPort[:role][;[clientAddr:]clientPort]` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerEntry {
    pub id: u64,
    /// At least one; several when the line lists `|`-separated addresses (ZooKeeper 3.6+).
    pub addresses: Vec<PeerAddress>,
    pub role: LearnerRole,
    /// Client address given on the line; `;2181` alone means `0.0.0.0:2181`.
    pub client: Option<HostPort>,
}

impl ServerEntry {
    /// The first (preferred) quorum/election address.
    pub fn primary(&self) -> Option<&PeerAddress> {
        self.addresses.first()
    }

    /// Its addresses as ZAB's config carries them.
    pub fn member_addresses(&self) -> crate::zab::MemberAddresses {
        crate::zab::MemberAddresses {
            peer: self
                .addresses
                .iter()
                .map(|a| crate::zab::PeerAddress {
                    host: a.host.clone(),
                    quorum_port: a.quorum_port,
                    election_port: a.election_port,
                })
                .collect(),
            client: self.client.as_ref().map(|c| crate::zab::ClientAddress {
                host: c.host.clone(),
                port: c.port,
            }),
        }
    }

    /// The right-hand side of the line, as ZooKeeper prints it (`QuorumServer.toString`):
    /// `zk1:2888:3888:participant;0.0.0.0:2181`.
    pub fn spec(&self) -> String {
        let mut s = String::new();
        for (i, a) in self.addresses.iter().enumerate() {
            if i > 0 {
                s.push('|');
            }
            let _ = write!(
                s,
                "{}:{}:{}",
                delimited_host(&a.host),
                a.quorum_port,
                a.election_port
            );
        }
        s.push(':');
        s.push_str(self.role.as_str());
        if let Some(c) = &self.client {
            let _ = write!(s, ";{c}");
        }
        s
    }
}

/// A `group.G=id:id:id` line (hierarchical quorums).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumGroup {
    pub id: u64,
    pub members: Vec<u64>,
}

/// Which quorum verifier the membership calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuorumKind {
    /// Simple majority of participants.
    Majority,
    /// `weight.N` lines without groups: a quorum is more than half of the total weight.
    Weighted,
    /// `group.G` lines (with optional weights): a majority of groups, each by weight.
    Hierarchical,
}

/// `[v6]` brackets for hosts containing ':' (ZooKeeper's `delimitedHostString`).
pub fn delimited_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// server/weight/group lines of one file.
#[derive(Debug, Clone, Default)]
pub(super) struct Membership {
    pub(super) servers: BTreeMap<u64, (ServerEntry, Loc)>,
    pub(super) weights: BTreeMap<u64, (u64, Loc)>,
    pub(super) groups: BTreeMap<u64, (Vec<u64>, Loc)>,
}

impl Membership {
    pub(super) fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.weights.is_empty() && self.groups.is_empty()
    }

    /// Handles a `server.`, `weight.` or `group.` key; `Ok(false)` for any other key.
    pub(super) fn accept(
        &mut self,
        key: &str,
        value: &str,
        loc: &Loc,
    ) -> Result<bool, ConfigError> {
        if let Some(id) = key.strip_prefix("server.") {
            let id = parse_id(id, key, loc, "server id")?;
            let entry = parse_server_spec(id, value).map_err(|m| loc.err(key, m))?;
            if let Some((_, first)) = self.servers.get(&id) {
                return Err(loc.err(key, format!("duplicate server id (first given at {first})")));
            }
            self.servers.insert(id, (entry, loc.clone()));
            Ok(true)
        } else if let Some(id) = key.strip_prefix("weight.") {
            let id = parse_id(id, key, loc, "server id")?;
            let w = value.parse::<u64>().map_err(|_| {
                loc.err(
                    key,
                    format!("expected a non-negative integer weight, got {value:?}"),
                )
            })?;
            if let Some((_, first)) = self.weights.get(&id) {
                return Err(loc.err(key, format!("duplicate weight (first given at {first})")));
            }
            self.weights.insert(id, (w, loc.clone()));
            Ok(true)
        } else if let Some(gid) = key.strip_prefix("group.") {
            let gid = parse_id(gid, key, loc, "group id")?;
            let mut members = Vec::new();
            for part in value.split(':') {
                let sid = part.trim().parse::<u64>().map_err(|_| {
                    loc.err(
                        key,
                        format!("expected server ids separated by ':', got {value:?}"),
                    )
                })?;
                if members.contains(&sid) {
                    return Err(loc.err(key, format!("server {sid} is listed twice")));
                }
                members.push(sid);
            }
            if let Some((_, first)) = self.groups.get(&gid) {
                return Err(loc.err(key, format!("duplicate group id (first given at {first})")));
            }
            self.groups.insert(gid, (members, loc.clone()));
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

fn parse_id(text: &str, key: &str, loc: &Loc, what: &str) -> Result<u64, ConfigError> {
    text.parse::<u64>().map_err(|_| {
        loc.err(
            key,
            format!("{what} must be a non-negative integer, got {text:?}"),
        )
    })
}

const SERVER_SPEC_SHAPE: &str =
    "host:quorumPort:electionPort[:participant|observer][;[clientAddr:]clientPort]";

/// Parses the value of a `server.N` line.
fn parse_server_spec(id: u64, value: &str) -> Result<ServerEntry, String> {
    let shape_err = || format!("expected {SERVER_SPEC_SHAPE}, got {value:?}");
    let (server_part, client_part) = match value.split_once(';') {
        Some((s, c)) => (s.trim(), Some(c.trim())),
        None => (value.trim(), None),
    };
    let mut addresses = Vec::new();
    let mut role: Option<LearnerRole> = None;
    for addr in server_part.split('|') {
        let parts = split_host_and_ports(addr.trim()).ok_or_else(shape_err)?;
        if parts.len() < 3 || parts.len() > 4 || parts[0].is_empty() {
            return Err(shape_err());
        }
        let quorum_port = parse_peer_port(&parts[1], "quorum")?;
        let election_port = parse_peer_port(&parts[2], "election")?;
        if let Some(r) = parts.get(3) {
            let r = match r.to_ascii_lowercase().as_str() {
                "participant" => LearnerRole::Participant,
                "observer" => LearnerRole::Observer,
                _ => {
                    return Err(format!(
                        "unknown role {r:?} (expected participant or observer)"
                    ));
                }
            };
            if role.is_some_and(|prev| prev != r) {
                return Err("addresses disagree on participant/observer".to_string());
            }
            role = Some(r);
        }
        addresses.push(PeerAddress {
            host: parts[0].clone(),
            quorum_port,
            election_port,
        });
    }
    let client = match client_part {
        None => None,
        Some(c) => {
            let parts = split_host_and_ports(c).ok_or_else(shape_err)?;
            let (host, port) = match parts.as_slice() {
                [port] => (WILDCARD_ADDRESS.to_string(), port),
                [host, port] if !host.is_empty() => (host.clone(), port),
                _ => return Err(shape_err()),
            };
            Some(HostPort {
                host,
                port: parse_peer_port(port, "client")?,
            })
        }
    };
    Ok(ServerEntry {
        id,
        addresses,
        role: role.unwrap_or(LearnerRole::Participant),
        client,
    })
}

pub(super) fn parse_peer_port(text: &str, what: &str) -> Result<u16, String> {
    match text.trim().parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(format!(
            "{what} port must be between 1 and 65535, got {text:?}"
        )),
    }
}

/// Splits `host:a:b`, `[v6]:a:b` or `a` into parts; `None` for an unclosed bracket.
pub(super) fn split_host_and_ports(s: &str) -> Option<Vec<String>> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let mut parts = vec![host.to_string()];
        if !after.is_empty() {
            let after = after.strip_prefix(':')?;
            parts.extend(after.split(':').map(|p| p.trim().to_string()));
        }
        Some(parts)
    } else {
        Some(s.split(':').map(|p| p.trim().to_string()).collect())
    }
}

/// Parses `HOST:PORT`.
pub(super) fn parse_host_port(s: &str) -> Option<HostPort> {
    let parts = split_host_and_ports(s.trim())?;
    match parts.as_slice() {
        [host, port] if !host.is_empty() => {
            let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
            Some(HostPort {
                host: host.clone(),
                port,
            })
        }
        _ => None,
    }
}

/// The hex version in a dynamic config file name (`zoo.cfg.dynamic.100000000`).
pub(super) fn version_from_file_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let (_, suffix) = name.rsplit_once('.')?;
    u64::from_str_radix(suffix, 16).ok()
}

/// Reads the server/weight/group lines of a dynamic config file.
pub(super) fn parse_dynamic_file(path: &Path) -> Result<Membership, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        file: file.clone(),
        message: format!("cannot read dynamic config file: {e}"),
    })?;
    let mut m = Membership::default();
    for prop in parse_properties(&text, &file)? {
        let loc = Loc {
            file: file.clone(),
            line: prop.line,
        };
        if prop.key == "version" {
            return Err(loc.err(
                "version",
                "a dynamic config file must not contain version; it comes from the file name suffix",
            ));
        }
        if !m.accept(&prop.key, &prop.value, &loc)? {
            return Err(loc.err(
                &prop.key,
                "only server.N, weight.N and group.N belong in a dynamic config file",
            ));
        }
    }
    if m.servers.is_empty() {
        return Err(ConfigError::File {
            file,
            message: "dynamic config file lists no servers".into(),
        });
    }
    Ok(m)
}

/// Groups make a hierarchical quorum, weights alone a weighted one, else majority.
pub(super) fn quorum_kind_of(weights: &BTreeMap<u64, u64>, groups: &[QuorumGroup]) -> QuorumKind {
    if !groups.is_empty() {
        QuorumKind::Hierarchical
    } else if !weights.is_empty() {
        QuorumKind::Weighted
    } else {
        QuorumKind::Majority
    }
}

/// 0 for observers and unknown ids, the `weight.N` value, else 1.
pub(super) fn weight_of(
    servers: &BTreeMap<u64, ServerEntry>,
    weights: &BTreeMap<u64, u64>,
    id: u64,
) -> u64 {
    match servers.get(&id) {
        Some(s) if s.role == LearnerRole::Participant => weights.get(&id).copied().unwrap_or(1),
        _ => 0,
    }
}

/// The replicated part of the configuration: members with their addresses, weights,
/// groups and the version. It is what `/zookeeper/config` and a dynamic config file
/// hold (`server.N=...`, `weight.N=...`, `group.G=...`, `version=<hex>`), and what a
/// reconfig changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamicConfig {
    pub servers: BTreeMap<u64, ServerEntry>,
    pub weights: BTreeMap<u64, u64>,
    pub groups: Vec<QuorumGroup>,
    pub version: u64,
}

impl DynamicConfig {
    pub fn of(cfg: &ServerConfig) -> DynamicConfig {
        DynamicConfig {
            servers: cfg.servers.clone(),
            weights: cfg.weights.clone(),
            groups: cfg.groups.clone(),
            version: cfg.config_version,
        }
    }

    /// Parses the text of `/zookeeper/config` or of a dynamic config file; `version=`
    /// is optional (a file carries it in its name).
    pub fn parse(text: &str, source: &str) -> Result<DynamicConfig, ConfigError> {
        let mut m = Membership::default();
        let mut version = 0;
        for prop in parse_properties(text, source)? {
            let loc = Loc {
                file: source.to_string(),
                line: prop.line,
            };
            if prop.key == "version" {
                version =
                    u64::from_str_radix(prop.value.trim_start_matches("0x"), 16).map_err(|_| {
                        loc.err(
                            "version",
                            format!("expected a hex version, got {:?}", prop.value),
                        )
                    })?;
            } else if !m.accept(&prop.key, &prop.value, &loc)? {
                return Err(loc.err(
                    &prop.key,
                    "only server.N, weight.N, group.N and version belong here",
                ));
            }
        }
        Ok(DynamicConfig {
            servers: m.servers.into_iter().map(|(id, (e, _))| (id, e)).collect(),
            weights: m.weights.into_iter().map(|(id, (w, _))| (id, w)).collect(),
            groups: m
                .groups
                .into_iter()
                .map(|(id, (members, _))| QuorumGroup { id, members })
                .collect(),
            version,
        })
    }

    /// The keys of a dynamic config text, in order, for checks that come before
    /// [`DynamicConfig::parse`] (reconfig's new member list).
    pub fn keys(text: &str, source: &str) -> Result<Vec<String>, ConfigError> {
        Ok(parse_properties(text, source)?
            .into_iter()
            .map(|p| p.key)
            .collect())
    }

    /// One `server.N=...` value, as reconfig's joining list and new member list give it.
    pub fn parse_server(id: u64, spec: &str) -> Result<ServerEntry, String> {
        parse_server_spec(id, spec)
    }

    pub fn quorum_kind(&self) -> QuorumKind {
        quorum_kind_of(&self.weights, &self.groups)
    }

    /// Vote weight: 0 for observers and unknown ids, the `weight.N` value, else 1.
    pub fn weight(&self, id: u64) -> u64 {
        weight_of(&self.servers, &self.weights, id)
    }

    pub fn participants(&self) -> impl Iterator<Item = u64> + '_ {
        self.servers
            .values()
            .filter(|s| s.role == LearnerRole::Participant)
            .map(|s| s.id)
    }

    /// ZooKeeper's text: server lines, groups, weights (when not majority), `version=<hex>`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for entry in self.servers.values() {
            let _ = writeln!(s, "server.{}={}", entry.id, entry.spec());
        }
        for g in &self.groups {
            let ids: Vec<String> = g.members.iter().map(u64::to_string).collect();
            let _ = writeln!(s, "group.{}={}", g.id, ids.join(":"));
        }
        if self.quorum_kind() != QuorumKind::Majority {
            for entry in self.servers.values() {
                let _ = writeln!(s, "weight.{}={}", entry.id, self.weight(entry.id));
            }
        }
        let _ = write!(s, "version={:x}", self.version);
        s
    }

    /// The text of its `zoo.cfg.dynamic.<version>` file: the membership lines without
    /// `version=`, which the file carries in its name, as ZooKeeper's do.
    pub fn file_body(&self) -> String {
        let text = self.render();
        let mut body = text
            .lines()
            .filter(|l| !l.starts_with("version="))
            .collect::<Vec<_>>()
            .join("\n");
        body.push('\n');
        body
    }

    /// Writes `zoo.cfg.dynamic.<version>` durably and removes older ones.
    pub fn write_committed(&self, dir: &Path) -> crate::storage::Result<()> {
        crate::storage::state::persist_dynamic_config(dir, self.version, &self.file_body())
    }

    /// The newest committed config persisted in the data dir, if any.
    pub fn read_committed(dir: &Path) -> Option<DynamicConfig> {
        let (version, text, path) = crate::storage::state::load_dynamic_config(dir)?;
        match DynamicConfig::parse(&text, &path.display().to_string()) {
            Ok(mut c) => {
                c.version = version;
                Some(c)
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable dynamic config file");
                None
            }
        }
    }

    /// Who votes under which rule, as the replication core sees it.
    pub fn membership(&self) -> crate::zab::Membership {
        use crate::zab::QuorumVerifier;
        let participants: Vec<u64> = self.participants().collect();
        let weights: BTreeMap<u64, u64> = participants
            .iter()
            .map(|id| (*id, self.weight(*id)))
            .collect();
        let verifier = match self.quorum_kind() {
            QuorumKind::Majority => QuorumVerifier::majority(participants),
            QuorumKind::Weighted => QuorumVerifier::Weighted { weights },
            QuorumKind::Hierarchical => QuorumVerifier::Hierarchical {
                groups: self
                    .groups
                    .iter()
                    .map(|g| (g.id, g.members.iter().copied().collect()))
                    .collect(),
                weights,
            },
        };
        crate::zab::Membership {
            verifier,
            observers: self
                .servers
                .values()
                .filter(|s| s.role == LearnerRole::Observer)
                .map(|s| s.id)
                .collect(),
            version: self.version as i64,
            addresses: self
                .servers
                .values()
                .map(|s| (s.id, s.member_addresses()))
                .collect(),
        }
    }

    /// The config a membership stands for: the inverse of [`DynamicConfig::membership`]
    /// (up to the order of a group's members). The server's view of its ensemble is
    /// derived from the config ZAB has active, so it can never lag behind it.
    pub fn from_membership(m: &crate::zab::Membership) -> DynamicConfig {
        use crate::zab::QuorumVerifier;
        let servers = m
            .members()
            .map(|id| {
                let role = if m.verifier.is_voter(id) {
                    LearnerRole::Participant
                } else {
                    LearnerRole::Observer
                };
                let a = m.addresses.get(&id).cloned().unwrap_or_default();
                let entry = ServerEntry {
                    id,
                    addresses: a
                        .peer
                        .into_iter()
                        .map(|p| PeerAddress {
                            host: p.host,
                            quorum_port: p.quorum_port,
                            election_port: p.election_port,
                        })
                        .collect(),
                    role,
                    client: a.client.map(|c| HostPort {
                        host: c.host,
                        port: c.port,
                    }),
                };
                (id, entry)
            })
            .collect();
        let (weights, groups) = match &m.verifier {
            QuorumVerifier::Majority { .. } => (BTreeMap::new(), Vec::new()),
            QuorumVerifier::Weighted { weights } => (weights.clone(), Vec::new()),
            QuorumVerifier::Hierarchical { groups, weights } => (
                weights.clone(),
                groups
                    .iter()
                    .map(|(id, members)| QuorumGroup {
                        id: *id,
                        members: members.iter().copied().collect(),
                    })
                    .collect(),
            ),
        };
        DynamicConfig {
            servers,
            weights,
            groups,
            version: m.version as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{assert_errors, cli, parse, temp_dir};
    use crate::config::zoo_cfg::Raw;

    /// ZAB's config carries everything of the membership text: the config derived from
    /// it renders the same text and makes the same membership.
    #[test]
    fn a_config_survives_the_trip_through_zabs_membership() {
        for text in [
            "server.1=zk1:2888:3888:participant;0.0.0.0:2181\n\
             server.2=a:1:2|[::1]:3:4:participant;[::1]:2182\n\
             server.3=zk3:2888:3888:observer\n\
             version=100000002",
            "server.1=h:1:2:participant;0.0.0.0:2181\nserver.2=h:3:4:participant;0.0.0.0:2182\n\
             server.3=h:5:6:observer;0.0.0.0:2183\nweight.1=3\nweight.2=0\nweight.3=0\nversion=7",
            "server.1=h:1:2:participant;0.0.0.0:2181\nserver.2=h:3:4:participant;0.0.0.0:2182\n\
             server.3=h:5:6:participant;0.0.0.0:2183\ngroup.1=1:2\ngroup.2=3\n\
             weight.1=1\nweight.2=1\nweight.3=2\nversion=0",
        ] {
            let config = DynamicConfig::parse(text, "test").unwrap();
            assert_eq!(config.render(), text.replace("\\\n", ""), "{text}");
            let derived = DynamicConfig::from_membership(&config.membership());
            assert_eq!(derived.render(), config.render());
            assert_eq!(derived.membership(), config.membership());
        }
    }

    #[test]
    fn servers_parse() {
        let text = "dataDir=/d\n\
            server.1=zk1:2888:3888\n\
            server.2=zk2:2889:3889:participant;0.0.0.0:2181\n\
            server.3=[::1]:2888:3888:observer;[::1]:2190\n\
            server.4=a:1:2|b:3:4;10.0.0.4:2181\n";
        let c = parse(text).unwrap_err();
        // Distributed (3 participants) and no myid: the error names the myid file.
        assert_eq!(
            c.to_string(),
            "/d/myid: missing: this server's id is needed in an ensemble (write it to this file or pass --myid)"
        );
        let mut raw = Raw::parse(text, "zoo.cfg", Path::new(".")).unwrap();
        raw.apply_cli(&cli(&["--myid", "2"])).unwrap();
        let c = raw.finish().unwrap();
        assert_eq!(c.myid, Some(2));
        assert!(c.is_distributed());
        assert_eq!(c.servers.len(), 4);
        assert_eq!(
            c.servers[&1],
            ServerEntry {
                id: 1,
                addresses: vec![PeerAddress {
                    host: "zk1".into(),
                    quorum_port: 2888,
                    election_port: 3888
                }],
                role: LearnerRole::Participant,
                client: None
            }
        );
        assert_eq!(
            c.servers[&2].client,
            Some(HostPort {
                host: "0.0.0.0".into(),
                port: 2181
            })
        );
        assert_eq!(c.servers[&3].role, LearnerRole::Observer);
        assert_eq!(c.servers[&3].addresses[0].host, "::1");
        assert_eq!(c.servers[&3].spec(), "[::1]:2888:3888:observer;[::1]:2190");
        assert_eq!(c.servers[&4].addresses.len(), 2);
        assert_eq!(
            c.servers[&4].spec(),
            "a:1:2|b:3:4:participant;10.0.0.4:2181"
        );
        // myid 2's client address comes from its server line.
        assert_eq!(c.client_listen_address(), "0.0.0.0:2181");
        assert_eq!(c.voting_members().count(), 3);
        assert_eq!(c.member_weight(3), 0);
        assert_eq!(c.member_weight(1), 1);
        assert_eq!(
            c.membership_string(),
            "server.1=zk1:2888:3888:participant\n\
             server.2=zk2:2889:3889:participant;0.0.0.0:2181\n\
             server.3=[::1]:2888:3888:observer;[::1]:2190\n\
             server.4=a:1:2|b:3:4:participant;10.0.0.4:2181\n\
             version=0"
        );
    }

    #[test]
    fn static_membership_version() {
        let c = parse("dataDir=/d\nserver.1=a:1:2\nversion=100000003\n").unwrap();
        assert_eq!(c.config_version, 0x1_0000_0003);
        assert!(c.membership_string().ends_with("version=100000003"));
    }

    #[test]
    fn weights_and_groups() {
        let text = "dataDir=/d\n\
            server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\nserver.4=d:1:2\nserver.5=e:1:2:observer\n\
            group.1=1:2\ngroup.2=3:4\nweight.1=3\nweight.5=7\n";
        let mut raw = Raw::parse(text, "zoo.cfg", Path::new(".")).unwrap();
        raw.apply_cli(&cli(&["--myid", "1"])).unwrap();
        let c = raw.finish().unwrap();
        assert_eq!(c.quorum_kind(), QuorumKind::Hierarchical);
        assert_eq!(
            c.groups,
            vec![
                QuorumGroup {
                    id: 1,
                    members: vec![1, 2]
                },
                QuorumGroup {
                    id: 2,
                    members: vec![3, 4]
                }
            ]
        );
        assert_eq!(c.member_weight(1), 3);
        assert_eq!(c.member_weight(2), 1);
        assert_eq!(c.member_weight(5), 0);
        assert_eq!(
            c.membership_string(),
            "server.1=a:1:2:participant\nserver.2=b:1:2:participant\nserver.3=c:1:2:participant\n\
             server.4=d:1:2:participant\nserver.5=e:1:2:observer\n\
             group.1=1:2\ngroup.2=3:4\n\
             weight.1=3\nweight.2=1\nweight.3=1\nweight.4=1\nweight.5=0\n\
             version=0"
        );
    }

    #[test]
    fn dynamic_config_file() {
        let dir = temp_dir();
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("myid"), "2\n").unwrap();
        std::fs::write(
            dir.join("zoo.cfg.dynamic.100000000"),
            "server.1=zk1:2888:3888:participant;0.0.0.0:2181\n\
             server.2=zk2:2888:3888:participant;0.0.0.0:2181\n\
             server.3=zk3:2888:3888:participant;0.0.0.0:2181\n",
        )
        .unwrap();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "dataDir={}\nreconfigEnabled=true\n\
                 dynamicConfigFile=zoo.cfg.dynamic.100000000\n\
                 server.9=ignored:1:2\n",
                data.display()
            ),
        )
        .unwrap();
        let c = ServerConfig::load(&cli(&["--config", cfg.to_str().unwrap()])).unwrap();
        assert_eq!(c.myid, Some(2));
        assert_eq!(c.config_version, 0x1_0000_0000);
        assert_eq!(
            c.dynamic_config_file,
            Some(dir.join("zoo.cfg.dynamic.100000000"))
        );
        assert_eq!(c.servers.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(c.is_distributed());
        assert_eq!(c.client_listen_address(), "0.0.0.0:2181");
        assert!(c.membership_string().ends_with("\nversion=100000000"));

        // Errors inside the dynamic file name that file and its line.
        let dynf = dir.join("bad.dynamic");
        std::fs::write(&dynf, "server.1=zk1:2888:3888\ntickTime=5\n").unwrap();
        std::fs::write(
            &cfg,
            format!(
                "dataDir={}\ndynamicConfigFile={}\n",
                data.display(),
                dynf.display()
            ),
        )
        .unwrap();
        let e = ServerConfig::load(&cli(&["--config", cfg.to_str().unwrap()])).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:2: tickTime: only server.N, weight.N and group.N belong in a dynamic config file",
                dynf.display()
            )
        );
        std::fs::write(&dynf, "server.1=zk1:2888:3888\nversion=1\n").unwrap();
        let e = ServerConfig::load(&cli(&["--config", cfg.to_str().unwrap()])).unwrap_err();
        assert!(
            e.to_string()
                .contains(":2: version: a dynamic config file must not contain version"),
            "{e}"
        );
        std::fs::write(&dynf, "server.1=zk1:2888\n").unwrap();
        let e = ServerConfig::load(&cli(&["--config", cfg.to_str().unwrap()])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}:1: server.1: expected", dynf.display())),
            "{e}"
        );
        std::fs::remove_file(&dynf).unwrap();
        let e = ServerConfig::load(&cli(&["--config", cfg.to_str().unwrap()])).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "{}: cannot read dynamic config file",
                dynf.display()
            )),
            "{e}"
        );
    }

    /// Each malformed server/weight/group line and the exact message it produces.
    #[test]
    fn membership_line_errors_name_file_line_and_key() {
        assert_errors(&[
            (
                "dataDir=/d\nserver.1=a:1:2\nserver.2=b:1:2\nserver.3=zk3:2888\n",
                "zoo.cfg:4: server.3: expected host:quorumPort:electionPort[:participant|observer][;[clientAddr:]clientPort], got \"zk3:2888\"",
            ),
            (
                "dataDir=/d\nserver.3=zk3:2888:3888:leader\n",
                "zoo.cfg:2: server.3: unknown role \"leader\" (expected participant or observer)",
            ),
            (
                "dataDir=/d\nserver.3=zk3:0:3888\n",
                "zoo.cfg:2: server.3: quorum port must be between 1 and 65535, got \"0\"",
            ),
            (
                "dataDir=/d\nserver.3=zk3:2888:99999\n",
                "zoo.cfg:2: server.3: election port must be between 1 and 65535, got \"99999\"",
            ),
            (
                "dataDir=/d\nserver.3=zk3:2888:3888;x:y:z\n",
                "zoo.cfg:2: server.3: expected host:quorumPort:electionPort[:participant|observer][;[clientAddr:]clientPort], got \"zk3:2888:3888;x:y:z\"",
            ),
            (
                "dataDir=/d\nserver.3=zk3:2888:3888;70000\n",
                "zoo.cfg:2: server.3: client port must be between 1 and 65535, got \"70000\"",
            ),
            (
                "dataDir=/d\nserver.x=zk3:2888:3888\n",
                "zoo.cfg:2: server.x: server id must be a non-negative integer, got \"x\"",
            ),
            (
                "dataDir=/d\nserver.1=a:1:2\n\nserver.1=b:1:2\n",
                "zoo.cfg:4: server.1: duplicate server id (first given at zoo.cfg:2)",
            ),
            (
                "dataDir=/d\nserver.1=a:1:2\nweight.1=x\n",
                "zoo.cfg:3: weight.1: expected a non-negative integer weight, got \"x\"",
            ),
            (
                "dataDir=/d\nserver.1=a:1:2\ngroup.1=1:x\n",
                "zoo.cfg:3: group.1: expected server ids separated by ':', got \"1:x\"",
            ),
        ]);
    }
}
