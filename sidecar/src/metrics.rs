//! Prometheus metrics, kept by hand (a few counters, gauges and histograms do not need a
//! library) and rendered in the text exposition format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::session::Link;

/// Histogram bucket bounds, in seconds.
const LOCK_WAIT_BUCKETS: [f64; 10] = [0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0];
const LAG_BUCKETS: [f64; 9] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug)]
pub struct Metrics {
    link: AtomicI64,
    sessions_established: AtomicU64,
    sessions_expired: AtomicU64,
    /// (election, id) → is leader
    leader: Mutex<BTreeMap<(String, String), bool>>,
    /// (election, "acquired"|"lost") → count
    leadership_changes: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// (outcome) → count: acquired, timeout, error
    lock_acquires: Mutex<BTreeMap<&'static str, u64>>,
    locks_lost: AtomicU64,
    lock_wait: Mutex<Histogram>,
    watch_lag: Mutex<Histogram>,
    sse_streams: AtomicI64,
    renders: AtomicU64,
    render_failures: AtomicU64,
    /// status code → count
    requests: Mutex<BTreeMap<u16, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            link: AtomicI64::new(0),
            sessions_established: AtomicU64::new(0),
            sessions_expired: AtomicU64::new(0),
            leader: Mutex::new(BTreeMap::new()),
            leadership_changes: Mutex::new(BTreeMap::new()),
            lock_acquires: Mutex::new(BTreeMap::new()),
            locks_lost: AtomicU64::new(0),
            lock_wait: Mutex::new(Histogram::new(&LOCK_WAIT_BUCKETS)),
            watch_lag: Mutex::new(Histogram::new(&LAG_BUCKETS)),
            sse_streams: AtomicI64::new(0),
            renders: AtomicU64::new(0),
            render_failures: AtomicU64::new(0),
            requests: Mutex::new(BTreeMap::new()),
        }
    }
}

const LINKS: [Link; 5] = [
    Link::Connecting,
    Link::Connected,
    Link::Suspended,
    Link::Expired,
    Link::Closed,
];

impl Metrics {
    pub fn set_link(&self, link: Link) {
        let i = LINKS.iter().position(|l| *l == link).unwrap_or(0);
        self.link.store(i as i64, Ordering::Relaxed);
    }

    pub fn session_established(&self) {
        self.sessions_established.fetch_add(1, Ordering::Relaxed);
    }

    pub fn session_expired(&self) {
        self.sessions_expired.fetch_add(1, Ordering::Relaxed);
    }

    /// Records whether (election, id) leads; counts the change if it is one.
    pub fn set_leader(&self, election: &str, id: &str, leads: bool) {
        let before = self
            .leader
            .lock()
            .ok()
            .and_then(|mut m| m.insert((election.to_string(), id.to_string()), leads));
        if before.unwrap_or(false) != leads
            && let Ok(mut m) = self.leadership_changes.lock()
        {
            let dir = if leads { "acquired" } else { "lost" };
            *m.entry((election.to_string(), dir)).or_default() += 1;
        }
    }

    pub fn forget_candidate(&self, election: &str, id: &str) {
        self.set_leader(election, id, false);
        if let Ok(mut m) = self.leader.lock() {
            m.remove(&(election.to_string(), id.to_string()));
        }
    }

    pub fn lock_outcome(&self, outcome: &'static str, waited: Duration) {
        if let Ok(mut m) = self.lock_acquires.lock() {
            *m.entry(outcome).or_default() += 1;
        }
        if let Ok(mut h) = self.lock_wait.lock() {
            h.observe(waited.as_secs_f64());
        }
    }

    pub fn lock_lost(&self) {
        self.locks_lost.fetch_add(1, Ordering::Relaxed);
    }

    pub fn watch_lag(&self, lag: Duration) {
        if let Ok(mut h) = self.watch_lag.lock() {
            h.observe(lag.as_secs_f64());
        }
    }

    pub fn sse_opened(&self) {
        self.sse_streams.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sse_closed(&self) {
        self.sse_streams.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn rendered(&self, ok: bool) {
        if ok {
            self.renders.fetch_add(1, Ordering::Relaxed);
        } else {
            self.render_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn request(&self, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry(status).or_default() += 1;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let link = self.link.load(Ordering::Relaxed) as usize;
        let _ = writeln!(
            out,
            "# HELP paddock_sidecar_session_state Session state (1 for the current one).\n# TYPE paddock_sidecar_session_state gauge"
        );
        for (i, l) in LINKS.iter().enumerate() {
            let _ = writeln!(
                out,
                "paddock_sidecar_session_state{{state=\"{}\"}} {}",
                l.name(),
                u8::from(i == link)
            );
        }
        counter(
            &mut out,
            "paddock_sidecar_sessions_established_total",
            "Sessions established with the ensemble.",
            self.sessions_established.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "paddock_sidecar_sessions_expired_total",
            "Sessions that expired (every election, membership and lock of it was lost).",
            self.sessions_expired.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP paddock_sidecar_leader Whether this sidecar's candidate leads (1) or not (0).\n# TYPE paddock_sidecar_leader gauge"
        );
        if let Ok(m) = self.leader.lock() {
            for ((e, id), leads) in m.iter() {
                let _ = writeln!(
                    out,
                    "paddock_sidecar_leader{{election=\"{}\",id=\"{}\"}} {}",
                    escape(e),
                    escape(id),
                    u8::from(*leads)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP paddock_sidecar_leadership_changes_total Leadership acquired or lost by this sidecar's candidates.\n# TYPE paddock_sidecar_leadership_changes_total counter"
        );
        if let Ok(m) = self.leadership_changes.lock() {
            for ((e, dir), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "paddock_sidecar_leadership_changes_total{{election=\"{}\",change=\"{dir}\"}} {n}",
                    escape(e)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP paddock_sidecar_lock_acquires_total Lock acquisitions by outcome.\n# TYPE paddock_sidecar_lock_acquires_total counter"
        );
        if let Ok(m) = self.lock_acquires.lock() {
            for (outcome, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "paddock_sidecar_lock_acquires_total{{outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        counter(
            &mut out,
            "paddock_sidecar_locks_lost_total",
            "Granted locks lost with their session.",
            self.locks_lost.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP paddock_sidecar_lock_wait_seconds Time spent waiting for locks.\n# TYPE paddock_sidecar_lock_wait_seconds histogram"
        );
        if let Ok(h) = self.lock_wait.lock() {
            h.render(&mut out, "paddock_sidecar_lock_wait_seconds", "");
        }
        let _ = writeln!(
            out,
            "# HELP paddock_sidecar_watch_lag_seconds From a change's watch event to its delivery (event streams, rendered files).\n# TYPE paddock_sidecar_watch_lag_seconds histogram"
        );
        if let Ok(h) = self.watch_lag.lock() {
            h.render(&mut out, "paddock_sidecar_watch_lag_seconds", "");
        }
        let _ = writeln!(
            out,
            "# HELP paddock_sidecar_event_streams Open SSE streams.\n# TYPE paddock_sidecar_event_streams gauge\npaddock_sidecar_event_streams {}",
            self.sse_streams.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "paddock_sidecar_renders_total",
            "Files rendered (--render).",
            self.renders.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "paddock_sidecar_render_failures_total",
            "Files that could not be written (--render).",
            self.render_failures.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP paddock_sidecar_http_requests_total HTTP requests by status.\n# TYPE paddock_sidecar_http_requests_total counter"
        );
        if let Ok(m) = self.requests.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "paddock_sidecar_http_requests_total{{code=\"{code}\"}} {n}"
                );
            }
        }
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

/// Label values: backslash, quote and newline escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
        let text = m.render();
        assert!(text.contains("paddock_sidecar_session_state{state=\"connected\"} 1"));
        assert!(text.contains("paddock_sidecar_session_state{state=\"suspended\"} 0"));
        assert!(text.contains(
            "paddock_sidecar_leadership_changes_total{election=\"e\\\"1\",change=\"acquired\"} 1"
        ));
        assert!(text.contains(
            "paddock_sidecar_leadership_changes_total{election=\"e\\\"1\",change=\"lost\"} 1"
        ));
        assert!(text.contains("paddock_sidecar_lock_wait_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("paddock_sidecar_lock_wait_seconds_count 1"));
        assert!(text.contains("paddock_sidecar_http_requests_total{code=\"200\"} 1"));
    }
}
