//! Administration: ZooKeeper four-letter words, the admin HTTP API (axum) and Prometheus
//! metrics (DESIGN §2 "Admin contract").
//!
//! The running server feeds this module through [`AdminSource`]; everything here is
//! formatting and routing over the plain-data structs below, so it is tested against a fake
//! source. Text formats follow ZooKeeper 3.8/3.9 byte for byte where the data allows (checked
//! against a real 3.8.0 server): `srvr`, `stat`, `cons`, `wchs`, `wchc`, `wchp`, `dump`,
//! `conf`, `dirs`, `isro`, `ruok`, `crst`, `srst`, `envi`. `mntr` prints the same `zk_<key>\t<value>`
//! lines as ZooKeeper for the metrics Paddock has (ZooKeeper's own order is a hash order).
//!
//! HTTP routes ([`router`]):
//! * `GET /commands/<name>`: JSON of a command, under ZooKeeper's names and aliases
//!   (`server_stats`/`srvr`, `stats`/`stat`, `monitor`/`mntr`, `configuration`/`conf`,
//!   `connections`/`cons`, `connection_stat_reset`/`crst`, `stat_reset`/`srst`,
//!   `environment`/`envi`, `watch_summary`/`wchs`, `watches`/`wchc`, `watches_by_path`/`wchp`,
//!   `dump`, `is_read_only`/`isro`, `dirs`, `ruok`); every answer carries `"command"` (the primary
//!   name) and `"error"` like ZooKeeper's. Unknown name: 404; not serving: 503.
//! * `GET /status`: [`StatusReport`]; `POST /leadership/transfer` with optional `{"to": id}`;
//!   `GET /livez`; `GET /readyz`; `GET /metrics` (Prometheus text format 0.0.4).
//! * [`auth::guard`]: with a credential configured (the super user's digest, or a bearer
//!   token from `admin.tokenFile`) every route but `/livez`, `/readyz` and `/metrics`
//!   needs it; with none, requests that change state get 403 and reads stay open.

use crate::config::{LearnerRole, ServerConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub mod auth;
mod format;
mod fourlw;
mod http;
mod metrics;
pub mod serve;
mod source;

pub use format::{java_date, java_double};
pub use fourlw::{FourLetterWord, ZK_NOT_SERVING, four_letter_word, not_whitelisted};
pub use http::router;
pub use metrics::{PROMETHEUS_CONTENT_TYPE, render_prometheus};
pub use source::CoreAdmin;

/// The ZooKeeper release whose protocol Paddock speaks; leads the version string because
/// clients (kazoo's `server_version()`, zkCli) parse `major.minor.patch` from it.
pub const ZK_COMPAT_VERSION: &str = "3.9.3";

/// ZooKeeper-style version string: `3.9.3-paddock-<version>, built on <date>`.
pub fn version_string(paddock_version: &str, built_on: Option<&str>) -> String {
    format!(
        "{ZK_COMPAT_VERSION}-paddock-{paddock_version}, built on {}",
        built_on.unwrap_or("unknown")
    )
}

/// What `Mode:` / `zk_server_state` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerMode {
    #[default]
    Standalone,
    Leader,
    Follower,
    Observer,
    /// ZooKeeper's read-only mode (partitioned from the quorum, serving reads).
    ReadOnly,
    /// Electing; ZooKeeper reports commands as "not currently serving" in this state.
    Looking,
}

impl ServerMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerMode::Standalone => "standalone",
            ServerMode::Leader => "leader",
            ServerMode::Follower => "follower",
            ServerMode::Observer => "observer",
            ServerMode::ReadOnly => "read-only",
            ServerMode::Looking => "looking",
        }
    }
}

/// Request latency (or fsync time) since the last `srst`, in milliseconds, as ZooKeeper's
/// `AvgMinMaxCounter` keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatencyStats {
    pub min_ms: u64,
    pub max_ms: u64,
    pub total_ms: u64,
    pub count: u64,
}

impl LatencyStats {
    /// Adds one observation.
    pub fn record(&mut self, ms: u64) {
        if self.count == 0 || ms < self.min_ms {
            self.min_ms = ms;
        }
        self.max_ms = self.max_ms.max(ms);
        self.total_ms = self.total_ms.saturating_add(ms);
        self.count += 1;
    }

    /// 0 when there were no observations, like ZooKeeper.
    pub fn min(&self) -> u64 {
        if self.count == 0 { 0 } else { self.min_ms }
    }

    /// Average rounded half-up to 4 decimals, like ZooKeeper's `AvgMinMaxCounter.getAvg`.
    pub fn avg(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        (self.total_ms as f64 / self.count as f64 * 10_000.0).round() / 10_000.0
    }
}

/// last/min/max sizes of client responses or proposals; -1 until the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BufferStats {
    pub last_buffer_size: i64,
    pub min_buffer_size: i64,
    pub max_buffer_size: i64,
}

impl Default for BufferStats {
    fn default() -> Self {
        BufferStats {
            last_buffer_size: -1,
            min_buffer_size: -1,
            max_buffer_size: -1,
        }
    }
}

impl BufferStats {
    pub fn record(&mut self, size: i64) {
        self.last_buffer_size = size;
        if self.min_buffer_size < 0 || size < self.min_buffer_size {
            self.min_buffer_size = size;
        }
        self.max_buffer_size = self.max_buffer_size.max(size);
    }
}

pub use crate::histogram::Histogram;

/// Leader-only statistics (`mntr` keys `zk_learners`, `zk_synced_followers`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LeaderStats {
    pub learners: u64,
    pub synced_followers: u64,
    pub synced_non_voting_followers: u64,
    pub synced_observers: u64,
    pub pending_syncs: u64,
    pub leader_uptime_ms: u64,
    /// Proposal sizes (`Proposal sizes last/min/max:` in `srvr`).
    pub proposal_sizes: BufferStats,
}

/// An integer or floating-point metric value (ZooKeeper prints them differently).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MetricValue {
    Int(i64),
    Float(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Gauge,
    Counter,
}

/// A metric this module does not know, passed through to `mntr` (`zk_<name>`), the
/// `monitor` JSON and Prometheus (`paddock_<name>`). Names should be `[a-z0-9_]`; other
/// characters become `_`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtraMetric {
    pub name: String,
    pub help: String,
    pub kind: MetricKind,
    pub value: MetricValue,
}

/// Server-wide numbers at one instant. Counters are since start or the last `srst`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerSnapshot {
    /// Version string, see [`version_string`].
    pub version: String,
    /// False while electing/syncing/shutting down: most commands then answer
    /// [`ZK_NOT_SERVING`] as ZooKeeper does.
    pub serving: bool,
    pub mode: ServerMode,
    /// ZooKeeper's detailed peer state, e.g. `following - broadcast` (`zk_peer_state`).
    pub peer_state: Option<String>,
    pub latency: LatencyStats,
    /// Packets received/sent on client connections, four-letter words included.
    pub packets_received: u64,
    pub packets_sent: u64,
    pub alive_connections: u64,
    pub outstanding_requests: u64,
    pub last_processed_zxid: u64,
    pub node_count: u64,
    /// All watches (data, child, persistent), as `zk_watch_count`.
    pub watch_count: u64,
    pub ephemerals_count: u64,
    pub approximate_data_size: u64,
    pub global_sessions: u64,
    pub local_sessions: u64,
    pub uptime_ms: u64,
    /// Bytes in the snapshot directory / transaction log directory (`dirs`, `conf`).
    pub data_dir_size: u64,
    pub log_dir_size: u64,
    /// From [`process_fd_counts`] where available.
    pub open_file_descriptor_count: Option<u64>,
    pub max_file_descriptor_count: Option<u64>,
    pub client_response: BufferStats,
    pub auth_failed_count: u64,
    pub fsync_threshold_exceed_count: u64,
    /// fsync durations in ms (`zk_*_fsynctime` in `mntr`), if the storage layer reports them.
    pub fsync: Option<LatencyStats>,
    pub fsync_histogram: Option<Histogram>,
    pub request_latency_histogram: Option<Histogram>,
    /// Voting members in the current config (`zk_quorum_size`), quorum servers only.
    pub quorum_size: Option<u64>,
    /// Present on the leader only.
    pub leader: Option<LeaderStats>,
    /// The client port actually bound (`conf` prints it; matters when configured as 0).
    pub bound_client_port: Option<u16>,
    pub extra: Vec<ExtraMetric>,
}

impl ServerSnapshot {
    pub fn is_read_only(&self) -> bool {
        self.mode == ServerMode::ReadOnly
    }
}

/// One client connection, with ZooKeeper's `cons` JSON field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionInfo {
    pub remote_socket_address: SocketAddr,
    /// Selector interest set as ZooKeeper prints it in `[..]`: 1 = read, 4 = write, 0 = none.
    pub interest_ops: u32,
    pub outstanding_requests: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    /// 0 until the session is established (then the full form is not printed).
    pub session_id: u64,
    /// Last operation, as `cons` names it ([`paddock_proto::OpCode::cons_name`]); `NA` initially.
    pub last_operation: String,
    /// When the connection was accepted, Unix ms.
    pub established: u64,
    /// Negotiated session timeout, ms.
    pub session_timeout: u32,
    /// -1 before the first request.
    pub last_cxid: i64,
    /// -1 before the first response.
    pub last_zxid: i64,
    /// ms timestamp of the last response, 0 = none (ZooKeeper prints its monotonic clock).
    pub last_response_time: u64,
    pub last_latency: u64,
    pub min_latency: u64,
    /// Integer average, as ZooKeeper's `ServerCnxn.getAvgLatency`.
    pub avg_latency: u64,
    pub max_latency: u64,
    /// Unix ms of the connection's expiry bucket (`Connections dump:` of `dump`), if tracked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl ConnectionInfo {
    /// A freshly accepted connection with ZooKeeper's initial values.
    pub fn new(remote: SocketAddr, established_unix_ms: u64) -> Self {
        ConnectionInfo {
            remote_socket_address: remote,
            interest_ops: 1,
            outstanding_requests: 0,
            packets_received: 0,
            packets_sent: 0,
            session_id: 0,
            last_operation: "NA".to_string(),
            established: established_unix_ms,
            session_timeout: 0,
            last_cxid: -1,
            last_zxid: -1,
            last_response_time: 0,
            last_latency: 0,
            min_latency: 0,
            avg_latency: 0,
            max_latency: 0,
            expires_at: None,
        }
    }
}

/// `wchs` numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WatchSummary {
    pub num_connections: u64,
    pub num_paths: u64,
    pub num_total_watches: u64,
}

impl WatchSummary {
    pub fn from_watches(by_session: &BTreeMap<u64, Vec<String>>) -> Self {
        let mut paths = std::collections::BTreeSet::new();
        let mut total = 0;
        let mut conns = 0;
        for list in by_session.values() {
            if !list.is_empty() {
                conns += 1;
            }
            total += list.len() as u64;
            paths.extend(list.iter().map(String::as_str));
        }
        WatchSummary {
            num_connections: conns,
            num_paths: paths.len() as u64,
            num_total_watches: total,
        }
    }
}

/// The session part of `dump`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionDump {
    /// Leader or standalone: sessions by expiry time (Unix ms of the bucket → session ids).
    Expiry { buckets: BTreeMap<u64, Vec<u64>> },
    /// Follower or observer: global sessions with their timeouts in ms.
    Global { sessions: BTreeMap<u64, u32> },
}

impl Default for SessionDump {
    fn default() -> Self {
        SessionDump::Expiry {
            buckets: BTreeMap::new(),
        }
    }
}

/// Data of `dump`: sessions and the ephemeral nodes they own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DumpReport {
    pub sessions: SessionDump,
    /// Session id → ephemeral paths.
    pub ephemerals: BTreeMap<u64, Vec<String>>,
}

/// `role` of `/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Also what a standalone server reports: it alone decides and is always in sync.
    Leader,
    Follower,
    Observer,
    #[default]
    Looking,
    /// Started with `--join`, syncing as a non-voting member before the reconfig.
    Joining,
}

/// One member of the committed configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    pub id: u64,
    pub role: LearnerRole,
    /// The member's `server.N` value as ZooKeeper prints it, e.g.
    /// `zk1:2888:3888:participant;0.0.0.0:2181`.
    pub address: String,
    /// Vote weight (0 for observers).
    pub weight: u64,
}

/// `config` of `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigStatus {
    pub version: u64,
    pub members: Vec<MemberStatus>,
}

impl ConfigStatus {
    /// Members and version of a configuration.
    pub fn from_config(cfg: &ServerConfig) -> Self {
        ConfigStatus {
            version: cfg.config_version,
            members: cfg
                .servers
                .values()
                .map(|s| MemberStatus {
                    id: s.id,
                    role: s.role,
                    address: s.spec(),
                    weight: cfg.member_weight(s.id),
                })
                .collect(),
        }
    }
}

/// One follower or observer as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowerStatus {
    pub id: u64,
    /// Last zxid it acknowledged.
    pub zxid: u64,
    /// Transactions it is behind the leader's last proposed zxid.
    pub lag: u64,
    /// Finished sync with the current leader and acknowledging proposals.
    pub synced: bool,
}

/// `GET /status` (DESIGN §2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    pub myid: u64,
    pub role: Role,
    /// What `srvr` prints as `Mode:`: `standalone` for a server outside any ensemble
    /// (whose role is `leader` of itself), else the role's own name.
    pub mode: ServerMode,
    pub epoch: u64,
    pub zxid: u64,
    #[serde(rename = "lastCommitted")]
    pub last_committed: u64,
    /// Leader: true. Follower/observer: finished sync with the current leader.
    pub synced: bool,
    pub config: ConfigStatus,
    /// On the leader only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub followers: Option<Vec<FollowerStatus>>,
}

impl StatusReport {
    /// `/readyz`: the leader, or a follower/observer that finished sync with it.
    pub fn is_ready(&self) -> bool {
        match self.role {
            Role::Leader => true,
            Role::Follower | Role::Observer => self.synced,
            Role::Looking | Role::Joining => false,
        }
    }
}

/// How the admin module reads from, and acts on, the running server.
///
/// Methods return `Send` futures so the HTTP handlers can run on any runtime thread.
pub trait AdminSource: Send + Sync + 'static {
    /// The effective configuration (with the current membership after a reconfig).
    fn config(&self) -> Arc<ServerConfig>;

    fn snapshot(&self) -> impl Future<Output = ServerSnapshot> + Send;

    /// Client connections, including the one asking (ZooKeeper lists it too).
    fn connections(&self) -> impl Future<Output = Vec<ConnectionInfo>> + Send;

    /// Watches by session id → watched paths (all watch kinds).
    fn watches(&self) -> impl Future<Output = BTreeMap<u64, Vec<String>>> + Send;

    fn dump(&self) -> impl Future<Output = DumpReport> + Send;

    /// `srst`: reset latency, packet and response-size counters (and the leader's proposal
    /// sizes).
    fn reset_stats(&self) -> impl Future<Output = ()> + Send;

    /// `crst`: reset every connection's counters.
    fn reset_connection_stats(&self) -> impl Future<Output = ()> + Send;

    fn status(&self) -> impl Future<Output = StatusReport> + Send;

    /// Hands leadership to `to` (or to the best synced follower); returns the new leader's
    /// id, or why it is refused (a standalone server answers `Err("standalone: no followers")`).
    fn transfer_leadership(
        &self,
        to: Option<u64>,
    ) -> impl Future<Output = Result<u64, String>> + Send;

    /// `wchs`; derived from [`AdminSource::watches`] unless the server counts cheaper.
    fn watch_summary(&self) -> impl Future<Output = WatchSummary> + Send {
        async move { WatchSummary::from_watches(&self.watches().await) }
    }

    /// `/readyz`; derived from [`AdminSource::status`] by default.
    fn is_ready(&self) -> impl Future<Output = bool> + Send {
        async move { self.status().await.is_ready() }
    }

    /// `envi` lines; [`default_environment`] by default.
    fn environment(&self) -> impl Future<Output = Vec<(String, String)>> + Send {
        async move { default_environment(&self.snapshot().await.version) }
    }
}

/// The `envi` list for this process, with ZooKeeper's key names where they apply
/// (`zookeeper.version`, `host.name`, `os.*`, `user.*`); Java-only keys are left out.
pub fn default_environment(version: &str) -> Vec<(String, String)> {
    let na = || "<NA>".to_string();
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let os_name = match std::env::consts::OS {
        "linux" => "Linux".to_string(),
        "macos" => "Mac OS X".to_string(),
        "windows" => "Windows".to_string(),
        other => other.to_string(),
    };
    let os_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64".to_string(),
        other => other.to_string(),
    };
    vec![
        ("zookeeper.version".into(), version.to_string()),
        (
            "host.name".into(),
            read("/proc/sys/kernel/hostname")
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(na),
        ),
        ("os.name".into(), os_name),
        ("os.arch".into(), os_arch),
        (
            "os.version".into(),
            read("/proc/sys/kernel/osrelease").unwrap_or_else(na),
        ),
        (
            "user.name".into(),
            std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| na()),
        ),
        (
            "user.home".into(),
            std::env::var("HOME").unwrap_or_else(|_| na()),
        ),
        (
            "user.dir".into(),
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| na()),
        ),
        ("process.id".into(), std::process::id().to_string()),
    ]
}

/// (open, max) file descriptors of this process from /proc (Linux), for
/// [`ServerSnapshot::open_file_descriptor_count`] and `max_file_descriptor_count`.
pub fn process_fd_counts() -> (Option<u64>, Option<u64>) {
    let open = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    let max = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|soft| soft.parse::<u64>().ok())
        });
    (open, max)
}

#[cfg(test)]
mod tests;
