//! Test harness: runs the real `paddock-server` binary (built by cargo for the
//! integration tests) in a temporary directory on its own loopback address, and offers
//! raw-socket and `zookeeper-client` helpers to talk to it.
//!
//! Nothing here builds anything: the binary is `CARGO_BIN_EXE_paddock-server`.
//! Every wait is bounded; a server that does not come up in time fails the test with
//! its log. What all the workspace's tests share (addresses, processes, waits, HTTP)
//! is `paddock-testkit`'s, re-exported here under the names the tests use.

#![allow(dead_code)]

pub mod ensemble;
pub mod hosts;
pub mod membership;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use paddock_proto::{
    ConnectRequest, ConnectResponse, Jute, Reader, ReplyHeader, Request, Response, WatcherEvent,
    xid,
};
use paddock_testkit::process::{Log, Process, logged_addr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use paddock_testkit::addr::{free_port, next_loopback};
/// One admin HTTP exchange, bounded: see [`paddock_testkit::http::raw_request`].
pub use paddock_testkit::http::raw_request as admin_http;
/// Polls a condition (bounded) and tells whether it held: the server's tests check
/// the outcome themselves. See [`paddock_testkit::wait::poll_until`].
pub use paddock_testkit::wait::poll_until as eventually;
pub use paddock_testkit::within;

pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_paddock-server");
/// The admin HTTP credentials of the super user `super:secret` (every test server that
/// sets a superDigest uses that user), as a request header line.
pub const SUPER_BASIC_HEADER: &str = "Authorization: Basic c3VwZXI6c2VjcmV0\r\n";

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Running async test bodies
// ---------------------------------------------------------------------------------------

/// `zookeeper-client` spawns its session task through `spawns`; without a runtime feature
/// it needs a spawner installed for the current thread. This one hands tasks to tokio.
struct TokioSpawn;

impl spawns_core::Spawn for TokioSpawn {
    fn spawn(&self, task: spawns_core::Task) {
        tokio::spawn(Box::into_pin(task.future));
    }
}

static TOKIO_SPAWN: TokioSpawn = TokioSpawn;

/// Runs an async test body on a current-thread tokio runtime (so every task, including
/// the zookeeper-client session tasks, runs on this thread, where the spawner is set).
pub fn run<F: Future>(body: F) -> F::Output {
    let _scope = spawns_core::enter(&TOKIO_SPAWN);
    paddock_testkit::rt::run(body)
}

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

/// Options for a server: zoo.cfg lines, written to `<tempdir>/zoo.cfg`.
#[derive(Default, Clone)]
pub struct ServerBuilder {
    cfg: Vec<String>,
    /// Loopback address to use (default: the next one of [`next_loopback`]).
    ip: Option<Ipv4Addr>,
    /// Client port of the first start (0: any).
    client_port: u16,
    /// Admin HTTP port (default: any).
    admin_port: Option<u16>,
    /// Written to `<dataDir>/myid`, as ZooKeeper ensembles do.
    myid: Option<u64>,
}

impl ServerBuilder {
    /// Adds one zoo.cfg line, e.g. `"extendedTypesEnabled=true"`.
    pub fn cfg(mut self, line: &str) -> Self {
        self.cfg.push(line.to_string());
        self
    }

    /// Listen on this loopback address (client, admin) instead of a fresh one.
    pub fn ip(mut self, ip: Ipv4Addr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// The client port of the first start (restarts reuse whatever port was used).
    pub fn client_port(mut self, port: u16) -> Self {
        self.client_port = port;
        self
    }

    /// A fixed admin HTTP port (kept across restarts).
    pub fn admin_port(mut self, port: u16) -> Self {
        self.admin_port = Some(port);
        self
    }

    /// Writes `<dataDir>/myid` before the first start.
    pub fn myid(mut self, id: u64) -> Self {
        self.myid = Some(id);
        self
    }

    pub fn start(self) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("paddock-it-")
            .tempdir()
            .expect("tempdir");
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("data dir");
        if let Some(id) = self.myid {
            std::fs::write(data_dir.join("myid"), format!("{id}\n")).expect("write myid");
        }
        let ip = self.ip.unwrap_or_else(next_loopback);
        let config = if self.cfg.is_empty() {
            // The embedded defaults put the admin server on 127.0.0.1.
            None
        } else {
            let path = dir.path().join("zoo.cfg");
            // With a zoo.cfg the admin server would default to 0.0.0.0: keep it on loopback.
            let mut text = format!("admin.serverAddress={ip}\n");
            text.push_str(&self.cfg.join("\n"));
            text.push('\n');
            std::fs::write(&path, text).expect("write zoo.cfg");
            Some(path)
        };
        let mut server = Server {
            dir,
            data_dir,
            config,
            ip,
            port: self.client_port,
            admin_port: self.admin_port,
            process: None,
            log: Log::new(),
            runs: 0,
        };
        server.launch();
        server
    }
}

/// A running (or killed) `paddock-server` process with its data directory.
pub struct Server {
    dir: tempfile::TempDir,
    data_dir: PathBuf,
    config: Option<PathBuf>,
    ip: Ipv4Addr,
    /// 0 until the first start picked a port; restarts reuse it.
    port: u16,
    /// A fixed admin HTTP port, or None for any.
    admin_port: Option<u16>,
    process: Option<Process>,
    /// stderr of every run of this server, runs separated by a marker line.
    log: Log,
    runs: u32,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// A server with the default configuration.
    pub fn start() -> Server {
        ServerBuilder::default().start()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.ip, self.port))
    }

    /// `host:port` for zookeeper-client.
    pub fn connect_string(&self) -> String {
        self.addr().to_string()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The transaction log and snapshot directory (ZooKeeper's layout).
    pub fn version_dir(&self) -> PathBuf {
        self.data_dir.join("version-2")
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The admin HTTP address, when the admin port was fixed by the builder.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_port
            .map(|p| SocketAddr::V4(SocketAddrV4::new(self.ip, p)))
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(SERVER_BIN);
        if let Some(cfg) = &self.config {
            cmd.arg("--config").arg(cfg);
        }
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--client-address")
            .arg(self.ip.to_string())
            .arg("--client-port")
            .arg(self.port.to_string())
            .arg("--admin-port")
            .arg(self.admin_port.unwrap_or(0).to_string())
            .current_dir(self.dir.path())
            .env("RUST_LOG", "info");
        for var in [
            "PADDOCK_CONFIG",
            "PADDOCK_DATA_DIR",
            "PADDOCK_MYID",
            "PADDOCK_CLIENT_PORT",
            "PADDOCK_CLIENT_ADDRESS",
            "PADDOCK_ADMIN_PORT",
            "PADDOCK_JOIN",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// Starts the process and waits until it listens and accepts a TCP connection.
    /// A restart may find its port still held for a moment; that is retried (bounded).
    fn launch(&mut self) {
        assert!(self.process.is_none(), "server already running");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.try_launch(deadline) {
                Ok(()) => return,
                Err(reason)
                    if Instant::now() < deadline && reason.contains("Address already in use") =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(reason) => panic!(
                    "server did not start: {reason}\n--- log ---\n{}",
                    self.log()
                ),
            }
        }
    }

    fn try_launch(&mut self, deadline: Instant) -> Result<(), String> {
        self.runs += 1;
        self.log
            .push_line(&format!("===== run {} =====", self.runs));
        let (process, ready) =
            Process::spawn("paddock-server", self.command(), &self.log, |line| {
                logged_addr(line, "paddock-server listening", "client=")
            })
            .map_err(|e| format!("spawn {SERVER_BIN}: {e}"))?;
        let addr = process
            .wait_ready(ready, deadline.saturating_duration_since(Instant::now()))
            .map_err(|e| format!("{e}: {}", self.current_run_log()))?;
        assert_eq!(
            addr.ip(),
            std::net::IpAddr::V4(self.ip),
            "listens on the asked address"
        );
        if self.port != 0 {
            assert_eq!(addr.port(), self.port, "restart listens on the same port");
        }
        self.port = addr.port();
        self.process = Some(process);
        // Accepting connections, not just bound.
        loop {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("listening but not accepting: {e}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// SIGKILL: the process gets no chance to flush or clean up.
    pub fn kill9(&mut self) {
        let process = self.process.take().expect("server is running");
        if let Some(status) = process.exited() {
            panic!(
                "server had already exited ({status}) before kill -9\n{}",
                self.log()
            );
        }
        let status = process.kill9();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "server died of SIGKILL");
    }

    /// Sends `sig` to the running process (SIGSTOP, SIGCONT, ...).
    pub fn signal(&mut self, sig: i32) {
        self.process
            .as_mut()
            .expect("server is running")
            .signal(sig);
    }

    /// SIGSTOP: the process freezes (its sockets stay open, the kernel keeps accepting).
    /// Returns once the kernel reports it stopped, so that whatever a test sends after
    /// this call reaches a frozen process (on a loaded machine the signal can take a
    /// while to land, and the process serves meanwhile).
    pub fn sigstop(&mut self) {
        self.signal(libc::SIGSTOP);
        let Some(pid) = self.pid() else { return };
        let stat = format!("/proc/{pid}/stat");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            // The state is the field after the parenthesized command name.
            let state = std::fs::read_to_string(&stat)
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.chars().next()));
            if state == Some(Some('T')) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server {pid} is not stopped 5 s after SIGSTOP (state {state:?})"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// SIGCONT: a stopped process resumes.
    pub fn sigcont(&mut self) {
        self.signal(libc::SIGCONT);
    }

    /// Starts the server again on the same data directory, address and port.
    pub fn restart(&mut self) {
        if self.process.is_some() {
            self.kill9();
        }
        self.launch();
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        self.process.as_ref().is_some_and(Process::is_alive)
    }

    pub fn assert_alive(&mut self) {
        assert!(
            self.is_alive(),
            "server process died\n--- log ---\n{}",
            self.log()
        );
    }

    /// Everything the server wrote to stderr, all runs.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// The log of the current (latest) run only.
    pub fn current_run_log(&self) -> String {
        let log = self.log();
        let marker = format!("===== run {} =====\n", self.runs);
        match log.rfind(&marker) {
            Some(i) => log[i + marker.len()..].to_string(),
            None => log,
        }
    }

    /// Waits (bounded) until a log line contains every one of `needles`.
    pub async fn wait_for_log(&self, needles: &[&str], limit: Duration) -> bool {
        eventually(limit, || {
            let found = self.log.has_line_with(needles);
            async move { found }
        })
        .await
    }

    /// Log lines that indicate a failure of the server itself.
    pub fn fatal_lines(&self) -> Vec<String> {
        fatal_lines(&self.log())
    }

    pub fn assert_no_fatal_log(&self) {
        let bad = self.fatal_lines();
        assert!(
            bad.is_empty(),
            "server logged failures: {bad:#?}\n--- log ---\n{}",
            self.log()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.process.take());
        self.log
            .print_if_panicking(&format!("paddock-server log ({})", self.addr()));
    }
}

/// The lines of a server log that indicate a failure of the server itself.
pub fn fatal_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("panicked") || l.contains("FATAL"))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------
// zookeeper-client helpers
// ---------------------------------------------------------------------------------------

/// A zookeeper-client session to `server` (bounded wait).
pub async fn zk(connect: &str) -> zookeeper_client::Client {
    zk_with(
        zookeeper_client::Client::connector().with_session_timeout(Duration::from_secs(10)),
        connect,
    )
    .await
}

/// A zookeeper-client session with the given options (fail-eagerly added).
pub async fn zk_with(
    connector: zookeeper_client::Connector,
    connect: &str,
) -> zookeeper_client::Client {
    within(
        Duration::from_secs(20),
        "zookeeper-client connect",
        connector.with_fail_eagerly().connect(connect),
    )
    .await
    .unwrap_or_else(|e| panic!("connect to {connect}: {e}"))
}

// ---------------------------------------------------------------------------------------
// Raw protocol connection
// ---------------------------------------------------------------------------------------

/// What came back for a request on a raw connection.
#[derive(Debug)]
pub struct Reply {
    pub header: ReplyHeader,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn err(&self) -> i32 {
        self.header.err
    }

    /// Decodes the body as the answer to a request of type `op`.
    pub fn decode(&self, op: i32) -> Response {
        assert_eq!(
            self.header.err, 0,
            "decode of an error reply {:?}",
            self.header
        );
        Response::decode(op, &self.body).expect("decode reply body")
    }
}

/// A hand-driven client connection: frames are built with paddock-proto and written as
/// they are, so tests can send anything, including garbage.
pub struct RawConn {
    pub stream: TcpStream,
    pub session_id: i64,
    pub passwd: Vec<u8>,
}

/// Read timeout for single frames on raw connections.
pub const RAW_TIMEOUT: Duration = Duration::from_secs(10);

impl RawConn {
    /// A TCP connection with no handshake yet.
    pub async fn open(addr: SocketAddr) -> RawConn {
        let stream = within(RAW_TIMEOUT, "tcp connect", TcpStream::connect(addr))
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        RawConn {
            stream,
            session_id: 0,
            passwd: vec![],
        }
    }

    /// Connects and establishes a new session.
    pub async fn session(addr: SocketAddr) -> RawConn {
        let mut conn = RawConn::open(addr).await;
        let resp = conn
            .handshake(&new_session_request())
            .await
            .expect("ConnectResponse");
        assert_ne!(resp.session_id, 0, "session granted");
        assert!(resp.time_out > 0);
        conn
    }

    /// Sends a ConnectRequest and reads the ConnectResponse (None if the server closed).
    pub async fn handshake(&mut self, req: &ConnectRequest) -> Option<ConnectResponse> {
        self.send_frame(&req.to_bytes()).await.ok()?;
        let frame = self.read_frame().await?;
        let resp = ConnectResponse::from_bytes(&frame).expect("decode ConnectResponse");
        self.session_id = resp.session_id;
        self.passwd = resp.passwd.0.clone();
        Some(resp)
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Writes a length-prefixed frame.
    pub async fn send_frame(&mut self, payload: &[u8]) -> std::io::Result<()> {
        self.stream
            .write_all(&paddock_proto::frame::frame(payload))
            .await
    }

    /// Writes a request frame (header + body) without waiting.
    pub async fn send(&mut self, xid: i32, req: &Request) {
        self.send_frame(&req.encode(xid))
            .await
            .expect("send request");
    }

    /// Reads one frame; None on EOF / reset. Panics if nothing arrives in time.
    pub async fn read_frame(&mut self) -> Option<Vec<u8>> {
        within(RAW_TIMEOUT, "reading a frame", self.read_frame_unbounded()).await
    }

    async fn read_frame_unbounded(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.ok()?;
        let len = i32::from_be_bytes(len);
        assert!(
            (0..=16 * 1024 * 1024).contains(&len),
            "server sent frame length {len}"
        );
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(buf)
    }

    /// Reads one reply or notification within `limit`; None on EOF, reset or timeout
    /// (for tests where a server may die or freeze at any moment).
    pub async fn try_read_reply(&mut self, limit: Duration) -> Option<Reply> {
        let frame = tokio::time::timeout(limit, self.read_frame_unbounded())
            .await
            .ok()??;
        let mut r = Reader::new(&frame);
        let header = ReplyHeader::read(&mut r).ok()?;
        Some(Reply {
            header,
            body: frame[r.position()..].to_vec(),
        })
    }

    /// Connects within `limit` and sends `req`: a new session (`session_id` 0) or the
    /// resumption of one. None if the server refused, closed or did not answer in time;
    /// a resumption of an expired session answers with `session_id` 0.
    pub async fn try_session(
        addr: SocketAddr,
        req: &ConnectRequest,
        limit: Duration,
    ) -> Option<(RawConn, ConnectResponse)> {
        let deadline = tokio::time::Instant::now() + limit;
        let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
            .await
            .ok()?
            .ok()?;
        stream.set_nodelay(true).ok()?;
        let mut conn = RawConn {
            stream,
            session_id: 0,
            passwd: vec![],
        };
        conn.send_frame(&req.to_bytes()).await.ok()?;
        let frame = tokio::time::timeout_at(deadline, conn.read_frame_unbounded())
            .await
            .ok()??;
        let resp = ConnectResponse::from_bytes(&frame).ok()?;
        conn.session_id = resp.session_id;
        conn.passwd = resp.passwd.0.clone();
        Some((conn, resp))
    }

    /// Reads the next reply or notification.
    pub async fn read_reply(&mut self) -> Option<Reply> {
        let frame = self.read_frame().await?;
        let mut r = Reader::new(&frame);
        let header = ReplyHeader::read(&mut r).expect("reply header");
        Some(Reply {
            header,
            body: frame[r.position()..].to_vec(),
        })
    }

    /// Reads the next frame that is not a watch notification, collecting notifications.
    pub async fn read_reply_collecting(&mut self, events: &mut Vec<WatcherEvent>) -> Option<Reply> {
        loop {
            let reply = self.read_reply().await?;
            if reply.header.xid == xid::NOTIFICATION {
                events.push(WatcherEvent::from_bytes(&reply.body).expect("watcher event"));
                continue;
            }
            return Some(reply);
        }
    }

    /// Sends a request and waits for its reply (skipping no frames: the next frame must
    /// answer it).
    pub async fn call(&mut self, xid: i32, req: &Request) -> Reply {
        self.send(xid, req).await;
        let reply = self
            .read_reply()
            .await
            .expect("reply, not a closed connection");
        assert_eq!(reply.header.xid, xid, "reply in order");
        reply
    }

    pub async fn ping(&mut self) {
        let reply = self.call(xid::PING, &Request::Ping).await;
        assert_eq!(reply.err(), 0);
    }

    /// True if the server closes the connection (EOF or reset) within `limit`, discarding
    /// whatever frames arrive first; false if it is still open then.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

pub fn new_session_request() -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: 10_000,
        session_id: 0,
        passwd: vec![0u8; 16].into(),
        read_only: Some(false),
    }
}

/// Checks that a brand-new zookeeper-client session can still write and read.
pub async fn assert_serving(connect: &str, path: &str) {
    let client = zk(connect).await;
    let opts =
        zookeeper_client::CreateMode::Ephemeral.with_acls(zookeeper_client::Acls::anyone_all());
    within(
        Duration::from_secs(10),
        "create",
        client.create(path, b"ok", &opts),
    )
    .await
    .unwrap_or_else(|e| panic!("server no longer serves: create {path}: {e}"));
    let (data, _) = within(Duration::from_secs(10), "get_data", client.get_data(path))
        .await
        .unwrap();
    assert_eq!(data, b"ok");
    within(Duration::from_secs(10), "delete", client.delete(path, None))
        .await
        .unwrap();
}
