//! paddock-client: an async ZooKeeper client for tokio, with recipes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), paddock_client::Error> {
//! use paddock_client::{Client, CreateMode};
//! let client = Client::connect("127.0.0.1:2181,127.0.0.2:2181/app").await?;
//! client.create("/greeting", b"hello", CreateMode::Persistent).await?;
//! let (data, stat, mut watch) = client.get_data_watch("/greeting").await?;
//! client.set_data("/greeting", b"hi", Some(stat.version)).await?;
//! let event = watch.next().await; // NodeDataChanged /greeting
//! # let _ = (data, event); Ok(()) }
//! ```
//!
//! * [`Client`]: one ZooKeeper session over a shuffled list of servers, with an optional
//!   chroot. It reconnects by itself (resuming the session on the next server) and
//!   reports [`SessionState`]s; many requests can be in flight at once.
//! * Watches are [`WatchStream`]s: one-shot (`*_watch` reads), persistent and
//!   persistent-recursive ([`Client::add_watch`]).
//! * [`recipe`]: leader election, lock, group membership and a config cache, each
//!   correct under connection loss and session expiry, with fencing tokens.
//!
//! A `Client` is one session: once it is Expired or Closed it stays so, and a new
//! `Client` is needed (the recipes report this as a loss rather than hiding it).

pub mod acl;
mod client;
pub mod connect_string;
mod error;
mod multi;
mod ops;
pub mod path;
pub mod recipe;
mod session;
mod tls;
mod watch;

pub use client::{
    Client, ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SESSION_TIMEOUT, SessionStates,
};
pub use connect_string::{ConnectString, HostPort};
pub use error::Error;
pub use multi::{Op, OpResult, ReadOp, ReadResult};
pub use ops::{CONFIG_NODE, CreateOptions};
pub use session::sasl::SaslLogin;
pub use session::{SessionInfo, SessionState};
pub use tls::TlsOptions;
pub use watch::{WatchStream, WatchedEvent};

pub use paddock_proto::{
    Acl, AddWatchMode, ClientInfo, CreateMode, ErrorCode, EventType, Id, Stat, WatcherType,
};
