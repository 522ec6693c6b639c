//! Time as the core reads it. The core asks this trait instead of the system, so that a
//! simulator can run it on a clock of its own.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub trait Clock: Send {
    /// Monotonic milliseconds since the core started: session deadlines, ZAB's timers,
    /// the read-only mode's delays.
    fn now_ms(&self) -> u64;
    /// Wall-clock milliseconds since the Unix epoch: znode ctime and mtime, TTLs, and
    /// session ids (ZooKeeper seeds them from the time).
    fn wall_ms(&self) -> i64;
}

/// The system's clocks.
pub struct SystemClock {
    started: Instant,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock {
            started: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn wall_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}
