//! The request pipeline: validate → propose (log) → durable → apply → reply, with each
//! connection's replies kept in request order.

use std::time::Instant;

use paddock_proto::{
    ConnectResponse, Create2Response, CreateResponse, ErrorCode, KeeperState, OpCode, Request,
    Response, WatcherEvent,
};
use tracing::{debug, warn};

use super::{Conn, Core, Inflight, Outgoing, Queued, ReplyTo};
use crate::request::prep::{self, Prepared, WriteContext};
use crate::request::read::{self, ReadContext};
use crate::session::session_password;
use crate::storage::DiskEvent;
use crate::tree::{ApplyResult, WatchTrigger};
use crate::txn::{Txn, TxnOp};
use crate::watch::{ConnId, Notification};

impl Core {
    pub(super) fn on_request(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        req: Request,
        received: Instant,
    ) {
        self.stats.packets_received += 1;
        let now = self.now_ms();
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        conn.packets_received += 1;
        conn.last_op = req.opcode().code();
        let Some(session) = conn.session else {
            return;
        };
        if self.closing.contains(&session) {
            let _ = conn.tx.send(Outgoing::Reply {
                xid,
                zxid: self.tree.last_zxid(),
                err: ErrorCode::SessionExpired,
                body: Response::Empty,
            });
            let _ = conn.tx.send(Outgoing::Close);
            return;
        }
        if let Some(entry) = self.tree.sessions().get(&session) {
            self.sessions.touch(session, entry.timeout_ms, now);
        }
        match req {
            Request::Ping => {
                let zxid = self.tree.last_zxid();
                self.send(conn_id, xid, zxid, Ok(Response::Empty), received);
            }
            Request::Auth(auth) => self.on_auth(conn_id, auth, received),
            Request::Sasl(_) => {
                debug!(conn = conn_id, "SASL requested but not enabled");
                self.enqueue_ready(conn_id, xid, Err(ErrorCode::AuthFailed), received);
            }
            Request::Reconfig(_) => {
                let err = if self.cfg.reconfig_enabled {
                    // Membership changes need an ensemble; a standalone server has none.
                    ErrorCode::Unimplemented
                } else {
                    ErrorCode::ReconfigDisabled
                };
                self.enqueue_ready(conn_id, xid, Err(err), received);
            }
            Request::CloseSession => {
                self.closing.insert(session);
                let prepared = prep::prepare_close(&self.tree, &self.pending, session);
                self.propose(
                    session,
                    xid,
                    prepared,
                    Some(reply_to(conn_id, xid, received)),
                );
            }
            Request::Multi(ops) if ops.is_empty() => {
                self.enqueue_ready(conn_id, xid, Ok(Response::Multi(vec![])), received);
            }
            Request::Multi(ops) => {
                let creds = conn.creds.clone();
                let ctx = WriteContext {
                    session,
                    creds: &creds,
                    extended_types: self.cfg.extended_types,
                };
                match prep::prepare_multi(&self.tree, &self.pending, &ctx, &ops) {
                    Ok(prepared) => self.propose(
                        session,
                        xid,
                        prepared,
                        Some(reply_to(conn_id, xid, received)),
                    ),
                    // ZooKeeper answers a failed multi with err 0 and per-op errors.
                    Err(results) => {
                        self.enqueue_ready(conn_id, xid, Ok(Response::Multi(results)), received)
                    }
                }
            }
            req if is_write(&req) => {
                let creds = conn.creds.clone();
                let ctx = WriteContext {
                    session,
                    creds: &creds,
                    extended_types: self.cfg.extended_types,
                };
                match prep::prepare(&self.tree, &self.pending, &ctx, &req) {
                    // A check alone changes nothing: answer it in order, no txn needed.
                    Ok(_) if matches!(req, Request::Check(_)) => {
                        self.enqueue_ready(conn_id, xid, Ok(Response::Empty), received)
                    }
                    Ok(prepared) => self.propose(
                        session,
                        xid,
                        prepared,
                        Some(reply_to(conn_id, xid, received)),
                    ),
                    Err(err) => self.enqueue_ready(conn_id, xid, Err(err), received),
                }
            }
            req => {
                if conn.queue.is_empty() {
                    self.answer_read(conn_id, xid, &req, received);
                } else {
                    conn.queue.push_back(Queued::Read { xid, req, received });
                }
            }
        }
    }

    /// Proposes a validated write: assigns the zxid, logs it, and remembers who waits.
    pub(super) fn propose(
        &mut self,
        session: i64,
        cxid: i32,
        prepared: Prepared,
        reply: Option<ReplyTo>,
    ) {
        let Some(disk) = &self.disk else {
            if let Some(r) = reply {
                self.enqueue_ready(r.conn, r.xid, Err(ErrorCode::SystemError), r.received);
            }
            return;
        };
        let zxid = self.next_zxid;
        self.next_zxid += 1;
        let txn = Txn {
            session,
            cxid,
            zxid,
            time: super::wall_ms(),
            op: prepared.op,
        };
        if let Err(e) = disk.append(zxid as u64, txn.encode()) {
            self.fatal = Some(format!("cannot queue txn {zxid:#x} for the log: {e}"));
            return;
        }
        self.pending.record(zxid, prepared.changes);
        self.stats.writes_proposed += 1;
        if let Some(r) = &reply
            && let Some(conn) = self.conns.get_mut(&r.conn)
        {
            conn.queue.push_back(Queued::Write { zxid });
        }
        self.inflight.push_back(Inflight { txn, reply });
    }

    pub(super) fn on_disk(&mut self, event: DiskEvent) {
        match event {
            DiskEvent::Durable(zxid) => self.apply_through(zxid as i64),
            DiskEvent::Truncated(_) => {}
            DiskEvent::Failed(e) => {
                self.fatal = Some(format!("transaction log failed: {e}"));
            }
        }
    }

    /// Applies, in order, every proposed txn up to `zxid` and answers those waiting.
    fn apply_through(&mut self, zxid: i64) {
        let mut triggers: Vec<WatchTrigger> = Vec::new();
        let mut notes: Vec<Notification> = Vec::new();
        while self.inflight.front().is_some_and(|f| f.txn.zxid <= zxid) {
            let Some(Inflight { txn, reply }) = self.inflight.pop_front() else {
                break;
            };
            triggers.clear();
            let result = self.tree.apply(&txn, &mut triggers);
            self.pending.applied(txn.zxid);
            notes.clear();
            for t in &triggers {
                self.watches.trigger(t, &mut notes);
            }
            for n in notes.drain(..) {
                self.notify(n, txn.zxid);
            }
            self.after_apply(&txn, &result, reply.is_some());
            if let Some(r) = reply {
                self.answer_write(r, txn.zxid, result);
            }
            self.txns_since_snapshot += 1;
        }
        self.maybe_snapshot();
    }

    /// Session-table side effects of an applied txn.
    fn after_apply(&mut self, txn: &Txn, result: &ApplyResult, has_reply: bool) {
        match (&txn.op, result) {
            (TxnOp::CreateSession { timeout_ms }, _) => {
                let now = self.now_ms();
                self.sessions.touch(txn.session, *timeout_ms, now);
            }
            (TxnOp::CloseSession, _) => {
                self.sessions.remove(txn.session);
                self.closing.remove(&txn.session);
                if let Some(owner) = self.session_owner.remove(&txn.session)
                    && let Some(conn) = self.conns.get_mut(&owner)
                {
                    conn.session = None;
                    // An expired session's socket goes now; a client-requested close is
                    // answered first (answer_write closes the socket after the reply).
                    if !has_reply {
                        let _ = conn.tx.send(Outgoing::Close);
                    }
                }
            }
            _ => {}
        }
    }

    fn answer_write(&mut self, r: ReplyTo, zxid: i64, result: ApplyResult) {
        let Some(conn) = self.conns.get_mut(&r.conn) else {
            return;
        };
        match conn.queue.front() {
            Some(Queued::Write { zxid: z }) if *z == zxid => {
                conn.queue.pop_front();
            }
            _ => {
                warn!(
                    conn = r.conn,
                    zxid, "reply order broken; closing the connection"
                );
                let _ = conn.tx.send(Outgoing::Close);
                return;
            }
        }
        if let Some(connect) = r.connect {
            let session = conn.session.unwrap_or(0);
            let ok = matches!(result, ApplyResult::SessionCreated);
            let _ = conn.tx.send(Outgoing::Connected(ConnectResponse {
                protocol_version: 0,
                time_out: if ok { connect.timeout_ms } else { 0 },
                session_id: if ok { session } else { 0 },
                passwd: session_password(if ok { session } else { 0 }).into(),
                read_only: connect.read_only_byte.then_some(false),
            }));
            if !ok {
                let _ = conn.tx.send(Outgoing::Close);
            }
        } else {
            let closes = matches!(result, ApplyResult::SessionClosed);
            let body = match result {
                ApplyResult::Created { op, path, stat } => Ok(if op == OpCode::Create {
                    Response::Create(CreateResponse { path })
                } else {
                    Response::Create2(Create2Response { path, stat })
                }),
                ApplyResult::Deleted
                | ApplyResult::Checked
                | ApplyResult::SessionClosed
                | ApplyResult::SessionCreated => Ok(Response::Empty),
                ApplyResult::DataSet(stat) | ApplyResult::AclSet(stat) => Ok(Response::Stat(stat)),
                ApplyResult::Multi(results) => Ok(Response::Multi(results)),
                ApplyResult::Failed(code) => Err(code),
            };
            self.send(r.conn, r.xid, zxid, body, r.received);
            if closes && let Some(conn) = self.conns.get(&r.conn) {
                let _ = conn.tx.send(Outgoing::Close);
            }
        }
        self.drain(r.conn);
    }

    /// Answers queued requests at the head of a connection's queue, up to the next write.
    fn drain(&mut self, conn_id: ConnId) {
        loop {
            let Some(conn) = self.conns.get_mut(&conn_id) else {
                return;
            };
            match conn.queue.front() {
                None | Some(Queued::Write { .. }) => return,
                Some(_) => {}
            }
            match conn.queue.pop_front() {
                Some(Queued::Read { xid, req, received }) => {
                    self.answer_read(conn_id, xid, &req, received)
                }
                Some(Queued::Ready {
                    xid,
                    result,
                    received,
                }) => {
                    let zxid = self.tree.last_zxid();
                    self.send(conn_id, xid, zxid, result, received);
                }
                _ => return,
            }
        }
    }

    /// Answers now if nothing is ahead of it on the connection, else queues the answer.
    pub(super) fn enqueue_ready(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        result: Result<Response, ErrorCode>,
        received: Instant,
    ) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        if conn.queue.is_empty() {
            let zxid = self.tree.last_zxid();
            self.send(conn_id, xid, zxid, result, received);
        } else {
            conn.queue.push_back(Queued::Ready {
                xid,
                result,
                received,
            });
        }
    }

    fn answer_read(&mut self, conn_id: ConnId, xid: i32, req: &Request, received: Instant) {
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        let ctx = ReadContext {
            conn: conn_id,
            session: conn.session.unwrap_or(0),
            creds: &conn.creds,
        };
        let mut events = Vec::new();
        let result = read::answer(&self.tree, &mut self.watches, &ctx, req, &mut events);
        let zxid = self.tree.last_zxid();
        // setWatches: the missed events go out before its reply, as ZooKeeper sends them.
        for n in events {
            self.notify(n, zxid);
        }
        self.send(conn_id, xid, zxid, result, received);
    }

    /// Sends a reply and accounts for it.
    pub(super) fn send(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        zxid: i64,
        result: Result<Response, ErrorCode>,
        received: Instant,
    ) {
        let latency = received.elapsed().as_millis() as u64;
        self.stats.record_latency(latency);
        self.stats.packets_sent += 1;
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        record_conn_latency(conn, latency, zxid);
        let (err, body) = match result {
            Ok(body) => (ErrorCode::Ok, body),
            Err(err) => (err, Response::Empty),
        };
        let _ = conn.tx.send(Outgoing::Reply {
            xid,
            zxid,
            err,
            body,
        });
    }

    fn notify(&mut self, n: Notification, zxid: i64) {
        if let Some(conn) = self.conns.get_mut(&n.conn) {
            conn.packets_sent += 1;
            self.stats.packets_sent += 1;
            let _ = conn.tx.send(Outgoing::Event {
                zxid,
                event: WatcherEvent {
                    kind: n.event.code(),
                    state: KeeperState::SyncConnected.code(),
                    path: n.path,
                },
            });
        }
    }
}

fn record_conn_latency(conn: &mut Conn, latency: u64, zxid: i64) {
    conn.packets_sent += 1;
    conn.last_zxid = zxid;
    conn.last_latency_ms = latency;
    if conn.completed == 0 || latency < conn.min_latency_ms {
        conn.min_latency_ms = latency;
    }
    conn.max_latency_ms = conn.max_latency_ms.max(latency);
    conn.total_latency_ms += latency;
    conn.completed += 1;
}

fn reply_to(conn: ConnId, xid: i32, received: Instant) -> ReplyTo {
    ReplyTo {
        conn,
        xid,
        received,
        connect: None,
    }
}

fn is_write(req: &Request) -> bool {
    matches!(
        req,
        Request::Create(_)
            | Request::Create2(_)
            | Request::CreateContainer(_)
            | Request::CreateTtl(_)
            | Request::Delete(_)
            | Request::DeleteContainer(_)
            | Request::SetData(_)
            | Request::SetAcl(_)
            | Request::Check(_)
    )
}
