//! The admin port's HTTP limits. Serving itself (header and body read timeouts, the body
//! size cap, the connection cap) is `paddock-httpserve`, shared with the sidecar and the
//! operator's metrics port.

use std::time::Duration;

pub use paddock_httpserve::HttpLimits;

/// The admin port's limits: its bodies are tiny (`{"to": 3}`), its clients are probes,
/// Prometheus and operators.
pub const ADMIN_LIMITS: HttpLimits = HttpLimits {
    header_timeout: Duration::from_secs(10),
    body_timeout: Duration::from_secs(10),
    max_body_bytes: 64 * 1024,
    max_connections: 256,
};
