//! Applying a transaction to the tree. Deterministic: the same txn on the same tree
//! gives the same tree on every replica. Validation already happened when the txn was
//! made, so a failure here means the replica diverged; it is logged loudly and reported,
//! never panicked on.

use std::sync::Arc;

use imbl::OrdSet;
use paddock_proto::{ErrorCode, EventType, MultiResult, OpCode, Stat, StatPersisted};
use tracing::error;

use super::{DataTree, Node, NodeKind, SessionEntry};
use crate::path;
use crate::txn::{Txn, TxnOp};

/// A watch that the applied change fires: the event at a path. The watch manager decides
/// who is told (data, child, persistent and recursive watches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTrigger {
    pub path: String,
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
    pub fn apply(&mut self, txn: &Txn, triggers: &mut Vec<WatchTrigger>) -> ApplyResult {
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

    fn apply_op(&mut self, txn: &Txn, op: &TxnOp, triggers: &mut Vec<WatchTrigger>) -> ApplyResult {
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
                    let _ = self.delete_node(&p, txn.zxid, triggers);
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
            TxnOp::Delete { path, .. } => match self.delete_node(path, txn.zxid, triggers) {
                Ok(()) => ApplyResult::Deleted,
                Err(code) => ApplyResult::Failed(code),
            },
            TxnOp::SetData {
                path,
                data,
                version,
            } => {
                let Some(node) = self.nodes.get_mut(path.as_str()) else {
                    return ApplyResult::Failed(ErrorCode::NoNode);
                };
                let old_len = node.bytes().len() as u64;
                node.data = data.as_deref().map(Arc::from);
                node.stat.version = *version;
                node.stat.mzxid = txn.zxid;
                node.stat.mtime = txn.time;
                let stat = node.stat();
                self.data_size = self.data_size - old_len + node.bytes().len() as u64;
                triggers.push(WatchTrigger {
                    path: path.clone(),
                    event: EventType::NodeDataChanged,
                });
                ApplyResult::DataSet(stat)
            }
            TxnOp::SetAcl { path, acl, version } => {
                let interned = self.acl_cache.intern(acl.clone());
                let Some(node) = self.nodes.get_mut(path.as_str()) else {
                    return ApplyResult::Failed(ErrorCode::NoNode);
                };
                node.acl = interned;
                node.stat.aversion = *version;
                ApplyResult::AclSet(node.stat())
            }
            TxnOp::Reconfig { data } => {
                let Some(node) = self.nodes.get_mut(super::CONFIG_NODE) else {
                    return ApplyResult::Failed(ErrorCode::NoNode);
                };
                let old_len = node.bytes().len() as u64;
                node.data = Some(Arc::from(&data[..]));
                node.stat.version = node.stat.version.wrapping_add(1);
                node.stat.mzxid = txn.zxid;
                node.stat.mtime = txn.time;
                let stat = node.stat();
                self.data_size = self.data_size - old_len + data.len() as u64;
                triggers.push(WatchTrigger {
                    path: super::CONFIG_NODE.to_string(),
                    event: EventType::NodeDataChanged,
                });
                ApplyResult::Reconfigured {
                    data: data.clone(),
                    stat,
                }
            }
            TxnOp::Check { path, .. } => {
                if self.nodes.contains_key(path.as_str()) {
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

    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &mut self,
        txn: &Txn,
        p: &str,
        data: Option<&[u8]>,
        acl: &[paddock_proto::Acl],
        kind: NodeKind,
        parent_cversion: i32,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<Stat, ErrorCode> {
        if p == "/" || self.nodes.contains_key(p) {
            return Err(ErrorCode::NodeExists);
        }
        let parent_path = path::parent(p);
        let acl = self.acl_cache.intern(acl.to_vec());
        let Some(parent) = self.nodes.get_mut(parent_path) else {
            return Err(ErrorCode::NoNode);
        };
        parent.children.insert(Arc::from(path::basename(p)));
        if parent_cversion > parent.stat.cversion {
            parent.stat.cversion = parent_cversion;
            parent.stat.pzxid = txn.zxid;
        }
        let stat = StatPersisted {
            czxid: txn.zxid,
            mzxid: txn.zxid,
            ctime: txn.time,
            mtime: txn.time,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: kind.owner(),
            pzxid: txn.zxid,
        };
        let node = Node {
            data: data.map(Arc::from),
            acl,
            stat,
            children: OrdSet::new(),
        };
        let client_stat = node.stat();
        self.data_size += (p.len() + node.bytes().len()) as u64;
        self.index(p, kind);
        self.nodes.insert(Arc::from(p), node);
        triggers.push(WatchTrigger {
            path: p.to_string(),
            event: EventType::NodeCreated,
        });
        triggers.push(WatchTrigger {
            path: parent_path.to_string(),
            event: EventType::NodeChildrenChanged,
        });
        Ok(client_stat)
    }

    fn delete_node(
        &mut self,
        p: &str,
        zxid: i64,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<(), ErrorCode> {
        let Some(node) = self.nodes.remove(p) else {
            return Err(ErrorCode::NoNode);
        };
        self.data_size = self
            .data_size
            .saturating_sub((p.len() + node.bytes().len()) as u64);
        self.unindex(p, node.kind());
        let parent_path = path::parent(p);
        if let Some(parent) = self.nodes.get_mut(parent_path) {
            parent.children.remove(path::basename(p));
            // The persisted cversion counts creations only (see Node::stat).
            if zxid > parent.stat.pzxid {
                parent.stat.pzxid = zxid;
            }
        }
        triggers.push(WatchTrigger {
            path: p.to_string(),
            event: EventType::NodeDeleted,
        });
        triggers.push(WatchTrigger {
            path: parent_path.to_string(),
            event: EventType::NodeChildrenChanged,
        });
        Ok(())
    }
}
