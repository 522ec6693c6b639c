//! Membership changes through the `reconfig` opcode: validated on the leader with
//! ZooKeeper's rules and error codes, proposed through ZAB's reconfig path, and, once
//! committed, activated here: the active config is persisted as a dynamic config file
//! (trusted over zoo.cfg at the next start) and links to new peers are opened.

use paddock_proto::{ErrorCode, ReconfigRequest, perms};
use tracing::{info, warn};

use super::Core;
use crate::config::{DynamicConfig, QuorumKind, ServerEntry};
use crate::tree::CONFIG_NODE;
use crate::tree::acl::Credentials;
use crate::txn::{Txn, TxnOp};
use crate::zab::{Membership, ReconfigError};

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
        if self.zab.reconfig_in_flight() {
            return Err(ErrorCode::ReconfigInProgress);
        }
        let current = &self.ensemble();
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

    /// ZAB activated a config (committed, or the leader's at the start of a sync, or
    /// learned from a vote: a server only ever activates committed configs). It carries
    /// its members' addresses, so it is persisted as the committed config here at once
    /// and links are opened to new members.
    pub(super) fn on_config_active(&mut self, config: Membership) {
        let active = DynamicConfig::from_membership(&config);
        info!(
            version = format_args!("{:#x}", active.version),
            members = active.servers.len(),
            "configuration active"
        );
        if let Err(e) = self.data.persist_config(&active) {
            warn!(error = %e, "cannot persist the active configuration");
        }
        for entry in active.servers.values() {
            if entry.id != self.cfg.server_id
                && let Some(addr) = entry.primary()
            {
                self.peers
                    .ensure_link(entry.id, &addr.host, addr.quorum_port);
            }
        }
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
