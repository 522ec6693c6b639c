//! `paddock-server [--config FILE] [--data-dir DIR] [--myid N | --myid-from-hostname] [--client-port P]
//! [--client-address A] [--admin-port P] [--admin-address A] [--join HOST:PORT,...]
//! [--join-timeout D] [--peer-address HOST[:Q[:E]]] [--super-digest-file FILE]
//! [--admin-token-file FILE]`
//! (`paddock-server --help` lists them all; PADDOCK_SUPER_DIGEST sets the super digest).
//!
//! On SIGTERM or Ctrl-C a leader first hands leadership to a synced follower (at most
//! [`paddock_server::stop::HANDOFF_BOUND`]), then the server stops.

use clap::Parser;
use paddock_server::config::{Cli, ServerConfig};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    // First, while this is the only thread: returns only when no re-execution happened.
    let malloc_cache = paddock_server::malloc_cache::reexec_with_tcache();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not for log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(why) = malloc_cache {
        tracing::warn!("{why}");
    }
    let cfg = match ServerConfig::load(&cli) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("paddock-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paddock-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let running = match paddock_server::run::start(cfg).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("paddock-server: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let core = running.internal.clone();
        let stop = async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return std::future::pending::<()>().await,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            tracing::info!("shutting down");
            // A leader hands off first, so that stopping it costs a transfer, not an
            // election; a second signal cuts the wait short.
            tokio::select! {
                _ = paddock_server::stop::hand_off_leadership(
                    &core,
                    paddock_server::stop::HANDOFF_BOUND,
                ) => {},
                _ = tokio::signal::ctrl_c() => tracing::warn!("second signal: stopping now"),
                _ = term.recv() => tracing::warn!("second signal: stopping now"),
            }
            let _ = core.send(paddock_server::core::CoreMsg::Shutdown);
        };
        tokio::spawn(stop);
        match running.wait().await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("paddock-server: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}
