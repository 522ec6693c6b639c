//! Write validation: a write request is checked (path rules, existence, versions, ACLs)
//! against the tree plus pending changes and turned into a transaction, or refused with
//! ZooKeeper's error code. Nothing here changes the tree.

use paddock_proto::{CreateMode, CreateRequest, ErrorCode, MultiResult, OpCode, Request, perms};

use super::pending::{NodeView, PendingChanges, Scratch};
use crate::path;
use crate::tree::acl::{self, Credentials};
use crate::tree::{self, DataTree, MAX_TTL, NodeKind};
use crate::txn::TxnOp;

/// Who is writing, and what the server allows.
pub struct WriteContext<'a> {
    pub session: i64,
    pub creds: &'a Credentials,
    pub extended_types: bool,
}

/// A validated write: its txn and the changes it will make once applied.
pub struct Prepared {
    pub op: TxnOp,
    pub changes: Vec<(super::pending::ChangedPath, Option<NodeView>)>,
}

/// Validates a single write request. It is taken, not borrowed: its path, data and ACL
/// move into the txn rather than being copied.
pub fn prepare(
    tree: &DataTree,
    pending: &PendingChanges,
    ctx: &WriteContext<'_>,
    req: Request,
) -> Result<Prepared, ErrorCode> {
    let mut scratch = Scratch::new(tree, pending);
    let op = prepare_op(&mut scratch, ctx, req)?;
    Ok(Prepared {
        op,
        changes: scratch.into_changes(),
    })
}

/// Validates a multi: all ops or none. On failure, the per-op results ZooKeeper sends:
/// `Ok` for ops before the failing one, its error, RuntimeInconsistency after it.
pub fn prepare_multi(
    tree: &DataTree,
    pending: &PendingChanges,
    ctx: &WriteContext<'_>,
    ops: Vec<Request>,
) -> Result<Prepared, Vec<MultiResult>> {
    let mut scratch = Scratch::new(tree, pending);
    let count = ops.len();
    let mut txns = Vec::with_capacity(count);
    for (i, op) in ops.into_iter().enumerate() {
        match prepare_op(&mut scratch, ctx, op) {
            Ok(txn) => txns.push(txn),
            Err(code) => {
                return Err((0..count)
                    .map(|j| {
                        MultiResult::Error(match j.cmp(&i) {
                            std::cmp::Ordering::Less => ErrorCode::Ok.code(),
                            std::cmp::Ordering::Equal => code.code(),
                            std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency.code(),
                        })
                    })
                    .collect());
            }
        }
    }
    Ok(Prepared {
        op: TxnOp::Multi(txns),
        changes: scratch.into_changes(),
    })
}

/// Validates a close: it deletes the session's ephemerals (pending ones included).
pub fn prepare_close(tree: &DataTree, pending: &PendingChanges, session: i64) -> Prepared {
    let mut scratch = Scratch::new(tree, pending);
    let doomed: Vec<String> = tree.session_ephemerals(session).cloned().collect();
    for p in doomed {
        if scratch.view(&p).is_some() {
            remove_node(&mut scratch, &p);
        }
    }
    Prepared {
        op: TxnOp::CloseSession,
        changes: scratch.into_changes(),
    }
}

/// Validates a reaper deletion of an empty container or an expired TTL node.
pub fn prepare_reap(
    tree: &DataTree,
    pending: &PendingChanges,
    p: &str,
    now_ms: i64,
) -> Option<Prepared> {
    let mut scratch = Scratch::new(tree, pending);
    let node = scratch.view(p)?;
    let reapable = node.num_children == 0
        && match node.kind {
            NodeKind::Container => node.cversion > 0,
            NodeKind::Ttl(ttl) => now_ms.saturating_sub(node.mtime) > ttl,
            _ => false,
        };
    if !reapable {
        return None;
    }
    remove_node(&mut scratch, p);
    Some(Prepared {
        op: TxnOp::Delete {
            path: p.to_string(),
            reaped: true,
        },
        changes: scratch.into_changes(),
    })
}

fn checked_path(p: &str) -> Result<(), ErrorCode> {
    path::check(p, false)
}

fn existing(scratch: &Scratch<'_>, p: &str) -> Result<NodeView, ErrorCode> {
    scratch.view(p).ok_or(ErrorCode::NoNode)
}

fn authorize(ctx: &WriteContext<'_>, node: &NodeView, wanted: i32) -> Result<(), ErrorCode> {
    if ctx.creds.allows(&node.acl, wanted) {
        Ok(())
    } else {
        Err(ErrorCode::NoAuth)
    }
}

fn check_version(expected: i32, actual: i32) -> Result<(), ErrorCode> {
    if expected == -1 || expected == actual {
        Ok(())
    } else {
        Err(ErrorCode::BadVersion)
    }
}

fn is_system_node(p: &str) -> bool {
    p == "/" || p == tree::SYSTEM_ROOT || p == tree::CONFIG_NODE || p == tree::QUOTA_ROOT
}

/// Records a node's removal and its parent's child-list change.
fn remove_node(scratch: &mut Scratch<'_>, p: &str) {
    scratch.set(p, None);
    let parent_path = path::parent(p);
    if let Some(mut parent) = scratch.view(parent_path) {
        parent.num_children -= 1;
        scratch.set(parent_path, Some(parent));
    }
}

fn prepare_op(
    scratch: &mut Scratch<'_>,
    ctx: &WriteContext<'_>,
    req: Request,
) -> Result<TxnOp, ErrorCode> {
    match req {
        // createContainer takes only the container mode, createTTL only the TTL ones,
        // create and create2 the rest.
        Request::Create(r) => create(scratch, ctx, OpCode::Create, plain_mode, r, None),
        Request::Create2(r) => create(scratch, ctx, OpCode::Create2, plain_mode, r, None),
        Request::CreateContainer(r) => {
            let takes = CreateMode::is_container;
            create(scratch, ctx, OpCode::CreateContainer, takes, r, None)
        }
        Request::CreateTtl(r) => {
            let plain = CreateRequest {
                path: r.path,
                data: r.data,
                acl: r.acl,
                flags: r.flags,
            };
            create(
                scratch,
                ctx,
                OpCode::CreateTtl,
                CreateMode::is_ttl,
                plain,
                Some(r.ttl),
            )
        }
        Request::Delete(r) => {
            checked_path(&r.path)?;
            if is_system_node(&r.path) {
                return Err(ErrorCode::BadArguments);
            }
            let node = existing(scratch, &r.path)?;
            let parent = existing(scratch, path::parent(&r.path))?;
            authorize(ctx, &parent, perms::DELETE)?;
            check_version(r.version, node.version)?;
            if node.num_children > 0 {
                return Err(ErrorCode::NotEmpty);
            }
            remove_node(scratch, &r.path);
            Ok(TxnOp::Delete {
                path: r.path,
                reaped: false,
            })
        }
        Request::DeleteContainer(p) => {
            checked_path(&p)?;
            let node = existing(scratch, &p)?;
            if !matches!(node.kind, NodeKind::Container | NodeKind::Ttl(_)) {
                return Err(ErrorCode::BadArguments);
            }
            if node.num_children > 0 {
                return Err(ErrorCode::NotEmpty);
            }
            remove_node(scratch, &p);
            Ok(TxnOp::Delete {
                path: p,
                reaped: true,
            })
        }
        Request::SetData(r) => {
            checked_path(&r.path)?;
            let mut node = existing(scratch, &r.path)?;
            authorize(ctx, &node, perms::WRITE)?;
            check_version(r.version, node.version)?;
            node.version = node.version.wrapping_add(1);
            let version = node.version;
            scratch.set(&r.path, Some(node));
            Ok(TxnOp::SetData {
                path: r.path,
                data: r.data.0,
                version,
            })
        }
        Request::SetAcl(r) => {
            checked_path(&r.path)?;
            let mut node = existing(scratch, &r.path)?;
            authorize(ctx, &node, perms::ADMIN)?;
            check_version(r.version, node.aversion)?;
            let fixed = acl::fix_up(r.acl, ctx.creds).map_err(|_| ErrorCode::InvalidAcl)?;
            node.aversion = node.aversion.wrapping_add(1);
            node.acl = scratch.shared_acl(&fixed);
            let version = node.aversion;
            scratch.set(&r.path, Some(node));
            Ok(TxnOp::SetAcl {
                path: r.path,
                acl: fixed,
                version,
            })
        }
        Request::Check(r) => {
            checked_path(&r.path)?;
            let node = existing(scratch, &r.path)?;
            authorize(ctx, &node, perms::READ)?;
            check_version(r.version, node.version)?;
            Ok(TxnOp::Check {
                path: r.path,
                version: r.version,
            })
        }
        // Not a write, or (multi, reconfig, closeSession) one the leader prepares
        // elsewhere; a new request type must be placed on one side.
        Request::Exists(_)
        | Request::GetData(_)
        | Request::GetAcl(_)
        | Request::GetChildren(_)
        | Request::GetChildren2(_)
        | Request::Sync(_)
        | Request::Ping
        | Request::Multi(_)
        | Request::MultiRead(_)
        | Request::Reconfig(_)
        | Request::CheckWatches(_)
        | Request::RemoveWatches(_)
        | Request::Auth(_)
        | Request::SetWatches(_)
        | Request::SetWatches2(_)
        | Request::Sasl(_)
        | Request::GetEphemerals(_)
        | Request::GetAllChildrenNumber(_)
        | Request::AddWatch(_)
        | Request::WhoAmI
        | Request::CloseSession => Err(ErrorCode::Unimplemented),
    }
}

fn plain_mode(mode: CreateMode) -> bool {
    !mode.is_container() && !mode.is_ttl()
}

/// Validates a create of opcode `op`, which `takes` the create modes it allows.
fn create(
    scratch: &mut Scratch<'_>,
    ctx: &WriteContext<'_>,
    op: OpCode,
    takes: fn(CreateMode) -> bool,
    r: CreateRequest,
    ttl: Option<i64>,
) -> Result<TxnOp, ErrorCode> {
    let mode = CreateMode::from_code(r.flags).ok_or(ErrorCode::BadArguments)?;
    if !takes(mode) {
        return Err(ErrorCode::BadArguments);
    }
    if mode.is_container() || mode.is_ttl() {
        if !ctx.extended_types && mode.is_ttl() {
            return Err(ErrorCode::Unimplemented);
        }
        if let Some(ttl) = ttl
            && (ttl <= 0 || ttl > MAX_TTL)
        {
            return Err(ErrorCode::BadArguments);
        }
    }
    path::check(&r.path, mode.is_sequential())?;
    let parent_path = path::parent(&r.path).to_string();
    let mut parent = scratch.view(&parent_path).ok_or(ErrorCode::NoNode)?;
    authorize(ctx, &parent, perms::CREATE)?;
    let acl = acl::fix_up(r.acl, ctx.creds).map_err(|_| ErrorCode::InvalidAcl)?;
    if matches!(parent.kind, NodeKind::Ephemeral(_)) {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    let final_path = if mode.is_sequential() {
        format!("{}{:010}", r.path, parent.cversion)
    } else {
        r.path
    };
    checked_path(&final_path)?;
    if scratch.view(&final_path).is_some() {
        return Err(ErrorCode::NodeExists);
    }
    let kind = if mode.is_ephemeral() {
        NodeKind::Ephemeral(ctx.session)
    } else if mode.is_container() {
        NodeKind::Container
    } else if mode.is_ttl() {
        NodeKind::Ttl(ttl.unwrap_or(0))
    } else {
        NodeKind::Persistent
    };
    parent.cversion = parent.cversion.wrapping_add(1);
    parent.num_children += 1;
    let parent_cversion = parent.cversion;
    scratch.set(&parent_path, Some(parent));
    scratch.set(
        &final_path,
        Some(NodeView {
            version: 0,
            cversion: 0,
            aversion: 0,
            kind,
            num_children: 0,
            acl: scratch.shared_acl(&acl),
            mtime: i64::MAX,
        }),
    );
    Ok(TxnOp::Create {
        op,
        path: final_path,
        data: r.data.0,
        acl,
        kind,
        parent_cversion,
    })
}
