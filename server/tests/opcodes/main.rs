//! Every operation the `zookeeper-client` crate offers, against the real server binary,
//! with ZooKeeper's error codes and Stat fields.
//!
//! Set `PADDOCK_IT_EXTERNAL=host:port` to run these against another server instead (e.g.
//! Apache ZooKeeper started with `extendedTypesEnabled=true`,
//! `DigestAuthenticationProvider.superDigest=super:xQJmxLMiHGwaqBvst5y6rkB6HQs=` and
//! `-Dznode.container.checkIntervalMs=200`), to check that the expectations here are
//! ZooKeeper's own. Tests that need a server restart or a special config are skipped then.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod multi;
mod nodes;
mod sessions;
mod watches;

use std::time::Duration;

use common::{RawConn, Server, ServerBuilder, eventually, run, within, zk, zk_with};
use paddock_proto::{
    CheckVersionRequest, CreateRequest, ExistsRequest, GetDataRequest, Id, OpCode,
    RemoveWatchesRequest, Request, Response, SetDataRequest, perms,
};
use zookeeper_client::{
    Acl, Acls, AddWatchMode, AuthId, AuthUser, Client, CreateMode, CreateOptions, EnsembleUpdate,
    Error, EventType, LockOptions, LockPrefix, MultiReadResult, MultiWriteError, MultiWriteResult,
    Permission, SessionState, Stat, WatchedEvent,
};

const T: Duration = Duration::from_secs(10);

/// The server a test talks to: its own paddock-server, or an external one.
struct Target {
    _server: Option<Server>,
    connect: String,
    addr: std::net::SocketAddr,
    root: String,
}

fn target(name: &str, builder: ServerBuilder) -> Target {
    match std::env::var("PADDOCK_IT_EXTERNAL") {
        Ok(connect) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            Target {
                addr: connect.parse().expect("PADDOCK_IT_EXTERNAL=ip:port"),
                connect,
                _server: None,
                root: format!("/{name}-{}-{nanos}", std::process::id()),
            }
        }
        Err(_) => {
            let server = builder.start();
            Target {
                connect: server.connect_string(),
                addr: server.addr(),
                _server: Some(server),
                root: format!("/{name}"),
            }
        }
    }
}

fn persistent() -> CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

fn ephemeral() -> CreateOptions<'static> {
    CreateMode::Ephemeral.with_acls(Acls::anyone_all())
}

async fn t<F: std::future::Future>(what: &str, f: F) -> F::Output {
    within(T, what, f).await
}

/// Stat of a node that was just created by a single create with `len` bytes of data.
fn assert_fresh(stat: &Stat, len: i32, owner: i64) {
    assert!(stat.czxid > 0, "{stat:?}");
    assert_eq!(stat.mzxid, stat.czxid, "mzxid == czxid on create: {stat:?}");
    assert_eq!(stat.pzxid, stat.czxid, "pzxid == czxid on create: {stat:?}");
    assert!(stat.ctime > 0, "{stat:?}");
    assert_eq!(stat.mtime, stat.ctime, "{stat:?}");
    assert_eq!(stat.version, 0, "{stat:?}");
    assert_eq!(stat.cversion, 0, "{stat:?}");
    assert_eq!(stat.aversion, 0, "{stat:?}");
    assert_eq!(stat.ephemeral_owner, owner, "{stat:?}");
    assert_eq!(stat.data_length, len, "{stat:?}");
    assert_eq!(stat.num_children, 0, "{stat:?}");
}

/// A read whose reply tells that everything queued for the connection before it arrived.
fn barrier() -> Request {
    Request::Exists(ExistsRequest {
        path: "/".into(),
        watch: false,
    })
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
