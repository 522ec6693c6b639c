//! Server-wide counters (ZooKeeper's ServerStats) and per-connection reports.

use std::net::IpAddr;
use std::time::SystemTime;

use paddock_proto::OpCode;

use crate::watch::ConnId;

/// Request counters and latency, reset by `srst`.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub requests_completed: u64,
    pub min_latency_ms: u64,
    pub max_latency_ms: u64,
    pub total_latency_ms: u64,
    pub writes_proposed: u64,
    pub connections_accepted: u64,
    pub sessions_expired: u64,
}

impl Stats {
    pub fn record_latency(&mut self, ms: u64) {
        if self.requests_completed == 0 || ms < self.min_latency_ms {
            self.min_latency_ms = ms;
        }
        self.max_latency_ms = self.max_latency_ms.max(ms);
        self.total_latency_ms += ms;
        self.requests_completed += 1;
    }

    pub fn avg_latency_ms(&self) -> f64 {
        if self.requests_completed == 0 {
            0.0
        } else {
            self.total_latency_ms as f64 / self.requests_completed as f64
        }
    }

    pub fn reset(&mut self) {
        *self = Stats {
            connections_accepted: self.connections_accepted,
            ..Stats::default()
        };
    }
}

/// One line of `cons`.
#[derive(Debug, Clone)]
pub struct ConnectionReport {
    pub conn: ConnId,
    pub addr: IpAddr,
    pub session: Option<i64>,
    pub queued: usize,
    pub received: u64,
    pub sent: u64,
    pub connected_at: SystemTime,
    pub last_zxid: i64,
    /// The last request's type (createSession until the first request).
    pub last_op: OpCode,
    pub last_latency_ms: u64,
    pub min_latency_ms: u64,
    pub avg_latency_ms: u64,
    pub max_latency_ms: u64,
    pub timeout_ms: i32,
}
