//! The znodes a run uses, creating them before the load and removing them after, and a
//! pipelined bulk executor shared with `populate`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use paddock_proto::{Acl, CreateMode, CreateRequest, DeleteRequest, ErrorCode, Id, Request, perms};

use super::{Plan, RunError};
use crate::cli::Workload;
use crate::conn::{Conn, ConnError, Pumped};

/// Paths of one run, all under `<root>/run-<pid>-<ms>` so concurrent or leftover runs
/// never collide.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: String,
    pub run: String,
}

impl Layout {
    pub fn new(root: &str) -> Layout {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Layout {
            root: root.to_string(),
            run: format!("{root}/run-{}-{ms}", std::process::id()),
        }
    }

    pub fn key(&self, i: u32) -> String {
        format!("{}/k{i:07}", self.run)
    }

    pub fn create_delete_parent(&self) -> String {
        format!("{}/cd", self.run)
    }

    pub fn watched(&self) -> String {
        format!("{}/watched", self.run)
    }

    pub fn ephemeral_parent(&self) -> String {
        format!("{}/eph", self.run)
    }

    /// Parents this workload needs besides the key pool, in creation order.
    fn parents(&self, w: Workload) -> Vec<String> {
        match w {
            Workload::CreateDelete => vec![self.create_delete_parent()],
            Workload::EphemeralChurn => vec![self.ephemeral_parent()],
            _ => vec![],
        }
    }

    fn key_count(&self, plan: &Plan) -> u32 {
        match plan.workload {
            Workload::Read | Workload::Write | Workload::Mixed(_) => plan.keys,
            _ => 0,
        }
    }
}

pub fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

pub fn create(path: String, data: Vec<u8>, mode: CreateMode) -> Request {
    Request::Create(CreateRequest {
        path,
        data: data.into(),
        acl: open_acl(),
        flags: mode.code(),
    })
}

pub fn delete(path: String) -> Request {
    Request::Delete(DeleteRequest { path, version: -1 })
}

/// Creates the root, the run node and whatever the workload reads or watches.
pub async fn prepare(conn: &mut Conn, plan: &Plan, layout: &Layout) -> Result<(), RunError> {
    let limit = plan.net.request_timeout;
    let mut paths = Vec::new();
    // Every ancestor of the root, then the root itself (an existing one is fine).
    let mut at = String::new();
    for part in layout.root.split('/').skip(1) {
        at.push('/');
        at.push_str(part);
        paths.push(at.clone());
    }
    paths.push(layout.run.clone());
    paths.extend(layout.parents(plan.workload));
    for p in paths {
        let reply = conn
            .call(
                &create(p.clone(), Vec::new(), CreateMode::Persistent),
                limit,
            )
            .await?;
        match reply.error() {
            None | Some(ErrorCode::NodeExists) => {}
            Some(e) => return Err(RunError::Setup(format!("create {p}: {e}"))),
        }
    }
    let value = plan.value();
    let mut nodes: Vec<String> = (0..layout.key_count(plan)).map(|i| layout.key(i)).collect();
    if matches!(plan.workload, Workload::WatchFanout(_)) {
        nodes.push(layout.watched());
    }
    let reqs = nodes
        .into_iter()
        .map(|p| create(p, value.clone(), CreateMode::Persistent));
    let res = bulk(conn, reqs, 64, limit).await?;
    if let Some((code, n)) = res.errors.iter().next() {
        return Err(RunError::Setup(format!(
            "creating the workload's znodes: {n} failed with {}",
            code_name(*code)
        )));
    }
    Ok(())
}

/// Removes what `prepare` made (and anything a workload left under the run node).
pub async fn teardown(conn: &mut Conn, plan: &Plan, layout: &Layout) -> Result<(), RunError> {
    let limit = plan.net.request_timeout;
    let keys = (0..layout.key_count(plan)).map(|i| delete(layout.key(i)));
    let extra = matches!(plan.workload, Workload::WatchFanout(_)).then(|| delete(layout.watched()));
    bulk(conn, keys.chain(extra), 64, limit).await?;
    let mut parents = layout.parents(plan.workload);
    parents.reverse();
    parents.push(layout.run.clone());
    let mut failed = Vec::new();
    for p in parents {
        let reply = conn.call(&delete(p.clone()), limit).await?;
        match reply.error() {
            None | Some(ErrorCode::NoNode) => {}
            Some(e) => failed.push(format!("{p}: {e}")),
        }
    }
    // The shared root goes too when no other run is using it; otherwise leave it.
    let _ = conn.call(&delete(layout.root.clone()), limit).await?;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(RunError::Setup(format!(
            "could not delete {}",
            failed.join(", ")
        )))
    }
}

fn code_name(code: i32) -> String {
    ErrorCode::from_code(code)
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| code.to_string())
}

/// Counts of a bulk execution.
#[derive(Debug, Default, Clone)]
pub struct BulkResult {
    pub ok: u64,
    /// Server error codes, by code.
    pub errors: BTreeMap<i32, u64>,
}

impl BulkResult {
    pub fn merge(&mut self, other: &BulkResult) {
        self.ok += other.ok;
        for (c, n) in &other.errors {
            *self.errors.entry(*c).or_default() += n;
        }
    }
}

/// Sends `reqs` over one connection keeping up to `inflight` unanswered, and counts the
/// answers. Fails if the connection fails or goes silent for `limit`.
pub async fn bulk(
    conn: &mut Conn,
    mut reqs: impl Iterator<Item = Request>,
    inflight: usize,
    limit: Duration,
) -> Result<BulkResult, ConnError> {
    let mut res = BulkResult::default();
    let mut pending = std::collections::VecDeque::new();
    let mut frames = Vec::new();
    let mut exhausted = false;
    loop {
        while !exhausted && pending.len() < inflight.max(1) {
            match reqs.next() {
                Some(r) => pending.push_back(conn.queue(&r)),
                None => exhausted = true,
            }
        }
        if pending.is_empty() {
            return Ok(res);
        }
        let deadline = Instant::now() + limit;
        if conn.pump(&mut frames, deadline).await? == Pumped::Idle {
            return Err(conn.timeout(limit));
        }
        for f in frames.drain(..) {
            if f.header.xid < 0 {
                continue; // notification or ping answer
            }
            match pending.pop_front() {
                Some(x) if x == f.header.xid => {}
                other => {
                    return Err(conn.protocol(format!(
                        "reply xid {} while waiting for {other:?}",
                        f.header.xid
                    )));
                }
            }
            match f.header.err {
                0 => res.ok += 1,
                e => *res.errors.entry(e).or_default() += 1,
            }
        }
    }
}
