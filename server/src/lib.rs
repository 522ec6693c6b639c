//! paddock-server: a ZooKeeper-compatible coordination server.
//!
//! Layout (DESIGN §1): `config` (zoo.cfg + flags), `tree` (znodes, Stat, ACLs, snapshots),
//! `session`, `watch`, `request` (validation → txn, reads), `txn` (the log records),
//! `core` (the single thread that sequences everything), `storage` (txn log, snapshots,
//! purge), `net` (tokio client port), `admin` (four-letter words, HTTP, metrics) and
//! `run` (assembles a server). The ZAB state machine lives in its own crate,
//! `paddock-zab`, which cannot depend on tokio or on this crate; it is re-exported as
//! `zab` so that the core's `crate::zab::...` paths name it.

pub mod admin;
pub mod config;
pub mod core;
pub mod histogram;
pub mod hostid;
pub mod join;
pub mod net;
pub mod path;
pub mod request;
pub mod run;
pub mod sasl;
pub mod session;
pub mod stop;
pub mod storage;
pub mod tls;
pub mod tree;
pub mod txn;
pub mod watch;
pub use paddock_zab as zab;
