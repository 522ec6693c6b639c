//! What the workspace's integration tests share: a dev-dependency only, of
//! paddock-server, paddock-client and paddock-sidecar (their `tests/common` modules
//! re-export what their test bodies use).
//!
//! One job per module:
//! * [`addr`]: loopback addresses (127.0.0.0/8 only) and free ports;
//! * [`process`]: a binary started as a child process, its stderr captured, killed on
//!   drop (by its own pid: only processes the test started);
//! * [`workspace`]: the workspace root and another package's binary, built by cargo;
//! * [`watchdog`]: what must happen once the test binary is gone (children it leaked);
//! * [`wait`]: bounded waits; the ones that panic say what they waited for;
//! * [`rt`]: tokio runtimes for test bodies, with a time bound for the whole test;
//! * [`http`]: a small HTTP/1.1 client (hyper, and raw sockets for malformed requests);
//! * [`sse`]: a server-sent events reader over [`http`].
//!
//! Nothing here binds or connects outside 127.0.0.0/8, and every wait is bounded.

pub mod addr;
pub mod http;
pub mod process;
pub mod rt;
pub mod sse;
pub mod wait;
pub mod watchdog;
pub mod workspace;

pub use wait::{eventually, poll_until, within};
