//! Assembles a running server from a [`ServerConfig`]: recovery, the core thread, the
//! client port, the admin HTTP server and the tick timer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::info;

use crate::config::ServerConfig;
use crate::core::{Core, CoreConfig, CoreMsg, CoreTx, InternalTx, RecoveryError};
use crate::net::client::{self, ClientPortConfig};

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
    }
}

async fn bind(addr: String) -> Result<TcpListener, StartError> {
    TcpListener::bind(&addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Recovers state and starts serving. Must be called inside a tokio runtime.
pub async fn start(cfg: ServerConfig) -> Result<Running, StartError> {
    let (core_tx, core_rx) = mpsc::channel::<CoreMsg>(64 * 1024);
    let (internal_tx, internal_rx) = mpsc::unbounded_channel::<CoreMsg>();
    let core_cfg = core_config(&cfg);
    let tick = Duration::from_millis((core_cfg.tick_ms / 2).clamp(10, 1000));
    let core = {
        let core_cfg = core_cfg.clone();
        let internal_tx = internal_tx.clone();
        tokio::task::spawn_blocking(move || Core::open(core_cfg, internal_tx))
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
