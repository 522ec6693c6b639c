//! Membership changes through the `reconfig` opcode: validated on the leader with
//! ZooKeeper's rules and error codes, proposed through ZAB's reconfig path, and, once
//! committed, activated here: the active config is persisted as a dynamic config file
//! (trusted over zoo.cfg at the next start) and links to new peers are opened.

use std::collections::BTreeSet;

use paddock_proto::{ErrorCode, ReconfigRequest, perms};
use tracing::{info, warn};

use super::Core;
use super::forward::AppMsg;
use crate::config::{DynamicConfig, QuorumKind};
use crate::tree::CONFIG_NODE;
use crate::tree::acl::Credentials;
use crate::txn::{Txn, TxnOp};
use crate::zab::{Membership, Message, ReconfigError, Sid};

/// How often a server that lacks the text of its active config asks its peers again.
const CONFIG_QUERY_EVERY_MS: u64 = 1_000;

impl Core {
    /// Checks a reconfig request and computes the config it asks for.
    pub(super) fn plan_reconfig(
        &self,
        creds: &Credentials,
        r: &ReconfigRequest,
    ) -> Result<DynamicConfig, ErrorCode> {
        if !self.cfg.reconfig_enabled {
            return Err(ErrorCode::ReconfigDisabled);
        }
        // Only the super user, or ADMIN on /zookeeper/config, may change membership.
        let allowed = creds.is_super
            || self
                .tree
                .get(CONFIG_NODE)
                .is_some_and(|node| creds.allows(&node.acl, perms::ADMIN));
        if !allowed {
            return Err(ErrorCode::NoAuth);
        }
        // While the active config's members and addresses are not known here yet (a
        // config learned from a vote, before its text arrived), the ensemble we hold is
        // an older one: an incremental change computed from it would undo reconfigs
        // that committed since. The caller retries, as after any reconfig in flight.
        if self.awaited_config.is_some() {
            return Err(ErrorCode::ReconfigInProgress);
        }
        let current = &self.ensemble;
        if r.cur_config_id != -1 && r.cur_config_id as u64 != current.version {
            return Err(ErrorCode::BadVersion);
        }
        let next = if !r.new_members.trim().is_empty() {
            // Non-incremental: the new member list replaces the old one.
            let text = r.new_members.replace(',', "\n");
            let mut next = DynamicConfig::parse(&text, "reconfig newMembers").map_err(|e| {
                warn!(error = %e, "reconfig refused");
                ErrorCode::BadArguments
            })?;
            next.version = current.version;
            next
        } else {
            if current.quorum_kind() != QuorumKind::Majority {
                // As ZooKeeper: incremental changes only under the majority rule.
                return Err(ErrorCode::BadArguments);
            }
            let mut next = current.clone();
            for id in r
                .leaving_servers
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                let id: u64 = id.parse().map_err(|_| ErrorCode::BadArguments)?;
                next.servers.remove(&id);
            }
            for line in r
                .joining_servers
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                let (key, spec) = line.split_once('=').ok_or(ErrorCode::BadArguments)?;
                let id: u64 = key
                    .trim()
                    .strip_prefix("server.")
                    .and_then(|id| id.parse().ok())
                    .ok_or(ErrorCode::BadArguments)?;
                let entry = DynamicConfig::parse_server(id, spec.trim()).map_err(|e| {
                    warn!(error = %e, "reconfig refused");
                    ErrorCode::BadArguments
                })?;
                next.servers.insert(id, entry);
            }
            next
        };
        if next.participants().next().is_none() {
            return Err(ErrorCode::BadArguments);
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
        let time = super::wall_ms();
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
        if let Err(e) = parsed.write_committed(&self.cfg.snap_dir) {
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
