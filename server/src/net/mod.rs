//! Tokio shells around the core: the client port (admin HTTP lives in `admin`).

pub mod client;
