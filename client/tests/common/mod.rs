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
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use paddock_client::{Client, CreateMode};
use paddock_testkit::process::{Log, Process, logged_addr};
use paddock_testkit::{watchdog, workspace};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub mod proxy;
#[allow(unused_imports)] // not every test binary uses it
pub use proxy::Proxy;

#[allow(unused_imports)] // not every test binary uses each
pub use paddock_testkit::addr::{binary_ip, free_port};
#[allow(unused_imports)]
pub use paddock_testkit::{eventually, within};

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
    let env = Env {
        backend,
        addr,
        ns: format!("/{name}"),
    };
    let test = format!("{name} against {backend:?}");
    paddock_testkit::rt::run_test(&test, TEST_TIMEOUT, async move {
        let root = env.root_client().await;
        // A leftover from an earlier run of the same binary cannot exist (fresh
        // servers), but be explicit about starting empty.
        root.delete_all(&env.ns).await.ok();
        root.create(&env.ns, b"", CreateMode::Persistent)
            .await
            .expect("create the test namespace");
        root.close().await;
        body(env).await;
    });
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

/// The `paddock-server` binary to test against: `$PADDOCK_SERVER_BIN` if set, else the
/// one next to our own `paddock` binary, built by cargo once per test binary (see
/// [`workspace::built_bin`]).
pub fn paddock_server_bin() -> PathBuf {
    workspace::built_bin(
        "paddock-server",
        "paddock-server",
        Path::new(env!("CARGO_BIN_EXE_paddock")),
    )
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
    watchdog::after_exit(&format!(
        "{}; rm -rf '{}'",
        watchdog::kill_command(server.process.pid()),
        dir.display()
    ));
    let addr = server.addr;
    // Never dropped (that would kill it): the watchdog stops it after we exit.
    std::mem::forget(server);
    addr
}

/// A running `paddock-server` process; dropping it kills it.
pub struct PaddockProcess {
    pub process: Process,
    pub addr: SocketAddr,
    /// A copy of its log (stderr), in its directory.
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
        cmd.current_dir(dir).env("RUST_LOG", "info");
        let (process, addr) = Process::start(
            "paddock-server",
            cmd,
            &Log::with_file(&log_path),
            START_TIMEOUT,
            |line| logged_addr(line, "paddock-server listening", "client="),
        );
        PaddockProcess {
            process,
            addr,
            log: log_path,
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

fn start_zookeeper() -> SocketAddr {
    let script = workspace::root().join("e2e/compat/reference_zk.sh");
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
    watchdog::after_exit(&format!(
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
