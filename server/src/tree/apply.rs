//! Applying a transaction to the tree. Deterministic: the same txn on the same tree
//! gives the same tree on every replica. Validation already happened when the txn was
//! made, so a failure here means the replica diverged; it is logged loudly and reported,
//! never panicked on.

use std::borrow::Cow;

use paddock_proto::{ErrorCode, EventType, MultiResult, OpCode, Stat, StatPersisted};
use tracing::error;

use super::record::{Fields, NodeRecord};
use super::{DataTree, Node, NodeKind, SessionEntry, stat_of};
use crate::path;
use crate::txn::{Txn, TxnOp};

/// A watch that the applied change fires: the event at a path. The watch manager decides
/// who is told (data, child, persistent and recursive watches). The path is borrowed
/// from the txn when it can be: most triggers find no watch, and a copy for each was
/// an allocation per write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTrigger<'t> {
    pub path: Cow<'t, str>,
    pub event: EventType,
}

/// What applying one txn produced, for the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyResult {
    Created {
        op: OpCode,
        path: String,
        stat: Stat,
    },
    Deleted,
    DataSet(Stat),
    AclSet(Stat),
    Checked,
    SessionCreated,
    SessionClosed,
    Multi(Vec<MultiResult>),
    /// A reconfig: the new config text and /zookeeper/config's stat.
    Reconfigured {
        data: Vec<u8>,
        stat: Stat,
    },
    Failed(ErrorCode),
}

impl DataTree {
    /// Applies `txn`, appending the watch triggers it fires to `triggers`.
    pub fn apply<'t>(&mut self, txn: &'t Txn, triggers: &mut Vec<WatchTrigger<'t>>) -> ApplyResult {
        if txn.zxid > self.last_zxid {
            self.last_zxid = txn.zxid;
        }
        let result = self.apply_op(txn, &txn.op, triggers);
        if let ApplyResult::Failed(code) = result {
            error!(zxid = format_args!("{:#x}", txn.zxid), ?code, op = ?txn.op.opcode(),
                "transaction failed to apply; this replica may have diverged");
        }
        result
    }

    fn apply_op<'t>(
        &mut self,
        txn: &Txn,
        op: &'t TxnOp,
        triggers: &mut Vec<WatchTrigger<'t>>,
    ) -> ApplyResult {
        match op {
            TxnOp::CreateSession { timeout_ms } => {
                self.sessions.insert(
                    txn.session,
                    SessionEntry {
                        timeout_ms: *timeout_ms,
                    },
                );
                ApplyResult::SessionCreated
            }
            TxnOp::CloseSession => {
                self.sessions.remove(&txn.session);
                let doomed: Vec<String> = self.session_ephemerals(txn.session).cloned().collect();
                for p in doomed {
                    // Ephemerals have no children, so deleting them one by one is atomic
                    // as far as any reader of this single-threaded tree can tell.
                    let _ = self.delete_node(Cow::Owned(p), txn.zxid, triggers);
                }
                ApplyResult::SessionClosed
            }
            TxnOp::Create {
                op,
                path,
                data,
                acl,
                kind,
                parent_cversion,
            } => match self.create_node(
                txn,
                path,
                data.as_deref(),
                acl,
                *kind,
                *parent_cversion,
                triggers,
            ) {
                Ok(stat) => ApplyResult::Created {
                    op: *op,
                    path: path.clone(),
                    stat,
                },
                Err(code) => ApplyResult::Failed(code),
            },
            TxnOp::Delete { path, .. } => match self.delete_node(path.into(), txn.zxid, triggers) {
                Ok(()) => ApplyResult::Deleted,
                Err(code) => ApplyResult::Failed(code),
            },
            TxnOp::SetData {
                path,
                data,
                version,
            } => {
                let Some(stat) = self.set_data(path, data.as_deref(), |s| {
                    s.version = *version;
                    s.mzxid = txn.zxid;
                    s.mtime = txn.time;
                }) else {
                    return ApplyResult::Failed(ErrorCode::NoNode);
                };
                triggers.push(WatchTrigger {
                    path: Cow::Borrowed(path),
                    event: EventType::NodeDataChanged,
                });
                ApplyResult::DataSet(stat)
            }
            TxnOp::SetAcl { path, acl, version } => {
                let Some(record) = self.nodes.get(path.as_bytes()) else {
                    return ApplyResult::Failed(ErrorCode::NoNode);
                };
                let mut fields = record.fields();
                let old_acl = fields.acl;
                fields.acl = self.acls.acquire(acl);
                fields.stat.aversion = *version;
                let record = record.with_fields(&fields);
                self.acls.release(old_acl);
                let stat = Node {
                    record: &record,
                    tree: self,
                }
                .stat();
                self.nodes.insert(record);
                ApplyResult::AclSet(stat)
            }
            TxnOp::Reconfig { data } => {
                let Some(stat) = self.set_data(super::CONFIG_NODE, Some(data), |s| {
                    s.version = s.version.wrapping_add(1);
                    s.mzxid = txn.zxid;
                    s.mtime = txn.time;
                }) else {
                    return ApplyResult::Failed(ErrorCode::NoNode);
                };
                triggers.push(WatchTrigger {
                    path: Cow::Borrowed(super::CONFIG_NODE),
                    event: EventType::NodeDataChanged,
                });
                ApplyResult::Reconfigured {
                    data: data.clone(),
                    stat,
                }
            }
            TxnOp::Check { path, .. } => {
                if self.contains(path) {
                    ApplyResult::Checked
                } else {
                    ApplyResult::Failed(ErrorCode::NoNode)
                }
            }
            TxnOp::Multi(ops) => {
                let mut results = Vec::with_capacity(ops.len());
                for sub in ops {
                    results.push(match self.apply_op(txn, sub, triggers) {
                        ApplyResult::Created { op, path, stat } => {
                            // ZooKeeper 3.8 answers create and create2 inside a multi
                            // with a plain CreateResult (path only).
                            if matches!(op, OpCode::Create | OpCode::Create2) {
                                MultiResult::Create(path)
                            } else {
                                MultiResult::Create2(path, stat)
                            }
                        }
                        ApplyResult::Deleted => MultiResult::Delete,
                        ApplyResult::DataSet(stat) => MultiResult::SetData(stat),
                        ApplyResult::Checked => MultiResult::Check,
                        ApplyResult::Failed(code) => return ApplyResult::Failed(code),
                        other => {
                            error!(?other, "unexpected sub-result in multi");
                            return ApplyResult::Failed(ErrorCode::RuntimeInconsistency);
                        }
                    });
                }
                ApplyResult::Multi(results)
            }
        }
    }

    /// Replaces a node's data and lets `update` change its Stat; the client's Stat after.
    fn set_data(
        &mut self,
        p: &str,
        data: Option<&[u8]>,
        update: impl FnOnce(&mut StatPersisted),
    ) -> Option<Stat> {
        let (old_len, stat) = self.nodes.update(p.as_bytes(), |record| {
            let old_len = record.data().map_or(0, <[u8]>::len) as u64;
            let mut fields = record.fields();
            update(&mut fields.stat);
            *record = record.with_data(data, &fields);
            (old_len, stat_of(record))
        })?;
        self.data_size =
            self.data_size.saturating_sub(old_len) + data.map_or(0, <[u8]>::len) as u64;
        Some(stat)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_node<'t>(
        &mut self,
        txn: &Txn,
        p: &'t str,
        data: Option<&[u8]>,
        acl: &[paddock_proto::Acl],
        kind: NodeKind,
        parent_cversion: i32,
        triggers: &mut Vec<WatchTrigger<'t>>,
    ) -> Result<Stat, ErrorCode> {
        if p == "/" || self.contains(p) {
            return Err(ErrorCode::NodeExists);
        }
        let linked = self.link_child(p, |parent| {
            if parent_cversion > parent.cversion {
                parent.cversion = parent_cversion;
                parent.pzxid = txn.zxid;
            }
        });
        if !linked {
            return Err(ErrorCode::NoNode);
        }
        let fields = Fields {
            stat: StatPersisted {
                czxid: txn.zxid,
                mzxid: txn.zxid,
                ctime: txn.time,
                mtime: txn.time,
                version: 0,
                cversion: 0,
                aversion: 0,
                ephemeral_owner: kind.owner(),
                pzxid: txn.zxid,
            },
            acl: self.acls.acquire(acl),
            num_children: 0,
        };
        let record = NodeRecord::new(p, data, &fields);
        let client_stat = Node {
            record: &record,
            tree: self,
        }
        .stat();
        self.data_size += (p.len() + data.map_or(0, <[u8]>::len)) as u64;
        self.index(p, kind);
        self.nodes.insert(record);
        triggers.push(WatchTrigger {
            path: Cow::Borrowed(p),
            event: EventType::NodeCreated,
        });
        triggers.push(WatchTrigger {
            path: Cow::Borrowed(path::parent(p)),
            event: EventType::NodeChildrenChanged,
        });
        Ok(client_stat)
    }

    fn delete_node<'t>(
        &mut self,
        p: Cow<'t, str>,
        zxid: i64,
        triggers: &mut Vec<WatchTrigger<'t>>,
    ) -> Result<(), ErrorCode> {
        let Some(record) = self.nodes.remove(p.as_bytes()) else {
            return Err(ErrorCode::NoNode);
        };
        let fields = record.fields();
        self.data_size = self
            .data_size
            .saturating_sub((p.len() + record.data().map_or(0, <[u8]>::len)) as u64);
        self.acls.release(fields.acl);
        self.unindex(&p, NodeKind::from_owner(fields.stat.ephemeral_owner));
        // Validation refuses to delete a node with children; should one be here anyway,
        // its list goes with it rather than outliving the node.
        self.children.remove(p.as_bytes());
        // The persisted cversion counts creations only (see Node::stat).
        self.unlink_child(&p, |parent| {
            if zxid > parent.pzxid {
                parent.pzxid = zxid;
            }
        });
        let parent = match &p {
            Cow::Borrowed(p) => Cow::Borrowed(path::parent(p)),
            Cow::Owned(p) => Cow::Owned(path::parent(p).to_string()),
        };
        triggers.push(WatchTrigger {
            path: p,
            event: EventType::NodeDeleted,
        });
        triggers.push(WatchTrigger {
            path: parent,
            event: EventType::NodeChildrenChanged,
        });
        Ok(())
    }
}
