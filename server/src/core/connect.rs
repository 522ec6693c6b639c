//! Session establishment, resumption, authentication and connection teardown.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use paddock_proto::{AuthPacket, ConnectRequest, ConnectResponse, ErrorCode, Id, Response};
use tracing::{info, warn};

use super::{Conn, ConnTx, ConnectReply, Core, Outgoing, ReplyTo};
use crate::session::session_password;
use crate::tree::acl::{Credentials, digest_id};
use crate::watch::ConnId;

/// The answer to a session that is expired or unknown here (ZooKeeper's: timeout 0).
pub(super) fn expired(read_only: Option<bool>) -> ConnectResponse {
    ConnectResponse {
        protocol_version: 0,
        time_out: 0,
        session_id: 0,
        passwd: vec![0u8; 16].into(),
        read_only,
    }
}

/// The answer granting (or resuming) `session` with `timeout_ms`.
pub(super) fn granted(session: i64, timeout_ms: i32, read_only: Option<bool>) -> ConnectResponse {
    ConnectResponse {
        protocol_version: 0,
        time_out: timeout_ms,
        session_id: session,
        passwd: session_password(session).into(),
        read_only,
    }
}

impl Conn {
    /// Tells the client its session expired (or is unknown here), and closes.
    pub(super) fn expire(&self, read_only: Option<bool>) {
        let _ = self.tx.send(Outgoing::Connected(expired(read_only)));
        let _ = self.tx.send(Outgoing::Close);
    }

    /// Gives the connection `session`, and tells the client.
    pub(super) fn grant(&mut self, session: i64, timeout_ms: i32, read_only: Option<bool>) {
        self.session = Some(session);
        let _ = self
            .tx
            .send(Outgoing::Connected(granted(session, timeout_ms, read_only)));
    }
}

impl Core {
    pub(super) fn on_connect(
        &mut self,
        conn_id: ConnId,
        addr: IpAddr,
        req: ConnectRequest,
        tx: ConnTx,
        tls_ids: Vec<Id>,
    ) {
        self.stats.connections_accepted += 1;
        // The transport's ids first, then ip: the order ZooKeeper's whoAmI lists them in.
        let is_super = tls_ids.iter().any(|id| id.scheme == "super");
        let mut ids = tls_ids;
        ids.push(Id {
            scheme: "ip".into(),
            id: addr.to_string(),
        });
        let conn = Conn {
            tx,
            addr,
            session: None,
            creds: Arc::new(Credentials { ids, is_super }),
            sasl: None,
            queue: VecDeque::new(),
            connected_at: SystemTime::now(),
            packets_received: 1,
            packets_sent: 0,
            last_zxid: 0,
            last_op: paddock_proto::OpCode::CreateSession,
            last_latency_ms: 0,
            min_latency_ms: 0,
            max_latency_ms: 0,
            total_latency_ms: 0,
            completed: 0,
        };
        if self.read_only.is_serving() && req.last_zxid_seen <= self.tree.last_zxid() {
            self.conns.insert(conn_id, conn);
            self.connect_read_only(conn_id, &req);
            return;
        }
        if !self.zab.role().is_serving() {
            info!(client = %addr, role = ?self.zab.role(), "not serving (no quorum or still syncing); closing the connection");
            let _ = conn.tx.send(Outgoing::Close);
            return;
        }
        if req.last_zxid_seen > self.tree.last_zxid() {
            warn!(
                client = %addr,
                client_zxid = format_args!("{:#x}", req.last_zxid_seen),
                our_zxid = format_args!("{:#x}", self.tree.last_zxid()),
                "refusing session: the client has seen a newer zxid than this server; it must try another server"
            );
            let _ = conn.tx.send(Outgoing::Close);
            return;
        }
        let timeout_ms = req.time_out.clamp(
            self.cfg.min_session_timeout_ms,
            self.cfg.max_session_timeout_ms,
        );
        let read_only_byte = req.read_only.is_some();
        self.conns.insert(conn_id, conn);

        if req.session_id == 0 {
            let session = self.sessions.next_session_id();
            if let Some(conn) = self.conns.get_mut(&conn_id) {
                conn.session = Some(session);
            }
            self.session_owner.insert(session, conn_id);
            let reply = ReplyTo {
                conn: conn_id,
                xid: 0,
                received: Instant::now(),
                connect: Some(ConnectReply {
                    timeout_ms,
                    read_only_byte,
                }),
            };
            self.create_session(session, timeout_ms, reply);
            return;
        }

        let session = req.session_id;
        let known = self.tree.sessions().contains_key(&session) && !self.closing.contains(&session);
        let valid = known && req.passwd.0 == session_password(session);
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        if !valid {
            info!(
                session = format_args!("{session:#x}"),
                client = %addr,
                reason = if known { "wrong password" } else { "expired or unknown session" },
                "invalid session; telling the client it expired"
            );
            conn.expire(read_only_byte.then_some(false));
            return;
        }
        conn.grant(session, timeout_ms, read_only_byte.then_some(false));
        self.move_session_here(session, conn_id);
        if self.is_leader() {
            let now = self.now_ms();
            self.sessions.touch(session, timeout_ms, now);
        } else {
            self.touched.insert(session);
        }
        info!(session = format_args!("{session:#x}"), client = %addr, timeout_ms, "session resumed");
    }

    /// The session moves to `conn_id`; the connection that had it is closed, as
    /// ZooKeeper does.
    pub(super) fn move_session_here(&mut self, session: i64, conn_id: ConnId) {
        if let Some(previous) = self.session_owner.insert(session, conn_id)
            && previous != conn_id
            && let Some(old) = self.conns.get_mut(&previous)
        {
            old.session = None;
            let _ = old.tx.send(Outgoing::Close);
        }
    }

    pub(super) fn on_closed(&mut self, conn_id: ConnId) {
        self.watches.remove_conn(conn_id);
        if let Some(conn) = self.conns.remove(&conn_id)
            && let Some(session) = conn.session
            && self.session_owner.get(&session) == Some(&conn_id)
        {
            // The session lives on until it expires or a client resumes it elsewhere.
            self.session_owner.remove(&session);
        }
    }

    /// addauth: only the digest scheme is offered (ip is implied by the address). The
    /// reply carries the request's xid, as ZooKeeper's does: the Java client sends -4,
    /// other clients (zookeeper-client) an ordinary xid and match the reply by it.
    pub(super) fn on_auth(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        auth: AuthPacket,
        received: Instant,
    ) {
        let zxid = self.tree.last_zxid();
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let credential = match (auth.scheme.as_str(), std::str::from_utf8(&auth.auth)) {
            ("digest", Ok(user_password)) => Some(digest_id(user_password)),
            _ => None,
        };
        match credential {
            Some(id) => {
                let creds = Arc::make_mut(&mut conn.creds);
                if self.cfg.super_digest.as_deref() == Some(id.as_str()) {
                    creds.is_super = true;
                }
                let id = Id {
                    scheme: "digest".into(),
                    id,
                };
                if !creds.ids.contains(&id) {
                    creds.ids.push(id);
                }
                self.send(conn_id, xid, zxid, Ok(Response::Empty), received);
            }
            None => {
                warn!(conn = conn_id, scheme = %auth.scheme, "authentication failed: unsupported scheme or malformed credentials");
                self.send(conn_id, xid, zxid, Err(ErrorCode::AuthFailed), received);
                if let Some(conn) = self.conns.get(&conn_id) {
                    let _ = conn.tx.send(Outgoing::Close);
                }
            }
        }
    }
}
