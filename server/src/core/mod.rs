//! The server core: one thread that owns the tree, the sessions and the watches, and
//! sequences every request. Connection tasks and the disk writer talk to it through one
//! channel of [`CoreMsg`]; it talks back through per-connection channels of
//! [`Outgoing`]. The plaintext connections' tasks and the plaintext quorum port's run on
//! the core's own thread (its current-thread runtime, see `run.rs`), so their requests,
//! replies and peer messages wake no other thread. Keeping all state on one thread means no locks on the hot path and a
//! total order of changes, which is what replication needs (issue: ZAB goes between
//! "propose" and "apply" in `pipeline.rs`).

mod clock;
mod connect;
mod data_dir;
mod ensemble;
pub mod forward;
mod maintenance;
mod pipeline;
pub mod readonly;
pub mod reconfig;
mod recovery;
mod sasl;
pub mod stats;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use crate::hashing::{FastMap, FastSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use paddock_proto::{
    ConnectRequest, ConnectResponse, ErrorCode, EventType, OpCode, Request, Response,
};
use tokio::sync::mpsc;
use tracing::{error, info};

use crate::request::pending::PendingChanges;
use crate::session::SessionTracker;
use crate::storage::DiskEvent;
use crate::tree::DataTree;
use crate::tree::acl::Credentials;
use crate::txn::Txn;
use crate::watch::{ConnId, WatchManager};
use crate::zab::{Membership, Message, Role, Sid, Timing, Zab, Zxid};

use clock::BurstClock;
pub use clock::{Clock, SystemClock};
pub use data_dir::{DataDir, Files, SnapshotDone};
pub use recovery::{Recovered, RecoveryError, rebuild};
pub use stats::Stats;

/// What the core sends to a connection's writer task, in order.
#[derive(Debug)]
pub enum Outgoing {
    Connected(ConnectResponse),
    Reply {
        xid: i32,
        zxid: i64,
        err: ErrorCode,
        body: Response,
    },
    /// A watch notification (its header always carries zxid -1, as ZooKeeper's does, and
    /// its state is SyncConnected). The path is shared by every watcher of the change.
    Event {
        kind: EventType,
        path: crate::watch::WatchedPath,
    },
    /// Flush what was sent and close the socket.
    Close,
}

pub type ConnTx = mpsc::UnboundedSender<Outgoing>;

/// A question answered on the core thread with read access to all state (admin, metrics).
pub type Query = Box<dyn FnOnce(&mut Core) + Send>;

/// Everything the core reacts to.
pub enum CoreMsg {
    Connect {
        conn: ConnId,
        addr: IpAddr,
        req: ConnectRequest,
        tx: ConnTx,
        /// Identities the transport proved: `x509:<subject DN>` (and `super`) from a
        /// TLS client certificate.
        tls_ids: Vec<paddock_proto::Id>,
    },
    Request {
        conn: ConnId,
        xid: i32,
        req: Request,
        received: Instant,
    },
    /// A request that could not be decoded but deserves an in-order error reply.
    Refused {
        conn: ConnId,
        xid: i32,
        err: ErrorCode,
        received: Instant,
    },
    Closed {
        conn: ConnId,
    },
    Disk(DiskEvent),
    /// A message from another server of the ensemble.
    Peer {
        from: Sid,
        msg: Message,
    },
    /// A peer connected to us and said where it listens.
    PeerHello {
        from: Sid,
        addr: crate::config::HostPort,
    },
    /// The link to a peer came up / went down.
    PeerUp(Sid),
    PeerDown(Sid),
    Tick,
    SnapshotDone {
        zxid: i64,
        ok: bool,
    },
    Query(Query),
    Shutdown,
}

/// How the core reaches the other servers of the ensemble. The shell's peer transport
/// (`net::peer::PeerNet`) implements it; a standalone server and the core's tests use
/// [`NoPeers`]. A trait, so that the core does not depend on the transport (which
/// depends on the core's messages).
pub trait PeerLinks: Send {
    /// Queues `msg` for `to`; dropped when there is no live link (as a TCP reset drops
    /// what was in flight: ZAB restarts its handshakes when the link comes back).
    fn send(&self, to: Sid, msg: &Message);
    /// Queues a SNAP of `view` at `zxid` for `to`, in order with the messages around it.
    fn send_snapshot(&self, to: Sid, zxid: Zxid, view: crate::tree::SnapshotView);
    /// Opens (or moves) the link to a member at `host:port`.
    fn ensure_link(&mut self, peer: Sid, host: &str, port: u16);
    /// A peer introduced itself with the quorum address it listens on.
    fn introduced(&mut self, peer: Sid, addr: crate::config::HostPort);
}

/// No other servers: a standalone server's, and the core tests', peer links.
pub struct NoPeers;

impl PeerLinks for NoPeers {
    fn send(&self, _to: Sid, _msg: &Message) {}
    fn send_snapshot(&self, _to: Sid, _zxid: Zxid, _view: crate::tree::SnapshotView) {}
    fn ensure_link(&mut self, _peer: Sid, _host: &str, _port: u16) {}
    fn introduced(&mut self, _peer: Sid, _addr: crate::config::HostPort) {}
}

/// Bounded: connection tasks wait here when the core falls behind (backpressure).
pub type CoreTx = mpsc::Sender<CoreMsg>;

/// Unbounded: the disk writer, timers, snapshot threads and queries must never block on
/// the core, because the core may be waiting on them (e.g. the disk writer at shutdown).
pub type InternalTx = mpsc::UnboundedSender<CoreMsg>;

/// Settings the core needs (a subset of the server config).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub server_id: u64,
    pub tick_ms: u64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub snap_count: u64,
    pub snap_dir: PathBuf,
    pub log_dir: PathBuf,
    pub snap_retain_count: usize,
    pub autopurge: bool,
    pub extended_types: bool,
    pub reconfig_enabled: bool,
    /// `standaloneEnabled`: a reconfig must leave at least two voters (ZooKeeper's rule).
    pub standalone_enabled: bool,
    /// `readonlymode.enabled`: serve read-only clients while cut off from the quorum.
    pub read_only_mode: bool,
    /// `super:<digest id>` from superDigest: this identity bypasses every ACL.
    pub super_digest: Option<String>,
    /// SASL logins on the client port and `enforce.auth`.
    pub sasl: std::sync::Arc<crate::sasl::ClientSasl>,
    pub container_check_ms: u64,
    /// A txn log group commit slower than this is logged and counted
    /// (`fsync.warningthresholdms`).
    pub fsync_warning_ms: u64,
    /// The membership with addresses this server starts from (the committed config in
    /// the data dir, else zoo.cfg's, else what a --join fetched); a standalone server
    /// is an ensemble of one. ZAB owns it from then on.
    pub membership: Membership,
    pub timing: Timing,
    /// Whether the config names other servers (affects reporting only).
    pub distributed: bool,
}

/// One client connection as the core sees it.
struct Conn {
    tx: ConnTx,
    addr: IpAddr,
    session: Option<i64>,
    /// Shared with each write in flight rather than copied into it (a write's ACL check
    /// and its forwarding read them); an auth copies them only when they are shared.
    creds: Arc<Credentials>,
    /// The SASL exchange in progress or done on this connection.
    sasl: Option<Box<paddock_proto::sasl::Server>>,
    /// Requests answered in arrival order: writes wait for their txn, and whatever came
    /// after a write waits behind it.
    queue: VecDeque<Queued>,
    connected_at: SystemTime,
    packets_received: u64,
    packets_sent: u64,
    last_zxid: i64,
    last_op: OpCode,
    last_latency_ms: u64,
    min_latency_ms: u64,
    max_latency_ms: u64,
    total_latency_ms: u64,
    completed: u64,
}

enum Queued {
    /// A write (or a request the leader answers) that waits for its txn's commit or the
    /// leader's answer; matched by the client's xid.
    Write { cxid: i32 },
    Read {
        xid: i32,
        req: Request,
        received: Instant,
    },
    Ready {
        xid: i32,
        result: Result<Response, ErrorCode>,
        received: Instant,
    },
}

/// Who is waiting for a proposed txn.
struct ReplyTo {
    conn: ConnId,
    xid: i32,
    received: Instant,
    connect: Option<ConnectReply>,
}

/// An answer held until everything up to the zxid is committed, for (session, cxid).
type HeldAnswer = (Zxid, (i64, i32), Result<Response, ErrorCode>);

struct ConnectReply {
    timeout_ms: i32,
    read_only_byte: bool,
}

/// The core's whole state.
pub struct Core {
    cfg: CoreConfig,
    tree: DataTree,
    pending: PendingChanges,
    watches: WatchManager,
    sessions: SessionTracker,
    /// Sessions whose close is proposed: they accept nothing more.
    closing: FastSet<i64>,
    session_owner: FastMap<i64, ConnId>,
    conns: FastMap<ConnId, Conn>,
    /// Who waits for the commit of (session, cxid), or the leader's answer to it.
    waiting: FastMap<(i64, i32), ReplyTo>,
    /// Answers to local requests on the leader that wait until everything up to the zxid
    /// is committed (`sync`, and writes refused because of pending changes).
    syncs: Vec<HeldAnswer>,
    /// Sessions active here since the last touch sent to the leader (learners).
    touched: FastSet<i64>,
    last_touch_ms: u64,
    /// The commit index last written to disk.
    persisted_commit: Zxid,
    zab: Zab,
    /// ZAB's outputs wait (in ZAB) for the epochs last asked for to be durable (see
    /// `drive`).
    awaiting_epochs: bool,
    /// The txns this server proposed as leader and has not applied yet, in zxid order:
    /// applying one of them takes it from here rather than decoding its payload again
    /// (`apply_commit`).
    own_txns: VecDeque<Txn>,
    /// Read-only mode, a role beside looking that the shell decides (see `readonly`).
    read_only: readonly::ReadOnly,
    peers: Box<dyn PeerLinks>,
    /// Every durable write goes through it (the log, snapshots, epochs, configs).
    data: Box<dyn DataDir>,
    internal_tx: InternalTx,
    stats: Stats,
    /// Monotonic and wall time (the system's, or a simulator's), read once a burst.
    clock: BurstClock,
    txns_since_snapshot: u64,
    snapshot_running: bool,
    /// Set when recovery read txns from the log: once serving with the tree at this
    /// zxid, they are written down as a snapshot (see `snapshot_recovered_log`).
    snapshot_recovered_at: Option<Zxid>,
    last_reap_ms: u64,
    fatal: Option<String>,
}

/// How long a stopping core waits for its connections to send their last replies.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// The most messages the core handles in one burst, before the log records they
/// produced go to the disk writer.
const BURST_MAX: usize = 64;

impl Core {
    /// Monotonic milliseconds since the core started (session deadlines).
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Wall-clock milliseconds (znode times, TTLs).
    fn wall_ms(&self) -> i64 {
        self.clock.wall_ms()
    }

    /// Runs the core on `runtime`, a current-thread runtime owned by the calling thread,
    /// until shutdown; returns an error if the server had to stop (e.g. the disk
    /// failed). Internal messages (durability, ticks) go first so that a flood of client
    /// requests cannot delay commits. Other tasks spawned on `runtime` (the plaintext
    /// client connections) run between the core's messages.
    pub fn run(
        mut self,
        runtime: &tokio::runtime::Runtime,
        mut clients: mpsc::Receiver<CoreMsg>,
        mut internal: mpsc::UnboundedReceiver<CoreMsg>,
    ) -> Result<(), String> {
        info!(
            zxid = format_args!("{:#x}", self.tree.last_zxid()),
            nodes = self.tree.node_count(),
            sessions = self.tree.sessions().len(),
            "serving"
        );
        let result = runtime.block_on(async {
            loop {
                let msg = tokio::select! {
                    biased;
                    Some(msg) = internal.recv() => msg,
                    Some(msg) = clients.recv() => msg,
                    else => return Ok(()),
                };
                // The messages already queued are handled as one burst, and the log
                // records they produced go to the disk writer together at its end.
                let mut next = Some(msg);
                let mut handled = 0;
                while let Some(msg) = next.take() {
                    if !self.handle(msg) {
                        return Ok(());
                    }
                    handled += 1;
                    if handled < BURST_MAX && self.fatal.is_none() {
                        next = internal.try_recv().or_else(|_| clients.try_recv()).ok();
                    }
                }
                self.end_burst();
                if let Some(reason) = self.fatal.take() {
                    error!(%reason, "stopping the server");
                    return Err(reason);
                }
            }
        });
        self.shutdown();
        // The connections on this thread's runtime get to send what is queued for them
        // and close; one whose client does not read is dropped with the runtime.
        let closing: Vec<ConnTx> = self.conns.values().map(|c| c.tx.clone()).collect();
        runtime.block_on(async {
            let all_closed = async {
                for tx in &closing {
                    tx.closed().await;
                }
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, all_closed).await;
        });
        result
    }

    /// Handles one message, as the event loop does: the simulator's way in. False on
    /// shutdown; a fatal error is then in [`Core::take_fatal`].
    #[cfg(test)]
    pub(crate) fn step(&mut self, msg: CoreMsg) -> bool {
        let alive = self.handle(msg);
        self.end_burst();
        alive
    }

    /// The messages at hand are handled: the log records they produced go to the disk
    /// writer now (the data dir holds them until then, to hand them over together).
    fn end_burst(&mut self) {
        self.clock.end_burst();
        if let Err(e) = self.data.flush()
            && self.fatal.is_none()
        {
            self.fatal = Some(format!("cannot queue txns for the log: {e}"));
        }
    }

    /// Why the core must stop, once (a failed disk, an undecodable committed txn).
    #[cfg(test)]
    pub(crate) fn take_fatal(&mut self) -> Option<String> {
        self.fatal.take()
    }

    /// Handles one message; false on shutdown.
    fn handle(&mut self, msg: CoreMsg) -> bool {
        match msg {
            CoreMsg::Connect {
                conn,
                addr,
                req,
                tx,
                tls_ids,
            } => {
                self.expire_overdue_sessions();
                self.on_connect(conn, addr, req, tx, tls_ids);
            }
            CoreMsg::Request {
                conn,
                xid,
                req,
                received,
            } => {
                self.expire_overdue_sessions();
                self.on_request(conn, xid, req, received);
            }
            CoreMsg::Refused {
                conn,
                xid,
                err,
                received,
            } => self.enqueue_ready(conn, xid, Err(err), received),
            CoreMsg::Closed { conn } => self.on_closed(conn),
            CoreMsg::Disk(event) => self.on_disk(event),
            CoreMsg::Peer { from, msg } => {
                let now = self.now_ms();
                self.zab.on_message(now, from, msg);
                self.drive();
            }
            CoreMsg::PeerHello { from, addr } => self.peers.introduced(from, addr),
            CoreMsg::PeerUp(peer) => {
                let now = self.now_ms();
                self.zab.on_connected(now, peer);
                self.drive();
            }
            CoreMsg::PeerDown(peer) => {
                let now = self.now_ms();
                self.zab.on_disconnected(now, peer);
                self.drive();
            }
            CoreMsg::Tick => self.on_tick(),
            CoreMsg::SnapshotDone { zxid, ok } => self.on_snapshot_done(zxid, ok),
            CoreMsg::Query(q) => q(self),
            CoreMsg::Shutdown => return false,
        }
        true
    }

    fn shutdown(&mut self) {
        for conn in self.conns.values() {
            let _ = conn.tx.send(Outgoing::Close);
        }
        if let Err(e) = self.data.shutdown() {
            error!(error = %e, "disk writer did not shut down cleanly");
        }
    }

    // ---- read access for queries (admin, metrics, tests) ----

    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    pub fn watches(&self) -> &WatchManager {
        &self.watches
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// The txn log writer's counters and commit times (`None` once the log is closed).
    pub fn disk_stats(
        &self,
    ) -> Option<(crate::storage::DiskWriterStats, crate::storage::SyncTimes)> {
        self.data.stats()
    }

    pub fn outstanding_requests(&self) -> usize {
        self.waiting.len() + self.conns.values().map(|c| c.queue.len()).sum::<usize>()
    }

    pub fn zab(&self) -> &Zab {
        &self.zab
    }

    /// The replication role, as the node holds it (never a copy of it).
    pub fn role(&self) -> Role {
        self.zab.role()
    }

    pub fn is_distributed(&self) -> bool {
        self.cfg.distributed
    }

    /// The active membership with addresses, as ZAB holds it (derived on each call,
    /// never kept beside it).
    pub fn ensemble(&self) -> crate::config::DynamicConfig {
        crate::config::DynamicConfig::from_membership(self.zab.membership())
    }

    /// Hands leadership to `to` (or the best synced voter); see `Zab::transfer_leadership`.
    pub fn transfer_leadership(&mut self, to: Option<Sid>) -> Result<Sid, String> {
        let result = self.zab.transfer_leadership(to).map_err(|e| e.to_string());
        self.drive();
        result
    }

    fn is_leader(&self) -> bool {
        self.zab.role() == Role::Leader
    }

    pub fn live_sessions(&self) -> usize {
        self.sessions.len()
    }

    pub fn pending_changes(&self) -> usize {
        self.pending.len()
    }

    pub fn fsync_stats(&self) -> Option<crate::storage::DiskWriterStats> {
        self.data.stats().map(|(counts, _)| counts)
    }

    /// A description of every open connection (cons).
    pub fn connections(&self) -> Vec<stats::ConnectionReport> {
        let mut out: Vec<stats::ConnectionReport> = self
            .conns
            .iter()
            .map(|(id, c)| stats::ConnectionReport {
                conn: *id,
                addr: c.addr,
                session: c.session,
                queued: c.queue.len(),
                received: c.packets_received,
                sent: c.packets_sent,
                connected_at: c.connected_at,
                last_zxid: c.last_zxid,
                last_op: c.last_op,
                last_latency_ms: c.last_latency_ms,
                min_latency_ms: if c.completed == 0 {
                    0
                } else {
                    c.min_latency_ms
                },
                avg_latency_ms: c.total_latency_ms.checked_div(c.completed).unwrap_or(0),
                max_latency_ms: c.max_latency_ms,
                timeout_ms: c
                    .session
                    .and_then(|s| self.tree.sessions().get(&s))
                    .map(|e| e.timeout_ms)
                    .unwrap_or(0),
            })
            .collect();
        out.sort_by_key(|c| c.conn);
        out
    }

    /// Resets the per-connection counters (crst).
    pub fn reset_connection_stats(&mut self) {
        for c in self.conns.values_mut() {
            c.packets_received = 0;
            c.packets_sent = 0;
            c.min_latency_ms = 0;
            c.max_latency_ms = 0;
            c.total_latency_ms = 0;
            c.completed = 0;
        }
    }

    /// Session id → paths it watches (over its connection), for wchc.
    pub fn watches_by_session(&self) -> std::collections::BTreeMap<u64, Vec<String>> {
        self.watches
            .by_connection()
            .into_iter()
            .filter_map(|(conn, paths)| {
                let session = self.conns.get(&conn)?.session?;
                Some((session as u64, paths))
            })
            .collect()
    }

    /// (milliseconds until expiry, session) for every tracked session (dump).
    pub fn session_deadlines(&self) -> Vec<(u64, i64)> {
        let now = self.now_ms();
        self.sessions
            .deadlines()
            .map(|(deadline, session)| (deadline.saturating_sub(now), session))
            .collect()
    }

    pub fn reset_stats(&mut self) {
        self.stats.reset();
    }
}
