//! Read-only mode (`readonlymode.enabled`), ZooKeeper's ReadOnlyZooKeeperServer: a
//! server that has been looking for a leader for a while — cut off from its quorum —
//! serves reads to clients that asked for read-only at connect time, refuses every
//! other client, and answers writes with NotReadOnly. It is a role of the server beside
//! looking, decided here in the shell from ZAB's role and the clock: the replication
//! core knows nothing of it and keeps looking meanwhile. As soon as ZAB finds a leader
//! the server leaves read-only mode and drops its read-only clients, which reconnect
//! read-write.
//!
//! Sessions made here are local, as ZooKeeper's read-only sessions are: ids in the
//! server's own range (its id in the top byte), expiry on this server alone, nothing
//! written to the log. A read-write server does not know them, so a client that comes
//! back with one is told its session expired and starts a new one.

use std::collections::HashMap;

use paddock_proto::{ConnectRequest, Response};
use tracing::info;

use super::{Core, Outgoing};
use crate::session::{SessionTracker, session_password};
use crate::watch::ConnId;
use crate::zab::Role;

/// How long ZooKeeper looks before it starts its read-only server: max(2 s, tickTime).
const START_AFTER_MS: u64 = 2_000;

/// A change of read-only mode the core must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Entered,
    Left,
}

/// The read-only role's state: when looking began, whether read-only clients are
/// served, and the local sessions.
#[derive(Debug)]
pub struct ReadOnly {
    enabled: bool,
    tick_ms: u64,
    start_after_ms: u64,
    /// Since when ZAB has been looking; `None` while it is not.
    looking_since: Option<u64>,
    serving: bool,
    /// Expiry of the local sessions, and their negotiated timeouts.
    expiry: SessionTracker,
    timeouts: HashMap<i64, i32>,
}

impl ReadOnly {
    /// A server that starts looking at `now_ms` (every server starts so).
    pub fn new(enabled: bool, tick_ms: u64, now_ms: u64) -> ReadOnly {
        ReadOnly {
            enabled,
            tick_ms,
            start_after_ms: START_AFTER_MS.max(tick_ms),
            looking_since: Some(now_ms),
            serving: false,
            // Only deadlines are kept here; ids come from the server's own generator.
            expiry: SessionTracker::new(tick_ms, 0, 0),
            timeouts: HashMap::new(),
        }
    }

    pub fn is_serving(&self) -> bool {
        self.serving
    }

    /// ZAB's role changed: looking starts the clock; anything else ends read-only mode.
    pub fn on_role(&mut self, role: Role, now_ms: u64) -> Option<Change> {
        if role == Role::Looking {
            self.looking_since.get_or_insert(now_ms);
            return None;
        }
        self.looking_since = None;
        if !self.serving {
            return None;
        }
        self.serving = false;
        self.expiry = SessionTracker::new(self.tick_ms, 0, 0);
        self.timeouts.clear();
        Some(Change::Left)
    }

    /// Time passes: read-only mode starts once the server has looked long enough.
    pub fn on_tick(&mut self, now_ms: u64) -> Option<Change> {
        let since = self.looking_since?;
        if !self.enabled || self.serving || now_ms.saturating_sub(since) < self.start_after_ms {
            return None;
        }
        self.serving = true;
        Some(Change::Entered)
    }

    /// A new local session with its negotiated timeout.
    pub fn open(&mut self, session: i64, timeout_ms: i32, now_ms: u64) {
        self.timeouts.insert(session, timeout_ms);
        self.expiry.touch(session, timeout_ms, now_ms);
    }

    pub fn knows(&self, session: i64) -> bool {
        self.timeouts.contains_key(&session)
    }

    /// The session showed activity: its deadline moves.
    pub fn touch(&mut self, session: i64, now_ms: u64) {
        if let Some(timeout) = self.timeouts.get(&session) {
            self.expiry.touch(session, *timeout, now_ms);
        }
    }

    pub fn close(&mut self, session: i64) {
        self.timeouts.remove(&session);
        self.expiry.remove(session);
    }

    /// Removes and returns the sessions whose deadline passed.
    pub fn expire(&mut self, now_ms: u64) -> Vec<i64> {
        let expired = self.expiry.expire(now_ms);
        for s in &expired {
            self.timeouts.remove(s);
        }
        expired
    }

    pub fn sessions(&self) -> usize {
        self.timeouts.len()
    }
}

impl Core {
    pub fn is_read_only(&self) -> bool {
        self.read_only.is_serving()
    }

    /// Ticks read-only mode: entering it, and expiring local sessions.
    pub(super) fn read_only_tick(&mut self, now: u64) {
        if self.read_only.on_tick(now) == Some(Change::Entered) {
            info!(
                me = self.zab.me(),
                "no quorum: serving read-only clients (read-only mode)"
            );
        }
        for session in self.read_only.expire(now) {
            info!(
                session = format_args!("{session:#x}"),
                "expiring read-only session: timeout exceeded"
            );
            self.stats.sessions_expired += 1;
            if let Some(conn) = self.session_owner.remove(&session)
                && let Some(c) = self.conns.get_mut(&conn)
            {
                c.session = None;
                let _ = c.tx.send(Outgoing::Close);
            }
        }
    }

    /// ZAB's role changed; leaving read-only mode drops its clients (done by the role
    /// change itself: the server is not serving until it has synced) and its sessions.
    pub(super) fn read_only_role(&mut self, role: Role) {
        let now = self.now_ms();
        let before = self.read_only.sessions();
        if self.read_only.on_role(role, now) == Some(Change::Left) {
            info!(
                me = self.zab.me(),
                ?role,
                sessions = before,
                "a leader is known: leaving read-only mode, dropping read-only clients"
            );
        }
    }

    /// A connection in read-only mode: only clients that asked for read-only get a
    /// session, a new local one or one of this server's local sessions resumed. A
    /// client coming back with a session of the read-write ensemble is refused (its
    /// session must not expire here); an unknown session is told it expired.
    pub(super) fn connect_read_only(&mut self, conn_id: ConnId, req: &ConnectRequest) {
        let now = self.now_ms();
        let timeout_ms = req.time_out.clamp(
            self.cfg.min_session_timeout_ms,
            self.cfg.max_session_timeout_ms,
        );
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let addr = conn.addr;
        if req.read_only != Some(true) {
            info!(client = %addr, "read-only mode: refusing a client that did not ask for read-only");
            let _ = conn.tx.send(Outgoing::Close);
            return;
        }
        if self.tree.sessions().contains_key(&req.session_id) {
            info!(
                session = format_args!("{:#x}", req.session_id),
                client = %addr,
                "read-only mode: refusing to resume a read-write session"
            );
            let _ = conn.tx.send(Outgoing::Close);
            return;
        }
        let session = if req.session_id == 0 {
            let session = self.sessions.next_session_id();
            self.read_only.open(session, timeout_ms, now);
            info!(session = format_args!("{session:#x}"), client = %addr, timeout_ms, "read-only session created");
            session
        } else if self.read_only.knows(req.session_id)
            && req.passwd.0 == session_password(req.session_id)
        {
            self.read_only.touch(req.session_id, now);
            req.session_id
        } else {
            info!(
                session = format_args!("{:#x}", req.session_id),
                client = %addr,
                "read-only mode: expired or unknown session; telling the client it expired"
            );
            conn.expire(Some(true));
            return;
        };
        conn.grant(session, timeout_ms, Some(true));
        self.move_session_here(session, conn_id);
    }

    /// closeSession of a local session: forgotten here, answered, the connection closed.
    pub(super) fn close_read_only_session(
        &mut self,
        conn_id: ConnId,
        session: i64,
        xid: i32,
        received: std::time::Instant,
    ) {
        self.read_only.close(session);
        self.session_owner.remove(&session);
        let zxid = self.tree.last_zxid();
        self.send(conn_id, xid, zxid, Ok(Response::Empty), received);
        if let Some(conn) = self.conns.get_mut(&conn_id) {
            conn.session = None;
            let _ = conn.tx.send(Outgoing::Close);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_starts_after_looking_for_max_of_2s_and_a_tick() {
        let mut ro = ReadOnly::new(true, 500, 0);
        assert_eq!(ro.on_tick(1_999), None);
        assert!(!ro.is_serving());
        assert_eq!(ro.on_tick(2_000), Some(Change::Entered));
        assert!(ro.is_serving());
        assert_eq!(ro.on_tick(2_100), None, "entered once");
        // A long tick is the delay.
        let mut slow = ReadOnly::new(true, 5_000, 0);
        assert_eq!(slow.on_tick(4_999), None);
        assert_eq!(slow.on_tick(5_000), Some(Change::Entered));
    }

    #[test]
    fn disabled_never_serves() {
        let mut ro = ReadOnly::new(false, 500, 0);
        assert_eq!(ro.on_tick(1_000_000), None);
        assert!(!ro.is_serving());
    }

    #[test]
    fn a_leader_ends_read_only_mode_and_its_sessions() {
        let mut ro = ReadOnly::new(true, 500, 0);
        assert_eq!(ro.on_tick(2_000), Some(Change::Entered));
        ro.open(7, 4_000, 2_000);
        assert!(ro.knows(7));
        // Still looking: nothing changes.
        assert_eq!(ro.on_role(Role::Looking, 2_500), None);
        assert!(ro.is_serving());
        let following = Role::Follower {
            leader: 2,
            synced: false,
        };
        assert_eq!(ro.on_role(following, 3_000), Some(Change::Left));
        assert!(!ro.is_serving());
        assert!(!ro.knows(7), "local sessions go with the mode");
        assert_eq!(ro.sessions(), 0);
        // Not looking: time alone does not bring it back.
        assert_eq!(ro.on_tick(100_000), None);
        // Looking again restarts the clock.
        assert_eq!(ro.on_role(Role::Looking, 100_000), None);
        assert_eq!(ro.on_tick(101_999), None);
        assert_eq!(ro.on_tick(102_000), Some(Change::Entered));
    }

    #[test]
    fn leaving_a_mode_never_entered_is_no_change() {
        let mut ro = ReadOnly::new(true, 500, 0);
        assert_eq!(ro.on_role(Role::LeaderElect, 1_000), None);
        assert_eq!(ro.on_role(Role::Leader, 1_000), None);
    }

    #[test]
    fn local_sessions_expire_unless_touched() {
        let mut ro = ReadOnly::new(true, 500, 0);
        ro.on_tick(2_000);
        ro.open(1, 4_000, 2_000);
        ro.open(2, 4_000, 2_000);
        ro.touch(2, 5_000);
        assert_eq!(ro.expire(6_000), vec![1]);
        assert!(!ro.knows(1) && ro.knows(2));
        assert_eq!(ro.expire(9_000), vec![2]);
        ro.open(3, 4_000, 9_000);
        ro.close(3);
        assert!(ro.expire(100_000).is_empty());
        assert_eq!(ro.sessions(), 0);
    }
}
