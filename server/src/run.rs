//! Assembles a running server from a [`ServerConfig`]: recovery, the core thread, the
//! client port, the admin HTTP server and the tick timer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tracing::info;

use std::collections::BTreeMap;

use crate::config::{DynamicConfig, HostPort, ServerConfig};
use crate::core::{Core, CoreConfig, CoreMsg, CoreTx, InternalTx, RecoveryError, SystemClock};
use crate::join;
use crate::net::client::{self, ClientPortConfig};
use crate::net::flow::FlowLimits;
use crate::net::latency::LatencyHistogram;
use crate::net::peer::PeerNet;
use crate::net::resolve;
use crate::zab::{Membership, Timing};

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Join(#[from] crate::join::JoinError),
    #[error("recovery failed: {0}")]
    Recovery(#[from] RecoveryError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Listen(#[from] resolve::AddrError),
    #[error("cannot start the core thread: {0}")]
    Thread(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

/// A started server.
pub struct Running {
    pub client_addr: SocketAddr,
    /// The TLS client port (`secureClientPort`), when there is one.
    pub secure_client_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub core: CoreTx,
    pub internal: InternalTx,
    core_thread: std::thread::JoinHandle<Result<(), String>>,
}

impl Running {
    /// Waits until the core stops; its error says why it had to.
    pub async fn wait(self) -> Result<(), String> {
        tokio::task::spawn_blocking(move || self.core_thread.join())
            .await
            .map_err(|e| format!("core thread: {e}"))?
            .map_err(|_| "core thread panicked".to_string())?
    }

    pub async fn shutdown(self) -> Result<(), String> {
        let _ = self.internal.send(CoreMsg::Shutdown);
        self.wait().await
    }
}

/// The ensemble a server starts in: the committed config persisted in its data dir
/// (trusted over zoo.cfg: a restarted member keeps the membership reconfigs made), else
/// zoo.cfg's. A standalone server is an ensemble of one.
pub fn starting_ensemble(cfg: &ServerConfig) -> DynamicConfig {
    if cfg.is_standalone() {
        return DynamicConfig::of(cfg);
    }
    match DynamicConfig::read_committed(&cfg.snap_dir()) {
        Some(committed) => {
            info!(
                version = format_args!("{:#x}", committed.version),
                "using the committed config from the data dir"
            );
            committed
        }
        None => DynamicConfig::of(cfg),
    }
}

/// The starting ensemble by [`join::plan`]: committed, learned through `--join`, or
/// static (zoo.cfg), falling back to static when no `--join` target answers in time and
/// the static config lists this server.
async fn choose_ensemble(cfg: &ServerConfig) -> Result<DynamicConfig, StartError> {
    let data = if DynamicConfig::read_committed(&cfg.snap_dir()).is_some() {
        join::DataDir::Committed
    } else if crate::storage::has_history(&cfg.snap_dir(), &cfg.data_log_dir.join("version-2")) {
        join::DataDir::History
    } else {
        join::DataDir::Empty
    };
    match join::plan(cfg, data) {
        join::Plan::Committed | join::Plan::Static => Ok(starting_ensemble(cfg)),
        join::Plan::CommittedOrJoin { ask_for } => {
            let give_up = join::GiveUp::WhenRefused(std::time::Instant::now() + ask_for);
            let fetched = join::fetch_ensemble(&cfg.join, give_up).await?;
            Ok(join::newer(starting_ensemble(cfg), fetched))
        }
        join::Plan::Join { fall_back_after } => {
            let deadline = fall_back_after.map(|d| std::time::Instant::now() + d);
            match join::fetch_ensemble(&cfg.join, join::GiveUp::AtDeadline(deadline)).await? {
                Some(fetched) => Ok(fetched),
                None => {
                    info!(
                        after_ms = cfg.join_timeout_ms,
                        "no --join target answered and this server is in the static config: \
                         starting from it (the ensemble's bootstrap)"
                    );
                    Ok(DynamicConfig::of(cfg))
                }
            }
        }
    }
}

fn membership(cfg: &ServerConfig, ensemble: &DynamicConfig) -> Membership {
    if cfg.is_standalone() {
        return Membership::standalone(cfg.server_id());
    }
    ensemble.membership()
}

/// The part of the config the core needs.
pub fn core_config(cfg: &ServerConfig, ensemble: &DynamicConfig) -> CoreConfig {
    CoreConfig {
        server_id: cfg.server_id(),
        tick_ms: u64::from(cfg.tick_time_ms),
        min_session_timeout_ms: cfg.min_session_timeout_ms as i32,
        max_session_timeout_ms: cfg.max_session_timeout_ms as i32,
        snap_count: cfg.snap_count.max(2),
        snap_dir: cfg.data_dir.join("version-2"),
        log_dir: cfg.data_log_dir.join("version-2"),
        snap_retain_count: cfg.autopurge_snap_retain_count as usize,
        autopurge: cfg.autopurge_purge_interval_hours > 0,
        extended_types: cfg.extended_types_enabled,
        reconfig_enabled: cfg.reconfig_enabled,
        standalone_enabled: cfg.standalone_enabled,
        read_only_mode: cfg.read_only_mode_enabled && cfg.is_distributed(),
        super_digest: cfg
            .super_digest
            .as_ref()
            .map(|d| format!("{}:{}", d.user, d.digest)),
        sasl: std::sync::Arc::new(crate::sasl::ClientSasl::from_config(&cfg.sasl)),
        container_check_ms: cfg
            .extra
            .get("znode.container.checkIntervalMs")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
        fsync_warning_ms: cfg.fsync_warning_threshold_ms,
        membership: membership(cfg, ensemble),
        timing: Timing::from_ticks(
            u64::from(cfg.tick_time_ms),
            u64::from(cfg.init_limit),
            u64::from(cfg.sync_limit),
        ),
        distributed: cfg.is_distributed(),
    }
}

/// Starts the peer transport for an ensemble member. Only this server's own quorum
/// address is resolved here (it must be bound; while its name does not resolve yet the
/// start waits); peers are named, not resolved, and every link looks its peer's name up
/// again on each connection attempt.
///
/// Without TLS the quorum port runs on `core_runtime`, the core's own thread: a
/// proposal, its ACKs and the COMMIT then cross no thread on their way between the
/// socket and the core. TLS links do their cryptography on the multi-threaded runtime.
async fn start_peers(
    cfg: &ServerConfig,
    ensemble: &DynamicConfig,
    internal: &InternalTx,
    core_runtime: &Handle,
) -> Result<PeerNet, StartError> {
    if cfg.is_standalone() {
        return Ok(PeerNet::none());
    }
    let me = cfg.server_id();
    let mut peers = BTreeMap::new();
    let mut own_address = None;
    // Our own line comes from zoo.cfg or --peer-address when we are joining (the
    // ensemble lacks us yet).
    let own = join::own_entry(cfg, ensemble).filter(|e| !ensemble.servers.contains_key(&e.id));
    for entry in ensemble.servers.values().cloned().chain(own) {
        let Some(addr) = entry.primary() else {
            continue;
        };
        let target = HostPort {
            host: addr.host.clone(),
            port: addr.quorum_port,
        };
        if entry.id == me {
            own_address = Some(target);
        } else {
            peers.insert(entry.id, target);
        }
    }
    let own_address = own_address.ok_or_else(|| StartError::Bind {
        addr: format!("server.{me}"),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "this server's id has no server.N line (a new member names its own address with --peer-address)",
        ),
    })?;
    let listener = match all_ips_listen_address(cfg, &own_address) {
        // Nothing to resolve: a pod whose own name is not in DNS yet starts at once.
        Some(addr) => resolve::listen(addr, 1024).map_err(|source| StartError::Bind {
            addr: addr.to_string(),
            source,
        })?,
        None => {
            resolve::bind_when_resolvable(
                "quorum port",
                &own_address.host,
                own_address.port,
                |addr| resolve::listen(addr, 1024),
            )
            .await?
        }
    };
    let tls = quorum_tls(cfg)?;
    let bind_error = |source| StartError::Bind {
        addr: format!("server.{me} quorum port"),
        source,
    };
    let (runtime, listener) = match tls {
        None => (
            core_runtime.clone(),
            move_to(core_runtime, listener).map_err(bind_error)?,
        ),
        Some(_) => (Handle::current(), listener),
    };
    crate::net::peer::start(
        runtime,
        me,
        listener,
        own_address,
        peers,
        internal.clone(),
        cfg.limits.quorum_max_frame as usize,
        crate::sasl::quorum::QuorumAuth::from_config(&cfg.sasl.quorum),
        tls,
    )
    .map_err(bind_error)
}

/// TLS between servers (`sslQuorum`, `portUnification`), its `ssl.quorum.*` stores
/// read and checked, watched for changes unless `sslQuorumReloadCertFiles=false`.
fn quorum_tls(cfg: &ServerConfig) -> Result<Option<crate::net::peer::QuorumTls>, StartError> {
    if !cfg.tls.quorum_tls_wanted() {
        return Ok(None);
    }
    let contexts = crate::tls::start(
        &cfg.tls.quorum,
        "ssl.quorum.",
        true,
        cfg.tls.quorum_cert_reload,
    )
    .map_err(StartError::Tls)?;
    Ok(Some(crate::net::peer::QuorumTls {
        contexts,
        unification: cfg.tls.quorum_port_unification,
        dial: cfg.tls.ssl_quorum,
        verify_peer_address: cfg.tls.quorum.hostname_verification,
    }))
}

/// With `quorumListenOnAllIPs=true`, where the quorum port listens: every address of
/// the family of this server's own address (IPv6 only when it is an IPv6 literal).
fn all_ips_listen_address(cfg: &ServerConfig, own: &HostPort) -> Option<std::net::SocketAddr> {
    if !cfg.quorum_listen_on_all_ips {
        return None;
    }
    let ip = match own.host.trim_matches(|c| c == '[' || c == ']').parse() {
        Ok(std::net::IpAddr::V6(_)) => std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    };
    Some(std::net::SocketAddr::new(ip, own.port))
}

/// Binds with a deep accept backlog: after a failover hundreds of clients reconnect at
/// once, and tokio's default of 128 would make many of them wait for a SYN retry. Waits
/// while `host` does not resolve yet (a pod's own DNS name).
async fn bind(what: &str, host: &str, port: u16) -> Result<TcpListener, StartError> {
    Ok(resolve::bind_when_resolvable(what, host, port, |addr| resolve::listen(addr, 4096)).await?)
}

/// The client port's TLS (`secureClientPort` or `client.portUnification`), its stores
/// read and checked, watched for changes unless `client.certReload=false`.
fn client_tls(cfg: &ServerConfig) -> Result<Option<client::TlsPort>, StartError> {
    if !cfg.tls.client_tls_wanted() {
        return Ok(None);
    }
    let contexts = crate::tls::start(&cfg.tls.client, "ssl.", false, cfg.tls.client_cert_reload)
        .map_err(StartError::Tls)?;
    Ok(Some(client::TlsPort {
        contexts,
        super_user: cfg.tls.x509_super_user.clone(),
        detect_timeout: Duration::from_millis(cfg.tls.client.handshake_detection_timeout_ms),
    }))
}

/// The core's runtime: one thread's, with I/O and timers. The plaintext client
/// connections and the plaintext quorum port are spawned on it, and the core's loop
/// drives them all ([`start_core_thread`]); until then what is spawned waits.
///
/// A start that fails before the core's thread takes it drops it inside `start`'s async
/// body, where dropping a tokio runtime (which waits for its blocking threads) panics;
/// this one then shuts down in the background.
struct CoreRuntime(Option<tokio::runtime::Runtime>);

impl CoreRuntime {
    fn new() -> Result<CoreRuntime, StartError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Thread)?;
        Ok(CoreRuntime(Some(runtime)))
    }

    fn handle(&self) -> Option<Handle> {
        self.0.as_ref().map(|r| r.handle().clone())
    }
}

impl Drop for CoreRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Starts the core's thread, which runs the core's loop on `runtime`.
fn start_core_thread(
    mut runtime: CoreRuntime,
    core: Core,
    clients: mpsc::Receiver<CoreMsg>,
    internal: mpsc::UnboundedReceiver<CoreMsg>,
) -> Result<std::thread::JoinHandle<Result<(), String>>, StartError> {
    let thread = std::thread::Builder::new()
        .name("paddock-core".into())
        .spawn(move || {
            let Some(runtime) = runtime.0.take() else {
                return Err("the core's runtime was already shut down".to_string());
            };
            let result = core.run(&runtime, clients, internal);
            // Dropping the runtime drops the connections' tasks, which closes their
            // sockets: the core that served them has stopped.
            drop(runtime);
            result
        })
        .map_err(StartError::Thread)?;
    Ok(thread)
}

/// Registers `listener` with `runtime`'s reactor instead of the current one, so that it
/// and the connections it accepts are driven by the thread that runs `runtime`.
fn move_to(runtime: &Handle, listener: TcpListener) -> std::io::Result<TcpListener> {
    let listener = listener.into_std()?;
    let _entered = runtime.enter();
    TcpListener::from_std(listener)
}

/// Recovers state and starts serving. Must be called inside a tokio runtime.
pub async fn start(cfg: ServerConfig) -> Result<Running, StartError> {
    // TLS stores first: a wrong password or a missing file stops the start at once.
    let client_tls = client_tls(&cfg)?;
    let (core_tx, core_rx) = mpsc::channel::<CoreMsg>(64 * 1024);
    let (internal_tx, internal_rx) = mpsc::unbounded_channel::<CoreMsg>();
    let ensemble = choose_ensemble(&cfg).await?;
    let core_cfg = core_config(&cfg, &ensemble);
    // Fine-grained ticks: elections and heartbeats work in milliseconds, not tickTime.
    let tick = Duration::from_millis(50);
    let runtime = CoreRuntime::new()?;
    let core_runtime = runtime
        .handle()
        .ok_or_else(|| StartError::Thread(std::io::Error::other("the core's runtime is gone")))?;
    let peers = start_peers(&cfg, &ensemble, &internal_tx, &core_runtime).await?;
    let core = {
        let core_cfg = core_cfg.clone();
        let internal_tx = internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            Core::open(
                core_cfg,
                internal_tx,
                Box::new(peers),
                Box::new(SystemClock::new()),
            )
        })
        .await
        .map_err(|e| StartError::Thread(std::io::Error::other(e.to_string())))??
    };
    let core_thread = start_core_thread(runtime, core, core_rx, internal_rx)?;

    // With only secureClientPort in zoo.cfg (no clientPort), the TLS port is the client
    // port, as in ZooKeeper: no plaintext port is opened.
    let secure_host = cfg
        .tls
        .secure_client_address
        .clone()
        .unwrap_or_else(|| cfg.client_address.clone());
    let listener = match (cfg.tls.secure_only, cfg.tls.secure_client_port) {
        (true, Some(port)) => bind("secure client port", &secure_host, port).await?,
        _ => bind("client port", &cfg.client_address, cfg.client_port).await?,
    };
    let client_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: cfg.client_listen_address(),
        source,
    })?;
    let latency = Arc::new(LatencyHistogram::default());
    let words = Arc::new(crate::admin::CoreAdmin::new(
        internal_tx.clone(),
        cfg.clone(),
        client_addr,
        latency.clone(),
    ));
    let port_cfg = ClientPortConfig {
        max_frame: cfg.jute_max_buffer as usize,
        max_per_ip: cfg.max_client_cnxns as usize,
        handshake_timeout: Duration::from_millis(
            u64::from(cfg.tick_time_ms) * u64::from(cfg.init_limit.max(1)),
        ),
        flow: FlowLimits {
            global_outstanding: cfg.limits.global_outstanding as usize,
            conn_outstanding: cfg.limits.conn_outstanding as usize,
            conn_queued_bytes: cfg.limits.conn_queued_reply_bytes as usize,
        },
        latency,
        global: Arc::new(crate::net::flow::GlobalFlow::default()),
    };
    let plain = match &client_tls {
        Some(tls) if cfg.tls.secure_only => client::Security::Tls(tls.clone()),
        Some(tls) if cfg.tls.client_port_unification => client::Security::Unified(tls.clone()),
        _ => client::Security::Plain,
    };
    let serve_client_port = |listener| {
        client::serve(
            listener,
            core_tx.clone(),
            port_cfg.clone(),
            words.clone(),
            plain.clone(),
        )
    };
    if matches!(plain, client::Security::Plain) {
        // Plaintext connections share the core's thread: a request and its reply then
        // cross no thread, which is most of a small request's cost (bench/RESULTS.md).
        let listener = move_to(&core_runtime, listener).map_err(|source| StartError::Bind {
            addr: cfg.client_listen_address(),
            source,
        })?;
        core_runtime.spawn(serve_client_port(listener));
    } else {
        // TLS does its cryptography on the runtime's workers, off the core's thread.
        tokio::spawn(serve_client_port(listener));
    }
    let secure_client_addr = match (cfg.tls.secure_client_port, client_tls) {
        (Some(_), Some(_)) if cfg.tls.secure_only => Some(client_addr),
        (Some(port), Some(tls)) => {
            let host = secure_host.as_str();
            let listener = bind("secure client port", host, port).await?;
            let addr = listener.local_addr().map_err(|source| StartError::Bind {
                addr: format!("{host}:{port}"),
                source,
            })?;
            tokio::spawn(client::serve(
                listener,
                core_tx.clone(),
                port_cfg,
                words.clone(),
                client::Security::Tls(tls),
            ));
            Some(addr)
        }
        _ => None,
    };

    let admin_addr = if cfg.admin_enabled {
        let listener = bind("admin HTTP", &cfg.admin_address, cfg.admin_port).await?;
        let addr = listener.local_addr().ok();
        let auth = crate::admin::auth::AdminAuth {
            digest: cfg.super_digest.clone(),
            token: cfg.admin_token.clone(),
            bound: addr.map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| {
                a.ip()
            }),
        };
        let router = crate::admin::auth::guard(crate::admin::router(words), auth);
        tokio::spawn(paddock_httpserve::serve(
            listener,
            router,
            crate::admin::serve::ADMIN_LIMITS,
            std::future::pending(),
        ));
        addr
    } else {
        None
    };

    let ticker = internal_tx.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if ticker.send(CoreMsg::Tick).is_err() {
                break;
            }
        }
    });
    info!(client = %client_addr, secure_client = ?secure_client_addr, admin = ?admin_addr, "paddock-server listening");
    Ok(Running {
        client_addr,
        secure_client_addr,
        admin_addr,
        core: core_tx,
        internal: internal_tx,
        core_thread,
    })
}
