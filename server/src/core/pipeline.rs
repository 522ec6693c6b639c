//! The request pipeline. Reads are answered locally, in order behind the connection's
//! own writes. Writes, session closes and `sync` go to the leader: on the leader they are
//! validated against the tree plus pending changes and proposed through ZAB; followers
//! forward them. Every server applies a txn when ZAB commits it, and the server that
//! holds the client's connection answers it then.

use std::sync::Arc;
use std::time::Instant;

use paddock_proto::{
    Create2Response, CreateResponse, ErrorCode, OpCode, Request, Response, SyncResponse,
};
use tracing::{debug, warn};

use super::forward::AppMsg;
use super::sasl;
use super::{Conn, Core, Outgoing, Queued, ReplyTo};
use crate::config::DynamicConfig;
use crate::request::prep::{self, Prepared, WriteContext};
use crate::request::read::{self, ReadContext};
use crate::storage::DiskEvent;
use crate::tree::acl::Credentials;
use crate::tree::{ApplyResult, WatchTrigger};
use crate::txn::{Txn, TxnOp};
use crate::watch::{ConnId, Notification};
use crate::zab::{Sid, Zxid};

/// Where a request the leader sequences came from.
#[derive(Clone, Copy)]
pub(super) enum Origin {
    Local { conn: ConnId, received: Instant },
    Remote(Sid),
}

/// What the leader makes of a write request.
enum Decision {
    Propose(Prepared),
    /// A membership change, validated; proposed through ZAB's reconfig path.
    Reconfig(DynamicConfig),
    /// Answer without a txn — but only once everything proposed before it is committed:
    /// a client told NodeExists because of another session's pending create must be
    /// able to read that node next (ZooKeeper gets this by logging error txns in order;
    /// `sync` is the same rule).
    Answer(Result<Response, ErrorCode>),
}

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
        let leader = self.is_leader();
        let read_only = self.read_only.is_serving();
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        conn.packets_received += 1;
        conn.last_op = req.opcode();
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
        if read_only {
            self.read_only.touch(session, now);
        } else if leader {
            if let Some(entry) = self.tree.sessions().get(&session) {
                self.sessions.touch(session, entry.timeout_ms, now);
            }
        } else {
            self.touched.insert(session);
        }
        if sasl::refuses(&self.cfg.sasl, &conn.creds, &req) {
            self.refuse_unauthenticated(conn_id, xid, received);
            return;
        }
        match req {
            Request::Ping => {
                let zxid = self.tree.last_zxid();
                self.send(conn_id, xid, zxid, Ok(Response::Empty), received);
            }
            Request::Auth(auth) => self.on_auth(conn_id, xid, auth, received),
            Request::Sasl(r) => self.on_sasl(conn_id, xid, &r.token.0, received),
            // Read-only mode (ZooKeeper's ReadOnlyRequestProcessor): a local session
            // closes here; writes, sync, check and reconfig are refused.
            Request::CloseSession if read_only => {
                self.close_read_only_session(conn_id, session, xid, received)
            }
            req if read_only && req.opcode().goes_to_leader() => {
                self.enqueue_ready(conn_id, xid, Err(ErrorCode::NotReadOnly), received);
            }
            Request::Reconfig(_) if !self.cfg.reconfig_enabled => {
                self.enqueue_ready(conn_id, xid, Err(ErrorCode::ReconfigDisabled), received);
            }
            Request::Reconfig(_) if !self.cfg.distributed => {
                // A standalone server has no ensemble to change (as ZooKeeper answers).
                self.enqueue_ready(conn_id, xid, Err(ErrorCode::Unimplemented), received);
            }
            req if req.opcode().goes_to_leader() => {
                let creds = conn.creds.clone();
                if leader {
                    self.lead(
                        Origin::Local {
                            conn: conn_id,
                            received,
                        },
                        session,
                        xid,
                        &creds,
                        req,
                    );
                } else {
                    self.forward(conn_id, session, xid, creds, req, received);
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

    /// Follower: hands a write to the leader and waits for its commit (or answer).
    fn forward(
        &mut self,
        conn_id: ConnId,
        session: i64,
        xid: i32,
        creds: Arc<Credentials>,
        req: Request,
        received: Instant,
    ) {
        let creds = Arc::unwrap_or_clone(creds);
        let msg = AppMsg::Forward {
            session,
            cxid: xid,
            ids: creds.ids,
            is_super: creds.is_super,
            request: req,
        };
        if !self.zab.send_to_leader(msg.encode()) {
            self.enqueue_ready(conn_id, xid, Err(ErrorCode::ConnectionLoss), received);
            return;
        }
        self.wait_for(session, xid, reply_to(conn_id, xid, received));
        self.drive();
    }

    /// Registers a waiter and holds the connection's later replies behind it.
    pub(super) fn wait_for(&mut self, session: i64, cxid: i32, reply: ReplyTo) {
        if let Some(conn) = self.conns.get_mut(&reply.conn) {
            conn.queue.push_back(Queued::Write { cxid });
            self.waiting.insert((session, cxid), reply);
        }
    }

    /// Leader: validates a write request and proposes it, or answers it.
    pub(super) fn lead(
        &mut self,
        origin: Origin,
        session: i64,
        cxid: i32,
        creds: &Credentials,
        req: Request,
    ) {
        let opcode = req.opcode().code();
        // The session first, as ZooKeeper's PrepRequestProcessor checks it: a follower
        // may forward a request of a session whose close is proposed or already applied
        // here, and its ephemeral create would outlive the session.
        let live = self.tree.sessions().contains_key(&session) && !self.closing.contains(&session);
        let mut decision = match live || matches!(req, Request::CloseSession) {
            true => self.decide(session, creds, req),
            false => Decision::Answer(Err(ErrorCode::SessionExpired)),
        };
        if let Decision::Reconfig(next) = decision {
            let reply = match origin {
                Origin::Local { conn, received } => Some(reply_to(conn, cxid, received)),
                Origin::Remote(_) => None,
            };
            match self.propose_reconfig(session, cxid, next, reply) {
                Ok(()) => {
                    self.drive();
                    return;
                }
                Err(code) => decision = Decision::Answer(Err(code)),
            }
        }
        match (decision, origin) {
            (Decision::Reconfig(_), _) => {}
            (Decision::Propose(prepared), Origin::Local { conn, received }) => self.propose(
                session,
                cxid,
                prepared,
                Some(reply_to(conn, cxid, received)),
            ),
            (Decision::Propose(prepared), Origin::Remote(_)) => {
                self.propose(session, cxid, prepared, None)
            }
            (Decision::Answer(result), Origin::Local { conn, received }) => {
                if self.zab.last_committed() >= self.zab.last_logged() {
                    self.enqueue_ready(conn, cxid, result, received);
                } else {
                    let upto = self.zab.last_logged();
                    self.wait_for(session, cxid, reply_to(conn, cxid, received));
                    self.syncs.push((upto, (session, cxid), result));
                }
            }
            (Decision::Answer(result), Origin::Remote(sid)) => {
                let msg = AppMsg::result(session, cxid, opcode, &result);
                self.zab.send_app(sid, msg.encode(), true);
            }
        }
        self.drive();
    }

    fn decide(&mut self, session: i64, creds: &Credentials, req: Request) -> Decision {
        let ctx = WriteContext {
            session,
            creds,
            extended_types: self.cfg.extended_types,
        };
        match req {
            Request::CloseSession => {
                self.closing.insert(session);
                Decision::Propose(prep::prepare_close(&self.tree, &self.pending, session))
            }
            Request::Reconfig(r) => match self.plan_reconfig(creds, &r) {
                Ok(next) => Decision::Reconfig(next),
                Err(code) => Decision::Answer(Err(code)),
            },
            Request::Sync(r) => Decision::Answer(
                crate::path::check(&r.path, false)
                    .map(|()| Response::Sync(SyncResponse { path: r.path })),
            ),
            Request::Multi(ops) if ops.is_empty() => Decision::Answer(Ok(Response::Multi(vec![]))),
            Request::Multi(ops) => {
                match prep::prepare_multi(&self.tree, &self.pending, &ctx, ops) {
                    Ok(prepared) => Decision::Propose(prepared),
                    // ZooKeeper answers a failed multi with err 0 and per-op errors.
                    Err(results) => Decision::Answer(Ok(Response::Multi(results))),
                }
            }
            req => {
                let check = matches!(req, Request::Check(_));
                match prep::prepare(&self.tree, &self.pending, &ctx, req) {
                    // A check alone changes nothing: answer it in order, no txn needed.
                    Ok(_) if check => Decision::Answer(Ok(Response::Empty)),
                    Ok(prepared) => Decision::Propose(prepared),
                    Err(err) => Decision::Answer(Err(err)),
                }
            }
        }
    }

    /// Proposes a validated write through ZAB and remembers who waits for it.
    pub(super) fn propose(
        &mut self,
        session: i64,
        cxid: i32,
        prepared: Prepared,
        reply: Option<ReplyTo>,
    ) {
        let Prepared { op, changes } = prepared;
        let closes = matches!(op, TxnOp::CloseSession);
        let time = self.wall_ms();
        let mut txn = None;
        let proposed = self.zab.propose(|zxid| {
            let made = txn.insert(Txn {
                session,
                cxid,
                zxid,
                time,
                op,
            });
            made.encode()
        });
        match proposed {
            Ok(zxid) => {
                self.own_txns.extend(txn);
                self.pending.record(zxid, changes);
                self.stats.writes_proposed += 1;
                if let Some(r) = reply {
                    self.wait_for(session, cxid, r);
                }
            }
            Err(e) => {
                debug!(?e, "proposal refused");
                if closes {
                    // The close did not happen (a leader handing over refuses proposals):
                    // the session is not closing after all, and the next tick expires it
                    // again, else it would be kept, with its ephemerals, for good.
                    self.closing.remove(&session);
                    let now = self.now_ms();
                    self.sessions.touch(session, 0, now);
                }
                if let Some(r) = reply {
                    self.enqueue_ready(r.conn, cxid, Err(ErrorCode::ConnectionLoss), r.received);
                }
            }
        }
        self.drive();
    }

    pub(super) fn on_disk(&mut self, event: DiskEvent) {
        match event {
            DiskEvent::Durable(zxid) => {
                let now = self.now_ms();
                self.zab.on_durable(now, zxid as Zxid);
                self.drive();
            }
            DiskEvent::Truncated(_) | DiskEvent::SnapshotInstalled(_) => {
                let now = self.now_ms();
                self.zab.on_log_reset(now);
                self.drive();
            }
            DiskEvent::EpochsDurable { .. } => self.on_epochs_durable(),
            DiskEvent::Failed(e) => {
                self.fatal = Some(format!("transaction log failed: {e}"));
            }
        }
    }

    /// Applies a committed txn and answers whoever waits for it here.
    pub(super) fn apply_commit(&mut self, zxid: Zxid, payload: &[u8]) {
        let txn = match self.own_txn(zxid) {
            Some(txn) => txn,
            None => match Txn::decode(payload) {
                Ok(txn) => txn,
                Err(e) => {
                    self.fatal = Some(format!("committed txn {zxid:#x} cannot be decoded: {e}"));
                    return;
                }
            },
        };
        let mut triggers: Vec<WatchTrigger> = Vec::new();
        let result = self.tree.apply(&txn, &mut triggers);
        self.pending.applied(zxid);
        let mut notes: Vec<Notification> = Vec::new();
        for t in &triggers {
            self.watches.trigger(t, &mut notes);
        }
        for n in notes {
            self.notify(n);
        }
        let waiter = self.waiting.remove(&(txn.session, txn.cxid));
        self.after_apply(&txn, &result, waiter.is_some());
        if let Some(r) = waiter {
            self.answer_write(r, zxid, result);
        }
        if !self.syncs.is_empty() {
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.syncs)
                .into_iter()
                .partition(|(upto, _, _)| *upto <= zxid);
            self.syncs = later;
            for (_, key, result) in due {
                if let Some(r) = self.waiting.remove(&key) {
                    self.finish(r, zxid, result, false);
                }
            }
        }
        self.txns_since_snapshot += 1;
        self.maybe_snapshot();
    }

    /// The txn this server proposed as `zxid`, as it was before encoding, if it still
    /// holds it. A zxid names one txn (only the leader of its epoch proposes it, and a
    /// commit carries what was proposed), so it is the txn the payload encodes. Txns
    /// passed over are dropped: commits come in zxid order, so they will not commit here
    /// any more (their leadership ended first).
    fn own_txn(&mut self, zxid: Zxid) -> Option<Txn> {
        while let Some(front) = self.own_txns.front() {
            match front.zxid.cmp(&zxid) {
                std::cmp::Ordering::Less => {
                    self.own_txns.pop_front();
                }
                std::cmp::Ordering::Equal => return self.own_txns.pop_front(),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }

    /// Follower: the leader answered a forwarded request without a txn.
    pub(super) fn on_result(
        &mut self,
        session: i64,
        cxid: i32,
        err: i32,
        opcode: i32,
        body: &[u8],
    ) {
        let Some(r) = self.waiting.remove(&(session, cxid)) else {
            return;
        };
        let result = if err == 0 {
            Response::decode(opcode, body).map_err(|e| {
                warn!(error = %e, "malformed answer from the leader");
                ErrorCode::MarshallingError
            })
        } else {
            Err(ErrorCode::from_code(err).unwrap_or(ErrorCode::SystemError))
        };
        let zxid = self.tree.last_zxid();
        self.finish(r, zxid, result, false);
    }

    /// Session-table side effects of an applied txn.
    fn after_apply(&mut self, txn: &Txn, result: &ApplyResult, has_reply: bool) {
        match (&txn.op, result) {
            (TxnOp::CreateSession { timeout_ms }, _) if self.is_leader() => {
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
                    // answered first (finish closes the socket after the reply).
                    if !has_reply {
                        let _ = conn.tx.send(Outgoing::Close);
                    }
                }
            }
            _ => {}
        }
    }

    fn answer_write(&mut self, r: ReplyTo, zxid: Zxid, result: ApplyResult) {
        if let Some(connect) = &r.connect {
            let ok = matches!(result, ApplyResult::SessionCreated);
            let (timeout_ms, read_only_byte) = (connect.timeout_ms, connect.read_only_byte);
            if !self.pop_write(&r) {
                return;
            }
            let Some(conn) = self.conns.get_mut(&r.conn) else {
                return;
            };
            let session = conn.session.unwrap_or(0);
            let read_only = read_only_byte.then_some(false);
            let _ = conn.tx.send(Outgoing::Connected(if ok {
                super::connect::granted(session, timeout_ms, read_only)
            } else {
                super::connect::expired(read_only)
            }));
            if !ok {
                let _ = conn.tx.send(Outgoing::Close);
            }
            self.drain(r.conn);
            return;
        }
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
            ApplyResult::Reconfigured { data, stat } => {
                Ok(paddock_proto::response::get_data_response(&data, stat))
            }
            ApplyResult::Failed(code) => Err(code),
        };
        self.finish(r, zxid, body, closes);
    }

    /// Removes the waiter's slot from the head of its connection's queue.
    fn pop_write(&mut self, r: &ReplyTo) -> bool {
        let Some(conn) = self.conns.get_mut(&r.conn) else {
            return false;
        };
        match conn.queue.front() {
            Some(Queued::Write { cxid }) if *cxid == r.xid => {
                conn.queue.pop_front();
                true
            }
            _ => {
                warn!(
                    conn = r.conn,
                    xid = r.xid,
                    "reply order broken; closing the connection"
                );
                let _ = conn.tx.send(Outgoing::Close);
                false
            }
        }
    }

    /// Sends a waited-for answer, then whatever queued behind it.
    fn finish(
        &mut self,
        r: ReplyTo,
        zxid: Zxid,
        result: Result<Response, ErrorCode>,
        closes: bool,
    ) {
        if !self.pop_write(&r) {
            return;
        }
        self.send(r.conn, r.xid, zxid, result, r.received);
        if closes && let Some(conn) = self.conns.get(&r.conn) {
            let _ = conn.tx.send(Outgoing::Close);
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
            self.notify(n);
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

    fn notify(&mut self, n: Notification) {
        if let Some(conn) = self.conns.get_mut(&n.conn) {
            conn.packets_sent += 1;
            self.stats.packets_sent += 1;
            let _ = conn.tx.send(Outgoing::Event {
                kind: n.event,
                path: n.path,
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

pub(super) fn reply_to(conn: ConnId, xid: i32, received: Instant) -> ReplyTo {
    ReplyTo {
        conn,
        xid,
        received,
        connect: None,
    }
}
