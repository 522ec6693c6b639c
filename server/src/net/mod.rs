//! Tokio shells around the core: the client port and the peer transport (admin HTTP
//! lives in `admin`).

pub mod client;
pub mod flow;
pub mod frame;
pub mod latency;
pub mod peer;
pub mod resolve;
