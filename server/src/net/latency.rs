//! Client request latency as a histogram, measured on the client port: from the moment a
//! request's frame is decoded to the moment its reply is queued for the socket, so it
//! includes the time the request waited for the core, for replication and for the
//! disk. Pings are left out: they are answered at once and would drown the requests.
//!
//! The histogram is what `/metrics` exports as `paddock_request_latency_seconds`
//! (buckets, sum, count; cumulative since start, as Prometheus expects).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paddock_proto::xid;

use crate::admin::Histogram;

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

/// One connection's requests that await their reply: arrival times by xid (a client may
/// reuse an xid, so each xid keeps a queue; replies to one xid come in order).
#[derive(Debug)]
pub struct ReplyClock {
    waiting: Mutex<HashMap<i32, VecDeque<Instant>>>,
    histogram: Arc<LatencyHistogram>,
}

impl ReplyClock {
    pub fn new(histogram: Arc<LatencyHistogram>) -> ReplyClock {
        ReplyClock {
            waiting: Mutex::new(HashMap::new()),
            histogram,
        }
    }

    /// A request `xid` arrived at `received`.
    pub fn request(&self, xid: i32, received: Instant) {
        if xid == xid::PING {
            return;
        }
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.entry(xid).or_default().push_back(received);
        }
    }

    /// The reply to `xid` is queued: its request's latency is observed.
    pub fn replied(&self, xid: i32) {
        if xid == xid::PING {
            return;
        }
        let received = self.waiting.lock().ok().and_then(|mut waiting| {
            let queue = waiting.get_mut(&xid)?;
            let first = queue.pop_front();
            if queue.is_empty() {
                waiting.remove(&xid);
            }
            first
        });
        if let Some(received) = received {
            self.histogram.observe(received.elapsed());
        }
    }
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

    #[test]
    fn replies_are_matched_to_their_requests_and_pings_are_left_out() {
        let h = Arc::new(LatencyHistogram::default());
        let clock = ReplyClock::new(h.clone());
        let start = Instant::now();
        clock.request(1, start);
        clock.request(1, start); // a reused xid
        clock.request(xid::PING, start);
        clock.replied(xid::PING);
        clock.replied(1);
        assert_eq!(h.snapshot().count, 1);
        clock.replied(1);
        clock.replied(1); // no request left: nothing observed
        clock.replied(7);
        assert_eq!(h.snapshot().count, 2);
        assert!(clock.waiting.lock().unwrap().is_empty());
    }
}
