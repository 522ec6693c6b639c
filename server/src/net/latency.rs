//! Client request latency as a histogram, measured on the client port: from the moment a
//! request's frame is decoded to the moment its reply is queued for the socket, so it
//! includes the time the request waited for the core, for replication and for the
//! disk. Pings are left out: they are answered at once and would drown the requests.
//!
//! The histogram is what `/metrics` exports as `paddock_request_latency_seconds`
//! (buckets, sum, count; cumulative since start, as Prometheus expects).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use paddock_proto::xid;

pub use crate::histogram::LatencyHistogram;

/// One connection's requests that await their reply, as (xid, arrival) in arrival order.
/// The server answers a connection's requests in the order they came (ZooKeeper's
/// guarantee, which clients check), so the reply to the front is the one expected; a
/// reply further back (an xid the client reused out of order) is looked up, and its
/// entry taken. A queue that keeps its capacity costs no allocation per request.
#[derive(Debug)]
pub struct ReplyClock {
    waiting: Mutex<VecDeque<(i32, Instant)>>,
    histogram: Arc<LatencyHistogram>,
}

impl ReplyClock {
    pub fn new(histogram: Arc<LatencyHistogram>) -> ReplyClock {
        ReplyClock {
            waiting: Mutex::new(VecDeque::new()),
            histogram,
        }
    }

    /// A request `xid` arrived at `received`.
    pub fn request(&self, xid: i32, received: Instant) {
        if xid == xid::PING {
            return;
        }
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.push_back((xid, received));
        }
    }

    /// The reply to `xid` is queued: its request's latency is observed.
    pub fn replied(&self, xid: i32) {
        if xid == xid::PING {
            return;
        }
        let received = self.waiting.lock().ok().and_then(|mut waiting| {
            let at = waiting.iter().position(|(x, _)| *x == xid)?;
            waiting.remove(at).map(|(_, received)| received)
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
