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

use crate::config::{LearnerRole, QuorumKind, ServerConfig};
use crate::core::{Core, CoreConfig, CoreMsg, CoreTx, InternalTx, RecoveryError};
use crate::net::client::{self, ClientPortConfig};
use crate::net::peer::PeerNet;
use crate::zab::{Membership, QuorumVerifier, Timing};

#[derive(Debug, Error)]
pub enum StartError {
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

/// The ensemble described by the config: voters under the configured quorum rule, and
/// observers. A standalone server is an ensemble of one.
pub fn membership(cfg: &ServerConfig) -> Membership {
    let me = cfg.server_id();
    if cfg.is_standalone() {
        return Membership::standalone(me);
    }
    let participants: Vec<u64> = cfg.voting_members().map(|s| s.id).collect();
    let weights: BTreeMap<u64, u64> = participants
        .iter()
        .map(|id| (*id, cfg.member_weight(*id)))
        .collect();
    let verifier = match cfg.quorum_kind() {
        QuorumKind::Majority => QuorumVerifier::majority(participants),
        QuorumKind::Weighted => QuorumVerifier::Weighted { weights },
        QuorumKind::Hierarchical => QuorumVerifier::Hierarchical {
            groups: cfg
                .groups
                .iter()
                .map(|g| (g.id, g.members.iter().copied().collect()))
                .collect(),
            weights,
        },
    };
    Membership {
        version: cfg.config_version as i64,
        verifier,
        observers: cfg
            .servers
            .values()
            .filter(|s| s.role == LearnerRole::Observer)
            .map(|s| s.id)
            .collect(),
    }
}

/// The part of the config the core needs.
pub fn core_config(cfg: &ServerConfig) -> CoreConfig {
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
        membership: membership(cfg),
        timing: Timing::from_ticks(
            u64::from(cfg.tick_time_ms),
            u64::from(cfg.init_limit),
            u64::from(cfg.sync_limit),
        ),
        distributed: cfg.is_distributed(),
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
async fn start_peers(cfg: &ServerConfig, internal: &InternalTx) -> Result<PeerNet, StartError> {
    if cfg.is_standalone() {
        return Ok(PeerNet::none());
    }
    let me = cfg.server_id();
    let mut peers = BTreeMap::new();
    let mut listen = None;
    for entry in cfg.servers.values() {
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
    let core_cfg = core_config(&cfg);
    // Fine-grained ticks: elections and heartbeats work in milliseconds, not tickTime.
    let tick = Duration::from_millis(50);
    let peers = start_peers(&cfg, &internal_tx).await?;
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
