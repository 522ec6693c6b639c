//! The running server as an [`AdminSource`]: every question is answered on the core
//! thread (a [`CoreMsg::Query`]), so the numbers are one consistent instant and the admin
//! port never takes a lock the request path needs.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

use super::{
    AdminSource, ConfigStatus, ConnectionInfo, DumpReport, FollowerStatus, LatencyStats,
    LeaderStats, MemberStatus, Role, ServerMode, ServerSnapshot, SessionDump, StatusReport,
    four_letter_word, process_fd_counts, version_string,
};
use crate::config::ServerConfig;
use crate::core::{Core, CoreMsg, InternalTx};
use crate::net::client::FourLetterWords;
use crate::net::latency::LatencyHistogram;
use crate::zab::Role as ZabRole;

/// Admin access to a running standalone server.
pub struct CoreAdmin {
    internal: InternalTx,
    config: Arc<ServerConfig>,
    client_addr: SocketAddr,
    started: Instant,
    /// Request latencies observed on the client port.
    latency: Arc<LatencyHistogram>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

impl CoreAdmin {
    pub fn new(
        internal: InternalTx,
        config: ServerConfig,
        client_addr: SocketAddr,
        latency: Arc<LatencyHistogram>,
    ) -> CoreAdmin {
        CoreAdmin {
            internal,
            config: Arc::new(config),
            client_addr,
            started: Instant::now(),
            latency,
        }
    }

    /// Runs `f` on the core thread; `None` if the core has stopped.
    async fn ask<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.internal
            .send(CoreMsg::Query(Box::new(move |core| {
                let _ = tx.send(f(core));
            })))
            .ok()?;
        rx.await.ok()
    }
}

impl AdminSource for CoreAdmin {
    fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    async fn snapshot(&self) -> ServerSnapshot {
        let uptime_ms = self.started.elapsed().as_millis() as u64;
        let mut snap = self
            .ask(|core| {
                let s = core.stats();
                let mode = mode_of(core);
                let quorum_size = core
                    .is_distributed()
                    .then(|| core.zab().membership().verifier.voters().len() as u64);
                let leader = (mode == ServerMode::Leader).then(|| {
                    let learners = core.zab().learner_report();
                    LeaderStats {
                        learners: learners.len() as u64,
                        synced_followers: learners
                            .iter()
                            .filter(|(_, _, synced, observer)| *synced && !*observer)
                            .count() as u64,
                        synced_observers: learners
                            .iter()
                            .filter(|(_, _, synced, observer)| *synced && *observer)
                            .count() as u64,
                        ..LeaderStats::default()
                    }
                });
                let mut snap = ServerSnapshot {
                    // Read-only mode serves (isro says ro); /readyz stays not ready.
                    serving: core.role().is_serving() || core.is_read_only(),
                    mode,
                    quorum_size,
                    leader,
                    latency: LatencyStats {
                        min_ms: s.min_latency_ms,
                        max_ms: s.max_latency_ms,
                        total_ms: s.total_latency_ms,
                        count: s.requests_completed,
                    },
                    packets_received: s.packets_received,
                    packets_sent: s.packets_sent,
                    alive_connections: core.connections().len() as u64,
                    outstanding_requests: core.outstanding_requests() as u64,
                    last_processed_zxid: core.tree().last_zxid() as u64,
                    node_count: core.tree().node_count() as u64,
                    watch_count: core.watches().count() as u64,
                    ephemerals_count: core.tree().ephemeral_count() as u64,
                    approximate_data_size: core.tree().approximate_data_size(),
                    global_sessions: core.live_sessions() as u64,
                    ..ServerSnapshot::default()
                };
                if let Some((disk, times)) = core.disk_stats() {
                    snap.fsync_threshold_exceed_count = disk.slow_syncs;
                    snap.fsync = Some(LatencyStats {
                        min_ms: times.min_ms,
                        max_ms: times.max_ms,
                        total_ms: (times.histogram.sum_seconds * 1000.0).round() as u64,
                        count: times.histogram.count,
                    });
                    snap.fsync_histogram = Some(times.histogram);
                }
                snap
            })
            .await
            .unwrap_or_default();
        snap.version = version_string(env!("CARGO_PKG_VERSION"), None);
        snap.uptime_ms = uptime_ms;
        snap.data_dir_size = dir_size(&self.config.snap_dir());
        snap.log_dir_size = dir_size(&self.config.txn_log_dir());
        let (open, max) = process_fd_counts();
        snap.open_file_descriptor_count = open;
        snap.max_file_descriptor_count = max;
        snap.bound_client_port = Some(self.client_addr.port());
        snap.request_latency_histogram = Some(self.latency.snapshot());
        snap
    }

    async fn connections(&self) -> Vec<ConnectionInfo> {
        let port = self.client_addr.port();
        self.ask(move |core| {
            core.connections()
                .into_iter()
                .map(|c| {
                    let mut info =
                        ConnectionInfo::new(SocketAddr::new(c.addr, port), unix_ms(c.connected_at));
                    info.outstanding_requests = c.queued as u64;
                    info.packets_received = c.received;
                    info.packets_sent = c.sent;
                    info.session_id = c.session.unwrap_or(0) as u64;
                    info.last_operation = c.last_op.cons_name().to_string();
                    info.session_timeout = c.timeout_ms.max(0) as u32;
                    info.last_zxid = c.last_zxid;
                    info.last_latency = c.last_latency_ms;
                    info.min_latency = c.min_latency_ms;
                    info.avg_latency = c.avg_latency_ms;
                    info.max_latency = c.max_latency_ms;
                    info
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    async fn watches(&self) -> BTreeMap<u64, Vec<String>> {
        self.ask(|core| core.watches_by_session())
            .await
            .unwrap_or_default()
    }

    async fn dump(&self) -> DumpReport {
        self.ask(|core| {
            let now_wall = unix_ms(SystemTime::now());
            let mut buckets: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            for (deadline_in_ms, session) in core.session_deadlines() {
                buckets
                    .entry(now_wall + deadline_in_ms)
                    .or_default()
                    .push(session as u64);
            }
            let ephemerals = core
                .tree()
                .ephemerals_by_session()
                .iter()
                .map(|(s, paths)| (*s as u64, paths.iter().cloned().collect()))
                .collect();
            DumpReport {
                sessions: SessionDump::Expiry { buckets },
                ephemerals,
            }
        })
        .await
        .unwrap_or_default()
    }

    async fn reset_stats(&self) -> () {
        self.ask(|core| core.reset_stats()).await;
    }

    async fn reset_connection_stats(&self) -> () {
        self.ask(|core| core.reset_connection_stats()).await;
    }

    async fn status(&self) -> StatusReport {
        let standalone_config = ConfigStatus::from_config(&self.config);
        let myid = self.config.server_id();
        self.ask(move |core| {
            let zab = core.zab();
            let zxid = zab.last_logged() as u64;
            let ensemble = core.ensemble();
            let member = ensemble.servers.contains_key(&myid);
            let role = match core.role() {
                ZabRole::Leader => Role::Leader,
                ZabRole::Follower { .. } => Role::Follower,
                // Syncing without being in the config: a --join server awaiting its reconfig.
                ZabRole::Observer { .. } if !member && core.is_distributed() => Role::Joining,
                ZabRole::Observer { .. } => Role::Observer,
                ZabRole::LeaderElect | ZabRole::Looking => Role::Looking,
            };
            let config = if core.is_distributed() {
                ConfigStatus {
                    version: ensemble.version,
                    members: ensemble
                        .servers
                        .values()
                        .map(|s| MemberStatus {
                            id: s.id,
                            role: s.role,
                            address: s.spec(),
                            weight: ensemble.weight(s.id),
                        })
                        .collect(),
                }
            } else {
                standalone_config
            };
            let followers = (role == Role::Leader).then(|| {
                zab.learner_report()
                    .into_iter()
                    .map(|(id, acked, synced, _observer)| FollowerStatus {
                        id,
                        zxid: acked as u64,
                        lag: zxid.saturating_sub(acked as u64),
                        synced,
                    })
                    .collect()
            });
            StatusReport {
                myid,
                role,
                mode: mode_of(core),
                epoch: zab.current_epoch() as u64,
                zxid,
                last_committed: zab.last_committed() as u64,
                synced: core.role().is_serving(),
                config,
                followers,
            }
        })
        .await
        .unwrap_or_default()
    }

    async fn transfer_leadership(&self, to: Option<u64>) -> Result<u64, String> {
        self.ask(move |core| core.transfer_leadership(to))
            .await
            .unwrap_or_else(|| Err("the server is stopping".to_string()))
    }
}

impl FourLetterWords for CoreAdmin {
    fn answer(&self, word: &'static str) -> Pin<Box<dyn Future<Output = String> + Send + '_>> {
        Box::pin(async move {
            four_letter_word(word, &self.config.four_letter_words, self)
                .await
                .unwrap_or_default()
        })
    }
}

/// What `srvr` says as `Mode:` (and `/status` as `mode`): the replication role, or
/// read-only while the server serves read-only clients (ZAB is looking meanwhile).
fn mode_of(core: &Core) -> ServerMode {
    if core.is_read_only() {
        return ServerMode::ReadOnly;
    }
    let distributed = core.is_distributed();
    match core.role() {
        ZabRole::Leader if !distributed => ServerMode::Standalone,
        ZabRole::Leader => ServerMode::Leader,
        ZabRole::Follower { .. } => ServerMode::Follower,
        ZabRole::Observer { .. } => ServerMode::Observer,
        ZabRole::LeaderElect | ZabRole::Looking => ServerMode::Looking,
    }
}
