//! Periodic work: session expiry, the container/TTL reaper, and background snapshots.

use tracing::{info, warn};

use super::{Core, CoreMsg};
use crate::request::prep;

/// The most reaper deletions proposed per round, so a mass expiry cannot stall clients.
const REAP_BATCH: usize = 1000;

impl Core {
    pub(super) fn on_tick(&mut self) {
        let now = self.now_ms();
        self.zab.on_tick(now);
        self.drive();
        self.read_only_tick(now);
        self.persist_commit_index();
        self.snapshot_recovered_log();
        if !self.is_leader() {
            // Learners report activity; the leader alone decides expiry.
            if now.saturating_sub(self.last_touch_ms) >= (self.cfg.tick_ms / 2).max(1) {
                self.last_touch_ms = now;
                self.send_touches();
            }
            return;
        }
        self.expire_sessions(now);
        if now.saturating_sub(self.last_reap_ms) >= self.cfg.container_check_ms {
            self.last_reap_ms = now;
            self.reap();
        }
    }

    /// Expires what is overdue before a client's message is handled, so that the message
    /// cannot revive a session whose deadline passed while the server could not run
    /// (stopped, starved): its tick may come after it. The leader alone decides expiry.
    pub(super) fn expire_overdue_sessions(&mut self) {
        let Some(first) = self.sessions.first_deadline() else {
            return;
        };
        let now = self.now_ms();
        if first <= now && self.is_leader() {
            self.expire_sessions(now);
        }
    }

    /// Proposes closeSession for every session whose deadline has passed.
    fn expire_sessions(&mut self, now: u64) {
        for session in self.sessions.expire(now) {
            if !self.tree.sessions().contains_key(&session) || !self.closing.insert(session) {
                continue;
            }
            let timeout = self.tree.sessions().get(&session).map(|e| e.timeout_ms);
            info!(
                session = format_args!("{session:#x}"),
                timeout_ms = timeout,
                "expiring session: timeout exceeded"
            );
            self.stats.sessions_expired += 1;
            let prepared = prep::prepare_close(&self.tree, &self.pending, session);
            self.propose(session, 0, prepared, None);
        }
    }

    /// Deletes empty containers that once had children and TTL nodes past their TTL.
    fn reap(&mut self) {
        let wall = self.wall_ms();
        let candidates: Vec<String> = self
            .tree
            .containers()
            .iter()
            .chain(self.tree.ttl_nodes().iter())
            .cloned()
            .collect();
        let mut proposed = 0;
        for p in candidates {
            if proposed >= REAP_BATCH {
                break;
            }
            if let Some(prepared) = prep::prepare_reap(&self.tree, &self.pending, &p, wall) {
                self.propose(0, 0, prepared, None);
                proposed += 1;
            }
        }
    }

    /// Starts a background snapshot once snapCount txns were applied since the last one.
    pub(super) fn maybe_snapshot(&mut self) {
        if self.txns_since_snapshot >= self.cfg.snap_count {
            self.start_snapshot();
        }
    }

    /// Writes what recovery read from the log down as a snapshot, once this node serves
    /// and has applied it, as ZooKeeper's loadData snapshots after a restore. Otherwise a
    /// server restarted more often than every snapCount txns (each roll of a busy
    /// ensemble) replays an ever longer log at each start, seconds of it, and its log is
    /// never purged.
    fn snapshot_recovered_log(&mut self) {
        let Some(target) = self.snapshot_recovered_at else {
            return;
        };
        if self.zab.role().is_serving() && self.tree.last_zxid() >= target {
            self.snapshot_recovered_at = None;
            self.start_snapshot();
        }
    }

    /// Starts a background snapshot of the tree as it is now, unless one is running.
    pub(super) fn start_snapshot(&mut self) {
        if self.snapshot_running {
            return;
        }
        // New txns go to a fresh segment, so older segments can be purged later.
        if let Err(e) = self.data.roll() {
            warn!(error = %e, "could not roll the txn log before a snapshot");
        }
        self.snapshot_running = true;
        self.txns_since_snapshot = 0;
        let view = self.tree.snapshot_view();
        let zxid = view.last_zxid;
        let tx = self.internal_tx.clone();
        let done = Box::new(move |ok| {
            let _ = tx.send(CoreMsg::SnapshotDone { zxid, ok });
        });
        if let Err(e) = self.data.snapshot(view, done) {
            warn!(error = %e, "could not start a snapshot");
            self.snapshot_running = false;
        }
    }

    pub(super) fn on_snapshot_done(&mut self, _zxid: i64, ok: bool) {
        self.snapshot_running = false;
        if !ok {
            // Try again soon rather than after another full snapCount.
            self.txns_since_snapshot = self.cfg.snap_count / 2;
        }
    }
}
