//! The request/response workloads (read, write, mixed, create-delete): each session keeps
//! exactly `inflight` requests outstanding until the window ends, then drains.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paddock_proto::{CreateMode, GetDataRequest, OpCode, Request, SetDataRequest};

use super::setup::{Layout, create, delete};
use super::{Outcome, Plan, Rng, RunError, Window};
use crate::cli::Workload;
use crate::conn::{Conn, Pumped};
use crate::stats::{OpKind, Stats};

/// Produces the next request of a session.
struct Generator {
    workload: Workload,
    keys: Arc<Vec<String>>,
    value: Arc<Vec<u8>>,
    rng: Rng,
    /// create-delete: this session's path prefix, the next index, and whether the last
    /// request was a create whose delete is still to come.
    prefix: String,
    next: u64,
    created: Option<String>,
}

impl Generator {
    fn next(&mut self) -> (Request, OpKind) {
        match self.workload {
            Workload::Read => self.read(),
            Workload::Write => self.write(),
            Workload::Mixed(pct) => {
                // pct is in 0..=100; compare in basis points to keep 99.5 exact.
                if (self.rng.below(10_000) as f64) < pct * 100.0 {
                    self.read()
                } else {
                    self.write()
                }
            }
            _ => self.create_delete(),
        }
    }

    fn key(&mut self) -> String {
        let i = self.rng.below(self.keys.len() as u64) as usize;
        self.keys[i].clone()
    }

    fn read(&mut self) -> (Request, OpKind) {
        let path = self.key();
        (
            Request::GetData(GetDataRequest { path, watch: false }),
            OpKind::Read,
        )
    }

    fn write(&mut self) -> (Request, OpKind) {
        let path = self.key();
        (
            Request::SetData(SetDataRequest {
                path,
                data: self.value.as_slice().into(),
                version: -1,
            }),
            OpKind::Write,
        )
    }

    fn create_delete(&mut self) -> (Request, OpKind) {
        match self.created.take() {
            Some(path) => (delete(path), OpKind::Delete),
            None => {
                let path = format!("{}{}", self.prefix, self.next);
                self.next += 1;
                self.created = Some(path.clone());
                (
                    create(path, self.value.to_vec(), CreateMode::Persistent),
                    OpKind::Create,
                )
            }
        }
    }

    /// A create whose delete has not been sent yet must be followed by it even after
    /// the window closes, so the run leaves nothing behind.
    fn mid_pair(&self) -> bool {
        self.created.is_some()
    }
}

struct InFlight {
    xid: i32,
    op: OpCode,
    kind: OpKind,
    sent: Instant,
}

pub async fn run(plan: &Plan, layout: &Layout) -> Result<Outcome, RunError> {
    let keys: Arc<Vec<String>> = Arc::new(match plan.workload {
        Workload::CreateDelete => Vec::new(),
        _ => (0..plan.keys).map(|i| layout.key(i)).collect(),
    });
    let value = Arc::new(plan.value());

    // Connect every session first, so the window starts with all of them ready.
    let mut connecting = Vec::new();
    for i in 0..plan.sessions as usize {
        let addr = plan.server_for(i).to_string();
        let net = plan.net.clone();
        connecting.push(tokio::spawn(async move {
            Conn::connect(&addr, net.session_timeout, net.connect_timeout).await
        }));
    }
    let mut conns = Vec::new();
    for c in connecting {
        match c.await {
            Ok(Ok(conn)) => conns.push(conn),
            Ok(Err(e)) => return Err(e.into()),
            Err(e) => return Err(RunError::Setup(format!("session task failed: {e}"))),
        }
    }

    let window = Window::new(plan);
    let mut tasks = Vec::new();
    for (i, conn) in conns.into_iter().enumerate() {
        let generator = Generator {
            workload: plan.workload,
            keys: keys.clone(),
            value: value.clone(),
            rng: Rng::new(0x5EED ^ (i as u64) << 16 ^ u64::from(std::process::id())),
            prefix: format!("{}/s{i}-", layout.create_delete_parent()),
            next: 0,
            created: None,
        };
        let plan = plan.clone();
        tasks.push(tokio::spawn(session(conn, generator, plan, window)));
    }
    let mut stats = Stats::default();
    let mut sessions_lost = 0;
    for t in tasks {
        match t.await {
            Ok((s, lost)) => {
                stats.merge(&s);
                sessions_lost += u32::from(lost);
            }
            Err(e) => {
                stats.connection_error(format!("session task failed: {e}"));
                sessions_lost += 1;
            }
        }
    }
    Ok(Outcome {
        stats,
        load_time: Duration::ZERO,
        sessions_lost,
        notes: Vec::new(),
    })
}

/// One session's closed loop. Returns its measurements and whether it was lost.
async fn session(
    mut conn: Conn,
    mut generator: Generator,
    plan: Plan,
    window: Window,
) -> (Stats, bool) {
    let mut stats = Stats::default();
    let mut inflight: VecDeque<InFlight> = VecDeque::with_capacity(plan.inflight as usize);
    let mut frames = Vec::new();
    let limit = plan.net.request_timeout;
    let mut last_heard = Instant::now();
    let mut issued = 0u64;
    loop {
        let now = Instant::now();
        while inflight.len() < plan.inflight as usize
            && (window.open(now, issued) || generator.mid_pair())
        {
            issued += 1;
            let (req, kind) = generator.next();
            let xid = conn.queue(&req);
            inflight.push_back(InFlight {
                xid,
                op: req.opcode(),
                kind,
                sent: Instant::now(),
            });
        }
        if inflight.is_empty() {
            break;
        }
        if now.duration_since(last_heard) > limit {
            stats.connection_error(conn.timeout(limit));
            return (stats, true);
        }
        match conn.pump(&mut frames, last_heard + limit).await {
            Ok(Pumped::Frames) => last_heard = Instant::now(),
            Ok(Pumped::Idle) => continue,
            Err(e) => {
                if e.is_protocol() {
                    stats.protocol_error(&e);
                } else {
                    stats.connection_error(&e);
                }
                return (stats, true);
            }
        }
        for f in frames.drain(..) {
            if f.header.xid < 0 {
                // No watches are set and no pings sent; anything here is unexpected.
                stats.protocol_error(format!("unexpected frame with xid {}", f.header.xid));
                continue;
            }
            let Some(op) = inflight.pop_front() else {
                stats.protocol_error(format!("reply xid {} with nothing in flight", f.header.xid));
                return (stats, true);
            };
            if op.xid != f.header.xid {
                stats.protocol_error(format!(
                    "reply xid {} out of order (expected {})",
                    f.header.xid, op.xid
                ));
                return (stats, true);
            }
            if f.header.err != 0 {
                stats.server_error(f.header.err);
                continue;
            }
            if let Err(e) = f.decode(op.op.code()) {
                stats.protocol_error(format!("{} reply: {e}", op.op.name()));
                continue;
            }
            if window.counts(op.sent, f.at) {
                stats.record(op.kind, f.at - op.sent);
            }
        }
    }
    if let Err(e) = conn.close(limit).await {
        stats.connection_error(format!("closeSession: {e}"));
    }
    (stats, false)
}
