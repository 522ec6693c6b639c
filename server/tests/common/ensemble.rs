//! Multi-process ensembles: N `paddock-server` processes, each on its own 127.0.0.x
//! address with its own data directory, `myid` file and zoo.cfg, plus an in-test fault
//! proxy on every peer link.
//!
//! Peer links: a server opens one outbound connection to the quorum address its own
//! zoo.cfg lists for each peer. So server i's zoo.cfg names, for peer j, the address of a
//! proxy P(i→j) (a TCP forwarder running in the test) that forwards to j's real quorum
//! port; server i's own line holds its real address, where it listens. Cutting P(i→j)
//! cuts what i says to j; cutting every proxy from and to a server isolates it. The
//! proxies run on a runtime of their own, so a test thread blocked for a moment (starting
//! a process) never stalls peer traffic.
//!
//! Every wait is bounded and polls `/status` on the admin port; nothing sleeps in place of
//! a condition.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paddock_proto::{
    Acl, ConnectRequest, CreateRequest, GetChildrenRequest, GetDataRequest, Id, OpCode, Request,
    Response, SyncRequest, perms, xid,
};
use paddock_testkit::addr::reserve_ports;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

use super::{RawConn, Server, next_loopback};

/// ZooKeeper-style timing used by every ensemble here (the example config).
pub const TICK_MS: u64 = 500;
pub const INIT_LIMIT: u64 = 10;
pub const SYNC_LIMIT: u64 = 5;

/// The parent of every znode the write load creates.
pub const LOAD_ROOT: &str = "/load";

// ---------------------------------------------------------------------------------------
// /status
// ---------------------------------------------------------------------------------------

/// What `GET /status` reports (the fields the tests use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub myid: u64,
    pub role: String,
    pub epoch: u64,
    pub zxid: u64,
    pub last_committed: u64,
    pub synced: bool,
    /// (id, synced) of each learner, on the leader only.
    pub followers: Option<Vec<(u64, bool)>>,
}

impl Status {
    fn parse(v: &Value) -> Option<Status> {
        let followers = match v.get("followers") {
            Some(Value::Array(list)) => Some(
                list.iter()
                    .map(|f| Some((f.get("id")?.as_u64()?, f.get("synced")?.as_bool()?)))
                    .collect::<Option<Vec<_>>>()?,
            ),
            _ => None,
        };
        Some(Status {
            myid: v.get("myid")?.as_u64()?,
            role: v.get("role")?.as_str()?.to_string(),
            epoch: v.get("epoch")?.as_u64()?,
            zxid: v.get("zxid")?.as_u64()?,
            last_committed: v.get("lastCommitted")?.as_u64()?,
            synced: v.get("synced")?.as_bool()?,
            followers,
        })
    }

    pub fn is_leader(&self) -> bool {
        self.role == "leader"
    }
}

/// `GET path` on an admin port with a bounded wait, as the super user `super:secret`
/// (servers without a superDigest ignore the header); the body on 200.
pub async fn http_get(addr: SocketAddr, path: &str, limit: Duration) -> Option<String> {
    let (code, head, body) =
        super::admin_http(addr, "GET", path, super::SUPER_BASIC_HEADER, "", limit).await?;
    if code != 200 {
        return None;
    }
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "admin answered chunked; this client reads only Content-Length bodies"
    );
    Some(body)
}

// ---------------------------------------------------------------------------------------
// Fault proxy
// ---------------------------------------------------------------------------------------

/// The state of one proxied peer link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Bytes flow.
    Open,
    /// A silent partition: nothing is forwarded (new connections are accepted and held),
    /// but no connection breaks, so only timeouts can tell; what was sent meanwhile is
    /// delivered once the link is open again, as TCP would after a short partition.
    Pause,
    /// Every connection is reset and new ones are refused (the listener is closed).
    Reset,
}

struct Proxy {
    ctl: watch::Sender<Link>,
}

/// Binds a listener with SO_REUSEADDR (a reset proxy rebinds its port later).
fn proxy_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

async fn proxy_main(
    initial: std::net::TcpListener,
    source_ip: Ipv4Addr,
    target: SocketAddr,
    mut ctl: watch::Receiver<Link>,
) {
    let listen = initial.local_addr().expect("proxy address");
    let mut listener = Some(TcpListener::from_std(initial).expect("proxy listener"));
    loop {
        let state = *ctl.borrow_and_update();
        if state == Link::Reset {
            // Closed listener: connections are refused.
            listener = None;
            if ctl.changed().await.is_err() {
                return;
            }
            continue;
        }
        if listener.is_none() {
            // The port was ours a moment ago; retry briefly if the kernel disagrees.
            for _ in 0..250 {
                match proxy_listener(listen) {
                    Ok(l) => {
                        listener = Some(l);
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }
        let Some(l) = listener.as_ref() else {
            eprintln!("fault proxy {listen}: cannot listen again; link stays down");
            return;
        };
        tokio::select! {
            accepted = l.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(proxy_conn(stream, source_ip, target, ctl.clone()));
                }
            }
            changed = ctl.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Waits until the link is open; false if it was reset (or the proxy is gone).
async fn until_open(ctl: &mut watch::Receiver<Link>) -> bool {
    loop {
        let state = *ctl.borrow_and_update();
        match state {
            Link::Open => return true,
            Link::Reset => return false,
            Link::Pause => {
                if ctl.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}

/// Waits until the link is reset (or the proxy is gone).
async fn until_reset(ctl: &mut watch::Receiver<Link>) {
    loop {
        if *ctl.borrow_and_update() == Link::Reset {
            return;
        }
        if ctl.changed().await.is_err() {
            return;
        }
    }
}

fn reset_on_close(s: &TcpStream) {
    // Linger 0: closing sends RST, as a broken link would.
    #[allow(deprecated)]
    let _ = s.set_linger(Some(Duration::ZERO));
}

async fn proxy_conn(
    client: TcpStream,
    source_ip: Ipv4Addr,
    target: SocketAddr,
    mut ctl: watch::Receiver<Link>,
) {
    reset_on_close(&client);
    // A silent partition holds even the connection setup.
    if !until_open(&mut ctl).await {
        return;
    }
    let upstream = async {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::V4(SocketAddrV4::new(source_ip, 0)))?;
        socket.connect(target).await
    };
    let upstream = match tokio::time::timeout(Duration::from_secs(2), upstream).await {
        Ok(Ok(s)) => s,
        _ => return,
    };
    reset_on_close(&upstream);
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    tokio::join!(pump(cr, uw, ctl.clone()), pump(ur, cw, ctl));
}

/// Forwards one direction while the link is open. A pause stops reading (data waits in
/// the kernel buffers, nothing is lost); a reset drops both halves.
async fn pump(mut rd: OwnedReadHalf, mut wr: OwnedWriteHalf, mut ctl: watch::Receiver<Link>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !until_open(&mut ctl).await {
            return;
        }
        let n = tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = ctl.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        // Bytes already read are delivered even if a pause starts now (they were in
        // flight); only a reset drops them.
        tokio::select! {
            w = wr.write_all(&buf[..n]) => if w.is_err() { return },
            () = until_reset(&mut ctl) => return,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The ensemble
// ---------------------------------------------------------------------------------------

/// One member: a [`Server`] with its place in the ensemble.
pub struct Member {
    pub id: u64,
    pub observer: bool,
    pub server: Server,
    /// Where it listens for peers.
    pub quorum: SocketAddr,
    /// Frozen by SIGSTOP.
    pub stopped: bool,
    /// Killed and not restarted.
    pub down: bool,
}

impl Member {
    pub fn admin(&self) -> SocketAddr {
        self.server.admin_addr().expect("fixed admin port")
    }

    pub fn client(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Running and not frozen.
    pub fn is_up(&self) -> bool {
        !self.down && !self.stopped
    }
}

/// How to build an ensemble.
#[derive(Clone)]
pub struct EnsembleBuilder {
    participants: usize,
    observers: usize,
    extra: Vec<String>,
    /// zoo.cfg lines of one member only.
    member_extra: BTreeMap<u64, Vec<String>>,
    proxied: bool,
    sync_limit: u64,
}

impl EnsembleBuilder {
    /// Adds `n` observers (ids after the participants).
    pub fn observers(mut self, n: usize) -> Self {
        self.observers = n;
        self
    }

    /// Adds a zoo.cfg line to every member's config (e.g. `weight.1=3`).
    pub fn cfg(mut self, line: &str) -> Self {
        self.extra.push(line.to_string());
        self
    }

    /// Adds a zoo.cfg line to member `id`'s config only.
    pub fn member_cfg(mut self, id: u64, line: &str) -> Self {
        self.member_extra
            .entry(id)
            .or_default()
            .push(line.to_string());
        self
    }

    /// syncLimit (in ticks of [`TICK_MS`]) instead of [`SYNC_LIMIT`].
    pub fn sync_limit(mut self, ticks: u64) -> Self {
        self.sync_limit = ticks;
        self
    }

    /// Peers connect directly, without fault proxies.
    pub fn direct(mut self) -> Self {
        self.proxied = false;
        self
    }

    /// Writes the configs and starts every process (each one listening); does not wait
    /// for an election: see [`Ensemble::wait_stable`].
    pub fn start(self) -> Ensemble {
        let n = self.participants + self.observers;
        let ids: Vec<u64> = (1..=n as u64).collect();
        let ips: BTreeMap<u64, Ipv4Addr> = ids.iter().map(|id| (*id, next_loopback())).collect();
        // Ports on each member's own address, all reserved (held) at once: client, admin,
        // quorum, election, then one per proxy P(i→j) listening there.
        let proxies_each = if self.proxied { n - 1 } else { 0 };
        let mut held: BTreeMap<u64, Vec<std::net::TcpListener>> = ips
            .iter()
            .map(|(id, ip)| (*id, reserve_ports(*ip, 4 + proxies_each)))
            .collect();
        let ports: BTreeMap<u64, [u16; 4]> = held
            .iter()
            .map(|(id, ls)| {
                let p: Vec<u16> = ls[..4]
                    .iter()
                    .map(|l| l.local_addr().unwrap().port())
                    .collect();
                (*id, [p[0], p[1], p[2], p[3]])
            })
            .collect();
        let quorum: BTreeMap<u64, SocketAddr> = ids
            .iter()
            .map(|id| {
                (
                    *id,
                    SocketAddr::V4(SocketAddrV4::new(ips[id], ports[id][2])),
                )
            })
            .collect();
        let is_observer = |id: u64| id as usize > self.participants;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .expect("proxy runtime");
        // P(i→j) listens on i's address; its outbound side binds i's address too, so j
        // sees the connection come from i.
        let mut proxies = BTreeMap::new();
        let mut proxy_addr = BTreeMap::new();
        if self.proxied {
            for &i in &ids {
                for &j in &ids {
                    if i == j {
                        continue;
                    }
                    let std_listener = held.get_mut(&i).unwrap().pop().expect("proxy port");
                    let listen = std_listener.local_addr().unwrap();
                    std_listener.set_nonblocking(true).expect("nonblocking");
                    let (tx, rx) = watch::channel(Link::Open);
                    runtime.spawn(proxy_main(std_listener, ips[&i], quorum[&j], rx));
                    proxies.insert((i, j), Proxy { ctl: tx });
                    proxy_addr.insert((i, j), listen);
                }
            }
        }

        // The servers bind the member ports themselves.
        drop(held);
        let mut members = Vec::new();
        for &i in &ids {
            let [client, admin, _, _] = ports[&i];
            let mut lines = vec![
                format!("tickTime={TICK_MS}"),
                format!("initLimit={INIT_LIMIT}"),
                format!("syncLimit={}", self.sync_limit),
                format!("clientPort={client}"),
                format!("clientPortAddress={}", ips[&i]),
                format!("admin.serverPort={admin}"),
                "4lw.commands.whitelist=*".to_string(),
            ];
            for &j in &ids {
                let addr = if i == j || !self.proxied {
                    quorum[&j]
                } else {
                    proxy_addr[&(i, j)]
                };
                let role = if is_observer(j) { ":observer" } else { "" };
                lines.push(format!(
                    "server.{j}={}:{}:{}{role}",
                    addr.ip(),
                    addr.port(),
                    ports[&j][3]
                ));
            }
            lines.extend(self.extra.iter().cloned());
            lines.extend(self.member_extra.get(&i).into_iter().flatten().cloned());
            let mut builder = Server::builder()
                .ip(ips[&i])
                .client_port(client)
                .admin_port(admin)
                .myid(i);
            for l in &lines {
                builder = builder.cfg(l);
            }
            members.push(Member {
                id: i,
                observer: is_observer(i),
                server: builder.start(),
                quorum: quorum[&i],
                stopped: false,
                down: false,
            });
        }
        Ensemble {
            members,
            proxies,
            runtime: Some(runtime),
        }
    }
}

/// A running ensemble. Dropping it kills every process and stops the proxies.
pub struct Ensemble {
    pub members: Vec<Member>,
    proxies: BTreeMap<(u64, u64), Proxy>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Ensemble {
    /// An ensemble of `participants` voters (ids 1..=participants), proxied.
    pub fn builder(participants: usize) -> EnsembleBuilder {
        EnsembleBuilder {
            participants,
            observers: 0,
            extra: Vec::new(),
            member_extra: BTreeMap::new(),
            proxied: true,
            sync_limit: SYNC_LIMIT,
        }
    }

    pub fn member(&self, id: u64) -> &Member {
        &self.members[(id - 1) as usize]
    }

    pub fn member_mut(&mut self, id: u64) -> &mut Member {
        &mut self.members[(id - 1) as usize]
    }

    pub fn ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// (id, client address) of every member, for the load.
    pub fn client_targets(&self) -> Vec<(u64, SocketAddr)> {
        self.members.iter().map(|m| (m.id, m.client())).collect()
    }

    /// `host:port,...` of every member.
    pub fn connect_string(&self) -> String {
        self.members
            .iter()
            .map(|m| m.client().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    // ---- faults ----

    /// kill -9.
    pub fn kill9(&mut self, id: u64) {
        let m = self.member_mut(id);
        m.server.kill9();
        m.down = true;
        m.stopped = false;
    }

    /// Starts a killed member again on its data directory (same addresses).
    pub fn restart(&mut self, id: u64) {
        let m = self.member_mut(id);
        assert!(m.down, "server {id} is running");
        m.server.restart();
        m.down = false;
    }

    pub fn sigstop(&mut self, id: u64) {
        let m = self.member_mut(id);
        m.server.sigstop();
        m.stopped = true;
    }

    pub fn sigcont(&mut self, id: u64) {
        let m = self.member_mut(id);
        m.server.sigcont();
        m.stopped = false;
    }

    /// Sets the link from `from` to `to` (what `from` sends to `to`).
    pub fn set_link(&self, from: u64, to: u64, state: Link) {
        let proxy = self
            .proxies
            .get(&(from, to))
            .expect("a proxied ensemble has a proxy per ordered pair");
        proxy.ctl.send_replace(state);
    }

    /// Cuts (or restores) every link from and to `id`.
    pub fn isolate(&self, id: u64, state: Link) {
        for other in self.ids() {
            if other != id {
                self.set_link(id, other, state);
                self.set_link(other, id, state);
            }
        }
    }

    /// Opens every link.
    pub fn heal(&self) {
        for p in self.proxies.values() {
            p.ctl.send_replace(Link::Open);
        }
    }

    // ---- observation ----

    /// `/status` of one member (None if it does not answer within a second).
    pub async fn status(&self, id: u64) -> Option<Status> {
        let body = http_get(self.member(id).admin(), "/status", Duration::from_secs(1)).await?;
        let v: Value = serde_json::from_str(&body).ok()?;
        Status::parse(&v)
    }

    /// `/status` of every member that is up and answers.
    pub async fn statuses(&self) -> BTreeMap<u64, Status> {
        let mut out = BTreeMap::new();
        for m in &self.members {
            if m.is_up()
                && let Some(s) = self.status(m.id).await
            {
                out.insert(m.id, s);
            }
        }
        out
    }

    /// The leader, if exactly one member that is up says it leads and every other member
    /// that is up follows (or observes) it, synced, in the same epoch, and the leader
    /// reports each of them synced.
    pub async fn stable_leader(&self) -> Option<u64> {
        let st = self.statuses().await;
        let up: Vec<&Member> = self.members.iter().filter(|m| m.is_up()).collect();
        if st.len() != up.len() {
            return None;
        }
        let leaders: Vec<&Status> = st.values().filter(|s| s.is_leader()).collect();
        let [leader] = leaders.as_slice() else {
            return None;
        };
        let followers = leader.followers.as_ref()?;
        for m in up {
            if m.id == leader.myid {
                continue;
            }
            let s = &st[&m.id];
            let role = if m.observer { "observer" } else { "follower" };
            if s.role != role || !s.synced || s.epoch != leader.epoch {
                return None;
            }
            if !followers.iter().any(|(id, synced)| *id == m.id && *synced) {
                return None;
            }
        }
        Some(leader.myid)
    }

    /// Waits (bounded) for a stable ensemble; its leader. Panics with every status.
    pub async fn wait_stable(&self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.stable_leader().await {
                return l;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no stable ensemble within {limit:?}: {:#?}",
                    self.statuses().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until some member other than `old` leads in an epoch above
    /// `old_epoch` (whatever the others are doing); (leader, epoch).
    pub async fn wait_new_leader(&self, old: u64, old_epoch: u64, limit: Duration) -> (u64, u64) {
        let deadline = Instant::now() + limit;
        loop {
            for (id, s) in self.statuses().await {
                if id != old && s.is_leader() && s.epoch > old_epoch {
                    return (id, s.epoch);
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "no new leader within {limit:?}: {:#?}",
                    self.statuses().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until every member that is up reports the same zxid and
    /// lastCommitted, with a stable leader; that zxid.
    pub async fn wait_converged(&self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        loop {
            if self.stable_leader().await.is_some() {
                let st = self.statuses().await;
                let zxids: BTreeSet<(u64, u64)> =
                    st.values().map(|s| (s.zxid, s.last_committed)).collect();
                let up = self.members.iter().filter(|m| m.is_up()).count();
                if st.len() == up && zxids.len() == 1 {
                    let (z, c) = *zxids.iter().next().unwrap();
                    if z == c {
                        return z;
                    }
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "the ensemble did not converge to one zxid within {limit:?}: {:#?}",
                    self.statuses().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Checks the member logs for panics and fatal errors.
    pub fn assert_no_fatal_log(&self) {
        for m in &self.members {
            m.server.assert_no_fatal_log();
        }
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        // For a look at a passing run: ENSEMBLE_LOG_DIR=/some/dir keeps every log.
        if let Some(dir) = std::env::var_os("ENSEMBLE_LOG_DIR") {
            let dir = std::path::PathBuf::from(dir);
            let test = std::thread::current()
                .name()
                .unwrap_or("ensemble")
                .replace("::", "-");
            let _ = std::fs::create_dir_all(&dir);
            for m in &self.members {
                let _ = std::fs::write(
                    dir.join(format!("{test}-server{}.log", m.id)),
                    m.server.log(),
                );
            }
        }
        // A frozen process still dies of SIGKILL (Server's own drop sends it).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Client helpers
// ---------------------------------------------------------------------------------------

pub fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

fn connect_request(session: Option<&(i64, Vec<u8>)>, last_zxid: i64) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: last_zxid,
        time_out: 10_000,
        session_id: session.map_or(0, |s| s.0),
        passwd: session.map_or(vec![0u8; 16], |s| s.1.clone()).into(),
        read_only: Some(false),
    }
}

/// A new session on `addr`, retried (bounded) while the server is not serving.
pub async fn session_on(addr: SocketAddr, limit: Duration) -> RawConn {
    let deadline = Instant::now() + limit;
    loop {
        if let Some((conn, resp)) =
            RawConn::try_session(addr, &connect_request(None, 0), Duration::from_secs(5)).await
            && resp.session_id != 0
        {
            return conn;
        }
        assert!(
            Instant::now() < deadline,
            "no session on {addr} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `req` and waits for its reply (bounded); None if the connection broke.
pub async fn call(conn: &mut RawConn, xid: i32, req: &Request) -> Option<super::Reply> {
    conn.send_frame(&req.encode(xid)).await.ok()?;
    loop {
        let reply = conn.try_read_reply(Duration::from_secs(10)).await?;
        if reply.header.xid == xid::NOTIFICATION {
            continue;
        }
        assert_eq!(reply.header.xid, xid, "replies in order");
        return Some(reply);
    }
}

/// Creates a persistent node through `addr` (retrying, bounded, while the ensemble
/// settles); an existing node is fine.
pub async fn ensure_node(addr: SocketAddr, path: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let mut conn = session_on(addr, limit).await;
        let req = Request::Create(CreateRequest {
            path: path.into(),
            data: vec![].into(),
            acl: open_acl(),
            flags: 0,
        });
        if let Some(r) = call(&mut conn, 1, &req).await
            && (r.err() == 0 || r.err() == paddock_proto::ErrorCode::NodeExists.code())
        {
            close_session(&mut conn).await;
            return;
        }
        assert!(
            Instant::now() < deadline,
            "could not create {path} through {addr} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// closeSession, best effort (so test sessions do not linger until they expire).
pub async fn close_session(conn: &mut RawConn) {
    let _ = conn
        .send_frame(&Request::CloseSession.encode(i32::MAX - 1))
        .await;
    let _ = conn.try_read_reply(Duration::from_secs(2)).await;
}

// ---------------------------------------------------------------------------------------
// Write load
// ---------------------------------------------------------------------------------------

/// One acknowledged write.
#[derive(Debug, Clone)]
pub struct Ack {
    pub path: String,
    pub data: Vec<u8>,
    /// The member whose client connection acknowledged it.
    pub server: u64,
    /// The txn's zxid (from the reply header).
    pub zxid: i64,
    pub sent: Instant,
    pub acked: Instant,
}

/// How long a writer waits for a server to accept its session before trying the next.
const WRITER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the writers share.
struct LoadShared {
    acks: Mutex<Vec<Ack>>,
    /// Error replies by code.
    errors: Mutex<BTreeMap<i32, u64>>,
    stop: AtomicBool,
    sent: Mutex<u64>,
}

/// Writers creating unique znodes under [`LOAD_ROOT`] against every member in turn; each
/// keeps a couple of creates in flight, moves to the next member when its connection
/// breaks, and resumes its session there (new session if it expired).
pub struct Load {
    shared: Arc<LoadShared>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

/// Error codes a create may legitimately get while servers come and go.
pub const TRANSIENT_ERRORS: [paddock_proto::ErrorCode; 4] = [
    paddock_proto::ErrorCode::ConnectionLoss,
    paddock_proto::ErrorCode::OperationTimeout,
    paddock_proto::ErrorCode::SessionExpired,
    paddock_proto::ErrorCode::SessionMoved,
];

impl Load {
    /// Starts `writers` writers (on the current runtime). `io_timeout` bounds every wait
    /// for a reply: longer than any freeze a test wants writers to sit through.
    pub fn start(
        targets: Vec<(u64, SocketAddr)>,
        writers: usize,
        depth: usize,
        io_timeout: Duration,
    ) -> Load {
        let shared = Arc::new(LoadShared {
            acks: Mutex::new(Vec::new()),
            errors: Mutex::new(BTreeMap::new()),
            stop: AtomicBool::new(false),
            sent: Mutex::new(0),
        });
        let targets = Arc::new(targets);
        // Loads after the first in a process write under names of their own, so that a
        // test can run one after another on the same ensemble.
        let generation = LOADS.fetch_add(1, Ordering::SeqCst);
        let prefix = match generation {
            0 => String::new(),
            g => format!("g{g}"),
        };
        let handles = (0..writers)
            .map(|w| {
                tokio::spawn(writer(
                    format!("{prefix}w{w:02}"),
                    w,
                    targets.clone(),
                    shared.clone(),
                    depth,
                    io_timeout,
                ))
            })
            .collect();
        Load { shared, handles }
    }

    /// Acknowledged writes so far.
    pub fn acked(&self) -> usize {
        self.shared.acks.lock().unwrap().len()
    }

    pub fn acks(&self) -> Vec<Ack> {
        self.shared.acks.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` more writes than now are acknowledged; false on timeout.
    pub async fn wait_more(&self, n: usize, limit: Duration) -> bool {
        let goal = self.acked() + n;
        super::eventually(limit, || {
            let ok = self.acked() >= goal;
            async move { ok }
        })
        .await
    }

    /// The first write sent after `t` and acknowledged, with a zxid epoch above
    /// `epoch_above` (the new leader's): how long after `t` it was acknowledged.
    pub fn first_ack_after(&self, t: Instant, epoch_above: u64) -> Option<Duration> {
        self.shared
            .acks
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.sent > t && (a.zxid >> 32) as u64 > epoch_above)
            .map(|a| a.acked - t)
            .min()
    }

    /// Waits (bounded) for a write sent after `t` to be acknowledged in an epoch above
    /// `epoch_above`; the time from `t` to that acknowledgement.
    pub async fn wait_resumed(&self, t: Instant, epoch_above: u64, limit: Duration) -> Duration {
        let ok = super::eventually(limit, || {
            let ok = self.first_ack_after(t, epoch_above).is_some();
            async move { ok }
        })
        .await;
        assert!(
            ok,
            "writes did not resume within {limit:?} (acked so far: {}, errors: {:?})",
            self.acked(),
            self.errors()
        );
        self.first_ack_after(t, epoch_above).unwrap()
    }

    pub fn errors(&self) -> BTreeMap<i32, u64> {
        self.shared.errors.lock().unwrap().clone()
    }

    pub fn sent(&self) -> u64 {
        *self.shared.sent.lock().unwrap()
    }

    /// Stops the writers (each waits, bounded, for what it has in flight) and returns
    /// every acknowledged write. Panics on an error reply no failover explains.
    pub async fn stop(self, limit: Duration) -> Vec<Ack> {
        self.shared.stop.store(true, Ordering::SeqCst);
        for h in self.handles {
            super::within(limit, "writer stops", h)
                .await
                .expect("writer task");
        }
        let errors = self.shared.errors.lock().unwrap().clone();
        for code in errors.keys() {
            assert!(
                TRANSIENT_ERRORS.iter().any(|e| e.code() == *code),
                "a create failed with error {code} (errors by code: {errors:?})"
            );
        }
        let acks = self.shared.acks.lock().unwrap().clone();
        let paths: BTreeSet<&str> = acks.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(paths.len(), acks.len(), "each path acknowledged once");
        acks
    }
}

/// Loads started so far in this process.
static LOADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn writer(
    name: String,
    w: usize,
    targets: Arc<Vec<(u64, SocketAddr)>>,
    shared: Arc<LoadShared>,
    depth: usize,
    io_timeout: Duration,
) {
    let mut session: Option<(i64, Vec<u8>)> = None;
    let mut last_zxid: i64 = 0;
    let mut seq: u64 = 0;
    let mut next = w;
    while !shared.stop.load(Ordering::SeqCst) {
        let (server, addr) = targets[next % targets.len()];
        next += 1;
        // Like ZooKeeper clients, give up on a server that does not answer the handshake
        // soon (a frozen one accepts the TCP connection but never answers).
        let handshake = RawConn::try_session(
            addr,
            &connect_request(session.as_ref(), last_zxid),
            WRITER_CONNECT_TIMEOUT,
        )
        .await;
        let Some((mut conn, resp)) = handshake else {
            // Down, frozen, not serving, or behind what we saw: try the next one soon.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if resp.session_id == 0 {
            // Expired: the next attempt opens a new session.
            session = None;
            continue;
        }
        session = Some((resp.session_id, resp.passwd.0.clone()));
        let mut outstanding: std::collections::VecDeque<(i32, String, Vec<u8>, Instant)> =
            Default::default();
        let mut cxid = 0;
        loop {
            let stopping = shared.stop.load(Ordering::SeqCst);
            let mut broken = false;
            while outstanding.len() < depth && !stopping {
                cxid += 1;
                seq += 1;
                let path = format!("{LOAD_ROOT}/{name}-{seq:07}");
                let data = format!("w{w}:{seq}").into_bytes();
                let req = Request::Create(CreateRequest {
                    path: path.clone(),
                    data: data.clone().into(),
                    acl: open_acl(),
                    flags: 0,
                });
                let sent = Instant::now();
                *shared.sent.lock().unwrap() += 1;
                if conn.send_frame(&req.encode(cxid)).await.is_err() {
                    broken = true;
                    break;
                }
                outstanding.push_back((cxid, path, data, sent));
            }
            if broken {
                break;
            }
            let Some((want, path, data, sent)) = outstanding.pop_front() else {
                break;
            };
            let Some(reply) = conn.try_read_reply(io_timeout).await else {
                break;
            };
            if reply.header.xid == xid::NOTIFICATION {
                outstanding.push_front((want, path, data, sent));
                continue;
            }
            assert_eq!(reply.header.xid, want, "writer {w}: replies in order");
            last_zxid = last_zxid.max(reply.header.zxid);
            if reply.header.err != 0 {
                *shared
                    .errors
                    .lock()
                    .unwrap()
                    .entry(reply.header.err)
                    .or_default() += 1;
                break;
            }
            shared.acks.lock().unwrap().push(Ack {
                path,
                data,
                server,
                zxid: reply.header.zxid,
                sent,
                acked: Instant::now(),
            });
        }
        if shared.stop.load(Ordering::SeqCst) {
            close_session(&mut conn).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Final checks
// ---------------------------------------------------------------------------------------

/// Connects to member `id` directly and checks it with [`verify_acks`].
pub async fn verify_member(ens: &Ensemble, id: u64, acks: &[Ack]) -> BTreeSet<String> {
    verify_acks(ens.member(id).client(), acks).await
}

/// Connects to `addr`, `sync`s, and checks that every acknowledged write is there with
/// its data; the children of [`LOAD_ROOT`] it has.
pub async fn verify_acks(addr: SocketAddr, acks: &[Ack]) -> BTreeSet<String> {
    let mut conn = session_on(addr, Duration::from_secs(20)).await;
    let sync = Request::Sync(SyncRequest {
        path: LOAD_ROOT.into(),
    });
    let r = call(&mut conn, 1, &sync)
        .await
        .unwrap_or_else(|| panic!("sync on {addr}: connection lost"));
    assert_eq!(r.err(), 0, "sync on {addr}");
    let r = call(
        &mut conn,
        2,
        &Request::GetChildren(GetChildrenRequest {
            path: LOAD_ROOT.into(),
            watch: false,
        }),
    )
    .await
    .unwrap_or_else(|| panic!("getChildren on {addr}: connection lost"));
    let Response::GetChildren(children) = r.decode(OpCode::GetChildren.code()) else {
        panic!("getChildren answer")
    };
    let children: BTreeSet<String> = children.children.into_iter().collect();
    let prefix = format!("{LOAD_ROOT}/");
    let missing: Vec<&Ack> = acks
        .iter()
        .filter(|a| !children.contains(a.path.trim_start_matches(&prefix)))
        .collect();
    assert!(
        missing.is_empty(),
        "{addr} lacks {} of {} acknowledged writes, e.g. {:?}",
        missing.len(),
        acks.len(),
        &missing[..missing.len().min(5)]
    );
    for chunk in acks.chunks(128) {
        for (k, a) in chunk.iter().enumerate() {
            let req = Request::GetData(GetDataRequest {
                path: a.path.clone(),
                watch: false,
            });
            conn.send_frame(&req.encode(100 + k as i32))
                .await
                .expect("send getData");
        }
        for (k, a) in chunk.iter().enumerate() {
            let r = conn
                .try_read_reply(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("getData on {addr}: connection lost"));
            assert_eq!(r.header.xid, 100 + k as i32);
            assert_eq!(r.err(), 0, "{addr}: getData {}", a.path);
            let Response::GetData(d) = r.decode(OpCode::GetData.code()) else {
                panic!("getData answer")
            };
            assert_eq!(
                d.data.as_bytes(),
                Some(&a.data[..]),
                "{addr}: data of {}",
                a.path
            );
        }
    }
    close_session(&mut conn).await;
    children
}

/// Every member that is up holds every acknowledged write, all hold the same children
/// of [`LOAD_ROOT`], and all report the same zxid.
pub async fn verify_all(ens: &Ensemble, acks: &[Ack]) {
    let mut first: Option<(u64, BTreeSet<String>)> = None;
    for m in &ens.members {
        if !m.is_up() {
            continue;
        }
        let children = verify_member(ens, m.id, acks).await;
        match &first {
            None => first = Some((m.id, children)),
            Some((other, theirs)) => {
                let diff: Vec<&String> = theirs.symmetric_difference(&children).collect();
                assert!(
                    diff.is_empty(),
                    "servers {other} and {} disagree on {} nodes, e.g. {:?}",
                    m.id,
                    diff.len(),
                    &diff[..diff.len().min(5)]
                );
            }
        }
    }
    ens.wait_converged(Duration::from_secs(20)).await;
}

/// Members 1 and 2 form a quorum and serve writes; member 3 never syncs.
pub fn member_3_stays_out(ens: &Ensemble) {
    super::run(async {
        let formed = super::eventually(Duration::from_secs(60), || async {
            let s1 = ens.status(1).await;
            let s2 = ens.status(2).await;
            matches!((s1, s2), (Some(a), Some(b))
                if a.synced && b.synced && (a.is_leader() || b.is_leader()))
        })
        .await;
        assert!(formed, "members 1 and 2 form a quorum");
        let one_leads = ens.status(1).await.is_some_and(|s| s.is_leader());
        let leader = if one_leads { 1 } else { 2 };
        ensure_node(ens.member(leader).client(), "/ok", Duration::from_secs(20)).await;
        // Member 3 cannot get its messages in: it never syncs with the leader.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let s3 = ens.status(3).await;
        assert!(
            !s3.as_ref().is_some_and(|s| s.synced),
            "member 3 stays out: {s3:?}"
        );
    });
}
