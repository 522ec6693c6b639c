//! What one session measured: an HDR latency histogram per kind of operation, and the
//! errors it saw. Each session task owns its own `Stats` (no locks on the hot path);
//! they are merged once at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use paddock_proto::ErrorCode;

/// Every kind of operation a workload times. `Notify` is watch-notification latency
/// (setData sent → event received); `Cycle` is a whole ephemeral-churn session life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpKind {
    Read,
    Write,
    Create,
    Delete,
    Notify,
    Connect,
    Close,
    Cycle,
}

impl OpKind {
    pub const ALL: [OpKind; 8] = [
        OpKind::Read,
        OpKind::Write,
        OpKind::Create,
        OpKind::Delete,
        OpKind::Notify,
        OpKind::Connect,
        OpKind::Close,
        OpKind::Cycle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Create => "create",
            OpKind::Delete => "delete",
            OpKind::Notify => "notify",
            OpKind::Connect => "connect",
            OpKind::Close => "close",
            OpKind::Cycle => "cycle",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Latencies are recorded in nanoseconds, 3 significant digits, up to 10 minutes.
const MAX_NS: u64 = 600_000_000_000;

fn new_histogram() -> Histogram<u64> {
    // Bounds are constants known to be valid (1 ≤ low, high ≥ 2·low, sigfig ≤ 5).
    Histogram::new_with_bounds(1, MAX_NS, 3).unwrap_or_else(|_| unreachable!())
}

#[derive(Debug, Clone)]
pub struct Stats {
    histograms: Vec<Histogram<u64>>,
    /// Server error codes (non-zero `err` in a reply header), by code.
    pub server_errors: BTreeMap<i32, u64>,
    /// Replies that broke the protocol: undecodable bodies, unexpected xids.
    pub protocol_errors: u64,
    /// Sessions lost: connect failures, resets, closed sockets, silent servers.
    pub connection_errors: u64,
    /// The first few error messages, for the report.
    pub samples: Vec<String>,
}

const MAX_SAMPLES: usize = 5;

impl Default for Stats {
    fn default() -> Self {
        Stats {
            histograms: OpKind::ALL.iter().map(|_| new_histogram()).collect(),
            server_errors: BTreeMap::new(),
            protocol_errors: 0,
            connection_errors: 0,
            samples: Vec::new(),
        }
    }
}

impl Stats {
    pub fn record(&mut self, kind: OpKind, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_NS);
        // Clamped into the histogram's range, so this cannot fail.
        let _ = self.histograms[kind.index()].record(ns);
    }

    pub fn server_error(&mut self, code: i32) {
        *self.server_errors.entry(code).or_default() += 1;
    }

    pub fn protocol_error(&mut self, what: impl std::fmt::Display) {
        self.protocol_errors += 1;
        self.sample(format!("protocol: {what}"));
    }

    pub fn connection_error(&mut self, what: impl std::fmt::Display) {
        self.connection_errors += 1;
        self.sample(format!("connection: {what}"));
    }

    fn sample(&mut self, msg: String) {
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(msg);
        }
    }

    pub fn histogram(&self, kind: OpKind) -> &Histogram<u64> {
        &self.histograms[kind.index()]
    }

    pub fn server_error_total(&self) -> u64 {
        self.server_errors.values().sum()
    }

    /// Server errors by ZooKeeper name (e.g. "NoNode"), or the raw code if unknown.
    pub fn server_errors_named(&self) -> BTreeMap<String, u64> {
        self.server_errors
            .iter()
            .map(|(code, n)| {
                let name = ErrorCode::from_code(*code)
                    .map(|c| c.name().to_string())
                    .unwrap_or_else(|| code.to_string());
                (name, *n)
            })
            .collect()
    }

    pub fn merge(&mut self, other: &Stats) {
        for (mine, theirs) in self.histograms.iter_mut().zip(&other.histograms) {
            // Same bounds on both sides, so adding cannot fail.
            let _ = mine.add(theirs);
        }
        for (code, n) in &other.server_errors {
            *self.server_errors.entry(*code).or_default() += n;
        }
        self.protocol_errors += other.protocol_errors;
        self.connection_errors += other.connection_errors;
        for s in &other.samples {
            self.sample(s.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_and_merge() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        a.record(OpKind::Read, Duration::from_micros(100));
        b.record(OpKind::Read, Duration::from_micros(300));
        b.record(OpKind::Write, Duration::from_secs(100_000)); // clamped, not lost
        b.server_error(-101);
        b.protocol_error("x");
        a.merge(&b);
        assert_eq!(a.histogram(OpKind::Read).len(), 2);
        assert_eq!(a.histogram(OpKind::Write).len(), 1);
        assert_eq!(a.server_errors_named().get("NoNode"), Some(&1));
        assert_eq!(a.protocol_errors, 1);
        assert_eq!(a.samples.len(), 1);
    }
}
