//! Test harness: real `paddock-server` and `paddock-sidecar` processes on a loopback
//! address of this test binary (127.0.y.x), free ports, and a small HTTP client (with
//! SSE parsing): what all the workspace's tests share is `paddock-testkit`'s,
//! re-exported here under the names the tests use.
//!
//! Every wait is bounded; a process that does not come up fails the test with its log.
//! Processes are killed when dropped, and by a watchdog if the test binary dies.

#![allow(dead_code)]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use paddock_testkit::process::{Log, Process, logged_addr};
use paddock_testkit::{addr, watchdog, workspace};
use serde_json::Value;

#[allow(unused_imports)] // not every test binary uses each
pub use paddock_testkit::http::{Resp, delete, get, post, put, request, try_request};
#[allow(unused_imports)]
pub use paddock_testkit::sse::{Sse, SseEvent};
pub use paddock_testkit::{eventually, within};

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
    paddock_testkit::rt::run_test(name, TEST_TIMEOUT, body());
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// The loopback address of this test binary, so binaries never share addresses.
pub fn binary_ip() -> Ipv4Addr {
    addr::binary_ip(0)
}

/// A port free on [`binary_ip`] right now (see [`addr::free_port`]).
pub fn free_port() -> u16 {
    addr::free_port(binary_ip())
}

fn sidecar_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_paddock-sidecar"))
}

/// `paddock-server` next to our binary, built (or found fresh) by cargo once per test
/// binary (`$PADDOCK_SERVER_BIN` overrides): see [`workspace::built_bin`].
pub fn server_bin() -> PathBuf {
    workspace::built_bin(
        "paddock-server",
        "paddock-server",
        Path::new(&sidecar_bin()),
    )
}

/// Starts `cmd` as `what` and returns once it logs that it listens (the address after
/// `key` on the line with `marker`); a watchdog kills it should this binary die first.
fn start(
    cmd: Command,
    log: &Log,
    what: &str,
    marker: &'static str,
    key: &'static str,
) -> (Process, SocketAddr) {
    let (process, addr) = Process::start(what, cmd, log, START_TIMEOUT, move |l| {
        logged_addr(l, marker, key)
    });
    watchdog::kill_after_exit(process.pid());
    (process, addr)
}

/// A `paddock-server` process; dropping it kills it.
pub struct Server {
    pub process: Process,
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
        let (process, addr) = start(
            cmd,
            &Log::new(),
            "paddock-server",
            "paddock-server listening",
            "client=",
        );
        Server { process, addr, dir }
    }

    /// SIGSTOP: the server freezes.
    pub fn stop(&self) {
        self.process.signal(libc::SIGSTOP);
    }

    /// SIGCONT: a stopped server resumes.
    pub fn resume(&self) {
        self.process.signal(libc::SIGCONT);
    }
}

/// A `paddock-sidecar` process; dropping it kills it.
pub struct Sidecar {
    pub process: Process,
    pub addr: SocketAddr,
    pub name: String,
    log: Log,
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
        let log = Log::new();
        let (process, addr) = start(
            cmd,
            &log,
            &format!("paddock-sidecar {name}"),
            "paddock-sidecar listening",
            "addr=",
        );
        Sidecar {
            process,
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
        self.log.text()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether the process still runs.
    pub fn is_alive(&self) -> bool {
        self.process.is_alive()
    }

    /// SIGTERM; the sidecar hands over and exits.
    pub fn term(&self) {
        self.process.signal(libc::SIGTERM);
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Waits (bounded) for the process to exit; its exit code.
    pub async fn exited(&mut self, limit: Duration) -> Option<i32> {
        self.process.wait_exit(limit).await.code()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.log
            .print_if_panicking(&format!("log of sidecar {}", self.name));
    }
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

/// The sidecar's `X-Paddock-Index` header on an answer.
pub trait PaddockIndex {
    /// The `X-Paddock-Index` header's value; panics when there is none.
    fn index(&self) -> i64;
}

impl PaddockIndex for Resp {
    fn index(&self) -> i64 {
        self.header("x-paddock-index")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no X-Paddock-Index: {self:?}"))
    }
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
