//! Turning a run's measurements into the report: one serializable structure, printed
//! either as JSON (`--json`, one object) or as a short human-readable text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::cli::Workload;
use crate::stats::{OpKind, Stats};
use crate::workload::{Outcome, Plan};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OpReport {
    pub ops: u64,
    pub throughput_ops_s: f64,
    pub latency_us: Latency,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Errors {
    /// server + protocol + connection
    pub total: u64,
    /// Error replies by ZooKeeper error name (NoNode, ConnectionLoss, ...).
    pub server: BTreeMap<String, u64>,
    /// Frames that broke the protocol. A correct server always has 0.
    pub protocol: u64,
    /// Connections that failed or went silent.
    pub connection: u64,
    pub sessions_lost: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub tool: String,
    pub workload: String,
    pub servers: Vec<String>,
    pub sessions: u32,
    pub inflight: u32,
    pub value_size: usize,
    pub keys: u32,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// What `ops`, `throughput_ops_s` and `latency_us` count (e.g. "read+write",
    /// "notify" for watch-fanout, "cycle" for ephemeral-churn).
    pub measures: String,
    pub ops: u64,
    pub throughput_ops_s: f64,
    pub latency_us: Latency,
    /// Every operation kind that was timed.
    pub per_op: BTreeMap<String, OpReport>,
    pub errors: Errors,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The operation kinds that make up a workload's headline figure.
fn headline_kinds(w: Workload) -> &'static [OpKind] {
    match w {
        Workload::Read => &[OpKind::Read],
        Workload::Write => &[OpKind::Write],
        Workload::Mixed(_) => &[OpKind::Read, OpKind::Write],
        Workload::CreateDelete => &[OpKind::Create, OpKind::Delete],
        Workload::WatchFanout(_) => &[OpKind::Notify],
        Workload::EphemeralChurn => &[OpKind::Cycle],
    }
}

fn latency(h: &Histogram<u64>) -> Latency {
    let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
    if h.is_empty() {
        return Latency::default();
    }
    Latency {
        p50: us(h.value_at_quantile(0.50)),
        p99: us(h.value_at_quantile(0.99)),
        p999: us(h.value_at_quantile(0.999)),
        max: us(h.max()),
        mean: (h.mean() / 100.0).round() / 10.0,
    }
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        (n as f64 / secs * 10.0).round() / 10.0
    } else {
        0.0
    }
}

pub fn build(plan: &Plan, outcome: &Outcome) -> Report {
    // A fixed amount of work (--ops) is measured over the time it took, warm-up included
    // (there is none to leave out: every operation counts).
    let secs = match plan.ops {
        Some(_) => outcome.load_time.as_secs_f64(),
        None => plan.duration.as_secs_f64(),
    };
    let stats: &Stats = &outcome.stats;
    let kinds = headline_kinds(plan.workload);
    let mut headline = stats.histogram(kinds[0]).clone();
    for k in &kinds[1..] {
        // Same bounds: cannot fail.
        let _ = headline.add(stats.histogram(*k));
    }
    let per_op = OpKind::ALL
        .iter()
        .filter(|k| !stats.histogram(**k).is_empty())
        .map(|k| {
            let h = stats.histogram(*k);
            (
                k.name().to_string(),
                OpReport {
                    ops: h.len(),
                    throughput_ops_s: rate(h.len(), secs),
                    latency_us: latency(h),
                },
            )
        })
        .collect();
    let server = stats.server_errors_named();
    let errors = Errors {
        total: stats.server_error_total() + stats.protocol_errors + stats.connection_errors,
        server,
        protocol: stats.protocol_errors,
        connection: stats.connection_errors,
        sessions_lost: outcome.sessions_lost,
        samples: stats.samples.clone(),
    };
    let (sessions, inflight) = match plan.workload {
        Workload::WatchFanout(m) => (m + 1, 1),
        Workload::EphemeralChurn => (plan.sessions, 1),
        _ => (plan.sessions, plan.inflight),
    };
    Report {
        tool: format!("paddock-bench {}", env!("CARGO_PKG_VERSION")),
        workload: plan.workload.to_string(),
        servers: plan.servers.clone(),
        sessions,
        inflight,
        value_size: plan.value_size,
        keys: plan.keys,
        duration_s: secs,
        warmup_s: plan.warmup.as_secs_f64(),
        measures: kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join("+"),
        ops: headline.len(),
        throughput_ops_s: rate(headline.len(), secs),
        latency_us: latency(&headline),
        per_op,
        errors,
        notes: outcome.notes.clone(),
    }
}

/// A latency in µs as text with a fitting unit.
pub fn fmt_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.0} µs")
    }
}

pub fn human(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "paddock-bench  {}  against {}",
        r.workload,
        r.servers.join(",")
    );
    let _ = writeln!(
        s,
        "  {} sessions x {} in flight, value {} B, {:.1} s measured after {:.1} s warm-up",
        r.sessions, r.inflight, r.value_size, r.duration_s, r.warmup_s
    );
    let _ = writeln!(
        s,
        "  {:<10} {:>12} ops {:>14}  p50 {:>9}  p99 {:>9}  p999 {:>9}  max {:>9}",
        r.measures,
        r.ops,
        format!("{:.0} ops/s", r.throughput_ops_s),
        fmt_us(r.latency_us.p50),
        fmt_us(r.latency_us.p99),
        fmt_us(r.latency_us.p999),
        fmt_us(r.latency_us.max)
    );
    if r.per_op.len() > 1 {
        for (name, op) in &r.per_op {
            let _ = writeln!(
                s,
                "    {:<8} {:>12} ops {:>14}  p50 {:>9}  p99 {:>9}  p999 {:>9}  max {:>9}",
                name,
                op.ops,
                format!("{:.0} ops/s", op.throughput_ops_s),
                fmt_us(op.latency_us.p50),
                fmt_us(op.latency_us.p99),
                fmt_us(op.latency_us.p999),
                fmt_us(op.latency_us.max)
            );
        }
    }
    let e = &r.errors;
    let by_code: Vec<String> = e.server.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(
        s,
        "  errors {}: server {} [{}], protocol {}, connection {}, sessions lost {}",
        e.total,
        e.server.values().sum::<u64>(),
        by_code.join(", "),
        e.protocol,
        e.connection,
        e.sessions_lost
    );
    for sample in &e.samples {
        let _ = writeln!(s, "    e.g. {sample}");
    }
    for n in &r.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(fmt_us(12.3), "12 µs");
        assert_eq!(fmt_us(1234.0), "1.23 ms");
        assert_eq!(fmt_us(2_500_000.0), "2.50 s");
    }

    #[test]
    fn latency_of_empty_histogram_is_zero() {
        let h = Histogram::<u64>::new_with_bounds(1, 1000, 3).unwrap();
        assert_eq!(latency(&h), Latency::default());
    }
}
