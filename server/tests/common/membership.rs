//! Membership changes with real processes: ensembles whose members come and go.
//!
//! [`super::ensemble`] runs a fixed set of members; here servers are added while the
//! ensemble runs (`--join`, which [`super::Server`] does not pass), removed, and
//! restarted with a zoo.cfg that no longer matches the committed membership. Every
//! server runs directly (no fault proxies) on its own 127.0.0.x address with its own
//! client, admin, quorum and election ports, `reconfigEnabled=true` and the super user
//! `super:secret`, and lists every `server.N` line with its client address, as ZooKeeper
//! prints them in `/zookeeper/config`.
//!
//! The write load, the raw-session helpers and the admin GET come from
//! [`super::ensemble`]. Every wait is bounded and polls `/status`; nothing sleeps in place
//! of a condition.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use paddock_proto::{
    AuthPacket, GetDataRequest, OpCode, ReconfigRequest, Request, Response, Stat, SyncRequest, xid,
};
use paddock_testkit::process::{Log, Process, Ready};
use serde_json::Value;

pub use super::ensemble::verify_acks;
use super::ensemble::{Ack, INIT_LIMIT, Load, SYNC_LIMIT, TICK_MS, call, close_session};
use super::hosts::HostsFile;
use super::{RawConn, SERVER_BIN, next_loopback};

/// `superDigest` for `super:secret` (base64 of SHA-1 of "super:secret").
pub const SUPER_DIGEST: &str = "super:lK75jTNcA+U9vtVEw5vB51mj/w4=";
/// What a super user sends in its auth packet.
pub const SUPER_AUTH: &str = "super:secret";

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// One server process
// ---------------------------------------------------------------------------------------

/// A `paddock-server` process with its directory, addresses and log.
pub struct Node {
    pub id: u64,
    pub ip: Ipv4Addr,
    pub client_port: u16,
    pub admin_port: u16,
    pub quorum_port: u16,
    pub election_port: u16,
    dir: tempfile::TempDir,
    /// `--join` targets (client addresses); empty for a founding member.
    join: Vec<SocketAddr>,
    /// A host name its configs use instead of `ip` (see [`ClusterBuilder::named`]).
    pub name: Option<String>,
    /// The hosts file bind-mounted over /etc/hosts in the server's own mount namespace.
    hosts: Option<PathBuf>,
    /// Set for a StatefulSet pod: it starts with the pods' common arguments instead.
    pod: Option<PodArgs>,
    process: Option<Process>,
    /// stderr of every run, runs separated by a marker line.
    log: Log,
    runs: u32,
}

impl Node {
    pub fn client(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.ip, self.client_port))
    }

    pub fn admin(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.ip, self.admin_port))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn cfg_path(&self) -> PathBuf {
        self.dir.path().join("zoo.cfg")
    }

    /// This server's `server.N` value with `role`, as ZooKeeper prints it:
    /// `host:quorum:election:role;host:client` (host: its name if it has one, else ip).
    pub fn spec(&self, role: &str) -> String {
        let host = self.host();
        format!(
            "{host}:{}:{}:{role};{host}:{}",
            self.quorum_port, self.election_port, self.client_port
        )
    }

    /// How configs name this server: its host name, else its address.
    pub fn host(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.ip.to_string())
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_ref().is_some_and(Process::is_alive)
    }

    /// Everything the server wrote to stderr, all runs.
    pub fn log(&self) -> String {
        self.log.text()
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(SERVER_BIN);
        cmd.arg("--config").arg(self.cfg_path());
        if let Some(pod) = &self.pod {
            // The pod template's arguments: what differs per pod comes from its
            // environment (HOSTNAME, the pod IP) and its DNS name.
            let ip = self.ip.to_string();
            let name = self.name.as_deref().expect("a pod has a DNS name");
            cmd.arg("--data-dir")
                .arg(self.data_dir())
                .arg("--myid-from-hostname")
                .args(["--client-address", &ip, "--admin-address", &ip])
                .arg("--peer-address")
                .arg(format!(
                    "{name}:{}:{}",
                    self.quorum_port, self.election_port
                ))
                .args(["--join", &pod.join, "--join-timeout", &pod.join_timeout]);
        } else if !self.join.is_empty() {
            let list: Vec<String> = self.join.iter().map(ToString::to_string).collect();
            cmd.arg("--join").arg(list.join(","));
        }
        cmd.current_dir(self.dir.path()).env("RUST_LOG", "info");
        for var in [
            "PADDOCK_CONFIG",
            "PADDOCK_DATA_DIR",
            "PADDOCK_MYID",
            "PADDOCK_CLIENT_PORT",
            "PADDOCK_CLIENT_ADDRESS",
            "PADDOCK_ADMIN_PORT",
            "PADDOCK_ADMIN_ADDRESS",
            "PADDOCK_JOIN",
            "PADDOCK_JOIN_TIMEOUT",
            "PADDOCK_PEER_ADDRESS",
            "PADDOCK_SUPER_DIGEST",
            "PADDOCK_SUPER_DIGEST_FILE",
            "HOSTNAME",
        ] {
            cmd.env_remove(var);
        }
        if let Some(pod) = &self.pod {
            cmd.env("HOSTNAME", &pod.hostname)
                .env("PADDOCK_SUPER_DIGEST", SUPER_DIGEST);
        }
        if let Some(hosts) = &self.hosts {
            super::hosts::private_etc_hosts(&mut cmd, hosts);
        }
        cmd
    }

    /// Starts the process and waits (bounded) until it listens on its client port.
    pub fn launch(&mut self) {
        let ready = self.spawn();
        let process = self.process.as_mut().expect("spawned");
        if let Err(e) = process.wait_ready(ready, START_TIMEOUT) {
            // Dropping the process kills it.
            self.process = None;
            panic!("server {} did not listen: {e}\n{}", self.id, self.log());
        }
    }

    /// Starts the process without waiting for it to listen (its own address may not be
    /// usable yet); [`Self::is_running`] and `/status` tell how it goes.
    pub fn launch_unready(&mut self) {
        let _ = self.spawn();
    }

    /// Sends `sig` (e.g. `libc::SIGTERM`) to the running process.
    pub fn signal(&mut self, sig: i32) {
        self.process
            .as_mut()
            .expect("server is running")
            .signal(sig);
    }

    /// Waits (bounded) for the process to exit by itself and reaps it; its exit status.
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let process = self.process.as_mut().expect("server is running");
        let status = process.wait_exit(limit).await;
        self.process = None;
        status
    }

    fn spawn(&mut self) -> Ready<()> {
        assert!(self.process.is_none(), "server {} already running", self.id);
        self.runs += 1;
        self.log
            .push_line(&format!("===== run {} =====", self.runs));
        let (process, ready) = Process::spawn(
            &format!("server {}", self.id),
            self.command(),
            &self.log,
            |l| l.contains("paddock-server listening").then_some(()),
        )
        .unwrap_or_else(|e| panic!("spawn {SERVER_BIN}: {e}"));
        self.process = Some(process);
        ready
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let process = self.process.take().expect("server is running");
        if let Some(status) = process.exited() {
            panic!(
                "server {} had already exited ({status})\n{}",
                self.id,
                self.log()
            );
        }
        process.kill9();
    }

    /// Log lines that show a failure of the server itself.
    pub fn fatal_lines(&self) -> Vec<String> {
        super::fatal_lines(&self.log())
    }
}

/// A fresh loopback address with four free ports on it.
fn allocate() -> (Ipv4Addr, [u16; 4]) {
    let ip = next_loopback();
    (ip, std::array::from_fn(|_| super::free_port(ip)))
}

/// Acknowledged writes to wait for between steps: the load goes on throughout.
pub const PROGRESS: usize = 30;
/// How long writes may take to make [`PROGRESS`] after a step.
pub const RESUME: Duration = Duration::from_secs(20);

/// The load: 4 writers, 2 creates in flight each, over the given servers.
pub fn load_on(c: &Cluster, ids: &[u64]) -> Load {
    Load::start(c.client_targets(ids), 4, 2, Duration::from_secs(5))
}

/// Waits (bounded) for [`PROGRESS`] more acknowledged writes; fails with `what`.
pub async fn progress(load: &Load, what: &str) {
    assert!(
        load.wait_more(PROGRESS, RESUME).await,
        "writes stalled {what} (acked {}, errors {:?})",
        load.acked(),
        load.errors()
    );
}

// ---------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------

/// How to build a [`Cluster`].
pub struct ClusterBuilder {
    voters: u64,
    extra: Vec<String>,
    named: bool,
    unresolved: Vec<u64>,
    launch: Option<Vec<u64>>,
}

impl ClusterBuilder {
    /// Every server is named `zk<id>.paddock.test` in every config (its quorum, client
    /// and admin addresses) and runs in its own mount namespace whose /etc/hosts is the
    /// cluster's [`HostsFile`], as pods find each other by DNS name.
    pub fn named(mut self) -> Self {
        self.named = true;
        self
    }

    /// With [`Self::named`]: these servers' names do not resolve at first.
    pub fn unresolved(mut self, ids: &[u64]) -> Self {
        self.unresolved = ids.to_vec();
        self
    }

    /// Launches only these servers (waiting for each to listen); the others are
    /// configured but not started.
    pub fn launch_only(mut self, ids: &[u64]) -> Self {
        self.launch = Some(ids.to_vec());
        self
    }

    /// Adds a line to every zoo.cfg (e.g. `reconfigEnabled=false`; a later line wins).
    pub fn cfg(mut self, line: &str) -> Self {
        self.extra.push(line.to_string());
        self
    }

    /// Writes every config and starts servers 1..=voters (each listening); does not
    /// wait for an election.
    pub fn start(self) -> Cluster {
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            extra: self.extra,
            hosts: self.named.then(HostsFile::new),
        };
        for id in 1..=self.voters {
            cluster.create(id, Vec::new());
            if self.named && !self.unresolved.contains(&id) {
                cluster.resolve(id);
            }
        }
        let ids: Vec<u64> = (1..=self.voters).collect();
        for id in &ids {
            cluster.write_cfg(*id, &ids, None);
        }
        for id in self.launch.as_ref().unwrap_or(&ids) {
            cluster.node_mut(*id).launch();
        }
        cluster
    }
}

/// Servers that change membership through `reconfig`. Dropping it kills every process
/// (and prints every log if the test failed).
pub struct Cluster {
    nodes: BTreeMap<u64, Node>,
    extra: Vec<String>,
    /// The names of a [`ClusterBuilder::named`] cluster.
    hosts: Option<HostsFile>,
}

impl Cluster {
    /// `voters` participants (ids 1..=voters) listed in each other's zoo.cfg.
    pub fn builder(voters: u64) -> ClusterBuilder {
        ClusterBuilder {
            voters,
            extra: Vec::new(),
            named: false,
            unresolved: Vec::new(),
            launch: None,
        }
    }

    /// Makes server `id`'s name resolve to its current address (named clusters).
    pub fn resolve(&mut self, id: u64) {
        let node = self.node(id);
        let (name, ip) = (node.name.clone().expect("a named server"), node.ip);
        self.hosts.as_mut().expect("a named cluster").set(&name, ip);
    }

    /// Moves stopped server `id` to a fresh loopback address, with the same ports, and
    /// points its name there: a pod recreated under its old name with a new IP. The new
    /// address.
    pub fn move_address(&mut self, id: u64) -> Ipv4Addr {
        let node = self.node_mut(id);
        assert!(!node.is_running(), "move server {id} only while it is down");
        let ports = [
            node.client_port,
            node.admin_port,
            node.quorum_port,
            node.election_port,
        ];
        let old = node.ip;
        let ip = (0..64)
            .map(|_| next_loopback())
            .find(|ip| {
                *ip != old
                    && ports
                        .iter()
                        .all(|p| std::net::TcpListener::bind((*ip, *p)).is_ok())
            })
            .expect("a loopback address with the server's ports free");
        node.ip = ip;
        self.resolve(id);
        ip
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no server {id}"))
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no server {id}"))
    }

    /// Ids of the servers whose process runs.
    pub fn running(&mut self) -> Vec<u64> {
        self.nodes
            .iter_mut()
            .filter_map(|(id, n)| n.is_running().then_some(*id))
            .collect()
    }

    pub fn client(&self, id: u64) -> SocketAddr {
        self.node(id).client()
    }

    /// (id, client address) of the given servers, for the write load.
    pub fn client_targets(&self, ids: &[u64]) -> Vec<(u64, SocketAddr)> {
        ids.iter().map(|id| (*id, self.client(*id))).collect()
    }

    /// `server.N=...` of a server in `role`.
    pub fn server_line(&self, id: u64, role: &str) -> String {
        format!("server.{id}={}", self.node(id).spec(role))
    }

    fn create(&mut self, id: u64, join: Vec<SocketAddr>) {
        let (ip, ports) = allocate();
        let name = self.hosts.as_ref().map(|_| format!("zk{id}.paddock.test"));
        self.insert_node(id, ip, ports, join, name, None);
    }

    /// Adds server `id` with a fresh directory; a founding or `--join` server gets a
    /// `<dataDir>/myid`, a pod finds its id in its host name.
    fn insert_node(
        &mut self,
        id: u64,
        ip: Ipv4Addr,
        [client, admin, quorum, election]: [u16; 4],
        join: Vec<SocketAddr>,
        name: Option<String>,
        pod: Option<PodArgs>,
    ) {
        let hosts = self.hosts.as_ref().map(|h| h.path().to_path_buf());
        let dir = tempfile::Builder::new()
            .prefix(&format!("paddock-members-{id}-"))
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        if pod.is_none() {
            std::fs::write(dir.path().join("data").join("myid"), format!("{id}\n")).expect("myid");
        }
        self.nodes.insert(
            id,
            Node {
                id,
                ip,
                client_port: client,
                admin_port: admin,
                quorum_port: quorum,
                election_port: election,
                dir,
                join,
                name,
                hosts,
                pod,
                process: None,
                log: Log::new(),
                runs: 0,
            },
        );
    }

    /// (Re)writes server `id`'s zoo.cfg: the common settings, `server.N` lines (as
    /// participants) for `members`, and, if given, this server's own line in `own_role`.
    pub fn write_cfg(&self, id: u64, members: &[u64], own_role: Option<&str>) {
        let node = self.node(id);
        let mut lines = vec![
            format!("tickTime={TICK_MS}"),
            format!("initLimit={INIT_LIMIT}"),
            format!("syncLimit={SYNC_LIMIT}"),
            format!("dataDir={}", node.data_dir().display()),
            format!("clientPort={}", node.client_port),
            format!("clientPortAddress={}", node.host()),
            format!("admin.serverAddress={}", node.host()),
            format!("admin.serverPort={}", node.admin_port),
            "4lw.commands.whitelist=*".to_string(),
            "standaloneEnabled=false".to_string(),
            "reconfigEnabled=true".to_string(),
            format!("superDigest={SUPER_DIGEST}"),
        ];
        for m in members {
            if *m != id || own_role.is_none() {
                lines.push(self.server_line(*m, "participant"));
            }
        }
        if let Some(role) = own_role {
            lines.push(self.server_line(id, role));
        }
        lines.extend(self.extra.iter().cloned());
        lines.push(String::new());
        std::fs::write(node.cfg_path(), lines.join("\n")).expect("write zoo.cfg");
    }

    /// Starts server `id` as a joiner: its zoo.cfg lists only itself, in `role`
    /// (`observer` as a rule), and it learns the ensemble through `--join` from the
    /// client ports of `via`.
    pub fn start_joiner(&mut self, id: u64, role: &str, via: &[u64]) {
        let join = via.iter().map(|v| self.client(*v)).collect();
        self.create(id, join);
        self.write_cfg(id, &[], Some(role));
        self.node_mut(id).launch();
    }

    /// kill -9.
    pub fn kill9(&mut self, id: u64) {
        self.node_mut(id).kill9();
    }

    /// Starts a stopped server again on its data dir, with whatever zoo.cfg and
    /// `--join` it has now.
    pub fn restart(&mut self, id: u64) {
        self.node_mut(id).launch();
    }

    /// Forgets `--join` for the next start.
    pub fn clear_join(&mut self, id: u64) {
        self.node_mut(id).join.clear();
    }

    /// Starts server `id` with `--join` to the client ports of `via` from its next start.
    pub fn set_join(&mut self, id: u64, via: &[u64]) {
        let join = via.iter().map(|v| self.client(*v)).collect();
        self.node_mut(id).join = join;
    }

    pub fn assert_no_fatal_log(&self) {
        for n in self.nodes.values() {
            let bad = n.fatal_lines();
            assert!(bad.is_empty(), "server {} logged failures: {bad:#?}", n.id);
        }
    }

    // ---- observation ----

    /// `/status` of server `id` (None if it does not answer within a second).
    pub async fn status(&self, id: u64) -> Option<NodeStatus> {
        let body =
            super::ensemble::http_get(self.node(id).admin(), "/status", Duration::from_secs(1))
                .await?;
        NodeStatus::parse(&serde_json::from_str(&body).ok()?)
    }

    /// `/status` of each of `ids` that answers.
    pub async fn statuses(&self, ids: &[u64]) -> BTreeMap<u64, NodeStatus> {
        let mut out = BTreeMap::new();
        for id in ids {
            if let Some(s) = self.status(*id).await {
                out.insert(*id, s);
            }
        }
        out
    }

    /// Polls (bounded) until `cond` holds for the statuses of `ids` (all answering);
    /// panics with `what` and every status otherwise. Returns the statuses.
    pub async fn wait_statuses(
        &self,
        ids: &[u64],
        limit: Duration,
        what: &str,
        cond: impl Fn(&BTreeMap<u64, NodeStatus>) -> bool,
    ) -> BTreeMap<u64, NodeStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let st = self.statuses(ids).await;
            if st.len() == ids.len() && cond(&st) {
                return st;
            }
            if Instant::now() >= deadline {
                panic!("timed out after {limit:?} waiting for {what}: {st:#?}");
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// Waits (bounded) until one of `ids` leads and every other one of them follows or
    /// observes it, synced, in its epoch, and the leader reports each of them synced.
    pub async fn wait_leader(&self, ids: &[u64], limit: Duration) -> u64 {
        let st = self
            .wait_statuses(ids, limit, "a stable leader", |st| {
                stable_leader(st).is_some()
            })
            .await;
        stable_leader(&st).unwrap()
    }

    /// Waits (bounded) until every one of `ids` reports config `version` with exactly
    /// `members` (id → participant|observer).
    pub async fn wait_config(
        &self,
        ids: &[u64],
        version: u64,
        members: &BTreeMap<u64, String>,
        limit: Duration,
    ) {
        self.wait_statuses(
            ids,
            limit,
            &format!("config {version:#x} with {members:?}"),
            |st| {
                st.values()
                    .all(|s| s.version == version && s.members == *members)
            },
        )
        .await;
    }

    /// Waits (bounded) until server `id` reports `role` and synced.
    pub async fn wait_role(&self, id: u64, role: &str, limit: Duration) -> NodeStatus {
        let st = self
            .wait_statuses(
                &[id],
                limit,
                &format!("server {id} {role} and synced"),
                |st| st[&id].role == role && st[&id].synced,
            )
            .await;
        st[&id].clone()
    }

    /// Waits (bounded) until `ids` have a stable leader and all report the same zxid,
    /// equal to their last commit; that zxid.
    pub async fn wait_converged(&self, ids: &[u64], limit: Duration) -> u64 {
        let st = self
            .wait_statuses(ids, limit, "one zxid everywhere", |st| {
                let z: BTreeSet<(u64, u64)> =
                    st.values().map(|s| (s.zxid, s.last_committed)).collect();
                stable_leader(st).is_some()
                    && z.len() == 1
                    && z.iter().next().is_some_and(|(a, b)| a == b)
            })
            .await;
        st.values().next().unwrap().zxid
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let keep = std::env::var_os("MEMBERSHIP_LOG_DIR").map(PathBuf::from);
        let test = std::thread::current()
            .name()
            .unwrap_or("membership")
            .replace("::", "-");
        for n in self.nodes.values() {
            if let Some(dir) = &keep {
                let _ = std::fs::create_dir_all(dir);
                let _ = std::fs::write(dir.join(format!("{test}-server{}.log", n.id)), n.log());
            }
            if std::thread::panicking() {
                eprintln!("--- paddock-server {} ({}) ---\n{}", n.id, n.ip, n.log());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// /status
// ---------------------------------------------------------------------------------------

/// The `GET /status` fields these tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub myid: u64,
    pub role: String,
    pub epoch: u64,
    pub zxid: u64,
    pub last_committed: u64,
    pub synced: bool,
    /// `config.version`.
    pub version: u64,
    /// `config.members`: id → role.
    pub members: BTreeMap<u64, String>,
    /// (id, synced) of each learner, on the leader only.
    pub followers: Option<Vec<(u64, bool)>>,
}

impl NodeStatus {
    fn parse(v: &Value) -> Option<NodeStatus> {
        let followers = match v.get("followers") {
            Some(Value::Array(list)) => Some(
                list.iter()
                    .map(|f| Some((f.get("id")?.as_u64()?, f.get("synced")?.as_bool()?)))
                    .collect::<Option<Vec<_>>>()?,
            ),
            _ => None,
        };
        let config = v.get("config")?;
        let members = config
            .get("members")?
            .as_array()?
            .iter()
            .map(|m| Some((m.get("id")?.as_u64()?, m.get("role")?.as_str()?.to_string())))
            .collect::<Option<BTreeMap<_, _>>>()?;
        Some(NodeStatus {
            myid: v.get("myid")?.as_u64()?,
            role: v.get("role")?.as_str()?.to_string(),
            epoch: v.get("epoch")?.as_u64()?,
            zxid: v.get("zxid")?.as_u64()?,
            last_committed: v.get("lastCommitted")?.as_u64()?,
            synced: v.get("synced")?.as_bool()?,
            version: config.get("version")?.as_u64()?,
            members,
            followers,
        })
    }

    /// Whether this server's committed config lists it.
    pub fn is_member(&self) -> bool {
        self.members.contains_key(&self.myid)
    }
}

/// The leader of `st` if exactly one server leads and every other one follows or
/// observes it (or syncs with it as a joiner), synced, in the leader's epoch, and the
/// leader reports each of them synced.
pub fn stable_leader(st: &BTreeMap<u64, NodeStatus>) -> Option<u64> {
    let leaders: Vec<&NodeStatus> = st.values().filter(|s| s.role == "leader").collect();
    let [leader] = leaders.as_slice() else {
        return None;
    };
    let followers = leader.followers.as_ref()?;
    for s in st.values() {
        if s.myid == leader.myid {
            continue;
        }
        if !["follower", "observer", "joining"].contains(&s.role.as_str())
            || !s.synced
            || s.epoch != leader.epoch
            || !followers.iter().any(|(id, ok)| *id == s.myid && *ok)
        {
            return None;
        }
    }
    Some(leader.myid)
}

// ---------------------------------------------------------------------------------------
// Admin HTTP POST
// ---------------------------------------------------------------------------------------

/// `POST path` with a JSON body (bounded), as the super user; (status code, body).
pub async fn http_post(
    addr: SocketAddr,
    path: &str,
    body: &str,
    limit: Duration,
) -> Option<(u16, String)> {
    let headers = format!(
        "Content-Type: application/json\r\n{}",
        super::SUPER_BASIC_HEADER
    );
    let (code, _, body) = super::admin_http(addr, "POST", path, &headers, body, limit).await?;
    Some((code, body))
}

/// `POST /leadership/transfer` on server `id`, body `{"to": to}` or empty.
pub async fn transfer(cluster: &Cluster, id: u64, to: Option<u64>) -> (u16, Value) {
    let body = to.map_or(String::new(), |t| format!("{{\"to\": {t}}}"));
    let (code, text) = http_post(
        cluster.node(id).admin(),
        "/leadership/transfer",
        &body,
        Duration::from_secs(5),
    )
    .await
    .unwrap_or_else(|| panic!("POST /leadership/transfer to server {id}: no answer"));
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("transfer answer {text:?} is not JSON: {e}"));
    (code, v)
}

// ---------------------------------------------------------------------------------------
// reconfig
// ---------------------------------------------------------------------------------------

/// A session on `addr` (retried, bounded, while the server does not serve), with the
/// super user's credentials added when `superuser`.
pub async fn admin_session(addr: SocketAddr, superuser: bool) -> RawConn {
    let mut conn = super::ensemble::session_on(addr, Duration::from_secs(20)).await;
    if superuser {
        let auth = Request::Auth(AuthPacket {
            kind: 0,
            scheme: "digest".into(),
            auth: SUPER_AUTH.as_bytes().to_vec().into(),
        });
        let reply = call(&mut conn, xid::AUTH, &auth)
            .await
            .expect("auth answered");
        assert_eq!(reply.err(), 0, "super auth accepted");
    }
    conn
}

/// What a reconfig changes: incremental (`joining`, `leaving`) or a new member list.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub joining: Vec<String>,
    pub leaving: Vec<u64>,
    pub new_members: Vec<String>,
    /// fromConfig: the version the change is based on (-1: any).
    pub from: i64,
}

impl Change {
    pub fn join(line: String, from: u64) -> Change {
        Change {
            joining: vec![line],
            from: from as i64,
            ..Change::default()
        }
    }

    pub fn leave(id: u64, from: u64) -> Change {
        Change {
            leaving: vec![id],
            from: from as i64,
            ..Change::default()
        }
    }

    pub fn request(&self) -> Request {
        Request::Reconfig(ReconfigRequest {
            joining_servers: self.joining.join(","),
            leaving_servers: self
                .leaving
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
            new_members: self.new_members.join(","),
            cur_config_id: self.from,
        })
    }
}

/// A committed config as reconfig returns it and `/zookeeper/config` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigText {
    /// id → server line value.
    pub servers: BTreeMap<u64, String>,
    pub version: u64,
}

impl ConfigText {
    /// Parses `server.N=...` lines and a final `version=<hex>` line; panics on anything
    /// else.
    pub fn parse(text: &str) -> ConfigText {
        let lines: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
        let (last, servers) = lines.split_last().expect("config text has lines");
        let version = last
            .strip_prefix("version=")
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .unwrap_or_else(|| panic!("last line of {text:?} is not version=<hex>"));
        let servers = servers
            .iter()
            .map(|l| {
                let (key, value) = l
                    .split_once('=')
                    .unwrap_or_else(|| panic!("config line {l:?}"));
                let id = key
                    .strip_prefix("server.")
                    .and_then(|id| id.parse().ok())
                    .unwrap_or_else(|| panic!("config line {l:?} of {text:?}"));
                (id, value.to_string())
            })
            .collect();
        ConfigText { servers, version }
    }

    /// id → role, as `/status` reports members.
    pub fn roles(&self) -> BTreeMap<u64, String> {
        self.servers
            .iter()
            .map(|(id, v)| {
                let server_part = v.split(';').next().unwrap_or_default();
                let role = if server_part.ends_with(":observer") {
                    "observer"
                } else {
                    "participant"
                };
                (*id, role.to_string())
            })
            .collect()
    }
}

/// Sends a reconfig on `conn` and waits (bounded) for its answer: the new config and the
/// config node's Stat, or the error code. Panics if the connection breaks.
pub async fn reconfig(
    conn: &mut RawConn,
    xid: i32,
    change: &Change,
) -> Result<(ConfigText, Stat), i32> {
    let reply = call(conn, xid, &change.request())
        .await
        .unwrap_or_else(|| panic!("connection lost waiting for the answer to {change:?}"));
    if reply.err() != 0 {
        return Err(reply.err());
    }
    match reply.decode(OpCode::Reconfig.code()) {
        Response::GetData(d) => Ok((
            ConfigText::parse(std::str::from_utf8(&d.data).expect("utf-8 config")),
            d.stat,
        )),
        other => panic!("reconfig answered {other:?}"),
    }
}

/// A reconfig through a new super session on `addr`, retried (bounded) while the
/// ensemble answers NewConfigNoQuorum (a server it needs is still syncing).
pub async fn reconfig_when_synced(
    addr: SocketAddr,
    change: &Change,
    limit: Duration,
) -> (ConfigText, Stat) {
    let deadline = Instant::now() + limit;
    let mut conn = admin_session(addr, true).await;
    let mut xid = 1;
    loop {
        match reconfig(&mut conn, xid, change).await {
            Ok(done) => {
                close_session(&mut conn).await;
                return done;
            }
            Err(e) if e == paddock_proto::ErrorCode::NewConfigNoQuorum.code() => {
                assert!(
                    Instant::now() < deadline,
                    "{change:?} still without a synced quorum after {limit:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
                xid += 1;
            }
            Err(e) => panic!("{change:?} refused with error {e}"),
        }
    }
}

/// `/zookeeper/config` as read on `addr` after a `sync`.
pub async fn read_config(addr: SocketAddr) -> ConfigText {
    let mut conn = super::ensemble::session_on(addr, Duration::from_secs(20)).await;
    let sync = Request::Sync(SyncRequest {
        path: "/zookeeper/config".into(),
    });
    let r = call(&mut conn, 1, &sync).await.expect("sync answered");
    assert_eq!(r.err(), 0, "sync on {addr}");
    let get = Request::GetData(GetDataRequest {
        path: "/zookeeper/config".into(),
        watch: false,
    });
    let r = call(&mut conn, 2, &get).await.expect("getData answered");
    let Response::GetData(d) = r.decode(OpCode::GetData.code()) else {
        panic!("getData answer")
    };
    close_session(&mut conn).await;
    ConfigText::parse(std::str::from_utf8(&d.data).expect("utf-8 config"))
}

// ---------------------------------------------------------------------------------------
// Final checks
// ---------------------------------------------------------------------------------------

/// Every one of `ids` holds every acknowledged write, all hold the same children of
/// [`LOAD_ROOT`], and all report the same zxid (with a stable leader); that zxid.
pub async fn verify_all(cluster: &Cluster, ids: &[u64], acks: &[Ack]) -> u64 {
    let mut first: Option<(u64, BTreeSet<String>)> = None;
    for id in ids {
        let children = verify_acks(cluster.client(*id), acks).await;
        match &first {
            None => first = Some((*id, children)),
            Some((other, theirs)) => {
                let diff: Vec<&String> = theirs.symmetric_difference(&children).collect();
                assert!(
                    diff.is_empty(),
                    "servers {other} and {id} disagree on {} nodes, e.g. {:?}",
                    diff.len(),
                    &diff[..diff.len().min(5)]
                );
            }
        }
    }
    cluster.wait_converged(ids, Duration::from_secs(20)).await
}

/// min / median / max of some durations, for the log.
pub fn summary(mut d: Vec<Duration>) -> String {
    d.sort();
    if d.is_empty() {
        return "none".into();
    }
    format!(
        "min {:?} / median {:?} / max {:?} over {}",
        d[0],
        d[d.len() / 2],
        d[d.len() - 1],
        d.len()
    )
}

/// Whether `path` exists (for dynamic config files in a data dir).
pub fn dynamic_files(data_dir: &Path) -> Vec<String> {
    std::fs::read_dir(data_dir.join("version-2"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("zoo.cfg.dynamic."))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// StatefulSet pods
// ---------------------------------------------------------------------------------------

/// The pods' DNS domain (`<name>-headless.<ns>.svc.cluster.local` in a cluster).
pub const POD_DOMAIN: &str = "paddock-headless.test";
/// The client Service's name, the `--join` target of every pod.
pub const CLIENT_SERVICE: &str = "paddock-client.test";

/// What a pod's server gets from its pod, beyond the shared arguments.
#[derive(Debug, Clone)]
pub struct PodArgs {
    /// `$HOSTNAME`: `paddock-<ordinal>`.
    pub hostname: String,
    /// `--join`: the client Service.
    pub join: String,
    pub join_timeout: String,
}

/// Server `id`'s pod name (ordinal `id - 1`).
pub fn pod_name(id: u64) -> String {
    format!("paddock-{}", id - 1)
}

impl Cluster {
    /// A StatefulSet's pods as the operator runs them: every server has the same
    /// arguments (`--myid-from-hostname --peer-address <pod DNS name> --join <client
    /// Service>`, the super digest in `PADDOCK_SUPER_DIGEST`), the same zoo.cfg listing
    /// servers 1..=`initial` with `;0.0.0.0:<clientPort>`, and the same ports, each on
    /// its own address (the pod IP, passed as --client-address/--admin-address) under its
    /// own name. Nothing is started; the client Service's name does not resolve yet.
    pub fn pods(initial: u64, join_timeout: &str) -> Cluster {
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            extra: Vec::new(),
            hosts: Some(HostsFile::new()),
        };
        let ips: Vec<Ipv4Addr> = (0..initial).map(|_| next_loopback()).collect();
        let ports = shared_ports(&ips);
        for (i, ip) in ips.into_iter().enumerate() {
            cluster.create_pod(i as u64 + 1, ip, ports, join_timeout);
        }
        cluster
    }

    fn create_pod(&mut self, id: u64, ip: Ipv4Addr, ports: [u16; 4], join_timeout: &str) {
        let hostname = pod_name(id);
        let name = format!("{hostname}.{POD_DOMAIN}");
        let pod = PodArgs {
            hostname,
            join: format!("{CLIENT_SERVICE}:{}", ports[0]),
            join_timeout: join_timeout.to_string(),
        };
        self.insert_node(id, ip, ports, Vec::new(), Some(name), Some(pod));
        self.resolve(id);
    }

    /// Writes the ConfigMap's zoo.cfg (the same text) for pod `id`, listing `members`.
    pub fn write_pod_cfg(&self, id: u64, members: &[u64]) {
        let node = self.node(id);
        let mut lines = vec![
            format!("tickTime={TICK_MS}"),
            format!("initLimit={INIT_LIMIT}"),
            format!("syncLimit={SYNC_LIMIT}"),
            format!("clientPort={}", node.client_port),
            format!("admin.serverPort={}", node.admin_port),
            "4lw.commands.whitelist=*".to_string(),
            "standaloneEnabled=false".to_string(),
            "reconfigEnabled=true".to_string(),
        ];
        for m in members {
            let n = self.node(*m);
            lines.push(format!(
                "server.{m}={}:{}:{}:participant;0.0.0.0:{}",
                n.host(),
                n.quorum_port,
                n.election_port,
                n.client_port
            ));
        }
        lines.push(String::new());
        std::fs::write(node.cfg_path(), lines.join("\n")).expect("write zoo.cfg");
    }

    /// Adds pod `id` (a scale-up: the next ordinal) with the pods' ports on a fresh
    /// address and the ConfigMap's zoo.cfg listing `members`; does not start it.
    pub fn add_pod(&mut self, id: u64, members: &[u64]) {
        let any = self.nodes.values().next().expect("a pod");
        let ports = [
            any.client_port,
            any.admin_port,
            any.quorum_port,
            any.election_port,
        ];
        let join_timeout = any
            .pod
            .as_ref()
            .expect("a pod cluster")
            .join_timeout
            .clone();
        let ip = (0..64)
            .map(|_| next_loopback())
            .find(|ip| {
                self.nodes.values().all(|n| n.ip != *ip)
                    && ports
                        .iter()
                        .all(|p| std::net::TcpListener::bind((*ip, *p)).is_ok())
            })
            .expect("a loopback address with the pods' ports free");
        self.create_pod(id, ip, ports, &join_timeout);
        self.write_pod_cfg(id, members);
    }

    /// Gives pod `id` this `--join-timeout` from its next start.
    pub fn set_join_timeout(&mut self, id: u64, timeout: &str) {
        let pod = self.node_mut(id).pod.as_mut().expect("a pod cluster");
        pod.join_timeout = timeout.to_string();
    }

    /// Points the client Service's name at server `id` (a ready pod behind it).
    pub fn route_client_service(&mut self, id: u64) {
        let ip = self.node(id).ip;
        self.hosts
            .as_mut()
            .expect("a named cluster")
            .set(CLIENT_SERVICE, ip);
    }

    /// Wipes server `id`'s data directory (a new, empty volume); the server must be down.
    pub fn wipe_data(&mut self, id: u64) {
        let node = self.node_mut(id);
        assert!(
            !node.is_running(),
            "wipe server {id}'s data only while it is down"
        );
        let data = node.data_dir();
        std::fs::remove_dir_all(&data).expect("remove the data dir");
        std::fs::create_dir_all(&data).expect("recreate the data dir");
    }
}

/// Four ports free on every one of `ips` (pods share their ports, each on its own IP).
fn shared_ports(ips: &[Ipv4Addr]) -> [u16; 4] {
    for _ in 0..50 {
        let p: [u16; 4] = std::array::from_fn(|_| super::free_port(ips[0]));
        if ips[1..].iter().all(|ip| {
            p.iter()
                .all(|port| std::net::TcpListener::bind((*ip, *port)).is_ok())
        }) {
            return [p[0], p[1], p[2], p[3]];
        }
    }
    panic!("no four ports free on all of {ips:?}");
}
