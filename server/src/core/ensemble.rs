//! The core as ZAB's shell: performs every output of the replication state machine in
//! order (sends, log appends, epoch files, commits, truncations, snapshots, role
//! changes) and handles the application messages peers exchange.

use paddock_proto::ErrorCode;
use tracing::{info, warn};

use super::forward::AppMsg;
use super::pipeline::Origin;
use super::{Core, Outgoing};
use crate::request::prep::Prepared;
use crate::tree::DataTree;
use crate::tree::acl::Credentials;
use crate::txn::TxnOp;
use crate::zab::{Output, Ready, Role, Sid, Zxid};

impl Core {
    /// Performs ZAB's outputs until it has nothing more to say, in the order it asked
    /// (`zab::Ready`). What follows an epochs write waits until the epochs are durable
    /// (`DiskEvent::EpochsDurable`, see [`Core::on_epochs_durable`]); meanwhile the disk
    /// writer does the fsync and this thread goes on taking input. The outputs wait in
    /// ZAB's queue, not here: one taken is done before the next is taken, even when
    /// doing it calls back into ZAB and drives again.
    pub(super) fn drive(&mut self) {
        while !self.awaiting_epochs && self.fatal.is_none() {
            match self.zab.next_ready() {
                None => return,
                Some(Ready::PersistEpochs(epochs)) => {
                    if let Err(e) = self.data.persist_epochs(epochs.accepted, epochs.current) {
                        self.fatal = Some(format!("cannot persist epochs: {e}"));
                        return;
                    }
                    self.awaiting_epochs = true;
                }
                Some(Ready::Output(out)) => self.perform(out),
            }
        }
    }

    /// The epochs last asked for are on disk: what waited for them goes.
    pub(super) fn on_epochs_durable(&mut self) {
        self.awaiting_epochs = false;
        self.drive();
    }

    fn perform(&mut self, out: Output) {
        match out {
            Output::Send { to, msg } => self.peers.send(to, &msg),
            Output::Append { zxid, payload } => {
                if let Err(e) = self.data.append(zxid, payload) {
                    self.fatal = Some(format!("cannot queue txn {zxid:#x} for the log: {e}"));
                }
            }
            Output::Commit { zxid, payload } => self.apply_commit(zxid, &payload),
            Output::Truncate { zxid } => self.truncate_log(zxid),
            Output::SendSnapshot { to } => {
                // The link serializes it (off this thread) and sends it in order.
                let zxid = self.tree.last_zxid();
                self.peers
                    .send_snapshot(to, zxid, self.tree.snapshot_view());
            }
            Output::InstallSnapshot { zxid, payload } => self.install_snapshot(zxid, payload),
            Output::App { from, payload } => self.on_app(from, &payload),
            Output::RoleChanged { from, to } => self.on_role(from, to),
            Output::ActivateConfig(config) => self.on_config_active(config),
        }
    }

    fn on_app(&mut self, from: Sid, payload: &[u8]) {
        let msg = match AppMsg::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                warn!(peer = from, error = %e, "malformed application message");
                return;
            }
        };
        let leader = self.is_leader();
        match msg {
            AppMsg::Forward {
                session,
                cxid,
                ids,
                is_super,
                request,
            } if leader => {
                self.touch(session);
                let creds = Credentials { ids, is_super };
                self.lead(Origin::Remote(from), session, cxid, &creds, request);
            }
            AppMsg::CreateSession {
                session,
                timeout_ms,
            } if leader => {
                let prepared = Prepared {
                    op: TxnOp::CreateSession { timeout_ms },
                    changes: vec![],
                };
                self.propose(session, 0, prepared, None);
            }
            AppMsg::Touch { sessions } if leader => {
                for s in sessions {
                    self.touch(s);
                }
            }
            AppMsg::Result {
                session,
                cxid,
                err,
                opcode,
                body,
            } if !leader => self.on_result(session, cxid, err, opcode, &body),
            other => warn!(
                peer = from,
                ?other,
                "application message for another role; dropped"
            ),
        }
    }

    /// Leader: a session showed activity somewhere.
    fn touch(&mut self, session: i64) {
        let now = self.now_ms();
        if let Some(entry) = self.tree.sessions().get(&session) {
            self.sessions.touch(session, entry.timeout_ms, now);
        }
    }

    /// Learner: tells the leader which sessions were active here.
    pub(super) fn send_touches(&mut self) {
        if self.touched.is_empty() {
            return;
        }
        let sessions: Vec<i64> = self.touched.drain().collect();
        self.zab.send_to_leader(AppMsg::Touch { sessions }.encode());
        self.drive();
    }

    fn on_role(&mut self, previous: Role, role: Role) {
        info!(me = self.zab.me(), ?previous, ?role, "role changed");
        self.read_only_role(role);
        let same_leader = previous.leader(self.zab.me()) == role.leader(self.zab.me());
        if !role.is_serving() || !same_leader {
            // Clients cannot be served consistently across a change of leader: like
            // ZooKeeper, drop every connection; sessions survive and clients reconnect.
            self.drop_all_clients();
        }
        if role == Role::Leader {
            // The leader owns expiry: every session gets a full timeout from now.
            let now = self.now_ms();
            let sessions: Vec<(i64, i32)> = self
                .tree
                .sessions()
                .iter()
                .map(|(id, e)| (*id, e.timeout_ms))
                .collect();
            for (id, timeout) in sessions {
                self.sessions.touch(id, timeout, now);
            }
        }
    }

    fn drop_all_clients(&mut self) {
        for conn in self.conns.values_mut() {
            conn.session = None;
            conn.queue.clear();
            let _ = conn.tx.send(Outgoing::Close);
        }
        self.waiting.clear();
        self.syncs.clear();
        self.session_owner.clear();
        self.closing.clear();
        self.touched.clear();
        self.pending = Default::default();
    }

    /// TRUNC: cut the log after `zxid`. Only uncommitted records go, and those were
    /// never applied, so the tree stays as it is.
    fn truncate_log(&mut self, zxid: Zxid) {
        info!(zxid = format_args!("{zxid:#x}"), "truncating the log");
        // What recovery logged past `zxid` will never be applied here.
        if let Some(target) = self.snapshot_recovered_at.as_mut() {
            *target = (*target).min(zxid);
        }
        if let Err(e) = self.data.truncate_after(zxid) {
            self.fatal = Some(format!("cannot truncate the log: {e}"));
        }
    }

    /// Persists the commit index now and then (see storage::state::load_commit_index for
    /// why it need not be durable).
    pub(super) fn persist_commit_index(&mut self) {
        let committed = self.zab.last_committed();
        if committed != self.persisted_commit {
            self.persisted_commit = committed;
            if let Err(e) = self.data.persist_commit_index(committed) {
                warn!(error = %e, "cannot record the commit index");
            }
        }
    }

    /// SNAP: replace the state, and queue the snapshot for the disk (ZAB ACKs nothing
    /// until the disk reports it installed); the log restarts after it.
    fn install_snapshot(&mut self, zxid: Zxid, payload: Vec<u8>) {
        let tree = match DataTree::from_snapshot(&payload) {
            Ok(t) => t,
            Err(e) => {
                // ZAB has taken the snapshot's history as ours: only a restart from what
                // the disk holds makes this server whole again.
                self.fatal = Some(format!("the leader's snapshot cannot be loaded: {e}"));
                return;
            }
        };
        if let Err(e) = self.data.install_snapshot(zxid, payload) {
            self.fatal = Some(format!("cannot install the leader's snapshot: {e}"));
            return;
        }
        info!(
            zxid = format_args!("{zxid:#x}"),
            nodes = tree.node_count(),
            "installing the leader's snapshot"
        );
        self.tree = tree;
        self.pending = Default::default();
        self.txns_since_snapshot = 0;
        self.snapshot_recovered_at = None;
    }

    /// A new session from a client connected here.
    pub(super) fn create_session(&mut self, session: i64, timeout_ms: i32, reply: super::ReplyTo) {
        if self.is_leader() {
            let prepared = Prepared {
                op: TxnOp::CreateSession { timeout_ms },
                changes: vec![],
            };
            self.propose(session, 0, prepared, Some(reply));
        } else if self.zab.send_to_leader(
            AppMsg::CreateSession {
                session,
                timeout_ms,
            }
            .encode(),
        ) {
            self.wait_for(session, 0, reply);
            self.drive();
        } else {
            self.enqueue_ready(
                reply.conn,
                0,
                Err(ErrorCode::ConnectionLoss),
                reply.received,
            );
        }
    }
}
