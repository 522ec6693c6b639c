//! Bounded waits for async test bodies (any tokio runtime).
//!
//! [`within`] and [`eventually`] panic, saying what was awaited, when the time is up;
//! [`poll_until`] returns whether the condition held, for tests that check an outcome
//! either way. Conditions are polled every [`POLL`].

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] and [`poll_until`] poll.
pub const POLL: Duration = Duration::from_millis(20);

/// Awaits `fut` for at most `limit`; panics with `what` when the time is up.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Polls `cond` until it holds; panics with `what` when it did not within `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if !poll_until(limit, cond).await {
        panic!("condition not reached within {limit:?}: {what}");
    }
}

/// Polls `cond` until it holds or `limit` passes; whether it held. `cond` is polled at
/// least once, and once more at (or after) the deadline.
pub async fn poll_until<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn run<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(f)
    }

    #[test]
    fn poll_until_tells_whether_the_condition_held() {
        let n = Cell::new(0);
        let held = run(poll_until(Duration::from_secs(5), || {
            n.set(n.get() + 1);
            let v = n.get();
            async move { v >= 3 }
        }));
        assert!(held);
        assert_eq!(n.get(), 3);
        assert!(!run(poll_until(Duration::from_millis(50), || async {
            false
        })));
    }

    #[test]
    #[should_panic(expected = "condition not reached within 50ms: the thing")]
    fn eventually_names_what_it_waited_for() {
        run(eventually(
            Duration::from_millis(50),
            "the thing",
            || async { false },
        ));
    }

    #[test]
    #[should_panic(expected = "timed out after 10ms: the reply")]
    fn within_names_what_it_waited_for() {
        run(within(
            Duration::from_millis(10),
            "the reply",
            std::future::pending::<()>(),
        ));
    }
}
