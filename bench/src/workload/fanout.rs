//! watch-fanout:M — M sessions watch one znode (getData with watch); one writer session
//! sets it; every watcher reports when its notification arrived and re-arms. The writer
//! starts the next round once every watcher has re-armed. Notification latency is
//! measured from just before the setData is sent to the moment each watcher reads the
//! event (one process, one monotonic clock).

use std::time::{Duration, Instant};

use paddock_proto::{EventType, GetDataRequest, OpCode, Request, SetDataRequest};
use tokio::sync::{mpsc, watch};

use super::setup::Layout;
use super::{Outcome, Plan, RunError, Window};
use crate::conn::{Conn, ConnError, Pumped};
use crate::stats::{OpKind, Stats};

enum Msg {
    /// The watcher's getData(watch) was answered: its watch is set.
    Armed,
    /// The watcher received NodeDataChanged at this instant.
    Notified(Instant),
    /// The watcher gave up (connection lost, protocol error); it sends nothing more.
    Gone,
}

pub async fn run(plan: &Plan, layout: &Layout, watchers: u32) -> Result<Outcome, RunError> {
    let path = layout.watched();
    let mut connecting = Vec::new();
    // Watchers take servers round-robin after the writer (session 0).
    for i in 0..=watchers as usize {
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
    let mut conns = conns.into_iter();
    let Some(writer_conn) = conns.next() else {
        return Err(RunError::Setup("no writer session".into()));
    };

    let window = Window::new(plan);
    // The writer tells the watchers to stop once its last round is collected; the hard
    // stop bounds them should the writer die first.
    let hard_stop = window.end + 2 * plan.net.request_timeout;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for conn in conns {
        tasks.push(tokio::spawn(watcher(
            conn,
            path.clone(),
            tx.clone(),
            stop_rx.clone(),
            hard_stop,
            plan.net.request_timeout,
        )));
    }
    drop(tx);
    let (mut stats, writer_lost) = writer(writer_conn, &path, plan, window, rx, watchers).await;
    let _ = stop_tx.send(true);
    let mut sessions_lost = u32::from(writer_lost);
    for t in tasks {
        match t.await {
            Ok(s) => {
                sessions_lost += u32::from(s.connection_errors + s.protocol_errors > 0);
                stats.merge(&s);
            }
            Err(e) => {
                stats.connection_error(format!("watcher task failed: {e}"));
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

async fn writer(
    mut conn: Conn,
    path: &str,
    plan: &Plan,
    window: Window,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    watchers: u32,
) -> (Stats, bool) {
    let mut stats = Stats::default();
    let limit = plan.net.request_timeout;
    let value = plan.value();
    let mut alive = watchers;
    let mut armed = 0u32;
    let mut lost = false;
    let mut rounds = 0u64;
    'rounds: while window.open(Instant::now(), rounds) && alive > 0 {
        rounds += 1;
        // Wait until every live watcher has its watch set (bounded).
        let deadline = Instant::now() + limit;
        while armed < alive {
            match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                Ok(Some(Msg::Armed)) => armed += 1,
                Ok(Some(Msg::Notified(_))) => {
                    stats.protocol_error("notification without a change");
                }
                Ok(Some(Msg::Gone)) => alive -= 1,
                Ok(None) => break 'rounds,
                Err(_) => {
                    stats.connection_error(format!(
                        "only {armed} of {alive} watchers armed within {limit:?}"
                    ));
                    break 'rounds;
                }
            }
        }
        armed = 0;
        let sent = Instant::now();
        let req = Request::SetData(SetDataRequest {
            path: path.to_string(),
            data: value.clone().into(),
            version: -1,
        });
        match conn.call(&req, limit).await {
            Ok(reply) => {
                if reply.header.err != 0 {
                    stats.server_error(reply.header.err);
                } else if let Err(e) = reply.decode(OpCode::SetData.code()) {
                    stats.protocol_error(format!("setData reply: {e}"));
                } else if window.counts(sent, reply.at) {
                    stats.record(OpKind::Write, reply.at - sent);
                }
            }
            Err(e) => {
                record_conn_error(&mut stats, &e);
                lost = true;
                break;
            }
        }
        // Collect this round: one notification and one re-arm from every live watcher.
        let mut notified = 0u32;
        let deadline = Instant::now() + limit;
        while notified < alive || armed < alive {
            match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                Ok(Some(Msg::Notified(at))) => {
                    notified += 1;
                    if window.counts(sent, at) {
                        stats.record(OpKind::Notify, at.saturating_duration_since(sent));
                    }
                }
                Ok(Some(Msg::Armed)) => armed += 1,
                Ok(Some(Msg::Gone)) => alive -= 1,
                Ok(None) => break 'rounds,
                Err(_) => {
                    stats.connection_error(format!(
                        "{} of {alive} notifications missing after {limit:?}",
                        alive.saturating_sub(notified)
                    ));
                    break 'rounds;
                }
            }
        }
    }
    if !lost && let Err(e) = conn.close(limit).await {
        stats.connection_error(format!("closeSession: {e}"));
    }
    (stats, lost)
}

fn record_conn_error(stats: &mut Stats, e: &ConnError) {
    if e.is_protocol() {
        stats.protocol_error(e);
    } else {
        stats.connection_error(e);
    }
}

async fn watcher(
    mut conn: Conn,
    path: String,
    tx: mpsc::UnboundedSender<Msg>,
    mut stop: watch::Receiver<bool>,
    hard_stop: Instant,
    limit: Duration,
) -> Stats {
    let mut stats = Stats::default();
    let arm = Request::GetData(GetDataRequest {
        path: path.clone(),
        watch: true,
    });
    let mut arming = Some(conn.queue(&arm));
    let mut frames = Vec::new();
    let mut last_sent = Instant::now();
    // Keep the session alive across slow rounds: ping after a third of its timeout.
    let ping_every = (conn.negotiated_timeout / 3).max(Duration::from_millis(100));
    let ok = loop {
        let now = Instant::now();
        if now >= hard_stop || *stop.borrow() {
            break true;
        }
        if arming.is_some() && now.duration_since(last_sent) > limit {
            stats.connection_error(conn.timeout(limit));
            break false;
        }
        let deadline = hard_stop.min(last_sent + ping_every);
        // `pump` is cancel-safe: a stop signal loses no bytes.
        let pumped = tokio::select! {
            p = conn.pump(&mut frames, deadline) => p,
            changed = stop.changed() => {
                if changed.is_err() {
                    break true;
                }
                continue;
            }
        };
        match pumped {
            Ok(Pumped::Frames) => {}
            Ok(Pumped::Idle) => {
                if Instant::now() >= last_sent + ping_every {
                    conn.queue_ping();
                    last_sent = Instant::now();
                }
                continue;
            }
            Err(e) => {
                record_conn_error(&mut stats, &e);
                break false;
            }
        }
        let mut failed = false;
        for f in frames.drain(..) {
            match f.header.xid {
                paddock_proto::xid::NOTIFICATION => match f.event() {
                    Ok(ev) if ev.kind == EventType::NodeDataChanged.code() && ev.path == path => {
                        let _ = tx.send(Msg::Notified(f.at));
                        arming = Some(conn.queue(&arm));
                        last_sent = Instant::now();
                    }
                    Ok(ev) => stats.protocol_error(format!("unexpected event {ev:?}")),
                    Err(e) => stats.protocol_error(format!("notification: {e}")),
                },
                paddock_proto::xid::PING => {}
                xid if Some(xid) == arming => {
                    arming = None;
                    if f.header.err != 0 {
                        stats.server_error(f.header.err);
                        failed = true;
                    } else if let Err(e) = f.decode(OpCode::GetData.code()) {
                        stats.protocol_error(format!("getData reply: {e}"));
                        failed = true;
                    } else {
                        let _ = tx.send(Msg::Armed);
                    }
                }
                xid => {
                    stats.protocol_error(format!("unexpected reply xid {xid}"));
                    failed = true;
                }
            }
        }
        if failed {
            break false;
        }
    };
    if !ok {
        let _ = tx.send(Msg::Gone);
    } else if let Err(e) = conn.close(limit).await {
        stats.connection_error(format!("closeSession: {e}"));
    }
    stats
}
