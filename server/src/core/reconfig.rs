//! Membership changes through the `reconfig` opcode: validated on the leader with
//! ZooKeeper's rules and error codes, proposed through ZAB's reconfig path, and, once
//! committed, activated here: the active config is persisted as a dynamic config file
//! (trusted over zoo.cfg at the next start) and links to new peers are opened.

use std::collections::BTreeSet;

use paddock_proto::{ErrorCode, ReconfigRequest, perms};
use tracing::{info, warn};

use super::Core;
use super::forward::AppMsg;
use crate::config::{DynamicConfig, QuorumKind, ServerEntry};
use crate::tree::CONFIG_NODE;
use crate::tree::acl::Credentials;
use crate::txn::{Txn, TxnOp};
use crate::zab::{Membership, Message, ReconfigError, Sid};

/// How often a server that lacks the text of its active config asks its peers again.
const CONFIG_QUERY_EVERY_MS: u64 = 1_000;

impl Core {
    /// Checks a reconfig request and computes the config it asks for, in ZooKeeper's
    /// order (PrepRequestProcessor): reconfig enabled, no reconfig in flight, fromConfig,
    /// the server strings and the membership they make, a synced quorum of the new
    /// config, and only then WRITE on /zookeeper/config (the super user passes). The
    /// first check that fails gives the code.
    pub(super) fn plan_reconfig(
        &self,
        creds: &Credentials,
        r: &ReconfigRequest,
    ) -> Result<DynamicConfig, ErrorCode> {
        if !self.cfg.reconfig_enabled {
            return Err(ErrorCode::ReconfigDisabled);
        }
        // While the active config's members and addresses are not known here yet (a
        // config learned from a vote, before its text arrived), the ensemble we hold is
        // an older one: an incremental change computed from it would undo reconfigs
        // that committed since. The caller retries, as after any reconfig in flight.
        if self.awaited_config.is_some() || self.zab.reconfig_in_flight() {
            return Err(ErrorCode::ReconfigInProgress);
        }
        let current = &self.ensemble;
        if r.cur_config_id != -1 && r.cur_config_id as u64 != current.version {
            return Err(ErrorCode::BadVersion);
        }
        let next = next_config(current, r, self.cfg.standalone_enabled)?;
        match self.zab.check_reconfig(&next.membership()) {
            Ok(()) => {}
            Err(ReconfigError::InProgress) => return Err(ErrorCode::ReconfigInProgress),
            Err(ReconfigError::NoQuorum) => return Err(ErrorCode::NewConfigNoQuorum),
            Err(ReconfigError::NotLeader) | Err(ReconfigError::Propose(_)) => {
                return Err(ErrorCode::ConnectionLoss);
            }
        }
        // The config node as validation sees it: a setACL proposed before this request
        // counts, as in ZooKeeper's outstanding changes.
        let allowed = creds.is_super
            || self
                .pending
                .view(&self.tree, CONFIG_NODE)
                .is_some_and(|node| creds.allows(&node.acl, perms::WRITE));
        if !allowed {
            return Err(ErrorCode::NoAuth);
        }
        // A change that changes nothing (e.g. leaving a server that is no member) is no
        // error: as ZooKeeper does, it commits the same members as a new version.
        Ok(next)
    }

    /// Proposes a planned reconfig; its version becomes the txn's zxid.
    pub(super) fn propose_reconfig(
        &mut self,
        session: i64,
        cxid: i32,
        next: DynamicConfig,
        reply: Option<super::ReplyTo>,
    ) -> Result<(), ErrorCode> {
        let time = self.wall_ms();
        let membership = next.membership();
        let result = self.zab.propose_reconfig(membership, move |zxid| {
            let text = DynamicConfig {
                version: zxid as u64,
                ..next
            }
            .render();
            Txn {
                session,
                cxid,
                zxid,
                time,
                op: TxnOp::Reconfig {
                    data: text.into_bytes(),
                },
            }
            .encode()
        });
        match result {
            Ok(zxid) => {
                info!(zxid = format_args!("{zxid:#x}"), "reconfig proposed");
                if let Some(r) = reply {
                    self.wait_for(session, cxid, r);
                }
                Ok(())
            }
            Err(ReconfigError::InProgress) => Err(ErrorCode::ReconfigInProgress),
            Err(ReconfigError::NoQuorum) => Err(ErrorCode::NewConfigNoQuorum),
            Err(ReconfigError::NotLeader) | Err(ReconfigError::Propose(_)) => {
                Err(ErrorCode::ConnectionLoss)
            }
        }
    }

    /// ZAB activated a config: adopt its addresses once its text is in our tree. A
    /// config learned from an election notification names no addresses, and the tree
    /// may never get its text (this server cannot reach the new members to sync): ask
    /// the peers we can reach for it.
    pub(super) fn on_config_active(&mut self, config: Membership) {
        self.awaited_config = Some(config.version);
        self.adopt_awaited_config();
        if self.awaited_config.is_some() {
            self.ask_for_config_text();
        }
    }

    /// After the tree was replaced (a snapshot sync): its /zookeeper/config is committed
    /// and normally the config ZAB activated when the sync began.
    pub(super) fn adopt_active_config(&mut self) {
        let active = self.zab.membership().version;
        if active != self.ensemble.version as i64 {
            self.awaited_config = Some(active);
        }
        self.adopt_awaited_config();
    }

    /// Adopts the awaited config if /zookeeper/config now holds it.
    pub(super) fn adopt_awaited_config(&mut self) {
        let Some(version) = self.awaited_config else {
            return;
        };
        let Some(node) = self.tree.get(CONFIG_NODE) else {
            return;
        };
        let text = String::from_utf8_lossy(node.bytes()).into_owned();
        let parsed = match DynamicConfig::parse(&text, CONFIG_NODE) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot parse /zookeeper/config");
                return;
            }
        };
        if parsed.version as i64 == version {
            self.adopt_config(parsed);
        }
    }

    /// Re-asks for the awaited config's text now and then (links come and go).
    pub(super) fn retry_config_query(&mut self) {
        let now = self.now_ms();
        if self.awaited_config.is_some()
            && now.saturating_sub(self.config_asked_ms) >= CONFIG_QUERY_EVERY_MS
        {
            self.ask_for_config_text();
        }
    }

    /// Asks every peer we may have a link to (the members of the config we have the
    /// addresses of, and those of the awaited one) for its active config's text.
    fn ask_for_config_text(&mut self) {
        self.config_asked_ms = self.now_ms();
        let me = self.cfg.server_id;
        let mut peers: BTreeSet<Sid> = self.ensemble.servers.keys().copied().collect();
        peers.extend(self.zab.membership().peers(me));
        peers.remove(&me);
        let query = Message::App(AppMsg::ConfigQuery.encode());
        for peer in peers {
            self.peers.send(peer, &query);
        }
    }

    /// A peer asks for our active config: the text /zookeeper/config holds for it.
    pub(super) fn answer_config_query(&mut self, from: Sid) {
        let text = self.ensemble.render();
        self.peers
            .send(from, &Message::App(AppMsg::ConfigText { text }.encode()));
    }

    /// A peer's active config: adopted when it is the one ZAB activated. It is committed
    /// (a server only ever activates committed configs), so it is safe to persist.
    pub(super) fn on_config_text(&mut self, from: Sid, text: &str) {
        let Some(version) = self.awaited_config else {
            return;
        };
        match DynamicConfig::parse(text, "a peer's config") {
            Ok(parsed) if parsed.version as i64 == version => {
                info!(
                    peer = from,
                    version = format_args!("{version:#x}"),
                    "learned the active config's members from a peer"
                );
                self.adopt_config(parsed);
            }
            Ok(_) => {}
            Err(e) => warn!(peer = from, error = %e, "a peer sent a config we cannot parse"),
        }
    }

    /// Makes `parsed` the active config: persisted as the committed config, links opened
    /// to its members.
    fn adopt_config(&mut self, parsed: DynamicConfig) {
        let version = parsed.version;
        self.awaited_config = None;
        info!(
            version = format_args!("{version:#x}"),
            members = parsed.servers.len(),
            "configuration active"
        );
        if let Err(e) = self.data.persist_config(&parsed) {
            warn!(error = %e, "cannot persist the active configuration");
        }
        for entry in parsed.servers.values() {
            if entry.id != self.cfg.server_id
                && let Some(addr) = entry.primary()
            {
                self.peers
                    .ensure_link(entry.id, &addr.host, addr.quorum_port);
            }
        }
        self.ensemble = parsed;
    }
}

/// The config a reconfig request asks for, from the active one, or the code ZooKeeper
/// answers for a request it cannot parse or whose membership it refuses: BadArguments
/// for a malformed server string or membership, MarshallingError where ZooKeeper's
/// parser fails with a plain runtime exception (an id that is no number; a new member
/// list whose participants do not fit `standaloneEnabled`).
pub(super) fn next_config(
    current: &DynamicConfig,
    r: &ReconfigRequest,
    standalone_enabled: bool,
) -> Result<DynamicConfig, ErrorCode> {
    let next = if !r.new_members.trim().is_empty() {
        non_incremental(current, &r.new_members, standalone_enabled)?
    } else {
        incremental(current, &r.leaving_servers, &r.joining_servers)?
    };
    let voters = next.participants().count();
    if (standalone_enabled && voters < 2) || voters < 1 {
        return Err(refused("the new config needs more voters"));
    }
    Ok(next)
}

fn refused(why: impl std::fmt::Display) -> ErrorCode {
    warn!(reason = %why, "reconfig refused");
    ErrorCode::BadArguments
}

/// ZooKeeper parses ids with `Long.parseLong`; what it cannot parse fails the request
/// with MarshallingError.
fn parse_id(text: &str) -> Result<i64, ErrorCode> {
    text.parse::<i64>().map_err(|_| {
        warn!(id = text, "reconfig refused: a server id that is no number");
        ErrorCode::MarshallingError
    })
}

/// ZooKeeper's `StringUtils.split`: trimmed pieces, empty ones left out.
fn pieces(text: &str, sep: char) -> impl Iterator<Item = &str> {
    text.split(sep).map(str::trim).filter(|s| !s.is_empty())
}

/// The new member list replaces the members (commas stand for line breaks).
fn non_incremental(
    current: &DynamicConfig,
    members: &str,
    standalone_enabled: bool,
) -> Result<DynamicConfig, ErrorCode> {
    let text = members.replace(',', "\n");
    const SOURCE: &str = "reconfig newMembers";
    let keys = DynamicConfig::keys(&text, SOURCE).map_err(refused)?;
    // ZooKeeper first refuses keys that have no place in a dynamic config, then parses
    // the server ids.
    if let Some(key) = keys.iter().find(|k| {
        !(k.starts_with("server.")
            || k.starts_with("group")
            || k.starts_with("weight")
            || *k == "version")
    }) {
        return Err(refused(format_args!("unknown key {key:?}")));
    }
    for key in &keys {
        if let Some(id) = key.strip_prefix("server.") {
            parse_id(id)?;
        }
    }
    let mut next = DynamicConfig::parse(&text, SOURCE).map_err(refused)?;
    next.version = current.version;
    let participants = next.participants().count();
    let observers = next.servers.len() - participants;
    let plain_error = match participants {
        0 => !standalone_enabled || observers > 0,
        1 => standalone_enabled && observers > 0,
        _ => false,
    };
    if plain_error {
        warn!(
            participants,
            observers, "reconfig refused: the new members cannot form an ensemble"
        );
        return Err(ErrorCode::MarshallingError);
    }
    Ok(next)
}

/// Servers leave, then join (a joiner replaces a member of the same id); only under the
/// majority rule, as in ZooKeeper.
fn incremental(
    current: &DynamicConfig,
    leaving: &str,
    joining: &str,
) -> Result<DynamicConfig, ErrorCode> {
    if current.quorum_kind() != QuorumKind::Majority {
        return Err(refused("incremental reconfig needs a majority quorum"));
    }
    let mut next = current.clone();
    for id in pieces(leaving, ',') {
        if let Ok(id) = u64::try_from(parse_id(id)?) {
            next.servers.remove(&id);
        }
    }
    for line in pieces(joining, ',') {
        let parts: Vec<&str> = pieces(line, '=').collect();
        let [key, spec] = parts[..] else {
            return Err(refused(format_args!("{line:?} is no server.N=spec")));
        };
        // The id is what follows the key's last '.'.
        let id = parse_id(key.rsplit('.').next().unwrap_or(key))?;
        let id = u64::try_from(id).map_err(|_| refused(format_args!("server id {id}")))?;
        let entry = DynamicConfig::parse_server(id, spec).map_err(refused)?;
        if entry.client.is_none() {
            return Err(refused(format_args!("server.{id} names no client address")));
        }
        if let Some(other) = next
            .servers
            .values()
            .find(|other| other.id != id && shares_an_address(&entry, other))
        {
            return Err(refused(format_args!(
                "an address of server.{id} is one of server.{}",
                other.id
            )));
        }
        next.servers.insert(id, entry);
    }
    Ok(next)
}

/// Whether two servers name the same quorum, election or client address. As in
/// ZooKeeper, wildcard and loopback addresses are never counted as shared (servers on
/// one host may all name 0.0.0.0 or 127.0.0.1 on different ports); a host name is
/// compared as written.
fn shares_an_address(a: &ServerEntry, b: &ServerEntry) -> bool {
    fn addresses(e: &ServerEntry) -> Vec<(String, u16)> {
        let mut out: Vec<(String, u16)> = Vec::new();
        for a in &e.addresses {
            out.push((a.host.to_ascii_lowercase(), a.quorum_port));
            out.push((a.host.to_ascii_lowercase(), a.election_port));
        }
        if let Some(c) = &e.client {
            out.push((c.host.to_ascii_lowercase(), c.port));
        }
        out.retain(|(host, _)| !is_special(host));
        out
    }
    fn is_special(host: &str) -> bool {
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.is_loopback() || ip.is_unspecified(),
            Err(_) => host == "localhost",
        }
    }
    let theirs = addresses(b);
    addresses(a).iter().any(|x| theirs.contains(x))
}
