//! Latency histograms with fixed buckets, shared by whoever times something: the client
//! port (request latency) and the disk writer (fsync). Lock-free counters, so the timed
//! thread never waits for a reader; readers take the cumulative form Prometheus expects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Upper bounds of the buckets, in seconds: 100 µs to 2.5 s.
pub const BOUNDS_SECONDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Observations per bucket (not cumulative), their sum and their count.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    per_bucket: [AtomicU64; BOUNDS_SECONDS.len()],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl LatencyHistogram {
    pub fn observe(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        if let Some(i) = BOUNDS_SECONDS.iter().position(|le| seconds <= *le) {
            self.per_bucket[i].fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The cumulative form the admin module renders.
    pub fn snapshot(&self) -> Histogram {
        let mut below = 0;
        let buckets = BOUNDS_SECONDS
            .iter()
            .zip(&self.per_bucket)
            .map(|(le, n)| {
                below += n.load(Ordering::Relaxed);
                (*le, below)
            })
            .collect();
        Histogram {
            buckets,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            // At least the finite buckets' total, should a reader race an observation.
            count: self.count.load(Ordering::Relaxed).max(below),
        }
    }
}

/// A Prometheus histogram: cumulative counts per upper bound (seconds), ascending, without
/// the `+Inf` bucket (that is `count`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Histogram {
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(50)); // <= 100 µs
        h.observe(Duration::from_micros(700)); // <= 1 ms
        h.observe(Duration::from_millis(1)); // <= 1 ms (bounds are inclusive)
        h.observe(Duration::from_secs(10)); // beyond the last bound: +Inf only
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets.len(), BOUNDS_SECONDS.len());
        let at = |le: f64| s.buckets.iter().find(|(b, _)| *b == le).unwrap().1;
        assert_eq!(at(0.0001), 1);
        assert_eq!(at(0.0005), 1);
        assert_eq!(at(0.001), 3);
        assert_eq!(at(2.5), 3);
        assert!((s.sum_seconds - 10.00175).abs() < 1e-9, "{}", s.sum_seconds);
    }
}
