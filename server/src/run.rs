//! Assembles a running server from a [`ServerConfig`]: recovery, the core thread, the
//! client port, the admin HTTP server and the tick timer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::info;

use std::collections::BTreeMap;

use crate::config::{DynamicConfig, ServerConfig};
use crate::core::{Core, CoreConfig, CoreMsg, CoreTx, InternalTx, RecoveryError};
use crate::net::client::{self, ClientPortConfig};
use crate::net::peer::PeerNet;
use crate::zab::{Membership, Timing};

#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot learn the ensemble's config through --join: {0}")]
    Join(String),
    #[error("recovery failed: {0}")]
    Recovery(#[from] RecoveryError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot start the core thread: {0}")]
    Thread(std::io::Error),
}

/// A started server.
pub struct Running {
    pub client_addr: SocketAddr,
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
        super_digest: cfg
            .super_digest
            .as_ref()
            .map(|d| format!("{}:{}", d.user, d.digest)),
        container_check_ms: cfg
            .extra
            .get("znode.container.checkIntervalMs")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
        membership: membership(cfg, ensemble),
        timing: Timing::from_ticks(
            u64::from(cfg.tick_time_ms),
            u64::from(cfg.init_limit),
            u64::from(cfg.sync_limit),
        ),
        distributed: cfg.is_distributed(),
        ensemble: ensemble.clone(),
    }
}

/// Resolves `host:port`, preferring IPv4.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, StartError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| StartError::Bind {
            addr: format!("{host}:{port}"),
            source,
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| StartError::Bind {
            addr: format!("{host}:{port}"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        })
}

/// Starts the peer transport for an ensemble member.
async fn start_peers(
    cfg: &ServerConfig,
    ensemble: &DynamicConfig,
    internal: &InternalTx,
) -> Result<PeerNet, StartError> {
    if cfg.is_standalone() {
        return Ok(PeerNet::none());
    }
    let me = cfg.server_id();
    let mut peers = BTreeMap::new();
    let mut listen = None;
    // Our own line comes from zoo.cfg when we are joining (the ensemble lacks us yet).
    let own = cfg
        .my_entry()
        .into_iter()
        .filter(|e| !ensemble.servers.contains_key(&e.id));
    for entry in ensemble.servers.values().chain(own) {
        let Some(addr) = entry.primary() else {
            continue;
        };
        let resolved = resolve(&addr.host, addr.quorum_port).await?;
        if entry.id == me {
            listen = Some(resolved);
        } else {
            peers.insert(entry.id, resolved);
        }
    }
    let listen = listen.ok_or_else(|| StartError::Bind {
        addr: format!("server.{me}"),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "this server's id has no server.N line",
        ),
    })?;
    crate::net::peer::start(me, listen, peers, internal.clone())
        .await
        .map_err(|source| StartError::Bind {
            addr: listen.to_string(),
            source,
        })
}

/// Binds with a deep accept backlog: after a failover hundreds of clients reconnect at
/// once, and tokio's default of 128 would make many of them wait for a SYN retry.
async fn bind(addr: String) -> Result<TcpListener, StartError> {
    let err = |source| StartError::Bind {
        addr: addr.clone(),
        source,
    };
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(&addr).await.map_err(err)?.collect();
    let target = resolved.first().copied().ok_or_else(|| {
        err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address",
        ))
    })?;
    let socket = if target.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(target).map_err(err)?;
    socket.listen(4096).map_err(err)
}

/// Recovers state and starts serving. Must be called inside a tokio runtime.
pub async fn start(cfg: ServerConfig) -> Result<Running, StartError> {
    let (core_tx, core_rx) = mpsc::channel::<CoreMsg>(64 * 1024);
    let (internal_tx, internal_rx) = mpsc::unbounded_channel::<CoreMsg>();
    let ensemble = if cfg.is_distributed()
        && !cfg.join.is_empty()
        && DynamicConfig::read_committed(&cfg.snap_dir()).is_none()
    {
        fetch_ensemble(&cfg.join).await?
    } else {
        starting_ensemble(&cfg)
    };
    let core_cfg = core_config(&cfg, &ensemble);
    // Fine-grained ticks: elections and heartbeats work in milliseconds, not tickTime.
    let tick = Duration::from_millis(50);
    let peers = start_peers(&cfg, &ensemble, &internal_tx).await?;
    let core = {
        let core_cfg = core_cfg.clone();
        let internal_tx = internal_tx.clone();
        tokio::task::spawn_blocking(move || Core::open(core_cfg, internal_tx, peers))
            .await
            .map_err(|e| StartError::Thread(std::io::Error::other(e.to_string())))??
    };
    let core_thread = std::thread::Builder::new()
        .name("paddock-core".into())
        .spawn(move || core.run(core_rx, internal_rx))
        .map_err(StartError::Thread)?;

    let listener = bind(cfg.client_listen_address()).await?;
    let client_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: cfg.client_listen_address(),
        source,
    })?;
    let words = Arc::new(crate::admin::CoreAdmin::new(
        internal_tx.clone(),
        cfg.clone(),
        client_addr,
    ));
    tokio::spawn(client::serve(
        listener,
        core_tx.clone(),
        ClientPortConfig {
            max_frame: cfg.jute_max_buffer as usize,
            max_per_ip: cfg.max_client_cnxns as usize,
            handshake_timeout: Duration::from_millis(
                u64::from(cfg.tick_time_ms) * u64::from(cfg.init_limit.max(1)),
            ),
        },
        words.clone(),
    ));

    let admin_addr = if cfg.admin_enabled {
        let listener = bind(cfg.admin_listen_address()).await?;
        let addr = listener.local_addr().ok();
        let router = crate::admin::router(words);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "admin server stopped");
            }
        });
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
    info!(client = %client_addr, admin = ?admin_addr, "paddock-server listening");
    Ok(Running {
        client_addr,
        admin_addr,
        core: core_tx,
        internal: internal_tx,
        core_thread,
    })
}

/// `--join`: reads the committed config (`/zookeeper/config`) from any reachable member
/// over the client protocol. The joiner then syncs as a non-voting member until a
/// reconfig adds it.
async fn fetch_ensemble(join: &[crate::config::HostPort]) -> Result<DynamicConfig, StartError> {
    let mut last_error = String::from("no --join targets");
    for target in join {
        match fetch_config_text(&target.host, target.port).await {
            Ok(text) => {
                let config = DynamicConfig::parse(&text, "/zookeeper/config")
                    .map_err(|e| StartError::Join(e.to_string()))?;
                info!(from = %target, members = config.servers.len(), version = format_args!("{:#x}", config.version), "learned the ensemble's config");
                return Ok(config);
            }
            Err(e) => last_error = format!("{target}: {e}"),
        }
    }
    Err(StartError::Join(last_error))
}

async fn fetch_config_text(host: &str, port: u16) -> Result<String, String> {
    use paddock_proto::{
        ConnectRequest, ConnectResponse, GetDataRequest, Jute, ReplyHeader, Request, Response,
        frame::frame,
    };
    use tokio::io::AsyncWriteExt;
    let io = |e: std::io::Error| e.to_string();
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(io)?;
        let connect = ConnectRequest {
            time_out: 10_000,
            passwd: vec![0u8; 16].into(),
            read_only: Some(false),
            ..ConnectRequest::default()
        };
        s.write_all(&frame(&connect.to_bytes())).await.map_err(io)?;
        let resp = read_frame(&mut s).await?;
        let session = ConnectResponse::from_bytes(&resp).map_err(|e| e.to_string())?;
        if session.time_out <= 0 {
            return Err("the server refused the session".to_string());
        }
        let req = Request::GetData(GetDataRequest {
            path: crate::tree::CONFIG_NODE.to_string(),
            watch: false,
        });
        s.write_all(&frame(&req.encode(1))).await.map_err(io)?;
        let reply = read_frame(&mut s).await?;
        let mut r = paddock_proto::Reader::new(&reply);
        let header = ReplyHeader::read(&mut r).map_err(|e| e.to_string())?;
        if header.err != 0 {
            return Err(format!(
                "getData /zookeeper/config failed with error {}",
                header.err
            ));
        }
        match Response::decode(
            paddock_proto::OpCode::GetData.code(),
            &reply[r.position()..],
        )
        .map_err(|e| e.to_string())?
        {
            Response::GetData(d) => Ok(String::from_utf8_lossy(&d.data).into_owned()),
            _ => Err("unexpected reply".to_string()),
        }
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .map_err(|_| "timed out".to_string())?
}

async fn read_frame(s: &mut tokio::net::TcpStream) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.map_err(|e| e.to_string())?;
    let n = paddock_proto::frame::frame_len(len, 1 << 20).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    Ok(buf)
}
