//! Test harness: the same tests run against the real `paddock-server` binary and
//! against Apache ZooKeeper 3.8 (Debian's package, started by
//! `e2e/compat/reference_zk.sh`), so the client is proven against a server we did not
//! write.
//!
//! Each test binary starts one server of each kind on first use, on its own loopback
//! address; each test works under its own chroot (`/<test name>`), so tests run in
//! parallel without seeing each other. A watchdog process stops the servers when the
//! test binary exits (statics are never dropped).
//!
//! A [`Proxy`] sits between a client and a server when a test needs to cut, mute or
//! blackhole the connection.
//!
//! Every wait is bounded; a server that does not come up fails the test with its log.

#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use paddock_client::{Client, CreateMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub mod proxy;
#[allow(unused_imports)] // not every test binary uses it
pub use proxy::Proxy;

/// The reference server's jar; without it the ZooKeeper half of each test fails.
pub const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
/// Super user of both servers (digest of super:secret).
pub const SUPER_DIGEST: &str = "super:lK75jTNcA+U9vtVEw5vB51mj/w4=";
/// Bound for any one test.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for a server to come up.
const START_TIMEOUT: Duration = Duration::from_secs(40);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Paddock,
    Zookeeper,
}

/// What one test gets: a server and a namespace of its own on it.
#[derive(Debug, Clone)]
pub struct Env {
    pub backend: Backend,
    /// The server's client address.
    pub addr: SocketAddr,
    /// The test's chroot, e.g. `/create_and_read`.
    pub ns: String,
}

impl Env {
    /// `addr/ns`: a connect string inside the test's namespace.
    pub fn connect_string(&self) -> String {
        format!("{}{}", self.addr, self.ns)
    }

    /// A client inside the test's namespace.
    pub async fn client(&self) -> Client {
        self.client_with(|b| b).await
    }

    /// A client inside the test's namespace, with builder tweaks.
    pub async fn client_with(
        &self,
        tweak: impl FnOnce(paddock_client::ClientBuilder) -> paddock_client::ClientBuilder,
    ) -> Client {
        let builder =
            Client::builder(self.connect_string()).connect_timeout(Duration::from_secs(10));
        tweak(builder).connect().await.expect("connect")
    }

    /// A client that sees the whole tree (no chroot).
    pub async fn root_client(&self) -> Client {
        Client::builder(self.addr.to_string())
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .expect("connect")
    }

    /// The shortest session timeout the server grants (expiry tests use it): paddock is
    /// configured with 1 s, the reference server's minimum is 4 s.
    pub fn short_session(&self) -> Duration {
        match self.backend {
            Backend::Paddock => Duration::from_millis(1000),
            Backend::Zookeeper => Duration::from_millis(4000),
        }
    }

    /// An upper bound for the server to expire a session of `timeout` after the last
    /// message from its client: the timeout, rounded up to the expiry tick, plus slack.
    pub fn expiry_bound(&self, timeout: Duration) -> Duration {
        let tick = match self.backend {
            Backend::Paddock => Duration::from_millis(250),
            Backend::Zookeeper => Duration::from_millis(2000),
        };
        timeout + 2 * tick + Duration::from_secs(3)
    }

    /// A four-letter word's answer from the server.
    pub async fn four_letter_word(&self, word: &str) -> String {
        four_letter_word(self.addr, word).await
    }
}

/// Runs one test body against `backend`, in a fresh namespace, bounded by
/// [`TEST_TIMEOUT`]. The ZooKeeper half fails when the reference server is not
/// installed (see [`server`]).
pub fn run_test<F, Fut>(backend: Backend, name: &str, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    init_tracing();
    let addr = server(backend);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let env = Env {
        backend,
        addr,
        ns: format!("/{name}"),
    };
    rt.block_on(async move {
        let root = env.root_client().await;
        // A leftover from an earlier run of the same binary cannot exist (fresh
        // servers), but be explicit about starting empty.
        root.delete_all(&env.ns).await.ok();
        root.create(&env.ns, b"", CreateMode::Persistent)
            .await
            .expect("create the test namespace");
        root.close().await;
        match tokio::time::timeout(TEST_TIMEOUT, body(env.clone())).await {
            Ok(()) => {}
            Err(_) => panic!("test {name} against {backend:?} timed out after {TEST_TIMEOUT:?}"),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// Declares each listed `async fn(Env)` as two tests: `paddock::NAME` and
/// `zookeeper::NAME`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod paddock {
            $(
                #[test]
                fn $name() {
                    $crate::common::run_test($crate::common::Backend::Paddock, stringify!($name), super::$name);
                }
            )*
        }
        mod zookeeper {
            $(
                #[test]
                fn $name() {
                    $crate::common::run_test($crate::common::Backend::Zookeeper, stringify!($name), super::$name);
                }
            )*
        }
    };
}

fn init_tracing() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
    });
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

/// Waits until `client` reports `state`.
pub async fn wait_state(client: &Client, state: paddock_client::SessionState, limit: Duration) {
    let mut changes = client.state_changes();
    if client.state() == state {
        return;
    }
    within(limit, &format!("session state {state:?}"), async {
        loop {
            if client.state() == state {
                return;
            }
            match changes.next().await {
                Some(s) if s == state => return,
                Some(_) => {}
                None => assert_eq!(client.state(), state, "session ended in another state"),
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Four-letter words
// ---------------------------------------------------------------------------------------

pub async fn four_letter_word(addr: SocketAddr, word: &str) -> String {
    within(Duration::from_secs(5), word, async {
        let mut s = TcpStream::connect(addr).await.expect("connect for 4lw");
        s.write_all(word.as_bytes()).await.expect("send 4lw");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read 4lw");
        out
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------

/// The client address of this binary's server of `backend`, starting it on first use.
/// Without Apache ZooKeeper installed the reference half fails, saying how to install
/// it or leave it out: a test that passes without running proves nothing.
pub fn server(backend: Backend) -> SocketAddr {
    static PADDOCK: OnceLock<SocketAddr> = OnceLock::new();
    static ZOOKEEPER: OnceLock<SocketAddr> = OnceLock::new();
    match backend {
        Backend::Paddock => *PADDOCK.get_or_init(start_paddock),
        Backend::Zookeeper => {
            assert!(
                Path::new(ZK_JAR).exists(),
                "Apache ZooKeeper is not installed ({ZK_JAR} is missing): run \
                 `bash e2e/install-deps.sh`, or leave the reference runs out with \
                 `cargo test -p paddock-client -- --skip zookeeper::`"
            );
            *ZOOKEEPER.get_or_init(start_zookeeper)
        }
    }
}

/// A loopback address per test binary (127.0.0.x), so binaries never share servers'
/// addresses; 127.0.0.1 is left to people.
pub fn binary_ip(salt: u32) -> Ipv4Addr {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    // Strip cargo's hash suffix so the address is stable across rebuilds.
    let stem = exe.split('-').next().unwrap_or("").to_string();
    let h = stem
        .bytes()
        .fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    let x = 2 + (h.wrapping_add(salt.wrapping_mul(101)) % 240) as u8;
    Ipv4Addr::new(127, 0, 0, x)
}

/// A port free on `ip` right now, drawn below Linux's ephemeral range (32768 and up):
/// a port the kernel picked for a bind to port 0 could be handed out again to the
/// servers' own port-0 listeners before the server meant to own it binds it.
pub fn free_port(ip: Ipv4Addr) -> u16 {
    for _ in 0..1000 {
        let port = fastrand::u16(20_000..32_000);
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000 on {ip}")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The `paddock-server` binary to test against: `$PADDOCK_SERVER_BIN` if set, else the
/// one next to our own `paddock` binary in the target dir, built once per test binary
/// with `cargo build -p paddock-server` in the same profile (a no-op when it is up to
/// date). A failed build fails the test: an older binary left in the target dir would
/// test code that is not the code under test.
pub fn paddock_server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("PADDOCK_SERVER_BIN") {
            return PathBuf::from(bin);
        }
        let dir = Path::new(env!("CARGO_BIN_EXE_paddock"))
            .parent()
            .expect("target dir")
            .to_path_buf();
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "-p", "paddock-server"]);
        if dir.file_name().is_some_and(|profile| profile == "release") {
            build.arg("--release");
        }
        let out = build
            .env("CARGO_TARGET_DIR", dir.parent().expect("target root"))
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .expect("run cargo build -p paddock-server");
        assert!(
            out.status.success(),
            "cargo build -p paddock-server failed; not testing an older binary:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = dir.join("paddock-server");
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
    .clone()
}

/// Keeps a process from outliving this test binary: a shell polls our pid and, once we are
/// gone, runs `cleanup`.
// The watchdog must outlive us, so nobody waits for it (init reaps it).
#[allow(clippy::zombie_processes)]
pub fn reap_after_exit(cleanup: &str) {
    let me = std::process::id();
    let script = format!("while kill -0 {me} 2>/dev/null; do sleep 0.2; done; {cleanup}");
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the cleanup watchdog");
}

/// The zoo.cfg lines every test server gets (as the compat suites configure both
/// servers), with a short tick so that sessions can expire quickly.
pub fn base_config(data: &Path) -> String {
    format!(
        "tickTime=250\n\
         dataDir={}\n\
         maxClientCnxns=0\n\
         minSessionTimeout=1000\n\
         maxSessionTimeout=40000\n\
         4lw.commands.whitelist=*\n\
         extendedTypesEnabled=true\n\
         reconfigEnabled=true\n\
         superDigest={SUPER_DIGEST}\n\
         znode.container.checkIntervalMs=200\n",
        data.display()
    )
}

/// This binary's shared standalone server; it lives until the binary exits.
fn start_paddock() -> SocketAddr {
    let dir = tempfile::Builder::new()
        .prefix("paddock-client-it-")
        .tempdir()
        .expect("tempdir")
        .keep();
    let server = PaddockProcess::start(&dir, &base_config(&dir.join("data")), binary_ip(0), None);
    reap_after_exit(&format!(
        "kill -9 {} 2>/dev/null; rm -rf '{}'",
        server.child.id(),
        dir.display()
    ));
    let addr = server.addr;
    // Never dropped (that would kill it): the watchdog stops it after we exit.
    std::mem::forget(server);
    addr
}

/// A running `paddock-server` process; dropping it kills it.
pub struct PaddockProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl PaddockProcess {
    /// Starts a server with `config` (zoo.cfg text) in `dir`, its client port on any
    /// free port of `ip`; returns once it listens.
    pub fn start(dir: &Path, config: &str, ip: Ipv4Addr, myid: Option<u64>) -> PaddockProcess {
        let bin = paddock_server_bin();
        std::fs::create_dir_all(dir).expect("server dir");
        let cfg = dir.join("zoo.cfg");
        std::fs::write(&cfg, config).expect("write zoo.cfg");
        let log_path = dir.join("server.log");
        let mut cmd = Command::new(&bin);
        cmd.arg("--config").arg(&cfg).args([
            "--client-address",
            &ip.to_string(),
            "--client-port",
            "0",
            "--admin-port",
            "0",
        ]);
        if let Some(id) = myid {
            cmd.args(["--myid", &id.to_string()]);
        }
        let mut child = cmd
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn paddock-server");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(
            std::fs::File::create(&log_path).expect("log file"),
        ));
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(addr) = listening_addr(&line) {
                    let _ = tx.send(addr);
                    sent = true;
                }
                if let Ok(mut f) = log.lock() {
                    let _ = writeln!(f, "{line}");
                }
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => PaddockProcess {
                child,
                addr,
                log: log_path,
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "paddock-server did not start; log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                )
            }
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PaddockProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("paddock-server listening") {
        return None;
    }
    let rest = &line[line.find("client=")? + "client=".len()..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn start_zookeeper() -> SocketAddr {
    let script = workspace_root().join("e2e/compat/reference_zk.sh");
    let dir = tempfile::Builder::new()
        .prefix("paddock-client-zk-")
        .tempdir()
        .expect("tempdir")
        .keep();
    let ip = binary_ip(1);
    let port = free_port(ip);
    let out = Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(&dir)
        .arg(port.to_string())
        .arg(ip.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run reference_zk.sh");
    reap_after_exit(&format!(
        "bash '{}' stop '{}' >/dev/null 2>&1; rm -rf '{}'",
        script.display(),
        dir.display(),
        dir.display()
    ));
    assert!(
        out.status.success(),
        "reference ZooKeeper did not start: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("zookeeper.log")).unwrap_or_default()
    );
    SocketAddr::from((ip, port))
}

/// A unique suffix for names within a test.
pub fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A watch channel helper for tests that track a shared counter.
pub fn flag() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}
