//! `paddock-operator`: `crd` prints the CustomResourceDefinition, `run` runs the controller.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgAction, Parser, Subcommand};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use paddock_operator::lease::{self, LeaseConfig};
use paddock_operator::metrics::{self, Health, Metrics};

#[derive(Parser)]
#[command(
    name = "paddock-operator",
    version,
    about = "Kubernetes operator for ZkEnsemble"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the ZkEnsemble CustomResourceDefinition as YAML.
    Crd,
    /// Run the controller (in a pod, or outside the cluster with KUBECONFIG).
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only this namespace (all namespaces when unset).
    #[arg(long)]
    namespace: Option<String>,
    /// Where /metrics, /healthz and /readyz listen.
    #[arg(long, default_value = "127.0.0.1:9090")]
    metrics_address: SocketAddr,
    /// Run only while holding the Lease, so that several replicas are safe.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    leader_election: bool,
    /// Namespace of the Lease (default: POD_NAMESPACE, else "default").
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crd => match paddock_operator::crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("paddock-operator: cannot render the CRD: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info,kube=warn".into()),
                )
                .init();
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("paddock-operator: no async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// This replica's name in the Lease and in Events.
fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "paddock-operator".into());
        format!("{host}-{}", std::process::id())
    })
}

async fn run(args: RunArgs) -> Result<(), String> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("no Kubernetes client (in-cluster config or KUBECONFIG): {e}"))?;
    let identity = identity();
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let listener = tokio::net::TcpListener::bind(args.metrics_address)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.metrics_address))?;
    let router = metrics::router(metrics.clone(), health.clone());
    tokio::spawn(metrics::serve(listener, router));
    tracing::info!(address = %args.metrics_address, %identity, "paddock-operator starting");

    let controller = paddock_operator::controller::run(
        client.clone(),
        args.namespace.clone(),
        identity.clone(),
        metrics,
        health.clone(),
    );
    if !args.leader_election {
        controller.await;
        return Ok(());
    }
    let leases: Api<Lease> = Api::namespaced(client, &args.lease_namespace);
    let cfg = LeaseConfig::new("paddock-operator", identity);
    // Standing by is ready: the replica is healthy and waits its turn.
    health.set_ready(true);
    lease::acquire(&leases, &cfg).await;
    health.set_ready(false);
    tokio::select! {
        () = controller => {
            lease::release(&leases, &cfg).await;
            Ok(())
        }
        lost = lease::hold(&leases, &cfg) => Err(format!("{lost}: stopping so that another replica can take over")),
    }
}
