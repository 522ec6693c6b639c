//! Prometheus text exposition format (version 0.0.4), written by the Prometheus
//! project's own Rust client (`prometheus-client`): it owns the escaping, the `_total`
//! suffix of counters, histogram buckets and the number formats. This module only says
//! which metric has which value; a registry is filled from a snapshot on every scrape,
//! so nothing here keeps state of its own.

use super::fourlw::sanitize_name;
use super::{
    Histogram, LatencyStats, MetricKind, MetricValue, Role, ServerMode, ServerSnapshot,
    StatusReport,
};
use prometheus_client::encoding::{
    EncodeCounterValue, EncodeMetric, MetricEncoder, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// One label set of a family: (name, value) pairs.
type Labels = Vec<(String, String)>;

/// A gauge family with one sample per label set.
#[derive(Debug)]
struct LabelledGauge(Vec<(Labels, i64)>);

impl EncodeMetric for LabelledGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, value) in &self.0 {
            encoder.encode_family(labels)?.encode_gauge(value)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// A histogram as the snapshot has it: counts per upper bound, not cumulative (the
/// encoder accumulates them).
#[derive(Debug)]
struct SnapshotHistogram {
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl SnapshotHistogram {
    /// From the snapshot's cumulative buckets.
    fn from_cumulative(h: &Histogram) -> SnapshotHistogram {
        let mut below = 0;
        let buckets = h
            .buckets
            .iter()
            .map(|&(le, cumulative)| {
                let n = cumulative.saturating_sub(below);
                below = below.max(cumulative);
                (le, n)
            })
            .collect();
        SnapshotHistogram {
            buckets,
            sum: h.sum_seconds,
            count: h.count,
        }
    }

    /// Only totals are known (milliseconds): a histogram with the `+Inf` bucket alone,
    /// whose `_sum` and `_count` are all a rate needs.
    fn from_totals(l: &LatencyStats) -> SnapshotHistogram {
        SnapshotHistogram {
            buckets: Vec::new(),
            sum: l.total_ms as f64 / 1000.0,
            count: l.count,
        }
    }
}

impl EncodeMetric for SnapshotHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Fills a registry. Help texts are written as sentences; the registry adds the final
/// full stop itself, so it is taken off here.
struct Writer {
    registry: Registry,
}

fn help_text(help: &str) -> &str {
    help.strip_suffix('.').unwrap_or(help)
}

impl Writer {
    fn gauge(&mut self, name: &str, help: &str, value: i64) {
        self.registry
            .register(name, help_text(help), ConstGauge::new(value));
    }

    fn gauge_f64(&mut self, name: &str, help: &str, value: f64) {
        self.registry
            .register(name, help_text(help), ConstGauge::new(value));
    }

    fn labelled(&mut self, name: &str, help: &str, samples: Vec<(Labels, i64)>) {
        self.registry
            .register(name, help_text(help), LabelledGauge(samples));
    }

    /// `name` without `_total`: the encoder appends it.
    fn counter<N>(&mut self, name: &str, help: &str, value: N)
    where
        N: EncodeCounterValue + Send + Sync + std::fmt::Debug + 'static,
    {
        let name = name.strip_suffix("_total").unwrap_or(name);
        self.registry
            .register(name, help_text(help), ConstCounter::new(value));
    }

    fn histogram(&mut self, name: &str, help: &str, h: SnapshotHistogram) {
        self.registry.register(name, help_text(help), h);
    }
}

fn label(key: &str, value: impl ToString) -> (String, String) {
    (key.to_string(), value.to_string())
}

/// Saturates instead of wrapping (a u64 beyond i64::MAX is not a real count).
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn b(v: bool) -> i64 {
    i64::from(v)
}

/// Renders the server's metrics; names are prefixed `paddock_`, times are in seconds and
/// sizes in bytes.
pub fn render_prometheus(snap: &ServerSnapshot, status: &StatusReport) -> String {
    let mut w = Writer {
        registry: Registry::default(),
    };
    write_identity(&mut w, snap, status);
    write_contents(&mut w, snap);
    write_latencies(&mut w, snap);
    write_process(&mut w, snap);
    write_quorum(&mut w, snap, status);
    write_extra(&mut w, snap);
    let mut out = String::new();
    // Writing to a String cannot fail; an error would leave a partial page, which a
    // scraper rejects as a whole.
    if let Err(e) = prometheus_text::encode(&mut out, &w.registry) {
        tracing::error!(error = %e, "cannot render the metrics");
    }
    out
}

/// Who the server is and where it stands: version, mode, role, ids, zxids, config.
fn write_identity(w: &mut Writer, snap: &ServerSnapshot, status: &StatusReport) {
    w.labelled(
        "paddock_info",
        "Server version and mode.",
        vec![(
            vec![
                label("version", &snap.version),
                label("mode", snap.mode.as_str()),
            ],
            1,
        )],
    );
    let states = [
        ServerMode::Standalone,
        ServerMode::Leader,
        ServerMode::Follower,
        ServerMode::Observer,
        ServerMode::ReadOnly,
        ServerMode::Looking,
    ]
    .into_iter()
    .map(|mode| (vec![label("state", mode.as_str())], b(snap.mode == mode)))
    .collect();
    w.labelled(
        "paddock_server_state",
        "1 for the state the server is in (ZooKeeper's server_state).",
        states,
    );
    w.gauge(
        "paddock_is_leader",
        "1 when this server leads the ensemble (or runs standalone).",
        b(status.role == Role::Leader),
    );
    w.gauge(
        "paddock_serving",
        "1 when the server serves client requests.",
        b(snap.serving),
    );
    w.gauge(
        "paddock_ready",
        "1 when the server is the leader or a synced follower/observer (/readyz).",
        b(status.is_ready()),
    );
    w.gauge("paddock_myid", "This server's id.", int(status.myid));
    w.gauge("paddock_epoch", "Current epoch.", int(status.epoch));
    w.gauge(
        "paddock_last_zxid",
        "Last processed zxid (epoch << 32 | counter).",
        int(snap.last_processed_zxid),
    );
    w.gauge(
        "paddock_last_zxid_counter",
        "Counter part (low 32 bits) of the last processed zxid.",
        int(snap.last_processed_zxid & 0xffff_ffff),
    );
    w.gauge(
        "paddock_last_committed_zxid",
        "Last committed zxid.",
        int(status.last_committed),
    );
    w.gauge(
        "paddock_config_version",
        "Version of the committed ensemble configuration.",
        int(status.config.version),
    );
}

/// What the server holds and serves: znodes, watches, connections, sessions, packets.
fn write_contents(w: &mut Writer, snap: &ServerSnapshot) {
    w.gauge(
        "paddock_znode_count",
        "Number of znodes.",
        int(snap.node_count),
    );
    w.gauge(
        "paddock_watch_count",
        "Number of watches.",
        int(snap.watch_count),
    );
    w.gauge(
        "paddock_ephemerals_count",
        "Number of ephemeral znodes.",
        int(snap.ephemerals_count),
    );
    w.gauge(
        "paddock_approximate_data_size_bytes",
        "Approximate size of znode paths and data.",
        int(snap.approximate_data_size),
    );
    w.gauge(
        "paddock_alive_connections",
        "Open client connections.",
        int(snap.alive_connections),
    );
    w.gauge(
        "paddock_outstanding_requests",
        "Requests received and not yet answered.",
        int(snap.outstanding_requests),
    );
    w.gauge(
        "paddock_global_sessions",
        "Global sessions.",
        int(snap.global_sessions),
    );
    w.gauge(
        "paddock_local_sessions",
        "Local sessions.",
        int(snap.local_sessions),
    );
    w.counter(
        "paddock_packets_received_total",
        "Packets received from clients.",
        snap.packets_received,
    );
    w.counter(
        "paddock_packets_sent_total",
        "Packets sent to clients.",
        snap.packets_sent,
    );
}

/// Request and fsync latencies, and the failures counted beside them.
fn write_latencies(w: &mut Writer, snap: &ServerSnapshot) {
    let latency = match &snap.request_latency_histogram {
        Some(h) => SnapshotHistogram::from_cumulative(h),
        None => SnapshotHistogram::from_totals(&snap.latency),
    };
    w.histogram(
        "paddock_request_latency_seconds",
        "Client request latency, from a request's arrival to its reply (pings left out).",
        latency,
    );
    w.gauge_f64(
        "paddock_request_latency_min_seconds",
        "Smallest request latency since the last stat reset.",
        snap.latency.min() as f64 / 1000.0,
    );
    w.gauge_f64(
        "paddock_request_latency_max_seconds",
        "Largest request latency since the last stat reset.",
        snap.latency.max_ms as f64 / 1000.0,
    );
    let fsync = match (&snap.fsync_histogram, &snap.fsync) {
        (Some(h), _) => Some(SnapshotHistogram::from_cumulative(h)),
        (None, Some(f)) => Some(SnapshotHistogram::from_totals(f)),
        (None, None) => None,
    };
    if let Some(h) = fsync {
        w.histogram(
            "paddock_fsync_seconds",
            "Time a group commit takes to make its transaction log records durable (one direct synchronous write, or a write and fdatasync).",
            h,
        );
    }
    w.counter(
        "paddock_fsync_threshold_exceeded_total",
        "fsyncs slower than fsync.warningthresholdms.",
        snap.fsync_threshold_exceed_count,
    );
    w.counter(
        "paddock_auth_failed_total",
        "Failed authentications.",
        snap.auth_failed_count,
    );
}

/// The process and its directories: uptime, dir sizes, file descriptors.
fn write_process(w: &mut Writer, snap: &ServerSnapshot) {
    w.gauge_f64(
        "paddock_uptime_seconds",
        "Time since the server started.",
        snap.uptime_ms as f64 / 1000.0,
    );
    w.gauge(
        "paddock_data_dir_size_bytes",
        "Bytes in the snapshot directory.",
        int(snap.data_dir_size),
    );
    w.gauge(
        "paddock_log_dir_size_bytes",
        "Bytes in the transaction log directory.",
        int(snap.log_dir_size),
    );
    if let Some(open) = snap.open_file_descriptor_count {
        w.gauge(
            "paddock_open_file_descriptors",
            "Open file descriptors.",
            int(open),
        );
    }
    if let Some(max) = snap.max_file_descriptor_count {
        w.gauge(
            "paddock_max_file_descriptors",
            "File descriptor limit.",
            int(max),
        );
    }
}

/// The ensemble as this server sees it: quorum size, learners, each follower.
fn write_quorum(w: &mut Writer, snap: &ServerSnapshot, status: &StatusReport) {
    if let Some(q) = snap.quorum_size {
        w.gauge("paddock_quorum_size", "Voting members.", int(q));
    }
    if let Some(l) = &snap.leader {
        w.gauge("paddock_learners", "Connected learners.", int(l.learners));
        w.gauge(
            "paddock_synced_followers",
            "Synced voting followers.",
            int(l.synced_followers),
        );
        w.gauge(
            "paddock_synced_non_voting_followers",
            "Synced non-voting followers.",
            int(l.synced_non_voting_followers),
        );
        w.gauge(
            "paddock_synced_observers",
            "Synced observers.",
            int(l.synced_observers),
        );
        w.gauge(
            "paddock_pending_syncs",
            "Pending sync requests.",
            int(l.pending_syncs),
        );
    }
    let followers = status.followers.as_deref().unwrap_or(&[]);
    if !followers.is_empty() {
        let per_follower = |value: fn(&super::FollowerStatus) -> i64| {
            followers
                .iter()
                .map(|f| (vec![label("id", f.id)], value(f)))
                .collect()
        };
        w.labelled(
            "paddock_follower_lag",
            "Transactions a follower is behind the leader.",
            per_follower(|f| int(f.lag)),
        );
        w.labelled(
            "paddock_follower_synced",
            "1 when the follower finished sync with the leader.",
            per_follower(|f| b(f.synced)),
        );
    }
}

/// Metrics registered by other parts of the server, under their own names.
fn write_extra(w: &mut Writer, snap: &ServerSnapshot) {
    for m in &snap.extra {
        let name = format!("paddock_{}", sanitize_name(&m.name));
        let help = if m.help.is_empty() {
            m.name.as_str()
        } else {
            m.help.as_str()
        };
        match (m.kind, m.value) {
            (MetricKind::Gauge, MetricValue::Int(v)) => w.gauge(&name, help, v),
            (MetricKind::Gauge, MetricValue::Float(v)) => w.gauge_f64(&name, help, v),
            (MetricKind::Counter, MetricValue::Int(v)) => {
                w.counter(&name, help, u64::try_from(v).unwrap_or(0))
            }
            (MetricKind::Counter, MetricValue::Float(v)) => w.counter(&name, help, v),
        }
    }
}
