//! Host names, resolved when they are used.
//!
//! In a Kubernetes pod a peer's DNS name is stable but its address is not: a recreated
//! pod comes back under the same name with a new IP, and a name may not resolve at all
//! until the pod (or its DNS record) exists. So nothing here caches an address: every
//! connection attempt looks the name up again (ZOOKEEPER-1506), and a listener whose
//! own name does not resolve yet waits for it instead of exiting.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tracing::{info, warn};

/// How long one lookup may take before the caller treats the name as unresolvable for
/// this attempt (a DNS server that does not answer must not stall a redial loop).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an address could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    /// The name does not resolve (yet).
    #[error("{target} does not resolve: {reason}")]
    Unresolved { target: String, reason: String },
    /// The name resolved, but binding or listening on it failed.
    #[error("cannot listen on {target} ({addr}): {source}")]
    Bind {
        target: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl AddrError {
    /// Worth waiting for: the name is missing, or points at an address this host does
    /// not have yet (a DNS record that still names the pod's previous IP).
    pub fn is_transient(&self) -> bool {
        match self {
            AddrError::Unresolved { .. } => true,
            AddrError::Bind { source, .. } => source.kind() == std::io::ErrorKind::AddrNotAvailable,
        }
    }
}

/// Resolves `host:port` now, preferring an IPv4 address.
pub async fn lookup(host: &str, port: u16) -> Result<SocketAddr, AddrError> {
    let target = || {
        crate::config::HostPort {
            host: host.to_string(),
            port,
        }
        .to_string()
    };
    let unresolved = |reason: String| AddrError::Unresolved {
        target: target(),
        reason,
    };
    let found = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| unresolved("lookup timed out".into()))?
        .map_err(|e| unresolved(e.to_string()))?;
    let addrs: Vec<SocketAddr> = found.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| unresolved("no address".into()))
}

/// Decides when a repeating failure is worth another log line: the first time, then at
/// most once per `every`. Pure, so a loop that retries every 50 ms logs every few seconds.
#[derive(Debug, Clone)]
pub struct LogEvery {
    every: Duration,
    last: Option<Instant>,
    /// Failures since the last logged one.
    pub suppressed: u64,
}

impl LogEvery {
    pub fn new(every: Duration) -> LogEvery {
        LogEvery {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether to log a failure that happens at `now`; counts the ones it swallows.
    pub fn should_log(&mut self, now: Instant) -> bool {
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.every);
        if due {
            self.last = Some(now);
        } else {
            self.suppressed += 1;
        }
        due
    }

    /// Whether a failure was ever logged (so that a recovery is worth a line too).
    pub fn has_logged(&self) -> bool {
        self.last.is_some()
    }

    /// Takes the count of swallowed failures for the next line.
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

/// How often a waiting listener or redial loop repeats its warning.
pub const WAIT_LOG_EVERY: Duration = Duration::from_secs(10);
/// Pause between attempts to bind a listener whose address is not usable yet.
const BIND_RETRY: Duration = Duration::from_millis(250);

/// Resolves `host:port` and binds a listener there with `bind`, waiting (and logging at
/// a bounded rate) while the name does not resolve or names an address this host lacks.
/// Any other failure (the port is taken, permission denied) is returned at once.
pub async fn bind_when_resolvable<F>(
    what: &str,
    host: &str,
    port: u16,
    mut bind: F,
) -> Result<TcpListener, AddrError>
where
    F: FnMut(SocketAddr) -> std::io::Result<TcpListener>,
{
    let mut log = LogEvery::new(WAIT_LOG_EVERY);
    let started = Instant::now();
    loop {
        let attempt = match lookup(host, port).await {
            Ok(addr) => bind(addr).map_err(|source| AddrError::Bind {
                target: crate::config::HostPort {
                    host: host.to_string(),
                    port,
                }
                .to_string(),
                addr,
                source,
            }),
            Err(e) => Err(e),
        };
        match attempt {
            Ok(listener) => {
                if log.has_logged() {
                    info!(
                        what,
                        waited_ms = started.elapsed().as_millis() as u64,
                        "listening address became usable"
                    );
                }
                return Ok(listener);
            }
            Err(e) if e.is_transient() => {
                if log.should_log(Instant::now()) {
                    let retries = log.take_suppressed();
                    warn!(what, error = %e, retries, "waiting for this server's own address");
                }
                tokio::time::sleep(BIND_RETRY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A listening socket on `addr` with SO_REUSEADDR and the given accept backlog.
pub fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_first_failure_then_at_most_once_per_period() {
        let mut log = LogEvery::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(!log.has_logged());
        assert!(log.should_log(t0));
        assert!(!log.should_log(t0 + Duration::from_secs(1)));
        assert!(!log.should_log(t0 + Duration::from_secs(9)));
        assert_eq!(log.take_suppressed(), 2);
        assert!(log.should_log(t0 + Duration::from_secs(10)));
        assert!(!log.should_log(t0 + Duration::from_secs(15)));
        assert!(log.should_log(t0 + Duration::from_secs(21)));
        assert_eq!(log.take_suppressed(), 1);
        assert!(log.has_logged());
    }

    #[test]
    fn only_missing_names_and_absent_addresses_are_worth_waiting_for() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let bind = |kind| AddrError::Bind {
            target: "x:1".into(),
            addr,
            source: std::io::Error::from(kind),
        };
        assert!(
            AddrError::Unresolved {
                target: "x:1".into(),
                reason: "no".into()
            }
            .is_transient()
        );
        assert!(bind(std::io::ErrorKind::AddrNotAvailable).is_transient());
        assert!(!bind(std::io::ErrorKind::AddrInUse).is_transient());
        assert!(!bind(std::io::ErrorKind::PermissionDenied).is_transient());
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_an_unresolved_error() {
        let err = lookup("no-such-host.invalid", 2888).await.unwrap_err();
        assert!(matches!(err, AddrError::Unresolved { .. }), "{err}");
        assert!(
            err.to_string().contains("no-such-host.invalid:2888"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_literal_resolves_to_itself() {
        let addr = lookup("127.0.0.7", 2888).await.unwrap();
        assert_eq!(addr, "127.0.0.7:2888".parse().unwrap());
    }
}
