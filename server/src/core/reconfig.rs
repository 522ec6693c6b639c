//! Membership changes through the `reconfig` opcode: validated on the leader with
//! ZooKeeper's rules and error codes, proposed through ZAB's reconfig path, and, once
//! committed, activated here: the active config is persisted as a dynamic config file
//! (trusted over zoo.cfg at the next start) and links to new peers are opened.

use paddock_proto::{ErrorCode, ReconfigRequest, perms};
use tracing::{info, warn};

use super::Core;
use crate::config::{DynamicConfig, QuorumKind};
use crate::tree::CONFIG_NODE;
use crate::tree::acl::Credentials;
use crate::txn::{Txn, TxnOp};
use crate::zab::{Membership, ReconfigError};

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

    /// ZAB activated a config: adopt its addresses once its text is in our tree.
    pub(super) fn on_config_active(&mut self, config: Membership) {
        self.awaited_config = Some(config.version);
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
        let text = String::from_utf8_lossy(&node.data).into_owned();
        let parsed = match DynamicConfig::parse(&text, CONFIG_NODE) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot parse /zookeeper/config");
                return;
            }
        };
        if parsed.version as i64 != version {
            return;
        }
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
