//! Prometheus text exposition format (version 0.0.4).

use super::fourlw::sanitize_name;
use super::{Histogram, LatencyStats, MetricKind, Role, ServerMode, ServerSnapshot, StatusReport};
use std::fmt::Write as _;

pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Writer {
    out: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn counter(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (le, count) in &h.buckets {
            self.sample(&bucket, &[("le", &number(*le))], *count as f64);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count as f64);
        self.sample(&format!("{name}_sum"), &[], h.sum_seconds);
        self.sample(&format!("{name}_count"), &[], h.count as f64);
    }

    /// A summary without quantiles, from ms statistics.
    fn summary_ms(&mut self, name: &str, help: &str, l: &LatencyStats) {
        self.family(name, "summary", help);
        self.sample(&format!("{name}_sum"), &[], l.total_ms as f64 / 1000.0);
        self.sample(&format!("{name}_count"), &[], l.count as f64);
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

fn b(v: bool) -> f64 {
    if v { 1.0 } else { 0.0 }
}

/// Renders the server's metrics; names are prefixed `paddock_`, times are in seconds and
/// sizes in bytes.
pub fn render_prometheus(snap: &ServerSnapshot, status: &StatusReport) -> String {
    let mut w = Writer { out: String::new() };
    w.family("paddock_info", "gauge", "Server version and mode.");
    w.sample(
        "paddock_info",
        &[("version", &snap.version), ("mode", snap.mode.as_str())],
        1.0,
    );
    w.family(
        "paddock_server_state",
        "gauge",
        "1 for the state the server is in (ZooKeeper's server_state).",
    );
    for mode in [
        ServerMode::Standalone,
        ServerMode::Leader,
        ServerMode::Follower,
        ServerMode::Observer,
        ServerMode::ReadOnly,
        ServerMode::Looking,
    ] {
        w.sample(
            "paddock_server_state",
            &[("state", mode.as_str())],
            b(snap.mode == mode),
        );
    }
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
    w.gauge("paddock_myid", "This server's id.", status.myid as f64);
    w.gauge("paddock_epoch", "Current epoch.", status.epoch as f64);
    w.gauge(
        "paddock_last_zxid",
        "Last processed zxid (epoch << 32 | counter).",
        snap.last_processed_zxid as f64,
    );
    w.gauge(
        "paddock_last_zxid_counter",
        "Counter part (low 32 bits) of the last processed zxid.",
        (snap.last_processed_zxid & 0xffff_ffff) as f64,
    );
    w.gauge(
        "paddock_last_committed_zxid",
        "Last committed zxid.",
        status.last_committed as f64,
    );
    w.gauge(
        "paddock_config_version",
        "Version of the committed ensemble configuration.",
        status.config.version as f64,
    );
    w.gauge(
        "paddock_znode_count",
        "Number of znodes.",
        snap.node_count as f64,
    );
    w.gauge(
        "paddock_watch_count",
        "Number of watches.",
        snap.watch_count as f64,
    );
    w.gauge(
        "paddock_ephemerals_count",
        "Number of ephemeral znodes.",
        snap.ephemerals_count as f64,
    );
    w.gauge(
        "paddock_approximate_data_size_bytes",
        "Approximate size of znode paths and data.",
        snap.approximate_data_size as f64,
    );
    w.gauge(
        "paddock_alive_connections",
        "Open client connections.",
        snap.alive_connections as f64,
    );
    w.gauge(
        "paddock_outstanding_requests",
        "Requests received and not yet answered.",
        snap.outstanding_requests as f64,
    );
    w.gauge(
        "paddock_global_sessions",
        "Global sessions.",
        snap.global_sessions as f64,
    );
    w.gauge(
        "paddock_local_sessions",
        "Local sessions.",
        snap.local_sessions as f64,
    );
    w.counter(
        "paddock_packets_received_total",
        "Packets received from clients.",
        snap.packets_received as f64,
    );
    w.counter(
        "paddock_packets_sent_total",
        "Packets sent to clients.",
        snap.packets_sent as f64,
    );
    match &snap.request_latency_histogram {
        Some(h) => w.histogram(
            "paddock_request_latency_seconds",
            "Client request latency.",
            h,
        ),
        None => w.summary_ms(
            "paddock_request_latency_seconds",
            "Client request latency since the last stat reset.",
            &snap.latency,
        ),
    }
    w.gauge(
        "paddock_request_latency_min_seconds",
        "Smallest request latency since the last stat reset.",
        snap.latency.min() as f64 / 1000.0,
    );
    w.gauge(
        "paddock_request_latency_max_seconds",
        "Largest request latency since the last stat reset.",
        snap.latency.max_ms as f64 / 1000.0,
    );
    if let Some(h) = &snap.fsync_histogram {
        w.histogram(
            "paddock_fsync_seconds",
            "Time to fsync the transaction log.",
            h,
        );
    } else if let Some(f) = &snap.fsync {
        w.summary_ms(
            "paddock_fsync_seconds",
            "Time to fsync the transaction log.",
            f,
        );
    }
    w.counter(
        "paddock_fsync_threshold_exceeded_total",
        "fsyncs slower than fsync.warningthresholdms.",
        snap.fsync_threshold_exceed_count as f64,
    );
    w.counter(
        "paddock_auth_failed_total",
        "Failed authentications.",
        snap.auth_failed_count as f64,
    );
    w.gauge(
        "paddock_uptime_seconds",
        "Time since the server started.",
        snap.uptime_ms as f64 / 1000.0,
    );
    w.gauge(
        "paddock_data_dir_size_bytes",
        "Bytes in the snapshot directory.",
        snap.data_dir_size as f64,
    );
    w.gauge(
        "paddock_log_dir_size_bytes",
        "Bytes in the transaction log directory.",
        snap.log_dir_size as f64,
    );
    if let Some(open) = snap.open_file_descriptor_count {
        w.gauge(
            "paddock_open_file_descriptors",
            "Open file descriptors.",
            open as f64,
        );
    }
    if let Some(max) = snap.max_file_descriptor_count {
        w.gauge(
            "paddock_max_file_descriptors",
            "File descriptor limit.",
            max as f64,
        );
    }
    if let Some(q) = snap.quorum_size {
        w.gauge("paddock_quorum_size", "Voting members.", q as f64);
    }
    if let Some(l) = &snap.leader {
        w.gauge("paddock_learners", "Connected learners.", l.learners as f64);
        w.gauge(
            "paddock_synced_followers",
            "Synced voting followers.",
            l.synced_followers as f64,
        );
        w.gauge(
            "paddock_synced_non_voting_followers",
            "Synced non-voting followers.",
            l.synced_non_voting_followers as f64,
        );
        w.gauge(
            "paddock_synced_observers",
            "Synced observers.",
            l.synced_observers as f64,
        );
        w.gauge(
            "paddock_pending_syncs",
            "Pending sync requests.",
            l.pending_syncs as f64,
        );
    }
    let followers = status.followers.as_deref().unwrap_or(&[]);
    if !followers.is_empty() {
        w.family(
            "paddock_follower_lag",
            "gauge",
            "Transactions a follower is behind the leader.",
        );
        for f in followers {
            w.sample(
                "paddock_follower_lag",
                &[("id", &f.id.to_string())],
                f.lag as f64,
            );
        }
        w.family(
            "paddock_follower_synced",
            "gauge",
            "1 when the follower finished sync with the leader.",
        );
        for f in followers {
            w.sample(
                "paddock_follower_synced",
                &[("id", &f.id.to_string())],
                b(f.synced),
            );
        }
    }
    for m in &snap.extra {
        let name = format!("paddock_{}", sanitize_name(&m.name));
        let help = if m.help.is_empty() {
            m.name.as_str()
        } else {
            m.help.as_str()
        };
        match m.kind {
            MetricKind::Gauge => w.gauge(&name, help, m.value.as_f64()),
            MetricKind::Counter if name.ends_with("_total") => {
                w.counter(&name, help, m.value.as_f64())
            }
            MetricKind::Counter => w.counter(&format!("{name}_total"), help, m.value.as_f64()),
        }
    }
    w.out
}
