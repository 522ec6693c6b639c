//! Prometheus metrics at `/metrics`, kept and rendered by prometheus-client (the
//! Prometheus project's Rust client) in the text exposition format 0.0.4.
//!
//! Names are those the sidecar has always exposed; counters are registered without
//! their `_total` suffix because the library adds it.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::link::Link;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Histogram bucket bounds, in seconds.
const LOCK_WAIT_BUCKETS: [f64; 10] = [0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0];
const LAG_BUCKETS: [f64; 9] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CandidateLabels {
    election: String,
    id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    election: String,
    change: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: u16,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    session_state: Family<StateLabel, Gauge>,
    sessions_established: Counter,
    sessions_expired: Counter,
    leader: Family<CandidateLabels, Gauge>,
    leadership_changes: Family<ChangeLabels, Counter>,
    lock_acquires: Family<OutcomeLabel, Counter>,
    locks_lost: Counter,
    locks_expired: Counter,
    lock_waiters: Gauge,
    lock_wait: Histogram,
    watch_lag: Histogram,
    sse_streams: Gauge,
    blocking_reads: Gauge,
    renders: Counter,
    render_failures: Counter,
    requests: Family<CodeLabel, Counter>,
}

const LINKS: [Link; 5] = [
    Link::Connecting,
    Link::Connected,
    Link::Suspended,
    Link::Expired,
    Link::Closed,
];

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            session_state: Family::default(),
            sessions_established: Counter::default(),
            sessions_expired: Counter::default(),
            leader: Family::default(),
            leadership_changes: Family::default(),
            lock_acquires: Family::default(),
            locks_lost: Counter::default(),
            locks_expired: Counter::default(),
            lock_waiters: Gauge::default(),
            lock_wait: Histogram::new(LOCK_WAIT_BUCKETS),
            watch_lag: Histogram::new(LAG_BUCKETS),
            sse_streams: Gauge::default(),
            blocking_reads: Gauge::default(),
            renders: Counter::default(),
            render_failures: Counter::default(),
            requests: Family::default(),
        };
        m.register();
        m.set_link(Link::Connecting);
        m
    }
}

impl Metrics {
    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "paddock_sidecar_session_state",
            "Session state (1 for the current one)",
            self.session_state.clone(),
        );
        r.register(
            "paddock_sidecar_sessions_established",
            "Sessions established with the ensemble",
            self.sessions_established.clone(),
        );
        r.register(
            "paddock_sidecar_sessions_expired",
            "Sessions that expired (every election, membership and lock of it was lost)",
            self.sessions_expired.clone(),
        );
        r.register(
            "paddock_sidecar_leader",
            "Whether this sidecar's candidate leads (1) or not (0)",
            self.leader.clone(),
        );
        r.register(
            "paddock_sidecar_leadership_changes",
            "Leadership acquired or lost by this sidecar's candidates",
            self.leadership_changes.clone(),
        );
        r.register(
            "paddock_sidecar_lock_acquires",
            "Lock acquisitions by outcome",
            self.lock_acquires.clone(),
        );
        r.register(
            "paddock_sidecar_locks_lost",
            "Granted locks lost with their session",
            self.locks_lost.clone(),
        );
        r.register(
            "paddock_sidecar_locks_expired",
            "Granted locks released because their TTL passed without a renewal",
            self.locks_expired.clone(),
        );
        r.register(
            "paddock_sidecar_lock_waiters",
            "Lock acquires waiting for their turn now",
            self.lock_waiters.clone(),
        );
        r.register(
            "paddock_sidecar_lock_wait_seconds",
            "Time spent waiting for locks",
            self.lock_wait.clone(),
        );
        r.register(
            "paddock_sidecar_watch_lag_seconds",
            "From a change's watch event to its delivery (event streams, rendered files)",
            self.watch_lag.clone(),
        );
        r.register(
            "paddock_sidecar_event_streams",
            "Open SSE streams",
            self.sse_streams.clone(),
        );
        r.register(
            "paddock_sidecar_blocking_reads",
            "Blocking reads (index/wait) parked until their resource changes",
            self.blocking_reads.clone(),
        );
        r.register(
            "paddock_sidecar_renders",
            "Files rendered (--render)",
            self.renders.clone(),
        );
        r.register(
            "paddock_sidecar_render_failures",
            "Files that could not be written (--render)",
            self.render_failures.clone(),
        );
        r.register(
            "paddock_sidecar_http_requests",
            "HTTP requests by status",
            self.requests.clone(),
        );
    }

    pub fn set_link(&self, link: Link) {
        for l in LINKS {
            self.session_state
                .get_or_create(&StateLabel { state: l.name() })
                .set(i64::from(l == link));
        }
    }

    pub fn session_established(&self) {
        self.sessions_established.inc();
    }

    pub fn session_expired(&self) {
        self.sessions_expired.inc();
    }

    /// Records whether (election, id) leads; counts the change if it is one.
    pub fn set_leader(&self, election: &str, id: &str, leads: bool) {
        let labels = CandidateLabels {
            election: election.to_string(),
            id: id.to_string(),
        };
        let before = self.leader.get_or_create(&labels).set(i64::from(leads));
        if (before == 1) != leads {
            let change = if leads { "acquired" } else { "lost" };
            self.leadership_changes
                .get_or_create(&ChangeLabels {
                    election: election.to_string(),
                    change,
                })
                .inc();
        }
    }

    pub fn forget_candidate(&self, election: &str, id: &str) {
        self.set_leader(election, id, false);
        self.leader.remove(&CandidateLabels {
            election: election.to_string(),
            id: id.to_string(),
        });
    }

    pub fn lock_outcome(&self, outcome: &'static str, waited: Duration) {
        self.lock_acquires
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        self.lock_wait.observe(waited.as_secs_f64());
    }

    pub fn lock_lost(&self) {
        self.locks_lost.inc();
    }

    pub fn lock_expired(&self) {
        self.locks_expired.inc();
    }

    /// Counts a waiting lock acquire for as long as the returned guard lives.
    pub fn lock_waiter(&self) -> Parked {
        Parked::new(&self.lock_waiters)
    }

    /// Counts a parked blocking read for as long as the returned guard lives.
    pub fn blocking_read(&self) -> Parked {
        Parked::new(&self.blocking_reads)
    }

    pub fn watch_lag(&self, lag: Duration) {
        self.watch_lag.observe(lag.as_secs_f64());
    }

    pub fn sse_opened(&self) {
        self.sse_streams.inc();
    }

    pub fn sse_closed(&self) {
        self.sse_streams.dec();
    }

    pub fn rendered(&self, ok: bool) {
        if ok {
            self.renders.inc();
        } else {
            self.render_failures.inc();
        }
    }

    pub fn request(&self, status: u16) {
        self.requests
            .get_or_create(&CodeLabel { code: status })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(error = %e, "cannot render the metrics");
        }
        out
    }
}

/// A gauge held one higher while this lives (a parked reader, a waiting acquire), so
/// that tests and dashboards can see who waits.
pub struct Parked(Gauge);

impl Parked {
    fn new(gauge: &Gauge) -> Parked {
        gauge.inc();
        Parked(gauge.clone())
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_exposition_format() {
        let m = Metrics::default();
        m.set_link(Link::Connected);
        m.set_leader("e\"1", "pod-0", true);
        m.set_leader("e\"1", "pod-0", false);
        m.lock_outcome("acquired", Duration::from_millis(20));
        m.watch_lag(Duration::from_millis(2));
        m.request(200);
        let parked = m.blocking_read();
        let text = m.render();
        assert!(text.contains("paddock_sidecar_session_state{state=\"connected\"} 1"));
        assert!(text.contains("paddock_sidecar_session_state{state=\"suspended\"} 0"));
        assert!(text.contains(
            "paddock_sidecar_leadership_changes_total{election=\"e\\\"1\",change=\"acquired\"} 1"
        ), "{text}");
        assert!(text.contains(
            "paddock_sidecar_leadership_changes_total{election=\"e\\\"1\",change=\"lost\"} 1"
        ));
        assert!(text.contains("paddock_sidecar_lock_wait_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("paddock_sidecar_lock_wait_seconds_count 1"));
        assert!(text.contains("paddock_sidecar_http_requests_total{code=\"200\"} 1"));
        assert!(text.contains("paddock_sidecar_blocking_reads 1"));
        assert!(text.contains("# TYPE paddock_sidecar_lock_wait_seconds histogram"));
        drop(parked);
        assert!(m.render().contains("paddock_sidecar_blocking_reads 0"));
    }
}
