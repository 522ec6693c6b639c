//! ephemeral-churn — each of N loops repeats a whole session life: connect (session
//! handshake), create an ephemeral znode, closeSession (which removes it), hang up.
//! One cycle is one operation; connect, create and close are also timed separately.

use std::time::{Duration, Instant};

use paddock_proto::{CreateMode, OpCode};

use super::setup::{Layout, create};
use super::{Outcome, Plan, RunError, Window};
use crate::conn::Conn;
use crate::stats::{OpKind, Stats};

pub async fn run(plan: &Plan, layout: &Layout) -> Result<Outcome, RunError> {
    let window = Window::new(plan);
    let value = plan.value();
    let mut tasks = Vec::new();
    for i in 0..plan.sessions as usize {
        let plan = plan.clone();
        let prefix = format!("{}/s{i}-", layout.ephemeral_parent());
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            churner(i, &plan, &prefix, value, window).await
        }));
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
                stats.connection_error(format!("churn task failed: {e}"));
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

/// Cycles until the window ends. A failed cycle is counted and the loop goes on (a new
/// session is the next step anyway), but three failures in a row end it.
async fn churner(
    index: usize,
    plan: &Plan,
    prefix: &str,
    value: Vec<u8>,
    window: Window,
) -> (Stats, bool) {
    const MAX_CONSECUTIVE_FAILURES: u32 = 3;
    let mut stats = Stats::default();
    let limit = plan.net.request_timeout;
    let addr = plan.server_for(index);
    let mut failures = 0;
    let mut n = 0u64;
    let mut cycles = 0u64;
    while window.open(Instant::now(), cycles) {
        cycles += 1;
        let t0 = Instant::now();
        let mut conn =
            match Conn::connect(addr, plan.net.session_timeout, plan.net.connect_timeout).await {
                Ok(c) => c,
                Err(e) => {
                    stats.connection_error(e);
                    failures += 1;
                    if failures >= MAX_CONSECUTIVE_FAILURES {
                        return (stats, true);
                    }
                    continue;
                }
            };
        let t1 = Instant::now();
        let path = format!("{prefix}{n}");
        n += 1;
        let created = match conn
            .call(&create(path, value.clone(), CreateMode::Ephemeral), limit)
            .await
        {
            Ok(r) if r.header.err != 0 => {
                stats.server_error(r.header.err);
                false
            }
            Ok(r) => match r.decode(OpCode::Create.code()) {
                Ok(_) => true,
                Err(e) => {
                    stats.protocol_error(format!("create reply: {e}"));
                    false
                }
            },
            Err(e) => {
                if e.is_protocol() {
                    stats.protocol_error(e);
                } else {
                    stats.connection_error(e);
                }
                failures += 1;
                if failures >= MAX_CONSECUTIVE_FAILURES {
                    return (stats, true);
                }
                continue;
            }
        };
        let t2 = Instant::now();
        let closed = match conn.close(limit).await {
            Ok(r) if r.header.err == 0 => true,
            Ok(r) => {
                stats.server_error(r.header.err);
                false
            }
            Err(e) => {
                stats.connection_error(format!("closeSession: {e}"));
                false
            }
        };
        let t3 = Instant::now();
        if created && closed {
            failures = 0;
            if window.counts(t0, t3) {
                stats.record(OpKind::Connect, t1 - t0);
                stats.record(OpKind::Create, t2 - t1);
                stats.record(OpKind::Close, t3 - t2);
                stats.record(OpKind::Cycle, t3 - t0);
            }
        } else {
            failures += 1;
            if failures >= MAX_CONSECUTIVE_FAILURES {
                return (stats, true);
            }
        }
    }
    (stats, false)
}
