//! The long-running process behind `paddock-kubesim up`: it starts the control plane,
//! installs the cluster's defaults, runs the node agents, DNS and the provisioner, answers
//! `node fail|restore` on a Unix socket, and on SIGTERM (`down`) stops the pods, then the
//! control plane.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::controlplane::{self, ControlPlane};
use crate::dns::{self, DnsHandle};
use crate::env::ApiEndpoint;
use crate::faults::PodCgroups;
use crate::images::ImageMap;
use crate::kubeconfig;
use crate::layout::{Layout, NodeInfo, State, node_ip, node_name};
use crate::netblock::NetBlock;
use crate::node::{self, IpAllocator, Shared};
use crate::provisioner;

pub struct Options {
    pub layout: Layout,
    pub nodes: usize,
    pub images: ImageMap,
    pub bin_dir: PathBuf,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub async fn serve(options: Options) -> Result<(), BoxError> {
    let layout = options.layout.clone();
    // First of all: without an address block of its own, the cluster's pods would collide
    // with those of another cluster on this machine. Held until `serve` returns (and, through
    // the inherited descriptor, by every pod process still alive).
    let block = NetBlock::claim()?;
    info!(%block, "pod addresses come from this cluster's own block");
    let cgroups = match PodCgroups::create(block.octet()) {
        Ok(cgroups) => Some(cgroups),
        Err(error) => {
            warn!(%error, "pods get no cgroups: `paddock-kubesim pod pause|cut` will not work");
            None
        }
    };
    let names: Vec<String> = (0..options.nodes).map(node_name).collect();
    let apiserver_port = controlplane::free_port()?;
    let creds = controlplane::create_credentials(&layout, apiserver_port, &names)?;
    let admin = kubeconfig::client(&layout.admin_kubeconfig()).await?;
    let mut state = State {
        supervisor_pid: Some(std::process::id()),
        apiserver_port,
        nodes: names
            .iter()
            .enumerate()
            .map(|(i, name)| NodeInfo {
                name: name.clone(),
                ip: node_ip(i),
            })
            .collect(),
        pod_block: Some(block.to_string()),
        pod_cgroups: cgroups.clone(),
        ..State::default()
    };
    state.save(&layout)?;
    let mut plane = match controlplane::start(
        &layout,
        &options.bin_dir,
        &creds,
        apiserver_port,
        &admin,
    )
    .await
    {
        Ok(plane) => plane,
        Err(e) => return Err(e.into()),
    };
    state.etcd_port = plane.etcd_port;
    state.processes = plane.started();
    state.save(&layout)?;

    let result = run_cluster(
        &options,
        &layout,
        &admin,
        &names,
        apiserver_port,
        &block,
        cgroups.clone(),
    )
    .await;
    if let Err(e) = &result {
        error!(error = %e, "the cluster failed");
    }
    stop_control_plane(&mut plane).await;
    let _ = std::fs::remove_file(layout.ready_marker());
    let _ = std::fs::remove_file(layout.control_socket());
    if let Some(cgroups) = &cgroups {
        cgroups.remove_all();
    }
    // Only now, with the pods and the control plane stopped, may another cluster take it.
    drop(block);
    result
}

async fn run_cluster(
    options: &Options,
    layout: &Layout,
    admin: &kube::Client,
    names: &[String],
    apiserver_port: u16,
    block: &NetBlock,
    cgroups: Option<PodCgroups>,
) -> Result<(), BoxError> {
    provisioner::install_storage_class(admin).await?;
    let dns = DnsHandle::default();
    let shared = Arc::new(Shared {
        layout: layout.clone(),
        images: options.images.clone(),
        api: ApiEndpoint {
            host: "127.0.0.1".into(),
            port: apiserver_port,
        },
        ips: IpAllocator::new(block.octet()),
        block_lock: block.lock(),
        dns: dns.clone(),
        cgroups,
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(dns::watch(dns, admin.clone()));
    tasks.spawn(provisioner::run(admin.clone(), layout.volumes()));
    let mut switches = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let client = kubeconfig::client(&layout.kubeconfig_for(&format!("node-{name}"))).await?;
        let (tx, rx) = watch::channel(false);
        switches.push((name.clone(), tx));
        tasks.spawn(node::run(
            shared.clone(),
            name.clone(),
            node_ip(index),
            client,
            rx,
        ));
    }
    wait_nodes_ready(admin, names.len()).await?;
    wait_default_service_account(admin).await?;
    std::fs::write(layout.ready_marker(), b"ready\n")?;
    info!(nodes = names.len(), "cluster ready");

    let _ = std::fs::remove_file(layout.control_socket());
    let listener = UnixListener::bind(layout.control_socket())?;
    let switches = Arc::new(switches);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(control(stream, switches.clone()));
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    info!("stopping: every node loses power, then the control plane stops");
    for (_, switch) in switches.iter() {
        let _ = switch.send(true);
    }
    // Workers kill their processes when told; give them a moment to do it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    tasks.abort_all();
    Ok(())
}

async fn wait_nodes_ready(admin: &kube::Client, count: usize) -> Result<(), BoxError> {
    let nodes: Api<Node> = Api::all(admin.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready = nodes
            .list(&Default::default())
            .await
            .map(|list| {
                list.items
                    .iter()
                    .filter(|n| {
                        n.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .count()
            })
            .unwrap_or(0);
        if ready >= count {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("only {ready} of {count} nodes became Ready within 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pods cannot be created before the ServiceAccount controller made `default/default`;
/// a cluster is ready for users only then.
async fn wait_default_service_account(admin: &kube::Client) -> Result<(), BoxError> {
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(admin.clone(), "default");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !matches!(accounts.get_opt("default").await, Ok(Some(_))) {
        if tokio::time::Instant::now() > deadline {
            return Err("the ServiceAccount default/default did not appear within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// One control connection: a line `fail NAME` or `restore NAME`, answered `ok` or
/// `error: ...`.
async fn control(
    stream: tokio::net::UnixStream,
    switches: Arc<Vec<(String, watch::Sender<bool>)>>,
) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(1024));
    let answer = match reader.read_line(&mut line).await {
        Ok(_) => {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some(verb @ ("fail" | "restore")), Some(name)) => {
                    match switches.iter().find(|(n, _)| n == name) {
                        Some((_, switch)) => {
                            let _ = switch.send(verb == "fail");
                            info!(node = name, verb, "node switched");
                            "ok\n".to_string()
                        }
                        None => format!("error: no node named {name}\n"),
                    }
                }
                _ => "error: expected `fail NAME` or `restore NAME`\n".to_string(),
            }
        }
        Err(e) => format!("error: {e}\n"),
    };
    let _ = write.write_all(answer.as_bytes()).await;
}

async fn stop_control_plane(plane: &mut ControlPlane) {
    // Reverse order of start: scheduler, controller-manager, apiserver, etcd.
    for (name, child) in plane.children.iter_mut().rev() {
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) on a pid we spawned and still own (not yet reaped).
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(_) => info!(name, "stopped"),
            Err(_) => {
                warn!(name, "did not stop within 10 s; killing");
                let _ = child.kill().await;
            }
        }
    }
}
