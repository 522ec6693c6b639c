//! paddock-server: a ZooKeeper-compatible coordination server.
//!
//! Layout (DESIGN §1): `config` (zoo.cfg + flags), `tree` (znodes, Stat, ACLs, snapshots),
//! `session`, `watch`, `request` (validation → txn, reads), `txn` (the log records),
//! `core` (the single thread that sequences everything), `net` (tokio client port),
//! `admin` (four-letter words, HTTP, metrics) and `run` (assembles a server). Two layers
//! below live in their own crates, which cannot depend on tokio or on this crate: the ZAB
//! state machine (`paddock-zab`) and durable storage (`paddock-storage`: txn log,
//! snapshots, purge, the data dir's small files). They are re-exported as `zab` and
//! `storage` (and storage's latency `histogram` at its old path) so that the
//! `crate::zab::...`, `crate::storage::...` and `crate::histogram::...` paths name them.

pub mod admin;
pub mod config;
pub mod core;
pub mod hashing;
pub mod hostid;
pub mod join;
pub mod malloc_cache;
pub mod net;
pub mod path;
pub mod request;
pub mod run;
pub mod sasl;
pub mod session;
#[cfg(test)]
mod sim;
pub mod stop;
pub mod tls;
pub mod tree;
pub mod txn;
pub mod watch;
pub use paddock_storage as storage;
pub use paddock_storage::histogram;
pub use paddock_zab as zab;
