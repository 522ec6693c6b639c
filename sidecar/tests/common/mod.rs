//! Test harness: real `paddock-server` and `paddock-sidecar` processes on a loopback
//! address of this test binary (127.0.0.x), free ports, and a small HTTP client (with
//! SSE parsing) on hyper.
//!
//! Every wait is bounded; a process that does not come up fails the test with its log.
//! Processes are killed when dropped, and by a watchdog if the test binary dies.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// Bound for any one test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound for a process to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Session timeout the sidecars ask for in tests (the servers allow 1 s and up).
pub const SESSION: Duration = Duration::from_secs(2);

/// Runs an async test body on a fresh runtime, bounded by [`TEST_TIMEOUT`].
pub fn run<F, Fut>(name: &str, body: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        if tokio::time::timeout(TEST_TIMEOUT, body()).await.is_err() {
            panic!("test {name} timed out after {TEST_TIMEOUT:?}");
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
}

// ---------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------

/// Awaits `fut` for at most `limit`, panicking with `what` on timeout.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Polls `cond` every 20 ms until it holds, panicking with `what` after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("condition not reached within {limit:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// A loopback address per test binary, so binaries never share addresses.
pub fn binary_ip() -> Ipv4Addr {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let stem = exe.split('-').next().unwrap_or("").to_string();
    let h = stem
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    Ipv4Addr::new(127, 0, 1 + (h % 200) as u8, 2 + ((h / 200) % 240) as u8)
}

/// A port free on [`binary_ip`] right now, below Linux's ephemeral range (32768 and
/// up): a port the kernel picked for a bind to port 0 could be handed out again to a
/// process's own port-0 listener first. Successive calls return different ports.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = (FIRST + start.wrapping_add(n) % SPAN) as u16;
        if std::net::TcpListener::bind((binary_ip(), port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free port in {FIRST}..{} on {}",
        FIRST + SPAN,
        binary_ip()
    )
}

fn sidecar_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_paddock-sidecar"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `paddock-server` next to our binary, built (or found fresh) with `cargo build -p
/// paddock-server` once per test binary; cargo decides what is stale, and a failed
/// build fails the test (`$PADDOCK_SERVER_BIN` overrides).
pub fn server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("PADDOCK_SERVER_BIN") {
            return PathBuf::from(bin);
        }
        let dir = sidecar_bin().parent().expect("target dir").to_path_buf();
        let bin = dir.join("paddock-server");
        let out = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "paddock-server"])
            .env("CARGO_TARGET_DIR", dir.parent().expect("target root"))
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .output()
            .expect("run cargo build -p paddock-server");
        // A failed build fails the test: an older binary left in the target dir would
        // test code that is not the code under review.
        assert!(
            out.status.success(),
            "cargo build -p paddock-server failed (not running the stale {}):\n{}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(bin.exists(), "cargo built no {}", bin.display());
        bin
    })
    .clone()
}

/// Kills `pid` once this test binary is gone (statics and leaked children included).
#[allow(clippy::zombie_processes)] // the watchdog must outlive us; init reaps it
fn watchdog(pid: u32) {
    let me = std::process::id();
    let script =
        format!("while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill -9 {pid} 2>/dev/null");
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// Starts `cmd`, collecting stderr into `log`; returns once a stderr line satisfies
/// `ready` (its parsed value).
fn spawn_until<T: Send + 'static>(
    mut cmd: Command,
    log: &Path,
    what: &str,
    ready: fn(&str) -> Option<T>,
) -> (Child, T) {
    let mut child = cmd
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    watchdog(child.id());
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let file = Arc::new(Mutex::new(std::fs::File::create(log).expect("log file")));
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(v) = ready(&line) {
                let _ = tx.send(v);
                sent = true;
            }
            if let Ok(mut f) = file.lock() {
                let _ = writeln!(f, "{line}");
            }
        }
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(v) => (child, v),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not start; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        }
    }
}

fn field_addr(line: &str, marker: &str, key: &str) -> Option<SocketAddr> {
    if !line.contains(marker) {
        return None;
    }
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A `paddock-server` process; dropping it kills it.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        let dir = tempfile::Builder::new()
            .prefix("paddock-sidecar-it-")
            .tempdir()
            .expect("tempdir");
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=250\ndataDir={}\nmaxClientCnxns=0\nminSessionTimeout=1000\nmaxSessionTimeout=40000\nznode.container.checkIntervalMs=200\n",
                dir.path().join("data").display()
            ),
        )
        .expect("zoo.cfg");
        let mut cmd = Command::new(server_bin());
        cmd.arg("--config")
            .arg(&cfg)
            .args(["--client-address", &binary_ip().to_string()])
            .args(["--client-port", "0", "--admin-port", "0"])
            .current_dir(dir.path())
            .env("RUST_LOG", "warn,paddock_server::run=info");
        let (child, addr) =
            spawn_until(cmd, &dir.path().join("server.log"), "paddock-server", |l| {
                field_addr(l, "paddock-server listening", "client=")
            });
        Server { child, addr, dir }
    }

    pub fn stop(&self) {
        signal(self.child.id(), "-STOP");
    }

    pub fn resume(&self) {
        signal(self.child.id(), "-CONT");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `paddock-sidecar` process; dropping it kills it.
pub struct Sidecar {
    pub child: Child,
    pub addr: SocketAddr,
    pub name: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sidecar {
    /// Starts a sidecar against `servers` with extra `args`, as pod `name` (POD_NAME).
    pub fn start(servers: &str, name: &str, args: &[&str]) -> Sidecar {
        let dir = tempfile::Builder::new()
            .prefix("paddock-sidecar-proc-")
            .tempdir()
            .expect("tempdir");
        let mut cmd = Command::new(sidecar_bin());
        cmd.args(["--servers", servers])
            .args(["--listen", &format!("{}:0", binary_ip())])
            .args(["--session-timeout", &format!("{}ms", SESSION.as_millis())])
            .args(args)
            .env("POD_NAME", name)
            .env_remove("POD_IP")
            .env("RUST_LOG", "info");
        let log = dir.path().join("sidecar.log");
        let (child, addr) = spawn_until(cmd, &log, "paddock-sidecar", |l| {
            field_addr(l, "paddock-sidecar listening", "addr=")
        });
        Sidecar {
            child,
            addr,
            name: name.to_string(),
            log,
            _dir: dir,
        }
    }

    /// Starts a sidecar and waits until its session is connected.
    pub async fn ready(servers: &str, name: &str, args: &[&str]) -> Sidecar {
        let s = Sidecar::start(servers, name, args);
        let addr = s.addr;
        eventually(
            Duration::from_secs(15),
            &format!("{name} ready"),
            || async move { get(addr, "/readyz").await.status == 200 },
        )
        .await;
        s
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM; the sidecar hands over and exits.
    pub fn term(&self) {
        signal(self.child.id(), "-TERM");
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for the process to exit; its exit code.
    pub async fn exited(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not exit within {limit:?}; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- log of sidecar {} ----\n{}", self.name, self.log());
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {:?}",
                self.status, self.body
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn index(&self) -> i64 {
        self.header("x-paddock-index")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no X-Paddock-Index: {self:?}"))
    }
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<hyper::Response<Incoming>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
        .map_err(|e| format!("request: {e}"))?;
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))
}

/// One request; `Err` if the sidecar cannot be reached.
pub async fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Resp, String> {
    let resp = send(addr, method, path, headers, body).await?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    match tokio::time::timeout(
        Duration::from_secs(330),
        try_request(addr, method, path, headers, body),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("{method} {path}: {e}"),
        Err(_) => panic!("{method} {path}: no answer"),
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], None).await
}

pub async fn put(addr: SocketAddr, path: &str, body: &str) -> Resp {
    request(addr, "PUT", path, &[], Some(body)).await
}

pub async fn delete(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "DELETE", path, &[], None).await
}

pub async fn post(addr: SocketAddr, path: &str, body: Option<&str>) -> Resp {
    request(addr, "POST", path, &[], body).await
}

/// The value of an unlabelled metric of the sidecar at `addr` (0 when absent).
pub async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = get(addr, "/metrics").await.body;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits until the gauge `name` of the sidecar at `addr` reaches `n`.
async fn gauge_reaches(addr: SocketAddr, name: &'static str, n: f64) {
    eventually(
        Duration::from_secs(10),
        &format!("{name} reaching {n} on {addr}"),
        || async move { metric(addr, name).await >= n },
    )
    .await;
}

/// Waits until `n` blocking reads are parked on the sidecar at `addr`: after that, a
/// change is seen by them (no sleep standing in for "the reader is waiting").
pub async fn parked_readers(addr: SocketAddr, n: f64) {
    gauge_reaches(addr, "paddock_sidecar_blocking_reads", n).await;
}

/// Waits until `n` lock acquires wait on the sidecar at `addr`.
pub async fn waiting_acquires(addr: SocketAddr, n: f64) {
    gauge_reaches(addr, "paddock_sidecar_lock_waiters", n).await;
}

/// Whether the sidecar at `addr` says it leads `election` (`None` if it cannot be
/// reached), with the fencing token.
pub async fn leads(addr: SocketAddr, election: &str) -> Option<(bool, Option<i64>)> {
    let r = try_request(
        addr,
        "GET",
        &format!("/v1/elections/{election}/self"),
        &[],
        None,
    )
    .await
    .ok()?;
    let token = serde_json::from_str::<Value>(&r.body)
        .ok()
        .and_then(|v| v.get("fencingToken").and_then(Value::as_i64));
    Some((r.status == 200, token))
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// An open event stream.
pub struct Sse {
    body: Incoming,
    buf: String,
    pub status: u16,
}

impl Sse {
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Sse {
        let resp = within(
            Duration::from_secs(10),
            "open an event stream",
            send(addr, "GET", path, headers, None),
        )
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        Sse {
            body: resp.into_body(),
            buf: String::new(),
            status,
        }
    }

    /// The next event within `limit`, or `None` if none came (or the stream ended).
    pub async fn next_within(&mut self, limit: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent {
                    event: "message".into(),
                    id: None,
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        ev.event = v.trim().to_string();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !ev.data.is_empty() {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        any = true;
                    }
                }
                if any {
                    return Some(ev);
                }
                continue;
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame()).await;
            match frame {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                _ => return None,
            }
        }
    }

    /// The next event other than a heartbeat.
    pub async fn next_change(&mut self, limit: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = self.next_within(left).await?;
            if ev.event != "heartbeat" {
                return Some(ev);
            }
        }
    }

    /// Waits for an event named `name` (skipping others), panicking after `limit`.
    pub async fn expect(&mut self, name: &str, limit: Duration) -> SseEvent {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(ev) if ev.event == name => return ev,
                Some(_) => continue,
                None => panic!("no {name:?} event within {limit:?}"),
            }
        }
    }
}
