//! One pod on one node: its sandbox (an address of its own, a hosts file, volume
//! directories), its containers through the runtime, its status, and its end (graceful
//! termination then the final delete, or a power loss).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::{Event, EventType};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::NodeContext;
use super::status::{Sandbox, status_patch};
use crate::dns::PodRecord;
use crate::faults::PodCgroup;
use crate::layout::Layout;
use crate::runtime::{
    self, ContainerKind, ContainerPlan, MountPlan, PodHandle, PodPlan, PodSandbox, RestartPolicy,
};
use crate::volumes::{MountError, TokenCache, VolumeContext};

pub enum Command {
    /// The latest version of the pod object.
    Update(Box<Pod>),
    /// The pod was deleted gracefully: stop it within `grace`, then remove it.
    Terminate { grace: Duration },
    /// The node lost power: stop every process now, tell the API nothing.
    Kill,
}

pub struct Worker {
    pub commands: mpsc::Sender<Command>,
    pub task: tokio::task::JoinHandle<()>,
}

pub fn spawn(ctx: Arc<NodeContext>, pod: Pod) -> Worker {
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(async move { run(ctx, pod, rx).await });
    Worker { commands: tx, task }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// What names a pod here: the API's name and namespace, and its uid (its directory's name).
struct PodId {
    name: String,
    namespace: String,
    uid: String,
}

impl PodId {
    fn of(pod: &Pod) -> PodId {
        PodId {
            name: pod.metadata.name.clone().unwrap_or_default(),
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

/// The pod from its sandbox to its end; its cgroup (when there are cgroups) lives as long.
async fn run(ctx: Arc<NodeContext>, pod: Pod, commands: mpsc::Receiver<Command>) {
    let id = PodId::of(&pod);
    let pod_dir = ctx.shared.layout.pod_dir(&id.uid);
    if let Err(error) = std::fs::create_dir_all(pod_dir.join("logs")).and_then(|()| {
        std::fs::write(
            Layout::pod_name_file(&pod_dir),
            format!("{}/{}\n", id.namespace, id.name),
        )
    }) {
        warn!(pod = %id.name, %error, "cannot create the pod's directory");
    }
    let cgroup = ctx
        .shared
        .cgroups
        .as_ref()
        .map(|c| c.pod(&id.uid))
        .filter(|cgroup| {
            cgroup
                .create()
                .map_err(|error| warn!(pod = %id.name, %error, "the pod runs without a cgroup"))
                .is_ok()
        });
    let procs = cgroup.as_ref().map(PodCgroup::procs_file);
    let name = id.name.clone();
    run_sandboxed(ctx, pod, id, commands, procs).await;
    if let Some(cgroup) = cgroup
        && let Err(error) = tokio::task::spawn_blocking(move || cgroup.remove()).await
    {
        warn!(pod = %name, %error, "removing the pod's cgroup");
    }
}

async fn run_sandboxed(
    ctx: Arc<NodeContext>,
    mut pod: Pod,
    PodId {
        name,
        namespace,
        uid,
    }: PodId,
    mut commands: mpsc::Receiver<Command>,
    cgroup_procs: Option<PathBuf>,
) {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let pod_ip = ctx.shared.ips.next();
    let pod_dir = ctx.shared.layout.pod_dir(&uid);
    let hosts_file = pod_dir.join("etc-hosts");
    let sandbox = Sandbox {
        pod_ip,
        host_ip: ctx.ip,
        start_time: now(),
    };
    ctx.shared
        .dns
        .register(&uid, dns_record(&pod, pod_ip), hosts_file.clone());
    info!(pod = %format!("{namespace}/{name}"), ip = %pod_ip, node = %ctx.name, "pod sandbox ready");
    patch_status(&api, &name, &pod, &sandbox, None).await;

    let tokens = TokenCache::default();
    // Volumes first: the pod waits in ContainerCreating (FailedMount events) until all mount.
    let mut last_mount_error = String::new();
    let mounts = loop {
        match materialize_all(&ctx, &pod, &pod_dir, &tokens).await {
            Ok(mounts) => break mounts,
            Err(MountError::Failed { volume, message }) => {
                let text = format!("MountVolume.SetUp failed for volume \"{volume}\": {message}");
                if text != last_mount_error {
                    ctx.event(&pod, EventType::Warning, "FailedMount", &text)
                        .await;
                    last_mount_error = text;
                }
            }
        }
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Update(p)) => pod = *p,
                Some(Command::Terminate { .. }) => { finish(&ctx, &api, &pod, &uid).await; return; }
                Some(Command::Kill) | None => { ctx.shared.dns.unregister(&uid); return; }
            },
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    };

    let plan = build_plan(
        &ctx,
        &pod,
        pod_ip,
        &hosts_file,
        &pod_dir,
        &mounts,
        cgroup_procs,
    )
    .await;
    let handle: PodHandle = runtime::start(plan);
    let mut status = handle.status();
    let mut refresh = tokio::time::interval(Duration::from_secs(5));
    let mut reported_seq = 0u64;
    loop {
        tokio::select! {
            changed = status.changed() => {
                if changed.is_err() { break; }
                let current = status.borrow_and_update().clone();
                patch_status(&api, &name, &pod, &sandbox, Some(&current)).await;
                ctx.shared.dns.update(&uid, dns_record_with(&pod, pod_ip, &current));
                let since = reported_seq;
                for event in current.events.iter().filter(|e| e.seq > since) {
                    let kind = match event.type_ {
                        runtime::EventType::Warning => EventType::Warning,
                        runtime::EventType::Normal => EventType::Normal,
                    };
                    ctx.event(&pod, kind, &event.reason, &event.message).await;
                    reported_seq = event.seq;
                }
            }
            command = commands.recv() => match command {
                Some(Command::Update(p)) => pod = *p,
                Some(Command::Terminate { grace }) => {
                    ctx.event(&pod, EventType::Normal, "Killing", "Stopping container(s)").await;
                    let mut stopping = pod.clone();
                    stopping.metadata.deletion_timestamp.get_or_insert_with(now);
                    let last = status.borrow().clone();
                    patch_status(&api, &name, &stopping, &sandbox, Some(&last)).await;
                    handle.terminate(grace).await;
                    let last = status.borrow().clone();
                    patch_status(&api, &name, &stopping, &sandbox, Some(&last)).await;
                    finish(&ctx, &api, &pod, &uid).await;
                    return;
                }
                Some(Command::Kill) | None => {
                    handle.kill().await;
                    ctx.shared.dns.unregister(&uid);
                    return;
                }
            },
            _ = refresh.tick() => {
                // ConfigMap, Secret, downward API and projected volumes follow their
                // sources (and tokens are renewed), as the kubelet's periodic sync does.
                if let Err(MountError::Failed { volume, message }) = materialize_all(&ctx, &pod, &pod_dir, &tokens).await {
                    debug!(pod = %name, volume, message, "volume refresh failed");
                }
            }
        }
    }
    ctx.shared.dns.unregister(&uid);
}

/// The final delete after the containers stopped (grace 0 with the uid as precondition,
/// as the kubelet does it).
async fn finish(ctx: &NodeContext, api: &Api<Pod>, pod: &Pod, uid: &str) {
    ctx.shared.dns.unregister(uid);
    let name = pod.metadata.name.clone().unwrap_or_default();
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    for attempt in 0..10u32 {
        match api.delete(&name, &params).await {
            Ok(_) => break,
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => break,
            Err(error) => {
                warn!(pod = %name, %error, attempt, "final delete failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let pod_dir = ctx.shared.layout.pod_dir(uid);
    keep_logs(&ctx.shared.layout, pod, uid, &pod_dir);
    let _ = std::fs::remove_dir_all(pod_dir);
}

/// Moves a deleted pod's container logs to `logs/pods/<namespace>_<name>_<uid>/`, as a
/// node keeps `/var/log/pods` after the pod is gone: what a restarted member wrote before
/// it stopped is often the only account of a slow failover.
fn keep_logs(layout: &crate::layout::Layout, pod: &Pod, uid: &str, pod_dir: &std::path::Path) {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("unnamed");
    let kept = layout.deleted_pod_logs(namespace, name, uid);
    if let Some(parent) = kept.parent()
        && let Err(error) = std::fs::create_dir_all(parent)
    {
        debug!(pod = %name, %error, "cannot keep the deleted pod's logs");
        return;
    }
    if let Err(error) = std::fs::rename(pod_dir.join("logs"), &kept) {
        debug!(pod = %name, %error, "cannot keep the deleted pod's logs");
    }
}

async fn patch_status(
    api: &Api<Pod>,
    name: &str,
    pod: &Pod,
    sandbox: &Sandbox,
    runtime: Option<&runtime::PodRuntimeStatus>,
) {
    let patch = status_patch(pod, sandbox, runtime, &now());
    if let Err(error) = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        debug!(pod = name, %error, "status patch failed");
    }
}

fn dns_record(pod: &Pod, ip: std::net::Ipv4Addr) -> PodRecord {
    let spec = pod.spec.clone().unwrap_or_default();
    PodRecord {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        ip: Some(ip),
        hostname: spec.hostname,
        subdomain: spec.subdomain,
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        ready: false,
        terminating: pod.metadata.deletion_timestamp.is_some(),
    }
}

fn dns_record_with(pod: &Pod, ip: std::net::Ipv4Addr, rt: &runtime::PodRuntimeStatus) -> PodRecord {
    let mut record = dns_record(pod, ip);
    record.ready =
        !rt.container_statuses.is_empty() && rt.container_statuses.iter().all(|c| c.ready);
    record
}

async fn materialize_all(
    ctx: &NodeContext,
    pod: &Pod,
    pod_dir: &std::path::Path,
    tokens: &TokenCache,
) -> Result<Vec<(String, PathBuf)>, MountError> {
    let volumes: Vec<Volume> = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let vctx = VolumeContext {
        client: &ctx.client,
        pod,
        pod_dir,
        tokens,
    };
    let mut out = Vec::with_capacity(volumes.len());
    for volume in &volumes {
        out.push((volume.name.clone(), vctx.materialize(volume).await?));
    }
    Ok(out)
}

async fn build_plan(
    ctx: &NodeContext,
    pod: &Pod,
    pod_ip: std::net::Ipv4Addr,
    hosts_file: &std::path::Path,
    pod_dir: &std::path::Path,
    mounts: &[(String, PathBuf)],
    cgroup_procs: Option<PathBuf>,
) -> PodPlan {
    let spec = pod.spec.clone().unwrap_or_default();
    // The pod's own IP is known now; fieldRefs to status.podIP read it from here.
    let mut with_ip = pod.clone();
    let status = with_ip.status.get_or_insert_with(Default::default);
    status.pod_ip = Some(pod_ip.to_string());
    status.pod_ips = Some(vec![k8s_openapi::api::core::v1::PodIP {
        ip: pod_ip.to_string(),
    }]);
    status.host_ip = Some(ctx.ip.to_string());
    status.host_ips = Some(vec![k8s_openapi::api::core::v1::HostIP {
        ip: ctx.ip.to_string(),
    }]);
    let mut init_containers = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        let kind = if c.restart_policy.as_deref() == Some("Always") {
            ContainerKind::Sidecar
        } else {
            ContainerKind::Init
        };
        init_containers.push(container_plan(ctx, &with_ip, c, kind, mounts).await);
    }
    let mut containers = Vec::new();
    for c in &spec.containers {
        containers.push(container_plan(ctx, &with_ip, c, ContainerKind::Main, mounts).await);
    }
    let restart_policy = match spec.restart_policy.as_deref() {
        Some("Never") => RestartPolicy::Never,
        Some("OnFailure") => RestartPolicy::OnFailure,
        _ => RestartPolicy::Always,
    };
    PodPlan {
        sandbox: PodSandbox {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            pod_ip,
            hosts_file: hosts_file.to_path_buf(),
            hostname: spec
                .hostname
                .clone()
                .or_else(|| pod.metadata.name.clone())
                .unwrap_or_default(),
            log_dir: pod_dir.join("logs"),
            inherit_fd: Some(ctx.shared.block_lock.clone()),
            cgroup_procs,
        },
        init_containers,
        containers,
        restart_policy,
        termination_grace_period: Duration::from_secs(
            spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64,
        ),
    }
}

async fn container_plan(
    ctx: &NodeContext,
    pod: &Pod,
    c: &Container,
    kind: ContainerKind,
    mounts: &[(String, PathBuf)],
) -> ContainerPlan {
    let image = c.image.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let home = ctx.shared.layout.pod_dir(&uid).join("home");
    if let Err(error) = std::fs::create_dir_all(&home) {
        warn!(%error, "cannot create the pod's home directory");
    }
    let env = crate::env::resolve(&ctx.client, pod, c, &ctx.shared.api, &home).await;
    let mut plan_mounts = Vec::new();
    let mut mount_error = None;
    for vm in c.volume_mounts.iter().flatten() {
        let Some((_, host)) = mounts.iter().find(|(name, _)| *name == vm.name) else {
            mount_error = Some(format!(
                "volumeMount {} names no volume of the pod",
                vm.name
            ));
            continue;
        };
        let mut host_path = host.clone();
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            host_path = host.join(sub);
            if !host_path.exists()
                && let Err(e) = std::fs::create_dir_all(&host_path)
            {
                mount_error = Some(format!("subPath {sub}: {e}"));
            }
        }
        plan_mounts.push(MountPlan {
            host_path,
            container_path: PathBuf::from(&vm.mount_path),
            read_only: vm.read_only.unwrap_or(false),
        });
    }
    let env = match (env, mount_error) {
        (Ok(env), None) => Ok(env),
        (Err(e), _) | (Ok(_), Some(e)) => Err(e),
    };
    ContainerPlan {
        name: c.name.clone(),
        image: image.clone(),
        kind,
        entrypoint: ctx.shared.images.resolve(&image),
        command: c.command.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        env,
        // An image's default working directory is its root.
        working_dir: c.working_dir.clone().or_else(|| Some("/".into())),
        mounts: plan_mounts,
        ports: c
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.name.clone().map(|n| (n, p.container_port)))
            .collect(),
        startup_probe: c.startup_probe.clone(),
        liveness_probe: c.liveness_probe.clone(),
        readiness_probe: c.readiness_probe.clone(),
        lifecycle: c.lifecycle.clone(),
    }
}

impl NodeContext {
    pub async fn event(&self, pod: &Pod, kind: EventType, reason: &str, note: &str) {
        let reference = kube::Resource::object_ref(pod, &());
        let event = Event {
            type_: kind,
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &reference).await {
            debug!(%error, reason, "cannot publish an event");
        }
    }
}
