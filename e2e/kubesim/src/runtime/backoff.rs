//! Crash and image-pull back-off, as a kubelet computes it.
//!
//! A kubelet restarts a container that exited the first time at once and remembers a back-off
//! of `base` (10 s); every further exit inside the back-off window waits the current back-off,
//! which doubles up to `max` (5 min). A container that ran for `2 × max` (10 min) before it
//! exited starts over. Tests shorten both through `KUBESIM_BACKOFF_BASE_MS` and
//! `KUBESIM_BACKOFF_MAX_MS`, read once per process.

use std::sync::OnceLock;
use std::time::Duration;

static GLOBAL: OnceLock<BackoffPolicy> = OnceLock::new();

/// The back-off parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The first non-zero back-off (kubelet: 10 s).
    pub base: Duration,
    /// The cap (kubelet: 5 min).
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

impl BackoffPolicy {
    /// The process-wide policy: the defaults, overridden by `KUBESIM_BACKOFF_BASE_MS` and
    /// `KUBESIM_BACKOFF_MAX_MS` (read the first time this is called).
    pub fn global() -> BackoffPolicy {
        *GLOBAL.get_or_init(|| {
            let from_env = |key: &str| {
                std::env::var(key)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_millis)
            };
            BackoffPolicy::from_overrides(
                from_env("KUBESIM_BACKOFF_BASE_MS"),
                from_env("KUBESIM_BACKOFF_MAX_MS"),
            )
        })
    }

    /// Makes this the process-wide policy (for tests and embedders that do not want the env
    /// vars), unless one was already set or read; returns the policy in force.
    pub fn install(self) -> BackoffPolicy {
        *GLOBAL.get_or_init(|| self)
    }

    /// The defaults with the given overrides; a cap below the base is raised to the base.
    pub fn from_overrides(base: Option<Duration>, max: Option<Duration>) -> BackoffPolicy {
        let defaults = BackoffPolicy::default();
        let base = base.unwrap_or(defaults.base);
        let max = max.unwrap_or(defaults.max).max(base);
        BackoffPolicy { base, max }
    }

    /// The wait before restart number `failures` (1 for the first exit): none for the first,
    /// then base, 2·base, 4·base, … capped at max.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures <= 1 {
            return Duration::ZERO;
        }
        let doublings = (failures - 2).min(32);
        self.base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max)
    }

    /// How long a container must have run for its back-off to start over.
    pub fn reset_after(&self) -> Duration {
        self.max.saturating_mul(2)
    }
}

/// A duration the way Go prints it in kubelet messages ("10s", "1m20s", "5m0s", "500ms").
pub fn go_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let total = d.as_secs();
    let (hours, minutes, seconds) = (total / 3600, (total / 60) % 60, total % 60);
    let millis = d.subsec_millis();
    let seconds = if millis == 0 {
        format!("{seconds}s")
    } else {
        let fraction = format!("{millis:03}");
        format!("{seconds}.{}s", fraction.trim_end_matches('0'))
    };
    match (hours, minutes) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_defaults_double_to_the_cap() {
        let policy = BackoffPolicy::default();
        let secs: Vec<u64> = (1..=9).map(|n| policy.delay(n).as_secs()).collect();
        assert_eq!(secs, vec![0, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(policy.delay(u32::MAX), Duration::from_secs(300));
        assert_eq!(policy.reset_after(), Duration::from_secs(600));
    }

    #[test]
    fn overrides_keep_the_cap_above_the_base() {
        let policy = BackoffPolicy::from_overrides(
            Some(Duration::from_millis(100)),
            Some(Duration::from_millis(50)),
        );
        assert_eq!(policy.max, Duration::from_millis(100));
        assert_eq!(policy.delay(5), Duration::from_millis(100));
    }

    #[test]
    fn go_durations() {
        let cases = [
            (10_000, "10s"),
            (80_000, "1m20s"),
            (300_000, "5m0s"),
            (500, "500ms"),
            (1_500, "1.5s"),
            (3_600_000, "1h0m0s"),
        ];
        for (millis, want) in cases {
            assert_eq!(go_duration(Duration::from_millis(millis)), want);
        }
    }
}
