//! The pod runtime: runs one pod's containers as local processes, the way a kubelet runs
//! them, knowing nothing about the API server.
//!
//! The node agent resolves everything that needs the API (images to binaries, env, volumes
//! materialised as host directories, the pod's /etc/hosts file) into a [`PodPlan`] and calls
//! [`start`]. The returned [`PodHandle`] publishes a [`PodRuntimeStatus`] (container statuses
//! as a kubelet fills them, the phase, recent events) on a watch channel, and ends the pod with
//! [`PodHandle::terminate`] (graceful: preStop, SIGTERM, grace, SIGKILL) or
//! [`PodHandle::kill`] (power loss). Dropping the handle kills the pod.
//!
//! What it does, as a kubelet would:
//! - every process runs in its own session (signalled as a process group) and its own
//!   private mount namespace, with each [`MountPlan`] bind-mounted at its path and
//!   `hosts_file` at /etc/hosts; env is exactly the plan's (plus PATH if absent); stdout and
//!   stderr are appended to `log_dir/<container>.log`; of kubesim's descriptors, only the
//!   sandbox's `inherit_fd` stays open in the process;
//! - `command` replaces the entrypoint, `args` follow, both with `$(VAR)` expansion
//!   ([`expand::expand`]);
//! - init containers run one after another to success; a sidecar (init container with
//!   restartPolicy Always) lets the next one start once it has started, and keeps running;
//!   then all main containers start together;
//! - restarts follow the restart policy with crash back-off ([`backoff::BackoffPolicy`],
//!   shortened through `KUBESIM_BACKOFF_BASE_MS` / `KUBESIM_BACKOFF_MAX_MS`);
//! - startup, liveness and readiness probes (exec, httpGet, tcpSocket) with their delays,
//!   periods, timeouts and thresholds;
//! - an image that cannot be had waits as ErrImagePull / ImagePullBackOff, an env that cannot
//!   be resolved as CreateContainerConfigError, a command that cannot start ends as
//!   StartError and crash-loops; none of these stops the runtime.
//!
//! Limits, by design or not yet done:
//! - there is no root filesystem per container: a missing mount point (or workingDir) is
//!   created as an empty directory (or file) on the host, and paths that are not mounted are
//!   the host's;
//! - files are bind-mounted by inode: `hosts_file` (and any file mount) must be rewritten in
//!   place, never replaced by a rename;
//! - exec probes and hooks run in a fresh namespace with the same mounts and env, not inside
//!   the container's own namespace;
//! - grpc probes and HTTPS httpGet are not supported (a grpc or HTTPS probe
//!   fails with a message saying so); no cgroups, so no OOMKilled and no resource limits;
//! - like a kubelet, the first restart after an exit is immediate and back-off applies from
//!   the second; `restartCount` counts processes started after the first.

pub mod backoff;
mod container;
pub mod expand;
mod http;
mod pod;
mod probe;
mod spawn;
mod status;

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Lifecycle, Probe};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use spawn::SpawnError;
pub use status::MAX_EVENTS;

/// Where a pod lives on this host.
#[derive(Clone, Debug)]
pub struct PodSandbox {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The pod's own address in 127.0.0.0/8; probes go here unless they name a host.
    pub pod_ip: Ipv4Addr,
    /// Bind-mounted read-only at /etc/hosts in every container.
    pub hosts_file: PathBuf,
    pub hostname: String,
    /// `<container>.log` files, appended to across restarts.
    pub log_dir: PathBuf,
    /// A descriptor that every process of the pod (containers, exec probes and hooks)
    /// inherits across exec. The node passes the lock on the cluster's pod address block, so
    /// that the block stays claimed while any pod process lives, even one that outlived
    /// kubesim itself.
    pub inherit_fd: Option<Arc<OwnedFd>>,
    /// The `cgroup.procs` file of the pod's cgroup, which every process of the pod joins
    /// before exec (see [`crate::faults`]); None where kubesim has no cgroups to give.
    pub cgroup_procs: Option<PathBuf>,
}

impl PodSandbox {
    /// The pod as kubelet names it in messages: `name_namespace(uid)`.
    pub fn kubelet_name(&self) -> String {
        format!("{}_{}({})", self.name, self.namespace, self.uid)
    }
}

/// The role of a container in its pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerKind {
    /// An init container: runs to success before the next one starts.
    Init,
    /// An init container with restartPolicy Always: started in its turn, kept running.
    Sidecar,
    /// A regular container.
    Main,
}

/// One volume mount, already materialised on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountPlan {
    /// A directory or a file (subPath) on the host.
    pub host_path: PathBuf,
    /// Where the container sees it.
    pub container_path: PathBuf,
    pub read_only: bool,
}

/// One container, resolved by the node agent.
#[derive(Clone, Debug)]
pub struct ContainerPlan {
    pub name: String,
    pub image: String,
    pub kind: ContainerKind,
    /// The image's entrypoint binary on this host, or why it cannot be had
    /// (the container waits as ErrImagePull, then ImagePullBackOff).
    pub entrypoint: Result<PathBuf, String>,
    /// Raw from the spec; `$(VAR)` is expanded here against `env`.
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// The resolved env in order, or why it could not be resolved
    /// (the container waits as CreateContainerConfigError with this message).
    pub env: Result<Vec<(String, String)>, String>,
    pub working_dir: Option<String>,
    pub mounts: Vec<MountPlan>,
    /// (name, containerPort) of the spec's ports, for probes that name a port.
    pub ports: Vec<(String, i32)>,
    pub startup_probe: Option<Probe>,
    pub liveness_probe: Option<Probe>,
    pub readiness_probe: Option<Probe>,
    /// postStart runs after the process started (probes wait for it; a failure kills and
    /// restarts the container); preStop (exec, httpGet, sleep) runs on graceful stops.
    pub lifecycle: Option<Lifecycle>,
}

/// The pod's restartPolicy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// Everything needed to run a pod.
#[derive(Clone, Debug)]
pub struct PodPlan {
    pub sandbox: PodSandbox,
    /// In spec order, sidecars among them.
    pub init_containers: Vec<ContainerPlan>,
    pub containers: Vec<ContainerPlan>,
    pub restart_policy: RestartPolicy,
    /// terminationGracePeriodSeconds: used when a probe kills a container and when sidecars
    /// are stopped after the main containers completed (a `terminate` brings its own).
    pub termination_grace_period: Duration,
}

/// The pod phase as a kubelet derives it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl PodPhase {
    /// As written in `status.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
        }
    }
}

/// Kubernetes event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Something a kubelet would record as an Event (BackOff, Unhealthy, Killing, Started,
/// Failed, FailedPreStopHook).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeEvent {
    /// Increases with every new event and every repeat, so a reader can post what is new.
    pub seq: u64,
    pub type_: EventType,
    pub reason: String,
    pub message: String,
    /// The container it concerns.
    pub container: Option<String>,
    /// How many times it happened in a row.
    pub count: u32,
}

/// The runtime's view of the pod, republished on every change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodRuntimeStatus {
    pub init_container_statuses: Vec<ContainerStatus>,
    pub container_statuses: Vec<ContainerStatus>,
    /// All non-sidecar init containers completed and all sidecars started.
    pub initialized: bool,
    pub phase: PodPhase,
    /// The latest [`MAX_EVENTS`] events, oldest first.
    pub events: Vec<RuntimeEvent>,
}

/// Starts running the pod in a task of its own (needs a tokio runtime).
pub fn start(plan: PodPlan) -> PodHandle {
    let (shared, status) = status::Shared::new(status::PodState::new(&plan));
    let (commands, receiver) = mpsc::channel(4);
    let task = tokio::spawn(pod::run(plan, shared, receiver));
    PodHandle {
        commands,
        status,
        task,
    }
}

/// A running pod. Dropping it (and every [`KillSwitch`] of it) kills the pod's processes.
#[derive(Debug)]
pub struct PodHandle {
    commands: mpsc::Sender<pod::PodCommand>,
    status: watch::Receiver<PodRuntimeStatus>,
    task: JoinHandle<()>,
}

impl PodHandle {
    /// The pod's status, updated on every change.
    pub fn status(&self) -> watch::Receiver<PodRuntimeStatus> {
        self.status.clone()
    }

    /// A way to kill the pod while a `terminate` is under way (a node failing mid-deletion).
    pub fn kill_switch(&self) -> KillSwitch {
        KillSwitch {
            commands: self.commands.clone(),
        }
    }

    /// Graceful stop as a kubelet does it: preStop hooks, SIGTERM, up to `grace` (counting the
    /// preStop time), SIGKILL; main containers first, then sidecars in reverse order.
    /// Returns when every process has exited.
    pub async fn terminate(self, grace: Duration) {
        // An error means the pod task already ended: nothing is left to stop.
        let _ = self
            .commands
            .send(pod::PodCommand::Terminate { grace })
            .await;
        Self::join(self.task).await;
    }

    /// Power loss: SIGKILL every process of the pod now, no hooks. Returns when all exited.
    pub async fn kill(self) {
        let _ = self.commands.send(pod::PodCommand::Kill).await;
        Self::join(self.task).await;
    }

    async fn join(task: JoinHandle<()>) {
        if let Err(e) = task.await {
            tracing::error!(%e, "the pod task ended abnormally");
        }
    }
}

/// Kills a pod from outside its handle; see [`PodHandle::kill_switch`].
#[derive(Clone, Debug)]
pub struct KillSwitch {
    commands: mpsc::Sender<pod::PodCommand>,
}

impl KillSwitch {
    /// Asks the pod to SIGKILL everything now; the holder of the handle sees `terminate`
    /// (or `kill`) return once all processes exited.
    pub fn kill(&self) {
        // Full or closed: a kill is already queued or the pod is gone.
        let _ = self.commands.try_send(pod::PodCommand::Kill);
    }
}

#[cfg(test)]
impl PodPlan {
    pub(crate) fn for_tests() -> PodPlan {
        PodPlan {
            sandbox: PodSandbox {
                namespace: "ns".into(),
                name: "pod".into(),
                uid: "uid".into(),
                pod_ip: Ipv4Addr::new(127, 0, 0, 2),
                hosts_file: PathBuf::from("/etc/hosts"),
                hostname: "pod".into(),
                log_dir: PathBuf::from("/tmp"),
                inherit_fd: None,
                cgroup_procs: None,
            },
            init_containers: Vec::new(),
            containers: Vec::new(),
            restart_policy: RestartPolicy::Always,
            termination_grace_period: Duration::from_secs(30),
        }
    }
}
