//! Wiring: start the session keeper, the flag campaigns, renders and the pod labeller,
//! serve the API, and on SIGTERM hand everything over before exiting.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::{App, Settings, shutdown_requested};
use crate::cli::Config;
use crate::elections::Elections;
use crate::groups::Groups;
use crate::hub::Hub;
use crate::k8s::{self, KubeLabeler, PodLabeler};
use crate::layout::Layout;
use crate::locks::Locks;
use crate::metrics::Metrics;
use crate::session::Sessions;

/// How long a join over HTTP waits for its node before answering 202.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds of the shutdown steps.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);
const LABEL_TIMEOUT: Duration = Duration::from_secs(5);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the sidecar until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> Result<(), String> {
    let layout = Layout::with_roots(
        &cfg.root,
        cfg.groups_root.as_deref(),
        cfg.config_root.as_deref(),
    );
    let hub = Hub::new();
    let metrics = Arc::new(Metrics::default());
    let sessions = Sessions::new(&cfg.servers, cfg.session_timeout, layout.clone());
    let settings = Settings {
        id: cfg.id.clone(),
        election: cfg.election.clone(),
        heartbeat: cfg.heartbeat,
        join_timeout: JOIN_TIMEOUT,
    };
    let app = App::new(
        settings,
        layout,
        sessions.clone(),
        hub.clone(),
        metrics.clone(),
        cfg.token.clone(),
    );
    // The label client is built only with --leader-label (and lazily, on first use).
    let labeler: Option<Arc<dyn PodLabeler>> = if cfg.leader_label {
        let l = KubeLabeler::from_env()?;
        tracing::info!(
            pod = l.pod(),
            namespace = l.namespace(),
            "labelling this pod with paddock.dev/leader"
        );
        Some(Arc::new(l))
    } else {
        None
    };
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback: anyone who can reach this address can use the API{}",
            if cfg.token.is_some() { " with the token" } else { "; consider --token-file" });
    }
    tracing::info!(%addr, servers = %cfg.servers, root = %cfg.root, "paddock-sidecar listening");
    let probes = match cfg.probe_listen {
        None => None,
        Some(probe_addr) => {
            let l = TcpListener::bind(probe_addr)
                .await
                .map_err(|e| format!("cannot listen on {probe_addr} (--probe-listen): {e}"))?;
            let bound = l
                .local_addr()
                .map_err(|e| format!("cannot read the probe address: {e}"))?;
            tracing::info!(addr = %bound, "probe endpoints listening");
            let server = crate::serve::serve(
                l,
                crate::api::probe_router(app.clone()),
                cfg.http,
                shutdown_requested(app.shutdown_signal()),
            );
            Some(tokio::spawn(server))
        }
    };

    tokio::spawn(sessions.clone().run(hub, metrics, app.shutdown_signal()));
    if let (Some(election), Some(id)) = (&cfg.election, &cfg.id) {
        let (app, election, id, value) =
            (app.clone(), election.clone(), id.clone(), cfg.value.clone());
        tokio::spawn(async move {
            if let Err(e) = Elections::join(&app, &election, &id, value, true).await {
                tracing::error!(%election, %id, error = %e, "cannot campaign");
            }
        });
    }
    if let Some(id) = &cfg.id {
        for group in &cfg.groups {
            let (app, group, id, value) =
                (app.clone(), group.clone(), id.clone(), cfg.value.clone());
            tokio::spawn(async move {
                if let Err(e) = Groups::join(&app, &group, &id, value, true).await {
                    tracing::error!(%group, %id, error = %e, "cannot join");
                }
            });
        }
    }
    for spec in &cfg.renders {
        tokio::spawn(crate::render::run(app.clone(), spec.clone()));
    }
    let label_task = labeler.map(|l| {
        tokio::spawn(k8s::follow(
            l,
            app.leading.subscribe(),
            app.shutdown_signal(),
        ))
    });

    let router = crate::api::router(app.clone());
    let server = tokio::spawn(crate::serve::serve(
        listener,
        router,
        cfg.http,
        shutdown_requested(app.shutdown_signal()),
    ));

    let signal = wait_for_signal().await;
    tracing::info!(
        signal,
        "shutting down: resigning, leaving and releasing before exit"
    );
    app.begin_shutdown();
    let handover = async {
        tokio::join!(
            Elections::resign_all(&app),
            Groups::leave_all(&app),
            Locks::release_all(&app),
        );
    };
    if tokio::time::timeout(HANDOVER_TIMEOUT, handover)
        .await
        .is_err()
    {
        tracing::warn!("handover did not finish in time; closing the session deletes what is left");
    }
    if let Some(task) = label_task
        && tokio::time::timeout(LABEL_TIMEOUT, task).await.is_err()
    {
        tracing::warn!("could not reset the pod label before exit");
    }
    if tokio::time::timeout(CLOSE_TIMEOUT, sessions.close())
        .await
        .is_err()
    {
        tracing::warn!("the session did not close in time");
    }
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, server).await;
    if let Some(probes) = probes {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, probes).await;
    }
    tracing::info!("bye");
    Ok(())
}

/// Waits for SIGTERM or SIGINT; returns its name.
async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the sidecar");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
