//! One benchmark run: connect, set up the znodes the workload needs, drive the load for
//! warm-up + duration, tear down, and hand back the merged measurements.

mod churn;
mod fanout;
mod pipelined;
pub mod setup;

use std::time::{Duration, Instant};

use crate::cli::{NetArgs, Workload};
use crate::conn::{Conn, ConnError};
use crate::stats::Stats;

/// Everything a run needs, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Plan {
    pub servers: Vec<String>,
    pub workload: Workload,
    pub sessions: u32,
    pub inflight: u32,
    pub value_size: usize,
    pub keys: u32,
    pub duration: Duration,
    pub warmup: Duration,
    /// Operations per session, when the run is a fixed amount of work.
    pub ops: Option<u64>,
    pub root: String,
    pub net: NetArgs,
}

impl Plan {
    /// The server session `i` talks to: sessions are spread round-robin.
    pub fn server_for(&self, i: usize) -> &str {
        &self.servers[i % self.servers.len()]
    }

    pub fn value(&self) -> Vec<u8> {
        (0..self.value_size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect()
    }
}

/// The run's clock: load starts when the window is made and is measured from
/// `measure` to `end`; with an operation budget, a session also stops after `ops`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub measure: Instant,
    pub end: Instant,
    pub ops: Option<u64>,
}

impl Window {
    fn new(plan: &Plan) -> Window {
        let measure = Instant::now() + plan.warmup;
        Window {
            measure,
            end: measure + plan.duration,
            ops: plan.ops,
        }
    }

    /// Whether a session that has done `done` operations starts another at `now`.
    pub fn open(&self, now: Instant, done: u64) -> bool {
        now < self.end && self.ops.is_none_or(|n| done < n)
    }

    /// Whether an operation sent at `sent` and finished at `done` is measured.
    pub fn counts(&self, sent: Instant, done: Instant) -> bool {
        sent >= self.measure && done <= self.end
    }
}

/// The measurements of a finished run.
#[derive(Debug)]
pub struct Outcome {
    pub stats: Stats,
    /// From the start of the load until its last session ended (set by [`run`]).
    pub load_time: Duration,
    /// Sessions that ended early because their connection failed.
    pub sessions_lost: u32,
    /// Notes for the report (e.g. flags the workload ignores).
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Conn(#[from] ConnError),
    #[error("setup failed: {0}")]
    Setup(String),
}

/// Runs the whole plan. Setup errors (unreachable server, a refused root) are returned;
/// errors during the load are counted in the outcome.
pub async fn run(plan: &Plan) -> Result<Outcome, RunError> {
    let mut admin = Conn::connect(
        plan.server_for(0),
        plan.net.session_timeout,
        plan.net.connect_timeout,
    )
    .await?;
    let layout = setup::Layout::new(&plan.root);
    let prepared = setup::prepare(&mut admin, plan, &layout).await;
    // Not kept open through the load: an idle session would expire on a long run.
    let _ = admin.close(plan.net.request_timeout).await;
    prepared?;

    let mut notes = Vec::new();
    let started = Instant::now();
    let result = match plan.workload {
        Workload::Read | Workload::Write | Workload::Mixed(_) | Workload::CreateDelete => {
            pipelined::run(plan, &layout).await
        }
        Workload::WatchFanout(m) => {
            if plan.sessions != 1 || plan.inflight != 1 {
                notes.push(format!(
                    "watch-fanout uses 1 writer and {m} watching sessions; --sessions and --inflight do not apply"
                ));
            }
            fanout::run(plan, &layout, m).await
        }
        Workload::EphemeralChurn => {
            if plan.inflight != 1 {
                notes.push(
                    "ephemeral-churn runs connect, create, close in sequence per session; --inflight does not apply"
                        .into(),
                );
            }
            churn::run(plan, &layout).await
        }
    };
    let load_time = started.elapsed();

    // Clean up even after a failed load; a connection lost since setup is reopened.
    let cleanup = async {
        let mut conn = match Conn::connect(
            plan.server_for(0),
            plan.net.session_timeout,
            plan.net.connect_timeout,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => return Err(RunError::from(e)),
        };
        let r = setup::teardown(&mut conn, plan, &layout).await;
        let _ = conn.close(plan.net.request_timeout).await;
        r
    };
    let cleaned = cleanup.await;

    let mut outcome = result?;
    outcome.load_time = load_time;
    outcome.notes.extend(notes);
    if let Err(e) = cleaned {
        outcome.notes.push(format!("cleanup incomplete: {e}"));
    }
    Ok(outcome)
}

/// A small xorshift64* generator: per-session, seeded, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in 0..n (n > 0), with negligible bias for the small n used here.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_stays_in_range_and_spreads() {
        let mut r = Rng::new(7);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let v = r.below(10);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }

    #[test]
    fn window_counts_only_inside() {
        let now = Instant::now();
        let w = Window {
            measure: now + Duration::from_millis(10),
            end: now + Duration::from_millis(20),
            ops: Some(3),
        };
        assert!(w.open(now, 2) && !w.open(now, 3) && !w.open(w.end, 0));
        assert!(!w.counts(w.measure - Duration::from_millis(1), w.measure));
        assert!(w.counts(w.measure, w.end));
        assert!(!w.counts(w.measure, w.end + Duration::from_millis(1)));
    }
}
