//! The upstream control plane on loopback: etcd, kube-apiserver, kube-controller-manager
//! and kube-scheduler, built from their Go modules by e2e/kube/build.sh. Each runs as a
//! child process of the supervisor with its log under `<dir>/logs`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::{Child, Command};
use tracing::info;

use crate::kubeconfig;
use crate::layout::{Layout, Started};
use crate::pki::{CertFiles, ClientIdentity, Pki, PkiError};

/// Seconds a pod tolerates a NotReady or unreachable node before the taint eviction
/// controller evicts it (the DefaultTolerationSeconds admission plugin writes it into
/// every pod). A real cluster uses 300; tests want a failed node noticed in seconds.
pub const TOLERATION_SECONDS: u32 = 5;
/// How long the node lifecycle controller waits for a node's heartbeat before it marks
/// the node NotReady (upstream default 40 s / 50 s).
pub const NODE_MONITOR_GRACE: &str = "8s";
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
/// Workloads' requests (ServiceAccounts outside kube-system, where the controllers run),
/// once each when answered: the tests read which verbs an operator used and was refused.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  userGroups: [\"system:serviceaccounts:kube-system\"]
- level: Metadata
  userGroups: [\"system:serviceaccounts\"]
- level: None
";
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("the upstream binary {0} is missing: run `bash e2e/kube/build.sh` (or pass --bin-dir)")]
    MissingBinary(PathBuf),
    #[error("starting {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{name} exited before it was ready ({status}); its log: {log}")]
    Exited {
        name: String,
        status: String,
        log: PathBuf,
    },
    #[error("{name} did not become ready within {secs} s; its log: {log}")]
    NotReady {
        name: String,
        secs: u64,
        log: PathBuf,
    },
}

/// The running control plane's processes, owned by the supervisor.
pub struct ControlPlane {
    pub children: Vec<(String, Child)>,
    pub apiserver_port: u16,
    pub etcd_port: u16,
}

impl ControlPlane {
    pub fn started(&self) -> Vec<Started> {
        self.children
            .iter()
            .filter_map(|(name, child)| {
                child.id().map(|pid| Started {
                    name: name.clone(),
                    pid,
                })
            })
            .collect()
    }
}

/// Certificates and kubeconfigs of every identity, made once per cluster.
pub struct Credentials {
    pub pki: Pki,
    pub apiserver: CertFiles,
}

/// A port free on 127.0.0.1 right now, below Linux's ephemeral range (32768 and up):
/// a port the kernel picked for a bind to port 0 is soon handed out again, for the
/// source port of some connection or another process's port-0 listener, before the
/// component meant to own it binds it. Successive calls return different ports.
pub fn free_port() -> std::io::Result<u16> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = (FIRST + start.wrapping_add(n) % SPAN) as u16;
        if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free port in {FIRST}..{} on 127.0.0.1", FIRST + SPAN),
    ))
}

pub fn create_credentials(
    layout: &Layout,
    apiserver_port: u16,
    nodes: &[String],
) -> Result<Credentials, ControlPlaneError> {
    let pki = Pki::create(&layout.pki())?;
    let apiserver = pki.serving(
        "apiserver",
        &[
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
        &[
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            "10.96.0.1".parse().map_err(std::io::Error::other)?,
        ],
    )?;
    let server = format!("https://127.0.0.1:{apiserver_port}");
    let mut identities: Vec<(String, String, Vec<&str>)> = vec![
        (
            "admin".into(),
            "kubernetes-admin".into(),
            vec!["system:masters"],
        ),
        (
            "controller-manager".into(),
            "system:kube-controller-manager".into(),
            vec![],
        ),
        ("scheduler".into(), "system:kube-scheduler".into(), vec![]),
    ];
    for node in nodes {
        identities.push((
            format!("node-{node}"),
            format!("system:node:{node}"),
            vec!["system:nodes"],
        ));
    }
    for (stem, user, groups) in &identities {
        let files = pki.client(&ClientIdentity {
            file_stem: stem,
            user,
            groups,
        })?;
        let path = if stem == "admin" {
            layout.admin_kubeconfig()
        } else {
            layout.kubeconfig_for(stem)
        };
        kubeconfig::write(&path, &server, &pki.ca_cert(), &files, user)?;
    }
    Ok(Credentials { pki, apiserver })
}

fn binary(bin_dir: &Path, name: &str) -> Result<PathBuf, ControlPlaneError> {
    let path = bin_dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ControlPlaneError::MissingBinary(path))
    }
}

fn spawn(
    layout: &Layout,
    bin_dir: &Path,
    name: &str,
    args: Vec<String>,
) -> Result<(String, Child), ControlPlaneError> {
    let program = binary(bin_dir, name)?;
    std::fs::create_dir_all(layout.logs())?;
    let log = std::fs::File::create(layout.logs().join(format!("{name}.log")))?;
    let err = log.try_clone()?;
    info!(name, "starting");
    let child = Command::new(&program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        // Its own process group: a Ctrl-C in the terminal that ran `up` must not reach it.
        .process_group(0)
        .spawn()
        .map_err(|source| ControlPlaneError::Spawn {
            name: name.to_string(),
            source,
        })?;
    Ok((name.to_string(), child))
}

/// Waits until `probe` answers true, failing early if the child exits.
async fn wait_ready<F, Fut>(
    layout: &Layout,
    name: &str,
    child: &mut Child,
    timeout: Duration,
    mut probe: F,
) -> Result<(), ControlPlaneError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let log = layout.logs().join(format!("{name}.log"));
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(ControlPlaneError::Exited {
                name: name.into(),
                status: status.to_string(),
                log,
            });
        }
        if probe().await {
            info!(name, "ready");
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ControlPlaneError::NotReady {
                name: name.into(),
                secs: timeout.as_secs(),
                log,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn tcp_open(port: u16) -> bool {
    tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .is_ok()
}

/// Starts etcd and the three control-plane components, each waited on in turn.
/// `admin` answers the API server's readiness.
pub async fn start(
    layout: &Layout,
    bin_dir: &Path,
    creds: &Credentials,
    apiserver_port: u16,
    admin: &kube::Client,
) -> Result<ControlPlane, ControlPlaneError> {
    let etcd_port = free_port()?;
    let etcd_peer_port = free_port()?;
    let mut plane = ControlPlane {
        children: Vec::new(),
        apiserver_port,
        etcd_port,
    };
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    plane
        .children
        .push(start_etcd(layout, bin_dir, &etcd_url, etcd_port, etcd_peer_port).await?);
    plane
        .children
        .push(start_apiserver(layout, bin_dir, creds, apiserver_port, &etcd_url, admin).await?);
    plane
        .children
        .push(start_controller_manager(layout, bin_dir, &creds.pki).await?);
    plane.children.push(start_scheduler(layout, bin_dir).await?);
    Ok(plane)
}

/// A flag given as it is.
fn arg(v: &str) -> String {
    v.to_string()
}

/// A path as a flag's value.
fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Starts etcd, serving clients at `etcd_url` (on `etcd_port`), and waits until it listens.
async fn start_etcd(
    layout: &Layout,
    bin_dir: &Path,
    etcd_url: &str,
    etcd_port: u16,
    etcd_peer_port: u16,
) -> Result<(String, Child), ControlPlaneError> {
    let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
    let mut etcd = spawn(
        layout,
        bin_dir,
        "etcd",
        vec![
            arg("--name=kubesim"),
            format!("--data-dir={}", path(&layout.etcd_data())),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=kubesim={peer_url}"),
            // A test cluster on one machine: durability of etcd is not under test, and
            // fsyncs on a shared disk slow every API write down.
            arg("--unsafe-no-fsync"),
            arg("--log-level=warn"),
        ],
    )?;
    wait_ready(layout, "etcd", &mut etcd.1, Duration::from_secs(60), || {
        tcp_open(etcd_port)
    })
    .await?;
    Ok(etcd)
}

/// Starts kube-apiserver on etcd at `etcd_url`, with its audit policy; `admin` waits it ready.
async fn start_apiserver(
    layout: &Layout,
    bin_dir: &Path,
    creds: &Credentials,
    apiserver_port: u16,
    etcd_url: &str,
    admin: &kube::Client,
) -> Result<(String, Child), ControlPlaneError> {
    let pki = &creds.pki;
    std::fs::write(layout.audit_policy(), AUDIT_POLICY)?;
    let mut apiserver = spawn(
        layout,
        bin_dir,
        "kube-apiserver",
        vec![
            format!("--etcd-servers={etcd_url}"),
            arg("--bind-address=127.0.0.1"),
            arg("--advertise-address=127.0.0.1"),
            format!("--secure-port={apiserver_port}"),
            format!("--tls-cert-file={}", path(&creds.apiserver.cert)),
            format!("--tls-private-key-file={}", path(&creds.apiserver.key)),
            format!("--client-ca-file={}", path(&pki.ca_cert())),
            arg("--authorization-mode=Node,RBAC"),
            format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
            format!("--service-account-key-file={}", path(&pki.sa_pub())),
            format!("--service-account-signing-key-file={}", path(&pki.sa_key())),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            // The defaults plus NodeRestriction, as kubeadm enables them.
            arg("--enable-admission-plugins=NodeRestriction"),
            arg("--allow-privileged=true"),
            format!("--default-not-ready-toleration-seconds={TOLERATION_SECONDS}"),
            format!("--default-unreachable-toleration-seconds={TOLERATION_SECONDS}"),
            // Endpoints may not hold loopback addresses (the API server's validation), so
            // the `kubernetes` Service has none; pods reach the API through
            // KUBERNETES_SERVICE_HOST=127.0.0.1 instead.
            arg("--endpoint-reconciler-type=none"),
            arg("--profiling=false"),
            format!("--audit-policy-file={}", path(&layout.audit_policy())),
            format!("--audit-log-path={}", path(&layout.audit_log())),
            arg("--audit-log-format=json"),
        ],
    )?;
    let probe_client = admin.clone();
    wait_ready(
        layout,
        "kube-apiserver",
        &mut apiserver.1,
        Duration::from_secs(120),
        || {
            let client = probe_client.clone();
            async move { api_ready(&client).await }
        },
    )
    .await?;
    Ok(apiserver)
}

/// Starts kube-controller-manager (signing with the cluster's CA) and waits until it listens.
async fn start_controller_manager(
    layout: &Layout,
    bin_dir: &Path,
    pki: &Pki,
) -> Result<(String, Child), ControlPlaneError> {
    let cm_kubeconfig = path(&layout.kubeconfig_for("controller-manager"));
    let cm_port = free_port()?;
    let mut cm = spawn(
        layout,
        bin_dir,
        "kube-controller-manager",
        vec![
            format!("--kubeconfig={cm_kubeconfig}"),
            format!("--authentication-kubeconfig={cm_kubeconfig}"),
            format!("--authorization-kubeconfig={cm_kubeconfig}"),
            arg("--bind-address=127.0.0.1"),
            format!("--secure-port={cm_port}"),
            arg("--leader-elect=false"),
            arg("--use-service-account-credentials=true"),
            format!("--service-account-private-key-file={}", path(&pki.sa_key())),
            format!("--root-ca-file={}", path(&pki.ca_cert())),
            format!("--cluster-signing-cert-file={}", path(&pki.ca_cert())),
            format!(
                "--cluster-signing-key-file={}",
                path(&layout.pki().join("ca.key"))
            ),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            arg("--node-monitor-period=1s"),
            format!("--node-monitor-grace-period={NODE_MONITOR_GRACE}"),
            // Bind and provision claims promptly (upstream re-syncs every 15 s).
            arg("--pvclaimbinder-sync-period=2s"),
        ],
    )?;
    wait_ready(
        layout,
        "kube-controller-manager",
        &mut cm.1,
        Duration::from_secs(60),
        || tcp_open(cm_port),
    )
    .await?;
    Ok(cm)
}

/// Starts kube-scheduler and waits until it listens.
async fn start_scheduler(
    layout: &Layout,
    bin_dir: &Path,
) -> Result<(String, Child), ControlPlaneError> {
    let sched_kubeconfig = path(&layout.kubeconfig_for("scheduler"));
    let sched_port = free_port()?;
    let mut scheduler = spawn(
        layout,
        bin_dir,
        "kube-scheduler",
        vec![
            format!("--kubeconfig={sched_kubeconfig}"),
            format!("--authentication-kubeconfig={sched_kubeconfig}"),
            format!("--authorization-kubeconfig={sched_kubeconfig}"),
            arg("--bind-address=127.0.0.1"),
            format!("--secure-port={sched_port}"),
            arg("--leader-elect=false"),
        ],
    )?;
    wait_ready(
        layout,
        "kube-scheduler",
        &mut scheduler.1,
        Duration::from_secs(60),
        || tcp_open(sched_port),
    )
    .await?;
    Ok(scheduler)
}

async fn api_ready(client: &kube::Client) -> bool {
    let Ok(request) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    matches!(client.request_text(request).await, Ok(text) if text.trim() == "ok")
}
