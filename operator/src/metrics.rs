//! The operator's own metrics and health, served on a port of their own (`--metrics-address`):
//! `/metrics` (Prometheus text), `/healthz` (the process serves) and `/readyz` (standing by
//! for the Lease, or leading with its caches synced).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use paddock_httpserve::HttpLimits;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

/// Counters and gauges of the reconciler.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    reconciles: u64,
    errors: u64,
    actions: BTreeMap<&'static str, u64>,
    /// Per ensemble (`namespace/name`): when its synced quorum was last seen, or when the
    /// operator first saw the ensemble if never.
    last_healthy: BTreeMap<String, Instant>,
    /// Leadership transfers asked of a leader, from the request to the new leader's answer.
    transfers: TransferHistogram,
}

/// Upper bounds (seconds) of the transfer histogram's buckets: a planned restart should
/// cost well under 200 ms; an election takes seconds.
const TRANSFER_BUCKETS: [f64; 7] = [0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0];

#[derive(Default)]
struct TransferHistogram {
    /// Per bucket of TRANSFER_BUCKETS, how many took at most its bound (not cumulative).
    buckets: [u64; TRANSFER_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Counters> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn reconciled(&self) {
        self.lock().reconciles += 1;
    }

    pub fn reconcile_failed(&self) {
        self.lock().errors += 1;
    }

    pub fn action(&self, kind: &'static str) {
        *self.lock().actions.entry(kind).or_default() += 1;
    }

    /// Records how long one leadership transfer took.
    pub fn leader_transfer(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let mut c = self.lock();
        let t = &mut c.transfers;
        if let Some(i) = TRANSFER_BUCKETS.iter().position(|bound| secs <= *bound) {
            t.buckets[i] += 1;
        }
        t.count += 1;
        t.sum += secs;
    }

    /// Records whether the ensemble has a synced quorum now.
    pub fn quorum(&self, ensemble: &str, healthy: bool) {
        let mut c = self.lock();
        let now = Instant::now();
        if healthy {
            c.last_healthy.insert(ensemble.to_string(), now);
        } else {
            c.last_healthy.entry(ensemble.to_string()).or_insert(now);
        }
    }

    /// Forgets an ensemble that no longer exists.
    pub fn forget(&self, ensemble: &str) {
        self.lock().last_healthy.remove(ensemble);
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let c = self.lock();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP paddock_operator_reconciles_total Reconciles started.\n\
             # TYPE paddock_operator_reconciles_total counter\n\
             paddock_operator_reconciles_total {}\n\
             # HELP paddock_operator_reconcile_errors_total Reconciles that failed (retried with back-off).\n\
             # TYPE paddock_operator_reconcile_errors_total counter\n\
             paddock_operator_reconcile_errors_total {}\n\
             # HELP paddock_operator_actions_total Actions performed, by kind.\n\
             # TYPE paddock_operator_actions_total counter",
            c.reconciles, c.errors
        );
        for (kind, n) in &c.actions {
            let _ = writeln!(out, "paddock_operator_actions_total{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP paddock_operator_seconds_since_last_healthy_quorum Seconds since the ensemble last had a synced quorum.\n\
             # TYPE paddock_operator_seconds_since_last_healthy_quorum gauge"
        );
        let now = Instant::now();
        for (ensemble, at) in &c.last_healthy {
            let _ = writeln!(
                out,
                "paddock_operator_seconds_since_last_healthy_quorum{{ensemble=\"{}\"}} {:.3}",
                ensemble.replace('\\', "\\\\").replace('"', "\\\""),
                now.duration_since(*at).as_secs_f64()
            );
        }
        let _ = writeln!(
            out,
            "# HELP paddock_operator_leader_transfer_seconds Leadership transfers, from the request to the new leader's answer.\n\
             # TYPE paddock_operator_leader_transfer_seconds histogram"
        );
        let t = &c.transfers;
        let mut cumulative = 0;
        for (bound, n) in TRANSFER_BUCKETS.iter().zip(t.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "paddock_operator_leader_transfer_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "paddock_operator_leader_transfer_seconds_bucket{{le=\"+Inf\"}} {}\n\
             paddock_operator_leader_transfer_seconds_sum {:.6}\n\
             paddock_operator_leader_transfer_seconds_count {}",
            t.count, t.sum, t.count
        );
        out
    }
}

/// Readiness of this replica.
#[derive(Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// The metrics and health router.
pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(s): State<Shared>| async move { s.metrics.render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<Shared>| async move {
                if s.health.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .with_state(Shared { metrics, health })
}

/// The metrics port's limits: its clients are probes and Prometheus, its requests GETs.
pub const HTTP_LIMITS: HttpLimits = HttpLimits {
    header_timeout: Duration::from_secs(10),
    body_timeout: Duration::from_secs(10),
    max_body_bytes: 4 * 1024,
    max_connections: 64,
};

/// Serves the router on `listener` with [`HTTP_LIMITS`] until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) {
    paddock_httpserve::serve(listener, router, HTTP_LIMITS, std::future::pending()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_every_family() {
        let m = Metrics::default();
        m.reconciled();
        m.reconciled();
        m.reconcile_failed();
        m.action("DeletePod");
        m.quorum("ns/zk", false);
        let text = m.render();
        assert!(
            text.contains("paddock_operator_reconciles_total 2\n"),
            "{text}"
        );
        assert!(text.contains("paddock_operator_reconcile_errors_total 1\n"));
        assert!(text.contains("paddock_operator_actions_total{kind=\"DeletePod\"} 1\n"));
        assert!(
            text.contains(
                "paddock_operator_seconds_since_last_healthy_quorum{ensemble=\"ns/zk\"} "
            )
        );
        m.forget("ns/zk");
        assert!(!m.render().contains("ns/zk"));
    }

    #[test]
    fn transfers_fill_cumulative_buckets() {
        let m = Metrics::default();
        m.leader_transfer(Duration::from_millis(40));
        m.leader_transfer(Duration::from_millis(150));
        m.leader_transfer(Duration::from_secs(9));
        let text = m.render();
        for line in [
            "paddock_operator_leader_transfer_seconds_bucket{le=\"0.025\"} 0\n",
            "paddock_operator_leader_transfer_seconds_bucket{le=\"0.05\"} 1\n",
            "paddock_operator_leader_transfer_seconds_bucket{le=\"0.2\"} 2\n",
            "paddock_operator_leader_transfer_seconds_bucket{le=\"5\"} 2\n",
            "paddock_operator_leader_transfer_seconds_bucket{le=\"+Inf\"} 3\n",
            "paddock_operator_leader_transfer_seconds_count 3\n",
            "paddock_operator_leader_transfer_seconds_sum 9.190000\n",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
