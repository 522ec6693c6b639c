//! `mw`: the seeds' master–worker task system on Paddock (see README.md).
//!
//! ```text
//! mw master --servers S --id m1                 campaign; the active master assigns tasks
//! mw worker --servers S --id w1 --sink URL      register, run assignments, hand results in
//! mw sink   --servers S --listen ADDR --log F   the fencing gate that records results
//! mw submit --servers S --count N               submit tasks and wait for their status
//! mw status --servers S                         the active master, the workers, tasks done
//! mw chaos  [--tasks N]                         everything locally, broken on purpose
//! ```

mod chaos;
mod http;
mod layout;
mod master;
mod sink;
mod submit;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use paddock_client::{Client, CreateMode, ErrorCode};

use layout::Layout;

#[derive(Debug, Parser)]
#[command(
    name = "mw",
    about = "A master–worker task system on Paddock, fenced end to end"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// The ensemble: HOST:PORT,...
    #[arg(long, env = "MW_SERVERS", default_value = "127.0.0.1:2181")]
    servers: String,
    /// The app's root znode.
    #[arg(long, env = "MW_ROOT", default_value = "/mw")]
    root: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Campaign for master; while active, assign tasks to live workers.
    Master {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        id: String,
        /// Session timeout (a backup takes over about this long after a master dies).
        #[arg(long, default_value_t = 4000)]
        session_timeout_ms: u64,
    },
    /// Register as a worker and run the tasks assigned to it.
    Worker {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        id: String,
        /// The sink's base URL (http://HOST:PORT).
        #[arg(long)]
        sink: String,
        /// Tasks run at once.
        #[arg(long, default_value_t = 2)]
        parallel: usize,
        #[arg(long, default_value_t = 4000)]
        session_timeout_ms: u64,
    },
    /// Record results, refusing stale fencing tokens.
    Sink {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: String,
        /// Recorded results, one JSON line each.
        #[arg(long, default_value = "results.jsonl")]
        log: PathBuf,
    },
    /// Submit tasks and wait until each has a status.
    Submit {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 10)]
        count: u64,
        /// How long each task's work takes.
        #[arg(long, default_value_t = 50)]
        work_ms: u64,
        /// Give up waiting for statuses after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout_s: u64,
        /// Tasks submitted per second (0: as fast as they are created).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Also write the outcome as JSON here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Who is the active master, which workers are registered, how many tasks are done
    /// (JSON).
    Status {
        #[command(flatten)]
        common: Common,
    },
    /// Run 2 masters, 5 workers (one of them the Python sidecar worker) and a sink on a
    /// local ensemble, submit tasks while killing, pausing and cutting off masters and
    /// workers, and give a verdict: no task lost, none recorded twice.
    Chaos(chaos::ChaosOptions),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mw: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Master {
                common,
                id,
                session_timeout_ms,
            } => {
                master::run(master::MasterOptions {
                    servers: common.servers,
                    layout: Layout::new(&common.root),
                    id,
                    session_timeout: Duration::from_millis(session_timeout_ms),
                })
                .await
            }
            Command::Worker {
                common,
                id,
                sink,
                parallel,
                session_timeout_ms,
            } => {
                worker::run(worker::WorkerOptions {
                    servers: common.servers,
                    layout: Layout::new(&common.root),
                    id,
                    sink,
                    parallel: parallel.max(1),
                    session_timeout: Duration::from_millis(session_timeout_ms),
                })
                .await
            }
            Command::Sink {
                common,
                listen,
                log,
            } => {
                sink::run(sink::SinkOptions {
                    servers: common.servers,
                    layout: Layout::new(&common.root),
                    listen,
                    log,
                })
                .await
            }
            Command::Submit {
                common,
                count,
                work_ms,
                timeout_s,
                rate,
                report: report_path,
            } => {
                let layout = Layout::new(&common.root);
                let report = submit::submit_and_wait(
                    &common.servers,
                    &layout,
                    submit::Batch {
                        count,
                        work_ms,
                        rate,
                    },
                    Duration::from_secs(timeout_s),
                )
                .await?;
                println!("{}", report.summary());
                if let Some(path) = report_path {
                    std::fs::write(&path, format!("{:#}\n", report.json()))
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
                if report.missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{} tasks without a status", report.missing.len()))
                }
            }
            Command::Status { common } => {
                let client = connect(&common.servers, Duration::from_secs(10)).await?;
                let status = submit::status(&client, &Layout::new(&common.root)).await;
                client.close().await;
                println!("{}", status?);
                Ok(())
            }
            Command::Chaos(opts) => chaos::run(opts).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mw: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A connected client, or why not.
pub async fn connect(servers: &str, session_timeout: Duration) -> Result<Client, String> {
    Client::builder(servers)
        .session_timeout(session_timeout)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {servers}: {e}"))
}

/// Creates the app's directories that are missing.
pub async fn ensure_dirs(client: &Client, layout: &Layout) -> Result<(), String> {
    for dir in layout.dirs() {
        match client.ensure_path(&dir, CreateMode::Persistent).await {
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::NodeExists => {}
            Err(e) => return Err(format!("cannot create {dir}: {e}")),
        }
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
