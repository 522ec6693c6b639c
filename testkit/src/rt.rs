//! Tokio runtimes for test bodies (`#[test] fn` that run async code), and the time
//! bound of a whole test.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::{Builder, Runtime};

/// How long a runtime's shutdown waits for tasks still running after the test body.
const SHUTDOWN: Duration = Duration::from_secs(1);

/// Runs `body` on a current-thread runtime: every task it spawns runs on this thread.
pub fn run<F: Future>(body: F) -> F::Output {
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("build a current-thread tokio runtime: {e}"));
    rt.block_on(body)
}

/// A multi-thread runtime with two workers (the machines that run the tests are small).
pub fn multi_thread() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("build a multi-thread tokio runtime: {e}"))
}

/// Runs a whole test's `body` on a [`multi_thread`] runtime, bounded by `limit`: a hung
/// test fails, naming `test`, instead of hanging the test binary.
pub fn run_test<F: Future>(test: &str, limit: Duration, body: F) -> F::Output {
    let rt = multi_thread();
    let out = rt.block_on(crate::wait::within(limit, &format!("test {test}"), body));
    rt.shutdown_timeout(SHUTDOWN);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "timed out after 50ms: test hangs")]
    fn a_hung_test_fails_naming_itself() {
        run_test(
            "hangs",
            Duration::from_millis(50),
            std::future::pending::<()>(),
        );
    }

    #[test]
    fn bodies_run_and_return() {
        assert_eq!(run(async { 1 + 1 }), 2);
        assert_eq!(run_test("adds", Duration::from_secs(5), async { 2 + 2 }), 4);
    }
}
