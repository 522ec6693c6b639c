//! Reads and watch management, answered from the applied tree. Reads of a session wait
//! behind that session's own writes (the core sequences them), so a client always reads
//! its own writes.

use paddock_proto::{
    AddWatchMode, ClientInfo, ErrorCode, EventType, GetAclResponse, GetAllChildrenNumberResponse,
    GetChildren2Response, GetChildrenResponse, GetDataResponse, GetEphemeralsResponse, MultiResult,
    Request, Response, SetWatches2, SyncResponse, WatcherType, WhoAmIResponse, perms,
};

use crate::path;
use crate::tree::DataTree;
use crate::tree::acl::Credentials;
use crate::watch::{ConnId, Notification, WatchKind, WatchManager};

/// Who is reading.
pub struct ReadContext<'a> {
    pub conn: ConnId,
    pub session: i64,
    pub creds: &'a Credentials,
}

fn checked_path(p: &str) -> Result<(), ErrorCode> {
    path::check(p, false)
}

fn readable<'t>(
    tree: &'t DataTree,
    ctx: &ReadContext<'_>,
    p: &str,
    wanted: i32,
) -> Result<crate::tree::Node<'t>, ErrorCode> {
    checked_path(p)?;
    let node = tree.get(p).ok_or(ErrorCode::NoNode)?;
    if ctx.creds.allows(node.acl(), wanted) {
        Ok(node)
    } else {
        Err(ErrorCode::NoAuth)
    }
}

/// Answers a read or watch request. Notifications that setWatches fires are appended to
/// `events`.
pub fn answer(
    tree: &DataTree,
    watches: &mut WatchManager,
    ctx: &ReadContext<'_>,
    req: &Request,
    events: &mut Vec<Notification>,
) -> Result<Response, ErrorCode> {
    match req {
        Request::Exists(r) => {
            checked_path(&r.path)?;
            // An exists watch is a data watch, set even when the node is missing.
            if r.watch {
                watches.add(ctx.conn, WatchKind::Data, &r.path);
            }
            tree.get(&r.path)
                .map(|n| Response::Stat(n.stat()))
                .ok_or(ErrorCode::NoNode)
        }
        Request::GetData(r) => {
            let node = readable(tree, ctx, &r.path, perms::READ)?;
            if r.watch {
                watches.add(ctx.conn, WatchKind::Data, &r.path);
            }
            // Null data answers null (length -1), as ZooKeeper does.
            Ok(Response::GetData(GetDataResponse {
                data: node.data().into(),
                stat: node.stat(),
            }))
        }
        Request::GetChildren(r) => get_children(tree, watches, ctx, r, false),
        Request::GetChildren2(r) => get_children(tree, watches, ctx, r, true),
        Request::GetAcl(r) => get_acl(tree, ctx, &r.path),
        Request::GetAllChildrenNumber(r) => {
            readable(tree, ctx, &r.path, perms::READ)?;
            let total = tree.descendant_count(&r.path).unwrap_or(0);
            Ok(Response::AllChildrenNumber(GetAllChildrenNumberResponse {
                total_number: i32::try_from(total).unwrap_or(i32::MAX),
            }))
        }
        Request::GetEphemerals(r) => Ok(ephemerals(tree, ctx, &r.prefix_path)),
        Request::Sync(r) => {
            checked_path(&r.path)?;
            Ok(Response::Sync(SyncResponse {
                path: r.path.clone(),
            }))
        }
        Request::MultiRead(ops) => Ok(multi_read(tree, watches, ctx, ops, events)),
        Request::WhoAmI => Ok(who_am_i(ctx)),
        Request::CheckWatches(r) => {
            checked_path(&r.path)?;
            let kind = WatcherType::from_code(r.kind).ok_or(ErrorCode::BadArguments)?;
            if watches.has(ctx.conn, kind, &r.path) {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        Request::RemoveWatches(r) => {
            checked_path(&r.path)?;
            let kind = WatcherType::from_code(r.kind).ok_or(ErrorCode::BadArguments)?;
            if watches.remove(ctx.conn, kind, &r.path) {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        Request::AddWatch(r) => {
            checked_path(&r.path)?;
            let kind = match AddWatchMode::from_code(r.mode) {
                Some(AddWatchMode::Persistent) => WatchKind::Persistent,
                Some(AddWatchMode::PersistentRecursive) => WatchKind::PersistentRecursive,
                None => return Err(ErrorCode::BadArguments),
            };
            watches.add(ctx.conn, kind, &r.path);
            Ok(Response::Error(paddock_proto::ErrorResponse { err: 0 }))
        }
        Request::SetWatches(r) => {
            let all = SetWatches2 {
                relative_zxid: r.relative_zxid,
                data_watches: r.data_watches.clone(),
                exist_watches: r.exist_watches.clone(),
                child_watches: r.child_watches.clone(),
                persistent_watches: vec![],
                persistent_recursive_watches: vec![],
            };
            restore_watches(tree, watches, ctx.conn, &all, events);
            Ok(Response::Empty)
        }
        Request::SetWatches2(r) => {
            restore_watches(tree, watches, ctx.conn, r, events);
            Ok(Response::Empty)
        }
        // What the opcode table sends to the leader, or the core answers itself (ping,
        // auth, sasl), never reaches here; a new request type must be placed on one side.
        Request::Create(_)
        | Request::Create2(_)
        | Request::CreateContainer(_)
        | Request::CreateTtl(_)
        | Request::Delete(_)
        | Request::DeleteContainer(_)
        | Request::SetData(_)
        | Request::SetAcl(_)
        | Request::Check(_)
        | Request::Multi(_)
        | Request::Reconfig(_)
        | Request::CloseSession
        | Request::Ping
        | Request::Auth(_)
        | Request::Sasl(_) => Err(ErrorCode::Unimplemented),
    }
}

/// getChildren (`with_stat` false) and getChildren2, which adds the parent's stat.
fn get_children(
    tree: &DataTree,
    watches: &mut WatchManager,
    ctx: &ReadContext<'_>,
    r: &paddock_proto::GetChildrenRequest,
    with_stat: bool,
) -> Result<Response, ErrorCode> {
    let node = readable(tree, ctx, &r.path, perms::READ)?;
    if r.watch {
        watches.add(ctx.conn, WatchKind::Child, &r.path);
    }
    let children = node.children();
    Ok(if with_stat {
        Response::GetChildren2(GetChildren2Response {
            children,
            stat: node.stat(),
        })
    } else {
        Response::GetChildren(GetChildrenResponse { children })
    })
}

/// getACL needs READ or ADMIN; as ZooKeeper does, a reader without ADMIN sees digest ids
/// as `user:x`, not the hash.
fn get_acl(tree: &DataTree, ctx: &ReadContext<'_>, path: &str) -> Result<Response, ErrorCode> {
    let node = readable(tree, ctx, path, perms::READ | perms::ADMIN)?;
    let mut acl = node.acl().to_vec();
    if !ctx.creds.allows(node.acl(), perms::ADMIN) {
        for entry in acl.iter_mut().filter(|a| a.id.scheme == "digest") {
            if let Some((user, _)) = entry.id.id.split_once(':') {
                entry.id.id = format!("{user}:x");
            }
        }
    }
    Ok(Response::GetAcl(GetAclResponse {
        acl,
        stat: node.stat(),
    }))
}

/// The session's ephemeral nodes under `prefix` (all of them for "" or "/").
fn ephemerals(tree: &DataTree, ctx: &ReadContext<'_>, prefix: &str) -> Response {
    let prefix = if prefix.is_empty() { "/" } else { prefix };
    let ephemerals = tree
        .session_ephemerals(ctx.session)
        .filter(|p| prefix == "/" || p.starts_with(prefix))
        .cloned()
        .collect();
    Response::Ephemerals(GetEphemeralsResponse { ephemerals })
}

/// multiRead: each op answered on its own; a failed one is an error result in its place.
fn multi_read(
    tree: &DataTree,
    watches: &mut WatchManager,
    ctx: &ReadContext<'_>,
    ops: &[Request],
    events: &mut Vec<Notification>,
) -> Response {
    let results = ops
        .iter()
        .map(|op| match answer(tree, watches, ctx, op, events) {
            Ok(Response::GetData(d)) => MultiResult::GetData(d.data, d.stat),
            Ok(Response::GetChildren(c)) => MultiResult::GetChildren(c.children),
            Ok(_) => MultiResult::Error(ErrorCode::BadArguments.code()),
            Err(code) => MultiResult::Error(code.code()),
        })
        .collect();
    Response::Multi(results)
}

/// whoAmI: the connection's ids; a digest id shows only its user.
fn who_am_i(ctx: &ReadContext<'_>) -> Response {
    Response::WhoAmI(WhoAmIResponse {
        client_info: ctx
            .creds
            .ids
            .iter()
            .map(|id| ClientInfo {
                auth_scheme: id.scheme.clone(),
                user: match id.scheme.as_str() {
                    "digest" => id.id.split(':').next().unwrap_or("").to_string(),
                    _ => id.id.clone(),
                },
            })
            .collect(),
    })
}

/// Re-registers a reconnecting client's watches, firing at once those whose trigger it
/// missed while away (changes after `relative_zxid`, the last zxid it saw).
fn restore_watches(
    tree: &DataTree,
    watches: &mut WatchManager,
    conn: ConnId,
    w: &SetWatches2,
    events: &mut Vec<Notification>,
) {
    let mut fire = |event: EventType, p: &String| {
        events.push(Notification {
            conn,
            event,
            path: crate::watch::WatchedPath::from(p.as_str()),
        })
    };
    for p in &w.data_watches {
        match tree.get(p) {
            None => fire(EventType::NodeDeleted, p),
            Some(n) if n.persisted().mzxid > w.relative_zxid => fire(EventType::NodeDataChanged, p),
            Some(_) => watches.add(conn, WatchKind::Data, p),
        }
    }
    for p in &w.exist_watches {
        match tree.get(p) {
            Some(_) => fire(EventType::NodeCreated, p),
            None => watches.add(conn, WatchKind::Data, p),
        }
    }
    for p in &w.child_watches {
        match tree.get(p) {
            None => fire(EventType::NodeDeleted, p),
            Some(n) if n.persisted().pzxid > w.relative_zxid => {
                fire(EventType::NodeChildrenChanged, p)
            }
            Some(_) => watches.add(conn, WatchKind::Child, p),
        }
    }
    for p in &w.persistent_watches {
        watches.add(conn, WatchKind::Persistent, p);
    }
    for p in &w.persistent_recursive_watches {
        watches.add(conn, WatchKind::PersistentRecursive, p);
    }
}
