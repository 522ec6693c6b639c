//! Every operation the server offers, as typed methods on [`Client`]. Paths are the
//! caller's (inside the chroot); errors name them.

use std::time::Duration;

use paddock_proto::{
    Acl, AddWatchMode, AddWatchRequest, CheckWatchesRequest, ClientInfo, CreateMode, CreateRequest,
    CreateTtlRequest, DeleteRequest, ErrorCode, ExistsRequest, GetAclRequest,
    GetAllChildrenNumberRequest, GetChildrenRequest, GetDataRequest, GetEphemeralsRequest,
    ReconfigRequest, RemoveWatchesRequest, Request, Response, SetAclRequest, SetDataRequest, Stat,
    SyncRequest, WatcherType,
};

use crate::acl;
use crate::client::Client;
use crate::error::Error;
use crate::multi::{Op, OpResult, ReadOp, ReadResult, multi_failure};
use crate::path;
use crate::watch::{self, PendingKind, PendingWatch, WatchStream};

/// Where ZooKeeper keeps the ensemble's dynamic configuration (never chrooted).
pub const CONFIG_NODE: &str = "/zookeeper/config";

/// The largest TTL ZooKeeper accepts (EphemeralType.TTL's 40-bit limit), in ms.
const MAX_TTL_MS: u128 = 0xFF_FFFF_FFFF;

/// How a node is created: mode, ACL and (for TTL modes) time to live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    pub mode: CreateMode,
    pub acl: Vec<Acl>,
    /// Required for the TTL modes, refused for the others.
    pub ttl: Option<Duration>,
}

impl CreateOptions {
    pub fn new(mode: CreateMode) -> CreateOptions {
        CreateOptions {
            mode,
            acl: acl::open_unsafe(),
            ttl: None,
        }
    }

    pub fn acl(mut self, acl: Vec<Acl>) -> Self {
        self.acl = acl;
        self
    }

    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions::new(CreateMode::Persistent)
    }
}

impl From<CreateMode> for CreateOptions {
    fn from(mode: CreateMode) -> Self {
        CreateOptions::new(mode)
    }
}

/// The create request for `options`: create2 (answers with the Stat), createContainer
/// or createTTL.
pub(crate) fn create_request(
    server_path: &str,
    data: Option<&[u8]>,
    options: &CreateOptions,
    client_path: &str,
) -> Result<Request, Error> {
    if options.acl.is_empty() {
        return Err(Error::server(
            ErrorCode::InvalidAcl,
            Some(client_path.to_string()),
        ));
    }
    let plain = CreateRequest {
        path: server_path.to_string(),
        data: data.into(),
        acl: options.acl.clone(),
        flags: options.mode.code(),
    };
    match (options.mode.is_ttl(), options.ttl) {
        (true, Some(ttl)) => {
            let ms = ttl.as_millis();
            if ms == 0 || ms > MAX_TTL_MS {
                return Err(Error::BadArguments(format!(
                    "TTL of {ttl:?} for {client_path} is outside 1 ms..={MAX_TTL_MS} ms"
                )));
            }
            Ok(Request::CreateTtl(CreateTtlRequest {
                path: plain.path,
                data: plain.data,
                acl: plain.acl,
                flags: plain.flags,
                ttl: ms as i64,
            }))
        }
        (true, None) => Err(Error::BadArguments(format!(
            "{} needs a TTL ({client_path})",
            options.mode
        ))),
        (false, Some(_)) => Err(Error::BadArguments(format!(
            "a TTL needs a TTL mode, not {} ({client_path})",
            options.mode
        ))),
        (false, None) if options.mode.is_container() => Ok(Request::CreateContainer(plain)),
        (false, None) => Ok(Request::Create2(plain)),
    }
}

/// ZooKeeper's "any version" is -1.
pub(crate) fn version_or_any(version: Option<i32>) -> i32 {
    version.unwrap_or(-1)
}

fn unexpected(op: &str, response: &Response) -> Error {
    Error::Protocol(format!("unexpected reply to {op}: {response:?}"))
}

impl Client {
    fn server_path(&self, path: &str) -> String {
        self.chroot_map().to_server(path)
    }

    fn client_path(&self, server_path: &str) -> String {
        self.chroot_map().to_client_lossy(server_path)
    }

    fn pending_watch(&self, kind: PendingKind, path: &str) -> (PendingWatch, WatchStream) {
        let (listener, stream) = watch::channel();
        (
            PendingWatch {
                kind,
                path: self.server_path(path),
                listener,
            },
            stream,
        )
    }

    // ---- create / delete ---------------------------------------------------------------

    /// Creates a node; returns its actual path (with the sequence number for sequential
    /// modes) and its Stat. `options` may be just a [`CreateMode`].
    pub async fn create(
        &self,
        path: &str,
        data: &[u8],
        options: impl Into<CreateOptions>,
    ) -> Result<(String, Stat), Error> {
        self.create_nullable(path, Some(data), options).await
    }

    /// [`create`](Self::create) whose data may be null (`None`): as in ZooKeeper, a
    /// node created with null data reads back as null, not as empty (see
    /// [`get_data_nullable`](Self::get_data_nullable)); its dataLength is 0.
    pub async fn create_nullable(
        &self,
        path: &str,
        data: Option<&[u8]>,
        options: impl Into<CreateOptions>,
    ) -> Result<(String, Stat), Error> {
        let options = options.into();
        path::check(path, options.mode.is_sequential())?;
        let request = create_request(&self.server_path(path), data, &options, path)?;
        let reply = self.call(request, Some(path), None).await?;
        match reply.response {
            Response::Create2(r) => Ok((self.client_path(&r.path), r.stat)),
            other => Err(unexpected("create", &other)),
        }
    }

    /// Creates `path` and any missing ancestors (empty, with `mode`), like `mkdir -p`.
    /// Succeeds if it exists already.
    pub async fn ensure_path(&self, path: &str, mode: CreateMode) -> Result<(), Error> {
        path::check(path, false)?;
        if path == "/" || self.exists(path).await?.is_some() {
            return Ok(());
        }
        let mut prefix = String::new();
        for segment in path[1..].split('/') {
            prefix.push('/');
            prefix.push_str(segment);
            match self.create(&prefix, b"", mode).await {
                Ok(_) => {}
                Err(Error::Server {
                    code: ErrorCode::NodeExists,
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Deletes a node, if at `version` when given.
    pub async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), Error> {
        path::check(path, false)?;
        let request = Request::Delete(DeleteRequest {
            path: self.server_path(path),
            version: version_or_any(version),
        });
        self.call(request, Some(path), None).await.map(|_| ())
    }

    /// Queues a delete nobody waits for: cleanup from `Drop`, or after giving up on a
    /// reply. It is sent on the next connection if we are disconnected.
    pub(crate) fn delete_detached(&self, path: &str) {
        self.call_detached(Request::Delete(DeleteRequest {
            path: self.server_path(path),
            version: -1,
        }));
    }

    /// Deletes a node and everything under it (zkCli's `deleteall`). Nodes that vanish
    /// meanwhile are fine; the deepest go first.
    pub async fn delete_all(&self, path: &str) -> Result<(), Error> {
        let mut nodes = vec![path.to_string()];
        nodes.extend(self.descendants(path).await?);
        for node in nodes.iter().rev() {
            match self.delete(node, None).await {
                Ok(())
                | Err(Error::Server {
                    code: ErrorCode::NoNode,
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Every node under `path` (not `path` itself), parents before children, siblings
    /// sorted.
    pub async fn descendants(&self, path: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([path.to_string()]);
        while let Some(dir) = queue.pop_front() {
            let mut children = match self.get_children(&dir).await {
                Ok(children) => children,
                Err(Error::Server {
                    code: ErrorCode::NoNode,
                    ..
                }) if dir != path => continue,
                Err(e) => return Err(e),
            };
            children.sort();
            for child in children {
                let full = path::join(&dir, &child);
                out.push(full.clone());
                queue.push_back(full);
            }
        }
        Ok(out)
    }

    // ---- reads -----------------------------------------------------------------------

    /// The node's Stat, or `None` if it does not exist.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>, Error> {
        self.exists_inner(path, None).await
    }

    /// Like [`exists`](Self::exists), plus a one-shot watch: NodeCreated if the node
    /// does not exist; NodeDataChanged or NodeDeleted if it does.
    pub async fn exists_watch(&self, path: &str) -> Result<(Option<Stat>, WatchStream), Error> {
        path::check(path, false)?;
        let (watch, stream) = self.pending_watch(PendingKind::Exists, path);
        let stat = self.exists_inner(path, Some(watch)).await?;
        Ok((stat, stream))
    }

    async fn exists_inner(
        &self,
        path: &str,
        watch: Option<PendingWatch>,
    ) -> Result<Option<Stat>, Error> {
        path::check(path, false)?;
        let request = Request::Exists(ExistsRequest {
            path: self.server_path(path),
            watch: watch.is_some(),
        });
        match self.call(request, Some(path), watch).await {
            Ok(reply) => match reply.response {
                Response::Stat(stat) => Ok(Some(stat)),
                other => Err(unexpected("exists", &other)),
            },
            Err(Error::Server {
                code: ErrorCode::NoNode,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The node's data and Stat. Null data (written by a client that sent none, such as
    /// zkCli's `create` without data) reads as empty here; use
    /// [`get_data_nullable`](Self::get_data_nullable) to tell the two apart.
    pub async fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat), Error> {
        let (data, stat) = self.get_data_inner(path, None).await?;
        Ok((data.unwrap_or_default(), stat))
    }

    /// The node's data (`None` when it is null, as ZooKeeper keeps it apart from empty)
    /// and Stat.
    pub async fn get_data_nullable(&self, path: &str) -> Result<(Option<Vec<u8>>, Stat), Error> {
        self.get_data_inner(path, None).await
    }

    /// Like [`get_data`](Self::get_data), plus a one-shot watch for NodeDataChanged or
    /// NodeDeleted.
    pub async fn get_data_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, WatchStream), Error> {
        let (data, stat, stream) = self.get_data_watch_nullable(path).await?;
        Ok((data.unwrap_or_default(), stat, stream))
    }

    /// Like [`get_data_nullable`](Self::get_data_nullable), plus a one-shot watch for
    /// NodeDataChanged or NodeDeleted.
    pub async fn get_data_watch_nullable(
        &self,
        path: &str,
    ) -> Result<(Option<Vec<u8>>, Stat, WatchStream), Error> {
        path::check(path, false)?;
        let (watch, stream) = self.pending_watch(PendingKind::Data, path);
        let (data, stat) = self.get_data_inner(path, Some(watch)).await?;
        Ok((data, stat, stream))
    }

    async fn get_data_inner(
        &self,
        path: &str,
        watch: Option<PendingWatch>,
    ) -> Result<(Option<Vec<u8>>, Stat), Error> {
        path::check(path, false)?;
        let request = Request::GetData(GetDataRequest {
            path: self.server_path(path),
            watch: watch.is_some(),
        });
        let reply = self.call(request, Some(path), watch).await?;
        match reply.response {
            Response::GetData(r) => Ok((r.data.into_option(), r.stat)),
            other => Err(unexpected("getData", &other)),
        }
    }

    /// The names of the node's children (unsorted, as the server lists them).
    pub async fn get_children(&self, path: &str) -> Result<Vec<String>, Error> {
        path::check(path, false)?;
        let request = Request::GetChildren(GetChildrenRequest {
            path: self.server_path(path),
            watch: false,
        });
        let reply = self.call(request, Some(path), None).await?;
        match reply.response {
            Response::GetChildren(r) => Ok(r.children),
            other => Err(unexpected("getChildren", &other)),
        }
    }

    /// The children and the node's Stat (getChildren2).
    pub async fn get_children_stat(&self, path: &str) -> Result<(Vec<String>, Stat), Error> {
        self.get_children2(path, None).await
    }

    /// Children and Stat, plus a one-shot watch for NodeChildrenChanged or NodeDeleted.
    pub async fn get_children_watch(
        &self,
        path: &str,
    ) -> Result<(Vec<String>, Stat, WatchStream), Error> {
        path::check(path, false)?;
        let (watch, stream) = self.pending_watch(PendingKind::Child, path);
        let (children, stat) = self.get_children2(path, Some(watch)).await?;
        Ok((children, stat, stream))
    }

    async fn get_children2(
        &self,
        path: &str,
        watch: Option<PendingWatch>,
    ) -> Result<(Vec<String>, Stat), Error> {
        path::check(path, false)?;
        let request = Request::GetChildren2(GetChildrenRequest {
            path: self.server_path(path),
            watch: watch.is_some(),
        });
        let reply = self.call(request, Some(path), watch).await?;
        match reply.response {
            Response::GetChildren2(r) => Ok((r.children, r.stat)),
            other => Err(unexpected("getChildren2", &other)),
        }
    }

    /// How many nodes are under `path`, at any depth.
    pub async fn get_all_children_number(&self, path: &str) -> Result<u32, Error> {
        path::check(path, false)?;
        let request = Request::GetAllChildrenNumber(GetAllChildrenNumberRequest {
            path: self.server_path(path),
        });
        let reply = self.call(request, Some(path), None).await?;
        match reply.response {
            Response::AllChildrenNumber(r) => Ok(r.total_number.max(0) as u32),
            other => Err(unexpected("getAllChildrenNumber", &other)),
        }
    }

    /// This session's ephemeral nodes whose path starts with `prefix` (`/` for all),
    /// as paths inside the chroot.
    pub async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let request = Request::GetEphemerals(GetEphemeralsRequest {
            prefix_path: self.server_path(prefix),
        });
        let reply = self.call(request, Some(prefix), None).await?;
        match reply.response {
            Response::Ephemerals(r) => {
                let chroot = self.chroot_map();
                let mut paths: Vec<String> = r
                    .ephemerals
                    .iter()
                    .filter_map(|p| chroot.to_client(p))
                    .collect();
                paths.sort();
                Ok(paths)
            }
            other => Err(unexpected("getEphemerals", &other)),
        }
    }

    /// The node's ACL and Stat.
    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), Error> {
        path::check(path, false)?;
        let request = Request::GetAcl(GetAclRequest {
            path: self.server_path(path),
        });
        let reply = self.call(request, Some(path), None).await?;
        match reply.response {
            Response::GetAcl(r) => Ok((r.acl, r.stat)),
            other => Err(unexpected("getACL", &other)),
        }
    }

    /// Makes the server we talk to catch up with the leader, so that the next read
    /// sees every write committed before the sync.
    pub async fn sync(&self, path: &str) -> Result<(), Error> {
        path::check(path, false)?;
        let request = Request::Sync(SyncRequest {
            path: self.server_path(path),
        });
        self.call(request, Some(path), None).await.map(|_| ())
    }

    // ---- writes ----------------------------------------------------------------------

    /// Replaces the node's data, if at `version` when given; returns the new Stat.
    pub async fn set_data(
        &self,
        path: &str,
        data: &[u8],
        version: Option<i32>,
    ) -> Result<Stat, Error> {
        self.set_data_nullable(path, Some(data), version).await
    }

    /// [`set_data`](Self::set_data) whose data may be null (`None`), which the node
    /// then reads back as (see [`get_data_nullable`](Self::get_data_nullable)).
    pub async fn set_data_nullable(
        &self,
        path: &str,
        data: Option<&[u8]>,
        version: Option<i32>,
    ) -> Result<Stat, Error> {
        path::check(path, false)?;
        let request = Request::SetData(SetDataRequest {
            path: self.server_path(path),
            data: data.into(),
            version: version_or_any(version),
        });
        let reply = self.call(request, Some(path), None).await?;
        match reply.response {
            Response::Stat(stat) => Ok(stat),
            other => Err(unexpected("setData", &other)),
        }
    }

    /// Replaces the node's ACL, if its ACL is at `aversion` when given.
    pub async fn set_acl(
        &self,
        path: &str,
        acl: &[Acl],
        aversion: Option<i32>,
    ) -> Result<Stat, Error> {
        path::check(path, false)?;
        if acl.is_empty() {
            return Err(Error::server(ErrorCode::InvalidAcl, Some(path.to_string())));
        }
        let request = Request::SetAcl(SetAclRequest {
            path: self.server_path(path),
            acl: acl.to_vec(),
            version: version_or_any(aversion),
        });
        let reply = self.call(request, Some(path), None).await?;
        match reply.response {
            Response::Stat(stat) => Ok(stat),
            other => Err(unexpected("setACL", &other)),
        }
    }

    /// Applies `ops` atomically: all of them or none. On failure the error names the
    /// first failing op ([`Error::MultiFailed`]).
    pub async fn multi(&self, ops: &[Op]) -> Result<Vec<OpResult>, Error> {
        let chroot = self.chroot_map();
        let requests = ops
            .iter()
            .map(|op| op.to_request(chroot))
            .collect::<Result<Vec<_>, _>>()?;
        let reply = self.call(Request::Multi(requests), None, None).await?;
        match reply.response {
            Response::Multi(results) => {
                let results: Vec<OpResult> = results
                    .into_iter()
                    .map(|r| OpResult::from_wire(r, chroot))
                    .collect();
                match multi_failure(&results, ops) {
                    Some(err) => Err(err),
                    None => Ok(results),
                }
            }
            other => Err(unexpected("multi", &other)),
        }
    }

    /// Several reads in one round trip; each succeeds or fails on its own.
    pub async fn multi_read(&self, ops: &[ReadOp]) -> Result<Vec<ReadResult>, Error> {
        let chroot = self.chroot_map();
        let requests = ops
            .iter()
            .map(|op| op.to_request(chroot))
            .collect::<Result<Vec<_>, _>>()?;
        let reply = self.call(Request::MultiRead(requests), None, None).await?;
        let Response::Multi(results) = reply.response else {
            return Err(unexpected("multiRead", &reply.response));
        };
        Ok(results
            .into_iter()
            .zip(ops)
            .map(|(result, op)| match result {
                paddock_proto::MultiResult::GetData(data, stat) => ReadResult::Data {
                    data: data.into_option(),
                    stat,
                },
                paddock_proto::MultiResult::GetChildren(children) => {
                    ReadResult::Children { children }
                }
                paddock_proto::MultiResult::Error(code) => ReadResult::Error(Error::server(
                    ErrorCode::from_code(code).unwrap_or(ErrorCode::SystemError),
                    Some(op.path().to_string()),
                )),
                other => ReadResult::Error(Error::Protocol(format!(
                    "unexpected multiRead result {other:?}"
                ))),
            })
            .collect())
    }

    // ---- watches ---------------------------------------------------------------------

    /// A persistent watch on `path` (and, recursively, on its descendants): it fires
    /// for every change until removed or the session ends.
    pub async fn add_watch(&self, path: &str, mode: AddWatchMode) -> Result<WatchStream, Error> {
        path::check(path, false)?;
        let kind = match mode {
            AddWatchMode::Persistent => PendingKind::Persistent,
            AddWatchMode::PersistentRecursive => PendingKind::PersistentRecursive,
        };
        let (watch, stream) = self.pending_watch(kind, path);
        let request = Request::AddWatch(AddWatchRequest {
            path: self.server_path(path),
            mode: mode.code(),
        });
        self.call(request, Some(path), Some(watch)).await?;
        Ok(stream)
    }

    /// Removes this session's watches of `kind` on `path`, on the server and here
    /// (their streams end). Fails with NoWatcher if there were none.
    pub async fn remove_watches(&self, path: &str, kind: WatcherType) -> Result<(), Error> {
        path::check(path, false)?;
        let request = Request::RemoveWatches(RemoveWatchesRequest {
            path: self.server_path(path),
            kind: kind.code(),
        });
        self.call(request, Some(path), None).await?;
        self.forget_watches(self.server_path(path), kind);
        Ok(())
    }

    /// Fails with NoWatcher unless the server holds a watch of `kind` on `path` for
    /// this session.
    pub async fn check_watches(&self, path: &str, kind: WatcherType) -> Result<(), Error> {
        path::check(path, false)?;
        let request = Request::CheckWatches(CheckWatchesRequest {
            path: self.server_path(path),
            kind: kind.code(),
        });
        self.call(request, Some(path), None).await.map(|_| ())
    }

    // ---- auth and identity -----------------------------------------------------------

    /// Adds credentials to the session (e.g. `digest`, `user:password`); they are
    /// presented again after every reconnect. A refusal ends the session (AuthFailed).
    pub async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<(), Error> {
        self.send_auth(scheme, auth).await
    }

    /// The identities the session is authenticated as.
    pub async fn who_am_i(&self) -> Result<Vec<ClientInfo>, Error> {
        let reply = self.call(Request::WhoAmI, None, None).await?;
        match reply.response {
            Response::WhoAmI(r) => Ok(r.client_info),
            other => Err(unexpected("whoAmI", &other)),
        }
    }

    // ---- ensemble configuration --------------------------------------------------------

    /// The ensemble's dynamic configuration (`/zookeeper/config`, whatever the chroot).
    pub async fn get_config(&self) -> Result<(Vec<u8>, Stat), Error> {
        let request = Request::GetData(GetDataRequest {
            path: CONFIG_NODE.to_string(),
            watch: false,
        });
        let reply = self.call(request, Some(CONFIG_NODE), None).await?;
        match reply.response {
            Response::GetData(r) => Ok((r.data.into_vec(), r.stat)),
            other => Err(unexpected("getConfig", &other)),
        }
    }

    /// Changes the ensemble's membership: incrementally (`joining`/`leaving`, comma
    /// separated `server.N=...` specs and ids) or wholesale (`new_members`), guarded by
    /// `from_config` (the config version expected, -1 for any). Returns the new config.
    pub async fn reconfig(
        &self,
        joining: Option<&str>,
        leaving: Option<&str>,
        new_members: Option<&str>,
        from_config: Option<i64>,
    ) -> Result<(Vec<u8>, Stat), Error> {
        let request = Request::Reconfig(ReconfigRequest {
            joining_servers: joining.unwrap_or_default().to_string(),
            leaving_servers: leaving.unwrap_or_default().to_string(),
            new_members: new_members.unwrap_or_default().to_string(),
            cur_config_id: from_config.unwrap_or(-1),
        });
        let reply = self.call(request, Some(CONFIG_NODE), None).await?;
        match reply.response {
            Response::GetData(r) => Ok((r.data.into_vec(), r.stat)),
            other => Err(unexpected("reconfig", &other)),
        }
    }
}
