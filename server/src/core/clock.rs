//! Time as the core reads it. The core asks this trait instead of the system, so that a
//! simulator can run it on a clock of its own.

use std::cell::Cell;
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

/// The core's clock, read once per burst of messages. The messages the core handles
/// together (up to `BURST_MAX`, already queued) are handled within a fraction of a
/// millisecond, so they may share one reading; a reading per request (its session's
/// deadline, its txn's mtime, ...) took about 4% of the core thread's time under a
/// setData load. The core clears the readings at the end of each burst.
pub struct BurstClock {
    clock: Box<dyn Clock>,
    now_ms: Cell<Option<u64>>,
    wall_ms: Cell<Option<i64>>,
}

impl BurstClock {
    pub fn new(clock: Box<dyn Clock>) -> BurstClock {
        BurstClock {
            clock,
            now_ms: Cell::new(None),
            wall_ms: Cell::new(None),
        }
    }

    /// [`Clock::now_ms`], as first read in this burst.
    pub fn now_ms(&self) -> u64 {
        cached(&self.now_ms, || self.clock.now_ms())
    }

    /// [`Clock::wall_ms`], as first read in this burst.
    pub fn wall_ms(&self) -> i64 {
        cached(&self.wall_ms, || self.clock.wall_ms())
    }

    /// The burst is over: the next reading is a new one.
    pub fn end_burst(&self) {
        self.now_ms.set(None);
        self.wall_ms.set(None);
    }
}

fn cached<T: Copy>(cell: &Cell<Option<T>>, read: impl FnOnce() -> T) -> T {
    if let Some(value) = cell.get() {
        return value;
    }
    let value = read();
    cell.set(Some(value));
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock that advances by one at every reading.
    struct Ticking(Arc<AtomicU64>);

    impl Clock for Ticking {
        fn now_ms(&self) -> u64 {
            self.0.fetch_add(1, Ordering::Relaxed) + 1
        }
        fn wall_ms(&self) -> i64 {
            self.now_ms() as i64 * 1000
        }
    }

    #[test]
    fn one_reading_per_burst() {
        let clock = BurstClock::new(Box::new(Ticking(Arc::default())));
        assert_eq!((clock.now_ms(), clock.now_ms()), (1, 1));
        assert_eq!((clock.wall_ms(), clock.wall_ms()), (2000, 2000));
        clock.end_burst();
        assert_eq!((clock.now_ms(), clock.wall_ms()), (3, 4000));
    }
}
